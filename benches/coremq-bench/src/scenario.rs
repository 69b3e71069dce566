//! Scenario shapes: who subscribes to what, who publishes where, how fast,
//! and how many deliveries each published message should produce.
//!
//! Owns [`Plan`], built once from [`Args`] in every process (parent and
//! workers compute the same plan, so nothing but argv crosses processes).
//! Called by `engine.rs` (per-client specs, rates) and by `client.rs`
//! (expected fan-out per publisher for the loss accounting).

use crate::args::{Args, Shape};
use coremq::codec::QoS;

/// A fully resolved run shape.
#[derive(Clone, Debug)]
pub struct Plan {
    pub shape: Shape,
    /// Connections over all workers.
    pub total: u64,
    /// fanout: publishers (indices 0..publishers); fanin: publishers (0..total-1).
    pub publishers: u64,
    /// emq2015 / sub / pub: number of topics (0 = one topic per client).
    pub topics: u64,
    /// sub / pub topic pattern (`%i` = client index or index mod topics).
    pub pattern: String,
    pub qos: QoS,
    /// Messages per second per publisher; 0 = as fast as the window allows.
    pub rate_per_pub: f64,
    /// Whether the shape knows every subscriber, so loss can be computed.
    pub verify: bool,
}

/// What one client does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    pub index: u64,
    pub client_id: String,
    pub subscribe: Option<String>,
    pub publish: Option<String>,
}

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtMostOnce)
}

impl Plan {
    pub fn from_args(a: &Args) -> Plan {
        let (clients, qos, rate) = match a.shape {
            Shape::Conn => (1000, 0, 0.0),
            Shape::Sub | Shape::Pub => (1, 0, 1.0),
            Shape::Emq2015 => (15000, 1, 4000.0),
            Shape::Fanout | Shape::Fanin => (100, 0, 0.0),
            Shape::P2p => (100, 1, 1000.0),
        };
        let c = a.clients.unwrap_or(clients).max(1);
        let publishers = match a.shape {
            Shape::Fanout => a.publishers.unwrap_or(1).max(1),
            Shape::Fanin | Shape::P2p | Shape::Emq2015 | Shape::Pub => c,
            Shape::Conn | Shape::Sub => 0,
        };
        let total = match a.shape {
            Shape::Fanout => c + publishers,
            Shape::Fanin => c + 1,
            _ => c,
        };
        let topics = match a.shape {
            Shape::Emq2015 => a.topics.unwrap_or(c / 5).clamp(1, c),
            _ => a.topics.unwrap_or(0),
        };
        let rate_per_pub = match (a.interval_ms, a.rate.unwrap_or(rate)) {
            (Some(ms), _) => 1000.0 / ms,
            (None, r) if publishers > 0 => r / publishers as f64,
            _ => 0.0,
        };
        Plan {
            shape: a.shape,
            total,
            publishers,
            topics,
            pattern: a.topic.clone().unwrap_or_else(|| "bench/%i".into()),
            qos: qos_of(a.qos.unwrap_or(qos)),
            rate_per_pub,
            verify: matches!(
                a.shape,
                Shape::Emq2015 | Shape::Fanout | Shape::Fanin | Shape::P2p
            ),
        }
    }

    fn pattern_topic(&self, i: u64) -> String {
        let n = if self.topics > 0 { i % self.topics } else { i };
        self.pattern.replace("%i", &n.to_string())
    }

    /// The role of client `i` (0 <= i < total).
    pub fn client(&self, i: u64, prefix: &str) -> ClientSpec {
        let (subscribe, publish) = match self.shape {
            Shape::Conn => (None, None),
            Shape::Sub => (Some(self.pattern_topic(i)), None),
            Shape::Pub => (None, Some(self.pattern_topic(i))),
            Shape::Emq2015 => {
                let t = format!("bench/{}", i % self.topics);
                (Some(t.clone()), Some(t))
            }
            Shape::Fanout if i < self.publishers => (None, Some("bench/fanout".into())),
            Shape::Fanout => (Some("bench/fanout".into()), None),
            Shape::Fanin if i < self.publishers => (None, Some(format!("bench/fanin/{i}"))),
            Shape::Fanin => (Some("bench/fanin/+".into()), None),
            Shape::P2p => {
                let partner = if i ^ 1 < self.total { i ^ 1 } else { i };
                (
                    Some(format!("bench/p2p/{i}")),
                    Some(format!("bench/p2p/{partner}")),
                )
            }
        };
        ClientSpec {
            index: i,
            client_id: format!("{prefix}-{}-{i}", self.shape.name()),
            subscribe,
            publish,
        }
    }

    /// How many subscribers receive each message of publisher `i`.
    pub fn fanout_of(&self, i: u64) -> u64 {
        match self.shape {
            Shape::Emq2015 => {
                let per = self.total / self.topics;
                per + u64::from(i % self.topics < self.total % self.topics)
            }
            Shape::Fanout => self.total - self.publishers,
            Shape::Fanin | Shape::P2p => 1,
            Shape::Conn | Shape::Sub | Shape::Pub => 0,
        }
    }

    /// Indices of the clients worker `w` of `k` runs.
    pub fn worker_share(&self, w: u64, k: u64) -> impl Iterator<Item = u64> {
        (w..self.total).step_by(k.max(1) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse;

    fn plan(s: &str) -> Plan {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        Plan::from_args(&parse(&v).unwrap())
    }

    /// Count, by brute force, who subscribes to publisher i's topic.
    fn brute_fanout(p: &Plan, i: u64) -> u64 {
        let topic = p.client(i, "x").publish.unwrap();
        (0..p.total)
            .filter_map(|j| p.client(j, "x").subscribe)
            .filter(|f| coremq::topic::matches(f, &topic))
            .count() as u64
    }

    #[test]
    fn emq2015_shape() {
        let p = plan("scenario emq2015 -c 103");
        assert_eq!((p.total, p.topics, p.qos), (103, 20, QoS::AtLeastOnce));
        assert!((p.rate_per_pub - 4000.0 / 103.0).abs() < 1e-9);
        for i in 0..p.total {
            assert_eq!(p.fanout_of(i), brute_fanout(&p, i), "client {i}");
        }
    }

    #[test]
    fn fanout_fanin_p2p_shapes() {
        for s in [
            "scenario fanout -c 7 --publishers 2",
            "scenario fanin -c 9",
            "scenario p2p -c 5",
        ] {
            let p = plan(s);
            assert!(p.verify);
            for i in 0..p.total {
                if p.client(i, "x").publish.is_some() {
                    assert_eq!(p.fanout_of(i), brute_fanout(&p, i), "{s} client {i}");
                }
            }
        }
        assert_eq!(plan("scenario fanout -c 7 --publishers 2").total, 9);
        assert_eq!(plan("scenario fanin -c 9").total, 10);
        assert_eq!(plan("scenario p2p -c 5 --interval 100").rate_per_pub, 10.0);
    }

    #[test]
    fn sub_pub_patterns_and_shares() {
        let p = plan("sub -c 4 -t a/%i/b --topics 3");
        assert_eq!(p.client(3, "x").subscribe.as_deref(), Some("a/0/b"));
        assert!(!p.verify);
        let p = plan("pub -c 4 -t t/%i");
        assert_eq!(p.client(2, "pre").publish.as_deref(), Some("t/2"));
        assert_eq!(p.client(2, "pre").client_id, "pre-pub-2");
        let all: Vec<u64> = (0..3).flat_map(|w| p.worker_share(w, 3)).collect();
        assert_eq!(all.len(), 4);
    }
}
