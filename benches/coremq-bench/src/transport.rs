//! Optional TLS and WebSocket layers between a client's MQTT bytes and its
//! socket: `--tls`, `--ws`, and both together (wss).
//!
//! Owns [`Setup`] (what every connection of a worker shares: the rustls
//! client configuration, the name to verify, the WebSocket upgrade URL),
//! [`Layers`] (one connection's rustls session and WebSocket state, used
//! sans-IO: bytes in, bytes out) and [`Conn`] (a socket and its layers while
//! the client's async handshake runs). Called by `client.rs`: a client opens
//! a [`Conn`] (TLS handshake, then the WebSocket upgrade), does its MQTT
//! handshake through it, and then keeps the [`Layers`] in its `Client`: its
//! read task feeds what the socket gave to [`Layers::open`], its writers
//! [`Layers::seal`] the outbox and send [`Layers::wire`] as they send a
//! plain outbox. A plain TCP client has no `Layers` and pays nothing.
//!
//! Every client of a run makes a full TLS handshake: session resumption is
//! off, so the connect phase measures what a fleet of distinct devices costs.

use crate::args::Args;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::HandshakeError;
use tungstenite::{ClientRequestBuilder, Message, WebSocket};

/// The WebSocket subprotocol MQTT uses (MQTT 3.1.1 section 6, MQTT 5 section 6).
const SUBPROTOCOL: &str = "mqtt";

/// What all connections of a run share; built once per process.
pub struct Setup {
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// `ws://host:port/path` (or `wss://`) when `--ws`.
    ws_url: Option<String>,
}

impl Setup {
    /// `None` for plain TCP. An error names the flag or the file at fault.
    pub fn from_args(a: &Args) -> Result<Option<Arc<Setup>>, String> {
        if !a.tls && !a.ws {
            return Ok(None);
        }
        let tls = if a.tls {
            let name = a.server_name.as_deref().unwrap_or(&a.host).to_string();
            let name = ServerName::try_from(name.clone())
                .map_err(|e| format!("--server-name '{name}': {e}"))?;
            Some((Arc::new(client_config(a)?), name))
        } else {
            None
        };
        let ws_url = if a.ws {
            if !a.ws_path.starts_with('/') {
                return Err(format!("--ws-path '{}' must start with '/'", a.ws_path));
            }
            let scheme = if a.tls { "wss" } else { "ws" };
            Some(format!("{scheme}://{}:{}{}", a.host, a.port, a.ws_path))
        } else {
            None
        };
        Ok(Some(Arc::new(Setup { tls, ws_url })))
    }

    /// What the report calls this transport.
    pub fn name(a: &Args) -> &'static str {
        match (a.tls, a.ws) {
            (false, false) => "tcp",
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }
}

fn pem_error(flag: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{flag} {}: {e}", path.display())
}

/// The rustls client configuration `--cafile`/`--insecure`, `--cert`/`--key` ask for.
fn client_config(a: &Args) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match (&a.cafile, a.insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider))),
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| pem_error("--cafile", ca, e))?
            {
                let cert = cert.map_err(|e| pem_error("--cafile", ca, e))?;
                roots.add(cert).map_err(|e| pem_error("--cafile", ca, e))?;
            }
            if roots.is_empty() {
                return Err(pem_error("--cafile", ca, "no certificate in it"));
            }
            builder.with_root_certificates(roots)
        }
        (None, false) => return Err("--tls needs --cafile PEM (or --insecure)".into()),
    };
    let mut config = match (&a.cert, &a.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error("--cert", cert, e))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("--key", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| pem_error("--cert", cert, e))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".into()),
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// `--insecure`: any certificate is accepted, but the handshake signatures
/// are still checked (the peer proves it holds the key it presented).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        msg: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// In-memory byte pipe under tungstenite: it reads what TLS (or the socket)
/// delivered and writes frames for TLS (or the socket). Reading an empty
/// pipe is `WouldBlock`, which tungstenite passes up as "need more bytes".
#[derive(Default)]
pub struct Pipe {
    rx: Vec<u8>,
    /// How much of `rx` tungstenite has read.
    at: usize,
    tx: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.rx[self.at..];
        if rest.is_empty() {
            self.rx.clear();
            self.at = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// One connection's TLS session and WebSocket state (either may be absent).
pub struct Layers {
    tls: Option<ClientConnection>,
    ws: Option<WebSocket<Pipe>>,
    /// Bytes for the socket, in order; the owner sends them.
    pub wire: Vec<u8>,
}

impl Layers {
    fn new(setup: &Setup) -> io::Result<Layers> {
        let tls = match &setup.tls {
            Some((config, name)) => {
                let mut conn =
                    ClientConnection::new(config.clone(), name.clone()).map_err(other)?;
                // The client's own outbox bound (OUTBOX_HIGH) limits what waits.
                conn.set_buffer_limit(None);
                Some(conn)
            }
            None => None,
        };
        Ok(Layers {
            tls,
            ws: None,
            wire: Vec::new(),
        })
    }

    /// Encode MQTT bytes for the socket (one binary frame, encrypted) into [`Layers::wire`].
    pub fn seal(&mut self, mqtt: &[u8]) -> io::Result<()> {
        match self.ws.as_mut() {
            Some(ws) => {
                ws.send(Message::binary(mqtt.to_vec())).map_err(other)?;
                let frames = std::mem::take(&mut ws.get_mut().tx);
                tls_seal(&mut self.tls, &frames, &mut self.wire)
            }
            None => tls_seal(&mut self.tls, mqtt, &mut self.wire),
        }
    }

    /// Take bytes read from the socket; append the MQTT bytes they carry to
    /// `mqtt`. Answers (a pong, a TLS alert) go to [`Layers::wire`].
    pub fn open(&mut self, raw: &[u8], mqtt: &mut BytesMut) -> io::Result<()> {
        let Some(ws) = self.ws.as_mut() else {
            return tls_open(&mut self.tls, raw, &mut self.wire, |b| {
                mqtt.extend_from_slice(b)
            });
        };
        tls_open(&mut self.tls, raw, &mut self.wire, |b| {
            ws.get_mut().rx.extend_from_slice(b)
        })?;
        let res = ws_read(ws, mqtt);
        let answers = std::mem::take(&mut ws.get_mut().tx);
        tls_seal(&mut self.tls, &answers, &mut self.wire)?;
        res
    }
}

/// Every complete message tungstenite can decode now: binary payloads go to
/// `mqtt`; it answers pings itself; a close or a text frame ends the link.
fn ws_read(ws: &mut WebSocket<Pipe>, mqtt: &mut BytesMut) -> io::Result<()> {
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => mqtt.extend_from_slice(&b),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Close(_)) => return Err(io::ErrorKind::ConnectionAborted.into()),
            Ok(Message::Text(_)) => {
                return Err(other(io::Error::other("text frame: MQTT is binary")))
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(())
            }
            Err(e) => return Err(other(e)),
        }
    }
}

/// Encrypt `plain` into `wire` (or copy it there without TLS).
fn tls_seal(
    tls: &mut Option<ClientConnection>,
    plain: &[u8],
    wire: &mut Vec<u8>,
) -> io::Result<()> {
    let Some(conn) = tls.as_mut() else {
        wire.extend_from_slice(plain);
        return Ok(());
    };
    if !plain.is_empty() {
        conn.writer().write_all(plain)?;
    }
    drain_tls(conn, wire)
}

/// Move every TLS record rustls has queued into `wire`.
fn drain_tls(conn: &mut ClientConnection, wire: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(wire)?;
    }
    Ok(())
}

/// Decrypt `raw` and hand the plaintext to `put` (or `raw` itself without
/// TLS); records rustls wants to send back (alerts, key updates) go to `wire`.
fn tls_open(
    tls: &mut Option<ClientConnection>,
    mut raw: &[u8],
    wire: &mut Vec<u8>,
    mut put: impl FnMut(&[u8]),
) -> io::Result<()> {
    let Some(conn) = tls.as_mut() else {
        put(raw);
        return Ok(());
    };
    let mut plain = [0u8; 16 << 10];
    loop {
        if !raw.is_empty() {
            conn.read_tls(&mut raw)?;
        }
        let state = conn.process_new_packets();
        drain_tls(conn, wire)?;
        state.map_err(other)?;
        loop {
            match conn.reader().read(&mut plain) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => put(&plain[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if raw.is_empty() {
            return Ok(());
        }
    }
}

/// A socket and its layers during a client's (async) handshake.
pub struct Conn {
    pub stream: TcpStream,
    pub layers: Option<Box<Layers>>,
}

impl Conn {
    /// Wrap a connected socket: the TLS handshake, then the WebSocket
    /// upgrade, as `setup` asks (nothing at all for plain TCP).
    pub async fn open(stream: TcpStream, setup: Option<&Setup>) -> io::Result<Conn> {
        let mut conn = Conn {
            stream,
            layers: None,
        };
        let Some(setup) = setup else {
            return Ok(conn);
        };
        conn.layers = Some(Box::new(Layers::new(setup)?));
        conn.tls_handshake().await?;
        if let Some(url) = &setup.ws_url {
            conn.ws_upgrade(url).await?;
        }
        Ok(conn)
    }

    /// Send `mqtt` (through the layers) and wait until the socket took it.
    pub async fn send(&mut self, mqtt: &[u8]) -> io::Result<()> {
        match self.layers.as_deref_mut() {
            None => self.stream.write_all(mqtt).await,
            Some(l) => {
                l.seal(mqtt)?;
                let out = std::mem::take(&mut l.wire);
                self.stream.write_all(&out).await
            }
        }
    }

    /// Read the socket once; append the MQTT bytes it carried to `acc`.
    pub async fn recv(&mut self, acc: &mut BytesMut) -> io::Result<()> {
        // Small: it lives in every client task's future, plain ones too.
        let mut buf = [0u8; 1024];
        let n = self.read_raw(&mut buf).await?;
        match self.layers.as_deref_mut() {
            None => acc.extend_from_slice(&buf[..n]),
            Some(l) => {
                l.open(&buf[..n], acc)?;
                self.flush_wire().await?;
            }
        }
        Ok(())
    }

    async fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream.read(buf).await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => Ok(n),
        }
    }

    async fn flush_wire(&mut self) -> io::Result<()> {
        if let Some(l) = self.layers.as_deref_mut() {
            if !l.wire.is_empty() {
                let out = std::mem::take(&mut l.wire);
                self.stream.write_all(&out).await?;
            }
        }
        Ok(())
    }

    async fn tls_handshake(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            let Some(l) = self.layers.as_deref_mut() else {
                return Ok(());
            };
            let Some(tls) = l.tls.as_mut() else {
                return Ok(());
            };
            drain_tls(tls, &mut l.wire)?;
            if !tls.is_handshaking() {
                // The client's last flight goes out with its first MQTT bytes.
                return Ok(());
            }
            self.flush_wire().await?;
            let n = self.read_raw(&mut buf).await?;
            let Some(l) = self.layers.as_deref_mut() else {
                return Ok(());
            };
            // No application data arrives before the handshake ends.
            tls_open(&mut l.tls, &buf[..n], &mut l.wire, |_| {})?;
        }
    }

    /// HTTP upgrade with tungstenite's client handshake over a [`Pipe`];
    /// tungstenite checks the 101 answer, including that the broker chose
    /// the `mqtt` subprotocol.
    async fn ws_upgrade(&mut self, url: &str) -> io::Result<()> {
        let uri = url.parse().map_err(other)?;
        let req = ClientRequestBuilder::new(uri)
            .with_sub_protocol(SUBPROTOCOL)
            .into_client_request()
            .map_err(other)?;
        let mut mid = ClientHandshake::start(Pipe::default(), req, None).map_err(other)?;
        let mut buf = vec![0u8; 4096];
        loop {
            match mid.handshake() {
                Ok((ws, _response)) => {
                    if let Some(l) = self.layers.as_deref_mut() {
                        l.ws = Some(ws);
                    }
                    return Ok(());
                }
                Err(HandshakeError::Interrupted(next)) => mid = next,
                Err(HandshakeError::Failure(e)) => return Err(other(e)),
            }
            let pipe = mid.get_mut().get_mut();
            let request = std::mem::take(&mut pipe.tx);
            if !request.is_empty() {
                if let Some(l) = self.layers.as_deref_mut() {
                    tls_seal(&mut l.tls, &request, &mut l.wire)?;
                }
                self.flush_wire().await?;
                continue;
            }
            let n = self.read_raw(&mut buf).await?;
            if let Some(l) = self.layers.as_deref_mut() {
                let rx = &mut mid.get_mut().get_mut().rx;
                tls_open(&mut l.tls, &buf[..n], &mut l.wire, |b| {
                    rx.extend_from_slice(b)
                })?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::Role;

    /// A client `Layers` with an upgraded WebSocket (no TLS), and the
    /// broker's end of the same WebSocket, both over in-memory pipes.
    fn ws_pair() -> (Layers, WebSocket<Pipe>) {
        let client = Layers {
            tls: None,
            ws: Some(WebSocket::from_raw_socket(
                Pipe::default(),
                Role::Client,
                None,
            )),
            wire: Vec::new(),
        };
        let server = WebSocket::from_raw_socket(Pipe::default(), Role::Server, None);
        (client, server)
    }

    /// What the broker's end wrote, taken off its pipe.
    fn sent(server: &mut WebSocket<Pipe>) -> Vec<u8> {
        std::mem::take(&mut server.get_mut().tx)
    }

    #[test]
    fn frames_and_packets_need_not_line_up() {
        let (mut client, mut server) = ws_pair();
        // PINGRESP twice in one frame, then a PUBLISH split over two frames.
        let publish = [0x30, 0x05, 0x00, 0x01, b't', b'h', b'i'];
        server
            .send(Message::binary(vec![0xd0, 0, 0xd0, 0]))
            .unwrap();
        server.send(Message::binary(publish[..3].to_vec())).unwrap();
        let mut mqtt = BytesMut::new();
        let wire = sent(&mut server);
        // Bytes arrive a few at a time, cutting frame headers too.
        for piece in wire.chunks(3) {
            client.open(piece, &mut mqtt).unwrap();
        }
        server.send(Message::binary(publish[3..].to_vec())).unwrap();
        client.open(&sent(&mut server), &mut mqtt).unwrap();
        let mut want = vec![0xd0, 0, 0xd0, 0];
        want.extend_from_slice(&publish);
        assert_eq!(&mqtt[..], &want[..]);
        assert!(client.wire.is_empty(), "nothing to answer");
    }

    #[test]
    fn sealed_bytes_are_one_masked_binary_frame_and_pings_get_pongs() {
        let (mut client, mut server) = ws_pair();
        client.seal(&[0xc0, 0x00]).unwrap();
        let frame = std::mem::take(&mut client.wire);
        assert_eq!(frame[0], 0x82, "FIN + binary");
        assert_ne!(frame[1] & 0x80, 0, "a client masks its frames");
        server.get_mut().rx.extend_from_slice(&frame);
        assert_eq!(server.read().unwrap(), Message::binary(vec![0xc0, 0x00]));
        server.send(Message::Ping(vec![7].into())).unwrap();
        let mut mqtt = BytesMut::new();
        client.open(&sent(&mut server), &mut mqtt).unwrap();
        assert!(mqtt.is_empty());
        server.get_mut().rx.extend_from_slice(&client.wire);
        assert_eq!(server.read().unwrap(), Message::Pong(vec![7].into()));
    }

    #[test]
    fn close_and_text_frames_end_the_connection() {
        let (mut client, mut server) = ws_pair();
        server.send(Message::text("hello")).unwrap();
        let err = client
            .open(&sent(&mut server), &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let (mut client, mut server) = ws_pair();
        server.close(None).unwrap();
        let err = client
            .open(&sent(&mut server), &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn pipe_reads_what_was_put_then_would_block() {
        let mut p = Pipe::default();
        p.rx.extend_from_slice(b"abcde");
        let mut buf = [0u8; 3];
        assert_eq!(p.read(&mut buf).unwrap(), 3);
        assert_eq!(p.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"de");
        let e = p.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(p.rx.is_empty(), "consumed bytes are dropped");
    }
}
