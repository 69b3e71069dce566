//! Session events applied back to a shard: how durable state is rebuilt.
//!
//! [`Shard::replay`] applies each [`SessionEvent`] through the same
//! functions that made the change live (the sessions part's durable
//! functions, `subscribe_session`, `end_session`, `apply_retained`), so an
//! empty shard that replays a live shard's events holds the same sessions,
//! subscriptions (shared-group membership too: a `$share/...` filter joins
//! its group), windows, queues, awaiting-PUBREL sets and retained messages.
//! An ended session's shared deliveries are not handed back during a replay:
//! the events of their new members follow in the log. Connections, timers and
//! send times are not durable and are not rebuilt. Called by the property
//! test below and by the storage replay (`crate::storage::replay`).

use crate::session::event::SessionEvent;
use crate::session::store::Ending;
use crate::shard::Shard;

impl Shard {
    /// Apply recorded events, in order (the property test).
    #[cfg(test)]
    pub fn replay(&mut self, events: impl IntoIterator<Item = SessionEvent>) {
        let now = self.timers.now_ms();
        for ev in events {
            self.replay_one(ev, now);
        }
    }

    /// Apply one event; its session key names a session of this shard
    /// (`crate::storage::replay` maps the log's keys to them).
    pub(crate) fn replay_one(&mut self, ev: SessionEvent, now: u64) {
        let j = &mut self.journal;
        match ev {
            SessionEvent::Created {
                session,
                client_id,
                expiry,
            } => {
                let sk = self.sessions.create(j, client_id, expiry);
                debug_assert_eq!(sk, session, "replayed session under another key");
            }
            SessionEvent::Resumed { session, expiry } => self.sessions.resume(j, session, expiry),
            SessionEvent::ExpirySet { session, expiry } => {
                self.sessions.set_expiry(j, session, expiry)
            }
            SessionEvent::Discarded { session } => {
                self.end_session_as(session, Ending::Discarded, false)
            }
            SessionEvent::Expired { session } => {
                self.end_session_as(session, Ending::Expired, false)
            }
            SessionEvent::Subscribed {
                session,
                filter,
                opts,
            } => {
                // Peers learn of the filter as from a live subscribe.
                let change = self.subscribe_session(session, filter, opts);
                self.announce(change.into_iter().collect(), 0);
            }
            SessionEvent::Unsubscribed { session, filter } => {
                let change = self.unsubscribe_session(session, &filter);
                self.announce(change.into_iter().collect(), 0);
            }
            SessionEvent::Queued {
                session,
                delivery,
                qos,
                ..
            } => {
                self.sessions.queue(j, session, delivery, qos);
            }
            SessionEvent::Windowed {
                session,
                delivery,
                qos,
                pkid,
                ..
            } => {
                self.sessions
                    .window(j, session, delivery, qos, Some(pkid), now);
            }
            SessionEvent::Sent { session, pkid } => {
                self.sessions.resend_queued_as(j, session, pkid, now);
            }
            // The storage replay keeps offline times itself.
            SessionEvent::Offline { .. } => {}
            SessionEvent::Unqueued { session } => {
                self.sessions.drop_queued(j, session);
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

/// The event-replay property: random client operations drive a shard
/// through the harness; replaying the events it emitted into an empty shard
/// rebuilds exactly its durable state.
#[cfg(test)]
mod tests {
    use crate::codec::{Ack, Disconnect, Packet, QoS};
    use crate::config::QueueDropPolicy;
    use crate::shard::harness::{
        connect5_packet, connect_packet, publish, small_config, subscribe, H,
    };
    use crate::shard::ConnKey;
    use proptest::prelude::*;

    const CLIENTS: usize = 3;
    const FILTERS: [&str; 6] = ["t/a", "t/+", "#", "t/b", "$share/g/t/+", "$share/h/#"];
    const TOPICS: [&str; 3] = ["t/a", "t/b", "u"];

    #[derive(Debug, Clone)]
    enum Op {
        /// `v5`: an MQTT 5 CONNECT (clean start; expiry 60 s unless `clean`).
        Connect {
            client: usize,
            clean: bool,
            v5: bool,
        },
        DropSocket {
            client: usize,
        },
        Disconnect {
            client: usize,
        },
        /// `opts` (MQTT 5 clients): bit 0 No Local, bit 1 Retain As
        /// Published, bits 2.. the subscription identifier (0: none).
        Subscribe {
            client: usize,
            filter: usize,
            qos: u8,
            opts: u8,
        },
        Unsubscribe {
            client: usize,
            filter: usize,
        },
        Publish {
            client: usize,
            topic: usize,
            qos: u8,
            retain: bool,
            empty: bool,
        },
        /// Read what arrived and answer it: PUBACK, PUBREC, PUBCOMP.
        Respond {
            client: usize,
        },
        /// Release the inbound QoS 2 messages awaiting PUBREL.
        PubRel {
            client: usize,
        },
        Advance {
            ms: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let c = 0..CLIENTS;
        prop_oneof![
            1 => (c.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(client, clean, v5)| Op::Connect { client, clean, v5 }),
            1 => c.clone().prop_map(|client| Op::DropSocket { client }),
            1 => c.clone().prop_map(|client| Op::Disconnect { client }),
            1 => (c.clone(), 0..FILTERS.len(), 0..3u8, 0..16u8)
                .prop_map(|(client, filter, qos, opts)| Op::Subscribe { client, filter, qos, opts }),
            1 => (c.clone(), 0..FILTERS.len())
                .prop_map(|(client, filter)| Op::Unsubscribe { client, filter }),
            1 => (c.clone(), 0..TOPICS.len(), 0..3u8, any::<bool>(), prop::bool::weighted(0.1)).prop_map(
                |(client, topic, qos, retain, empty)| Op::Publish { client, topic, qos, retain, empty }
            ),
            3 => c.clone().prop_map(|client| Op::Respond { client }),
            1 => c.prop_map(|client| Op::PubRel { client }),
            1 => (1_000..40_000u64).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    fn qos(v: u8) -> QoS {
        QoS::from_u8(v).unwrap_or(QoS::AtMostOnce)
    }

    /// The client side of the test: connections and packet ids.
    struct Clients {
        conns: [Option<ConnKey>; CLIENTS],
        v5: [bool; CLIENTS],
        next_pkid: u16,
        awaiting_rel: [Vec<u16>; CLIENTS],
    }

    impl Clients {
        fn apply(&mut self, h: &mut H, op: Op) {
            match op {
                Op::Connect { client, clean, v5 } => {
                    let id = format!("c{client}");
                    let packet = if v5 {
                        let props = crate::codec::Properties {
                            session_expiry_interval: (!clean).then_some(60),
                            ..Default::default()
                        };
                        connect5_packet(&id, clean, props, None)
                    } else {
                        connect_packet(&id, clean, None)
                    };
                    self.conns[client] = Some(h.connect_with(packet).0);
                    self.v5[client] = v5;
                    self.awaiting_rel[client].clear();
                }
                Op::DropSocket { client } => {
                    if let Some(c) = self.conns[client].take() {
                        h.drop_socket(c);
                    }
                }
                Op::Disconnect { client } => {
                    if let Some(c) = self.conns[client].take() {
                        let _ = h.send(c, Packet::Disconnect(Disconnect::normal()));
                    }
                }
                Op::Subscribe {
                    client,
                    filter,
                    qos: q,
                    opts,
                } => {
                    let mut packet = subscribe(1, &[(FILTERS[filter], qos(q))]);
                    if let (Packet::Subscribe(s), true) = (&mut packet, self.v5[client]) {
                        s.filters[0].no_local = opts & 1 != 0;
                        s.filters[0].retain_as_published = opts & 2 != 0;
                        let id = u32::from(opts >> 2);
                        s.props = (id != 0).then(|| {
                            Box::new(crate::codec::Properties {
                                subscription_identifiers: vec![id],
                                ..Default::default()
                            })
                        });
                    }
                    self.send(h, client, packet);
                }
                Op::Unsubscribe { client, filter } => {
                    let u = crate::codec::Unsubscribe {
                        pkid: 1,
                        filters: vec![FILTERS[filter].into()],
                        props: None,
                    };
                    self.send(h, client, Packet::Unsubscribe(u));
                }
                Op::Publish {
                    client,
                    topic,
                    qos: q,
                    retain,
                    empty,
                } => {
                    self.next_pkid = self.next_pkid % 1000 + 1;
                    let pkid = if q == 0 { 0 } else { self.next_pkid };
                    let payload: &'static [u8] = if empty { b"" } else { b"m" };
                    self.send(
                        h,
                        client,
                        publish(TOPICS[topic], payload, qos(q), pkid, retain),
                    );
                    if q == 2 {
                        self.awaiting_rel[client].push(pkid);
                    }
                }
                Op::Respond { client } => {
                    let Some(c) = self.conns[client] else { return };
                    let answers: Vec<Packet> = h
                        .out(c)
                        .into_iter()
                        .filter_map(|p| match p {
                            Packet::Publish(p) if p.qos == QoS::AtLeastOnce => {
                                Some(Packet::PubAck(Ack::new(p.pkid)))
                            }
                            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
                                Some(Packet::PubRec(Ack::new(p.pkid)))
                            }
                            Packet::PubRel(Ack { pkid: id, .. }) => {
                                Some(Packet::PubComp(Ack::new(id)))
                            }
                            _ => None,
                        })
                        .collect();
                    for a in answers {
                        self.send(h, client, a);
                    }
                }
                Op::PubRel { client } => {
                    for id in std::mem::take(&mut self.awaiting_rel[client]) {
                        self.send(h, client, Packet::PubRel(Ack::new(id)));
                    }
                }
                Op::Advance { ms } => h.advance(ms),
            }
        }

        /// Send on the client's connection; a close forgets it.
        fn send(&mut self, h: &mut H, client: usize, packet: Packet) {
            let Some(c) = self.conns[client] else { return };
            if h.send(c, packet).is_err() || h.shard.conns.get(c).is_none() {
                self.conns[client] = None;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn replaying_events_rebuilds_the_durable_state(
            window in 1..4usize,
            queue in 1..5usize,
            newest in any::<bool>(),
            store_qos0 in any::<bool>(),
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let drop = if newest { QueueDropPolicy::Newest } else { QueueDropPolicy::Oldest };
            let mut cfg = small_config(window, queue, drop);
            cfg.session.store_qos0 = store_qos0;
            cfg.session.expiry_s = 60;
            cfg.session.max_awaiting_rel = 3;
            let mut live = H::with(cfg.clone(), 1);
            live.shard.journal.attach(Box::default());
            let mut clients = Clients {
                conns: [None; CLIENTS],
                v5: [false; CLIENTS],
                next_pkid: 0,
                awaiting_rel: Default::default(),
            };
            for op in ops {
                clients.apply(&mut live, op);
            }
            let mut rebuilt = H::with(cfg.clone(), 1);
            rebuilt.shard.replay(live.events());
            prop_assert_eq!(live.durable(), rebuilt.durable());
            // The tally kept by the sessions' doors agrees with a walk.
            for h in [&live, &rebuilt] {
                let t = h.shard.sessions.tally();
                let walk = h.shard.sessions.iter().fold((0, 0, 0), |(f, p, o), (_, s)| {
                    (
                        f + s.filter_count(),
                        p + usize::from(s.expiry() != crate::session::Expiry::OnDisconnect),
                        o + usize::from(s.conn().is_none()),
                    )
                });
                prop_assert_eq!((t.subscriptions, t.persistent, t.offline), walk);
            }
            // The storage log: its records, read back, rebuild the durable
            // sessions and the retained messages; so does a snapshot of the
            // live state alone, and the log followed by that snapshot (a
            // compaction in the middle of the stream).
            let durable_ids: Vec<String> = {
                let enc = live.shard.journal.log().unwrap();
                live.shard
                    .sessions
                    .iter()
                    .filter(|(sk, _)| enc.is_durable(*sk))
                    .map(|(_, s)| s.client_id().to_string())
                    .collect()
            };
            let want = live.durable().only_sessions(&durable_ids);
            let log = live.shard.journal.log_mut().unwrap().take();
            let snap = {
                let sh = &mut live.shard;
                let enc = sh.journal.log_mut().unwrap();
                enc.new_segment();
                crate::storage::start::write_state((&sh.sessions, &sh.router), enc, 1);
                enc.take()
            };
            for bytes in [log.clone(), snap.clone(), [log, snap].concat()] {
                let mut from_log = H::with(cfg.clone(), 1);
                let mut rp = crate::storage::replay::Replayer::new(None);
                prop_assert!(rp.segment(&mut from_log.shard, &bytes).is_none());
                prop_assert_eq!(&want, &from_log.durable().only_sessions(&durable_ids));
            }
        }
    }
}
