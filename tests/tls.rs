//! TLS listeners over real sockets: TLS 1.2 and 1.3, clients homed on the
//! other shard (the rustls session moves with the socket), client
//! certificates (require, optional), the certificate identity as a
//! credential, reloading the certificate, a bad certificate file at start,
//! and mosquitto_pub/sub over TLS.

mod common;

use common::tls::{Ca, Pem, TlsClient, Version};
use common::{config, connect_packet, start_with};
use coremq::codec::Reason;
use coremq::config::{Anonymous, ClientAuth, IdentitySource};
use coremq::{Broker, Hooks, StartError};
use std::path::Path;

/// A broker with one TLS listener and `shards` shards.
fn tls_broker(
    shards: usize,
    server: &Pem,
    ca: Option<&Ca>,
    auth: ClientAuth,
) -> common::TestBroker {
    let mut cfg = config(shards);
    cfg.listener[0] = common::tls::listener(server, ca, auth);
    start_with(cfg, Hooks::new())
}

#[test]
fn tls_12_and_13_carry_messages_between_clients_homed_on_any_shard() {
    let dir = common::tls::temp_dir("tls-versions");
    let ca = Ca::new(&dir, "main");
    let server = ca.server();
    for shards in [1, 2] {
        let b = tls_broker(shards, &server, None, ClientAuth::None);
        for version in [Version::V12, Version::V13] {
            // A subscriber and a publisher on every shard: with two shards,
            // each pair has one client whose socket is handed over.
            for sub_home in 0..shards {
                for pub_home in 0..shards {
                    let topic = format!("t/{version:?}/{sub_home}/{pub_home}");
                    let sub_id = b.id_on(&format!("sub-{version:?}-{pub_home}"), sub_home);
                    let (mut sub, ack) =
                        TlsClient::connect(b.addr, &ca.file, None, version, &sub_id).unwrap();
                    assert_eq!(ack.code, Reason::SUCCESS);
                    let want = match version {
                        Version::V12 => rustls::ProtocolVersion::TLSv1_2,
                        Version::V13 => rustls::ProtocolVersion::TLSv1_3,
                    };
                    assert_eq!(sub.version(), Some(want));
                    assert!(sub.subscribe(&topic), "SUBACK over TLS");
                    let pub_id = b.id_on(&format!("pub-{version:?}-{sub_home}"), pub_home);
                    let (mut publ, ack) =
                        TlsClient::connect(b.addr, &ca.file, None, version, &pub_id).unwrap();
                    assert_eq!(ack.code, Reason::SUCCESS);
                    // Larger than one TLS record, to cross record boundaries.
                    let payload = vec![b'x'; 40_000];
                    publ.publish(&topic, &payload).unwrap();
                    let got = sub.recv_publish().expect("message over TLS");
                    assert_eq!(
                        (got.0.as_str(), got.1.len()),
                        (topic.as_str(), payload.len())
                    );
                    assert!(publ.ping() && sub.ping());
                }
            }
        }
        let m = b.wait_metrics(|m| m.tls_handshakes >= 4 * (shards * shards) as u64);
        assert_eq!(m.tls_handshakes, 4 * (shards * shards) as u64, "{m:?}");
        assert_eq!(m.tls_handshake_failures, 0);
        if shards == 2 {
            assert!(m.handoffs_received > 0, "some TLS sockets were handed over");
        }
    }
}

/// A connection the broker ends with nothing left to send (a 3.1.1
/// takeover) still gets a TLS close_notify, so the client can tell a clean
/// close from a cut connection (rustls reads end with Ok(0), not an
/// unexpected-EOF error).
#[test]
fn a_takeover_ends_the_tls_session_with_close_notify() {
    let dir = common::tls::temp_dir("tls-close");
    let ca = Ca::new(&dir, "main");
    for shards in [1, 2] {
        let b = tls_broker(shards, &ca.server(), None, ClientAuth::None);
        for home in 0..shards {
            let id = b.id_on("taken", home);
            let (mut old, _) =
                TlsClient::connect(b.addr, &ca.file, None, Version::V13, &id).unwrap();
            let (_new, _) = TlsClient::connect(b.addr, &ca.file, None, Version::V13, &id).unwrap();
            assert_eq!(
                old.recv_within(common::WAIT),
                Err("closed".to_string()),
                "shard {home}"
            );
        }
    }
}

/// Whether the broker closes `sock` (an alert may come first; then the end
/// or a reset) within 20 reads of `WAIT` each, rather than keeping it open.
fn closed_by_peer(sock: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    sock.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut sink = [0u8; 512];
    (0..20).any(|_| match sock.read(&mut sink) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    })
}

/// Garbage where TLS records should be — after the handshake, and in the
/// middle of a record — closes that connection (a TLS alert, best effort)
/// and nothing else: the broker and its other clients go on.
#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    use std::io::Write;
    let dir = common::tls::temp_dir("tls-garbage");
    let ca = Ca::new(&dir, "main");
    for shards in [1, 2] {
        let b = tls_broker(shards, &ca.server(), None, ClientAuth::None);
        let (mut bystander, _) =
            TlsClient::connect(b.addr, &ca.file, None, Version::V13, &b.id_on("by", 0)).unwrap();
        for (home, garbage) in [
            (0, vec![0x17u8, 0x03, 0x03, 0x00, 0x20, 1, 2, 3]),
            (shards - 1, vec![0xffu8; 300]),
            (0, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ] {
            let (c, _) =
                TlsClient::connect(b.addr, &ca.file, None, Version::V12, &b.id_on("g", home))
                    .unwrap();
            let mut tls = c.into_stream();
            tls.sock.write_all(&garbage).unwrap();
            if garbage.len() == 8 {
                // The rest of the record, 32 bytes that do not decrypt.
                tls.sock.write_all(&[9u8; 29]).unwrap();
            }
            assert!(
                closed_by_peer(&mut tls.sock),
                "shard {home}: the connection stays open"
            );
        }
        assert!(bystander.ping(), "the other client is served");
        let m = b.wait_metrics(|m| m.transport_errors >= 3);
        assert_eq!(m.transport_errors, 3, "each bad connection counted once");
    }
}

/// A ClientHello that claims 16 MB and keeps coming: refused at its header
/// (rustls takes handshake messages up to 64 KB), so the broker never holds
/// more than that of an incomplete one.
#[test]
fn an_endless_handshake_message_is_refused() {
    use std::io::Write;
    let dir = common::tls::temp_dir("tls-endless");
    let ca = Ca::new(&dir, "main");
    let b = tls_broker(1, &ca.server(), None, ClientAuth::None);
    let mut sock = std::net::TcpStream::connect(b.addr).unwrap();
    let mut record = vec![0x16u8, 0x03, 0x01, 0x40, 0x00];
    record.extend([0x01, 0xff, 0xff, 0xff]);
    record.resize(5 + 16384, 0);
    let mut sent = 0;
    for _ in 0..64 {
        if sock.write_all(&record).is_err() {
            break;
        }
        sent += record.len();
        record.truncate(5);
        record.resize(5 + 16384, 0);
    }
    assert!(
        closed_by_peer(&mut sock),
        "still open after {sent} bytes of one ClientHello"
    );
    let m = b.wait_metrics(|m| m.tls_handshake_failures >= 1);
    assert_eq!(m.tls_handshake_failures, 1);
}

#[test]
fn a_client_that_does_not_trust_the_server_fails_and_is_counted() {
    let dir = common::tls::temp_dir("tls-untrusted");
    let (ca, other) = (Ca::new(&dir, "main"), Ca::new(&dir, "other"));
    let b = tls_broker(1, &ca.server(), None, ClientAuth::None);
    assert!(TlsClient::open(b.addr, &other.file, None, Version::V13).is_err());
    // Not TLS at all: a plain MQTT CONNECT.
    let mut plain = common::Client::raw(b.addr);
    plain.send(&coremq::codec::Packet::Connect(Box::new(connect_packet(
        "plain", true,
    ))));
    assert!(plain.closed(), "plain MQTT on a TLS listener is closed");
    let m = b.wait_metrics(|m| m.tls_handshake_failures >= 2);
    assert_eq!(m.tls_handshake_failures, 2, "{m:?}");
}

#[test]
fn mtls_require_refuses_clients_without_a_certificate_from_the_ca() {
    let dir = common::tls::temp_dir("tls-require");
    let (ca, rogue) = (Ca::new(&dir, "main"), Ca::new(&dir, "rogue"));
    let (good, bad) = (ca.client("dev-1"), rogue.client("dev-1"));
    for shards in [1, 2] {
        let b = tls_broker(shards, &ca.server(), Some(&ca), ClientAuth::Require);
        for v in [Version::V12, Version::V13] {
            let id = b.id_on("m", shards - 1);
            let (_c, ack) = TlsClient::connect(b.addr, &ca.file, Some(&good), v, &id).unwrap();
            assert_eq!(ack.code, Reason::SUCCESS, "{v:?}");
            // TLS 1.3 clients learn of the refusal only at their first read.
            assert!(
                TlsClient::connect(b.addr, &ca.file, None, v, "none").is_err(),
                "{v:?}"
            );
            assert!(
                TlsClient::connect(b.addr, &ca.file, Some(&bad), v, "bad").is_err(),
                "{v:?}"
            );
        }
        let m = b.wait_metrics(|m| m.tls_handshake_failures >= 4);
        assert_eq!(
            (m.tls_handshakes, m.tls_handshake_failures),
            (2, 4),
            "{m:?}"
        );
    }
}

#[test]
fn mtls_optional_lets_clients_without_a_certificate_in_but_not_bad_ones() {
    let dir = common::tls::temp_dir("tls-optional");
    let (ca, rogue) = (Ca::new(&dir, "main"), Ca::new(&dir, "rogue"));
    let b = tls_broker(2, &ca.server(), Some(&ca), ClientAuth::Optional);
    let v = Version::V13;
    let (_a, ack) = TlsClient::connect(b.addr, &ca.file, None, v, "anon").unwrap();
    assert_eq!(ack.code, Reason::SUCCESS);
    let (_c, ack) = TlsClient::connect(b.addr, &ca.file, Some(&ca.client("c")), v, "cert").unwrap();
    assert_eq!(ack.code, Reason::SUCCESS);
    let bad = rogue.client("c");
    assert!(TlsClient::connect(b.addr, &ca.file, Some(&bad), v, "bad").is_err());
}

#[test]
fn the_certificate_identity_is_a_credential_where_anonymous_clients_are_refused() {
    let dir = common::tls::temp_dir("tls-identity");
    let ca = Ca::new(&dir, "main");
    let cert = ca.client("sensor-9");
    for shards in [1, 2] {
        let mut cfg = config(shards);
        let mut l = common::tls::listener(&ca.server(), Some(&ca), ClientAuth::Optional);
        l.allow_anonymous = Anonymous::Never;
        l.tls.as_mut().unwrap().identity_as_username = IdentitySource::Cn;
        cfg.listener[0] = l;
        let b = start_with(cfg, Hooks::new());
        for home in 0..shards {
            let id = b.id_on("id", home);
            let (mut c, ack) =
                TlsClient::connect(b.addr, &ca.file, Some(&cert), Version::V12, &id).unwrap();
            assert_eq!(
                ack.code,
                Reason::SUCCESS,
                "cert-only client on shard {home}"
            );
            assert!(c.ping());
            // No certificate and no user name: refused [MQTT-3.2.2-5] with 0x05.
            let (_n, ack) = TlsClient::connect(b.addr, &ca.file, None, Version::V12, &id).unwrap();
            assert_eq!(
                ack.code,
                Reason::NOT_AUTHORIZED,
                "anonymous on shard {home}"
            );
        }
        let m = b.wait_metrics(|m| m.auth_anonymous_refused >= shards as u64);
        assert_eq!(m.auth_anonymous_refused, shards as u64);
    }
}

/// Copy a certificate and key over the files the listener names.
fn install(from: &Pem, to: &Pem) {
    std::fs::copy(&from.cert, &to.cert).unwrap();
    std::fs::copy(&from.key, &to.key).unwrap();
}

#[test]
fn reload_swaps_the_certificate_and_keeps_connections_up() {
    let dir = common::tls::temp_dir("tls-reload");
    let (old, new) = (Ca::new(&dir, "old"), Ca::new(&dir, "new"));
    let live = Pem {
        cert: dir.join("live.pem"),
        key: dir.join("live.key"),
    };
    install(&old.server(), &live);
    let b = tls_broker(2, &live, None, ClientAuth::None);
    let handle = b.handle.as_ref().unwrap();
    let (mut kept, _) = TlsClient::connect(b.addr, &old.file, None, Version::V13, "kept").unwrap();
    assert!(TlsClient::open(b.addr, &new.file, None, Version::V13).is_err());

    install(&new.server(), &live);
    let report = handle.reload();
    assert!(report.ok(), "{report:?}");
    let (mut fresh, ack) =
        TlsClient::connect(b.addr, &new.file, None, Version::V13, "fresh").unwrap();
    assert_eq!(ack.code, Reason::SUCCESS);
    assert!(TlsClient::open(b.addr, &old.file, None, Version::V13).is_err());
    assert!(
        kept.ping(),
        "the connection made before the reload stays up"
    );
    assert!(fresh.ping());

    // A broken file: reported, and the last good certificate stays.
    std::fs::write(&live.cert, "not a certificate").unwrap();
    let report = handle.reload();
    assert!(!report.ok());
    let why = format!("{report:?}");
    assert!(why.contains("live.pem"), "{why}");
    assert!(TlsClient::connect(b.addr, &new.file, None, Version::V12, "still").is_ok());
}

#[test]
fn a_bad_certificate_file_at_start_is_a_start_error_naming_it() {
    let dir = common::tls::temp_dir("tls-bad");
    let ca = Ca::new(&dir, "main");
    let server = ca.server();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    let missing = dir.join("missing.pem");
    let other_key = ca.client("x").key;
    for (cert, key, named) in [
        (missing.as_path(), server.key.as_path(), "missing.pem"),
        (garbage.as_path(), server.key.as_path(), "garbage.pem"),
        (server.cert.as_path(), missing.as_path(), "missing.pem"),
        (server.cert.as_path(), other_key.as_path(), "server.pem"),
    ] {
        let mut cfg = config(1);
        let pem = Pem {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        cfg.listener[0] = common::tls::listener(&pem, None, ClientAuth::None);
        match Broker::new(cfg).start() {
            Err(e @ StartError::Tls(_)) => {
                let text = e.to_string();
                assert!(
                    text.contains(named) && text.contains("listener.tls"),
                    "{text}"
                );
            }
            Err(e) => panic!("{}: unexpected error {e}", Path::new(named).display()),
            Ok(_) => panic!("{named}: started with a bad file"),
        }
    }
}

#[test]
fn mosquitto_clients_over_tls_with_a_client_certificate() {
    common::mosquitto::require_mosquitto();
    let dir = common::tls::temp_dir("tls-mosquitto");
    let ca = Ca::new(&dir, "main");
    let cert = ca.client("mosq");
    let b = tls_broker(2, &ca.server(), Some(&ca), ClientAuth::Require);
    let port = b.addr.port().to_string();
    let tls_args = |id: &str| {
        vec![
            "-h".to_string(),
            "localhost".into(),
            "-p".into(),
            port.clone(),
            "-i".into(),
            id.into(),
            "--cafile".into(),
            ca.file.display().to_string(),
            "--cert".into(),
            cert.cert.display().to_string(),
            "--key".into(),
            cert.key.display().to_string(),
        ]
    };
    // Line-buffered (stdbuf), so its -d lines arrive as they happen.
    let mut sub = std::process::Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(tls_args(&b.id_on("msub", 1)))
        .args(["-t", "tls/mosq", "-C", "1", "-W", "10", "-q", "1", "-d"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    // -d prints the flow: publish once the SUBACK is in.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        seen.push(line.clone());
        if line.starts_with("Subscribed") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("Subscribed")),
        "mosquitto_sub: {seen:?}"
    );
    let status = std::process::Command::new("mosquitto_pub")
        .args(tls_args(&b.id_on("mpub", 0)))
        .args(["-t", "tls/mosq", "-m", "over tls", "-q", "1"])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success(), "mosquitto_pub over TLS");
    let got: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        got.iter().any(|l| l == "over tls"),
        "mosquitto_sub printed {got:?}"
    );
    assert!(sub.wait().expect("mosquitto_sub ends").success());
}

#[test]
fn paho_over_tls_with_a_client_certificate() {
    let dir = common::tls::temp_dir("tls-paho");
    let ca = Ca::new(&dir, "main");
    let cert = ca.client("paho");
    let b = tls_broker(2, &ca.server(), Some(&ca), ClientAuth::Require);
    let (cafile, certfile, keyfile) = (
        ca.file.display().to_string(),
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let args = ["--cafile", &cafile, "--cert", &certfile, "--key", &keyfile];
    common::binary::paho_over(b.addr.port(), &args);
}
