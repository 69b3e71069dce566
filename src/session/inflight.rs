//! The inflight window: QoS 1/2 messages sent to the client and not yet
//! acknowledged, in send order, with the packet ids they were given.
//!
//! Owned by a [`super::Session`]. The window is small (tens of entries), so a
//! deque scanned by packet id beats a map: it keeps send order for
//! retries (§4.6 ordering) for free. Packet ids are allocated here, per session,
//! skipping ids still in use.

use super::thin::ThinDeque;
use super::Delivery;
use crate::codec::QoS;

/// Where an outbound QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP (QoS 2).
    PubRelSent,
}

/// One unacknowledged outbound message.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pkid: u16,
    pub delivery: Delivery,
    /// QoS of this delivery (min of publish and subscription).
    pub qos: QoS,
    pub phase: Phase,
    /// When it was last sent (shard clock, ms); drives retry.
    pub sent_ms: u64,
}

/// The window.
#[derive(Debug)]
pub struct Inflight {
    entries: ThinDeque<Entry>,
    /// At most 65535 entries (one per packet id): a `u16` keeps the
    /// session small.
    max: u16,
    next_pkid: u16,
}

impl Inflight {
    /// A window of `max` entries (clamped to 1..=65535, the packet ids there are).
    pub fn new(max: usize) -> Self {
        let max = u16::try_from(max).unwrap_or(u16::MAX).max(1);
        Inflight {
            entries: ThinDeque::default(),
            max,
            next_pkid: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Change the window's size (the client's Receive Maximum, on connect);
    /// entries beyond a smaller size stay until acknowledged.
    pub fn set_max(&mut self, max: usize) {
        self.max = u16::try_from(max).unwrap_or(u16::MAX).max(1);
    }

    pub fn has_room(&self) -> bool {
        self.entries.len() < usize::from(self.max)
    }

    /// A packet id not in use by this window (never 0).
    fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                self.next_pkid = 1;
            }
            let id = self.next_pkid;
            if !self.entries.iter().any(|e| e.pkid == id) {
                return id;
            }
        }
    }

    /// Record a message about to be sent; returns its entry (packet id included).
    pub fn push(&mut self, delivery: Delivery, qos: QoS, now_ms: u64) -> &Entry {
        let pkid = self.alloc_pkid();
        self.push_as(pkid, delivery, qos, now_ms)
    }

    /// Record a message under a packet id chosen before (a replayed event):
    /// the next id is allocated after it, as it was live.
    pub fn push_as(&mut self, pkid: u16, delivery: Delivery, qos: QoS, now_ms: u64) -> &Entry {
        self.next_pkid = pkid;
        self.entries.push_back(Entry {
            pkid,
            delivery,
            qos,
            phase: Phase::Published,
            sent_ms: now_ms,
        })
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): remove the entry if it is in the expected phase.
    pub fn complete(&mut self, pkid: u16, qos: QoS, phase: Phase) -> Option<Entry> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.pkid == pkid && e.qos == qos && e.phase == phase)?;
        // An emptied window frees its buffer: an idle session keeps none.
        self.entries.remove(pos)
    }

    /// PUBREC: move a QoS 2 entry to [`Phase::PubRelSent`]. Returns false for an unknown id.
    pub fn pubrec(&mut self, pkid: u16, now_ms: u64) -> bool {
        match self
            .entries
            .iter_mut()
            .find(|e| e.pkid == pkid && e.qos == QoS::ExactlyOnce)
        {
            Some(e) => {
                e.phase = Phase::PubRelSent;
                e.sent_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// Hand `resend` every entry sent at or before `before_ms`, oldest first,
    /// marking it re-sent at `now_ms`; returns how many.
    pub fn resend_due(
        &mut self,
        before_ms: u64,
        now_ms: u64,
        mut resend: impl FnMut(&Entry),
    ) -> usize {
        let mut n = 0;
        for e in self.entries.iter_mut().filter(|e| e.sent_ms <= before_ms) {
            e.sent_ms = now_ms;
            resend(e);
            n += 1;
        }
        n
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Oldest send time in the window (for arming the retry timer).
    pub fn oldest_sent_ms(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.sent_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MsgId};
    use std::sync::Arc;

    fn d() -> Delivery {
        let msg = Message {
            id: MsgId(1),
            topic: "t".into(),
            payload: bytes::Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: false,
            from: "c".into(),
            props: None,
        };
        Delivery::plain(Arc::new(msg), false)
    }

    #[test]
    fn pkids_skip_zero_and_ids_in_use() {
        let mut w = Inflight::new(3);
        w.next_pkid = u16::MAX - 1;
        let a = w.push(d(), QoS::AtLeastOnce, 0).pkid;
        let b = w.push(d(), QoS::AtLeastOnce, 0).pkid;
        assert_eq!((a, b), (u16::MAX, 1));
        w.next_pkid = u16::MAX - 1; // wrap into ids in use
        let c = w.push(d(), QoS::AtLeastOnce, 0).pkid;
        assert_eq!(c, 2);
        assert!(!w.has_room());
    }

    #[test]
    fn qos2_flow_and_wrong_phase() {
        let mut w = Inflight::new(2);
        let id = w.push(d(), QoS::ExactlyOnce, 0).pkid;
        assert!(w
            .complete(id, QoS::ExactlyOnce, Phase::PubRelSent)
            .is_none());
        assert!(w.pubrec(id, 5));
        assert!(!w.pubrec(id + 1, 5));
        assert!(w
            .complete(id, QoS::ExactlyOnce, Phase::PubRelSent)
            .is_some());
        assert!(w.is_empty());
    }

    #[test]
    fn due_returns_old_entries_in_order() {
        let mut w = Inflight::new(4);
        let a = w.push(d(), QoS::AtLeastOnce, 10).pkid;
        let b = w.push(d(), QoS::AtLeastOnce, 20).pkid;
        let _c = w.push(d(), QoS::AtLeastOnce, 30).pkid;
        let mut due = Vec::new();
        w.resend_due(20, 100, |e| due.push(e.pkid));
        assert_eq!(due, vec![a, b]);
        assert_eq!(w.oldest_sent_ms(), Some(30));
    }
}
