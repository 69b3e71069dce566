//! Routing and delivery: the publish path.
//!
//! [`Shard::route`] fans a message out to this shard's subscribers and sends
//! it once to each other shard whose interest covers the topic. For each
//! subscriber, [`Shard::deliver`] either encodes the PUBLISH straight into the
//! connection's outbox (QoS 0, or QoS 1/2 with window room) or queues it in
//! the session's mqueue; [`Shard::refill_window`] moves queued messages into
//! the window as acknowledgements free it. Retry (§4.4) re-sends old window
//! entries with DUP=1.

use crate::codec::{Ack, Packet, QoS};
use crate::message::{wall_clock_us, Message};
use crate::router::{sessions_of, Hit, Merged};
use crate::session::inflight::{Entry, Phase};
use crate::session::shares::ShareTag;
use crate::session::{Delivery, Expiry};
use crate::shard::conns::Conn;
use crate::shard::mesh::MeshMsg;
use crate::shard::{SessionKey, Shard, ShardRef, TimerItem};
use std::sync::Arc;

/// The fan-out task reads its clock once per this many deliveries.
const FANOUT_CHUNK: usize = 1024;

/// How long the fan-out task delivers before letting the shard's other tasks
/// run. Long enough that each subscriber's outbox collects several messages
/// per write (short slices cost a syscall per delivery), short enough to bound
/// the stall a huge fan-out causes.
pub const FANOUT_SLICE: std::time::Duration = std::time::Duration::from_millis(2);

/// The shard's fan-out task: delivers large fan-outs a chunk at a time.
pub async fn fanout_task(shard: ShardRef) {
    loop {
        std::future::poll_fn(|cx| shard.borrow_mut().fanout.poll_work(cx)).await;
        shard.borrow_mut().fanout_step();
        futures_lite::future::yield_now().await;
    }
}

impl Shard {
    /// Deliver to local subscribers and forward once per interested shard;
    /// each shared group's chosen member gets its copy (`shared.rs`).
    /// Returns whether any shard has a subscriber for it, as this shard's
    /// interest replica knows (no round trip).
    pub fn route(&mut self, msg: Arc<Message>) -> bool {
        let local = self.dispatch_local(&msg);
        let shared = self.route_shared(&msg);
        let mut mask = self.router.peers_for(&msg.topic);
        let matched = local || shared || mask != 0;
        while mask != 0 {
            let peer = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.mesh.push(peer, MeshMsg::Publish(msg.clone()));
        }
        matched
    }

    /// Deliver to this shard's subscribers: one copy per session, at the
    /// highest QoS among its overlapping subscriptions, with the identifiers
    /// of all of them ([`Merged`]). A fan-out larger than
    /// `runtime.fanout_inline_max` is handed to the shard's fan-out task, which
    /// delivers in slices of [`FANOUT_SLICE`] and yields in between, so one huge fan-out does
    /// not stall every other connection of the shard; while any is pending,
    /// later messages queue behind it (publish order is kept). Returns
    /// whether any local session subscribed to it.
    pub fn dispatch_local(&mut self, msg: &Arc<Message>) -> bool {
        let mut hits = self.fanout.take_scratch();
        let sessions = &self.sessions;
        let is_publisher = |sk| sessions.get(sk).is_some_and(|s| *s.client_id() == msg.from);
        self.router.local_hits(&msg.topic, &mut hits, is_publisher);
        let inline_max = self.cfg.runtime.fanout_inline_max;
        if hits.is_empty() || (!self.fanout.busy() && hits.len() <= inline_max) {
            let matched = !hits.is_empty();
            for run in sessions_of(&hits) {
                self.deliver_merged(msg, run);
            }
            self.fanout.give_back(hits);
            return matched;
        }
        self.fanout.enqueue(msg, hits);
        true
    }

    /// Deliver pending fan-out hits, oldest first, for about
    /// [`FANOUT_SLICE`] of CPU time (the clock is read every `FANOUT_CHUNK`
    /// sessions). Consecutive pending messages with the same subscribers and
    /// progress (a burst to one topic) go out together, session by session,
    /// so each outbox collects the whole burst before its connection writes.
    pub fn fanout_step(&mut self) {
        let start = std::time::Instant::now();
        while start.elapsed() < FANOUT_SLICE {
            let batch = self.fanout.take_group();
            let Some(head) = batch.first() else {
                return;
            };
            let hits = head.hits.clone();
            let (from, total) = (head.next, hits.len());
            let mut end = (from + FANOUT_CHUNK).min(total);
            // A session's matches are delivered together (one copy).
            while end < total && hits[end].0 == hits[end - 1].0 {
                end += 1;
            }
            for run in sessions_of(&hits[from..end]) {
                for f in &batch {
                    self.deliver_merged(&f.msg, run);
                }
            }
            if end < total {
                self.fanout.put_back(batch, end);
            } else if !self.fanout.busy() {
                self.fanout_drained();
            }
        }
    }

    /// Deliver `msg` to the session whose matches are `run`: at
    /// min(message, subscription) QoS, RETAIN as published only for a
    /// Retain As Published subscription [MQTT-3.3.1-12] [MQTT-3.3.1-13].
    fn deliver_merged(&mut self, msg: &Arc<Message>, run: &[Hit]) {
        if let [(sk, o)] = run {
            let ids = o.id();
            let retain = msg.retain && o.retain_as_published();
            let qos = msg.qos.min(o.qos());
            self.deliver(*sk, msg, retain, qos, ids.as_slice());
            return;
        }
        let m = Merged::of(run);
        let retain = msg.retain && m.retain_as_published;
        self.deliver(m.session, msg, retain, msg.qos.min(m.qos), &m.ids);
    }

    /// Send now or queue, per the session's window, queue and connection,
    /// with the subscription identifiers `ids` (MQTT 5). The message is
    /// only cloned (an `Arc`) when it is kept: a QoS 0 delivery touches no atomic.
    pub fn deliver(
        &mut self,
        sk: SessionKey,
        msg: &Arc<Message>,
        retain: bool,
        qos: QoS,
        ids: &[u32],
    ) {
        self.deliver_via(sk, msg, retain, qos, ids, None);
    }

    /// As [`deliver`](Self::deliver), for a delivery chosen through the
    /// shared group that `share` tags (None: ordinary subscriptions).
    pub(crate) fn deliver_via(
        &mut self,
        sk: SessionKey,
        msg: &Arc<Message>,
        retain: bool,
        qos: QoS,
        ids: &[u32],
        share: Option<ShareTag>,
    ) {
        let max_outbox = self.cfg.mqtt.max_outbox_bytes;
        let Some(s) = self.sessions.get(sk) else {
            return;
        };
        let now = self.timers.clock_ms();
        let conn = s.conn().and_then(|k| self.conns.get_mut(k));
        if let Some(c) = &conn {
            if let Some(drop) = unsendable(c, msg, qos, ids) {
                drop.count(&mut self.metrics);
                return;
            }
        }
        match conn {
            Some(c) if qos == QoS::AtMostOnce => {
                if c.unsent() >= max_outbox {
                    self.metrics.dropped_qos0_slow += 1;
                    return;
                }
                c.send_publish(msg, retain, QoS::AtMostOnce, 0, false, ids);
                self.metrics.publish_sent += 1;
                return;
            }
            Some(c)
                if s.queue_is_empty()
                    && !s.replaying()
                    && s.window_has_room()
                    && c.unsent() < max_outbox =>
            {
                let d = Delivery::new(msg.clone(), retain, share, ids);
                if let Some(e) = self
                    .sessions
                    .window(&mut self.journal, sk, d, qos, None, now)
                {
                    c.send_publish(&e.delivery.msg, retain, qos, e.pkid, false, ids);
                    self.metrics.publish_sent += 1;
                }
                self.arm_retry(sk, now);
                return;
            }
            None if qos == QoS::AtMostOnce
                && (s.expiry() == Expiry::OnDisconnect || !self.cfg.session.store_qos0) =>
            {
                self.metrics.dropped_qos0_offline += 1;
                return;
            }
            _ => {}
        }
        let d = Delivery::new(msg.clone(), retain, share, ids);
        let Some(pushed) = self.sessions.queue(&mut self.journal, sk, d, qos) else {
            return;
        };
        let lost = pushed.lost();
        if lost > 0 {
            // The policy dropped the oldest queued messages, or refused this one.
            self.metrics.dropped_queue_full += lost as u64;
            log::debug!(
                "shard {}: {:?} queue full, {lost} message(s) dropped",
                self.id,
                self.sessions.get(sk).map(|s| s.client_id().clone()),
            );
        }
    }

    /// Send what waits for the session while its window has room and its
    /// connection is not backed up, at most [`FANOUT_CHUNK`] messages a call
    /// (the connection's next write calls again): first the retained
    /// messages of new subscriptions, then the queue. What expired while it
    /// waited, or is too large for the client, is dropped (counted).
    pub fn refill_window(&mut self, sk: SessionKey) {
        let max_outbox = self.cfg.mqtt.max_outbox_bytes;
        let now = self.timers.clock_ms();
        let Some(c) = self
            .sessions
            .get(sk)
            .and_then(|s| s.conn())
            .and_then(|k| self.conns.get_mut(k))
        else {
            return;
        };
        let sessions = &mut self.sessions;
        let journal = &mut self.journal;
        let metrics = &mut self.metrics;
        let mut sent = 0usize;
        let mut steps = 0usize;
        while steps < FANOUT_CHUNK && c.unsent() < max_outbox {
            let next = sessions
                .get_mut(sk)
                .and_then(|s| s.next_retained(|qos, room| qos == QoS::AtMostOnce || room));
            let Some((msg, qos, id)) = next else { break };
            let ids: &[u32] = if id == 0 { &[] } else { &[id] };
            steps += 1;
            if let Some(drop) = unsendable(c, &msg, qos, ids) {
                drop.count(metrics);
            } else if qos == QoS::AtMostOnce {
                c.send_publish(&msg, true, qos, 0, false, ids);
                sent += 1;
            } else {
                let d = Delivery::new(msg, true, None, ids);
                if let Some(e) = sessions.window(journal, sk, d, qos, None, now) {
                    c.send_publish(&e.delivery.msg, true, qos, e.pkid, false, ids);
                    sent += 1;
                }
            }
        }
        let replaying = sessions.get(sk).is_some_and(|s| s.replaying());
        while !replaying && steps < FANOUT_CHUNK && c.unsent() < max_outbox {
            let Some((d, qos)) = sessions.get(sk).and_then(|s| s.queue_front()) else {
                break;
            };
            steps += 1;
            if let Some(drop) = unsendable(c, &d.msg, qos, d.ids()) {
                drop.count(metrics);
                sessions.drop_queued(journal, sk);
                continue;
            }
            let sent_one = sessions.send_queued(journal, sk, now, |d, qos, pkid| {
                c.send_publish(&d.msg, d.retain, qos, pkid, false, d.ids())
            });
            if !sent_one {
                break;
            }
            sent += 1;
        }
        self.metrics.publish_sent += sent as u64;
        self.arm_retry(sk, now);
    }

    /// After a reconnect: re-send every unacknowledged PUBLISH (DUP=1) and
    /// PUBREL with its original packet id [MQTT-4.4.0-1].
    pub fn resend_inflight(&mut self, sk: SessionKey) {
        let now = self.timers.clock_ms();
        self.resend_due(sk, u64::MAX, now);
        self.arm_retry(sk, now);
    }

    /// Retry timer: re-send window entries older than retry_interval_s, and
    /// re-arm for the oldest one left.
    pub fn retry_session(&mut self, sk: SessionKey, now: u64) {
        let interval = self.cfg.session.retry_interval_s * 1000;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        s.retry_fired();
        let Some(conn) = s.conn() else {
            return; // resent on reconnect
        };
        if self.conns.get(conn).is_some_and(|c| c.version().is_v5()) {
            // MQTT 5 resends on reconnect only, never at any other time [MQTT-4.4.0-1].
            return;
        }
        self.resend_due(sk, now.saturating_sub(interval), now);
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        if let Some(oldest) = s.oldest_sent_ms() {
            if s.arm_retry() {
                self.timers.arm(oldest + interval, TimerItem::Retry(sk));
            }
        }
    }

    /// Re-send window entries last sent at or before `before_ms` to the
    /// session's connection: PUBLISH with DUP=1, or PUBREL.
    fn resend_due(&mut self, sk: SessionKey, before_ms: u64, now: u64) {
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let Some(c) = s.conn().and_then(|k| self.conns.get_mut(k)) else {
            return;
        };
        let resent = s.resend_due(before_ms, now, |e| resend(c, e));
        if resent > 0 {
            log::debug!(
                "shard {}: {:?} re-sent {resent} unacknowledged",
                self.id,
                s.client_id()
            );
        }
        self.metrics.publish_resent += resent as u64;
    }

    /// A connection's outbox was written: refill it from what waits for its session.
    pub fn after_write(&mut self, sk: SessionKey) {
        if self
            .sessions
            .get(sk)
            .is_some_and(|s| !s.queue_is_empty() || s.replaying())
        {
            self.refill_window(sk);
        }
    }

    /// Arm the session's retry timer if it has unacknowledged messages, retry
    /// is on, and no timer is armed yet.
    fn arm_retry(&mut self, sk: SessionKey, now: u64) {
        let interval_s = self.cfg.session.retry_interval_s;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        // MQTT 5 resends on reconnect only [MQTT-4.4.0-1]: no timer for it.
        let v5 = || {
            s.conn()
                .and_then(|k| self.conns.get(k))
                .is_some_and(|c| c.version().is_v5())
        };
        if interval_s > 0 && !s.window_is_empty() && !v5() && s.arm_retry() {
            self.timers
                .arm(now + interval_s * 1000, TimerItem::Retry(sk));
        }
    }
}

/// Re-send one window entry: PUBLISH with DUP=1, or PUBREL.
fn resend(c: &mut Conn, e: &Entry) {
    match e.phase {
        Phase::Published => {
            let d = &e.delivery;
            c.send_publish(&d.msg, d.retain, e.qos, e.pkid, true, d.ids());
        }
        Phase::PubRelSent => c.send(&Packet::PubRel(Ack::new(e.pkid))),
    }
}

/// Why a message is not sent to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsendable {
    /// Its Message Expiry Interval passed while it waited [MQTT-3.3.2-5].
    Expired,
    /// Over the client's Maximum Packet Size [MQTT-3.1.2-24].
    TooLarge,
}

impl Unsendable {
    fn count(self, m: &mut crate::metrics::Metrics) {
        match self {
            Unsendable::Expired => m.dropped_expired += 1,
            Unsendable::TooLarge => m.dropped_too_large += 1,
        }
    }
}

/// Whether `msg` may not go to `c` at `qos` with subscription identifiers
/// `ids`: expired, or too large for an MQTT 5 client. A 3.1.1 message (no
/// properties) to a 3.1.1 client costs two branches.
fn unsendable(c: &Conn, msg: &Message, qos: QoS, ids: &[u32]) -> Option<Unsendable> {
    if msg.props.is_some() && msg.expired(wall_clock_us()) {
        return Some(Unsendable::Expired);
    }
    (!c.fits(msg, qos, ids)).then_some(Unsendable::TooLarge)
}
