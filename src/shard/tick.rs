//! The shard's clock task: one per shard, it advances the timer wheel.
//!
//! Every [`TICK_MS`] it fires due wheel entries (connect timeouts, keepalive,
//! retry, session expiry), prunes old retained tombstones, posts the shard's
//! counters to the metrics board and checks the broker's stop flag. One
//! glommio Timer per shard, never one per connection.

use super::timers::TICK_MS;
use super::{CloseReason, ConnKey, ShardRef, TimerItem};
use crate::session::store::Ending;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs until the broker stops; returns when this shard should shut down.
pub async fn run(shard: ShardRef) {
    let mut fired = Vec::new();
    loop {
        glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
        let mut sh = shard.borrow_mut();
        sh.tick(&mut fired);
        // The executor's own figures: only inside it (not in the harness).
        sh.control.sample_busy();
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

impl super::Shard {
    /// A keepalive deadline passed: close the connection only if the client
    /// was really silent — not while the broker itself stopped reading from
    /// it, not with its bytes waiting unread in the kernel, and not when the
    /// shard was too late to read them. Otherwise look again a keepalive later.
    fn keepalive_due(&mut self, k: ConnKey, now: u64) {
        let Some(c) = self.conns.get(k).filter(|c| c.closing().is_none()) else {
            return;
        };
        let Some(deadline) = c.keepalive_deadline() else {
            return;
        };
        if now < deadline {
            self.timers.arm(deadline, TimerItem::Keepalive(k));
            return;
        }
        if c.reading_paused() || self.timers.late() || c.unread_bytes() > 0 {
            self.metrics.keepalive_spared += 1;
            let again = now + c.keepalive_ms().max(TICK_MS);
            self.timers.arm(again, TimerItem::Keepalive(k));
            return;
        }
        log::info!("{}: keepalive expired, closing", self.who(k));
        self.metrics.keepalive_timeouts += 1;
        self.close_conn(k, CloseReason::KeepaliveTimeout);
    }

    /// A packet deadline: close if the same incomplete packet is still
    /// pending past `packet_timeout_s`, else look again at its own deadline.
    fn packet_due(&mut self, k: ConnKey, now: u64) {
        let timeout = self.cfg.limits.packet_timeout_s * 1000;
        let Some(since) = self.conns.get(k).and_then(|c| c.partial_since_ms()) else {
            return;
        };
        if now < since + timeout || self.timers.late() {
            self.timers.arm(
                (since + timeout).max(now + TICK_MS),
                TimerItem::PacketDeadline(k),
            );
            return;
        }
        if let Some(held) = self.lines.packet_timeout.allow() {
            log::info!(
                "{}: a packet took over {} s to arrive, closing{held}",
                self.who(k),
                self.cfg.limits.packet_timeout_s
            );
        }
        self.metrics.packet_timeouts += 1;
        self.close_conn(k, CloseReason::PacketTimeout);
    }

    /// One tick: fire what is due, prune, post counters.
    pub fn tick(&mut self, fired: &mut Vec<TimerItem>) {
        let now = self.timers.advance(fired);
        for item in fired.drain(..) {
            self.fire(item, now);
        }
        self.router.prune_tombstones();
        self.recheck_subscriptions_after_reload();
        self.post_durable();
        self.post_metrics();
    }

    /// Set the gauges and post this shard's counters to the metrics board.
    pub(crate) fn post_metrics(&mut self) {
        self.set_gauges();
        self.board.post(self.id, &self.metrics);
    }

    /// Bring the gauges among the counters up to date.
    pub(crate) fn set_gauges(&mut self) {
        self.metrics.connections_open = self.conns.len() as u64;
        self.metrics.sessions = self.sessions.len() as u64;
        self.metrics.retained = self.router.retained_len() as u64;
        self.metrics.incomplete_bytes = self.conns.input_held() as u64;
    }

    /// Handle one fired timer, validating it against current state.
    fn fire(&mut self, item: TimerItem, now: u64) {
        match item {
            TimerItem::ConnectTimeout(k) => {
                let Some(c) = self.conns.get_mut(k) else {
                    return;
                };
                if c.take_deferred_keepalive() {
                    self.keepalive_due(k, now);
                } else if c.awaiting_connack() {
                    log::info!(
                        "{}: no CONNECT within {} s, closing",
                        self.who(k),
                        self.cfg.mqtt.connect_timeout_s
                    );
                    self.metrics.connect_timeouts += 1;
                    self.close_conn(k, CloseReason::ConnectTimeout);
                }
            }
            TimerItem::Keepalive(k) => self.keepalive_due(k, now),
            TimerItem::LoginTimeout(k) => self.login_timed_out(k),
            TimerItem::OutputStall(k, epoch) => {
                if self.conns.get(k).is_some_and(|c| c.stalled_since(epoch)) {
                    if let Some(held) = self.lines.output_stalled.allow() {
                        log::info!(
                            "{}: output over {} bytes for {} s (not reading?), closing{held}",
                            self.who(k),
                            self.cfg.mqtt.max_outbox_bytes,
                            self.cfg.limits.output_stall_timeout_s
                        );
                    }
                    self.metrics.output_stall_closes += 1;
                    self.close_conn(k, CloseReason::OutputStalled);
                }
            }
            TimerItem::PacketDeadline(k) => self.packet_due(k, now),
            TimerItem::InputResume(k) => {
                if let Some(c) = self.conns.get_mut(k) {
                    c.wake();
                }
            }
            TimerItem::Retry(sk) => self.retry_session(sk, now),
            TimerItem::Will(sk, epoch) => self.will_delay_over(sk, epoch),
            TimerItem::Expire(sk, epoch) => {
                let due = self
                    .sessions
                    .get(sk)
                    .filter(|s| s.conn().is_none() && s.epoch() == epoch);
                if let Some(s) = due {
                    log::info!("shard {}: session {:?} expired", self.id, s.client_id());
                    self.metrics.sessions_expired += 1;
                    self.end_session(sk, Ending::Expired);
                }
            }
        }
    }
}
