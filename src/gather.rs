//! When a task that hands work on waits to gather more (`runtime.wake_window_us`).
//!
//! Two tasks per shard hand work to others in batches: the readiness set's
//! task ([`crate::transport::ready`]) wakes the connections whose sockets
//! have events, and each mailbox sender ([`crate::shard::mesh`]) sends a
//! batch to another shard, waking its executor. While batches come closer
//! together than the window, waiting the window after each one gathers the
//! next ones, so a busy shard sleeps and wakes about once per window. A
//! batch after a quiet spell (a connection set up now and then, one
//! message) goes at once and waits for nothing: a wait there would only add
//! a timer's sleep and wake (an executor sleep costs a `membarrier` and a
//! timer re-arm in glommio) without gathering anything.
//!
//! Pure: the caller passes the time, so the policy is tested without clocks.

use std::time::{Duration, Instant};

/// One task's gathering state.
#[derive(Debug, Default)]
pub struct Gather {
    /// When the task last looked for a batch after one: the end of its
    /// wait, or the batch itself when it did not wait.
    last: Option<Instant>,
}

impl Gather {
    /// A batch was handed on at `now`: how long to wait before looking for
    /// the next (None: look at once, and wait for work as usual).
    pub fn after_batch(&mut self, now: Instant, window: Duration) -> Option<Duration> {
        let busy = !window.is_zero()
            && self
                .last
                .is_some_and(|last| now.saturating_duration_since(last) < window);
        self.last = Some(if busy { now + window } else { now });
        busy.then_some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_micros(500);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn sparse_batches_go_at_once_and_busy_ones_gather() {
        let t0 = Instant::now();
        let mut g = Gather::default();
        assert_eq!(
            g.after_batch(t0, W),
            None,
            "the first batch waits for nothing"
        );
        assert_eq!(
            g.after_batch(t0 + us(2_000), W),
            None,
            "after a quiet spell"
        );
        // The next batch comes within the window: busy, wait it out.
        assert_eq!(g.after_batch(t0 + us(2_100), W), Some(W));
        // Right after that wait more was there: still busy.
        assert_eq!(g.after_batch(t0 + us(2_610), W), Some(W));
        assert_eq!(g.after_batch(t0 + us(3_120), W), Some(W));
        // Quiet for longer than the window: back to going at once.
        assert_eq!(g.after_batch(t0 + us(9_000), W), None);
    }

    #[test]
    fn a_zero_window_never_waits() {
        let t0 = Instant::now();
        let mut g = Gather::default();
        for i in 0..5 {
            assert_eq!(g.after_batch(t0 + us(i), Duration::ZERO), None);
        }
    }
}
