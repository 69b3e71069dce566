//! A session's pending message queue: messages wait here while the client is offline or its
//! inflight window is full.
//!
//! Owns the queued messages `T` with their delivery QoS, a count of the QoS0 ones and the
//! queued bytes. The session pushes every message routed to it that it cannot send at once,
//! pops as inflight slots free up or when the client reconnects, and drains the queue when the
//! session is discarded (counting the drops). The bounds ([`Limits`]: count and bytes, as
//! Mosquitto's `max_queued_messages` / `max_queued_bytes`) are the same for every session and
//! are passed in by the sessions part, not copied into each queue.
//!
//! ```text
//!   route ──push──> | Pending (this MQueue, <= max_len, <= max_bytes) | ──pop──> | Inflight | ──> Out
//!                     front = oldest            back = newest
//!
//!   while full (by count or by bytes):
//!               1. store_qos0 and a QoS0 item is queued  -> drop the OLDEST QoS0 item
//!               2. the incoming item is QoS0              -> reject it
//!               3. Oldest                                 -> drop the front
//!                  Newest                                 -> reject the incoming item
//!   an item larger than max_bytes on its own is rejected.
//! ```
//!
//! QoS1/2 messages are what a persistent session promises to keep, so when room must be made
//! the queued QoS0 messages go first. The QoS0 count keeps the common cases (not full, or full
//! with no QoS0 queued) free of scans; only "full with QoS0 queued" searches for the oldest.

use super::thin::ThinDeque;

use crate::codec::QoS;
/// What to drop when the queue is full and no QoS0 item can make room: the
/// configured `session.mqueue_drop`.
pub use crate::config::QueueDropPolicy as DropPolicy;
use smallvec::SmallVec;

/// How many bytes a queued item holds (what the byte budget counts).
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for u32 {
    fn weight(&self) -> usize {
        4
    }
}

impl Weigh for u64 {
    fn weight(&self) -> usize {
        8
    }
}

/// The bounds every session's queue shares (from `[session]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items at most (at least 1).
    pub max_len: usize,
    /// Bytes at most (at least 1).
    pub max_bytes: usize,
    pub store_qos0: bool,
    pub policy: DropPolicy,
}

/// The outcome of [`MQueue::push`]: what was dropped to make room (oldest
/// first) and, if the incoming item was not queued, the item itself. One
/// drop (the common case under load) needs no allocation.
#[derive(Debug, PartialEq, Eq)]
pub struct Push<T> {
    pub dropped: SmallVec<[T; 1]>,
    pub rejected: Option<T>,
}

impl<T> Push<T> {
    /// Messages lost by this push (dropped or refused).
    pub fn lost(&self) -> usize {
        self.dropped.len() + usize::from(self.rejected.is_some())
    }
}

/// One queued item with its delivery QoS and its weight, kept so that
/// dropping or sending it never reads the message itself (an old message is
/// a cache miss; a flood of drops would pay one each).
#[derive(Debug)]
struct Queued<T> {
    item: T,
    qos: QoS,
    weight: u32,
}

/// A bounded FIFO of pending messages. See the module doc.
#[derive(Debug)]
pub struct MQueue<T> {
    items: ThinDeque<Queued<T>>,
    /// How many queued items are QoS0.
    qos0: u32,
    /// Sum of the queued items' weights.
    bytes: usize,
}

impl<T> Default for MQueue<T> {
    fn default() -> Self {
        MQueue {
            items: ThinDeque::default(),
            qos0: 0,
            bytes: 0,
        }
    }
}

impl<T: Weigh> MQueue<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `item` under `lim` (see the module doc for what is dropped when full).
    pub fn push(&mut self, item: T, qos: QoS, lim: &Limits) -> Push<T> {
        let is_qos0 = qos == QoS::AtMostOnce;
        let weight = item.weight();
        let mut dropped = SmallVec::new();
        if (is_qos0 && !lim.store_qos0) || weight > lim.max_bytes.max(1) {
            return Push {
                dropped,
                rejected: Some(item),
            };
        }
        while self.items.len() >= lim.max_len.max(1) || self.bytes + weight > lim.max_bytes {
            if let Some(old) = self.remove_oldest_qos0() {
                dropped.push(old);
            } else if is_qos0 || lim.policy == DropPolicy::Newest {
                return Push {
                    dropped,
                    rejected: Some(item),
                };
            } else if let Some((old, _)) = self.pop() {
                dropped.push(old);
            } else {
                break;
            }
        }
        if is_qos0 {
            self.qos0 += 1;
        }
        self.bytes += weight;
        self.items.push_back(Queued {
            item,
            qos,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        });
        Push {
            dropped,
            rejected: None,
        }
    }

    /// Remove the oldest QoS0 item: a scan, only when full with QoS0 items queued.
    fn remove_oldest_qos0(&mut self) -> Option<T> {
        if self.qos0 == 0 {
            return None;
        }
        let index = self.items.iter().position(|q| q.qos == QoS::AtMostOnce)?;
        let q = self.items.remove(index)?;
        self.qos0 -= 1;
        self.bytes -= q.weight as usize;
        Some(q.item)
    }

    pub fn pop(&mut self) -> Option<(T, QoS)> {
        let q = self.items.pop_front()?;
        if q.qos == QoS::AtMostOnce {
            self.qos0 -= 1;
        }
        self.bytes -= q.weight as usize;
        Some((q.item, q.qos))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes queued (the sum of the items' weights).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The queued items with their QoS, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&T, QoS)> {
        self.items.iter().map(|q| (&q.item, q.qos))
    }

    /// Take everything, in order (tests inspect the queue with it).
    #[cfg(test)]
    pub fn take_all(&mut self) -> impl Iterator<Item = (T, QoS)> + '_ {
        self.qos0 = 0;
        self.bytes = 0;
        self.items.take_all().map(|q| (q.item, q.qos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DropPolicy::{Newest, Oldest};
    use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};

    /// A queue of u32 (4 bytes each) under fixed limits.
    struct Q {
        q: MQueue<u32>,
        lim: Limits,
    }

    /// What a push did, compactly: (dropped, rejected).
    type Did = (Vec<u32>, Option<u32>);

    impl Q {
        fn new(max_len: usize, store_qos0: bool, policy: DropPolicy) -> Q {
            let lim = Limits {
                max_len,
                max_bytes: usize::MAX,
                store_qos0,
                policy,
            };
            Q {
                q: MQueue::new(),
                lim,
            }
        }

        fn push(&mut self, i: u32, qos: QoS) -> Did {
            let p = self.q.push(i, qos, &self.lim);
            self.check();
            (p.dropped.to_vec(), p.rejected)
        }

        /// The counters agree with the contents and the limits hold.
        fn check(&self) {
            let q = &self.q;
            let qos0 = q.items.iter().filter(|e| e.qos == Q0).count();
            assert_eq!(q.qos0 as usize, qos0);
            assert_eq!(q.bytes, q.items.len() * 4);
            assert!(q.items.len() <= self.lim.max_len.max(1));
            assert!(q.bytes <= self.lim.max_bytes);
        }

        fn contents(&self) -> Vec<(u32, QoS)> {
            self.q.iter().map(|(i, q)| (*i, q)).collect()
        }
    }

    const QUEUED: Did = (Vec::new(), None);

    #[test]
    fn fifo_order() {
        let mut q = Q::new(10, true, Oldest);
        for (i, qos) in [(1, Q1), (2, Q0), (3, Q2), (4, Q1)] {
            assert_eq!(q.push(i, qos), QUEUED);
        }
        assert_eq!(q.q.len(), 4);
        let popped: Vec<_> = std::iter::from_fn(|| q.q.pop()).collect();
        assert_eq!(popped, [(1, Q1), (2, Q0), (3, Q2), (4, Q1)]);
        q.check();
    }

    #[test]
    fn qos0_rejected_when_not_stored() {
        let mut q = Q::new(10, false, Oldest);
        assert_eq!(q.push(1, Q0), (vec![], Some(1)));
        assert_eq!(q.push(2, Q1), QUEUED);
        assert_eq!(q.contents(), [(2, Q1)]);
    }

    #[test]
    fn full_drops_oldest_qos0_first() {
        for policy in [Oldest, Newest] {
            let mut q = Q::new(4, true, policy);
            for (i, qos) in [(1, Q1), (2, Q0), (3, Q2), (4, Q0)] {
                assert_eq!(q.push(i, qos), QUEUED);
            }
            // Incoming QoS1 replaces the oldest QoS0 (2), whatever the policy.
            assert_eq!(q.push(5, Q1), (vec![2], None));
            // Incoming QoS0 likewise replaces the oldest QoS0 (4).
            assert_eq!(q.push(6, Q0), (vec![4], None));
            assert_eq!(q.contents(), [(1, Q1), (3, Q2), (5, Q1), (6, Q0)]);
            assert_eq!(q.push(7, Q2), (vec![6], None));
            assert_eq!(q.contents(), [(1, Q1), (3, Q2), (5, Q1), (7, Q2)]);
        }
    }

    #[test]
    fn full_without_qos0_rejects_incoming_qos0() {
        let mut q = Q::new(2, true, Oldest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q0), (vec![], Some(3)));
        assert_eq!(q.contents(), [(1, Q1), (2, Q2)]);
    }

    #[test]
    fn full_drop_oldest() {
        let mut q = Q::new(2, false, Oldest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q1), (vec![1], None));
        assert_eq!(q.push(4, Q2), (vec![2], None));
        assert_eq!(q.contents(), [(3, Q1), (4, Q2)]);
    }

    #[test]
    fn full_drop_newest() {
        let mut q = Q::new(2, false, Newest);
        q.push(1, Q1);
        q.push(2, Q2);
        assert_eq!(q.push(3, Q1), (vec![], Some(3)));
        assert_eq!(q.contents(), [(1, Q1), (2, Q2)]);
    }

    #[test]
    fn max_len_zero_acts_as_one() {
        let mut q = Q::new(0, true, Oldest);
        assert_eq!(q.push(1, Q1), QUEUED);
        assert_eq!(q.push(2, Q1), (vec![1], None));
        assert_eq!(q.q.len(), 1);
    }

    #[test]
    fn byte_budget_drops_as_many_as_it_takes() {
        // 3 items of 4 bytes fit in 12: a fourth drops the oldest.
        let mut q = Q::new(100, true, Oldest);
        q.lim.max_bytes = 12;
        for i in 1..=3 {
            assert_eq!(q.push(i, Q1), QUEUED);
        }
        assert_eq!(q.push(4, Q1), (vec![1], None));
        // Full with no QoS 0 queued: an incoming QoS 0 item is refused.
        assert_eq!(q.push(5, Q0), (vec![], Some(5)));
        q.q.pop();
        assert_eq!(q.push(5, Q0), QUEUED);
        // A QoS 0 item in the queue goes first, even if younger.
        assert_eq!(q.push(6, Q1), (vec![5], None));
        // Tighter budget: one push makes room by dropping two.
        q.lim.max_bytes = 8;
        assert_eq!(q.push(7, Q1), (vec![3, 4], None));
        assert_eq!(q.contents(), [(6, Q1), (7, Q1)]);
        // Newest refuses instead.
        q.lim.policy = Newest;
        assert_eq!(q.push(8, Q1), (vec![], Some(8)));
    }

    #[test]
    fn an_item_larger_than_the_budget_is_refused() {
        let mut q = Q::new(10, true, Oldest);
        q.lim.max_bytes = 3;
        assert_eq!(q.push(1, Q1), (vec![], Some(1)));
        assert!(q.q.is_empty());
    }

    #[test]
    fn take_all_resets_the_counters() {
        let mut q = Q::new(3, true, Oldest);
        q.push(1, Q0);
        q.push(2, Q1);
        {
            let mut all = q.q.take_all();
            assert_eq!(all.next(), Some((1, Q0)));
            // Dropped early: the rest go too.
        }
        assert!(q.q.is_empty());
        q.check();
        for i in 0..3 {
            q.push(i, Q1);
        }
        assert_eq!(q.push(9, Q1), (vec![0], None));
        let all: Vec<_> = q.q.take_all().collect();
        assert_eq!(all, [(1, Q1), (2, Q1), (9, Q1)]);
    }

    #[test]
    fn counters_under_random_churn() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut q = Q::new(16, true, Oldest);
        q.lim.max_bytes = 40;
        for i in 0..5_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let qos = [Q0, Q1, Q2][(rng % 3) as usize];
            if rng.is_multiple_of(5) {
                q.q.pop();
                q.check();
            } else {
                q.push(i, qos);
            }
        }
        // FIFO among what survived.
        let order: Vec<u32> = q.q.take_all().map(|(i, _)| i).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }
}
