//! The timers part: the shard's clock and its one timer wheel.
//!
//! Owns the wheel of [`TimerItem`]s (connect timeout, keepalive, retry,
//! session expiry) and the shard clock (milliseconds since the shard
//! started). Handlers arm entries with [`Timers::arm`]; the tick task
//! ([`super::tick`]) advances the wheel and hands what fired back to the
//! shard, which validates each entry against current state (there is no
//! cancel: a stale key finds nothing).

use super::wheel::TimerWheel;
use crate::slab::{ConnKey, SessionKey};
use std::time::Instant;

/// Wheel resolution and tick period.
pub const TICK_MS: u64 = 100;

/// How far past its time a tick counts as late.
pub const LATE_MS: u64 = 500;

/// Timer wheel entries; validated lazily when they fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerItem {
    ConnectTimeout(ConnKey),
    Keepalive(ConnKey),
    Retry(SessionKey),
    /// An offline session's expiry, for the disconnect numbered `epoch`.
    Expire(SessionKey, u32),
    /// An offline session's delayed will, for the disconnect numbered `epoch`.
    Will(SessionKey, u32),
    /// The connection's output stall numbered `epoch` lasted too long.
    OutputStall(ConnKey, u8),
    /// The connection's incomplete packet is due.
    PacketDeadline(ConnKey),
    /// The authenticate hook's time for the connection's CONNECT is up.
    LoginTimeout(ConnKey),
    /// The connection paused reading for its inbound byte rate may read again.
    InputResume(ConnKey),
}

/// The clock and the wheel.
pub struct Timers {
    wheel: TimerWheel<TimerItem>,
    /// The clock as of the last [`now_ms`](Self::now_ms): cheap on hot paths.
    clock_ms: u64,
    epoch: Instant,
    /// Added to the real clock: lets harness tests move time forward.
    skew_ms: u64,
    /// When the wheel was last advanced, and whether that was late.
    last_advance_ms: u64,
    late: bool,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            wheel: TimerWheel::new(TICK_MS, 1024, 0),
            clock_ms: 0,
            epoch: Instant::now(),
            skew_ms: 0,
            last_advance_ms: 0,
            late: false,
        }
    }
}

impl Timers {
    /// Read the clock (milliseconds since the shard started) and remember it.
    pub fn now_ms(&mut self) -> u64 {
        self.clock_ms = self.epoch.elapsed().as_millis() as u64 + self.skew_ms;
        self.clock_ms
    }

    /// The clock as last read: no system call.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Fire `item` at `deadline_ms` (shard clock).
    pub fn arm(&mut self, deadline_ms: u64, item: TimerItem) {
        self.wheel.insert(deadline_ms, item);
    }

    /// Advance to the current time; returns it, with what fired in `fired`.
    /// A tick that comes [`LATE_MS`] or more after it was due marks the
    /// shard late (it was busy or descheduled) until the next one.
    pub fn advance(&mut self, fired: &mut Vec<TimerItem>) -> u64 {
        let now = self.now_ms();
        self.late = now.saturating_sub(self.last_advance_ms) >= TICK_MS + LATE_MS;
        self.last_advance_ms = now;
        self.wheel.advance(now, fired);
        now
    }

    /// Whether this tick came late: connections whose bytes the shard did
    /// not get to read meanwhile are not judged by it.
    pub fn late(&self) -> bool {
        self.late
    }

    /// Move the clock forward by `ms` (harness tests).
    #[cfg(test)]
    pub fn skip(&mut self, ms: u64) {
        self.skew_ms += ms;
        self.last_advance_ms += ms;
    }

    /// Move the clock forward by `ms` as if the shard had been busy the
    /// whole time: the next tick is late (harness tests).
    #[cfg(test)]
    pub fn stall(&mut self, ms: u64) {
        self.skew_ms += ms;
    }

    /// Every armed entry with its deadline (harness tests).
    #[cfg(test)]
    pub fn armed(&self) -> Vec<(u64, TimerItem)> {
        self.wheel.pending().copied().collect()
    }
}
