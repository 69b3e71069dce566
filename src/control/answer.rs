//! How a shard answers the control plane's questions, from its own parts.
//!
//! Called by `control::Shard::on_ask` (a peer asked) and `send_ask` (this
//! shard asked itself). Reads the sessions, connections and router; the
//! administrative actions (kick, delete, subscribe on behalf) go through the
//! same functions a client's packets do, so their session events and mesh
//! announcements are the usual ones.

use super::ask::{
    Answer, Ask, ClientRow, Query, SessionRow, ShardStats, SubscriptionRow, TopicRow,
};
use crate::codec::QoS;
use crate::router::subopts::SubOpts;
use crate::session::store::Ending;
use crate::session::{Expiry, Session};
use crate::shard::{CloseReason, SessionKey, Shard};
use ahash::AHashMap;
use std::sync::Arc;

/// The first `keep` of `keys` by client id, in order, and how many there
/// were: rows are then built for those only.
fn first_keys(
    mut keys: Vec<(Arc<str>, SessionKey)>,
    keep: usize,
) -> (Vec<(Arc<str>, SessionKey)>, usize) {
    let total = keys.len();
    if keep == 0 {
        return (Vec::new(), total);
    }
    if keys.len() > keep {
        keys.select_nth_unstable_by(keep - 1, |a, b| a.0.cmp(&b.0));
        keys.truncate(keep);
    }
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    (keys, total)
}

impl Shard {
    /// Answer one question.
    pub(crate) fn answer_ask(&mut self, ask: Ask) -> Answer {
        match ask {
            Ask::Stats => Answer::Stats(Box::new(self.stats())),
            Ask::Ping => Answer::Pong(self.storage.failure().map(str::to_owned)),
            Ask::Clients(q) => {
                let (keys, n) = first_keys(self.client_keys(&q), q.keep);
                let rows = keys.iter().filter_map(|(_, sk)| self.client_row(*sk));
                Answer::Clients(rows.collect(), n)
            }
            Ask::Sessions(q) => {
                let (keys, n) = first_keys(self.session_keys(&q), q.keep);
                let rows = keys.iter().filter_map(|(_, sk)| self.session_row(*sk));
                Answer::Sessions(rows.collect(), n)
            }
            Ask::Client(id) => Answer::Client(self.find(&id).and_then(|sk| self.client_row(sk))),
            Ask::Session(id) => Answer::Session(self.find(&id).and_then(|sk| self.session_row(sk))),
            Ask::Subscriptions(id) => {
                Answer::Subscriptions(self.find(&id).map(|sk| self.subscription_rows(sk)))
            }
            Ask::Kick(id) => self.kick(&id),
            Ask::DeleteSession(id) => self.delete_session(&id),
            Ask::Subscribe {
                client_id,
                filter,
                qos,
            } => self.subscribe_on_behalf(&client_id, &filter, qos),
            Ask::Unsubscribe { client_id, filter } => {
                let Some(sk) = self.find(&client_id) else {
                    return Answer::NotFound;
                };
                if !self.sessions.get(sk).is_some_and(|s| s.has_filter(&filter)) {
                    return Answer::NotFound;
                }
                let changes = self.unsubscribe_session(sk, &filter);
                self.announce(changes.into_iter().collect(), 0);
                log::info!(
                    "shard {}: {client_id:?} unsubscribed from {filter:?} by the API",
                    self.id
                );
                Answer::Done
            }
            Ask::Topics(keep) => self.topic_rows(keep),
        }
    }

    fn find(&self, client_id: &str) -> Option<SessionKey> {
        self.sessions.find(client_id)
    }

    /// This shard's figures: counters and the sessions' tally (kept as
    /// sessions change; nothing here walks the sessions).
    fn stats(&mut self) -> ShardStats {
        self.set_gauges();
        let t = self.sessions.tally();
        let mut st = ShardStats {
            shard: self.id,
            metrics: self.metrics.clone(),
            subscriptions: t.subscriptions as u64,
            sessions_persistent: t.persistent as u64,
            sessions_offline: t.offline as u64,
            slow_queued: t.slow_queued,
            slowest: t.slowest.as_ref().map(|(c, n)| (c.to_string(), *n)),
            topics: self.router.filters_known() as u64,
            mailbox_queued: self.mesh.queued() as u64,
            storage_failing: self.storage.failure().map(str::to_owned),
            ..ShardStats::default()
        };
        st.busy = self.control.busy();
        st
    }

    /// Connected sessions the query wants, by client id.
    fn client_keys(&self, q: &Query) -> Vec<(Arc<str>, SessionKey)> {
        self.sessions
            .iter()
            .filter(|(_, s)| {
                let info = s.conn().and_then(|k| self.conns.get(k)?.info());
                info.is_some_and(|i| q.wants(s.client_id(), i.username.as_deref()))
            })
            .map(|(sk, s)| (s.client_id().clone(), sk))
            .collect()
    }

    fn client_row(&self, sk: SessionKey) -> Option<ClientRow> {
        let s = self.sessions.get(sk)?;
        let c = self.conns.get(s.conn()?)?;
        let info = c.info()?;
        Some(ClientRow {
            client_id: s.client_id().to_string(),
            username: info.username.as_deref().map(str::to_owned),
            peer: info.peer.map(|p| p.to_string()),
            shard: self.id,
            protocol: c.version().level(),
            keepalive: c.keepalive_ms() / 1000,
            clean_start: s.expiry() == Expiry::OnDisconnect,
            subscriptions: s.filter_count(),
            inflight: s.window_len(),
            queued: s.queued_len(),
        })
    }

    /// Sessions whose client id the query wants (sessions keep no user name).
    fn session_keys(&self, q: &Query) -> Vec<(Arc<str>, SessionKey)> {
        self.sessions
            .iter()
            .filter(|(_, s)| q.wants(s.client_id(), None))
            .map(|(sk, s)| (s.client_id().clone(), sk))
            .collect()
    }

    fn session_row(&self, sk: SessionKey) -> Option<SessionRow> {
        let s: &Session = self.sessions.get(sk)?;
        let expiry_s = match s.expiry() {
            Expiry::OnDisconnect => 0,
            Expiry::AfterSecs(n) => u64::from(n),
        };
        Some(SessionRow {
            client_id: s.client_id().to_string(),
            shard: self.id,
            connected: s.conn().is_some(),
            persistent: expiry_s > 0,
            expiry_s,
            subscriptions: s.filter_count(),
            inflight: s.window_len(),
            queued: s.queued_len(),
            awaiting_rel: s.awaiting_rel_len(),
        })
    }

    fn subscription_rows(&self, sk: SessionKey) -> Vec<SubscriptionRow> {
        let mut rows = Vec::new();
        if let Some(s) = self.sessions.get(sk) {
            s.for_each_filter(|f| {
                if let Some(o) = self.router.granted(f, sk) {
                    rows.push(SubscriptionRow {
                        topic: f.to_string(),
                        qos: o.qos() as u8,
                        no_local: o.no_local(),
                        retain_as_published: o.retain_as_published(),
                    });
                }
            });
        }
        rows.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        rows
    }

    /// Non-shared filters of this shard's sessions and their subscriber
    /// counts, the first `keep` by name (shared subscriptions show in each
    /// client's subscriptions; the count of topics is of non-shared ones).
    fn topic_rows(&self, keep: usize) -> Answer {
        let mut counts: AHashMap<Arc<str>, usize> = AHashMap::new();
        for (_, s) in self.sessions.iter() {
            s.for_each_filter(|f| {
                if !crate::topic::is_share(f) {
                    *counts.entry(f.clone()).or_default() += 1;
                }
            });
        }
        let mut rows: Vec<TopicRow> = counts
            .into_iter()
            .map(|(f, n)| TopicRow {
                topic: f.to_string(),
                subscribers: n,
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        rows.truncate(keep);
        Answer::Topics(rows)
    }

    /// Close a client's connection (MQTT 5: DISCONNECT 0x98 Administrative action).
    fn kick(&mut self, client_id: &str) -> Answer {
        let Some(conn) = self
            .find(client_id)
            .and_then(|sk| self.sessions.get(sk)?.conn())
        else {
            return Answer::NotFound;
        };
        log::info!("shard {}: client {client_id:?} kicked by the API", self.id);
        self.close_conn(conn, CloseReason::Kicked);
        Answer::Done
    }

    /// Discard a session, closing its connection first.
    fn delete_session(&mut self, client_id: &str) -> Answer {
        let Some(sk) = self.find(client_id) else {
            return Answer::NotFound;
        };
        if let Some(conn) = self.sessions.get(sk).and_then(Session::conn) {
            self.close_conn(conn, CloseReason::Kicked);
        }
        // A clean session ended with its connection; a persistent one stays.
        if let Some(sk) = self.find(client_id) {
            self.end_session(sk, Ending::Discarded);
        }
        log::info!(
            "shard {}: session {client_id:?} deleted by the API",
            self.id
        );
        Answer::Done
    }

    /// Subscribe a session to `filter` at `qos`, as its own SUBSCRIBE would
    /// (no retained messages are sent for it).
    fn subscribe_on_behalf(&mut self, client_id: &str, filter: &str, qos: u8) -> Answer {
        let Some(sk) = self.find(client_id) else {
            return Answer::NotFound;
        };
        let Some(qos) = QoS::from_u8(qos) else {
            return Answer::Refused("qos must be 0, 1 or 2".into());
        };
        if let Some(why) = self.subscribe_refusal(sk, filter) {
            return Answer::Refused(why);
        }
        let qos = qos.min(self.max_qos());
        let opts = SubOpts::new(qos, false, false, 0);
        let changes = self.subscribe_session(sk, filter.into(), opts);
        self.announce(changes.into_iter().collect(), 0);
        log::info!(
            "shard {}: {client_id:?} subscribed to {filter:?} by the API",
            self.id
        );
        Answer::Done
    }
}
