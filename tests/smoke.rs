//! Smoke test: one publish crosses from a publisher to a subscriber, on 1 and 2 shards.
mod common;
use common::*;
use coremq::codec::QoS;

#[test]
fn publish_reaches_subscriber_on_each_shard_count() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("a/+", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("a/b", b"hi", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("delivered");
        assert_eq!(p.payload.as_ref(), b"hi");
        assert_eq!(p.qos, QoS::AtLeastOnce);
    });
}
