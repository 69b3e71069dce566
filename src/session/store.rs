//! The sessions part: every session homed on this shard, by client id.
//!
//! Owns the session slab (typed [`SessionKey`]s), the client id → session
//! map and the counter for server-assigned client ids. It is the door for
//! durable session state: each function here that changes what must survive
//! a restart takes the shard's [`Journal`] and emits exactly one
//! [`SessionEvent`] for the change (session created / resumed / discarded /
//! expired, subscription added / removed, message queued / windowed / sent /
//! acknowledged, PUBREC received, PUBREL awaited / received). Reads and
//! runtime-only changes (the connection link, retry flag, send times, will)
//! go through [`Session`]'s own methods. Called by the protocol handlers
//! (`crate::protocol`) and by `Shard::replay`.

use super::event::{Journal, SessionEvent};
use super::inflight::{Entry, Phase};
use super::mqueue::{Limits, Push};
use super::shares::ShareTag;
use super::{Delivery, Expiry, Session};
use crate::codec::QoS;
use crate::config::SessionConfig;
use crate::router::SubOpts;
use crate::slab::{ConnKey, SessionKey, SessionTag, Slab};
use ahash::AHashMap;
use std::sync::Arc;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its clean session ended, or a clean start replaced it.
    Discarded,
    /// It stayed offline past its expiry.
    Expired,
}

/// What an inbound QoS 2 PUBLISH's packet id meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// New: route it; its PUBREL is now awaited.
    New,
    /// Already awaiting PUBREL: a re-sent PUBLISH, not routed again.
    Duplicate,
    /// `max_awaiting_rel` reached.
    Full,
}

/// Figures over a shard's sessions, kept as the doors below change them
/// (`crate::control` reads them each second: no walk over the sessions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Subscriptions of all sessions (shared ones included).
    pub subscriptions: usize,
    /// Sessions that outlive their connection.
    pub persistent: usize,
    /// Sessions without a connection.
    pub offline: usize,
    /// Messages queued to a session already holding `slow_at` or more,
    /// since start; and the last such session with its queue length.
    pub slow_queued: u64,
    pub slowest: Option<(Arc<str>, usize)>,
}

/// The sessions of one shard. See the module doc.
pub struct Sessions {
    slab: Slab<Session, SessionTag>,
    by_client: AHashMap<Arc<str>, SessionKey>,
    /// Counter for server-assigned client ids.
    assigned: u64,
    /// Every session's queue bounds.
    queue_limits: Limits,
    inflight_window: usize,
    max_awaiting_rel: usize,
    tally: Tally,
    /// A queue this long makes a slow subscriber (`alarms.slow_subscriber_queue`).
    slow_at: usize,
}

impl Sessions {
    pub fn new(cfg: &SessionConfig) -> Self {
        Sessions {
            slab: Slab::new(),
            by_client: AHashMap::new(),
            assigned: 0,
            queue_limits: Limits {
                max_len: cfg.max_mqueue_len,
                max_bytes: cfg.max_mqueue_bytes,
                store_qos0: cfg.store_qos0,
                policy: cfg.mqueue_drop,
            },
            inflight_window: cfg.inflight_window,
            max_awaiting_rel: cfg.max_awaiting_rel,
            tally: Tally::default(),
            slow_at: usize::MAX,
        }
    }

    /// From now on, a message queued to a session holding `n` or more is
    /// counted in [`Tally::slow_queued`].
    pub fn set_slow_at(&mut self, n: usize) {
        self.slow_at = n;
    }

    /// The figures kept over the sessions.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The session of `client_id`, if this shard has one.
    pub fn find(&self, client_id: &str) -> Option<SessionKey> {
        self.by_client.get(client_id).copied()
    }

    pub fn get(&self, sk: SessionKey) -> Option<&Session> {
        self.slab.get(sk)
    }

    /// For runtime-only changes (will, retry flag, send times).
    pub fn get_mut(&mut self, sk: SessionKey) -> Option<&mut Session> {
        self.slab.get_mut(sk)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Every session with its key (the ACL re-check after a reload;
    /// harness tests).
    pub fn iter(&self) -> impl Iterator<Item = (SessionKey, &Session)> {
        self.slab.iter()
    }

    /// Link the session to its connection, or (None) unlink it: the
    /// disconnect numbered by the returned epoch. Called only by the shard's
    /// link and unlink, which change the connection's phase in step.
    pub fn set_conn(&mut self, sk: SessionKey, conn: Option<ConnKey>) -> u32 {
        let Some(s) = self.slab.get_mut(sk) else {
            return 0;
        };
        if conn.is_none() {
            s.epoch = s.epoch.wrapping_add(1);
        }
        match (s.conn.is_some(), conn.is_some()) {
            (true, false) => self.tally.offline += 1,
            (false, true) => self.tally.offline -= 1,
            _ => {}
        }
        s.conn = conn;
        s.epoch
    }

    /// A fresh client id that `is_home` accepts and no session uses.
    pub fn assign_client_id(&mut self, shard: usize, is_home: impl Fn(&str) -> bool) -> Arc<str> {
        loop {
            self.assigned += 1;
            let id = format!("coremq-{shard}-{}", self.assigned);
            if is_home(&id) && !self.by_client.contains_key(id.as_str()) {
                return id.into();
            }
        }
    }

    /// A new session for `client_id`.
    pub fn create(&mut self, j: &mut Journal, client_id: Arc<str>, expiry: Expiry) -> SessionKey {
        let sk = self.slab.insert(Session::new(
            client_id.clone(),
            expiry,
            self.inflight_window,
        ));
        self.by_client.insert(client_id.clone(), sk);
        self.tally.offline += 1;
        self.tally.persistent += usize::from(expiry != Expiry::OnDisconnect);
        j.emit_life(sk, expiry, || SessionEvent::Created {
            session: sk,
            client_id,
            expiry,
        });
        sk
    }

    /// An existing session taken up by a new connection.
    /// The connection sets the session's expiry anew.
    pub fn resume(&mut self, j: &mut Journal, sk: SessionKey, expiry: Expiry) {
        if let Some(s) = self.slab.get_mut(sk) {
            Self::count_expiry(&mut self.tally, s.expiry, expiry);
            s.expiry = expiry;
            j.emit_life(sk, expiry, || SessionEvent::Resumed {
                session: sk,
                expiry,
            });
        }
    }

    /// Change a session's expiry (an MQTT 5 DISCONNECT may).
    pub fn set_expiry(&mut self, j: &mut Journal, sk: SessionKey, expiry: Expiry) {
        if let Some(s) = self.slab.get_mut(sk) {
            Self::count_expiry(&mut self.tally, s.expiry, expiry);
            s.expiry = expiry;
            j.emit_life(sk, expiry, || SessionEvent::ExpirySet {
                session: sk,
                expiry,
            });
        }
    }

    /// Remove a session; the caller takes its filters out of the router and
    /// counts what it held undelivered.
    pub fn end(&mut self, j: &mut Journal, sk: SessionKey, how: Ending) -> Option<Session> {
        let s = self.slab.remove(sk)?;
        if self.by_client.get(&s.client_id) == Some(&sk) {
            self.by_client.remove(&s.client_id);
        }
        self.tally.subscriptions -= s.filters.len();
        self.tally.persistent -= usize::from(s.expiry != Expiry::OnDisconnect);
        self.tally.offline -= usize::from(s.conn.is_none());
        j.emit_end(sk, || match how {
            Ending::Discarded => SessionEvent::Discarded { session: sk },
            Ending::Expired => SessionEvent::Expired { session: sk },
        });
        Some(s)
    }

    /// Record a subscription (the router keeps its options). Returns the
    /// filter as stored, or None for an unknown session.
    pub fn add_filter(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        filter: Arc<str>,
        opts: SubOpts,
    ) -> Option<Arc<str>> {
        let s = self.slab.get_mut(sk)?;
        if crate::topic::is_share(&filter) && s.intern_share(&filter).is_none() {
            log::warn!("{:?}: no share tag left for {filter:?}", s.client_id);
        }
        if s.filters.get(&filter).is_none() {
            self.tally.subscriptions += 1;
        }
        s.filters.insert(filter.clone(), ());
        j.emit_for(sk, || SessionEvent::Subscribed {
            session: sk,
            filter: filter.clone(),
            opts,
        });
        Some(filter)
    }

    /// The tag of `share` in a session, given one if the session has none
    /// for it: a replayed delivery of a group the session has since left
    /// (a snapshot holds no subscription for it) keeps its group, as the
    /// live session's does.
    pub fn share_tag_for(&mut self, sk: SessionKey, share: &Arc<str>) -> Option<ShareTag> {
        let s = self.slab.get_mut(sk)?;
        s.share_tag(share).or_else(|| s.intern_share(share))
    }

    /// Forget a subscription; returns the stored filter if there was one.
    pub fn remove_filter(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        filter: &str,
    ) -> Option<Arc<str>> {
        let (filter, ()) = self.slab.get_mut(sk)?.filters.remove_entry(filter)?;
        self.tally.subscriptions -= 1;
        j.emit_for(sk, || SessionEvent::Unsubscribed {
            session: sk,
            filter: filter.clone(),
        });
        Some(filter)
    }

    /// Put a message in the session's queue, under its drop policy.
    pub fn queue(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        delivery: Delivery,
        qos: QoS,
    ) -> Option<Push<Delivery>> {
        let s = self.slab.get_mut(sk)?;
        j.emit_for(sk, || SessionEvent::Queued {
            session: sk,
            share: s.share_of(delivery.share),
            delivery: delivery.clone(),
            qos,
        });
        let pushed = s.mqueue.push(delivery, qos, &self.queue_limits);
        if s.mqueue.len() >= self.slow_at {
            self.tally.slow_queued += 1;
            self.tally.slowest = Some((s.client_id.clone(), s.mqueue.len()));
        }
        Some(pushed)
    }

    /// Keep the persistent count as a session's expiry changes.
    fn count_expiry(tally: &mut Tally, old: Expiry, new: Expiry) {
        let (was, is) = (old != Expiry::OnDisconnect, new != Expiry::OnDisconnect);
        tally.persistent = tally.persistent + usize::from(is) - usize::from(was);
    }

    /// Put a message straight into the window under a new packet id, or
    /// (replaying [`SessionEvent::Windowed`]) under the id it had; returns its entry.
    pub fn window(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        delivery: Delivery,
        qos: QoS,
        pkid: Option<u16>,
        now_ms: u64,
    ) -> Option<&Entry> {
        let s = self.slab.get_mut(sk)?;
        let share = s.share_of(delivery.share);
        let e = match pkid {
            None => s.inflight.push(delivery, qos, now_ms),
            Some(id) => s.inflight.push_as(id, delivery, qos, now_ms),
        };
        j.emit_for(sk, || SessionEvent::Windowed {
            session: sk,
            delivery: e.delivery.clone(),
            qos,
            pkid: e.pkid,
            share,
        });
        Some(e)
    }

    /// Send the oldest queued message if the window has room: hand it to
    /// `send` with its QoS and packet id (0 for QoS 0) and, for QoS 1/2,
    /// keep it in the window. Returns false when nothing was sent.
    pub fn send_queued(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        now_ms: u64,
        send: impl FnOnce(&Delivery, QoS, u16),
    ) -> bool {
        let Some(s) = self.slab.get_mut(sk) else {
            return false;
        };
        if !s.inflight.has_room() {
            return false;
        }
        let Some((d, qos)) = s.mqueue.pop() else {
            return false;
        };
        let pkid = if qos == QoS::AtMostOnce {
            send(&d, qos, 0);
            0
        } else {
            let e = s.inflight.push(d, qos, now_ms);
            send(&e.delivery, qos, e.pkid);
            e.pkid
        };
        j.emit_for(sk, || SessionEvent::Sent { session: sk, pkid });
        true
    }

    /// Replaying [`SessionEvent::Sent`]: the oldest queued message moves into
    /// the window under the packet id it had (a QoS 0 one, `pkid` 0, goes).
    pub fn resend_queued_as(&mut self, j: &mut Journal, sk: SessionKey, pkid: u16, now_ms: u64) {
        let Some(s) = self.slab.get_mut(sk) else {
            return;
        };
        let Some((d, qos)) = s.mqueue.pop() else {
            return;
        };
        if qos != QoS::AtMostOnce {
            s.inflight.push_as(pkid, d, qos, now_ms);
        }
        j.emit_for(sk, || SessionEvent::Sent { session: sk, pkid });
    }

    /// Drop the oldest queued message unsent (its expiry passed, or it is
    /// over the client's Maximum Packet Size); returns it.
    pub fn drop_queued(&mut self, j: &mut Journal, sk: SessionKey) -> Option<Delivery> {
        let (d, _) = self.slab.get_mut(sk)?.mqueue.pop()?;
        j.emit_for(sk, || SessionEvent::Unqueued { session: sk });
        Some(d)
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the delivery is complete. Returns
    /// its entry, or None for an id not in that phase.
    pub fn complete(
        &mut self,
        j: &mut Journal,
        sk: SessionKey,
        pkid: u16,
        qos: QoS,
        phase: Phase,
    ) -> Option<Entry> {
        let e = self.slab.get_mut(sk)?.inflight.complete(pkid, qos, phase)?;
        j.emit_for(sk, || SessionEvent::Acked { session: sk, pkid });
        Some(e)
    }

    /// PUBREC for an outbound QoS 2 message; false for an unknown id.
    pub fn pubrec(&mut self, j: &mut Journal, sk: SessionKey, pkid: u16, now_ms: u64) -> bool {
        let known = self
            .slab
            .get_mut(sk)
            .is_some_and(|s| s.inflight.pubrec(pkid, now_ms));
        if known {
            j.emit_for(sk, || SessionEvent::PubRecReceived { session: sk, pkid });
        }
        known
    }

    /// An inbound QoS 2 PUBLISH with `pkid`: await its PUBREL unless it is a
    /// duplicate or the set is full.
    pub fn await_rel(&mut self, j: &mut Journal, sk: SessionKey, pkid: u16) -> Awaiting {
        let max = self.max_awaiting_rel;
        let Some(s) = self.slab.get_mut(sk) else {
            return Awaiting::Full;
        };
        if s.awaiting_rel.contains(pkid) {
            return Awaiting::Duplicate;
        }
        if s.awaiting_rel.len() >= max {
            return Awaiting::Full;
        }
        s.awaiting_rel.insert(pkid);
        j.emit_for(sk, || SessionEvent::PubRelAwaited { session: sk, pkid });
        Awaiting::New
    }

    /// PUBREL: the client released an inbound QoS 2 message.
    pub fn release_rel(&mut self, j: &mut Journal, sk: SessionKey, pkid: u16) {
        let known = self
            .slab
            .get_mut(sk)
            .is_some_and(|s| s.awaiting_rel.remove(pkid));
        if known {
            j.emit_for(sk, || SessionEvent::PubRelReceived { session: sk, pkid });
        }
    }
}
