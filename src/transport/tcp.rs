//! Plain TCP for MQTT connections and listening sockets, read, written and
//! accepted with non-blocking syscalls, waiting in the shard's readiness set
//! ([`super::ready`]) instead of a glommio poll per socket.
//!
//! [`Tcp`] is the [`Transport`] of a plain TCP connection (made by the
//! accept loop in [`crate::listener`] and by a handoff's resume in
//! [`super::Detached`]); [`Acceptor`] is a listener's socket on one shard.
//! TLS, WebSocket and PROXY-header sockets still go through glommio's own
//! `TcpStream` (their handshakes use it).

use super::ready::Registration;
use super::{send_now, Detached, Transport};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

/// A connected TCP socket in the shard's readiness set.
#[derive(Debug)]
pub struct Tcp {
    reg: Registration,
    /// None once detached: the descriptor itself moved to another shard
    /// (no dup: a broker at its descriptor limit has none to spare).
    fd: Option<OwnedFd>,
}

impl Tcp {
    /// Take over connected socket `fd` (blocking mode or not: every call
    /// here passes `MSG_DONTWAIT`).
    pub fn new(fd: OwnedFd) -> io::Result<Tcp> {
        let reg = Registration::new(fd.as_raw_fd())?;
        Ok(Tcp { reg, fd: Some(fd) })
    }

    /// The descriptor (-1 once detached: calls on it fail with `EBADF`).
    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

/// Run a non-blocking syscall that returns a length or -1: `None` when it
/// would block (an interrupted call is made again).
fn nonblocking(mut call: impl FnMut() -> isize) -> Option<io::Result<usize>> {
    loop {
        let rc = call();
        if rc >= 0 {
            return Some(Ok(rc.unsigned_abs()));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return None,
            io::ErrorKind::Interrupted => continue,
            _ => return Some(Err(e)),
        }
    }
}

impl Transport for Tcp {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.reg.may_read() {
            // Nothing arrived since the last read found nothing.
            self.reg.wait_read(cx.waker());
            return Poll::Pending;
        }
        let fd = self.raw();
        // SAFETY: recv(2) into a buffer we hold mutably, on our open socket.
        let call =
            || unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        match nonblocking(call) {
            Some(r) => Poll::Ready(r),
            None => {
                self.reg.wait_read(cx.waker());
                Poll::Pending
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let fd = self.raw();
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: send(2) from a buffer we borrow, on our open socket.
        let call = || unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
        match nonblocking(call) {
            Some(r) => Poll::Ready(r),
            None => {
                self.reg.wait_write(cx.waker());
                Poll::Pending
            }
        }
    }

    fn write_now(&mut self, buf: &[u8]) {
        if !buf.is_empty() {
            send_now(self.raw(), buf);
        }
    }

    /// The descriptor itself leaves (this transport can do no more I/O).
    fn detach(&mut self) -> io::Result<Detached> {
        let fd = self
            .fd
            .take()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        self.reg.leave(fd.as_raw_fd());
        Ok(Detached::Tcp(fd))
    }

    fn socket_fd(&self) -> RawFd {
        self.raw()
    }
}

/// A listening socket of one shard, in its readiness set.
#[derive(Debug)]
pub struct Acceptor {
    reg: Registration,
    sock: socket2::Socket,
}

impl Acceptor {
    /// Take over listening socket `fd` (non-blocking, as `bind_all` makes it).
    pub fn new(fd: OwnedFd) -> io::Result<Acceptor> {
        let reg = Registration::new(fd.as_raw_fd())?;
        Ok(Acceptor {
            reg,
            sock: socket2::Socket::from(fd),
        })
    }

    /// The next connection: its socket (blocking mode, close-on-exec) and
    /// the peer's address.
    pub async fn accept(&self) -> io::Result<(OwnedFd, SocketAddr)> {
        poll_fn(|cx| loop {
            match self.sock.accept() {
                Ok((sock, addr)) => {
                    let peer = addr
                        .as_socket()
                        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    return Poll::Ready(Ok((OwnedFd::from(sock), peer)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.reg.wait_read(cx.waker());
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;

    fn executor() -> glommio::LocalExecutor {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor")
    }

    /// A waiting read wakes when the peer writes; a write that filled the
    /// socket waits and wakes when the peer drains it.
    #[test]
    fn reads_and_writes_wait_in_the_readiness_set() {
        reads_and_writes(std::time::Duration::ZERO);
    }

    /// The same with a gathering window (`runtime.wake_window_us`): events
    /// that come while the set's task sleeps are taken after it.
    #[test]
    fn reads_and_writes_wait_with_a_window() {
        reads_and_writes(std::time::Duration::from_millis(2));
    }

    fn reads_and_writes(window: std::time::Duration) {
        super::super::ready::set_window(window);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        executor().run(async move {
            let ours = std::net::TcpStream::connect(addr).expect("connect");
            let (mut peer, _) = listener.accept().expect("accept");
            let mut tcp = Tcp::new(OwnedFd::from(ours)).expect("register");
            let (drain, drain_rx) = std::sync::mpsc::channel::<()>();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                peer.write_all(b"ping").expect("peer write");
                // Drain what the broker side sends, once told to, until it closes.
                drain_rx.recv().expect("told to drain");
                let mut sink = Vec::new();
                peer.read_to_end(&mut sink).expect("peer read");
                sink.len()
            });
            let mut buf = [0u8; 16];
            let n = poll_fn(|cx| tcp.poll_read(cx, &mut buf))
                .await
                .expect("read");
            assert_eq!(&buf[..n], b"ping");

            // Fill the socket until a write would wait...
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0usize;
            while let Some(r) =
                futures_lite::future::poll_once(poll_fn(|cx| tcp.poll_write(cx, &chunk))).await
            {
                sent += r.expect("write");
                assert!(sent < 64 * 1024 * 1024, "64 MiB never filled the socket");
            }
            // ... then it wakes once the peer drains.
            drain.send(()).expect("peer waits");
            sent += poll_fn(|cx| tcp.poll_write(cx, &chunk))
                .await
                .expect("write after the wait");
            drop(tcp);
            assert_eq!(writer.join().expect("peer thread"), sent);
        });
    }

    /// Detaching moves the descriptor itself (no dup) out of the set: the
    /// same number resumes in a set again (here the same one, which refuses
    /// a socket still registered) and carries bytes.
    #[test]
    fn detach_moves_the_descriptor_out_of_the_set() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        executor().run(async move {
            let ours = std::net::TcpStream::connect(addr).expect("connect");
            let (mut peer, _) = listener.accept().expect("accept");
            let number = ours.as_raw_fd();
            let mut tcp = Tcp::new(OwnedFd::from(ours)).expect("register");
            let Ok(Detached::Tcp(fd)) = tcp.detach() else {
                panic!("a Tcp detaches as Detached::Tcp");
            };
            assert_eq!(fd.as_raw_fd(), number, "the descriptor itself moves");
            assert_eq!(tcp.socket_fd(), -1);
            drop(tcp);
            let mut resumed = Tcp::new(fd).expect("registers again");
            peer.write_all(b"moved").expect("peer write");
            let mut buf = [0u8; 8];
            let n = poll_fn(|cx| resumed.poll_read(cx, &mut buf))
                .await
                .expect("read");
            assert_eq!(&buf[..n], b"moved");
        });
    }

    /// The acceptor waits for a connection and gives its socket and peer.
    #[test]
    fn acceptor_waits_for_connections() {
        executor().run(async move {
            let (fds, addr) =
                crate::listener::bind_all("127.0.0.1:0".parse().expect("addr"), 1, 16)
                    .expect("bind");
            let acceptor = Acceptor::new(fds.into_iter().next().expect("one fd")).expect("new");
            let client = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let s = std::net::TcpStream::connect(addr).expect("connect");
                s.local_addr().expect("local")
            });
            let (fd, peer) = acceptor.accept().await.expect("accept");
            assert_eq!(peer, client.join().expect("client"));
            // SAFETY: just checking the descriptor is a socket we own.
            let s = unsafe {
                std::net::TcpStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd))
            };
            assert_eq!(s.peer_addr().expect("peer"), peer);
        });
    }
}
