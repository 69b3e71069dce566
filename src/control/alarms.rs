//! Alarms: raised and cleared with hysteresis from what the node reports.
//!
//! Owned by the control task of shard 0 (`sys.rs`), which feeds it one
//! [`Observation`] per `alarms.check_interval_s` and publishes each
//! [`Change`] as JSON on `$SYS/brokers/<node>/alarms/alert` or `.../clear`;
//! the HTTP API lists [`Alarms::active`] and [`Alarms::cleared`]. Plain
//! synchronous code, unit-tested below.
//!
//! | alarm id | raised when | cleared when |
//! |---|---|---|
//! | `memory_high` | RSS ≥ `memory_high_watermark` of the limit | below watermark × (1 − `clear_margin`) |
//! | `fd_high` | open fds ≥ `fd_high_watermark` of the limit | likewise |
//! | `connections_high` | connections ≥ `connections_high_watermark` of the listeners' maximum | likewise |
//! | `shard_saturated/shard-N` | busy ≥ `shard_busy_watermark` for `saturated_checks` checks | below the clear level for as many |
//! | `mailbox_overflow/shard-N` | a mailbox to a peer was full | `quiet_s` without one |
//! | `slow_subscriber/shard-N` | a message was queued to a session holding `slow_subscriber_queue` or more, or a full queue dropped one | `quiet_s` without either |
//! | `storage_full/shard-N` | the log cannot be written (or could not since the last check) | it can again |
//! | `shard_unresponsive/shard-N` | the shard did not answer the check in time | it answers again |

use super::ask::ShardStats;
use super::process::Process;
use crate::config::AlarmsConfig;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Cleared alarms kept for the API.
const CLEARED_KEPT: usize = 50;

/// One alarm, as published and listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub id: String,
    pub severity: &'static str,
    /// The kind: the id without its `/shard-N`.
    pub title: &'static str,
    pub summary: String,
    /// Milliseconds since the epoch.
    pub raised_at: u64,
    pub cleared_at: Option<u64>,
}

/// What one check changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Raised(Alarm),
    Cleared(Alarm),
}

/// What the node looks like at one check.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub process: Process,
    pub connections: u64,
    /// The listeners' max_connections summed.
    pub max_connections: u64,
    /// Every shard's figures that answered, by shard id.
    pub shards: Vec<ShardStats>,
    /// The shards that did not answer in time.
    pub missing: Vec<usize>,
}

/// Per shard: what the last check saw, for event alarms and streaks.
#[derive(Debug, Clone, Default)]
struct Seen {
    overflows: u64,
    queue_drops: u64,
    slow_queued: u64,
    write_errors: u64,
    /// When an overflow / a slow subscriber was last seen (ms).
    overflow_at: Option<u64>,
    slow_at: Option<u64>,
    /// Checks in a row over (or, once raised, under) the busy levels.
    busy_streak: u32,
    calm_streak: u32,
}

/// The alarms in force and recently cleared.
#[derive(Debug, Default)]
pub struct Alarms {
    active: BTreeMap<String, Alarm>,
    cleared: VecDeque<Alarm>,
    seen: Vec<Seen>,
}

impl Alarms {
    /// Active alarms, by id.
    pub fn active(&self) -> impl Iterator<Item = &Alarm> {
        self.active.values()
    }

    /// The last cleared alarms, newest first.
    pub fn cleared(&self) -> impl Iterator<Item = &Alarm> {
        self.cleared.iter()
    }

    /// Compare the node with the thresholds; return what was raised and cleared.
    pub fn check(&mut self, cfg: &AlarmsConfig, obs: &Observation, now: u64) -> Vec<Change> {
        let mut out = Vec::new();
        let p = &obs.process;
        let gauges = [
            (
                "memory_high",
                p.memory_bytes,
                p.memory_limit,
                cfg.memory_high_watermark,
                "memory",
            ),
            (
                "fd_high",
                p.fds,
                p.fd_limit,
                cfg.fd_high_watermark,
                "file descriptors",
            ),
            (
                "connections_high",
                obs.connections,
                obs.max_connections,
                cfg.connections_high_watermark,
                "connections",
            ),
        ];
        for (id, used, limit, high, what) in gauges {
            // A shard that did not answer leaves the connection count short.
            if id == "connections_high" && !obs.missing.is_empty() {
                continue;
            }
            let ratio = if limit == 0 {
                0.0
            } else {
                used as f64 / limit as f64
            };
            let summary = format!(
                "{what}: {used} of {limit} in use ({:.1} %, alarm at {:.0} %)",
                ratio * 100.0,
                high * 100.0
            );
            let on = self.active.contains_key(id);
            let want = if on {
                ratio >= high * (1.0 - cfg.clear_margin)
            } else {
                ratio >= high
            };
            self.set(id, id, "warning", want, summary, now, &mut out);
        }
        // A shard that did not answer this time is skipped, not misplaced.
        let n = obs.shards.iter().map(|s| s.shard + 1).max().unwrap_or(0);
        if self.seen.len() < n {
            self.seen.resize(n, Seen::default());
        }
        for st in &obs.shards {
            self.check_shard(cfg, st, now, &mut out);
        }
        let answered: Vec<usize> = obs.shards.iter().map(|s| s.shard).collect();
        for i in answered.iter().chain(&obs.missing) {
            let id = format!("shard_unresponsive/shard-{i}");
            let missing = obs.missing.contains(i);
            let summary = format!("shard {i} did not answer within {:?}", super::ASK_TIMEOUT);
            self.set(
                &id,
                "shard_unresponsive",
                "critical",
                missing,
                summary,
                now,
                &mut out,
            );
        }
        out
    }

    fn check_shard(
        &mut self,
        cfg: &AlarmsConfig,
        st: &ShardStats,
        now: u64,
        out: &mut Vec<Change>,
    ) {
        let i = st.shard;
        let Some(mut seen) = self.seen.get(i).cloned() else {
            return;
        };
        let quiet_ms = cfg.quiet_s * 1000;
        // Saturation: a streak over the watermark raises, one under the clear level clears.
        let id = format!("shard_saturated/shard-{i}");
        let on = self.active.contains_key(&id);
        if st.busy >= cfg.shard_busy_watermark {
            seen.busy_streak += 1;
        } else {
            seen.busy_streak = 0;
        }
        if st.busy < cfg.shard_busy_watermark * (1.0 - cfg.clear_margin) {
            seen.calm_streak += 1;
        } else {
            seen.calm_streak = 0;
        }
        let want = if on {
            seen.calm_streak < cfg.saturated_checks
        } else {
            seen.busy_streak >= cfg.saturated_checks
        };
        let summary = format!("shard {i} busy {:.0} % of the time", st.busy * 100.0);
        self.set(&id, "shard_saturated", "warning", want, summary, now, out);
        // Mailbox overflow: an event; quiet for quiet_s clears it.
        let overflows = st.metrics.mailbox_overflows;
        if overflows > seen.overflows {
            seen.overflow_at = Some(now);
        }
        let summary = format!(
            "shard {i}: {} batches waited for a full mailbox to a peer ({overflows} since start)",
            overflows - seen.overflows.min(overflows)
        );
        seen.overflows = overflows;
        let want = seen.overflow_at.is_some_and(|t| now < t + quiet_ms);
        let id = format!("mailbox_overflow/shard-{i}");
        self.set(&id, "mailbox_overflow", "warning", want, summary, now, out);
        // Slow subscribers: messages queued behind a long queue, or dropped
        // from a full one, since the last check.
        let drops = st.metrics.dropped_queue_full;
        if st.slow_queued > seen.slow_queued || drops > seen.queue_drops {
            seen.slow_at = Some(now);
        }
        let last = st
            .slowest
            .as_ref()
            .map_or(String::new(), |(c, n)| format!("; last: {c:?} with {n}"));
        let summary = format!(
            "shard {i}: {} messages queued to sessions holding {} or more since start{last}; {drops} dropped by full queues",
            st.slow_queued, cfg.slow_subscriber_queue
        );
        seen.queue_drops = drops;
        seen.slow_queued = st.slow_queued;
        let want = seen.slow_at.is_some_and(|t| now < t + quiet_ms);
        let id = format!("slow_subscriber/shard-{i}");
        self.set(&id, "slow_subscriber", "warning", want, summary, now, out);
        // Storage: while the log cannot be written, and for one check after
        // a write failed (a failure and its recovery between two checks).
        let id = format!("storage_full/shard-{i}");
        let errors = st.metrics.storage_write_errors;
        let why = st
            .storage_failing
            .clone()
            .unwrap_or_else(|| format!("shard {i}: {errors} log writes failed since start"));
        let failing = st.storage_failing.is_some() || errors > seen.write_errors;
        seen.write_errors = errors;
        self.set(&id, "storage_full", "critical", failing, why, now, out);
        self.seen[i] = seen;
    }

    /// Bring alarm `id` to `want`, recording the change.
    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        id: &str,
        title: &'static str,
        severity: &'static str,
        want: bool,
        summary: String,
        now: u64,
        out: &mut Vec<Change>,
    ) {
        match (self.active.contains_key(id), want) {
            (false, true) => {
                let a = Alarm {
                    id: id.to_owned(),
                    severity,
                    title,
                    summary,
                    raised_at: now,
                    cleared_at: None,
                };
                log::warn!("alarm raised: {id}: {}", a.summary);
                self.active.insert(id.to_owned(), a.clone());
                out.push(Change::Raised(a));
            }
            (true, false) => {
                let Some(mut a) = self.active.remove(id) else {
                    return;
                };
                a.cleared_at = Some(now);
                if !summary.is_empty() {
                    a.summary = summary;
                }
                log::info!("alarm cleared: {id}: {}", a.summary);
                self.cleared.push_front(a.clone());
                self.cleared.truncate(CLEARED_KEPT);
                out.push(Change::Cleared(a));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(connections: u64, busy: f64, overflows: u64) -> Observation {
        let mut st = ShardStats {
            busy,
            ..ShardStats::default()
        };
        st.metrics.mailbox_overflows = overflows;
        Observation {
            process: Process {
                memory_bytes: 10,
                memory_limit: 1000,
                fds: 10,
                fd_limit: 1000,
            },
            connections,
            max_connections: 100,
            shards: vec![st],
            missing: vec![],
        }
    }

    fn ids(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Raised(a) => format!("+{}", a.id),
                Change::Cleared(a) => format!("-{}", a.id),
            })
            .collect()
    }

    /// A gauge raises at its watermark and clears only below it less the
    /// margin: no flapping around the threshold.
    #[test]
    fn gauges_have_hysteresis() {
        let cfg = AlarmsConfig::default(); // 0.9, margin 0.1: clears below 81
        let mut a = Alarms::default();
        assert!(a.check(&cfg, &obs(89, 0.0, 0), 1).is_empty());
        assert_eq!(
            ids(&a.check(&cfg, &obs(90, 0.0, 0), 2)),
            ["+connections_high"]
        );
        assert!(
            a.check(&cfg, &obs(85, 0.0, 0), 3).is_empty(),
            "still over the clear level"
        );
        assert!(a.check(&cfg, &obs(95, 0.0, 0), 4).is_empty(), "raised once");
        assert_eq!(
            ids(&a.check(&cfg, &obs(80, 0.0, 0), 5)),
            ["-connections_high"]
        );
        assert_eq!(a.active().count(), 0);
        let c = a.cleared().next().expect("kept");
        assert_eq!((c.raised_at, c.cleared_at), (2, Some(5)));
    }

    /// Saturation needs `saturated_checks` busy checks in a row, and as many
    /// calm ones to clear.
    #[test]
    fn saturation_needs_a_streak() {
        let cfg = AlarmsConfig::default(); // 3 checks
        let mut a = Alarms::default();
        for (t, busy) in [(1, 0.95), (2, 0.95), (3, 0.5), (4, 0.95), (5, 0.95)] {
            assert!(a.check(&cfg, &obs(0, busy, 0), t).is_empty(), "t={t}");
        }
        assert_eq!(
            ids(&a.check(&cfg, &obs(0, 0.95, 0), 6)),
            ["+shard_saturated/shard-0"]
        );
        for t in 7..9 {
            assert!(a.check(&cfg, &obs(0, 0.1, 0), t).is_empty());
        }
        assert_eq!(
            ids(&a.check(&cfg, &obs(0, 0.1, 0), 9)),
            ["-shard_saturated/shard-0"]
        );
    }

    /// An event alarm stays up while events keep coming and clears after
    /// `quiet_s` without one.
    #[test]
    fn events_clear_after_quiet() {
        let cfg = AlarmsConfig::default(); // quiet 10 s
        let mut a = Alarms::default();
        assert!(a.check(&cfg, &obs(0, 0.0, 0), 0).is_empty());
        assert_eq!(
            ids(&a.check(&cfg, &obs(0, 0.0, 3), 1000)),
            ["+mailbox_overflow/shard-0"]
        );
        assert!(a.check(&cfg, &obs(0, 0.0, 5), 6000).is_empty());
        assert!(
            a.check(&cfg, &obs(0, 0.0, 5), 15_000).is_empty(),
            "9 s quiet"
        );
        assert_eq!(
            ids(&a.check(&cfg, &obs(0, 0.0, 5), 16_000)),
            ["-mailbox_overflow/shard-0"]
        );
    }

    /// A shard that does not answer raises shard_unresponsive (and leaves
    /// the connections gauge alone); answering again clears it.
    #[test]
    fn unresponsive_shard() {
        let cfg = AlarmsConfig::default();
        let mut a = Alarms::default();
        assert_eq!(
            ids(&a.check(&cfg, &obs(95, 0.0, 0), 1)),
            ["+connections_high"]
        );
        let mut o = obs(0, 0.0, 0);
        o.missing = vec![1];
        assert_eq!(ids(&a.check(&cfg, &o, 2)), ["+shard_unresponsive/shard-1"]);
        assert_eq!(
            ids(&a.check(&cfg, &obs(0, 0.0, 0), 3)),
            ["-connections_high"],
            "shard 1 is not in this observation at all: its alarm stays"
        );
        let mut o = obs(0, 0.0, 0);
        o.shards.push(ShardStats {
            shard: 1,
            ..ShardStats::default()
        });
        assert_eq!(ids(&a.check(&cfg, &o, 4)), ["-shard_unresponsive/shard-1"]);
    }

    /// A limit of 0 (unknown) never raises.
    #[test]
    fn unknown_limits_stay_quiet() {
        let cfg = AlarmsConfig::default();
        let mut o = obs(0, 0.0, 0);
        o.process = Process {
            memory_bytes: 5,
            memory_limit: 0,
            fds: 5,
            fd_limit: 0,
        };
        o.max_connections = 0;
        assert!(Alarms::default().check(&cfg, &o, 1).is_empty());
    }
}
