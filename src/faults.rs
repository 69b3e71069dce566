//! Fault injection for tests: make one shard's connection writes or mailbox
//! sends slow, or its writes fail, while the broker runs.
//!
//! Owns a set of switches ([`Faults`]) that a test (or an embedder probing
//! its own deployment) flips at any time through the `Arc` it handed to
//! [`Broker::with_faults`](crate::Broker::with_faults). The connection task
//! (`crate::conn`) and the mesh sender tasks (`crate::shard::mesh`) read
//! them; a broker started without faults never looks (one `None` check).
//! Not part of the configuration file.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// No shard.
const NONE: usize = usize::MAX;

/// The switches; every one off by default.
#[derive(Debug)]
pub struct Faults {
    slow_writes_shard: AtomicUsize,
    slow_writes_ms: AtomicU64,
    fail_writes_shard: AtomicUsize,
    slow_mesh_shard: AtomicUsize,
    slow_mesh_ms: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            slow_writes_shard: AtomicUsize::new(NONE),
            slow_writes_ms: AtomicU64::new(0),
            fail_writes_shard: AtomicUsize::new(NONE),
            slow_mesh_shard: AtomicUsize::new(NONE),
            slow_mesh_ms: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// Delay every write of `shard`'s connections by `delay` (None: stop).
    pub fn slow_writes(&self, shard: Option<usize>, delay: Duration) {
        self.slow_writes_ms.store(millis(delay), Ordering::Relaxed);
        self.slow_writes_shard
            .store(shard.unwrap_or(NONE), Ordering::Relaxed);
    }

    /// Make every write of `shard`'s connections fail (None: stop).
    pub fn fail_writes(&self, shard: Option<usize>) {
        self.fail_writes_shard
            .store(shard.unwrap_or(NONE), Ordering::Relaxed);
    }

    /// Delay every mailbox send of `shard` by `delay` (None: stop).
    pub fn slow_mesh(&self, shard: Option<usize>, delay: Duration) {
        self.slow_mesh_ms.store(millis(delay), Ordering::Relaxed);
        self.slow_mesh_shard
            .store(shard.unwrap_or(NONE), Ordering::Relaxed);
    }

    /// How long `shard`'s next write waits.
    pub(crate) fn write_delay(&self, shard: usize) -> Option<Duration> {
        delay_for(&self.slow_writes_shard, &self.slow_writes_ms, shard)
    }

    /// Whether `shard`'s writes fail.
    pub(crate) fn writes_fail(&self, shard: usize) -> bool {
        self.fail_writes_shard.load(Ordering::Relaxed) == shard
    }

    /// How long `shard`'s next mailbox send waits.
    pub(crate) fn mesh_delay(&self, shard: usize) -> Option<Duration> {
        delay_for(&self.slow_mesh_shard, &self.slow_mesh_ms, shard)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn delay_for(who: &AtomicUsize, ms: &AtomicU64, shard: usize) -> Option<Duration> {
    (who.load(Ordering::Relaxed) == shard)
        .then(|| Duration::from_millis(ms.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_name_one_shard_and_turn_off() {
        let f = Faults::default();
        assert_eq!(f.write_delay(0), None);
        f.slow_writes(Some(1), Duration::from_millis(30));
        assert_eq!(f.write_delay(1), Some(Duration::from_millis(30)));
        assert_eq!(f.write_delay(0), None);
        f.slow_writes(None, Duration::ZERO);
        assert_eq!(f.write_delay(1), None);
        f.fail_writes(Some(0));
        assert!(f.writes_fail(0) && !f.writes_fail(1));
        f.slow_mesh(Some(0), Duration::from_millis(5));
        assert_eq!(f.mesh_delay(0), Some(Duration::from_millis(5)));
    }
}
