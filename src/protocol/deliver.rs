//! Routing and delivery: the publish path.
//!
//! [`Shard::route`] fans a message out to this shard's subscribers and sends
//! it once to each other shard whose interest covers the topic. For each
//! subscriber, [`Shard::deliver`] either encodes the PUBLISH straight into the
//! connection's outbox (QoS 0, or QoS 1/2 with window room) or queues it in
//! the session's mqueue; [`Shard::drain`] moves queued messages into the
//! window as acknowledgements free it. Retry (§4.4) re-sends old window
//! entries with DUP=1.

use crate::codec::{self, Packet, QoS};
use crate::message::Message;
use crate::session::inflight::{Entry, Phase};
use crate::session::mqueue::Push;
use crate::session::{Delivery, Session};
use crate::shard::mesh::MeshMsg;
use crate::shard::slab::Key;
use crate::shard::wheel::TimerWheel;
use crate::shard::{wake, ConnState, Fanout, Shard, ShardRef, TimerItem};
use std::rc::Rc;
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
        std::future::poll_fn(|cx| {
            let mut s = shard.borrow_mut();
            if !s.fanout.is_empty() {
                return std::task::Poll::Ready(());
            }
            s.fanout_waker = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
        shard.borrow_mut().fanout_step();
        futures_lite::future::yield_now().await;
    }
}

impl Shard {
    /// Deliver to local subscribers and forward once per interested shard.
    pub fn route(&mut self, msg: Arc<Message>) {
        self.dispatch_local(&msg);
        if self.shards < 2 {
            return;
        }
        let mut mask = 0u64;
        self.interest.for_each_match(&msg.topic, |m| mask |= *m);
        mask &= !(1u64 << self.id);
        while mask != 0 {
            let peer = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.mesh.push(peer, MeshMsg::Publish(msg.clone()));
        }
    }

    /// Deliver to this shard's subscribers: one copy per session, at the
    /// highest QoS among its overlapping subscriptions. A fan-out larger than
    /// `runtime.fanout_inline_max` is handed to the shard's fan-out task, which
    /// delivers in slices of [`FANOUT_SLICE`] and yields in between, so one huge fan-out does
    /// not stall every other connection of the shard; while any is pending,
    /// later messages queue behind it (publish order is kept).
    pub fn dispatch_local(&mut self, msg: &Arc<Message>) {
        let mut hits = std::mem::take(&mut self.hits);
        let mut filters = 0usize;
        self.subs.for_each_match(&msg.topic, |subs| {
            filters += 1;
            subs.for_each(|k, q| hits.push((*k, *q)));
        });
        if filters > 1 {
            hits.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            hits.dedup_by_key(|h| h.0);
        }
        let inline_max = self.cfg.runtime.fanout_inline_max;
        if hits.is_empty() || (self.fanout.is_empty() && hits.len() <= inline_max) {
            for &(sk, sub_qos) in &hits {
                self.deliver(sk, msg, false, msg.qos.min(sub_qos));
            }
            hits.clear();
            self.hits = hits;
            return;
        }
        // A burst to the same subscribers shares one list (recognised by
        // pointer); the scratch list then goes back for the next message.
        let hits = match self.fanout.back() {
            Some(back) if *back.hits == hits => {
                let shared = back.hits.clone();
                hits.clear();
                self.hits = hits;
                shared
            }
            _ => Rc::new(hits),
        };
        self.fanout.push_back(Fanout {
            msg: msg.clone(),
            hits,
            next: 0,
        });
        if let Some(w) = self.fanout_waker.take() {
            w.wake();
        }
    }

    /// Deliver pending fan-out hits, oldest first, for about
    /// [`FANOUT_SLICE`] of CPU time (the clock is read every `FANOUT_CHUNK`
    /// sessions). Consecutive pending messages with the same subscribers and
    /// progress (a burst to one topic) go out together, session by session,
    /// so each outbox collects the whole burst before its connection writes.
    pub fn fanout_step(&mut self) {
        let start = std::time::Instant::now();
        while start.elapsed() < FANOUT_SLICE {
            let Some(head) = self.fanout.front() else {
                return;
            };
            let same = |f: &Fanout| f.next == head.next && Rc::ptr_eq(&f.hits, &head.hits);
            let group = self.fanout.iter().take_while(|f| same(f)).count();
            let (from, total) = (head.next, head.hits.len());
            let end = (from + FANOUT_CHUNK).min(total);
            let batch: Vec<Fanout> = self.fanout.drain(..group).collect();
            let hits = batch[0].hits.clone();
            for &(sk, sub_qos) in &hits[from..end] {
                for f in &batch {
                    self.deliver(sk, &f.msg, false, f.msg.qos.min(sub_qos));
                }
            }
            if end < total {
                for mut f in batch.into_iter().rev() {
                    f.next = end;
                    self.fanout.push_front(f);
                }
            }
        }
    }

    /// Send now or queue, per the session's window, queue and connection.
    /// The message is only cloned (an `Arc`) when it is kept: a QoS 0
    /// delivery touches no atomic.
    pub fn deliver(&mut self, sk: Key, msg: &Arc<Message>, retain: bool, qos: QoS) {
        let max_outbox = self.cfg.mqtt.max_outbox_bytes;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let conn = s
            .conn
            .and_then(|c| self.conns.get_mut(c))
            .filter(|c| c.close.is_none());
        let now = self.clock_ms;
        match conn {
            Some(c) if qos == QoS::AtMostOnce => {
                if c.unsent() >= max_outbox {
                    self.metrics.dropped_qos0_slow += 1;
                    return;
                }
                encode(c, msg, retain, QoS::AtMostOnce, 0, false);
                self.metrics.publish_sent += 1;
                return;
            }
            Some(c) if s.mqueue.is_empty() && s.inflight.has_room() && c.unsent() < max_outbox => {
                let d = Delivery {
                    msg: msg.clone(),
                    retain,
                };
                let pkid = s.inflight.push(d, qos, now).pkid;
                encode(c, msg, retain, qos, pkid, false);
                self.metrics.publish_sent += 1;
                arm_retry(
                    &mut self.wheel,
                    self.cfg.session.retry_interval_s,
                    s,
                    sk,
                    now,
                );
                return;
            }
            None if qos == QoS::AtMostOnce && (s.clean || !self.cfg.session.store_qos0) => {
                self.metrics.dropped_qos0_offline += 1;
                return;
            }
            _ => {}
        }
        match s.mqueue.push(
            Delivery {
                msg: msg.clone(),
                retain,
            },
            qos,
        ) {
            Push::Queued => {}
            // The policy dropped the oldest queued message, or refused this one.
            Push::QueuedDropped(dropped) | Push::Rejected(dropped) => {
                self.metrics.dropped_queue_full += 1;
                log::debug!(
                    "shard {}: {:?} queue full, dropped {:?}",
                    self.id,
                    s.client_id,
                    dropped.msg.id
                );
            }
        }
    }

    /// Move queued messages into the window while it has room and the
    /// connection is not backed up.
    pub fn drain(&mut self, sk: Key) {
        let max_outbox = self.cfg.mqtt.max_outbox_bytes;
        let now = self.clock_ms;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let Some(c) = s.conn.and_then(|c| self.conns.get_mut(c)) else {
            return;
        };
        let mut sent = 0u64;
        while s.inflight.has_room() && c.unsent() < max_outbox {
            let Some((d, qos)) = s.mqueue.pop() else {
                break;
            };
            if qos == QoS::AtMostOnce {
                encode(c, &d.msg, d.retain, qos, 0, false);
            } else {
                let e = s.inflight.push(d, qos, now);
                encode(c, &e.delivery.msg, e.delivery.retain, qos, e.pkid, false);
            }
            sent += 1;
        }
        self.metrics.publish_sent += sent;
        arm_retry(
            &mut self.wheel,
            self.cfg.session.retry_interval_s,
            s,
            sk,
            now,
        );
    }

    /// After a reconnect: re-send every unacknowledged PUBLISH (DUP=1) and
    /// PUBREL with its original packet id [MQTT-4.4.0-1].
    pub fn resend_inflight(&mut self, sk: Key) {
        let now = self.clock_ms;
        self.resend_due(sk, u64::MAX, now);
        if let Some(s) = self.sessions.get_mut(sk) {
            arm_retry(
                &mut self.wheel,
                self.cfg.session.retry_interval_s,
                s,
                sk,
                now,
            );
        }
    }

    /// Retry timer: re-send window entries older than retry_interval_s, and
    /// re-arm for the oldest one left.
    pub fn retry_session(&mut self, sk: Key, now: u64) {
        let interval = self.cfg.session.retry_interval_s * 1000;
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        s.retry_armed = false;
        if s.conn.is_none() {
            return; // resent on reconnect
        }
        self.resend_due(sk, now.saturating_sub(interval), now);
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        if let Some(oldest) = s.inflight.oldest_sent_ms() {
            s.retry_armed = true;
            self.wheel.insert(oldest + interval, TimerItem::Retry(sk));
        }
    }

    /// Re-send window entries last sent at or before `before_ms` to the
    /// session's connection: PUBLISH with DUP=1, or PUBREL.
    fn resend_due(&mut self, sk: Key, before_ms: u64, now: u64) {
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let Some(c) = s.conn.and_then(|c| self.conns.get_mut(c)) else {
            return;
        };
        let resent = s.inflight.resend_due(before_ms, now, |e| resend(c, e));
        if resent > 0 {
            log::debug!(
                "shard {}: {:?} re-sent {resent} unacknowledged",
                self.id,
                s.client_id
            );
        }
        self.metrics.publish_resent += resent as u64;
    }

    /// A connection's outbox was written: refill it from its session's queue.
    pub fn after_write(&mut self, sk: Key) {
        if self.sessions.get(sk).is_some_and(|s| !s.mqueue.is_empty()) {
            self.drain(sk);
        }
    }
}

/// Arm the session's retry timer if it has unacknowledged messages, retry is
/// on, and no timer is armed yet.
fn arm_retry(
    wheel: &mut TimerWheel<TimerItem>,
    interval_s: u64,
    s: &mut Session,
    sk: Key,
    now: u64,
) {
    if !s.retry_armed && interval_s > 0 && !s.inflight.is_empty() {
        s.retry_armed = true;
        wheel.insert(now + interval_s * 1000, TimerItem::Retry(sk));
    }
}

/// Encode one PUBLISH into a connection's outbox and wake its task.
fn encode(c: &mut ConnState, msg: &Message, retain: bool, qos: QoS, pkid: u16, dup: bool) {
    codec::encode_publish(
        &mut c.outbox,
        &msg.topic,
        &msg.payload,
        qos,
        pkid,
        retain,
        dup,
    );
    wake(c);
}

/// Re-send one window entry: PUBLISH with DUP=1, or PUBREL.
fn resend(c: &mut ConnState, e: &Entry) {
    match e.phase {
        Phase::Publish => encode(c, &e.delivery.msg, e.delivery.retain, e.qos, e.pkid, true),
        Phase::Release => {
            codec::encode(&Packet::PubRel(e.pkid), &mut c.outbox);
            wake(c);
        }
    }
}
