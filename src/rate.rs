//! Token buckets: how fast something may go, with a burst.
//!
//! Owns [`TokenBucket`], a plain value its user keeps: each shard's accept
//! loop keeps one per rate-limited listener (`max_connection_rate`, its share
//! of the node's rate), and a connection task keeps one when its listener
//! sets `max_inbound_bytes_per_s`. Time comes in from the caller (shard
//! milliseconds), so the bucket is pure and tested without a clock.

/// `rate` tokens a second, holding at most `burst`. Spending may go below
/// zero (a read's bytes are known only after the read): the debt is paid
/// back by the refill before more is allowed.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket: `rate` per second, `burst` at most (both at least a
    /// tiny positive amount, so a bucket always refills).
    pub fn new(rate_per_s: f64, burst: f64, now_ms: u64) -> TokenBucket {
        let burst = burst.max(1.0);
        TokenBucket {
            rate_per_ms: rate_per_s.max(1e-6) / 1000.0,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Take `n` tokens if there are that many; false (nothing taken) if not.
    pub fn try_take(&mut self, n: f64, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Spend `n` tokens, going into debt if needed.
    pub fn spend(&mut self, n: f64, now_ms: u64) {
        self.refill(now_ms);
        self.tokens -= n;
    }

    /// Milliseconds until the debt is paid (0: not in debt).
    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        if self.tokens >= 0.0 {
            0
        } else {
            (-self.tokens / self.rate_per_ms).ceil() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_burst_then_the_rate() {
        let mut b = TokenBucket::new(10.0, 3.0, 0);
        assert!((0..3).all(|_| b.try_take(1.0, 0)));
        assert!(!b.try_take(1.0, 0), "burst spent");
        assert!(!b.try_take(1.0, 50), "half a token after 50 ms");
        assert!(b.try_take(1.0, 100), "one token after 100 ms at 10/s");
        // Refill never exceeds the burst.
        assert!((0..3).all(|_| b.try_take(1.0, 100_000)));
        assert!(!b.try_take(1.0, 100_000));
    }

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let mut b = TokenBucket::new(1000.0, 1000.0, 0);
        b.spend(3000.0, 0);
        assert_eq!(b.wait_ms(0), 2000, "2000 bytes of debt at 1000/s");
        assert_eq!(b.wait_ms(1500), 500);
        assert_eq!(b.wait_ms(2000), 0);
        // The clock going backwards changes nothing.
        assert_eq!(b.wait_ms(10), 0);
    }
}
