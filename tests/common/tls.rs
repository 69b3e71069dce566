//! TLS test support: a certificate authority made in the test (rcgen) that
//! writes PEM files, a `[listener.tls]` built from them, and a blocking MQTT
//! client over rustls.

use super::WAIT;
use bytes::BytesMut;
use coremq::codec::{self, ConnAck, Connect, Packet, ProtocolVersion, Side};
use coremq::config::{ClientAuth, IdentitySource, ListenerConfig, ListenerKind, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh directory for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("coremq-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA writing its files into `dir`.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
    /// The CA certificate (PEM).
    pub file: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, issuer.pem()).unwrap();
        Ca {
            issuer,
            dir: dir.to_path_buf(),
            name: name.into(),
            file,
        }
    }

    fn issue(&self, file: &str, p: CertificateParams) -> Pem {
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let pem = Pem {
            cert: self.dir.join(format!("{}-{file}.pem", self.name)),
            key: self.dir.join(format!("{}-{file}.key", self.name)),
        };
        std::fs::write(&pem.cert, cert.pem()).unwrap();
        std::fs::write(&pem.key, key.serialize_pem()).unwrap();
        pem
    }

    /// A server certificate for localhost / 127.0.0.1.
    pub fn server(&self) -> Pem {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue("server", p)
    }

    /// A client certificate with this common name.
    pub fn client(&self, cn: &str) -> Pem {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&format!("client-{cn}"), p)
    }
}

/// A `tls` listener on 127.0.0.1:0 serving `server`, checking client
/// certificates against `ca` as `auth` says.
pub fn listener(server: &Pem, ca: Option<&Ca>, auth: ClientAuth) -> ListenerConfig {
    ListenerConfig {
        kind: ListenerKind::Tls,
        bind: "127.0.0.1:0".into(),
        tls: Some(TlsConfig {
            cert_file: server.cert.display().to_string(),
            key_file: server.key.display().to_string(),
            ca_file: ca.map(|c| c.file.display().to_string()).unwrap_or_default(),
            client_auth: auth,
            identity_as_username: IdentitySource::None,
            ..TlsConfig::default()
        }),
        ..ListenerConfig::default()
    }
}

/// Which TLS versions a client offers.
#[derive(Debug, Clone, Copy)]
pub enum Version {
    V12,
    V13,
}

/// A blocking MQTT 3.1.1 client over TLS.
pub struct TlsClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: BytesMut,
}

impl TlsClient {
    /// Open a TLS connection trusting `ca_file`, with a client certificate
    /// if given; Err if the handshake fails.
    pub fn open(
        addr: SocketAddr,
        ca_file: &Path,
        client: Option<&Pem>,
        version: Version,
    ) -> Result<TlsClient, String> {
        TlsClient::open_inner(addr, &[], ca_file, client, version)
    }

    /// [`open`](Self::open) after sending `prefix` (a PROXY header) in clear.
    pub fn open_after(
        addr: SocketAddr,
        prefix: &[u8],
        ca_file: &Path,
        version: Version,
    ) -> Result<TlsClient, String> {
        TlsClient::open_inner(addr, prefix, ca_file, None, version)
    }

    fn open_inner(
        addr: SocketAddr,
        prefix: &[u8],
        ca_file: &Path,
        client: Option<&Pem>,
        version: Version,
    ) -> Result<TlsClient, String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca_file).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let versions: &[&rustls::SupportedProtocolVersion] = match version {
            Version::V12 => &[&rustls::version::TLS12],
            Version::V13 => &[&rustls::version::TLS13],
        };
        let b =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots);
        let config = match client {
            Some(p) => {
                let chain = CertificateDer::pem_file_iter(&p.cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
                b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&p.key).unwrap())
                    .unwrap()
            }
            None => b.with_no_client_auth(),
        };
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.write_all(prefix).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        let end = Instant::now() + WAIT;
        while tls.conn.is_handshaking() {
            match tls.conn.complete_io(&mut tls.sock) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) && Instant::now() < end => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(TlsClient {
            tls,
            buf: BytesMut::new(),
        })
    }

    /// The TLS stream under the client (for a WebSocket over it).
    pub fn into_stream(self) -> StreamOwned<ClientConnection, TcpStream> {
        self.tls
    }

    /// The TLS version agreed on.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.conn.protocol_version()
    }

    pub fn send(&mut self, p: &Packet) -> Result<(), String> {
        let mut out = Vec::new();
        codec::encode(p, ProtocolVersion::V311, &mut out);
        self.tls.write_all(&out).map_err(|e| e.to_string())?;
        self.tls.flush().map_err(|e| e.to_string())
    }

    /// The next packet within `within`; Err when the connection ends or fails.
    pub fn recv_within(&mut self, within: Duration) -> Result<Option<Packet>, String> {
        let end = Instant::now() + within;
        loop {
            let frozen = self.buf.clone().freeze();
            if let Some((p, used)) =
                codec::decode(&frozen, 1 << 28, Side::Client, ProtocolVersion::V311)
                    .map_err(|e| e.to_string())?
            {
                let _ = self.buf.split_to(used);
                return Ok(Some(p));
            }
            if Instant::now() > end {
                return Ok(None);
            }
            let mut tmp = [0u8; 16384];
            match self.tls.read(&mut tmp) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// CONNECT and the CONNACK, or why none came.
    pub fn mqtt_connect(&mut self, connect: Connect) -> Result<ConnAck, String> {
        self.send(&Packet::Connect(Box::new(connect)))?;
        match self.recv_within(WAIT)? {
            Some(Packet::ConnAck(a)) => Ok(a),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    /// Connect over TLS and MQTT: the CONNACK, or why not.
    pub fn connect(
        addr: SocketAddr,
        ca_file: &Path,
        client: Option<&Pem>,
        version: Version,
        id: &str,
    ) -> Result<(TlsClient, ConnAck), String> {
        let mut c = TlsClient::open(addr, ca_file, client, version)?;
        let ack = c.mqtt_connect(super::connect_packet(id, true))?;
        Ok((c, ack))
    }

    /// SUBSCRIBE one filter at QoS 0; true once the SUBACK grants it.
    pub fn subscribe(&mut self, filter: &str) -> bool {
        let sub = codec::Subscribe {
            pkid: 1,
            filters: vec![codec::SubscribeFilter::new(
                filter.to_string(),
                codec::QoS::AtMostOnce,
            )],
            props: None,
        };
        self.send(&Packet::Subscribe(sub)).is_ok()
            && matches!(self.recv_within(WAIT), Ok(Some(Packet::SubAck(s))) if s.codes.len() == 1)
    }

    /// PUBLISH at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        self.send(&Packet::Publish(codec::Publish {
            dup: false,
            qos: codec::QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            pkid: 0,
            payload: bytes::Bytes::copy_from_slice(payload),
            props: None,
        }))
    }

    /// The next PUBLISH's (topic, payload) within WAIT.
    pub fn recv_publish(&mut self) -> Option<(String, Vec<u8>)> {
        match self.recv_within(WAIT) {
            Ok(Some(Packet::Publish(p))) => Some((p.topic.to_string(), p.payload.to_vec())),
            _ => None,
        }
    }

    /// PINGREQ answered by PINGRESP.
    pub fn ping(&mut self) -> bool {
        self.send(&Packet::PingReq).is_ok()
            && matches!(self.recv_within(WAIT), Ok(Some(Packet::PingResp)))
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
