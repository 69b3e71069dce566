//! The shard's clock: one task per shard that advances the timer wheel.
//!
//! Every [`TICK_MS`] it fires due wheel entries (connect timeouts, keepalive,
//! retry, session expiry), posts the shard's counters to the metrics board
//! and checks the broker's stop flag. One glommio Timer per shard, never one
//! per connection.

use super::{CloseReason, ShardRef, TimerItem};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Wheel resolution and tick period.
pub const TICK_MS: u64 = 100;

/// Runs until the broker stops; returns when this shard should shut down.
pub async fn run(shard: ShardRef) {
    let mut fired = Vec::new();
    loop {
        glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
        let mut s = shard.borrow_mut();
        let now = s.now_ms();
        s.wheel.advance(now, &mut fired);
        for item in fired.drain(..) {
            s.fire(item, now);
        }
        s.retained.prune_tombstones();
        s.post_metrics();
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

impl super::Shard {
    /// Set the gauges and post this shard's counters to the metrics board.
    pub(crate) fn post_metrics(&mut self) {
        self.metrics.connections_open = self.conns.len() as u64;
        self.metrics.sessions = self.sessions.len() as u64;
        self.metrics.retained = self.retained.len() as u64;
        self.board.post(self.id, &self.metrics);
    }

    /// Handle one fired timer, validating it against current state.
    fn fire(&mut self, item: TimerItem, now: u64) {
        match item {
            TimerItem::ConnectTimeout(k) => {
                // `info` is set by an accepted CONNECT and never cleared.
                if matches!(self.conns.get(k), Some(c) if c.info.is_none()) {
                    log::info!(
                        "{}: no CONNECT within {} s, closing",
                        self.who(k),
                        self.cfg.mqtt.connect_timeout_s
                    );
                    self.metrics.connect_timeouts += 1;
                    self.close_conn(k, CloseReason::ConnectTimeout);
                }
            }
            TimerItem::Keepalive(k) => {
                let Some(c) = self.conns.get(k) else { return };
                if c.keepalive_ms == 0 || c.close.is_some() {
                    return;
                }
                let deadline = c.keepalive_deadline();
                if now >= deadline {
                    log::info!("{}: keepalive expired, closing", self.who(k));
                    self.metrics.keepalive_timeouts += 1;
                    self.close_conn(k, CloseReason::KeepaliveTimeout);
                } else {
                    self.wheel.insert(deadline, TimerItem::Keepalive(k));
                }
            }
            TimerItem::Retry(sk) => self.retry_session(sk, now),
            TimerItem::Expire(sk, epoch) => {
                if let Some(s) = self
                    .sessions
                    .get(sk)
                    .filter(|s| s.conn.is_none() && s.epoch == epoch)
                {
                    log::info!("shard {}: session {:?} expired", self.id, s.client_id);
                    self.metrics.sessions_expired += 1;
                    self.discard_session(sk);
                }
            }
        }
    }
}
