//! Counters, the latency histogram, and the per-worker result that travels to
//! the parent as one text line.
//!
//! Owns [`Counters`] (atomics shared by the executors of one worker: the
//! client tasks bump them, the worker's main thread prints them each second),
//! and [`WorkerResult`]. Called by `client.rs`/`engine.rs` (recording),
//! `workers.rs` (parsing worker output and merging) and `report.rs`.
//!
//! Wire format between worker and parent: `KEY k=v k=v ...` lines; the
//! histogram is a bucket list `hist=value:count,value:count` of microseconds,
//! merged in the parent by re-recording each bucket.

use crate::verify::Tally;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Highest latency recorded, microseconds (1 hour); higher values are clamped.
const HIST_MAX_US: u64 = 3_600_000_000;

/// A new latency histogram in microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

/// Record one latency in nanoseconds (clamped to the histogram's range).
pub fn record_latency(h: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1000).clamp(1, HIST_MAX_US);
    h.saturating_record(us);
}

/// The histogram as `value:count` pairs, comma separated (empty if empty).
pub fn histogram_to_string(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    for v in h.iter_recorded() {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(&format!("{}:{}", v.value_iterated_to(), v.count_at_value()));
    }
    s
}

/// Parse [`histogram_to_string`] output and add it into `into`.
pub fn merge_histogram_str(into: &mut Histogram<u64>, s: &str) -> Result<(), String> {
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (v, c) = pair
            .split_once(':')
            .ok_or_else(|| format!("bad bucket '{pair}'"))?;
        let v: u64 = v.parse().map_err(|_| format!("bad bucket value '{v}'"))?;
        let c: u64 = c.parse().map_err(|_| format!("bad bucket count '{c}'"))?;
        into.record_n(v.clamp(1, HIST_MAX_US), c)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Declares the live counters, their snapshot, the sum of snapshots and
/// their `k=v` form from one field list, so that they cannot drift apart.
macro_rules! worker_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters of one worker; every field is cumulative except `connected`.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Counters`] at one instant.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $(pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Snapshot {
            pub fn add(&mut self, o: &Snapshot) {
                $(self.$name += o.$name;)*
            }

            pub fn to_kv(self) -> String {
                let fields: Vec<String> =
                    vec![$(format!("{}={}", stringify!($name), self.$name),)*];
                fields.join(" ")
            }

            pub fn from_kv(kv: &HashMap<&str, &str>) -> Result<Snapshot, String> {
                Ok(Snapshot { $($name: field(kv, stringify!($name))?,)* })
            }
        }
    };
}

worker_counters! {
    /// Connections open right now (CONNACK received, not closed).
    connected,
    connect_ok,
    /// Refused, reset, rejected CONNACK or failed SUBSCRIBE.
    connect_fail,
    /// Established connections the broker (or the network) closed early.
    closed,
    /// PUBLISH packets written by publishers.
    sent,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received; QoS 0 counts as acked when sent.
    acked,
    /// PUBLISH packets received by subscribers.
    received,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Split `k=v k=v` into a map (the line's first word is the caller's business).
pub fn parse_kv(s: &str) -> HashMap<&str, &str> {
    s.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

pub fn field<T: std::str::FromStr>(kv: &HashMap<&str, &str>, k: &str) -> Result<T, String> {
    let v = kv.get(k).ok_or_else(|| format!("missing field '{k}'"))?;
    v.parse().map_err(|_| format!("bad field {k}={v}"))
}

/// When the last client of a worker finished connecting (TCP, TLS,
/// WebSocket, CONNECT and SUBSCRIBE), from when its executors started:
/// the span over which the connect (and handshake) rate is reported.
pub struct ConnectClock {
    t0: Instant,
    last_us: AtomicU64,
}

impl ConnectClock {
    pub fn start() -> ConnectClock {
        ConnectClock {
            t0: Instant::now(),
            last_us: AtomicU64::new(0),
        }
    }

    /// A client finished connecting now.
    pub fn mark(&self) {
        let us = self.t0.elapsed().as_micros() as u64;
        self.last_us.fetch_max(us, Relaxed);
    }

    pub fn secs(&self) -> f64 {
        self.last_us.load(Relaxed) as f64 / 1e6
    }
}

/// Everything one worker measured, sent to the parent as its last line.
#[derive(Clone, Debug)]
pub struct WorkerResult {
    pub snap: Snapshot,
    /// Clients still not connected when the connect phase ended.
    pub connect_timeout: u64,
    /// Seconds from the worker's start to its last successful connect.
    pub connect_secs: f64,
    /// Deliveries the shape promises for what this worker's publishers got acked.
    pub expected: u64,
    pub tally: Tally,
    /// Received payloads too short to carry the verification header.
    pub bad_payload: u64,
    /// Seconds this worker actually published.
    pub publish_secs: f64,
    /// `sent` and `received` when publishing stopped (before the drain).
    pub window_sent: u64,
    pub window_received: u64,
    /// CPU seconds (user + system) the worker process used.
    pub cpu_secs: f64,
    pub latency_us: Histogram<u64>,
}

impl WorkerResult {
    pub fn to_line(&self) -> String {
        format!(
            "FINAL {} connect_timeout={} connect_secs={:.6} expected={} unique={} duplicates={} \
             out_of_order={} bad_payload={} publish_secs={:.3} window_sent={} window_received={} \
             cpu_secs={:.3} hist={}",
            self.snap.to_kv(),
            self.connect_timeout,
            self.connect_secs,
            self.expected,
            self.tally.unique,
            self.tally.duplicates,
            self.tally.out_of_order,
            self.bad_payload,
            self.publish_secs,
            self.window_sent,
            self.window_received,
            self.cpu_secs,
            histogram_to_string(&self.latency_us)
        )
    }

    /// Parse the part after `FINAL `.
    pub fn from_kv_str(s: &str) -> Result<WorkerResult, String> {
        let kv = parse_kv(s);
        let mut latency_us = new_histogram();
        merge_histogram_str(&mut latency_us, kv.get("hist").copied().unwrap_or(""))?;
        Ok(WorkerResult {
            snap: Snapshot::from_kv(&kv)?,
            connect_timeout: field(&kv, "connect_timeout")?,
            connect_secs: field(&kv, "connect_secs")?,
            expected: field(&kv, "expected")?,
            tally: Tally {
                unique: field(&kv, "unique")?,
                duplicates: field(&kv, "duplicates")?,
                out_of_order: field(&kv, "out_of_order")?,
            },
            bad_payload: field(&kv, "bad_payload")?,
            publish_secs: field(&kv, "publish_secs")?,
            window_sent: field(&kv, "window_sent")?,
            window_received: field(&kv, "window_received")?,
            cpu_secs: field(&kv, "cpu_secs")?,
            latency_us,
        })
    }

    /// Add another worker's result into this one (histograms merged).
    pub fn merge(&mut self, o: &WorkerResult) {
        self.snap.add(&o.snap);
        self.connect_timeout += o.connect_timeout;
        // Workers connect side by side: the phase lasts as long as the slowest.
        self.connect_secs = self.connect_secs.max(o.connect_secs);
        self.expected += o.expected;
        self.tally.add(&o.tally);
        self.bad_payload += o.bad_payload;
        self.publish_secs = self.publish_secs.max(o.publish_secs);
        self.window_sent += o.window_sent;
        self.window_received += o.window_received;
        self.cpu_secs += o.cpu_secs;
        // Same bounds on both sides, so add() cannot fail.
        let _ = self.latency_us.add(&o.latency_us);
    }

    pub fn empty() -> WorkerResult {
        WorkerResult {
            snap: Snapshot::default(),
            connect_timeout: 0,
            connect_secs: 0.0,
            expected: 0,
            tally: Tally::default(),
            bad_payload: 0,
            publish_secs: 0.0,
            window_sent: 0,
            window_received: 0,
            cpu_secs: 0.0,
            latency_us: new_histogram(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_round_trip_and_merge() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for i in 1..=1000u64 {
            record_latency(&mut a, i * 1_000_000); // 1..1000 ms
        }
        record_latency(&mut b, 5_000_000_000); // 5 s
        record_latency(&mut b, 10); // below 1 us: clamped to 1
        let mut m = new_histogram();
        merge_histogram_str(&mut m, &histogram_to_string(&a)).unwrap();
        merge_histogram_str(&mut m, &histogram_to_string(&b)).unwrap();
        assert_eq!(m.len(), 1002);
        assert_eq!(m.min(), 1);
        let p50 = m.value_at_quantile(0.5) as f64 / 1000.0;
        assert!((499.0..=502.0).contains(&p50), "p50 {p50}");
        assert!(m.max() >= 4_990_000);
        let mut direct = a.clone();
        direct.add(&b).unwrap();
        assert_eq!(direct.value_at_quantile(0.99), m.value_at_quantile(0.99));
        assert!(merge_histogram_str(&mut m, "x:1").is_err());
        merge_histogram_str(&mut m, "").unwrap();
    }

    #[test]
    fn worker_result_line_round_trip() {
        let mut r = WorkerResult::empty();
        r.snap = Snapshot {
            connected: 1,
            connect_ok: 2,
            connect_fail: 3,
            closed: 4,
            sent: 5,
            acked: 6,
            received: 7,
        };
        r.expected = 8;
        r.tally = Tally {
            unique: 9,
            duplicates: 10,
            out_of_order: 11,
        };
        r.publish_secs = 1.5;
        r.connect_secs = 0.25;
        record_latency(&mut r.latency_us, 2_000_000);
        let line = r.to_line();
        let back = WorkerResult::from_kv_str(line.strip_prefix("FINAL ").unwrap()).unwrap();
        assert_eq!(back.snap, r.snap);
        assert_eq!(back.tally, r.tally);
        assert_eq!(back.expected, 8);
        assert_eq!(back.connect_secs, 0.25);
        assert_eq!(back.latency_us.len(), 1);
        let mut sum = back.clone();
        sum.merge(&r);
        assert_eq!(sum.snap.sent, 10);
        assert_eq!(sum.latency_us.len(), 2);
        assert!(WorkerResult::from_kv_str("sent=1").is_err());
    }
}
