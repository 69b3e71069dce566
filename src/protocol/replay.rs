//! Session events applied back to a shard: how durable state is rebuilt.
//!
//! [`Shard::replay`] applies each [`SessionEvent`] through the same
//! functions that made the change live (the sessions part's durable
//! functions, `subscribe_session`, `end_session`, `apply_retained`), so an
//! empty shard that replays a live shard's events holds the same sessions,
//! subscriptions, windows, queues, awaiting-PUBREL sets and retained
//! messages. Connections, timers and send times are not durable and are not
//! rebuilt. Called by the harness's property test today, by the storage
//! layer's recovery later.

use crate::session::event::SessionEvent;
use crate::session::store::Ending;
use crate::shard::Shard;

impl Shard {
    /// Apply recorded events, in order.
    pub fn replay(&mut self, events: impl IntoIterator<Item = SessionEvent>) {
        let now = self.timers.now_ms();
        for ev in events {
            self.replay_one(ev, now);
        }
    }

    fn replay_one(&mut self, ev: SessionEvent, now: u64) {
        let j = &mut self.journal;
        match ev {
            SessionEvent::Created {
                client_id, expiry, ..
            } => {
                self.sessions.create(j, client_id, expiry);
            }
            SessionEvent::Resumed { session } => self.sessions.resume(j, session),
            SessionEvent::Discarded { session } => self.end_session(session, Ending::Discarded),
            SessionEvent::Expired { session } => self.end_session(session, Ending::Expired),
            SessionEvent::Subscribed {
                session,
                filter,
                qos,
            } => {
                self.subscribe_session(session, filter, qos);
            }
            SessionEvent::Unsubscribed { session, filter } => {
                self.unsubscribe_session(session, &filter);
            }
            SessionEvent::Queued {
                session,
                delivery,
                qos,
            } => {
                self.sessions.queue(j, session, delivery, qos);
            }
            SessionEvent::Windowed {
                session,
                delivery,
                qos,
                pkid,
            } => self
                .sessions
                .window_as(j, session, delivery, qos, pkid, now),
            SessionEvent::Sent { session, pkid } => {
                let mut got = None;
                self.sessions
                    .send_queued(j, session, now, |_, _, id| got = Some(id));
                debug_assert_eq!(got, Some(pkid), "replayed send took another packet id");
            }
            SessionEvent::Acked { session, pkid } => {
                let phase = self
                    .sessions
                    .get(session)
                    .and_then(|s| s.window_phase(pkid));
                if let Some((qos, phase)) = phase {
                    self.sessions.complete(j, session, pkid, qos, phase);
                }
            }
            SessionEvent::PubRecReceived { session, pkid } => {
                self.sessions.pubrec(j, session, pkid, now);
            }
            SessionEvent::PubRelAwaited { session, pkid } => {
                self.sessions.await_rel(j, session, pkid);
            }
            SessionEvent::PubRelReceived { session, pkid } => {
                self.sessions.release_rel(j, session, pkid);
            }
            SessionEvent::RetainedSet { msg } | SessionEvent::RetainedCleared { msg } => {
                self.apply_retained(&msg, false);
            }
        }
    }
}
