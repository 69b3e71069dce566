//! Session events: every change to state that must survive a restart.
//!
//! Owns the event vocabulary ([`SessionEvent`]) and the [`Journal`] that
//! receives them. Each durable change is made by one function of the
//! sessions part ([`super::store::Sessions`]) or, for retained messages, by
//! `Shard::apply_retained`; every one of those takes the journal and emits
//! its event there, and nothing else changes that state. Replaying the
//! events into an empty shard (`Shard::replay`) rebuilds the same sessions,
//! subscriptions, windows, queues, awaiting-PUBREL sets and retained store:
//! a property test in `protocol/replay.rs` checks it. With storage on, the
//! journal encodes the events of durable sessions (those that outlive their
//! connection) and retained changes into the shard's log
//! ([`crate::storage::record::Encoder`]); events of clean sessions are never
//! built, and with storage off and no test recorder no event is built at all.

use super::{Delivery, Expiry};
use crate::codec::QoS;
use crate::message::Message;
use crate::router::SubOpts;
use crate::slab::SessionKey;
use crate::storage::record::Encoder;
use std::sync::Arc;

/// One change to durable state.
///
/// Encoded by the storage log, read back by [`Shard::replay`](crate::shard::Shard).
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A new session for `client_id`.
    Created {
        session: SessionKey,
        client_id: Arc<str>,
        expiry: Expiry,
    },
    /// An existing session was taken up by a new connection, which set its
    /// expiry (an MQTT 5 client asks for its own each time).
    Resumed { session: SessionKey, expiry: Expiry },
    /// The session's expiry changed while connected (MQTT 5 DISCONNECT).
    ExpirySet { session: SessionKey, expiry: Expiry },
    /// A session ended (clean session over, or replaced by a clean start).
    Discarded { session: SessionKey },
    /// An offline session reached its expiry.
    Expired { session: SessionKey },
    /// A subscription was added (or its options changed).
    Subscribed {
        session: SessionKey,
        filter: Arc<str>,
        opts: SubOpts,
    },
    /// A subscription was removed.
    Unsubscribed {
        session: SessionKey,
        filter: Arc<str>,
    },
    /// A message joined the session's queue (the queue's drop policy applies).
    Queued {
        session: SessionKey,
        delivery: Delivery,
        qos: QoS,
        /// The shared group it came through (`$share/g/f`), by name: the
        /// delivery's tag is the session's own slot number.
        share: Option<Arc<str>>,
    },
    /// A message went straight into the inflight window with this packet id.
    Windowed {
        session: SessionKey,
        delivery: Delivery,
        qos: QoS,
        pkid: u16,
        /// As for [`SessionEvent::Queued`].
        share: Option<Arc<str>>,
    },
    /// The queue's oldest message was sent: into the window with `pkid`,
    /// or (pkid 0) a QoS 0 message written out.
    Sent { session: SessionKey, pkid: u16 },
    /// The queue's oldest message was dropped unsent (expired, or over the
    /// client's Maximum Packet Size).
    Unqueued { session: SessionKey },
    /// A delivery completed (PUBACK for QoS 1, PUBCOMP for QoS 2).
    Acked { session: SessionKey, pkid: u16 },
    /// PUBREC received for an outbound QoS 2 message: PUBREL is due.
    PubRecReceived { session: SessionKey, pkid: u16 },
    /// An inbound QoS 2 message was routed: its PUBREL is awaited.
    PubRelAwaited { session: SessionKey, pkid: u16 },
    /// The client released an inbound QoS 2 message (PUBREL).
    PubRelReceived { session: SessionKey, pkid: u16 },
    /// The session's connection ended at this wall-clock time (ms since
    /// the UNIX epoch): its expiry runs from then, across a restart too.
    Offline { session: SessionKey, at_ms: u64 },
    /// A retained message was stored or replaced.
    RetainedSet { msg: Arc<Message> },
    /// A retained message was deleted (by this empty-payload message).
    RetainedCleared { msg: Arc<Message> },
}

/// Where session events go. See the module doc.
#[derive(Debug, Default)]
pub struct Journal {
    /// Keep every event (harness tests).
    recording: bool,
    events: Vec<SessionEvent>,
    /// The storage log's encoder (`[storage] enabled`); None: nothing is
    /// written and no event is built.
    log: Option<Box<Encoder>>,
}

impl Journal {
    /// Keep every event from now on (harness tests).
    #[cfg(test)]
    pub fn record(&mut self) {
        self.recording = true;
    }

    /// Encode the durable events into the storage log from now on.
    pub fn attach(&mut self, log: Box<Encoder>) {
        self.log = Some(log);
    }

    /// The storage log's encoder, when one is attached.
    pub fn log(&self) -> Option<&Encoder> {
        self.log.as_deref()
    }

    pub fn log_mut(&mut self) -> Option<&mut Encoder> {
        self.log.as_deref_mut()
    }

    /// Bytes encoded into the log so far (0 without one).
    pub fn appended(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.appended())
    }

    /// Emit an event that concerns no session (retained set / cleared).
    pub fn emit(&mut self, make: impl FnOnce() -> SessionEvent) {
        let log = self.log.as_deref_mut();
        emit_into(self.recording, &mut self.events, log, make);
    }

    /// Emit an event of session `sk`: written only if the session is durable.
    pub fn emit_for(&mut self, sk: SessionKey, make: impl FnOnce() -> SessionEvent) {
        let log = self.log.as_deref_mut().filter(|l| l.is_durable(sk));
        emit_into(self.recording, &mut self.events, log, make);
    }

    /// Emit a session's creation, resumption or expiry change: from now on
    /// the session is durable if `expiry` keeps it past its connection (once
    /// durable it stays so until it ends, so the log learns it ends).
    pub fn emit_life(
        &mut self,
        sk: SessionKey,
        expiry: Expiry,
        make: impl FnOnce() -> SessionEvent,
    ) {
        if let (Some(log), Expiry::AfterSecs(_)) = (self.log.as_deref_mut(), expiry) {
            log.make_durable(sk);
        }
        self.emit_for(sk, make);
    }

    /// Emit a session's end; it is no longer durable.
    pub fn emit_end(&mut self, sk: SessionKey, make: impl FnOnce() -> SessionEvent) {
        self.emit_for(sk, make);
        if let Some(log) = self.log.as_deref_mut() {
            log.forget(sk);
        }
    }

    /// The events emitted since the last call.
    #[cfg(test)]
    pub fn take(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }
}

/// Build the event once if anything listens: the test recorder, the log.
fn emit_into(
    recording: bool,
    events: &mut Vec<SessionEvent>,
    log: Option<&mut Encoder>,
    make: impl FnOnce() -> SessionEvent,
) {
    if !recording && log.is_none() {
        return;
    }
    let ev = make();
    if let Some(log) = log {
        log.encode(&ev);
    }
    if recording {
        events.push(ev);
    }
}
