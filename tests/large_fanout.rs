//! A fan-out larger than `runtime.fanout_inline_max` is delivered in slices
//! by the shard's fan-out task; every subscriber still gets each message once,
//! in publish order, also when a smaller message to one of them is published
//! in between and when a burst to the big topic goes out session by session.
mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, QoS};

#[test]
fn fanout_beyond_one_chunk_keeps_order_and_delivers_once() {
    let mut cfg = config(1);
    cfg.runtime.fanout_inline_max = 1000;
    let b = start_with(cfg, coremq::Hooks::new());
    let subs: Vec<Client> = (0..1100)
        .map(|i| {
            let (mut c, _) = Client::connect(b.addr, &format!("big-{i}"), true);
            c.subscribe("big/topic", QoS::AtMostOnce);
            c
        })
        .collect();
    let mut subs = subs;
    subs[0].subscribe("small/topic", QoS::AtMostOnce);
    let (mut publ, _) = Client::connect(b.addr, "big-publisher", true);
    // One write: the broker handles all three in one go, while the first
    // fan-out is still pending.
    let mut bytes = Vec::new();
    for (pkid, (topic, payload)) in [
        ("big/topic", "m1"),
        ("small/topic", "s"),
        ("big/topic", "m2"),
        ("big/topic", "m3"),
        ("big/topic", "m4"),
    ]
    .iter()
    .enumerate()
    {
        let p = publish_packet(
            topic,
            payload.as_bytes(),
            QoS::AtLeastOnce,
            pkid as u16 + 1,
            false,
            false,
        );
        bytes.extend(packet_bytes(&Packet::Publish(p)));
    }
    publ.send_raw(&bytes);
    for pkid in 1..=5 {
        assert_eq!(publ.recv(), Some(Packet::PubAck(Ack::new(pkid))));
    }
    let first: Vec<String> = (0..5)
        .map(|_| text(&subs[0].recv_publish().expect("delivered")))
        .collect();
    assert_eq!(first, ["m1", "s", "m2", "m3", "m4"]);
    for (i, s) in subs.iter_mut().enumerate().skip(1) {
        let got: Vec<String> = (0..4)
            .map(|_| text(&s.recv_publish().expect("delivered")))
            .collect();
        assert_eq!(got, ["m1", "m2", "m3", "m4"], "subscriber {i}");
    }
    for s in subs.iter_mut().step_by(100) {
        s.expect_silence(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        b.wait_metrics(|m| m.publish_sent >= 4401).publish_sent,
        4401
    );
}
