//! `GET /metrics`: the node's counters in the OpenMetrics text format.
//!
//! Encoded with the prometheus-client crate from one fresh registry per
//! scrape: every shard counter of `crate::metrics` as `coremq_<name>_total`
//! (gauges as `coremq_<name>`) with a `shard` label, and the node's own
//! gauges (clients, sessions, subscriptions, topics, memory, descriptors,
//! alarms, uptime, each shard's busy share). Called by `routes.rs`.

use super::reply::{body, ApiResult};
use crate::control::sys::{self, OpsRef};
use crate::metrics::{GAUGES, HELP};
use crate::shard::ShardRef;
use hyper::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `shard` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Gather the node's figures and encode them.
pub async fn metrics(shard: &ShardRef, ops: &OpsRef) -> ApiResult {
    let node = sys::gather(shard).await;
    let mut reg = Registry::with_prefix("coremq");
    let per_shard: Vec<(String, Vec<(&'static str, u64)>)> = node
        .shards
        .iter()
        .map(|s| (s.shard.to_string(), s.metrics.pairs()))
        .collect();
    for (i, (name, help)) in HELP.iter().enumerate() {
        let help = match help.trim().trim_end_matches('.') {
            "" => name.replace('_', " "),
            h => h.to_owned(),
        };
        let label = |s: &String| ShardLabel { shard: s.clone() };
        if GAUGES.contains(name) {
            let fam = Family::<ShardLabel, Gauge>::default();
            for (s, pairs) in &per_shard {
                fam.get_or_create(&label(s)).set(pairs[i].1 as i64);
            }
            reg.register(*name, &help, fam);
        } else {
            let fam = Family::<ShardLabel, Counter>::default();
            for (s, pairs) in &per_shard {
                fam.get_or_create(&label(s)).inc_by(pairs[i].1);
            }
            reg.register(*name, &help, fam);
        }
    }
    let busy = Family::<ShardLabel, Gauge<f64, AtomicU64>>::default();
    for s in &node.shards {
        busy.get_or_create(&ShardLabel {
            shard: s.shard.to_string(),
        })
        .set(s.busy);
    }
    reg.register(
        "shard_busy_ratio",
        "Share of the last second each shard spent running (not waiting)",
        busy,
    );
    let o = ops.borrow();
    let node_gauges = [
        (
            "clients_connected",
            "MQTT clients connected",
            node.clients(),
        ),
        (
            "sessions_persistent",
            "Sessions that outlive their connection",
            node.sessions_persistent(),
        ),
        (
            "sessions_offline",
            "Sessions without a connection",
            node.sessions_offline(),
        ),
        (
            "subscriptions",
            "Subscriptions of all sessions",
            node.subscriptions(),
        ),
        (
            "topics",
            "Distinct non-shared filters subscribed",
            node.topics(),
        ),
        (
            "retained_messages",
            "Retained messages (each shard holds them all)",
            node.retained(),
        ),
        (
            "memory_bytes",
            "Resident memory of the broker",
            node.process.memory_bytes,
        ),
        (
            "memory_limit_bytes",
            "The memory the broker may use",
            node.process.memory_limit,
        ),
        ("open_fds", "Open file descriptors", node.process.fds),
        (
            "max_fds",
            "The file descriptor limit",
            node.process.fd_limit,
        ),
        (
            "alarms_active",
            "Alarms raised and not cleared",
            o.alarms.active().count() as u64,
        ),
        (
            "uptime_seconds",
            "Seconds since the broker started",
            o.started.elapsed().as_secs(),
        ),
    ];
    for (name, help, v) in node_gauges {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        reg.register(name, help, g);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &reg) {
        return Err(super::reply::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the metrics: {e}"),
        ));
    }
    Ok(body(StatusCode::OK, CONTENT_TYPE, text))
}
