//! The questions the control plane asks shards, and their answers.
//!
//! Plain data sent over the mesh (`MeshMsg::Ask` / `MeshMsg::Answer`):
//! built by the asker (`control::ask_all`, `control::ask_one`), answered by
//! each shard from its own parts (`control::answer`). Rows serialize as the
//! HTTP API's JSON.

use crate::metrics::Metrics;
use serde::Serialize;

/// Which rows a listing keeps: a client id substring, a user name, and at
/// most `keep` rows (the first in client id order; the asker pages).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub keep: usize,
}

impl Query {
    /// Whether a row with this client id and user name is wanted.
    pub fn wants(&self, client_id: &str, username: Option<&str>) -> bool {
        self.client_id
            .as_deref()
            .is_none_or(|s| client_id.contains(s))
            && self.username.as_deref().is_none_or(|u| username == Some(u))
    }
}

/// A question for one shard.
#[derive(Debug, Clone)]
pub enum Ask {
    /// Counters, gauges and load ([`ShardStats`]).
    Stats,
    /// Whether the shard answers, and whether its log can be written
    /// (`/health/ready`: no session is looked at).
    Ping,
    /// Connected clients matching the query.
    Clients(Query),
    /// One client (sent to its home shard).
    Client(String),
    /// Close a client's connection (administrative action).
    Kick(String),
    /// Sessions matching the query.
    Sessions(Query),
    /// One session.
    Session(String),
    /// Discard a session (closing its connection).
    DeleteSession(String),
    /// A session's subscriptions.
    Subscriptions(String),
    /// Subscribe a session to a filter, as if its client had.
    Subscribe {
        client_id: String,
        filter: String,
        qos: u8,
    },
    /// Take a session off a filter.
    Unsubscribe { client_id: String, filter: String },
    /// Local filters and their subscriber counts (at most `keep`, by name).
    Topics(usize),
}

/// One shard's figures.
#[derive(Debug, Clone, Default)]
pub struct ShardStats {
    pub shard: usize,
    pub metrics: Metrics,
    /// Subscriptions of this shard's sessions (shared ones included).
    pub subscriptions: u64,
    pub sessions_persistent: u64,
    pub sessions_offline: u64,
    /// Distinct non-shared filters node-wide, as this shard's replica knows them.
    pub topics: u64,
    /// Messages queued to a session already holding
    /// `alarms.slow_subscriber_queue` or more, since start; and the last such
    /// session (client id, messages).
    pub slow_queued: u64,
    pub slowest: Option<(String, usize)>,
    /// Share of the last second the shard spent running.
    pub busy: f64,
    /// Messages waiting to leave for peers.
    pub mailbox_queued: u64,
    /// Why the storage log cannot be written, while it cannot.
    pub storage_failing: Option<String>,
}

/// A connected client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientRow {
    pub client_id: String,
    pub username: Option<String>,
    pub peer: Option<String>,
    pub shard: usize,
    /// 3: MQTT 3.1, 4: 3.1.1, 5: 5.0.
    pub protocol: u8,
    pub keepalive: u64,
    pub clean_start: bool,
    pub subscriptions: usize,
    pub inflight: usize,
    pub queued: usize,
}

/// A session, connected or not.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub client_id: String,
    pub shard: usize,
    pub connected: bool,
    pub persistent: bool,
    pub expiry_s: u64,
    pub subscriptions: usize,
    pub inflight: usize,
    pub queued: usize,
    pub awaiting_rel: usize,
}

/// One subscription of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionRow {
    pub topic: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
}

/// A filter and how many sessions of a shard (or the node) hold it.
#[derive(Debug, Clone, Serialize)]
pub struct TopicRow {
    pub topic: String,
    pub subscribers: usize,
}

/// A shard's answer.
#[derive(Debug)]
pub enum Answer {
    Stats(Box<ShardStats>),
    /// The answer to [`Ask::Ping`]: why the log cannot be written, if it cannot.
    Pong(Option<String>),
    /// Matching rows (at most the query's `keep`) and how many matched.
    Clients(Vec<ClientRow>, usize),
    Sessions(Vec<SessionRow>, usize),
    Client(Option<ClientRow>),
    Session(Option<SessionRow>),
    /// None: no such session.
    Subscriptions(Option<Vec<SubscriptionRow>>),
    Topics(Vec<TopicRow>),
    /// Done; or why not (`NotFound`, `Refused`).
    Done,
    NotFound,
    Refused(String),
}
