//! The live state of a shard written as log records: what compaction and
//! every start write so that older segments can go.
//!
//! A session's snapshot is its `Created` record (which replaces whatever a
//! replay holds under its key), its subscriptions, its window (with the
//! PUBREC of QoS 2 entries past it), its queue, its awaiting-PUBREL ids and
//! when it went offline. Each session is written in one go, in the live
//! stream: events of that session logged before it are superseded, events
//! after it apply on top. Retained messages are written whole; replay
//! applies them last-writer-wins by id. Called by the writer (`writer.rs`).

use super::record::Encoder;
use crate::router::Router;
use crate::session::event::SessionEvent;
use crate::session::inflight::Phase;
use crate::session::store::Sessions;
use crate::shard::SessionKey;
use std::sync::Arc;

/// Write session `sk`'s snapshot; false if it is gone or not durable.
pub fn session(sessions: &Sessions, router: &Router, log: &mut Encoder, sk: SessionKey) -> bool {
    let Some(s) = sessions.get(sk).filter(|_| log.is_durable(sk)) else {
        return false;
    };
    log.encode(&SessionEvent::Created {
        session: sk,
        client_id: s.client_id().clone(),
        expiry: s.expiry(),
    });
    s.for_each_filter(|f| {
        if let Some(opts) = router.granted(f, sk) {
            log.encode(&SessionEvent::Subscribed {
                session: sk,
                filter: f.clone(),
                opts,
            });
        }
    });
    for e in s.window_entries() {
        log.encode(&SessionEvent::Windowed {
            session: sk,
            delivery: e.delivery.clone(),
            qos: e.qos,
            pkid: e.pkid,
            share: s.share_of(e.delivery.share),
        });
        if e.phase == Phase::PubRelSent {
            log.encode(&SessionEvent::PubRecReceived {
                session: sk,
                pkid: e.pkid,
            });
        }
    }
    for (d, qos) in s.queued() {
        log.encode(&SessionEvent::Queued {
            session: sk,
            delivery: d.clone(),
            qos,
            share: s.share_of(d.share),
        });
    }
    for pkid in s.awaiting_rel_ids() {
        log.encode(&SessionEvent::PubRelAwaited { session: sk, pkid });
    }
    if s.conn().is_none() {
        if let Some(at_ms) = log.offline_at(sk) {
            log.encode(&SessionEvent::Offline { session: sk, at_ms });
        }
    }
    true
}

/// Write every retained message of the replica.
pub fn retained(router: &Router, log: &mut Encoder) {
    for msg in router.retained().all() {
        log.encode(&SessionEvent::RetainedSet {
            msg: Arc::clone(msg),
        });
    }
}
