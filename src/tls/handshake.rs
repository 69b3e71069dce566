//! The server side of a TLS handshake, on the accepting shard, before any
//! MQTT byte. Called by the accept path of a `tls` listener
//! ([`crate::listener`]), which races it against `mqtt.connect_timeout_s`,
//! counts it and logs failures rate-limited.

use super::stream::{flush_tls, read_records, TlsStream};
use crate::config::IdentitySource;
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
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
    let mut tls = Box::new(ServerConnection::new(config).map_err(io::Error::other)?);
    poll_fn(|cx| loop {
        let flushed = flush_tls(&mut tls, &mut sock, cx);
        if let Poll::Ready(Err(e)) = flushed {
            return Poll::Ready(Err(e));
        }
        if !tls.is_handshaking() {
            // Done; whatever output is left (tickets) goes with later writes.
            return Poll::Ready(Ok(()));
        }
        if flushed.is_pending() {
            return Poll::Pending;
        }
        match read_records(&mut tls, &mut sock, cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
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
