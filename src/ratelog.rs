//! Rate-limited log lines: a warning that can repeat in a storm (accept
//! failures, the connection limit, a hostile client) is logged at most once
//! per interval per call site, and the next line it lets through says how
//! many were held back.
//!
//! Owns [`RateLimit`], a small value the caller keeps next to the code that
//! logs (a local in a loop, a field of the shard), and [`Suppressed`], the
//! `" (N similar suppressed)"` suffix. It logs nothing itself: the caller
//! picks the level and the words. Used by the accept loop in `listener.rs`;
//! meant for any other warning a peer can trigger over and over.
//!
//! ```ignore
//! let mut limit = RateLimit::per_second();
//! if let Some(s) = limit.allow() {
//!     log::warn!("shard {id}: accept failed: {e}{s}");
//! }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

/// At most one line per `every`; counts what it held back in between.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

/// How many lines a [`RateLimit`] held back since the last one it let
/// through. Displays as nothing when none, else `" (N similar suppressed)"`,
/// so it can end any message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suppressed(pub u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            Ok(())
        } else {
            write!(f, " ({} similar suppressed)", self.0)
        }
    }
}

impl RateLimit {
    /// One line per `every` at most.
    pub(crate) const fn new(every: Duration) -> RateLimit {
        RateLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// One line per second at most.
    pub(crate) const fn per_second() -> RateLimit {
        RateLimit::new(Duration::from_secs(1))
    }

    /// May a line be logged now? `Some` with the count held back since the
    /// last line (and the count restarts), or `None` (counted).
    pub(crate) fn allow(&mut self) -> Option<Suppressed> {
        self.allow_at(Instant::now())
    }

    /// [`allow`](Self::allow) at a given instant (tests drive the clock).
    pub(crate) fn allow_at(&mut self, now: Instant) -> Option<Suppressed> {
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if due {
            self.last = Some(now);
            Some(Suppressed(std::mem::take(&mut self.suppressed)))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }
}

/// One shard's repeating log lines that a peer can trigger, each limited
/// on its own (owned by the shard, used by the protocol handlers and the
/// connection task).
#[derive(Debug, Clone)]
pub(crate) struct ShardLines {
    pub malformed: RateLimit,
    pub input_budget: RateLimit,
    pub packet_timeout: RateLimit,
    pub output_stalled: RateLimit,
    pub sessions_full: RateLimit,
    pub awaiting_rel_full: RateLimit,
    pub retained_full: RateLimit,
    /// `strict.control_characters` refusals.
    pub control_chars: RateLimit,
    /// Other strictness closes: an empty topic filter, a wrong-QoS ack.
    pub strict: RateLimit,
    /// Publishes, subscriptions and wills the ACL denied.
    pub acl: RateLimit,
    /// Refused logins (anonymous, bad credentials).
    pub auth_refused: RateLimit,
    /// Refused WebSocket upgrades.
    pub ws_handshake: RateLimit,
    /// Failed TLS handshakes.
    pub tls_failed: RateLimit,
    /// Connections without a valid PROXY header.
    pub proxy_failed: RateLimit,
}

impl Default for ShardLines {
    fn default() -> Self {
        ShardLines {
            malformed: RateLimit::per_second(),
            input_budget: RateLimit::per_second(),
            packet_timeout: RateLimit::per_second(),
            output_stalled: RateLimit::per_second(),
            sessions_full: RateLimit::per_second(),
            awaiting_rel_full: RateLimit::per_second(),
            retained_full: RateLimit::per_second(),
            control_chars: RateLimit::per_second(),
            strict: RateLimit::per_second(),
            acl: RateLimit::per_second(),
            auth_refused: RateLimit::per_second(),
            ws_handshake: RateLimit::per_second(),
            tls_failed: RateLimit::per_second(),
            proxy_failed: RateLimit::per_second(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_passes_and_repeats_within_the_interval_are_held_back() {
        let mut r = RateLimit::per_second();
        let t0 = Instant::now();
        assert_eq!(r.allow_at(t0), Some(Suppressed(0)));
        for ms in [1, 10, 500, 999] {
            assert_eq!(r.allow_at(t0 + Duration::from_millis(ms)), None, "{ms} ms");
        }
        // The next one through reports the four it held back, then the count restarts.
        assert_eq!(r.allow_at(t0 + Duration::from_secs(1)), Some(Suppressed(4)));
        assert_eq!(r.allow_at(t0 + Duration::from_millis(1500)), None);
        assert_eq!(
            r.allow_at(t0 + Duration::from_millis(2000)),
            Some(Suppressed(1))
        );
        assert_eq!(
            r.allow_at(t0 + Duration::from_millis(3500)),
            Some(Suppressed(0))
        );
    }

    #[test]
    fn a_storm_logs_one_line_per_interval() {
        let mut r = RateLimit::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // 10,000 events over one second, every 100 µs.
        let passed: Vec<u64> = (0..10_000u64)
            .filter_map(|i| r.allow_at(t0 + Duration::from_micros(i * 100)))
            .map(|s| s.0)
            .collect();
        assert_eq!(passed.len(), 10);
        assert_eq!(passed[0], 0);
        assert!(passed[1..].iter().all(|&n| n == 999), "{passed:?}");
    }

    #[test]
    fn a_clock_before_the_last_line_does_not_let_lines_through() {
        let mut r = RateLimit::per_second();
        let t0 = Instant::now() + Duration::from_secs(5);
        assert!(r.allow_at(t0).is_some());
        assert_eq!(r.allow_at(t0 - Duration::from_secs(3)), None);
    }

    #[test]
    fn suffix_is_empty_or_names_the_count() {
        assert_eq!(Suppressed(0).to_string(), "");
        assert_eq!(Suppressed(7).to_string(), " (7 similar suppressed)");
        assert_eq!(
            format!("out of fds{}", Suppressed(3)),
            "out of fds (3 similar suppressed)"
        );
    }
}
