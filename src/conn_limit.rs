//! The node-wide connection limit.
//!
//! Owns the count of open connections of the whole node ([`ConnCount`],
//! shared by every shard's accept loop: the one atomic on the connection
//! path, never on the publish path) and the [`Slot`] each connection holds
//! until its socket closes. A slot travels with a socket handed to another
//! shard. Called by `crate::listener` (acquire) and released by drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Open connections of the whole node, shared by the shards' accept loops.
#[derive(Debug, Default)]
pub struct ConnCount(AtomicUsize);

impl ConnCount {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnCount(AtomicUsize::new(0)))
    }

    /// Take a slot if fewer than `max` are in use.
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A node-wide connection slot, released on drop; travels with a handed-off socket.
#[derive(Debug)]
pub struct Slot(Arc<ConnCount>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let count = ConnCount::new();
        let a = count.try_acquire(2).expect("first");
        let _b = count.try_acquire(2).expect("second");
        assert!(count.try_acquire(2).is_none(), "limit reached");
        drop(a);
        assert_eq!(count.get(), 1);
        assert!(count.try_acquire(2).is_some());
    }
}
