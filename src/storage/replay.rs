//! Rebuilding a shard from log records.
//!
//! A [`Replayer`] reads one segment's bytes after another into a shard: it
//! maps the sessions' keys as the log wrote them to the keys they get now,
//! keeps message bodies by id until the end, applies every other event
//! through the same functions that made the change live
//! (`Shard::replay_one`), and remembers when each session went offline.
//! [`Replayer::finish`] then ends the sessions that should not outlive the
//! restart (clean ones, expired ones: the downtime counts) and arms the
//! expiry of the others. When the shard count changed, a replayer keeps
//! only the sessions homed on its shard (`keep`); retained messages are
//! kept by every shard. Called at start by each shard, and by
//! `coremq storage inspect|compact`.

use super::record::{self, Bad, Fields, Frame, Frames};
use crate::message::{Message, MsgId};
use crate::session::event::SessionEvent;
use crate::session::store::Ending;
use crate::session::{Delivery, Expiry};
use crate::shard::{home_shard, SessionKey, Shard, TimerItem};
use ahash::AHashMap;
use std::sync::Arc;

/// What a replay read.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub records: u64,
    pub bytes: u64,
    /// Records naming a session or message the log no longer has (events
    /// before a session's snapshot): skipped, as they should be.
    pub skipped: u64,
    /// Sessions ended at start: expired while the broker was down.
    pub expired: u64,
}

/// Where a segment's good records end, when it does not end cleanly.
#[derive(Debug, Clone)]
pub struct Damage {
    pub offset: usize,
    pub dropped: usize,
    pub why: &'static str,
}

/// See the module doc.
pub struct Replayer {
    /// (old shard, key in its log) → session now.
    sids: AHashMap<(usize, u64), SessionKey>,
    /// The old shard whose log is being read (keys are per shard).
    source: usize,
    /// The reverse of `sids`.
    keys: AHashMap<SessionKey, (usize, u64)>,
    msgs: AHashMap<MsgId, Arc<Message>>,
    /// When each offline session went offline (wall clock, ms).
    offline: AHashMap<SessionKey, u64>,
    /// The latest clock record.
    last_tick: u64,
    /// `(shard, shards)`: keep only sessions homed there (a reshard).
    keep: Option<(usize, usize)>,
    /// The newest message id seen (ids stay unique across restarts).
    newest: MsgId,
    pub counts: Counts,
}

impl Replayer {
    pub fn new(keep: Option<(usize, usize)>) -> Self {
        Replayer {
            sids: AHashMap::new(),
            source: 0,
            keys: AHashMap::new(),
            msgs: AHashMap::new(),
            offline: AHashMap::new(),
            last_tick: 0,
            keep,
            newest: MsgId(0),
            counts: Counts::default(),
        }
    }

    /// The segments that follow were written by shard `old`.
    pub fn source(&mut self, old: usize) {
        self.source = old;
    }

    /// Apply every good record of `bytes`; where the records stop short of
    /// the end, say where and why.
    pub fn segment(&mut self, shard: &mut Shard, bytes: &[u8]) -> Option<Damage> {
        let mut frames = Frames::new(bytes);
        loop {
            let at = frames.pos();
            match frames.next_frame() {
                Frame::Record(payload) => {
                    if let Err(Bad(why)) = self.apply(shard, payload) {
                        return Some(Damage {
                            offset: at,
                            dropped: bytes.len() - at,
                            why,
                        });
                    }
                    self.counts.records += 1;
                    self.counts.bytes += (payload.len() + record::HEADER) as u64;
                }
                Frame::End => return None,
                Frame::Damaged(offset, why) => {
                    return Some(Damage {
                        offset,
                        dropped: bytes.len() - offset,
                        why,
                    })
                }
            }
        }
    }

    fn apply(&mut self, shard: &mut Shard, payload: &[u8]) -> Result<(), Bad> {
        let mut f = Fields::new(payload);
        let tag = f.u8()?;
        match tag {
            record::TAG_MESSAGE => {
                let m = f.message()?;
                self.saw(m.id);
                self.msgs.insert(m.id, Arc::new(m));
            }
            record::TAG_RETAINED_SET | record::TAG_RETAINED_CLEARED => {
                let m = f.message()?;
                self.saw(m.id);
                shard.apply_retained(&Arc::new(m), false);
            }
            record::TAG_TICK => self.last_tick = self.last_tick.max(f.u64()?),
            record::TAG_CREATED => {
                let sid = f.u64()?;
                let expiry = f.expiry()?;
                let client_id = f.str()?;
                self.created(shard, sid, client_id, expiry);
            }
            _ => {
                let sid = f.u64()?;
                match self.sids.get(&(self.source, sid)).copied() {
                    Some(sk) => self.session_event(shard, tag, sk, &mut f)?,
                    None => self.counts.skipped += 1,
                }
            }
        }
        Ok(())
    }

    fn saw(&mut self, id: MsgId) {
        self.newest = self.newest.max(id);
    }

    /// A session's first record, or the start of its snapshot: whatever
    /// the replay held under that key or client id is replaced.
    fn created(&mut self, shard: &mut Shard, sid: u64, client_id: Arc<str>, expiry: Expiry) {
        let sid = (self.source, sid);
        if let Some(old) = self.sids.remove(&sid) {
            self.forget(shard, old);
        }
        if self
            .keep
            .is_some_and(|(me, n)| home_shard(&client_id, n) != me)
        {
            return;
        }
        if let Some(old) = shard.sessions.find(&client_id) {
            if let Some(old_sid) = self.keys.get(&old).copied() {
                self.sids.remove(&old_sid);
            }
            self.forget(shard, old);
        }
        let sk = shard.sessions.create(&mut shard.journal, client_id, expiry);
        self.sids.insert(sid, sk);
        self.keys.insert(sk, sid);
    }

    /// End a replayed session that a later record replaces.
    fn forget(&mut self, shard: &mut Shard, old: SessionKey) {
        self.offline.remove(&old);
        self.keys.remove(&old);
        shard.end_session_as(old, Ending::Discarded, false);
    }

    fn session_event(
        &mut self,
        shard: &mut Shard,
        tag: u8,
        session: SessionKey,
        f: &mut Fields<'_>,
    ) -> Result<(), Bad> {
        let ev = match tag {
            record::TAG_RESUMED => {
                self.offline.remove(&session);
                SessionEvent::Resumed {
                    session,
                    expiry: f.expiry()?,
                }
            }
            record::TAG_EXPIRY_SET => SessionEvent::ExpirySet {
                session,
                expiry: f.expiry()?,
            },
            record::TAG_DISCARDED | record::TAG_EXPIRED => {
                self.offline.remove(&session);
                if let Some(sid) = self.keys.remove(&session) {
                    self.sids.remove(&sid);
                }
                match tag {
                    record::TAG_DISCARDED => SessionEvent::Discarded { session },
                    _ => SessionEvent::Expired { session },
                }
            }
            record::TAG_SUBSCRIBED => {
                let bits = f.u32()?;
                let opts = crate::router::SubOpts::from_bits(bits).ok_or(Bad("bad options"))?;
                SessionEvent::Subscribed {
                    session,
                    opts,
                    filter: f.str()?,
                }
            }
            record::TAG_UNSUBSCRIBED => SessionEvent::Unsubscribed {
                session,
                filter: f.str()?,
            },
            record::TAG_QUEUED | record::TAG_WINDOWED => {
                let pkid = match tag {
                    record::TAG_WINDOWED => f.u16()?,
                    _ => 0,
                };
                let d = f.delivery()?;
                let Some(msg) = self.msgs.get(&d.msg).cloned() else {
                    self.counts.skipped += 1;
                    return Ok(());
                };
                let share_tag = d
                    .share
                    .as_ref()
                    .and_then(|name| shard.sessions.share_tag_for(session, name));
                let delivery = Delivery::new(msg, d.retain, share_tag, &d.ids);
                match tag {
                    record::TAG_WINDOWED => SessionEvent::Windowed {
                        session,
                        delivery,
                        qos: d.qos,
                        pkid,
                        share: d.share,
                    },
                    _ => SessionEvent::Queued {
                        session,
                        delivery,
                        qos: d.qos,
                        share: d.share,
                    },
                }
            }
            record::TAG_SENT => SessionEvent::Sent {
                session,
                pkid: f.u16()?,
            },
            record::TAG_UNQUEUED => SessionEvent::Unqueued { session },
            record::TAG_ACKED => SessionEvent::Acked {
                session,
                pkid: f.u16()?,
            },
            record::TAG_PUBREC => SessionEvent::PubRecReceived {
                session,
                pkid: f.u16()?,
            },
            record::TAG_PUBREL_AWAITED => SessionEvent::PubRelAwaited {
                session,
                pkid: f.u16()?,
            },
            record::TAG_PUBREL_RECEIVED => SessionEvent::PubRelReceived {
                session,
                pkid: f.u16()?,
            },
            record::TAG_OFFLINE => {
                self.offline.insert(session, f.u64()?);
                return Ok(());
            }
            _ => return Err(Bad("an unknown record type")),
        };
        let now = shard.timers.now_ms();
        shard.replay_one(ev, now);
        Ok(())
    }

    /// The replay is over: end the sessions that must not outlive the
    /// restart (a clean one, or one past its expiry counting the
    /// downtime: `now_ms` is the wall clock), arm the others' expiry, make
    /// them durable in the journal's log, and move the id generator past
    /// every id read.
    pub fn finish(mut self, shard: &mut Shard, now_ms: u64) -> Counts {
        shard.ids.advance_past(self.newest);
        let keys: Vec<(SessionKey, Expiry)> = shard
            .sessions
            .iter()
            .map(|(sk, s)| (sk, s.expiry()))
            .collect();
        let mono = shard.timers.now_ms();
        for (sk, expiry) in keys {
            let Expiry::AfterSecs(secs) = expiry else {
                shard.end_session_as(sk, Ending::Discarded, false);
                continue;
            };
            // Online when the broker stopped: offline since its last write.
            let since = match self.offline.get(&sk) {
                Some(at) => *at,
                None if self.last_tick != 0 => self.last_tick,
                None => now_ms,
            };
            let gone = now_ms.saturating_sub(since);
            let left = (u64::from(secs) * 1000).saturating_sub(gone);
            if left == 0 {
                self.counts.expired += 1;
                shard.end_session_as(sk, Ending::Expired, false);
                continue;
            }
            let epoch = shard.sessions.get(sk).map_or(0, |s| s.epoch());
            shard
                .timers
                .arm(mono + left.max(1), TimerItem::Expire(sk, epoch));
            if let Some(log) = shard.journal.log_mut() {
                log.make_durable(sk);
                log.set_offline(sk, since);
            }
        }
        self.counts
    }
}
