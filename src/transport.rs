//! The byte stream under a connection, and how it moves between shards.
//!
//! The connection task ([`crate::conn`]) is generic over [`Transport`]: it
//! reads MQTT bytes, writes MQTT bytes, and, when a client's home shard is
//! another one, [`Transport::detach`]es into a [`Detached`] value that can
//! cross threads in a mesh message and resume there.
//!
//! glommio's `TcpStream` is one as it is, and detaches as a dup'd fd. TLS
//! ([`crate::tls::TlsStream`]) detaches as the fd plus its rustls
//! connection. Other transports wrap a stream the listener accepted the same
//! way ([`crate::listener`]) — handshake state, record or frame decoding —
//! and hand it to [`crate::conn::spawn_accepted`]; each detaches as the fd
//! plus its own state, one more [`Detached`] variant. [`ws::Ws`] (WebSocket)
//! is a wrapper over any other transport, so `ws` and `wss` are one type each.
//! The receiving shard calls [`Detached::resume`], which rebuilds the
//! concrete type and hands it to a generic [`Resume`]. The codec, the
//! session and the protocol handlers see only MQTT bytes and never change
//! for a transport.
//! A [`Handoff`] is what crosses the mesh: the detached transport with the
//! bytes already read and the connection's slot.

pub mod ready;
pub mod tcp;
pub mod ws;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A connected byte stream carrying MQTT packets, owned by one connection task.
pub trait Transport: Sized + 'static {
    /// Read MQTT bytes into `buf`; `Ok(0)` is the end of the stream.
    /// Readiness-based: a pending read holds no buffer.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Write MQTT bytes from `buf`, as many as the stream takes now.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Send output the transport still holds (TLS records the socket did not
    /// take yet); called when the connection's own outbox is empty.
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Best effort and never waiting: send `buf` (a refusing CONNACK, an
    /// MQTT 5 DISCONNECT; possibly nothing) just before the broker closes
    /// the connection, then the transport's own goodbye if it has one (TLS
    /// close_notify, a WebSocket close frame). Whatever does not fit is
    /// dropped.
    fn write_now(&mut self, buf: &[u8]);

    /// A copy of this stream that another shard can take over; this one is
    /// dropped (and its fd closed) by the caller afterwards.
    fn detach(&mut self) -> io::Result<Detached>;

    /// The socket under it (keepalive asks the kernel for unread bytes).
    fn socket_fd(&self) -> RawFd;
}

/// Where a connection came in, and what its transport proved about the
/// peer: given by the accept loop, carried through a handoff, kept by the
/// connection ([`Conn::origin`](crate::shard::conns::Conn::origin)) for
/// authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Index of the listener in `cfg.listener`.
    pub listener: u16,
    /// The identity a verified TLS client certificate gives (its CN or a SAN,
    /// as the listener is configured), if any.
    pub identity: Option<Box<str>>,
}

/// A connection moving to its home shard: the detached transport (closed on
/// drop) and the bytes already read from it (the CONNECT, maybe more).
#[derive(Debug)]
pub struct Handoff {
    pub transport: Detached,
    pub initial: bytes::Bytes,
    pub peer: std::net::SocketAddr,
    pub origin: Origin,
    /// The node-wide connection slot this socket holds.
    pub slot: crate::conn_limit::Slot,
}

/// A transport in transit between shards: plain data, `Send`, closed on drop.
#[derive(Debug)]
pub enum Detached {
    /// A plain TCP socket.
    Tcp(OwnedFd),
    /// A TLS socket: the fd and its rustls connection, with the records
    /// (and plaintext) it already read but the connection did not consume.
    Tls {
        fd: OwnedFd,
        tls: Box<crate::tls::TlsSession>,
    },
    /// A WebSocket connection: the stream under it (`Tcp`, or TLS for
    /// `wss`) and its framing state with the bytes read but not decoded.
    Ws {
        inner: Box<Detached>,
        state: ws::WsState,
    },
}

/// What to do with a transport once [`Detached::resume`] rebuilt it (the
/// connection task is generic over the type, so this is a generic method
/// rather than a closure).
pub trait Resume {
    type Output;
    fn resume<T: Transport>(self, stream: T) -> Self::Output;
}

impl Detached {
    /// Rebuild the transport on this shard and hand it to `then`.
    pub fn resume<R: Resume>(self, then: R) -> io::Result<R::Output> {
        match self {
            Detached::Ws { inner, state } => inner.resume_stream(ws::Rewrap { state, then }),
            other => other.resume_stream(then),
        }
    }

    /// Resume a transport that is a stream of its own (not a wrapper such
    /// as WebSocket, which sits on one of these).
    fn resume_stream<R: Resume>(self, then: R) -> io::Result<R::Output> {
        match self {
            Detached::Tcp(fd) => Ok(then.resume(tcp::Tcp::new(fd)?)),
            Detached::Tls { fd, tls } => Ok(then.resume(crate::tls::TlsStream::resume(fd, tls))),
            Detached::Ws { .. } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a websocket inside a websocket cannot be resumed",
            )),
        }
    }
}

impl Transport for TcpStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write(cx, buf)
    }

    fn write_now(&mut self, buf: &[u8]) {
        if !buf.is_empty() {
            send_now(self.as_raw_fd(), buf);
        }
    }

    fn detach(&mut self) -> io::Result<Detached> {
        dup_socket(self.as_raw_fd()).map(Detached::Tcp)
    }

    fn socket_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

/// send(2) without waiting; what the socket does not take is dropped.
pub fn send_now(fd: RawFd, buf: &[u8]) {
    // SAFETY: plain send(2) on an open socket, from a valid buffer.
    unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
    }
}

/// A second descriptor for socket `fd`, for another shard to take over.
pub fn dup_socket(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup(2) of an open fd; the result is checked before use.
    let fd = unsafe { libc::dup(fd) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bytes received on socket `fd` and not read yet (0 when it cannot tell,
/// or for `fd` -1).
pub fn unread_bytes(fd: RawFd) -> usize {
    if fd < 0 {
        return 0;
    }
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a pointer to our local.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 {
        usize::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// Resume a TCP socket that arrived as [`Detached::Tcp`].
pub fn tcp_from(fd: OwnedFd) -> TcpStream {
    // SAFETY: the fd is an open TCP socket we own (OwnedFd), moved in here.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::io::{Read, Write};

    /// A detached TCP transport outlives the original and carries bytes both
    /// ways once resumed; `write_now` sends without waiting.
    #[test]
    fn tcp_detaches_and_resumes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor");
        ex.run(async move {
            let mut original = TcpStream::connect(addr).await.expect("connect");
            let (mut peer, _) = listener.accept().expect("accept");
            let detached = original.detach().expect("detach");
            drop(original);
            let Detached::Tcp(fd) = detached else {
                panic!("a TCP stream detaches as Detached::Tcp");
            };
            let mut resumed = tcp_from(fd);

            resumed.write_now(b"now");
            let n = poll_fn(|cx| Transport::poll_write(&mut resumed, cx, b"+w"))
                .await
                .expect("write");
            assert_eq!(n, 2, "an empty socket buffer takes two bytes");
            let mut got = [0u8; 5];
            peer.read_exact(&mut got).expect("peer read");
            assert_eq!(&got, b"now+w");

            peer.write_all(b"back").expect("peer write");
            let mut buf = [0u8; 16];
            let n = poll_fn(|cx| Transport::poll_read(&mut resumed, cx, &mut buf))
                .await
                .expect("read");
            assert_eq!(&buf[..n], b"back");
        });
    }
}
