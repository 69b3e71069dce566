#!/usr/bin/env python3
"""Idle memory per connection of a running coremq: RSS of the broker process
before and after N clients connected (MQTT CONNECT answered) and went idle.

    scripts/tls-idle-rss.py --pid PID --port 8883 --tls --cafile ca.pem -n 2000
    scripts/tls-idle-rss.py --pid PID --port 1883 -n 2000      # plain TCP, to compare

Prints the RSS delta per connection in bytes. Clients are spread over
127.0.0.1..127.0.0.9 (ephemeral ports) and keep their sockets open until the
measurement is taken; the script holds one process's file descriptors (N + a few).
"""
import argparse, socket, ssl, struct, time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def connect_packet(cid):
    cid = cid.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(cid)) + cid
    return b"\x10" + bytes([len(body)]) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cafile")
    ap.add_argument("--tls12", action="store_true", help="offer TLS 1.2 only")
    a = ap.parse_args()
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context(cafile=a.cafile)
        ctx.check_hostname = False
        if a.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    time.sleep(0.5)
    before = rss_kb(a.pid)
    socks = []
    t0 = time.time()
    for i in range(a.n):
        host = f"127.0.0.{1 + i % 9}"
        s = socket.create_connection((host, a.port))
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(connect_packet(f"idle-{i}"))
        ack = s.recv(4)
        if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
            raise SystemExit(f"client {i}: no CONNACK ({ack!r})")
        socks.append(s)
    took = time.time() - t0
    time.sleep(2)  # let the broker settle (ticks, freed handshake state)
    after = rss_kb(a.pid)
    kind = ("TLS 1.2" if a.tls12 else "TLS") if a.tls else "TCP"
    print(f"{kind}: {a.n} idle connections, RSS {before} KB -> {after} KB: "
          f"{(after - before) * 1024 / a.n:.0f} bytes per connection "
          f"(connected in {took:.1f} s, {a.n / took:.0f}/s from one Python client)")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
