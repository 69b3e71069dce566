//! [`TlsStream`]: a glommio `TcpStream` with a boxed [`TlsSession`] on top,
//! read and written through the shard thread's buffers.
//!
//! A read takes ciphertext from the socket into the thread's input buffer
//! (after the start of a record an earlier read left), decrypts it and puts
//! the plaintext into the caller's buffer (the shard's scratch). A write
//! encrypts at most [`WRITE_CHUNK`] bytes into the thread's output buffer
//! and sends it; only what the socket does not take stays with the
//! connection, and the next write, read or [`poll_flush`](Transport::poll_flush)
//! sends it first. An idle TLS connection holds no buffer.

use super::session::{TlsSession, INPUT, OUTPUT, RECORD_ROOM};
use crate::transport::{Detached, Transport};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Plaintext encrypted per write: four full records.
const WRITE_CHUNK: usize = 64 * 1024;

/// MQTT over TLS on one socket.
pub struct TlsStream {
    sock: TcpStream,
    /// Boxed: the connection task's future stays small. `None` only after
    /// [`detach`](Transport::detach) moved it out.
    tls: Option<Box<TlsSession>>,
}

/// Send what the session owes the socket. `Ready(Ok)` once all is out;
/// `Pending` when the socket is full (woken when it drains).
pub(super) fn flush_unsent(
    tls: &mut TlsSession,
    sock: &mut TcpStream,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !tls.unsent().is_empty() {
        match Pin::new(&mut *sock).poll_write(cx, tls.unsent()) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => tls.sent(n),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

/// One read from the socket into the thread's input buffer, then through
/// the session: `Ready(Ok(plaintext bytes put into buf))`, 0 also when
/// the session ended ([`TlsSession::peer_closed`], set at the end of the
/// TCP stream too) or a record is not whole yet; `Pending` when the socket
/// has nothing. Output the session made (alerts, handshake messages,
/// tickets) is sent or kept.
pub(super) fn read_once(
    tls: &mut TlsSession,
    sock: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    INPUT.with_borrow_mut(|input| {
        let used = tls.partial_in().len();
        if input.len() < used + RECORD_ROOM {
            input.resize(used + RECORD_ROOM, 0);
        }
        input[..used].copy_from_slice(tls.partial_in());
        let n = match Pin::new(&mut *sock).poll_read(cx, &mut input[used..]) {
            Poll::Ready(Ok(0)) => {
                tls.end_of_stream();
                return Poll::Ready(Ok(0));
            }
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        OUTPUT.with_borrow_mut(|out| {
            out.clear();
            let absorbed = tls.absorb(&mut input[..used + n], buf, out);
            send(tls, sock, cx, out);
            Poll::Ready(absorbed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
        })
    })
}

/// Send `out` (fresh ciphertext) after whatever the session still owes,
/// as far as the socket takes it now; the session keeps the rest.
fn send(tls: &mut TlsSession, sock: &mut TcpStream, cx: &mut Context<'_>, out: &[u8]) {
    let mut at = 0;
    if let Poll::Ready(Ok(())) = flush_unsent(tls, sock, cx) {
        while at < out.len() {
            match Pin::new(&mut *sock).poll_write(cx, &out[at..]) {
                Poll::Ready(Ok(n)) if n > 0 => at += n,
                // An error shows again at the next write or read.
                _ => break,
            }
        }
    }
    tls.keep_unsent(&out[at..]);
}

impl TlsStream {
    pub(super) fn new(sock: TcpStream, tls: Box<TlsSession>) -> TlsStream {
        TlsStream {
            sock,
            tls: Some(tls),
        }
    }

    /// Rebuild a stream that arrived as [`Detached::Tls`] on its home shard.
    pub fn resume(fd: OwnedFd, tls: Box<TlsSession>) -> TlsStream {
        TlsStream::new(crate::transport::tcp_from(fd), tls)
    }

    /// The verified client certificate chain, if the client sent one.
    pub(super) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.tls.as_ref()?.peer_certificates()
    }

    fn parts(&mut self) -> io::Result<(&mut TlsSession, &mut TcpStream)> {
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
        let kept = tls.take_plain(buf);
        if kept > 0 {
            return Poll::Ready(Ok(kept));
        }
        if tls.peer_closed() {
            return Poll::Ready(Ok(0));
        }
        // Answers owed to the peer (alerts, key updates) go out first.
        if let Poll::Ready(Err(e)) = flush_unsent(tls, sock, cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            match read_once(tls, sock, cx, buf) {
                Poll::Ready(Ok(0)) if !tls.peer_closed() => continue, // a record not whole yet
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
        // most one chunk's worth waits here.
        match flush_unsent(tls, sock, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let n = buf.len().min(WRITE_CHUNK);
        OUTPUT.with_borrow_mut(|out| {
            out.clear();
            if let Err(e) = tls.encrypt(&buf[..n], out) {
                return Poll::Ready(Err(e));
            }
            // What the socket does not take waits in the session (the
            // waker is registered for writability).
            send(tls, sock, cx, out);
            Poll::Ready(Ok(n))
        })
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.parts() {
            Ok((tls, sock)) => flush_unsent(tls, sock, cx),
            Err(_) => Poll::Ready(Ok(())),
        }
    }

    fn write_now(&mut self, buf: &[u8]) {
        let fd = self.sock.as_raw_fd();
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        OUTPUT.with_borrow_mut(|out| {
            out.clear();
            out.extend_from_slice(tls.unsent());
            if !buf.is_empty() {
                let _ = tls.encrypt(buf, out);
            }
            let _ = tls.close_notify(out);
            crate::transport::send_now(fd, out);
        });
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
