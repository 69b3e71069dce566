//! Embedding coremq: configure, hook, start on a free port, stop.
//!
//! `cargo run --example embedded -- [SECONDS]` runs a broker on 127.0.0.1
//! (a free port, printed) for SECONDS (default 10), logging every connect and
//! disconnect, stamping every payload published on `stamp/#`, and dropping
//! everything published on `private/#`. Point any MQTT client at it.

use bytes::Bytes;
use coremq::config::Cores;
use coremq::{Broker, Config};
use std::time::Duration;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);

    let mut cfg = Config::default();
    cfg.listener[0].bind = "127.0.0.1:0".into();
    cfg.runtime.cores = Cores::Count(2);

    let mut broker = Broker::new(cfg);
    let hooks = broker.hooks_mut();
    hooks.on_client_connected(|c| println!("connected: {} on shard {}", c.client_id, c.shard));
    hooks.on_client_disconnected(|c, why| println!("disconnected: {} ({why})", c.client_id));
    hooks.on_message_publish(|_client, mut msg| {
        if msg.topic.starts_with("private/") {
            return None;
        }
        if msg.topic.starts_with("stamp/") {
            let mut p = b"[coremq] ".to_vec();
            p.extend_from_slice(&msg.payload);
            msg.payload = Bytes::from(p);
        }
        Some(msg)
    });

    let handle = match broker.start() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "broker listening on {} with {} shards for {seconds} s",
        handle.local_addr(),
        handle.shards()
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let m = handle.metrics();
    println!(
        "received {} publishes, sent {}",
        m.publish_received, m.publish_sent
    );
    handle.stop();
    if let Err(e) = handle.join() {
        eprintln!("shard failure: {e}");
    }
}
