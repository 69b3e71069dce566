//! MQTT 5 enhanced authentication (§4.12) through the harness: the SCRAM
//! exchange after CONNECT, refusals, what may arrive meanwhile, the connect
//! timeout, and re-authentication.

use crate::auth::scram::{ScramClient, ScramSha256, METHOD};
use crate::codec::{Auth, Disconnect, Packet, Properties, Reason};
use crate::config::Config;
use crate::hooks::Hooks;
use crate::shard::harness::{connect5_packet, H};
use crate::shard::{CloseReason, ConnKey};
use bytes::Bytes;

/// A shard whose hooks know SCRAM user "alice" / "secret".
fn scram_shard() -> H {
    let mut scram = ScramSha256::new();
    scram.add_user_with("alice", "secret", b"pepper", 256);
    let mut hooks = Hooks::new();
    hooks.add_authenticator(scram);
    H::with_hooks(Config::default(), 1, hooks)
}

fn auth_props(method: &str, data: &str) -> Properties {
    Properties {
        authentication_method: Some(method.into()),
        authentication_data: Some(Bytes::from(data.to_owned())),
        ..Properties::default()
    }
}

fn auth(reason: Reason, method: &str, data: &str) -> Packet {
    Packet::Auth(Auth {
        reason,
        props: Some(Box::new(auth_props(method, data))),
    })
}

/// The method and data of an AUTH or CONNACK's properties.
fn method_and_data(p: Option<&Properties>) -> (Option<String>, String) {
    let p = p.expect("properties");
    let data = p.authentication_data.as_deref().unwrap_or_default();
    (
        p.authentication_method.clone(),
        String::from_utf8(data.to_vec()).expect("text"),
    )
}

/// The one packet written to `conn` since the last look.
fn one(h: &mut H, conn: ConnKey) -> Packet {
    let mut out = h.out(conn);
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

/// CONNECT as `client`, answered with AUTH 0x18 carrying server-first.
fn start_scram(h: &mut H, id: &str, client: &mut ScramClient) -> (ConnKey, String) {
    let conn = h.socket();
    let props = auth_props(METHOD, &client.first());
    let _ = h.send(conn, connect5_packet(id, true, props, None));
    match one(h, conn) {
        Packet::Auth(a) => {
            // [MQTT-4.12.0-2] 0x18; [MQTT-4.12.0-5] the CONNECT's method.
            assert_eq!(a.reason, Reason::CONTINUE_AUTHENTICATION);
            let (method, data) = method_and_data(a.props.as_deref());
            assert_eq!(method.as_deref(), Some(METHOD));
            (conn, data)
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
}

/// A full SCRAM connect; returns the connection.
fn scram_connect(h: &mut H, id: &str) -> ConnKey {
    let mut client = ScramClient::new("alice", "secret");
    let (conn, server_first) = start_scram(h, id, &mut client);
    let fin = client.answer(&server_first).expect("server-first");
    let _ = h.send(conn, auth(Reason::CONTINUE_AUTHENTICATION, METHOD, &fin));
    match one(h, conn) {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.code, Reason::SUCCESS);
            let (method, data) = method_and_data(ack.props.as_deref());
            assert_eq!(method.as_deref(), Some(METHOD));
            assert!(client.verify_server(&data), "server-final {data:?}");
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    conn
}

#[test]
fn scram_exchange_ends_in_connack_with_method_and_final_data() {
    // [MQTT-4.12.0-2], [MQTT-4.12.0-3], [MQTT-4.12.0-5]
    let mut h = scram_shard();
    let conn = scram_connect(&mut h, "c1");
    assert!(h.shard.conns.get(conn).and_then(|c| c.session()).is_some());
    let _ = h.send(conn, Packet::PingReq);
    assert_eq!(h.out(conn), vec![Packet::PingResp]);
    let m = &h.shard.metrics;
    assert_eq!((m.auth_successes, m.auth_failures), (1, 0));
    assert_eq!(m.connects_accepted, 1);
}

#[test]
fn a_wrong_password_gets_connack_0x86_and_the_close() {
    // [MQTT-4.12.0-4]
    let mut h = scram_shard();
    let mut client = ScramClient::new("alice", "wrong");
    let (conn, server_first) = start_scram(&mut h, "c1", &mut client);
    let fin = client.answer(&server_first).expect("server-first");
    let _ = h.send(conn, auth(Reason::CONTINUE_AUTHENTICATION, METHOD, &fin));
    match one(&mut h, conn) {
        Packet::ConnAck(ack) => assert_eq!(ack.code, Reason::BAD_USER_NAME_OR_PASSWORD),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::Refused));
    assert_eq!(h.shard.metrics.auth_failures, 1);
    assert_eq!(h.shard.sessions.len(), 0, "no session was made");
}

#[test]
fn an_unknown_method_or_no_authenticator_gets_0x8c() {
    // [MQTT-4.12.0-1]
    for mut h in [scram_shard(), H::new(1)] {
        let props = auth_props("KERBEROS", "x");
        let (conn, ack) = h.connect_with(connect5_packet("c1", true, props, None));
        assert_eq!(ack.code, Reason::BAD_AUTHENTICATION_METHOD);
        assert_eq!(h.closed.get(&conn), Some(&CloseReason::Refused));
        assert_eq!(h.shard.metrics.auth_failures, 1);
    }
}

#[test]
fn another_packet_while_authenticating_gets_connack_0x82_not_disconnect() {
    // Only AUTH may follow CONNECT before CONNACK; no DISCONNECT may
    // precede a CONNACK [MQTT-3.14.0-1], so the refusal is a CONNACK.
    let wrong = [
        Packet::PingReq,
        auth(Reason::REAUTHENTICATE, METHOD, "x"),
        auth(Reason::CONTINUE_AUTHENTICATION, "OTHER", "x"),
    ];
    for packet in wrong {
        let mut h = scram_shard();
        let mut client = ScramClient::new("alice", "secret");
        let (conn, _) = start_scram(&mut h, "c1", &mut client);
        let _ = h.send(conn, packet.clone());
        match one(&mut h, conn) {
            Packet::ConnAck(ack) => assert_eq!(ack.code, Reason::PROTOCOL_ERROR, "{packet:?}"),
            other => panic!("expected CONNACK 0x82 for {packet:?}, got {other:?}"),
        }
        assert_eq!(h.closed.get(&conn), Some(&CloseReason::Refused));
        assert_eq!(h.shard.metrics.protocol_errors, 1);
    }
}

#[test]
fn a_disconnect_while_authenticating_closes_without_connack() {
    let mut h = scram_shard();
    let mut client = ScramClient::new("alice", "secret");
    let (conn, _) = start_scram(&mut h, "c1", &mut client);
    let _ = h.send(conn, Packet::Disconnect(Disconnect::normal()));
    assert_eq!(h.out(conn), vec![]);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::Normal));
}

#[test]
fn the_connect_timeout_runs_while_authenticating() {
    let mut h = scram_shard();
    let mut client = ScramClient::new("alice", "secret");
    let (conn, _) = start_scram(&mut h, "c1", &mut client);
    h.advance(h.shard.cfg.mqtt.connect_timeout_s * 1000 + 200);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ConnectTimeout));
    assert_eq!(h.shard.metrics.connect_timeouts, 1);
}

#[test]
fn without_a_method_connack_has_none_and_auth_is_a_protocol_error() {
    // [MQTT-4.12.0-6]: no method in CONNACK; [MQTT-4.12.0-7]: the client
    // must not send AUTH, so it gets DISCONNECT 0x82.
    let mut h = scram_shard();
    let (conn, ack) = h.connect5("c1", true, Properties::default());
    let props = ack.props.expect("CONNACK properties");
    assert_eq!(props.authentication_method, None);
    let _ = h.send(conn, auth(Reason::REAUTHENTICATE, METHOD, "n,,n=alice,r=x"));
    assert_eq!(
        h.out(conn),
        vec![Packet::Disconnect(Disconnect::with(Reason::PROTOCOL_ERROR))]
    );
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ProtocolError));
}

/// Re-authenticate `conn` as alice with `password`: the server-final data
/// of AUTH 0x00, or the packet that ended it.
fn reauth(h: &mut H, conn: ConnKey, password: &str) -> Result<(), Packet> {
    let mut client = ScramClient::new("alice", password);
    let _ = h.send(conn, auth(Reason::REAUTHENTICATE, METHOD, &client.first()));
    let server_first = match one(h, conn) {
        Packet::Auth(a) if a.reason == Reason::CONTINUE_AUTHENTICATION => {
            method_and_data(a.props.as_deref()).1
        }
        other => return Err(other),
    };
    // Other packets keep flowing during a re-authentication (§4.12.1).
    let _ = h.send(conn, Packet::PingReq);
    assert_eq!(one(h, conn), Packet::PingResp);
    let fin = client.answer(&server_first).expect("server-first");
    let _ = h.send(conn, auth(Reason::CONTINUE_AUTHENTICATION, METHOD, &fin));
    match one(h, conn) {
        Packet::Auth(a) if a.reason == Reason::SUCCESS => {
            let (method, data) = method_and_data(a.props.as_deref());
            assert_eq!(method.as_deref(), Some(METHOD));
            assert!(client.verify_server(&data));
            Ok(())
        }
        other => Err(other),
    }
}

#[test]
fn reauthentication_succeeds_with_auth_0x00_twice() {
    // [MQTT-4.12.1-1]: AUTH 0x19 with the CONNECT's method.
    let mut h = scram_shard();
    let conn = scram_connect(&mut h, "c1");
    assert_eq!(reauth(&mut h, conn, "secret"), Ok(()));
    assert_eq!(reauth(&mut h, conn, "secret"), Ok(()));
    assert_eq!(h.shard.metrics.auth_successes, 3);
    assert!(h.closed.is_empty());
}

#[test]
fn a_failed_reauthentication_disconnects_with_the_reason() {
    // [MQTT-4.12.1-2]; SCRAM's 0x86 is no DISCONNECT reason: 0x87.
    let mut h = scram_shard();
    let conn = scram_connect(&mut h, "c1");
    let reason = Reason::NOT_AUTHORIZED;
    assert_eq!(
        reauth(&mut h, conn, "wrong"),
        Err(Packet::Disconnect(Disconnect::with(reason)))
    );
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::AuthFailed(reason)));
    assert_eq!(h.shard.metrics.auth_failures, 1);
}

#[test]
fn reauthentication_with_another_method_or_out_of_turn_is_a_protocol_error() {
    // [MQTT-4.12.1-1]: the same method; AUTH 0x18 only inside an exchange.
    for packet in [
        auth(Reason::REAUTHENTICATE, "OTHER", "x"),
        auth(Reason::CONTINUE_AUTHENTICATION, METHOD, "x"),
    ] {
        let mut h = scram_shard();
        let conn = scram_connect(&mut h, "c1");
        let _ = h.send(conn, packet);
        assert_eq!(
            h.out(conn),
            vec![Packet::Disconnect(Disconnect::with(Reason::PROTOCOL_ERROR))]
        );
        assert_eq!(h.closed.get(&conn), Some(&CloseReason::ProtocolError));
    }
}
