//! The end-of-run report: a human summary on stderr... and, with `--json`,
//! one JSON object as the last line of stdout.
//!
//! Owns nothing; computes derived figures (lost, rates, percentiles, broker
//! bytes per connection, CPU-seconds per million deliveries) from an
//! [`Outcome`]. Called by [`crate::run`] in the parent.

use crate::args::Args;
use crate::scenario::Plan;
use crate::stats::WorkerResult;
use crate::transport::Setup;
use crate::verify::lost;
use crate::workers::{BrokerStats, Outcome};
use hdrhistogram::Histogram;
use std::fmt::Write;

/// Latency percentiles in milliseconds (None when nothing was measured).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// Figures derived from the broker samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BrokerFigures {
    pub bytes_per_conn: Option<f64>,
    /// Broker CPU microseconds per connection over the connect phase (every
    /// handshake, CONNECT and SUBSCRIBE included).
    pub cpu_us_per_conn: Option<f64>,
    pub cpu_secs: Option<f64>,
    pub cpu_secs_per_million: Option<f64>,
}

pub fn broker_figures(b: &BrokerStats, connected: u64, delivered: u64) -> BrokerFigures {
    let bytes_per_conn = (connected > 0 && b.connected.rss_kb > 0)
        .then(|| (b.connected.rss_kb as f64 - b.base.rss_kb as f64) * 1024.0 / connected as f64);
    let cpu_us_per_conn = (connected > 0 && b.connected.rss_kb > 0)
        .then(|| (b.connected.cpu_secs - b.base.cpu_secs).max(0.0) * 1e6 / connected as f64);
    let cpu = (b.end.cpu_secs >= b.connected.cpu_secs && b.end.rss_kb > 0)
        .then_some(b.end.cpu_secs - b.connected.cpu_secs);
    let per_million = cpu
        .filter(|_| delivered > 0)
        .map(|c| c / (delivered as f64 / 1e6));
    BrokerFigures {
        bytes_per_conn,
        cpu_us_per_conn,
        cpu_secs: cpu,
        cpu_secs_per_million: per_million,
    }
}

/// Successful connects per second over the connect phase (every
/// handshake: TCP, TLS, WebSocket, CONNECT/CONNACK, SUBSCRIBE/SUBACK).
pub fn connects_per_s(r: &WorkerResult) -> Option<f64> {
    (r.connect_secs > 0.0 && r.snap.connect_ok > 0)
        .then(|| r.snap.connect_ok as f64 / r.connect_secs)
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".into(),
    }
}

fn esc(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c == '"' || c == '\\' {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The one-line JSON object with every figure.
pub fn json(args: &Args, o: &Outcome) -> String {
    let plan = Plan::from_args(args);
    let r = &o.result;
    let l = latency(&r.latency_us);
    let per_s = |n: u64| (r.publish_secs > 0.0).then(|| n as f64 / r.publish_secs);
    let lost_v = plan.verify.then(|| lost(r.expected, r.tally.unique));
    let mut s = String::from("{");
    let _ = write!(
        s,
        "\"shape\":\"{}\",\"host\":\"{}\",\"port\":{},\"transport\":\"{}\",",
        plan.shape.name(),
        esc(&args.host),
        args.port,
        Setup::name(args)
    );
    let _ = write!(
        s,
        "\"workers\":{},\"clients\":{},\"publishers\":{},\"qos\":{},\"size\":{},",
        o.workers, plan.total, plan.publishers, plan.qos as u8, args.size
    );
    let _ = write!(
        s,
        "\"rate_per_publisher\":{},\"duration_s\":{},\"publish_s\":{:.3},\"wall_s\":{:.3},",
        num(Some(plan.rate_per_pub)),
        args.duration,
        r.publish_secs,
        o.wall_secs
    );
    let _ = write!(
        s,
        "\"connected\":{},\"connect_failed\":{},\"connect_timeouts\":{},\"closed\":{},",
        r.snap.connect_ok, r.snap.connect_fail, r.connect_timeout, r.snap.closed
    );
    let _ = write!(
        s,
        "\"connect_s\":{:.3},\"connects_per_s\":{},",
        r.connect_secs,
        num(connects_per_s(r))
    );
    let _ = write!(
        s,
        "\"sent\":{},\"acked\":{},\"expected\":{},\"received\":{},\"unique\":{},",
        r.snap.sent, r.snap.acked, r.expected, r.snap.received, r.tally.unique
    );
    let _ = write!(
        s,
        "\"lost\":{},\"duplicates\":{},\"out_of_order\":{},\"bad_payload\":{},",
        lost_v.map_or("null".into(), |n| n.to_string()),
        r.tally.duplicates,
        r.tally.out_of_order,
        r.bad_payload
    );
    let _ = write!(
        s,
        "\"sent_per_s\":{},\"delivered_per_s\":{},",
        num(per_s(r.window_sent)),
        num(per_s(r.window_received))
    );
    let _ = write!(s, "\"latency_ms\":{{\"count\":{},\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3},\"mean\":{:.3}}},", l.count, l.p50, l.p90, l.p99, l.p999, l.max, l.mean);
    let _ = write!(s, "\"tool_cpu_s\":{:.3},", r.cpu_secs);
    match &o.broker {
        Some(b) => {
            let f = broker_figures(b, r.snap.connect_ok, r.snap.received);
            let _ = write!(
                s,
                "\"broker\":{{\"pid\":{},\"rss_base_kb\":{},\"rss_connected_kb\":{},\"rss_max_kb\":{},\"bytes_per_conn\":{},\"cpu_us_per_conn\":{},\"cpu_s\":{},\"cpu_s_per_million_deliveries\":{}}},",
                b.pid, b.base.rss_kb, b.connected.rss_kb, b.rss_max_kb, num(f.bytes_per_conn), num(f.cpu_us_per_conn), num(f.cpu_secs), num(f.cpu_secs_per_million)
            );
        }
        None => s.push_str("\"broker\":null,"),
    }
    let problems: Vec<String> = o
        .problems
        .iter()
        .map(|p| format!("\"{}\"", esc(p)))
        .collect();
    let _ = write!(s, "\"problems\":[{}]}}", problems.join(","));
    s
}

/// The human summary, on stderr so stdout's last line stays the JSON.
pub fn summary(args: &Args, o: &Outcome) -> String {
    let plan = Plan::from_args(args);
    let r = &o.result;
    let l = latency(&r.latency_us);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== coremq-bench {} against {}:{} over {} ({} workers, {:.1}s)",
        plan.shape.name(),
        args.host,
        args.port,
        Setup::name(args),
        o.workers,
        o.wall_secs
    );
    let _ = writeln!(
        s,
        "connections: {} ok, {} failed, {} timed out, {} closed early (of {})",
        r.snap.connect_ok, r.snap.connect_fail, r.connect_timeout, r.snap.closed, plan.total
    );
    if let Some(rate) = connects_per_s(r) {
        let _ = writeln!(
            s,
            "connecting:  {:.2}s, {rate:.0} connects/s (handshakes included; capped by --conn-rate)",
            r.connect_secs
        );
    }
    if r.publish_secs > 0.0 && plan.publishers > 0 {
        let _ = writeln!(
            s,
            "published:   {} ({:.0}/s over {:.1}s), acked {}",
            r.snap.sent,
            r.window_sent as f64 / r.publish_secs,
            r.publish_secs,
            r.snap.acked
        );
        let _ = writeln!(
            s,
            "delivered:   {} ({:.0}/s while publishing), unique {}",
            r.snap.received,
            r.window_received as f64 / r.publish_secs,
            r.tally.unique
        );
    }
    if plan.verify {
        let _ = writeln!(
            s,
            "verify:      expected {}, lost {}, duplicates {}, out of order {}",
            r.expected,
            lost(r.expected, r.tally.unique),
            r.tally.duplicates,
            r.tally.out_of_order
        );
    }
    if l.count > 0 {
        let _ = writeln!(
            s,
            "latency ms:  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    if let Some(b) = &o.broker {
        let f = broker_figures(b, r.snap.connect_ok, r.snap.received);
        let _ = writeln!(s, "broker:      RSS {} -> {} KiB (max {}), {} B/conn, {} CPU-us/conn to connect, CPU {} s, {} CPU-s per million deliveries", b.base.rss_kb, b.connected.rss_kb, b.rss_max_kb, num(f.bytes_per_conn), num(f.cpu_us_per_conn), num(f.cpu_secs), num(f.cpu_secs_per_million));
    }
    let _ = writeln!(s, "tool CPU:    {:.2} s", r.cpu_secs);
    for p in &o.problems {
        let _ = writeln!(s, "problem:     {p}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::Sample;

    #[test]
    fn broker_math() {
        let b = BrokerStats {
            pid: 1,
            base: Sample {
                rss_kb: 1000,
                cpu_secs: 0.0,
            },
            connected: Sample {
                rss_kb: 2000,
                cpu_secs: 1.0,
            },
            end: Sample {
                rss_kb: 2000,
                cpu_secs: 3.0,
            },
            rss_max_kb: 2000,
        };
        let f = broker_figures(&b, 1024, 4_000_000);
        assert_eq!(f.bytes_per_conn, Some(1000.0));
        assert_eq!(f.cpu_us_per_conn, Some(1e6 / 1024.0));
        assert_eq!(f.cpu_secs, Some(2.0));
        assert_eq!(f.cpu_secs_per_million, Some(0.5));
        assert_eq!(
            broker_figures(&BrokerStats::default(), 0, 0),
            BrokerFigures {
                cpu_secs: None,
                ..Default::default()
            }
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(esc("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(num(None), "null");
        assert_eq!(num(Some(f64::NAN)), "null");
    }
}
