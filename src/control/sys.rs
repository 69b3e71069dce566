//! The control task of shard 0: alarms every check, `$SYS` every interval.
//!
//! [`run`] gathers the node's figures ([`gather`]: one `Stats` question to
//! every shard over the mesh, the process's memory and descriptors read on a
//! blocking thread), feeds them to the [`Alarms`](super::alarms::Alarms) and
//! publishes each raise and clear on `$SYS/brokers/<node>/alarms/alert|clear`;
//! every `sys.interval_s` it publishes the node's state under
//! `$SYS/brokers/<node>/` ([`sys_topics`]). [`Ops`] is what the task
//! and the HTTP listener (same thread) share: the alarms, the start time and
//! the most clients seen. [`Shard::client_event`] publishes the optional
//! connected/disconnected messages from the client's home shard.

use super::alarms::{Alarms, Change, Observation};
use super::ask::{Answer, Ask, ShardStats};
use super::process::Process;
use crate::codec::{Publish, QoS};
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::shard::{Shard, ShardRef};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What the control task and the HTTP listener of shard 0 share.
#[derive(Debug)]
pub struct Ops {
    pub alarms: Alarms,
    pub started: Instant,
    /// The most clients connected at once, as the checks saw it.
    pub clients_max: u64,
    /// The listeners' max_connections summed (the connections alarm's limit).
    pub max_connections: u64,
}

pub type OpsRef = Rc<RefCell<Ops>>;

impl Ops {
    pub fn new(max_connections: u64) -> OpsRef {
        Rc::new(RefCell::new(Ops {
            alarms: Alarms::default(),
            started: Instant::now(),
            clients_max: 0,
            max_connections,
        }))
    }
}

/// The node's figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Every shard's figures that answered, by shard id.
    pub shards: Vec<ShardStats>,
    /// Shards that did not answer in time.
    pub missing: Vec<usize>,
    /// Counters summed over the shards.
    pub total: Metrics,
    pub process: Process,
}

impl Node {
    fn sum(&self, f: impl Fn(&ShardStats) -> u64) -> u64 {
        self.shards.iter().map(f).sum()
    }

    /// MQTT clients connected (sessions with a connection).
    pub fn clients(&self) -> u64 {
        self.sum(|s| s.metrics.sessions - s.sessions_offline.min(s.metrics.sessions))
    }

    pub fn sessions(&self) -> u64 {
        self.total.sessions
    }

    pub fn sessions_persistent(&self) -> u64 {
        self.sum(|s| s.sessions_persistent)
    }

    pub fn sessions_offline(&self) -> u64 {
        self.sum(|s| s.sessions_offline)
    }

    pub fn subscriptions(&self) -> u64 {
        self.sum(|s| s.subscriptions)
    }

    /// Distinct filters node-wide: every shard's replica knows them all.
    pub fn topics(&self) -> u64 {
        self.shards.first().map_or(0, |s| s.topics)
    }

    /// Retained messages: every shard holds the whole set.
    pub fn retained(&self) -> u64 {
        self.shards.first().map_or(0, |s| s.metrics.retained)
    }

    /// Messages dropped, every reason together.
    pub fn dropped(&self) -> u64 {
        dropped(&self.total).iter().map(|(_, n)| n).sum()
    }
}

/// Messages dropped, by reason (the `$SYS` and API names).
pub fn dropped(m: &Metrics) -> [(&'static str, u64); 10] {
    [
        ("queue_full", m.dropped_queue_full),
        ("expired", m.dropped_expired),
        ("no_subscribers", m.dropped_no_subscribers),
        ("denied", m.acl_denied_publish + m.dropped_by_hook),
        ("too_large", m.dropped_too_large),
        ("qos0_slow", m.dropped_qos0_slow),
        ("qos0_offline", m.dropped_qos0_offline),
        ("session_discarded", m.dropped_session_discarded),
        ("payload_format", m.dropped_payload_format),
        ("shared_no_member", m.shared_dropped_no_member),
    ]
}

/// Ask every shard for its figures and read the process's.
pub async fn gather(shard: &ShardRef) -> Node {
    let answers = super::ask_all(shard, Ask::Stats).await;
    let mut node = Node::default();
    for (i, a) in answers.into_iter().enumerate() {
        match a {
            Some(Answer::Stats(st)) => {
                node.total.merge(&st.metrics);
                node.shards.push(*st);
            }
            _ => node.missing.push(i),
        }
    }
    let (limit, cached) = {
        let sh = shard.borrow();
        (sh.cfg.alarms.memory_limit_bytes, sh.control.fds())
    };
    let mut p = glommio::executor()
        .spawn_blocking(move || Process::read(limit, cached.is_none()))
        .await;
    match cached {
        Some(n) => p.fds = n,
        None => shard.borrow_mut().control.set_fds(p.fds),
    }
    node.process = p;
    node
}

/// Run until the broker stops (on shard 0).
pub async fn run(shard: ShardRef, ops: OpsRef) {
    let (check, interval) = {
        let cfg = &shard.borrow().cfg;
        (cfg.alarms.check_interval_s, cfg.sys.interval_s)
    };
    let mut next_sys = Instant::now() + Duration::from_secs(interval.min(1));
    loop {
        glommio::timer::sleep(Duration::from_secs(check)).await;
        if shard.borrow().stop.load(Ordering::Relaxed) {
            return;
        }
        let node = gather(&shard).await;
        let changes = {
            let mut o = ops.borrow_mut();
            o.clients_max = o.clients_max.max(node.clients());
            let obs = Observation {
                process: node.process,
                connections: node.total.connections_open,
                max_connections: o.max_connections,
                shards: node.shards.clone(),
                missing: node.missing.clone(),
            };
            let cfg = shard.borrow().cfg.clone();
            o.alarms.check(&cfg.alarms, &obs, now_ms())
        };
        let mut sh = shard.borrow_mut();
        for c in changes {
            let (kind, alarm) = match c {
                Change::Raised(a) => ("alert", a),
                Change::Cleared(a) => ("clear", a),
            };
            let json = serde_json::to_string(&alarm).unwrap_or_default();
            sh.publish_broker(&format!("alarms/{kind}"), json.into_bytes());
        }
        if interval > 0 && Instant::now() >= next_sys {
            next_sys = Instant::now() + Duration::from_secs(interval);
            let o = ops.borrow();
            for (topic, value) in sys_topics(&node, &o, sh.cfg.runtime.node_id) {
                sh.publish_broker(&topic, value.into_bytes());
            }
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    crate::message::wall_clock_us() / 1000
}

/// Every `$SYS/brokers/<node>/...` topic (without that prefix) and its value.
pub fn sys_topics(node: &Node, ops: &Ops, node_id: u16) -> Vec<(String, String)> {
    let m = &node.total;
    let mut out: Vec<(String, String)> = vec![
        ("version".into(), env!("CARGO_PKG_VERSION").into()),
        ("uptime".into(), ops.started.elapsed().as_secs().to_string()),
        ("datetime".into(), rfc3339(now_ms() / 1000)),
        ("sysdescr".into(), sysdescr(node_id)),
    ];
    let mut put = |k: &str, v: u64| out.push((k.to_owned(), v.to_string()));
    put("clients/connected", node.clients());
    put("clients/maximum", ops.clients_max.max(node.clients()));
    put("sessions/count", node.sessions());
    put("sessions/persistent", node.sessions_persistent());
    put("sessions/offline", node.sessions_offline());
    put("subscriptions/count", node.subscriptions());
    put("topics/count", node.topics());
    put("retained/count", node.retained());
    put("bytes/received", m.bytes_received);
    put("bytes/sent", m.bytes_sent);
    put("messages/received", m.publish_received);
    put("messages/sent", m.publish_sent);
    put("messages/dropped", node.dropped());
    for (reason, n) in dropped(m) {
        put(&format!("messages/dropped/{reason}"), n);
    }
    put("packets/received/publish", m.publish_received);
    put("packets/sent/publish", m.publish_sent + m.publish_resent);
    for (name, n) in m.pairs() {
        if let Some(kind) = name.strip_prefix("packets_received_") {
            put(&format!("packets/received/{kind}"), n);
        } else if let Some(kind) = name.strip_prefix("packets_sent_") {
            put(&format!("packets/sent/{kind}"), n);
        }
    }
    put("mailbox/sent", m.mailbox_msgs_sent);
    put("mailbox/batches", m.mailbox_batches_sent);
    put("mailbox/overflows", m.mailbox_overflows);
    put("memory", node.process.memory_bytes);
    put("fds", node.process.fds);
    for st in &node.shards {
        let i = st.shard;
        put(
            &format!("shards/{i}/connections"),
            st.metrics.connections_open,
        );
        put(
            &format!("shards/{i}/messages/received"),
            st.metrics.publish_received,
        );
        put(
            &format!("shards/{i}/messages/sent"),
            st.metrics.publish_sent,
        );
        put(
            &format!("shards/{i}/mailbox/sent"),
            st.metrics.mailbox_msgs_sent,
        );
        put(
            &format!("shards/{i}/busy_percent"),
            (st.busy * 100.0).round() as u64,
        );
    }
    for (name, n) in m.pairs() {
        put(&format!("metrics/{name}"), n);
    }
    out
}

/// A client id as one topic level: `/`, `+`, `#` and `%` percent-encoded
/// (a topic name sent to subscribers holds no wildcard [MQTT-3.3.2-2]).
pub fn topic_level(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '/' => out.push_str("%2F"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// The broker's one-line description.
pub fn sysdescr(node_id: u16) -> String {
    format!("coremq {} node {node_id}", env!("CARGO_PKG_VERSION"))
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the epoch (UTC).
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Shard {
    /// Publish `payload` on `$SYS/brokers/<node>/<sub>` from the broker
    /// itself (no client id), at QoS 0, not retained: the values are
    /// published again every interval, and a retained copy would be sent to
    /// every shard's replica (and the log) each time.
    pub(crate) fn publish_broker(&mut self, sub: &str, payload: Vec<u8>) {
        let topic = format!("$SYS/brokers/{}/{sub}", self.cfg.runtime.node_id);
        self.publish_as_broker(topic.into(), payload.into(), QoS::AtMostOnce, false);
    }

    /// Publish a message from the broker itself (`$SYS`, the HTTP API);
    /// returns its id, None if a hook dropped it.
    pub(crate) fn publish_as_broker(
        &mut self,
        topic: std::sync::Arc<str>,
        payload: bytes::Bytes,
        qos: QoS,
        retain: bool,
    ) -> Option<crate::message::MsgId> {
        let info = ClientInfo {
            client_id: "".into(),
            username: None,
            peer: None,
            version: crate::codec::ProtocolVersion::V311,
            shard: self.id,
        };
        let p = Publish {
            dup: false,
            qos,
            retain,
            topic,
            pkid: 0,
            payload,
            props: None,
        };
        self.publish_message(&info, p, None).id
    }

    /// With `sys.client_events`: a JSON message on
    /// `$SYS/brokers/<node>/clients/<id>/connected` (or `disconnected`, with
    /// the reason) as emqttd published them.
    pub(crate) fn client_event(&mut self, info: &ClientInfo, reason: Option<&str>) {
        if !self.cfg.sys.client_events {
            return;
        }
        let mut json = serde_json::json!({
            "clientid": &*info.client_id,
            "username": info.username.as_deref(),
            "ipaddress": info.peer.map(|p| p.ip().to_string()),
            "proto_ver": info.version.level(),
            "ts": now_ms(),
        });
        let what = match reason {
            None => "connected",
            Some(r) => {
                json["reason"] = r.into();
                "disconnected"
            }
        };
        let sub = format!("clients/{}/{what}", topic_level(&info.client_id));
        self.publish_broker(&sub, json.to_string().into_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_become_one_level() {
        assert_eq!(topic_level("dev-1"), "dev-1");
        assert_eq!(topic_level("a/b+c#d%"), "a%2Fb%2Bc%23d%25");
    }

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_302_861), "2026-12-03T13:01:01Z");
    }
}
