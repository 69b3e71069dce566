#!/usr/bin/env bash
# What a real server needs for 250K+ MQTT connections (broker and load tool).
# Default: dry run, prints what it would change. --apply: change it (root).
# Settings are not persisted: put them in /etc/sysctl.d and
# /etc/security/limits.d (or the systemd unit's LimitNOFILE=) to keep them.
set -euo pipefail
APPLY=0
[ "${1:-}" = "--apply" ] && APPLY=1

want() { # sysctl key, wanted value, why
  local cur; cur=$(sysctl -n "$1" 2>/dev/null | tr -s '\t' ' ' || echo "?")
  if [ "$cur" = "$2" ]; then echo "ok      $1 = $cur"; return; fi
  if [[ "$cur$2" =~ ^[0-9]+$ ]] && [ "$cur" -ge "$2" ]; then echo "ok      $1 = $cur (>= $2)"; return; fi
  echo "change  $1: '$cur' -> '$2'   # $3"
  if [ $APPLY = 1 ]; then sysctl -w "$1=$2" >/dev/null || echo "  failed (container? no CAP_SYS_ADMIN?)"; fi
}

# Every connection is one fd; the broker holds 250K, the tool 250K more.
want fs.file-max 2097152 "system-wide fd ceiling"
want fs.nr_open 1048576 "per-process ceiling for RLIMIT_NOFILE"
# Accept-queue length for connection storms (the broker's listen backlog is capped by this).
want net.core.somaxconn 65535 "listen backlog cap"
want net.ipv4.tcp_max_syn_backlog 65535 "half-open connections during storms"
# Ephemeral ports per (source address, destination): ~64K with this range;
# load tools also spread over several source addresses (127.0.0.x).
want net.ipv4.ip_local_port_range "1024 65535" "more ephemeral ports per source address"
# TCP memory in pages (4 KiB): min/pressure/max. 250K idle sockets need a few GiB of kernel memory.
want net.ipv4.tcp_mem "786432 1048576 1572864" "3/4/6 GiB: room for 250K+ sockets"
# Small default socket buffers: idle connections then cost ~4 KiB each in the kernel, not 80+.
want net.ipv4.tcp_rmem "4096 8192 1048576" "per-socket receive buffer min/default/max"
want net.ipv4.tcp_wmem "4096 8192 1048576" "per-socket send buffer min/default/max"
# Reuse TIME_WAIT ports for new outgoing connections (the load tool reconnecting).
want net.ipv4.tcp_tw_reuse 1 "reuse TIME_WAIT ports for outgoing connections"
want net.netfilter.nf_conntrack_max 1048576 "if conntrack is loaded: one entry per connection"

# The per-process fd limit (RLIMIT_NOFILE) is set by the shell, limits.conf or systemd.
soft=$(ulimit -Sn); hard=$(ulimit -Hn)
echo "nofile  soft=$soft hard=$hard (want >= 300000 for the broker process)"
if [ "$hard" != unlimited ] && [ "$hard" -lt 300000 ]; then
  echo "change  nofile: add to /etc/security/limits.d/coremq.conf: '* - nofile 1048576'"
  echo "        or LimitNOFILE=1048576 in the systemd unit; raising the hard limit needs CAP_SYS_RESOURCE"
fi
# glommio (io_uring) registers buffers: it needs RLIMIT_MEMLOCK >= 512 KiB.
echo "memlock $(ulimit -l) KiB (glommio needs >= 512)"
[ $APPLY = 0 ] && echo "(dry run: nothing changed; run with --apply as root to change)"
exit 0
