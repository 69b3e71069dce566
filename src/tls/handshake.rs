//! The server side of a TLS handshake, on the accepting shard, before any
//! MQTT byte. Called by the accept path of a `tls` listener
//! ([`crate::listener`]), which races it against `mqtt.connect_timeout_s`,
//! counts it and logs failures rate-limited.

use super::session::TlsSession;
use super::stream::{flush_unsent, read_once, TlsStream};
use crate::config::IdentitySource;
use glommio::net::TcpStream;
use rustls::ServerConfig;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;

/// Run the handshake; returns the stream, ready for MQTT bytes, and the
/// identity of the verified client certificate (as `identity` says).
/// Application data that came with the client's last flight stays in the
/// stream for the first read.
pub async fn handshake(
    mut sock: TcpStream,
    config: Arc<ServerConfig>,
    identity: IdentitySource,
) -> io::Result<(TlsStream, Option<Box<str>>)> {
    let mut tls = TlsSession::new(config).map_err(io::Error::other)?;
    poll_fn(|cx| loop {
        // Our flight goes out before we wait for the client's.
        match flush_unsent(&mut tls, &mut sock, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if !tls.is_handshaking() {
            return Poll::Ready(Ok(()));
        }
        // No plaintext can come before the handshake ends; what comes
        // with the client's last flight is kept for the first read.
        match read_once(&mut tls, &mut sock, cx, &mut []) {
            Poll::Ready(Ok(_)) if tls.peer_closed() => {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => {
                // The alert rustls made, best effort.
                let _ = flush_unsent(&mut tls, &mut sock, cx);
                return Poll::Ready(Err(e));
            }
            Poll::Pending => return Poll::Pending,
        }
    })
    .await?;
    let stream = TlsStream::new(sock, tls);
    let name = stream
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| super::identity::identity(cert, identity))
        .map(String::into_boxed_str);
    Ok((stream, name))
}
