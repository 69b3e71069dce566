//! MQTT over WebSocket (`ws` and `wss` listeners) over real sockets, at 1
//! and 2 shards: the upgrade's checks, packets cut across frames and frames
//! holding several packets, ping/pong, the close handshake, what a client
//! must not send, and the handoff of a WebSocket connection (with a frame
//! cut in the middle) to the client's home shard. MQTT 3.1.1 §6 and MQTT 5
//! §6 are the statements checked; paho-mqtt (`transport="websockets"`) and
//! MQTT.js in Chromium (tests/interop_browser.rs) check the same listener
//! with code nobody here wrote.

mod common;

use common::tls::{temp_dir, Ca, TlsClient, Version};
use common::ws::{self, upgrade, WsStream};
use common::{config, connect_packet, packet_bytes, publish_packet, start_with, Client};
use coremq::codec::{Packet, QoS, Reason, SubAckCode, Subscribe, SubscribeFilter};
use coremq::config::{ListenerConfig, ListenerKind};
use coremq::Hooks;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::Message;

const SHARDS: [usize; 2] = [1, 2];

/// A broker with its plain listener and a `ws` one on `path` (listener 1).
fn ws_broker(shards: usize, path: &str) -> (common::TestBroker, SocketAddr) {
    let mut cfg = config(shards);
    cfg.listener.push(ListenerConfig {
        kind: ListenerKind::Ws,
        bind: "127.0.0.1:0".into(),
        path: path.into(),
        ..ListenerConfig::default()
    });
    let b = start_with(cfg, Hooks::new());
    let ws = b.handle.as_ref().unwrap().listener_addr(1).unwrap();
    (b, ws)
}

fn ws_client(addr: SocketAddr, id: &str) -> Client<WsStream<TcpStream>> {
    let (c, ack) = Client::over(ws::connect(addr, "/mqtt")).handshake(connect_packet(id, true));
    assert_eq!(ack.code, Reason::SUCCESS, "CONNACK over ws for {id}");
    c
}

fn subscribe_packet(filter: &str, pkid: u16) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }],
        props: None,
    })
}

#[test]
fn ws_clients_homed_on_every_shard_exchange_messages_with_tcp_clients() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        for home in 0..shards {
            let mut sub = ws_client(wsa, &b.id_on("ws-sub", home));
            assert_eq!(
                sub.subscribe("ws/t", QoS::AtLeastOnce),
                SubAckCode::Granted(QoS::AtLeastOnce)
            );
            let (mut tcp, _) = Client::connect(b.addr, &b.id_on("tcp", (home + 1) % shards), true);
            tcp.publish("ws/t", b"from tcp", QoS::AtLeastOnce, false);
            let got = sub.recv_publish().expect("ws subscriber gets the message");
            assert_eq!((&*got.topic, &got.payload[..]), ("ws/t", &b"from tcp"[..]));
            sub.ack(&got);
            // A large message: several frames' worth from the broker.
            assert_eq!(
                tcp.subscribe("tcp/t", QoS::AtMostOnce),
                SubAckCode::Granted(QoS::AtMostOnce)
            );
            let big = vec![7u8; 300_000];
            sub.publish("tcp/t", &big, QoS::AtLeastOnce, false);
            let got = tcp
                .recv_publish()
                .expect("tcp subscriber gets the ws message");
            assert_eq!(got.payload.len(), big.len(), "shard {home}");
            sub.disconnect_wait();
        }
    }
}

#[test]
fn packets_cut_across_frames_and_frames_holding_several_packets() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        for home in 0..shards {
            let mut s = ws::connect(wsa, "/mqtt");
            // [MQTT-6.0.0-2]: a CONNECT in three frames, the middle two as
            // one fragmented message (a binary frame and a continuation).
            let connect = packet_bytes(&Packet::Connect(Box::new(connect_packet(
                &b.id_on("cut", home),
                true,
            ))));
            let (a, m) = (3, connect.len() - 4);
            s.send_frame(OpCode::Data(Data::Binary), &connect[..a], true)
                .unwrap();
            s.send_frame(OpCode::Data(Data::Binary), &connect[a..m], false)
                .unwrap();
            s.send_frame(OpCode::Data(Data::Continue), &connect[m..], true)
                .unwrap();
            // SUBSCRIBE, PUBLISH and the first two bytes of PINGREQ in one
            // frame; the rest of the PINGREQ alone.
            let mut batch = packet_bytes(&subscribe_packet("cut/#", 1));
            let publish = publish_packet("cut/x", b"hi", QoS::AtLeastOnce, 2, false, false);
            batch.extend(packet_bytes(&Packet::Publish(publish)));
            batch.extend([0xC0, 0x00]);
            s.send_cut(&batch, &[batch.len() - 1]).unwrap();
            let mut c = Client::over(s);
            let ack = c.recv();
            assert!(matches!(ack, Some(Packet::ConnAck(a)) if a.code == Reason::SUCCESS));
            // The broker may deliver before the SUBACK (MQTT 3.1.1 §3.8.4).
            let mut kinds = Vec::new();
            for _ in 0..4 {
                kinds.push(match c.recv().expect("four replies") {
                    Packet::SubAck(_) => "suback",
                    Packet::PubAck(_) => "puback",
                    Packet::Publish(p) if &p.payload[..] == b"hi" => "publish",
                    Packet::PingResp => "pingresp",
                    other => panic!("unexpected {other:?}"),
                });
            }
            kinds.sort_unstable();
            assert_eq!(
                kinds,
                ["pingresp", "puback", "publish", "suback"],
                "shard {home}"
            );
        }
    }
}

/// A client whose home is the other shard sends CONNECT, SUBSCRIBE and
/// half a PUBLISH frame before the handoff: the home shard resumes the
/// WebSocket mid-frame, with the bytes the first shard had read.
#[test]
fn the_handoff_carries_the_websocket_state_mid_frame() {
    let (b, wsa) = ws_broker(2, "/mqtt");
    for home in 0..2 {
        let s = ws::connect(wsa, "/mqtt");
        let mut c = Client::over(s);
        let id = b.id_on("mid", home);
        let mut first = packet_bytes(&Packet::Connect(Box::new(connect_packet(&id, true))));
        first.extend(packet_bytes(&subscribe_packet("mid/#", 1)));
        let publish = packet_bytes(&Packet::Publish(publish_packet(
            "mid/x",
            &[5u8; 2000],
            QoS::AtLeastOnce,
            2,
            false,
            false,
        )));
        first.extend(&publish[..1000]);
        c.stream
            .send_frame(OpCode::Data(Data::Binary), &first, false)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.stream
            .send_frame(OpCode::Data(Data::Continue), &publish[1000..], true)
            .unwrap();
        assert!(matches!(c.recv(), Some(Packet::ConnAck(a)) if a.code == Reason::SUCCESS));
        assert!(c.recv_match(|p| matches!(p, Packet::SubAck(_))).is_some());
        let got = c.recv_publish().expect("own message back");
        assert_eq!(got.payload.len(), 2000, "home shard {home}");
    }
}

#[test]
fn the_upgrade_checks_path_and_subprotocol() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        let tcp = || TcpStream::connect(wsa).unwrap();
        assert_eq!(upgrade(tcp(), wsa, "/other", "mqtt").err(), Some(404));
        // [MQTT-6.0.0-3]: the client must offer "mqtt"; coremq refuses
        // an upgrade that offers no MQTT subprotocol.
        assert_eq!(upgrade(tcp(), wsa, "/mqtt", "").err(), Some(400));
        assert_eq!(upgrade(tcp(), wsa, "/mqtt", "wamp").err(), Some(400));
        // [MQTT-6.0.0-4]: "mqtt" is selected when offered with others;
        // MQTT 3.1's "mqttv3.1" alone is accepted too.
        for (offer, chosen) in [("wamp, mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1")] {
            let (_s, resp) = upgrade(tcp(), wsa, "/mqtt?x=1", offer).expect("upgrade");
            let got = resp.headers().get("Sec-WebSocket-Protocol").unwrap();
            assert_eq!(got.to_str().unwrap(), chosen);
        }
        let m = b.wait_metrics(|m| m.ws_handshakes_refused >= 3);
        assert_eq!(m.ws_handshakes_refused, 3);
    }
}

#[test]
fn a_configured_path_is_served() {
    let (_b, wsa) = ws_broker(1, "/broker/ws");
    assert_eq!(
        upgrade(TcpStream::connect(wsa).unwrap(), wsa, "/mqtt", "mqtt").err(),
        Some(404)
    );
    let (c, ack) =
        Client::over(ws::connect(wsa, "/broker/ws")).handshake(connect_packet("path", true));
    assert_eq!(ack.code, Reason::SUCCESS);
    drop(c);
}

#[test]
fn ping_is_answered_and_a_close_is_echoed_then_the_will_goes_out() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        for home in 0..shards {
            let (mut watcher, _) = Client::connect(b.addr, &b.id_on("watch", home), true);
            watcher.subscribe("will/ws", QoS::AtMostOnce);
            let mut connect = connect_packet(&b.id_on("closer", home), true);
            connect.will = Some(common::will("will/ws", "gone", QoS::AtMostOnce, false));
            let (mut c, ack) = Client::over(ws::connect(wsa, "/mqtt")).handshake(connect);
            assert_eq!(ack.code, Reason::SUCCESS);
            c.stream
                .send_message(Message::Ping(b"are you there"[..].into()))
                .unwrap();
            match c.stream.next_control(common::WAIT) {
                Some(Message::Pong(p)) => assert_eq!(&p[..], b"are you there"),
                other => panic!("expected a pong, got {other:?}"),
            }
            // The close handshake: the broker answers with a close frame
            // (RFC 6455 §5.5.1), then ends the connection; no DISCONNECT
            // was sent, so the will is published [MQTT-3.1.2-8].
            c.stream.send_message(Message::Close(None)).unwrap();
            assert_eq!(c.stream.close_code(), Some(1000), "shard {home}");
            let will = watcher.recv_publish().expect("the will");
            assert_eq!(&will.payload[..], b"gone");
        }
    }
}

/// When the broker ends a connection with nothing left to send (a
/// takeover of a 3.1.1 client, a keepalive timeout) it still sends a close
/// frame first (RFC 6455 §5.5.1), so the client sees a clean close.
#[test]
fn the_broker_closes_with_a_close_frame_even_with_nothing_to_send() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        for home in 0..shards {
            let id = b.id_on("taken", home);
            let mut old = ws_client(wsa, &id);
            let _new = ws_client(wsa, &id);
            assert_eq!(
                old.stream.close_code(),
                Some(1000),
                "takeover, shard {home}"
            );
            let mut connect = connect_packet(&b.id_on("silent", home), true);
            connect.keep_alive = 1;
            let (mut quiet, ack) = Client::over(ws::connect(wsa, "/mqtt")).handshake(connect);
            assert_eq!(ack.code, Reason::SUCCESS);
            // [MQTT-3.1.2-24]: closed after 1.5 keepalives without a packet.
            assert_eq!(
                quiet.stream.close_code(),
                Some(1000),
                "keepalive, shard {home}"
            );
        }
    }
}

#[test]
fn frames_a_client_must_not_send_close_the_connection_with_the_rfc_code() {
    for shards in SHARDS {
        let (b, wsa) = ws_broker(shards, "/mqtt");
        for home in 0..shards {
            let id = b.id_on("bad", home);
            // [MQTT-6.0.0-1]: a text frame closes the connection (1003).
            let mut c = ws_client(wsa, &id);
            c.stream.send_message(Message::text("not mqtt")).unwrap();
            assert_eq!(c.stream.close_code(), Some(1003), "text, shard {home}");
            // A continuation with no message open is a protocol error (1002).
            let mut c = ws_client(wsa, &id);
            c.stream
                .send_frame(OpCode::Data(Data::Continue), b"x", true)
                .unwrap();
            assert_eq!(c.stream.close_code(), Some(1002), "continue, shard {home}");
        }
        // The other clients are not touched.
        let (mut tcp, _) = Client::connect(b.addr, "bystander", true);
        tcp.ping();
    }
}

/// `wss`: the same MQTT over WebSocket over TLS, with the test's CA.
#[test]
fn wss_carries_mqtt_over_websocket_over_tls() {
    let dir = temp_dir("wss");
    let ca = Ca::new(&dir, "wss");
    let server = ca.server();
    for shards in SHARDS {
        let mut cfg = config(shards);
        let mut l = common::tls::listener(&server, None, Default::default());
        l.kind = ListenerKind::Wss;
        cfg.listener.push(l);
        let b = start_with(cfg, Hooks::new());
        let wss = b.handle.as_ref().unwrap().listener_addr(1).unwrap();
        for home in 0..shards {
            let tls = TlsClient::open(wss, &ca.file, None, Version::V13)
                .expect("TLS handshake")
                .into_stream();
            let (s, resp) = upgrade(tls, wss, "/mqtt", "mqtt").expect("upgrade over TLS");
            assert_eq!(resp.status().as_u16(), 101);
            let id = b.id_on("wss", home);
            let (mut c, ack) = Client::over(s).handshake(connect_packet(&id, true));
            assert_eq!(ack.code, Reason::SUCCESS, "shard {home}");
            c.subscribe("wss/t", QoS::AtLeastOnce);
            let (mut tcp, _) = Client::connect(b.addr, &b.id_on("wss-pub", 0), true);
            tcp.publish("wss/t", b"sealed", QoS::AtLeastOnce, false);
            let got = c.recv_publish().expect("over wss");
            assert_eq!(&got.payload[..], b"sealed");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// paho-mqtt (`transport="websockets"`) over `ws` at 2 shards, on a
/// configured path, and over `wss` verifying the broker against the CA.
#[test]
fn paho_over_websocket_and_websocket_over_tls() {
    let (_b, wsa) = ws_broker(2, "/paho");
    common::binary::paho_over(
        wsa.port(),
        &["--transport", "websockets", "--path", "/paho"],
    );
    let dir = temp_dir("wss-paho");
    let ca = Ca::new(&dir, "paho");
    let mut cfg = config(2);
    let mut l = common::tls::listener(&ca.server(), None, Default::default());
    l.kind = ListenerKind::Wss;
    cfg.listener.push(l);
    let b = start_with(cfg, Hooks::new());
    let wss = b.handle.as_ref().unwrap().listener_addr(1).unwrap();
    let cafile = ca.file.display().to_string();
    common::binary::paho_over(
        wss.port(),
        &["--transport", "websockets", "--cafile", &cafile],
    );
    let _ = std::fs::remove_dir_all(dir);
}
