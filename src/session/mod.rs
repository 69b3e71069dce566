//! Per-client session state: the seeds' design, as plain synchronous data.
//!
//! ```text
//!       |<----------------- max_mqueue_len ---------------->|
//!       ---------------------------------------------------------------
//! IN -> |        Pending messages (mqueue)   |  Inflight window  | -> Out
//!       ---------------------------------------------------------------
//!                                            |<- inflight_window ->|
//! ```
//! A [`Session`] is owned by the client's home shard and lives in that
//! shard's session slab; it outlives its connection when clean session is 0.
//! It holds the subscriptions, the inflight window of QoS 1/2 messages sent
//! and not yet acknowledged ([`inflight`]), the pending queue ([`mqueue`]), the
//! inbound QoS 2 packet ids awaiting PUBREL, and the packet id counter. The
//! shard's protocol handlers (`crate::protocol`) drive it; nothing here does I/O.

pub mod inflight;
pub mod mqueue;

use crate::codec::QoS;
use crate::config::SessionConfig;
use crate::message::Message;
use crate::router::smallmap::SmallMap;
use crate::shard::slab::Key;
use inflight::Inflight;
use mqueue::MQueue;
use std::sync::Arc;

/// One message on its way to one session: what the queue and window hold.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// RETAIN flag on the wire: set only for retained messages sent on subscribe.
    pub retain: bool,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    /// Clean session 1: discarded when its connection ends.
    pub clean: bool,
    /// Filter → granted QoS.
    pub subs: SmallMap<Arc<str>, QoS>,
    /// QoS 1/2 messages sent and not yet acknowledged, in send order.
    pub inflight: Inflight,
    /// Messages waiting for the window (or for the client to come back).
    pub mqueue: MQueue<Delivery>,
    /// Inbound QoS 2 packet ids that got PUBREC and await PUBREL.
    pub awaiting_rel: SmallMap<u16, ()>,
    /// The connection while online.
    pub conn: Option<Key>,
    /// Bumped at every disconnect: an expiry timer fires only for its own epoch.
    pub epoch: u32,
    /// Whether a retry timer is armed for this session.
    pub retry_armed: bool,
}

impl Session {
    pub fn new(client_id: Arc<str>, clean: bool, cfg: &SessionConfig) -> Self {
        Session {
            client_id,
            clean,
            subs: SmallMap::new(),
            inflight: Inflight::new(cfg.inflight_window),
            mqueue: MQueue::new(cfg.max_mqueue_len, cfg.store_qos0, cfg.mqueue_drop),
            awaiting_rel: SmallMap::new(),
            conn: None,
            epoch: 0,
            retry_armed: false,
        }
    }
}
