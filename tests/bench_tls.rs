//! The load tool over TLS, mutual TLS, WebSocket and WebSocket over TLS
//! (`coremq-bench --tls --cafile`, `--cert/--key`, `--ws`), end to end
//! against a broker with one listener of each kind, with a CA and
//! certificates made here by rcgen. The broker is coremq (in this process,
//! 2 shards) with one listener of each kind; the tool is its own process.
//! Fails, not skips, where the tool's binary is missing (`scripts/test.sh`
//! builds it).

mod common;
use common::bench::{check_sane, int_field, run_bench, run_tool};
use coremq::config::{ClientAuth, ListenerConfig, ListenerKind, TlsConfig};
use coremq::Hooks;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The broker under test.
const BROKER: fn(&Certs) -> Endpoints = coremq_listeners;

/// The listeners of the broker under test, all on 127.0.0.1, and what
/// keeps the broker running (dropped at the end of the test).
struct Endpoints {
    /// TLS with the server certificate; no client certificate asked.
    tls: u16,
    /// TLS that requires a client certificate signed by the test CA.
    mtls: u16,
    /// MQTT over WebSocket.
    ws: u16,
    /// MQTT over WebSocket over TLS.
    wss: u16,
    _broker: common::TestBroker,
}

/// coremq (2 shards) with the four listeners beside its plain one.
fn coremq_listeners(c: &Certs) -> Endpoints {
    let tls = |client_auth| TlsConfig {
        cert_file: path(&c.server_cert).into(),
        key_file: path(&c.server_key).into(),
        ca_file: path(&c.ca).into(),
        client_auth,
        ..TlsConfig::default()
    };
    let listener = |kind, tls| ListenerConfig {
        kind,
        bind: "127.0.0.1:0".into(),
        tls,
        ..ListenerConfig::default()
    };
    let mut cfg = common::config(2);
    cfg.listener
        .push(listener(ListenerKind::Tls, Some(tls(ClientAuth::None))));
    cfg.listener
        .push(listener(ListenerKind::Tls, Some(tls(ClientAuth::Require))));
    cfg.listener.push(listener(ListenerKind::Ws, None));
    cfg.listener
        .push(listener(ListenerKind::Wss, Some(tls(ClientAuth::None))));
    let b = common::start_with(cfg, Hooks::new());
    let h = b.handle.as_ref().unwrap();
    let port = |i| h.listener_addr(i).unwrap().port();
    Endpoints {
        tls: port(1),
        mtls: port(2),
        ws: port(3),
        wss: port(4),
        _broker: b,
    }
}

/// PEM files in a scratch directory, removed on drop: a CA, a server
/// certificate for `localhost` and 127.0.0.1, a client certificate, and a
/// second CA that signed nothing the broker presents.
struct Certs {
    dir: PathBuf,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    stranger_ca: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let pem = p.self_signed(&key).expect("self-signed CA").pem();
    (pem, Issuer::new(p, key))
}

/// A leaf certificate and its key (PEM) for `names`, signed by `ca`.
fn new_leaf(
    ca: &Issuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names.clone()).expect("leaf params");
    p.distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = p.signed_by(&key, ca).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Certs {
    fn make(tag: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("coremq-certs-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        let (ca_pem, ca) = new_ca("coremq test CA");
        let (server, server_key) = new_leaf(
            &ca,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) =
            new_leaf(&ca, &["bench-client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (stranger_pem, _) = new_ca("some other CA");
        Certs {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
            stranger_ca: write("stranger-ca.pem", &stranger_pem),
            dir,
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// QoS 1 pairs, 20 clients at 400 msg/s for 2 s, over `transport`: checked
/// sane (everyone connected, nothing lost or duplicated), the report names
/// the transport and gives a connect rate. The JSON line.
fn p2p_over(port: u16, transport: &str, flags: &[&str]) -> String {
    let port = port.to_string();
    let args = [
        "scenario", "p2p", "-c", "20", "-r", "400", "-q", "1", "--port", &port, "-d", "2",
        "--drain", "1", "--json", "--quiet",
    ];
    let json = run_bench(&[&args[..], flags].concat());
    check_sane(&json, 20);
    assert_eq!(int_field(&json, "expected"), int_field(&json, "unique"));
    assert!(
        json.contains(&format!("\"transport\":\"{transport}\"")),
        "{json}"
    );
    assert!(
        json.contains("\"connects_per_s\":") && !json.contains("\"connects_per_s\":null"),
        "{json}"
    );
    json
}

#[test]
fn p2p_over_tls_websocket_and_wss() {
    let c = Certs::make("p2p");
    let b = BROKER(&c);
    let ca = path(&c.ca);
    p2p_over(b.tls, "tls", &["--tls", "--cafile", ca]);
    p2p_over(b.ws, "ws", &["--ws", "--ws-path", "/mqtt"]);
    p2p_over(b.wss, "wss", &["--tls", "--cafile", ca, "--ws"]);
    // The name checked and sent as SNI need not be the address dialled.
    p2p_over(
        b.tls,
        "tls",
        &["--tls", "--cafile", ca, "--server-name", "localhost"],
    );
}

/// 100 KB messages, more than a TLS record (16 KB) and more than one read
/// of the tool: each PUBLISH spans many records and reads, over TLS and
/// over wss; three subscribers get every one of them.
#[test]
fn large_messages_over_tls_and_wss() {
    let c = Certs::make("large");
    let b = BROKER(&c);
    let ca = path(&c.ca);
    for (port, ws) in [(b.tls, None), (b.wss, Some("--ws"))] {
        let port = port.to_string();
        let mut args = vec![
            "scenario", "fanout", "-c", "3", "-r", "20", "-q", "1", "-s", "100000", "--port",
            &port, "-d", "2", "--drain", "1", "--json", "--quiet", "--tls", "--cafile", ca,
        ];
        args.extend(ws);
        let json = run_bench(&args);
        check_sane(&json, 4);
        assert_eq!(int_field(&json, "received"), 3 * int_field(&json, "acked"));
    }
}

/// `conn` with `flags`, 5 clients, connect phase bounded: (connected, failed).
fn connect_only(port: u16, flags: &[&str]) -> (i64, i64) {
    let port = port.to_string();
    let args = [
        "conn",
        "-c",
        "5",
        "--port",
        &port,
        "-d",
        "0.2",
        "--drain",
        "0",
        "--connect-timeout",
        "10",
        "--json",
        "--quiet",
    ];
    let (code, out, err) = run_tool(&[&args[..], flags].concat());
    assert_eq!(code, Some(0), "{flags:?}: {err}");
    let json = out.lines().last().unwrap_or("");
    (
        int_field(json, "connected"),
        int_field(json, "connect_failed"),
    )
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let c = Certs::make("mtls");
    let b = BROKER(&c);
    let (ca, cert, key) = (path(&c.ca), path(&c.client_cert), path(&c.client_key));
    let with = ["--tls", "--cafile", ca, "--cert", cert, "--key", key];
    assert_eq!(connect_only(b.mtls, &with), (5, 0));
    assert_eq!(connect_only(b.mtls, &["--tls", "--cafile", ca]), (0, 5));
    // The same client certificate is harmless where none is asked for.
    assert_eq!(connect_only(b.tls, &with), (5, 0));
}

#[test]
fn the_broker_certificate_is_verified() {
    let c = Certs::make("verify");
    let b = BROKER(&c);
    let stranger = ["--tls", "--cafile", path(&c.stranger_ca)];
    assert_eq!(connect_only(b.tls, &stranger), (0, 5));
    let wrong_name = ["--tls", "--cafile", path(&c.ca), "--server-name", "x.test"];
    assert_eq!(connect_only(b.tls, &wrong_name), (0, 5));
    assert_eq!(
        connect_only(b.wss, &[&stranger[..], &["--ws"]].concat()),
        (0, 5)
    );
    assert_eq!(connect_only(b.tls, &["--tls", "--insecure"]), (5, 0));
}

/// Bad TLS settings end the run before it starts: exit code 2 and a message
/// naming the flag.
#[test]
fn bad_tls_settings_exit_2() {
    let c = Certs::make("bad");
    let missing = c.dir.join("missing.pem");
    let not_pem = path(&c.dir.join("not.pem")).to_string();
    std::fs::write(&not_pem, "hello").unwrap();
    for (flags, says) in [
        (vec!["--tls"], "--cafile"),
        (vec!["--tls", "--cafile", path(&missing)], "--cafile"),
        (vec!["--tls", "--cafile", &not_pem], "--cafile"),
        (
            vec![
                "--tls",
                "--insecure",
                "--cert",
                path(&c.client_cert),
                "--key",
                path(&c.ca),
            ],
            "--key",
        ),
        (vec!["--ws", "--ws-path", "mqtt"], "--ws-path"),
    ] {
        let (code, _, err) = run_tool(&[&["conn", "-c", "1"][..], &flags].concat());
        assert_eq!(code, Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}
