//! Session events: every change to state that must survive a restart.
//!
//! Owns the event vocabulary ([`SessionEvent`]) and the [`Journal`] that
//! receives them. Each durable change is made by one function of the
//! sessions part ([`super::store::Sessions`]) or, for retained messages, by
//! `Shard::apply_retained`; every one of those takes the journal and emits
//! its event there, and nothing else changes that state. Replaying the
//! events into an empty shard (`Shard::replay`) rebuilds the same sessions,
//! subscriptions, windows, queues, awaiting-PUBREL sets and retained store:
//! a property test in `shard/harness.rs` checks it. A later storage layer
//! appends the journal to a per-shard log; until then it records only when
//! asked (tests), and a disabled journal builds no event at all.

use super::{Delivery, Expiry};
use crate::codec::QoS;
use crate::message::Message;
use crate::router::SubOpts;
use crate::slab::SessionKey;
use std::sync::Arc;

/// One change to durable state.
///
/// Read by [`Shard::replay`](crate::shard::Shard) (the property test today,
/// the storage layer's recovery next); nothing else in a release build reads
/// the fields yet, hence the allowance.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
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
    },
    /// A message went straight into the inflight window with this packet id.
    Windowed {
        session: SessionKey,
        delivery: Delivery,
        qos: QoS,
        pkid: u16,
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
    /// A retained message was stored or replaced.
    RetainedSet { msg: Arc<Message> },
    /// A retained message was deleted (by this empty-payload message).
    RetainedCleared { msg: Arc<Message> },
}

/// Where session events go. See the module doc.
#[derive(Debug, Default)]
pub struct Journal {
    recording: bool,
    events: Vec<SessionEvent>,
}

impl Journal {
    /// Keep every event from now on (harness tests; later, the log writer).
    #[cfg(test)]
    pub fn record(&mut self) {
        self.recording = true;
    }

    /// Emit one event; `make` runs only when something listens.
    pub fn emit(&mut self, make: impl FnOnce() -> SessionEvent) {
        if self.recording {
            self.events.push(make());
        }
    }

    /// The events emitted since the last call.
    #[cfg(test)]
    pub fn take(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }
}
