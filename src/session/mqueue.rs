//! A session's pending message queue: messages wait here while the client is offline or its
//! inflight window is full.
//!
//! Owns the queued messages `T` with their delivery QoS, and a count of the QoS0 ones. The
//! session pushes every message routed to it that it cannot send at once, pops as inflight
//! slots free up or when the client reconnects, and drains the queue when the session is
//! discarded (counting the drops).
//!
//! ```text
//!   route ──push──> | Pending (this MQueue, <= max_len) | ──pop──> | Inflight | ──> Out (socket)
//!                     front = oldest            back = newest
//!
//!   when full:  1. store_qos0 and a QoS0 item is queued  -> drop the OLDEST QoS0 item
//!               2. the incoming item is QoS0              -> reject it
//!               3. Oldest                                 -> drop the front
//!                  Newest                                 -> reject the incoming item
//! ```
//!
//! QoS1/2 messages are what a persistent session promises to keep, so when room must be made
//! the queued QoS0 messages go first. The QoS0 count keeps the common cases (not full, or full
//! with no QoS0 queued) free of scans; only "full with QoS0 queued" searches for the oldest.

use std::collections::VecDeque;

use crate::codec::QoS;
/// What to drop when the queue is full and no QoS0 item can make room: the
/// configured `session.mqueue_drop`.
pub use crate::config::QueueDropPolicy as DropPolicy;

/// The outcome of [`MQueue::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Push<T> {
    /// Queued, nothing dropped.
    Queued,
    /// Queued, but this older message was dropped to make room.
    QueuedDropped(T),
    /// The incoming message itself was not queued (returned).
    Rejected(T),
}

/// A bounded FIFO of pending messages. See the module doc.
#[derive(Debug)]
pub struct MQueue<T> {
    items: VecDeque<(T, QoS)>,
    max_len: usize,
    store_qos0: bool,
    policy: DropPolicy,
    /// How many queued items are QoS0.
    qos0: usize,
}

impl<T> MQueue<T> {
    /// max_len 0 = unbounded is NOT allowed: max_len >= 1 (caller validates config).
    ///
    /// A 0 that slips through is treated as 1.
    pub fn new(max_len: usize, store_qos0: bool, policy: DropPolicy) -> Self {
        MQueue {
            items: VecDeque::new(),
            max_len: max_len.max(1),
            store_qos0,
            policy,
            qos0: 0,
        }
    }

    /// A QoS0 item when !store_qos0 -> Rejected. When full: if store_qos0 and the queue holds QoS0 items, the OLDEST QoS0
    /// item is dropped first (QueuedDropped); else if the incoming item is QoS0 -> Rejected; else Oldest drops the front
    /// (QueuedDropped), Newest rejects the incoming one. Keep a count of queued QoS0 items so the common case never scans.
    pub fn push(&mut self, item: T, qos: QoS) -> Push<T> {
        let is_qos0 = qos == QoS::AtMostOnce;
        if is_qos0 && !self.store_qos0 {
            return Push::Rejected(item);
        }
        let dropped = if self.items.len() < self.max_len {
            None
        } else if let Some(old) = self.remove_oldest_qos0() {
            Some(old)
        } else if is_qos0 || self.policy == DropPolicy::Newest {
            return Push::Rejected(item);
        } else {
            self.pop().map(|(old, _)| old)
        };
        self.push_back(item, qos);
        match dropped {
            Some(old) => Push::QueuedDropped(old),
            None => Push::Queued,
        }
    }

    fn push_back(&mut self, item: T, qos: QoS) {
        if qos == QoS::AtMostOnce {
            self.qos0 += 1;
        }
        self.items.push_back((item, qos));
    }

    /// Remove the oldest QoS0 item: a scan, only when full with QoS0 items queued.
    fn remove_oldest_qos0(&mut self) -> Option<T> {
        if self.qos0 == 0 {
            return None;
        }
        let index = self
            .items
            .iter()
            .position(|(_, qos)| *qos == QoS::AtMostOnce)?;
        let (item, _) = self.items.remove(index)?;
        self.qos0 -= 1;
        Some(item)
    }

    pub fn pop(&mut self) -> Option<(T, QoS)> {
        let (item, qos) = self.items.pop_front()?;
        if qos == QoS::AtMostOnce {
            self.qos0 -= 1;
        }
        if self.items.is_empty() {
            // Free the buffer: an idle session keeps no queue allocation.
            self.items = VecDeque::new();
        }
        Some((item, qos))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    pub fn clear(&mut self) {
        self.items.clear();
        self.qos0 = 0;
    }

    /// The queued items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(T, QoS)> {
        self.items.iter()
    }

    /// Take everything, in order (tests inspect the queue with it).
    #[cfg(test)]
    pub fn take_all(&mut self) -> impl Iterator<Item = (T, QoS)> + '_ {
        // `VecDeque::drain(..)` empties the queue even if the iterator is dropped early.
        self.qos0 = 0;
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DropPolicy::{Newest, Oldest};
    use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

    impl<T> MQueue<T> {
        /// The QoS0 counter agrees with the contents.
        fn check(&self) {
            let actual = self.items.iter().filter(|(_, q)| *q == Q0).count();
            assert_eq!(self.qos0, actual);
            assert!(self.items.len() <= self.max_len);
        }
    }

    fn contents(q: &MQueue<u32>) -> Vec<(u32, QoS)> {
        q.items.iter().copied().collect()
    }

    #[test]
    fn fifo_order() {
        let mut q = MQueue::new(10, true, Oldest);
        assert!(q.is_empty());
        for (i, qos) in [(1, Q1), (2, Q0), (3, Q2), (4, Q1)] {
            assert_eq!(q.push(i, qos), Push::Queued);
            q.check();
        }
        assert_eq!(q.len(), 4);
        assert_eq!(q.pop(), Some((1, Q1)));
        assert_eq!(q.pop(), Some((2, Q0)));
        q.check();
        assert_eq!(q.pop(), Some((3, Q2)));
        assert_eq!(q.pop(), Some((4, Q1)));
        assert_eq!(q.pop(), None);
        q.check();
    }

    #[test]
    fn qos0_rejected_when_not_stored() {
        let mut q = MQueue::new(10, false, Oldest);
        assert_eq!(q.push(1, Q0), Push::Rejected(1));
        assert_eq!(q.push(2, Q1), Push::Queued);
        assert_eq!(contents(&q), [(2, Q1)]);
        q.check();
    }

    #[test]
    fn full_drops_oldest_qos0_first() {
        for policy in [Oldest, Newest] {
            let mut q = MQueue::new(4, true, policy);
            for (i, qos) in [(1, Q1), (2, Q0), (3, Q2), (4, Q0)] {
                assert_eq!(q.push(i, qos), Push::Queued);
            }
            // Incoming QoS1 replaces the oldest QoS0 (2), whatever the policy.
            assert_eq!(q.push(5, Q1), Push::QueuedDropped(2));
            q.check();
            // Incoming QoS0 likewise replaces the oldest QoS0 (4).
            assert_eq!(q.push(6, Q0), Push::QueuedDropped(4));
            q.check();
            assert_eq!(contents(&q), [(1, Q1), (3, Q2), (5, Q1), (6, Q0)]);
            assert_eq!(q.push(7, Q2), Push::QueuedDropped(6));
            assert_eq!(contents(&q), [(1, Q1), (3, Q2), (5, Q1), (7, Q2)]);
            q.check();
        }
    }

    #[test]
    fn full_without_qos0_rejects_incoming_qos0() {
        let mut q = MQueue::new(2, true, Oldest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q0), Push::Rejected(3));
        assert_eq!(contents(&q), [(1, Q1), (2, Q2)]);
        q.check();
    }

    #[test]
    fn full_drop_oldest() {
        let mut q = MQueue::new(2, false, Oldest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q1), Push::QueuedDropped(1));
        assert_eq!(q.push(4, Q2), Push::QueuedDropped(2));
        assert_eq!(contents(&q), [(3, Q1), (4, Q2)]);
        q.check();
    }

    #[test]
    fn full_drop_newest() {
        let mut q = MQueue::new(2, false, Newest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q1), Push::Rejected(3));
        assert_eq!(contents(&q), [(1, Q1), (2, Q2)]);
        q.check();
    }

    #[test]
    fn max_len_zero_acts_as_one() {
        let mut q = MQueue::new(0, true, Oldest);
        assert_eq!(q.push(1, Q1), Push::Queued);
        assert_eq!(q.push(2, Q1), Push::QueuedDropped(1));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn clear_and_drain_reset_the_counter() {
        let mut q = MQueue::new(3, true, Oldest);
        q.push(1, Q0);
        q.push(2, Q1);
        q.push(3, Q0);
        q.clear();
        assert!(q.is_empty());
        q.check();
        // With the counter reset, a full queue without QoS0 must use the policy.
        q.push(4, Q1);
        q.push(5, Q0);
        q.push(6, Q2);
        {
            let mut drain = q.take_all();
            assert_eq!(drain.next(), Some((4, Q1)));
            // Dropped early: the rest go too.
        }
        assert!(q.is_empty());
        q.check();
        for i in 0..3 {
            q.push(i, Q1);
        }
        assert_eq!(q.push(9, Q1), Push::QueuedDropped(0));
        q.check();
        let all: Vec<_> = q.take_all().collect();
        assert_eq!(all, [(1, Q1), (2, Q1), (9, Q1)]);
    }

    #[test]
    fn counter_under_random_churn() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut q = MQueue::new(16, true, Oldest);
        for i in 0..5_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let qos = [Q0, Q1, Q2][(rng % 3) as usize];
            if rng.is_multiple_of(5) {
                q.pop();
            } else {
                q.push(i, qos);
            }
            q.check();
        }
        // FIFO among what survived.
        let order: Vec<u32> = q.take_all().map(|(i, _)| i).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }
}
