//! Logins over real sockets at 1 and 2 shards (client ids on every shard, so
//! most CONNECTs are handed to their home shard before they are checked): a
//! password file made by Debian's `mosquitto_passwd` and one made by
//! `coremq passwd`, wrong passwords and unknown users, packets sent before
//! CONNACK, the client-id list, JWT, the authenticate hook (delayed, and
//! timing out), reloading the password file (`BrokerHandle::reload`, and
//! SIGHUP to the binary), and the Mosquitto and paho clients with a user
//! name and password.

mod common;

use bytes::Bytes;
use common::binary::{require_program, BrokerProcess, Proc, TempFile};
use common::{config, connect_packet, start_with, Client, TestBroker, WAIT};
use coremq::auth::jwt::testing::{hs256, rs256};
use coremq::codec::{Packet, ProtocolVersion, QoS, Reason};
use coremq::config::{Anonymous, Config};
use coremq::hooks::{AuthDecision, Refusal};
use coremq::Hooks;
use std::process::Command;
use std::time::Duration;

/// Shard counts the login tests run with.
const CORES: [usize; 2] = [1, 2];

/// A password file for `user`/`password` made by `mosquitto_passwd -b`.
fn mosquitto_file(user: &str, password: &str) -> TempFile {
    require_program("mosquitto_passwd", "apt-get install -y mosquitto");
    let f = TempFile::new("coremq-auth", ".pw", "");
    let st = Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&f.path)
        .args([user, password])
        .status()
        .expect("run mosquitto_passwd");
    assert!(st.success(), "mosquitto_passwd failed");
    f
}

fn with_file(cores: usize, file: &TempFile) -> Config {
    let mut cfg = config(cores);
    cfg.auth.password_file = file.path.display().to_string();
    cfg
}

fn login(id: &str, user: &str, password: &str, version: ProtocolVersion) -> coremq::codec::Connect {
    let mut c = connect_packet(id, true);
    c.version = version;
    c.username = Some(user.into());
    c.password = Some(Bytes::from(password.to_owned()));
    c
}

/// The CONNACK code a login gets (the client is dropped).
fn code(b: &TestBroker, c: coremq::codec::Connect) -> Reason {
    Client::connect_with(b.addr, c).1.code
}

/// The CONNACK code of a 3.1.1 login as `user` from a client homed on each shard.
fn codes_on_every_shard(b: &TestBroker, user: &str, password: &str) -> Vec<Reason> {
    (0..b.shards)
        .map(|s| {
            code(
                b,
                login(&b.id_on("pw", s), user, password, ProtocolVersion::V311),
            )
        })
        .collect()
}

#[test]
fn a_mosquitto_passwd_file_lets_the_right_password_in_and_no_other() {
    let file = mosquitto_file("alice", "secret");
    for cores in CORES {
        let b = start_with(with_file(cores, &file), Hooks::new());
        let ok = vec![Reason::SUCCESS; cores];
        assert_eq!(codes_on_every_shard(&b, "alice", "secret"), ok);
        // CONNACK 0x04 / MQTT 5 0x86 Bad user name or password [MQTT-3.2.2-5].
        let bad = vec![Reason::BAD_USER_NAME_OR_PASSWORD; cores];
        assert_eq!(codes_on_every_shard(&b, "alice", "wrong"), bad);
        assert_eq!(codes_on_every_shard(&b, "mallory", "secret"), bad);
        let v5 = login(
            &b.id_on("v5", cores - 1),
            "alice",
            "nope",
            ProtocolVersion::V5,
        );
        assert_eq!(code(&b, v5), Reason::BAD_USER_NAME_OR_PASSWORD);
        let m = b.wait_metrics(|m| m.auth_login_failures == 2 * cores as u64 + 1);
        assert_eq!(m.auth_login_failures, 2 * cores as u64 + 1, "{m:?}");
        assert!(m.auth_logins >= cores as u64);
    }
}

#[test]
fn packets_sent_with_the_connect_are_answered_after_connack() {
    let file = mosquitto_file("alice", "secret");
    for cores in CORES {
        let b = start_with(with_file(cores, &file), Hooks::new());
        for shard in 0..cores {
            let mut c = Client::raw(b.addr);
            let id = b.id_on("burst", shard);
            let mut bytes = common::packet_bytes(&Packet::Connect(Box::new(login(
                &id,
                "alice",
                "secret",
                ProtocolVersion::V311,
            ))));
            let sub = coremq::codec::Subscribe {
                pkid: 1,
                filters: vec![coremq::codec::SubscribeFilter::new(
                    "burst/t",
                    QoS::AtMostOnce,
                )],
                props: None,
            };
            bytes.extend(common::packet_bytes(&Packet::Subscribe(sub)));
            c.send_raw(&bytes);
            assert!(matches!(c.recv(), Some(Packet::ConnAck(a)) if a.code == Reason::SUCCESS));
            let next = c.recv();
            assert!(
                matches!(next, Some(Packet::SubAck(_))),
                "SUBACK after CONNACK: {next:?}"
            );
        }
    }
}

#[test]
fn coremq_passwd_writes_an_argon2id_entry_that_logs_in() {
    let file = TempFile::new("coremq-auth", ".pw", "");
    let out = Command::new(env!("CARGO_BIN_EXE_coremq"))
        .args(["passwd", "-c", "-b"])
        .arg(&file.path)
        .args(["bob", "hunter2"])
        .output()
        .expect("run coremq passwd");
    assert!(out.status.success(), "{out:?}");
    // Without -b the password is read twice (no echo on a terminal; here a pipe).
    let mut asked = std::process::Command::new(env!("CARGO_BIN_EXE_coremq"))
        .args(["passwd"])
        .arg(&file.path)
        .arg("carol")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run coremq passwd");
    {
        use std::io::Write;
        let mut stdin = asked.stdin.take().expect("stdin");
        stdin.write_all(b"s3cond\ns3cond\n").unwrap();
    }
    let out = asked.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file.path).unwrap();
    assert!(text.starts_with("bob:$argon2id$"), "{text}");
    assert!(text.contains("\ncarol:$argon2id$"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("s3cond"));
    for cores in CORES {
        let b = start_with(with_file(cores, &file), Hooks::new());
        assert_eq!(
            codes_on_every_shard(&b, "bob", "hunter2"),
            vec![Reason::SUCCESS; cores]
        );
        assert_eq!(
            codes_on_every_shard(&b, "carol", "s3cond"),
            vec![Reason::SUCCESS; cores]
        );
        let bad = vec![Reason::BAD_USER_NAME_OR_PASSWORD; cores];
        assert_eq!(codes_on_every_shard(&b, "bob", "hunter3"), bad);
    }
}

#[test]
fn listed_client_ids_need_no_password_where_anonymous_clients_are_refused() {
    for cores in CORES {
        let mut cfg = config(cores);
        cfg.listener[0].allow_anonymous = Anonymous::Never;
        let b0 = common::id_on("dev", 0, cores);
        let b1 = common::id_on("dev", cores - 1, cores);
        cfg.auth.client_ids = vec![b0.clone(), b1.clone()];
        let b = start_with(cfg, Hooks::new());
        for id in [&b0, &b1] {
            assert_eq!(code(&b, connect_packet(id, true)), Reason::SUCCESS);
        }
        let stranger = b.id_on("stranger", cores - 1);
        assert_eq!(
            code(&b, connect_packet(&stranger, true)),
            Reason::NOT_AUTHORIZED
        );
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn jwt_tokens_are_accepted_until_they_expire_and_forged_ones_never() {
    let claims = |exp: u64| serde_json::json!({"sub": "dev-1", "exp": exp});
    for cores in CORES {
        let mut cfg = config(cores);
        cfg.auth.jwt.secret = "shared-secret".into();
        let b = start_with(cfg, Hooks::new());
        let good = hs256(b"shared-secret", &claims(now_s() + 600));
        let expired = hs256(b"shared-secret", &claims(now_s() - 1));
        let forged = hs256(b"guessed", &claims(now_s() + 600));
        for s in 0..cores {
            let id = b.id_on("jwt", s);
            let c = |t: &str| login(&id, "dev-1", t, ProtocolVersion::V311);
            assert_eq!(code(&b, c(&good)), Reason::SUCCESS);
            assert_eq!(code(&b, c(&expired)), Reason::BAD_USER_NAME_OR_PASSWORD);
            assert_eq!(code(&b, c(&forged)), Reason::BAD_USER_NAME_OR_PASSWORD);
            // The claim must match the CONNECT's user name.
            let other = login(&id, "dev-2", &good, ProtocolVersion::V5);
            assert_eq!(code(&b, other), Reason::BAD_USER_NAME_OR_PASSWORD);
        }
    }
    // RS256 with a public key file.
    let mut cfg = config(2);
    cfg.auth.jwt.public_key_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/jwt/jwt-rs256.pub.pem"
    )
    .into();
    let b = start_with(cfg, Hooks::new());
    let private = include_str!("data/jwt/jwt-rs256.pem");
    let token = rs256(private, &claims(now_s() + 600));
    let mut c = connect_packet(&b.id_on("rs", 1), true);
    c.password = Some(Bytes::from(token));
    c.version = ProtocolVersion::V5; // MQTT 5 allows a password without a user name
    assert_eq!(code(&b, c), Reason::SUCCESS);
    let hs_token = hs256(b"x", &claims(now_s() + 600));
    let wrong_kind = login(&b.id_on("rs", 0), "dev-1", &hs_token, ProtocolVersion::V311);
    assert_eq!(code(&b, wrong_kind), Reason::BAD_USER_NAME_OR_PASSWORD);
}

/// The RS256 public key file is re-read on reload: tokens signed by the
/// new key log in, those of the old one no longer do; a file that does not
/// load keeps the key in force.
#[test]
fn reload_rereads_the_jwt_public_key_file() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt/");
    let read = |f: &str| std::fs::read_to_string(format!("{data}{f}")).unwrap();
    let key = TempFile::new("coremq-jwt-key", ".pem", &read("jwt-rs256.pub.pem"));
    let mut cfg = config(2);
    cfg.auth.jwt.public_key_file = key.path.display().to_string();
    let b = start_with(cfg, Hooks::new());
    let claims = serde_json::json!({"sub": "dev-1", "exp": now_s() + 600});
    let (old, new) = (
        rs256(&read("jwt-rs256.pem"), &claims),
        rs256(&read("jwt-other.pem"), &claims),
    );
    let each = |token: &str| codes_on_every_shard(&b, "dev-1", token);
    let (ok, bad) = (
        vec![Reason::SUCCESS; 2],
        vec![Reason::BAD_USER_NAME_OR_PASSWORD; 2],
    );
    assert_eq!((each(&old), each(&new)), (ok.clone(), bad.clone()));
    std::fs::write(&key.path, read("jwt-other.pub.pem")).unwrap();
    let handle = b.handle.as_ref().unwrap();
    assert!(handle.reload().ok());
    assert_eq!((each(&old), each(&new)), (bad.clone(), ok.clone()));
    std::fs::write(&key.path, "not a key").unwrap();
    let report = handle.reload();
    assert!(!report.ok(), "{:?}", report.results);
    assert_eq!((each(&old), each(&new)), (bad, ok));
}

/// An authenticate hook that answers after `delay_ms` (a glommio timer on
/// the client's home shard): bob/pw allowed, "slow" never answers in time.
fn delayed_hook(delay_ms: u64) -> Hooks {
    let mut hooks = Hooks::new();
    hooks.set_authenticate(move |req| {
        let ok =
            req.username.as_deref() == Some("bob") && req.password.as_deref() == Some(&b"pw"[..]);
        let slow = req.username.as_deref() == Some("slow");
        Box::pin(async move {
            let wait = if slow { 60_000 } else { delay_ms };
            glommio::timer::sleep(Duration::from_millis(wait)).await;
            match ok {
                true => AuthDecision::Allow,
                false => AuthDecision::Refuse(Refusal::NotAuthorized),
            }
        })
    });
    hooks
}

#[test]
fn the_authenticate_hook_is_awaited_and_bounded_by_its_timeout() {
    for cores in CORES {
        let mut cfg = config(cores);
        cfg.auth.hook_timeout_ms = 500;
        let b = start_with(cfg, delayed_hook(150));
        for s in 0..cores {
            let id = b.id_on("hook", s);
            let (mut c, ack) =
                Client::connect_with(b.addr, login(&id, "bob", "pw", ProtocolVersion::V311));
            assert_eq!(ack.code, Reason::SUCCESS);
            c.ping();
            let no = login(&id, "bob", "nope", ProtocolVersion::V5);
            assert_eq!(code(&b, no), Reason::NOT_AUTHORIZED);
            // Timed out: 0x03 Server unavailable (MQTT 5 0x88).
            let slow = login(&id, "slow", "pw", ProtocolVersion::V311);
            assert_eq!(code(&b, slow), Reason::SERVER_UNAVAILABLE);
        }
        let m = b.wait_metrics(|m| m.auth_hook_timeouts == cores as u64);
        assert_eq!(m.auth_hook_timeouts, cores as u64);
    }
}

#[test]
fn reload_replaces_the_password_table_and_a_broken_file_keeps_it() {
    let file = mosquitto_file("alice", "secret");
    let b = start_with(with_file(2, &file), Hooks::new());
    assert_eq!(
        codes_on_every_shard(&b, "alice", "secret"),
        vec![Reason::SUCCESS; 2]
    );
    let carol = mosquitto_file("carol", "pw2");
    std::fs::copy(&carol.path, &file.path).unwrap();
    let handle = b.handle.as_ref().unwrap();
    assert!(handle.reload().ok());
    assert_eq!(
        codes_on_every_shard(&b, "carol", "pw2"),
        vec![Reason::SUCCESS; 2]
    );
    // alice is gone, even though her login was cached.
    let bad = vec![Reason::BAD_USER_NAME_OR_PASSWORD; 2];
    assert_eq!(codes_on_every_shard(&b, "alice", "secret"), bad);
    std::fs::write(&file.path, "carol\n").unwrap();
    let report = handle.reload();
    assert!(!report.ok());
    let why = format!("{:?}", report.results);
    assert!(
        why.contains("line 1") && why.contains(&file.path.display().to_string()),
        "{why}"
    );
    assert_eq!(
        codes_on_every_shard(&b, "carol", "pw2"),
        vec![Reason::SUCCESS; 2]
    );
}

#[test]
fn a_broken_password_file_stops_the_start_naming_file_and_line() {
    let file = TempFile::new("coremq-auth", ".pw", "ok:$6$AA==$AA==\nbroken\n");
    let err = coremq::Broker::new(with_file(1, &file))
        .start()
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("auth.password_file") && text.contains("line 2"),
        "{text}"
    );
    assert!(text.contains(&file.path.display().to_string()), "{text}");
}

/// The binary with a password file holding alice/secret.
fn binary_with_file(cores: usize, file: &TempFile) -> BrokerProcess {
    let toml = format!(
        "[auth]\npassword_file = {:?}\n",
        file.path.display().to_string()
    );
    BrokerProcess::start_with_config(cores, Some(&toml))
}

#[test]
fn sighup_makes_the_binary_reread_its_password_file() {
    let file = mosquitto_file("alice", "secret");
    let broker = binary_with_file(2, &file);
    let addr = broker.addr();
    let c = |user: &str, pw: &str| {
        Client::connect_with(addr, login("hup", user, pw, ProtocolVersion::V311))
            .1
            .code
    };
    assert_eq!(c("alice", "secret"), Reason::SUCCESS);
    assert_eq!(c("dave", "pw3"), Reason::BAD_USER_NAME_OR_PASSWORD);
    let dave = mosquitto_file("dave", "pw3");
    std::fs::copy(&dave.path, &file.path).unwrap();
    broker.signal(libc::SIGHUP);
    assert!(
        common::wait_until(|| broker.log().contains("reload: password file")),
        "no reload logged:\n{}",
        broker.log()
    );
    assert_eq!(c("dave", "pw3"), Reason::SUCCESS);
    assert!(!broker.log().contains("pw3"), "a password reached the log");
    broker.stop();
}

#[test]
fn mosquitto_pub_with_user_name_and_password() {
    common::mosquitto::require_mosquitto();
    let file = mosquitto_file("alice", "secret");
    for cores in CORES {
        let broker = binary_with_file(cores, &file);
        let port = broker.port.to_string();
        let run = |pw: &str| {
            let mut cmd = Command::new("mosquitto_pub");
            cmd.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "t",
                "-m",
                "x",
                "-u",
                "alice",
                "-P",
                pw,
            ]);
            Proc::spawn(cmd, false).finish(WAIT)
        };
        let ok = run("secret");
        assert!(ok.success(), "{ok:?}\n{}", broker.log());
        let refused = run("Tr0ub4dor-guess");
        assert!(!refused.success(), "{refused:?}");
        assert!(
            refused.stderr.to_lowercase().contains("password"),
            "{refused:?}"
        );
        assert!(
            !broker.log().contains("Tr0ub4dor"),
            "a password reached the log"
        );
        broker.stop();
    }
}

#[test]
fn paho_with_username_pw_set() {
    require_program("python3", "apt-get install -y python3");
    let file = mosquitto_file("alice", "secret");
    let broker = binary_with_file(2, &file);
    let script = format!(
        "import sys, paho.mqtt.client as m\n\
         from paho.mqtt.enums import CallbackAPIVersion\n\
         def rc(pw):\n\
         \x20   c = m.Client(CallbackAPIVersion.VERSION2, client_id='paho-auth')\n\
         \x20   c.username_pw_set('alice', pw)\n\
         \x20   try:\n\
         \x20       c.connect('127.0.0.1', {port}, 30)\n\
         \x20   except Exception as e:\n\
         \x20       return str(e)\n\
         \x20   got = []\n\
         \x20   c.on_connect = lambda cl, u, f, r, p: got.append(r.value)\n\
         \x20   for _ in range(50):\n\
         \x20       c.loop(0.1)\n\
         \x20       if got: break\n\
         \x20   c.disconnect()\n\
         \x20   return got\n\
         print(rc('secret'), rc('wrong'))\n",
        port = broker.port
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    let out = Proc::spawn(cmd, false).finish(Duration::from_secs(20));
    assert!(out.success(), "{out:?}");
    // paho 2.x reports 3.1.1 return code 4 as reason 134 (0x86).
    assert_eq!(
        out.stdout.join(" "),
        "[0] [134]",
        "{out:?}\n{}",
        broker.log()
    );
    broker.stop();
}
