//! Per-client session state: the seeds' design, as plain synchronous data.
//!
//! ```text
//!       |<----------------- max_mqueue_len ---------------->|
//!       ---------------------------------------------------------------
//! IN -> |        Pending messages (mqueue)   |  Inflight window  | -> Out
//!       ---------------------------------------------------------------
//!                                            |<- inflight_window ->|
//! ```
//! A [`Session`] is owned by the client's home shard, inside the sessions
//! part ([`store::Sessions`]); it outlives its connection unless its
//! [`Expiry`] says otherwise. It holds the client's filters (the options
//! of each live in the router's index), the inflight window of QoS 1/2
//! messages sent and not yet acknowledged ([`inflight`]), the pending queue
//! ([`mqueue`]), the inbound QoS 2 packet ids awaiting PUBREL, the will,
//! the expiry, and the tags naming the shared groups its deliveries came
//! through ([`shares`]). Its fields are private: reads go through its methods, and
//! every durable change goes through `store.rs`, which emits the matching
//! [`event::SessionEvent`]. Nothing here does I/O.

pub mod event;
pub mod inflight;
pub mod mqueue;
pub mod shares;
pub mod store;
pub mod thin;

use crate::codec::{LastWill, QoS};
use crate::hooks::ClientInfo;
use crate::message::Message;
use crate::router::smallmap::SmallMap;
use crate::slab::ConnKey;
use inflight::{Entry, Inflight};
use mqueue::MQueue;
use shares::{ShareTag, ShareTags};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// One message on its way to one session: what the queue and window hold.
///
/// 24 bytes: the subscription identifiers it is sent with (MQTT 5) take one
/// `u32` inline for the usual none or one, and a box only when overlapping
/// subscriptions give it several, so a queued or windowed message is sent
/// and re-sent with the same identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// Every identifier when there are two or more (else None).
    many_ids: Option<Box<SmallVec<[u32; 4]>>>,
    /// The one identifier (0: none, or see `many_ids`).
    one_id: u32,
    /// RETAIN flag on the wire: retained messages sent on subscribe, and
    /// live ones to a Retain As Published subscription.
    pub retain: bool,
    /// The shared group it was chosen through (None: an ordinary
    /// subscription). Two bytes in what was padding.
    pub share: Option<ShareTag>,
}

impl Delivery {
    /// A delivery through ordinary subscriptions, without identifiers.
    pub fn plain(msg: Arc<Message>, retain: bool) -> Self {
        Delivery::new(msg, retain, None, &[])
    }

    /// A delivery with the subscription identifiers `ids`.
    pub fn new(msg: Arc<Message>, retain: bool, share: Option<ShareTag>, ids: &[u32]) -> Self {
        let (one_id, many_ids) = match ids {
            [] => (0, None),
            [id] => (*id, None),
            more => (0, Some(Box::new(SmallVec::from_slice(more)))),
        };
        Delivery {
            msg,
            many_ids,
            one_id,
            retain,
            share,
        }
    }

    /// The subscription identifiers it is sent with.
    pub fn ids(&self) -> &[u32] {
        match &self.many_ids {
            Some(ids) => ids,
            None if self.one_id == 0 => &[],
            None => std::slice::from_ref(&self.one_id),
        }
    }
}

impl mqueue::Weigh for Delivery {
    /// Topic, payload and MQTT 5 properties: what the message's allocation holds.
    fn weight(&self) -> usize {
        self.msg.held_bytes()
    }
}

/// A retained message for a new subscription: its QoS and the
/// subscription identifier of the SUBSCRIBE (0: none).
pub type RetainedSend = (Arc<Message>, QoS, u32);

/// Retained messages waiting to be sent to new subscriptions.
type Backlog = VecDeque<RetainedSend>;

/// A will waiting out its delay, with who left it (the message's publisher).
#[derive(Debug)]
pub struct PendingWill {
    pub will: LastWill,
    pub info: Rc<ClientInfo>,
}

/// What few sessions hold, in one box so the others pay 8 bytes for it.
#[derive(Debug, Default)]
struct Rare {
    backlog: Backlog,
    shares: ShareTags,
    /// A will whose delay (MQTT 5 will delay interval) is running since the
    /// connection ended: published when the delay or the session ends,
    /// dropped if a connection takes the session up before.
    delayed_will: Option<PendingWill>,
}

/// When a session ends once its connection is gone. Seconds in a `u32`, as
/// MQTT 5's session expiry interval: 8 bytes per session, not 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// With its connection (MQTT 3.1.1 clean session 1).
    OnDisconnect,
    /// This many seconds after its connection went.
    AfterSecs(u32),
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    client_id: Arc<str>,
    expiry: Expiry,
    /// The client's filters; their options live in the router's index.
    filters: SmallMap<Arc<str>, ()>,
    /// QoS 1/2 messages sent and not yet acknowledged, in send order.
    inflight: Inflight,
    /// Messages waiting for the window (or for the client to come back).
    mqueue: MQueue<Delivery>,
    /// Inbound QoS 2 packet ids that got PUBREC and await PUBREL.
    awaiting_rel: thin::PkidSet,
    /// Retained messages of new subscriptions still to send (with their
    /// QoS), ahead of the queue: sent as the window and the outbox allow.
    /// Retained messages to send, shared-group tags and a delayed will:
    /// boxed together and absent while all are empty (most sessions never
    /// have any).
    rare: Option<Box<Rare>>,
    /// Published if the connection ends without DISCONNECT.
    will: Option<Box<LastWill>>,
    /// The connection while online (set only by the shard's link/unlink).
    conn: Option<ConnKey>,
    /// Bumped at every disconnect: an expiry timer fires only for its own epoch.
    epoch: u32,
    /// Whether a retry timer is armed for this session.
    retry_armed: bool,
}

impl Session {
    fn new(client_id: Arc<str>, expiry: Expiry, window: usize) -> Self {
        Session {
            client_id,
            expiry,
            filters: SmallMap::new(),
            inflight: Inflight::new(window),
            mqueue: MQueue::new(),
            awaiting_rel: thin::PkidSet::default(),
            rare: None,
            will: None,
            conn: None,
            epoch: 0,
            retry_armed: false,
        }
    }

    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The connection serving it, while online.
    pub fn conn(&self) -> Option<ConnKey> {
        self.conn
    }

    /// The disconnect count an expiry timer belongs to.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether another QoS 1/2 message may be sent now.
    pub fn window_has_room(&self) -> bool {
        self.inflight.has_room()
    }

    /// Size the window for the connection now serving the session.
    pub fn set_window_max(&mut self, max: usize) {
        self.inflight.set_max(max);
    }

    /// Whether the window is empty (nothing to retry).
    pub fn window_is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    pub fn queue_is_empty(&self) -> bool {
        self.mqueue.is_empty()
    }

    /// The oldest queued message and its QoS: the next to send.
    pub fn queue_front(&self) -> Option<(&Delivery, QoS)> {
        self.mqueue.iter().next()
    }

    /// Messages not delivered yet: the window, the queue and the retained backlog.
    pub fn undelivered(&self) -> usize {
        self.inflight.len() + self.mqueue.len() + self.rare.as_ref().map_or(0, |r| r.backlog.len())
    }

    /// Whether retained messages of a new subscription are still to be sent
    /// (live QoS 1/2 messages queue behind them).
    pub fn replaying(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.backlog.is_empty())
    }

    /// Add retained messages to send, at most `cap` waiting in all; returns
    /// how many did not fit (dropped).
    pub fn add_retained_backlog(
        &mut self,
        msgs: impl IntoIterator<Item = RetainedSend>,
        cap: usize,
    ) -> usize {
        let backlog = &mut self.rare.get_or_insert_with(Default::default).backlog;
        let mut dropped = 0;
        for m in msgs {
            if backlog.len() < cap {
                backlog.push_back(m);
            } else {
                dropped += 1;
            }
        }
        self.trim_rare();
        dropped
    }

    /// The next retained message to send, if `can_send` accepts its QoS.
    pub fn next_retained(
        &mut self,
        can_send: impl FnOnce(QoS, bool) -> bool,
    ) -> Option<RetainedSend> {
        let backlog = &mut self.rare.as_mut()?.backlog;
        let (_, qos, _) = backlog.front()?;
        if !can_send(*qos, self.inflight.has_room()) {
            return None;
        }
        let next = backlog.pop_front();
        self.trim_rare();
        next
    }

    /// QoS 1/2 messages sent and not yet acknowledged.
    pub fn window_len(&self) -> usize {
        self.inflight.len()
    }

    /// Messages waiting in the queue.
    pub fn queued_len(&self) -> usize {
        self.mqueue.len()
    }

    /// Inbound QoS 2 messages awaiting PUBREL.
    pub fn awaiting_rel_len(&self) -> usize {
        self.awaiting_rel.len()
    }

    /// The QoS and phase of the window entry with `pkid`.
    pub fn window_phase(&self, pkid: u16) -> Option<(QoS, inflight::Phase)> {
        self.inflight
            .iter()
            .find(|e| e.pkid == pkid)
            .map(|e| (e.qos, e.phase))
    }

    /// How many subscriptions it holds.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// Whether it is subscribed to `filter`.
    pub fn has_filter(&self, filter: &str) -> bool {
        self.filters.get(filter).is_some()
    }

    /// Call `f` with each of the session's filters.
    pub fn for_each_filter(&self, mut f: impl FnMut(&Arc<str>)) {
        self.filters.for_each(|filter, _| f(filter));
    }

    /// Drop the box of rare state once it holds nothing.
    fn trim_rare(&mut self) {
        if self.rare.as_ref().is_some_and(|r| {
            r.backlog.is_empty() && r.shares.is_empty() && r.delayed_will.is_none()
        }) {
            self.rare = None;
        }
    }

    /// The tag of deliveries chosen through `share`'s group, if it has one.
    pub fn share_tag(&self, share: &str) -> Option<ShareTag> {
        self.rare.as_ref()?.shares.tag_of(share)
    }

    /// The share a delivery's tag names (None: an ordinary subscription).
    pub fn share_of(&self, tag: Option<ShareTag>) -> Option<Arc<str>> {
        self.rare.as_ref()?.shares.share_of(tag?).cloned()
    }

    /// Give `share` a tag (when the session joins its group). A slot is
    /// reused once no subscription and no delivery refers to it.
    fn intern_share(&mut self, share: &Arc<str>) -> Option<ShareTag> {
        let mut used: Vec<ShareTag> = self
            .inflight
            .iter()
            .filter_map(|e| e.delivery.share)
            .chain(self.mqueue.iter().filter_map(|(d, _)| d.share))
            .collect();
        let tags = &mut self.rare.get_or_insert_with(Default::default).shares;
        self.filters.for_each(|f, _| used.extend(tags.tag_of(f)));
        tags.intern(share, |t| used.contains(&t))
    }

    /// The messages to hand back to their shared groups when the session
    /// ends: every tagged delivery in the queue (never sent), and the tagged
    /// QoS 1 ones in the window. A QoS 2 message already sent goes to no
    /// other member [MQTT-4.8.2-5]. Returns the share and message of each.
    pub fn shared_leftovers(&self) -> Vec<(Arc<str>, Arc<Message>)> {
        let Some(tags) = self.rare.as_deref().map(|r| &r.shares) else {
            return Vec::new();
        };
        let window = self
            .inflight
            .iter()
            .filter(|e| e.qos != QoS::ExactlyOnce)
            .map(|e| &e.delivery);
        let queue = self.mqueue.iter().map(|(d, _)| d);
        window
            .chain(queue)
            .filter_map(|d| Some((tags.share_of(d.share?)?.clone(), d.msg.clone())))
            .collect()
    }

    /// The will, taken: it is published at most once.
    pub fn take_will(&mut self) -> Option<Box<LastWill>> {
        self.will.take()
    }

    /// The will of the connection now serving the session (None: no will).
    pub fn set_will(&mut self, will: Option<LastWill>) {
        self.will = will.map(Box::new);
    }

    /// Hold a will until its delay ends (replacing any held before).
    pub fn delay_will(&mut self, pending: PendingWill) {
        self.rare.get_or_insert_with(Default::default).delayed_will = Some(pending);
    }

    /// The will waiting out its delay, taken.
    pub fn take_delayed_will(&mut self) -> Option<PendingWill> {
        let taken = self.rare.as_mut()?.delayed_will.take();
        self.trim_rare();
        taken
    }

    /// Mark a retry timer armed; false if one already was.
    pub fn arm_retry(&mut self) -> bool {
        !std::mem::replace(&mut self.retry_armed, true)
    }

    /// The retry timer fired.
    pub fn retry_fired(&mut self) {
        self.retry_armed = false;
    }

    /// Hand `resend` every window entry sent at or before `before_ms`, oldest
    /// first, marking it re-sent at `now_ms` (not durable: only send times
    /// change); returns how many.
    pub fn resend_due(&mut self, before_ms: u64, now_ms: u64, resend: impl FnMut(&Entry)) -> usize {
        self.inflight.resend_due(before_ms, now_ms, resend)
    }

    /// Oldest send time in the window (for arming the retry timer).
    pub fn oldest_sent_ms(&self) -> Option<u64> {
        self.inflight.oldest_sent_ms()
    }

    /// The window's entries, in send order (the storage snapshot).
    pub fn window_entries(&self) -> impl Iterator<Item = &Entry> {
        self.inflight.iter()
    }

    /// The queued messages with their QoS, oldest first (the storage snapshot).
    pub fn queued(&self) -> impl Iterator<Item = (&Delivery, QoS)> {
        self.mqueue.iter()
    }

    /// The inbound QoS 2 packet ids awaiting PUBREL.
    pub fn awaiting_rel_ids(&self) -> Vec<u16> {
        self.awaiting_rel.ids()
    }

    /// What must survive a restart, in a comparable form (harness tests).
    #[cfg(test)]
    pub fn durable_view(&self) -> DurableView {
        let mut filters = Vec::new();
        self.for_each_filter(|f| filters.push(f.to_string()));
        filters.sort();
        let mut awaiting = self.awaiting_rel.ids();
        awaiting.sort_unstable();
        DurableView {
            client_id: self.client_id.to_string(),
            expiry: self.expiry,
            filters,
            window: self
                .inflight
                .iter()
                .map(|e| {
                    (
                        e.pkid,
                        e.delivery.msg.id.0,
                        e.delivery.retain,
                        e.qos,
                        e.phase,
                        self.share_name(e.delivery.share),
                        e.delivery.ids().to_vec(),
                    )
                })
                .collect(),
            queue: self
                .mqueue
                .iter()
                .map(|(d, q)| {
                    let share = self.share_name(d.share);
                    (d.msg.id.0, d.retain, q, share, d.ids().to_vec())
                })
                .collect(),
            awaiting_rel: awaiting,
        }
    }

    /// The share string a tag names (harness tests).
    #[cfg(test)]
    fn share_name(&self, tag: Option<ShareTag>) -> Option<String> {
        let tags = &self.rare.as_deref()?.shares;
        Some(tags.share_of(tag?)?.to_string())
    }
}

/// A window entry: packet id, message id, RETAIN, QoS, phase, share, identifiers.
#[cfg(test)]
type WindowView = (
    u16,
    u128,
    bool,
    QoS,
    inflight::Phase,
    Option<String>,
    Vec<u32>,
);

/// A queued message: message id, RETAIN, QoS, share, identifiers.
#[cfg(test)]
type QueueView = (u128, bool, QoS, Option<String>, Vec<u32>);

/// A session's durable state, comparable across a replay (harness tests).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableView {
    pub client_id: String,
    pub expiry: Expiry,
    pub filters: Vec<String>,
    pub window: Vec<WindowView>,
    pub queue: Vec<QueueView>,
    pub awaiting_rel: Vec<u16>,
}

#[cfg(test)]
mod weight_tests {
    use super::*;
    use crate::message::MsgIdGen;
    use mqueue::Weigh;

    /// MQTT 5 properties are held with a queued message: they count
    /// against `session.max_mqueue_bytes` as its payload does.
    #[test]
    fn a_delivery_weighs_its_properties() {
        let props = crate::codec::Properties {
            user_properties: vec![("k".into(), "v".repeat(1000))],
            ..Default::default()
        };
        let msg = Arc::new(Message {
            id: MsgIdGen::new(0, 0).next_id(),
            topic: "t".into(),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
            from: "c".into(),
            props: Some(Box::new(props)),
        });
        assert!(Delivery::plain(msg, false).weight() > 1000);
    }
}
