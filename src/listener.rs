//! TCP listeners: one SO_REUSEPORT socket per shard on the same port, and
//! the accept loop each shard runs on its own.
//!
//! The sockets are built before the shards start (socket2: reuse_port and
//! our own backlog; glommio's `bind` fixes the backlog at 1024), so port 0
//! resolves once and every shard listens on the same port. The accept loop
//! enforces the node-wide connection limit and backs off when the process is
//! out of file descriptors instead of spinning or dying.
//!
//! Every accepted socket becomes a [`Transport`](crate::transport::Transport)
//! handed to [`crate::conn::spawn_accepted`]; plain TCP passes the stream as
//! it is. A TLS or WebSocket listener reuses this loop (limit, backoff,
//! slot) and differs only in wrapping the stream before that call.

use crate::conn_limit::ConnCount;
use crate::shard::ShardRef;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bind `count` listening sockets to `addr`; returns them and the address
/// actually bound (port 0 resolved).
pub fn bind_all(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let mut fds = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&bound.into())?;
        sock.listen(backlog.min(i32::MAX as u32) as i32)?;
        if let Some(a) = sock.local_addr()?.as_socket() {
            bound = a;
        }
        // SAFETY: into_raw_fd hands us sole ownership of the open socket.
        fds.push(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) });
    }
    Ok((fds, bound))
}

/// Accept connections on this shard until cancelled.
pub async fn accept_loop(shard: ShardRef, listener: TcpListener, count: Arc<ConnCount>) {
    let (id, max) = {
        let sh = shard.borrow();
        (sh.id, sh.cfg.listener.max_connections)
    };
    let mut last_warn: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                let os = match &e {
                    glommio::GlommioError::IoError(io) => io.raw_os_error(),
                    _ => None,
                };
                if matches!(os, Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    shard.borrow_mut().metrics.accept_fd_exhausted += 1;
                    log::warn!("shard {id}: out of file descriptors, pausing accepts for 100 ms");
                } else {
                    log::warn!("shard {id}: accept failed: {e}");
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shard.borrow_mut().metrics.connections_accepted += 1;
        let Some(slot) = count.try_acquire(max) else {
            let refused = {
                let mut sh = shard.borrow_mut();
                sh.metrics.connections_refused_limit += 1;
                sh.metrics.connections_refused_limit
            };
            // One line a second at most: a connection storm must not flood the log.
            if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_warn = Some(Instant::now());
                log::warn!("shard {id}: max_connections ({max}) reached, closing new sockets ({refused} so far)");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        crate::conn::spawn_accepted(&shard, stream, peer, slot);
    }
}
