//! MQTT 5 enhanced authentication over real sockets, at 1, 2 and 4 shards:
//! a SCRAM-SHA-256 exchange (the client side on the crate's codec and
//! `ScramClient`), a wrong password refused, re-authentication, and what a
//! live connection keeps doing meanwhile. Client ids are spread over every
//! shard, so most connections are handed to their home shard mid-CONNECT.

mod common;

use bytes::Bytes;
use common::{connect5_packet, each_cores, start_with, Client, TestBroker};
use coremq::auth::scram::{ScramClient, ScramSha256, METHOD};
use coremq::codec::{Auth, Packet, Properties, QoS, Reason};
use coremq::Hooks;

fn broker(cores: usize) -> TestBroker {
    let mut scram = ScramSha256::new();
    scram.add_user_with("alice", "secret", b"integration-salt", 512);
    let mut hooks = Hooks::new();
    hooks.add_authenticator(scram);
    start_with(common::config(cores), hooks)
}

fn auth_props(data: &str) -> Properties {
    Properties {
        authentication_method: Some(METHOD.into()),
        authentication_data: Some(Bytes::from(data.to_owned())),
        ..Properties::default()
    }
}

fn auth(reason: Reason, data: &str) -> Packet {
    Packet::Auth(Auth {
        reason,
        props: Some(Box::new(auth_props(data))),
    })
}

/// The Authentication Data of an AUTH or CONNACK, as text, after checking
/// that it names SCRAM-SHA-256 [MQTT-4.12.0-5].
fn data_of(props: Option<&Properties>) -> String {
    let p = props.expect("properties");
    assert_eq!(p.authentication_method.as_deref(), Some(METHOD));
    let data = p.authentication_data.as_deref().unwrap_or_default();
    String::from_utf8(data.to_vec()).expect("SCRAM data is text")
}

/// Expect AUTH with `reason`; its data.
fn expect_auth(c: &mut Client, reason: Reason) -> String {
    match c.recv() {
        Some(Packet::Auth(a)) if a.reason == reason => data_of(a.props.as_deref()),
        other => panic!("expected AUTH {reason:?}, got {other:?}"),
    }
}

/// CONNECT as `id` with SCRAM for alice/`password` and answer server-first;
/// returns the client and the CONNACK that ended it.
fn scram_connect(
    b: &TestBroker,
    id: &str,
    password: &str,
) -> (Client, coremq::codec::ConnAck, ScramClient) {
    let mut scram = ScramClient::new("alice", password);
    let mut c = Client::raw(b.addr);
    let connect = connect5_packet(id, true, auth_props(&scram.first()));
    c.version = connect.version;
    c.send(&Packet::Connect(Box::new(connect)));
    // [MQTT-4.12.0-2]: AUTH 0x18 with server-first.
    let server_first = expect_auth(&mut c, Reason::CONTINUE_AUTHENTICATION);
    let fin = scram
        .answer(&server_first)
        .expect("well-formed server-first");
    // [MQTT-4.12.0-3]: the client answers with AUTH 0x18.
    c.send(&auth(Reason::CONTINUE_AUTHENTICATION, &fin));
    match c.recv() {
        Some(Packet::ConnAck(ack)) => (c, ack, scram),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn scram_connect_then_publish_and_receive() {
    // [MQTT-4.12.0-5]: CONNACK 0x00 carries the method and server-final.
    each_cores(|cores| {
        let b = broker(cores);
        for shard in 0..cores {
            let id = b.id_on("scram", shard);
            let (mut c, ack, scram) = scram_connect(&b, &id, "secret");
            assert_eq!(ack.code, Reason::SUCCESS, "{cores} shards, {id}");
            assert!(scram.verify_server(&data_of(ack.props.as_deref())));
            c.subscribe("auth/t", QoS::AtLeastOnce);
            c.publish("auth/t", b"hello", QoS::AtLeastOnce, false);
            let p = c.recv_publish().expect("own publish back");
            assert_eq!(&p.payload[..], b"hello");
        }
        let m = b.wait_metrics(|m| m.auth_successes == cores as u64);
        assert_eq!((m.auth_successes, m.auth_failures), (cores as u64, 0));
    });
}

#[test]
fn a_wrong_password_is_refused_and_closed() {
    // [MQTT-4.12.0-4]: CONNACK 0x86, then the connection is closed.
    each_cores(|cores| {
        let b = broker(cores);
        let id = b.id_on("wrong", cores - 1);
        let (mut c, ack, _) = scram_connect(&b, &id, "not-the-password");
        assert_eq!(ack.code, Reason::BAD_USER_NAME_OR_PASSWORD);
        assert!(ack.props.and_then(|p| p.authentication_method).is_none());
        assert!(c.closed(), "closed after the refusal");
        let m = b.wait_metrics(|m| m.auth_failures == 1);
        assert_eq!((m.auth_successes, m.auth_failures), (0, 1));
    });
}

#[test]
fn an_unknown_method_gets_0x8c() {
    // [MQTT-4.12.0-1]
    each_cores(|cores| {
        let b = broker(cores);
        let props = Properties {
            authentication_method: Some("GS2-KRB5".into()),
            ..Properties::default()
        };
        let (mut c, ack) = Client::connect_with(b.addr, connect5_packet("krb", true, props));
        assert_eq!(ack.code, Reason::BAD_AUTHENTICATION_METHOD);
        assert!(c.closed());
    });
}

/// Re-authenticate as alice with `password`, with a PINGREQ answered in the
/// middle (§4.12.1: other packets keep flowing). The final packet.
fn reauth(c: &mut Client, password: &str) -> Option<Packet> {
    let mut scram = ScramClient::new("alice", password);
    c.send(&auth(Reason::REAUTHENTICATE, &scram.first()));
    let server_first = expect_auth(c, Reason::CONTINUE_AUTHENTICATION);
    c.ping();
    let fin = scram
        .answer(&server_first)
        .expect("well-formed server-first");
    c.send(&auth(Reason::CONTINUE_AUTHENTICATION, &fin));
    let last = c.recv();
    if let Some(Packet::Auth(a)) = &last {
        assert!(scram.verify_server(&data_of(a.props.as_deref())));
    }
    last
}

#[test]
fn reauthentication_succeeds_then_a_failed_one_disconnects() {
    // [MQTT-4.12.1-1]: AUTH 0x19 with the same method, ended by AUTH 0x00;
    // [MQTT-4.12.1-2]: a failure is DISCONNECT with a reason, then closed.
    each_cores(|cores| {
        let b = broker(cores);
        let id = b.id_on("reauth", cores / 2);
        let (mut c, ack, _) = scram_connect(&b, &id, "secret");
        assert_eq!(ack.code, Reason::SUCCESS);
        match reauth(&mut c, "secret") {
            Some(Packet::Auth(a)) => assert_eq!(a.reason, Reason::SUCCESS),
            other => panic!("expected AUTH 0x00, got {other:?}"),
        }
        match reauth(&mut c, "guess") {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason, Reason::NOT_AUTHORIZED),
            other => panic!("expected DISCONNECT 0x87, got {other:?}"),
        }
        assert!(c.closed());
        let m = b.wait_metrics(|m| m.auth_failures == 1);
        assert_eq!((m.auth_successes, m.auth_failures), (2, 1));
    });
}
