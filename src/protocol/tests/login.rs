//! Logins through the harness: the password file (checked off the reactor:
//! the CONNECT waits in `Phase::Verifying`), the cache, what arrives while a
//! check runs, a close or a timeout meanwhile, the authenticate hook's
//! timeout, client ids, certificate identities, and user names that no
//! method knows.

use crate::auth::check::Job;
use crate::auth::login::{Logins, Sources};
use crate::auth::{AuthDecision, Refusal};
use crate::codec::{Packet, ProtocolVersion, QoS, Reason, SubAckCode};
use crate::config::{Anonymous, Config};
use crate::hooks::Hooks;
use crate::shard::harness::{connect_packet, publish, subscribe, H};
use crate::shard::timers::TICK_MS;
use crate::shard::{CloseReason, ConnKey, Phase};
use crate::transport::Origin;
use bytes::Bytes;

/// Written by Debian's `mosquitto_passwd -b` (2.0.11) for alice / secret.
const ALICE: &str = "alice:$7$101$Bt1tV2Ycw9gVPLrr$5qezWJVUxrtNyKL2sSscLZX73C+nOYyouwYCB7ZpwYt0KlLX+kxIuRuM83RYZ3Mq0EWaw2yiSWTBNlD0r8EKfA==\n";

/// A shard with `cfg` whose logins use a password file holding alice.
fn shard_with(mut cfg: Config, hooks: Hooks) -> H {
    let path = std::env::temp_dir().join(format!(
        "coremq-login-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, ALICE).unwrap();
    cfg.auth.password_file = path.display().to_string();
    let sources = Sources::load(&cfg.auth).unwrap();
    let _ = std::fs::remove_file(&path);
    let hook = hooks.has_authenticate();
    let mut h = H::with_hooks(cfg.clone(), 1, hooks);
    h.shard.logins = Logins::new(&cfg.auth, &sources, hook);
    h
}

fn shard() -> H {
    shard_with(Config::default(), Hooks::new())
}

fn login(id: &str, user: &str, password: &str, version: ProtocolVersion) -> Packet {
    let Packet::Connect(mut c) = connect_packet(id, true, None) else {
        unreachable!("connect_packet builds a CONNECT");
    };
    c.version = version;
    c.username = Some(user.into());
    c.password = Some(Bytes::from(password.to_owned()));
    Packet::Connect(c)
}

/// Send a CONNECT that must wait for a check; returns the connection.
fn pending(h: &mut H, packet: Packet) -> ConnKey {
    let conn = h.socket();
    let _ = h.send(conn, packet);
    assert!(h.out(conn).is_empty(), "no CONNACK before the check");
    assert!(matches!(
        h.shard.conns.get(conn).map(|c| c.phase()),
        Some(Phase::Verifying(_))
    ));
    conn
}

/// alice's right password, waiting for its check.
fn alice_waits(h: &mut H) -> ConnKey {
    pending(h, login("c1", "alice", "secret", ProtocolVersion::V311))
}

/// Run the connection's hash job here, as the blocking pool would.
fn run_hash(h: &mut H, conn: ConnKey) -> AuthDecision {
    match h.shard.take_login_job(conn) {
        Some(Job::Hash(hash, pw, _)) if hash.verify(&pw) => AuthDecision::Allow,
        Some(Job::Hash(..)) => AuthDecision::Refuse(Refusal::BadCredentials),
        other => panic!("expected a hash job, got {other:?}"),
    }
}

/// The session's user name.
fn user_of(h: &H, conn: ConnKey) -> Option<String> {
    let info = h.shard.conns.get(conn).and_then(|c| c.info()).cloned();
    info.expect("connected")
        .username
        .as_deref()
        .map(str::to_owned)
}

fn connack(h: &mut H, conn: ConnKey) -> Reason {
    match h.out(conn).first() {
        Some(Packet::ConnAck(a)) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn a_right_password_is_accepted_after_the_check_then_cached() {
    let mut h = shard();
    let conn = alice_waits(&mut h);
    let verdict = run_hash(&mut h, conn);
    assert!(h.shard.take_login_job(conn).is_none(), "taken once");
    h.login_checked(conn, verdict).unwrap();
    assert_eq!(connack(&mut h, conn), Reason::SUCCESS);
    assert_eq!(user_of(&h, conn).as_deref(), Some("alice"));
    // The same credentials again: answered from the cache, no check.
    let (_, ack) = h.connect_with(login("c2", "alice", "secret", ProtocolVersion::V311));
    assert_eq!(ack.code, Reason::SUCCESS);
    let m = &h.shard.metrics;
    assert_eq!(
        (m.auth_logins, m.auth_cache_hits, m.auth_login_failures),
        (2, 1, 0)
    );
}

#[test]
fn a_wrong_password_gets_0x04_or_0x86_and_the_close() {
    for (version, code) in [(ProtocolVersion::V311, 4u8), (ProtocolVersion::V5, 0x86)] {
        let mut h = shard();
        let conn = pending(&mut h, login("c1", "alice", "wrong", version));
        let verdict = run_hash(&mut h, conn);
        assert_eq!(verdict, AuthDecision::Refuse(Refusal::BadCredentials));
        let _ = h.login_checked(conn, verdict);
        let reason = connack(&mut h, conn);
        assert_eq!(reason, Reason::BAD_USER_NAME_OR_PASSWORD);
        let wire = match version {
            ProtocolVersion::V5 => reason.0,
            _ => reason.v3_connack_code(),
        };
        assert_eq!(wire, code);
        assert_eq!(h.closed.get(&conn), Some(&CloseReason::Refused));
        assert_eq!(h.shard.sessions.len(), 0, "[MQTT-3.2.2-5] no session");
        assert_eq!(h.shard.metrics.auth_login_failures, 1);
    }
}

#[test]
fn an_unknown_user_or_a_missing_password_is_refused_at_once() {
    let mut h = shard();
    let conn = h.socket();
    let code = h
        .connack_for(conn, login("c1", "mallory", "x", ProtocolVersion::V311))
        .code;
    assert_eq!(code, Reason::BAD_USER_NAME_OR_PASSWORD);
    let Packet::Connect(mut c) = login("c2", "alice", "", ProtocolVersion::V311) else {
        unreachable!()
    };
    c.password = None;
    let conn = h.socket();
    assert_eq!(
        h.connack_for(conn, Packet::Connect(c)).code,
        Reason::BAD_USER_NAME_OR_PASSWORD
    );
    assert_eq!(h.shard.metrics.auth_login_failures, 2);
}

#[test]
fn packets_sent_during_the_check_are_handled_after_connack_in_order() {
    let mut h = shard();
    let conn = alice_waits(&mut h);
    h.send(conn, subscribe(1, &[("t", QoS::AtMostOnce)]))
        .unwrap();
    h.send(conn, publish("t", b"hi", QoS::AtMostOnce, 0, false))
        .unwrap();
    h.send(conn, Packet::PingReq).unwrap();
    assert!(h.out(conn).is_empty(), "held until CONNACK");
    let verdict = run_hash(&mut h, conn);
    h.login_checked(conn, verdict).unwrap();
    h.answer_barriers();
    let out = h.out(conn);
    assert!(
        matches!(&out[0], Packet::ConnAck(a) if a.code == Reason::SUCCESS),
        "{out:?}"
    );
    assert!(
        matches!(&out[1], Packet::SubAck(s) if s.codes == vec![SubAckCode::Granted(QoS::AtMostOnce)]),
        "{out:?}"
    );
    assert!(
        matches!(&out[2], Packet::Publish(p) if &p.payload[..] == b"hi"),
        "{out:?}"
    );
    assert_eq!(out[3], Packet::PingResp);
}

#[test]
fn a_refusal_drops_the_held_packets_with_the_connection() {
    let mut h = shard();
    let conn = pending(&mut h, login("c1", "alice", "wrong", ProtocolVersion::V311));
    h.send(conn, subscribe(1, &[("t", QoS::AtMostOnce)]))
        .unwrap();
    let verdict = run_hash(&mut h, conn);
    let _ = h.login_checked(conn, verdict);
    let out = h.out(conn);
    assert_eq!(out.len(), 1, "only the CONNACK: {out:?}");
    assert_eq!(h.shard.sessions.len(), 0, "the SUBSCRIBE was never handled");
}

#[test]
fn a_connection_closed_during_the_check_drops_its_answer() {
    let mut h = shard();
    let conn = alice_waits(&mut h);
    let verdict = run_hash(&mut h, conn);
    h.drop_socket(conn);
    assert_eq!(h.login_checked(conn, verdict), Ok(()));
    assert_eq!(h.shard.sessions.len(), 0);
    assert_eq!(h.shard.metrics.connects_accepted, 0);
}

#[test]
fn the_connect_timeout_still_applies_during_the_check() {
    let mut h = shard();
    let conn = alice_waits(&mut h);
    h.advance(h.shard.cfg.mqtt.connect_timeout_s * 1000 + TICK_MS);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ConnectTimeout));
    // The check ends later: its answer finds nothing to do.
    assert_eq!(h.login_checked(conn, AuthDecision::Allow), Ok(()));
    assert_eq!(h.shard.sessions.len(), 0);
}

#[test]
fn a_hook_that_does_not_answer_in_time_gets_server_unavailable() {
    let mut hooks = Hooks::new();
    hooks.set_authenticate(|_| Box::pin(std::future::pending()));
    let mut cfg = Config::default();
    cfg.auth.hook_timeout_ms = 300;
    let mut h = shard_with(cfg, hooks);
    let conn = pending(&mut h, login("c1", "bob", "pw", ProtocolVersion::V5));
    match h.shard.take_login_job(conn) {
        Some(Job::Hook(req)) => {
            assert_eq!(
                (req.client_id.as_str(), req.username.as_deref()),
                ("c1", Some("bob"))
            );
            assert_eq!(req.password.as_deref(), Some(&b"pw"[..]));
            assert_eq!(req.listener, 0);
            assert!(
                !format!("{req:?}").contains("pw\""),
                "the password is not printed"
            );
        }
        other => panic!("expected the hook, got {other:?}"),
    }
    h.advance(300 + TICK_MS);
    assert_eq!(connack(&mut h, conn), Reason::SERVER_UNAVAILABLE);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::Refused));
    let m = &h.shard.metrics;
    assert_eq!((m.auth_hook_timeouts, m.auth_login_failures), (1, 1));
    // The hook's late answer changes nothing.
    assert_eq!(h.login_checked(conn, AuthDecision::Allow), Ok(()));
    assert_eq!(h.shard.sessions.len(), 0);
}

#[test]
fn the_hook_decides_for_users_the_file_does_not_list() {
    let mut hooks = Hooks::new();
    hooks.set_authenticate(|_| Box::pin(std::future::ready(AuthDecision::Allow)));
    let mut h = shard_with(Config::default(), hooks);
    let conn = pending(&mut h, login("c1", "bob", "pw", ProtocolVersion::V5));
    assert!(matches!(h.shard.take_login_job(conn), Some(Job::Hook(_))));
    h.login_checked(conn, AuthDecision::Refuse(Refusal::NotAuthorized))
        .unwrap_err();
    assert_eq!(connack(&mut h, conn), Reason::NOT_AUTHORIZED);
    let conn = pending(&mut h, login("c2", "bob", "pw", ProtocolVersion::V5));
    h.login_checked(conn, AuthDecision::Allow).unwrap();
    assert_eq!(connack(&mut h, conn), Reason::SUCCESS);
}

#[test]
fn a_certificate_identity_is_the_user_name_without_a_password() {
    let mut h = shard();
    let origin = Origin {
        listener: 0,
        identity: Some("device-7".into()),
    };
    let conn = h.socket_from([10, 0, 0, 9].into(), origin);
    let Packet::Connect(mut c) = login("c1", "alice", "", ProtocolVersion::V311) else {
        unreachable!()
    };
    c.password = None;
    assert_eq!(
        h.connack_for(conn, Packet::Connect(c)).code,
        Reason::SUCCESS
    );
    assert_eq!(user_of(&h, conn).as_deref(), Some("device-7"));
}

fn far(h: &mut H, packet: Packet) -> Reason {
    let conn = h.socket_from([10, 1, 2, 3].into(), Origin::default());
    h.connack_for(conn, packet).code
}

#[test]
fn listed_client_ids_connect_without_a_password_from_anywhere() {
    let mut cfg = Config::default();
    cfg.auth.client_ids = vec!["sensor-1".into()];
    let mut h = shard_with(cfg, Hooks::new());
    assert_eq!(
        far(&mut h, connect_packet("sensor-1", true, None)),
        Reason::SUCCESS
    );
    assert_eq!(
        far(&mut h, connect_packet("sensor-2", true, None)),
        Reason::NOT_AUTHORIZED
    );
    // A listed id that sends a password has it checked.
    let code = far(
        &mut h,
        login("sensor-1", "mallory", "x", ProtocolVersion::V311),
    );
    assert_eq!(code, Reason::BAD_USER_NAME_OR_PASSWORD);
}

#[test]
fn with_no_method_a_user_name_is_a_label_held_to_allow_anonymous() {
    let mut h = H::new(1);
    let labelled = || {
        let Packet::Connect(mut c) = connect_packet("c", true, None) else {
            unreachable!()
        };
        c.username = Some("anyone".into());
        Packet::Connect(c)
    };
    assert_eq!(far(&mut h, labelled()), Reason::NOT_AUTHORIZED);
    assert_eq!(h.shard.metrics.auth_anonymous_refused, 1);
    let (_, ack) = h.connect_with(labelled());
    assert_eq!(ack.code, Reason::SUCCESS, "loopback, as before");
    let mut cfg = Config::default();
    cfg.listener[0].allow_anonymous = Anonymous::Always;
    let mut h = H::with(cfg, 1);
    assert_eq!(far(&mut h, labelled()), Reason::SUCCESS);
}

#[test]
fn too_many_packets_before_connack_close_the_connection() {
    let mut h = shard();
    let conn = alice_waits(&mut h);
    let mut closed = false;
    for _ in 0..=crate::auth::check::MAX_HELD {
        if h.send(conn, Packet::PingReq).is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ProtocolError));
}

#[test]
fn a_flood_of_password_checks_is_bounded_per_shard() {
    let mut h = shard();
    let max = crate::auth::check::MAX_HASHING;
    let waiting: Vec<ConnKey> = (0..max)
        .map(|i| {
            pending(
                &mut h,
                login(&format!("c{i}"), "alice", "x", ProtocolVersion::V5),
            )
        })
        .collect();
    let conn = h.socket();
    let over = h.connack_for(conn, login("one-more", "alice", "x", ProtocolVersion::V5));
    assert_eq!(over.code, Reason::SERVER_UNAVAILABLE);
    assert_eq!(h.shard.metrics.auth_busy_refused, 1);
    // A connection that goes away gives its place back.
    h.drop_socket(waiting[0]);
    let _ = alice_waits(&mut h);
}
