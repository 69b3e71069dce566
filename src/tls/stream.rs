//! [`TlsStream`]: a glommio `TcpStream` with a boxed rustls
//! `ServerConnection` on top, read and written without a buffer of its own.
//!
//! rustls reads ciphertext straight from the socket (`read_tls` through
//! [`SocketIo`], a non-blocking `Read`/`Write` view of the socket inside one
//! poll) and the plaintext goes into the caller's buffer (the shard's
//! scratch), so an idle TLS connection holds only what rustls itself keeps.
//! Encrypted output that the socket did not take yet stays in rustls and is
//! sent by the next write, read or [`poll_flush`](Transport::poll_flush).

use crate::transport::{Detached, Transport};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// MQTT over TLS on one socket.
pub struct TlsStream {
    sock: TcpStream,
    /// Boxed: the connection task's future stays small. `None` only after
    /// [`detach`](Transport::detach) moved it out.
    tls: Option<Box<ServerConnection>>,
}

/// The socket as a non-blocking `Read`/`Write` for rustls, within one poll:
/// `Pending` becomes `WouldBlock` (the waker is registered all the same).
pub(super) struct SocketIo<'a, 'b> {
    pub sock: &'a mut TcpStream,
    pub cx: &'a mut Context<'b>,
}

fn would_block<T>(p: Poll<io::Result<T>>) -> io::Result<T> {
    match p {
        Poll::Ready(r) => r,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl Read for SocketIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        would_block(Pin::new(&mut *self.sock).poll_read(self.cx, buf))
    }
}

impl Write for SocketIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        would_block(Pin::new(&mut *self.sock).poll_write(self.cx, buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Send what rustls has queued. `Ready(Ok)` once all is out; `Pending` when
/// the socket is full (woken when it drains).
pub(super) fn flush_tls(
    tls: &mut ServerConnection,
    sock: &mut TcpStream,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while tls.wants_write() {
        match tls.write_tls(&mut SocketIo { sock, cx }) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

/// Feed rustls what the socket has: `Ready(Ok(0))` at end of stream,
/// `Ready(Ok(n))` after n ciphertext bytes were processed, `Pending` if none
/// arrived. A TLS error tries to send its alert and becomes `InvalidData`.
pub(super) fn read_records(
    tls: &mut ServerConnection,
    sock: &mut TcpStream,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    match tls.read_tls(&mut SocketIo { sock, cx }) {
        Ok(0) => Poll::Ready(Ok(0)),
        Ok(n) => match tls.process_new_packets() {
            Ok(_) => Poll::Ready(Ok(n)),
            Err(e) => {
                let _ = flush_tls(tls, sock, cx);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
            }
        },
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        Err(e) => Poll::Ready(Err(e)),
    }
}

impl TlsStream {
    pub(super) fn new(sock: TcpStream, tls: Box<ServerConnection>) -> TlsStream {
        TlsStream {
            sock,
            tls: Some(tls),
        }
    }

    /// Rebuild a stream that arrived as [`Detached::Tls`] on its home shard.
    pub fn resume(fd: OwnedFd, tls: Box<ServerConnection>) -> TlsStream {
        TlsStream::new(crate::transport::tcp_from(fd), tls)
    }

    /// The verified client certificate chain, if the client sent one.
    pub(super) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.tls.as_ref()?.peer_certificates()
    }

    fn parts(&mut self) -> io::Result<(&mut ServerConnection, &mut TcpStream)> {
        match self.tls.as_deref_mut() {
            Some(tls) => Ok((tls, &mut self.sock)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Transport for TlsStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let (tls, sock) = match self.parts() {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        loop {
            // Answers rustls owes the peer (alerts, key updates, tickets).
            if let Poll::Ready(Err(e)) = flush_tls(tls, sock, cx) {
                return Poll::Ready(Err(e));
            }
            match tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)), // 0: close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            match read_records(tls, sock, cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(_)) => continue,
                other => return other,
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let (tls, sock) = match self.parts() {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // Older ciphertext first; new plaintext only once it is out, so at
        // most one write's worth is buffered here.
        match flush_tls(tls, sock, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let n = match tls.writer().write(buf) {
            Ok(n) => n,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // Push it out now; what the socket does not take waits in rustls
        // (the waker is registered for writability).
        if let Poll::Ready(Err(e)) = flush_tls(tls, sock, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.parts() {
            Ok((tls, sock)) => flush_tls(tls, sock, cx),
            Err(_) => Poll::Ready(Ok(())),
        }
    }

    fn write_now(&mut self, buf: &[u8]) {
        let fd = self.sock.as_raw_fd();
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        let _ = tls.writer().write_all(buf);
        tls.send_close_notify();
        let _ = tls.write_tls(&mut NowWriter(fd));
    }

    fn detach(&mut self) -> io::Result<Detached> {
        let fd = crate::transport::dup_socket(self.sock.as_raw_fd())?;
        let tls = self.tls.take().ok_or(io::ErrorKind::NotConnected)?;
        Ok(Detached::Tls { fd, tls })
    }

    fn socket_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// A socket written with send(MSG_DONTWAIT): what does not fit is dropped.
struct NowWriter(RawFd);

impl Write for NowWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::transport::send_now(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
