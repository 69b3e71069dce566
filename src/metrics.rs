//! Per-shard counters, plain integers owned by their shard.
//!
//! Each shard increments its own [`Metrics`] with no atomics. Once a tick the
//! shard copies it into its slot of a [`MetricsBoard`], which an embedder (or a
//! test) reads with [`MetricsBoard::total`]: the only cross-thread access, and
//! it is off the publish path. The control plane (`crate::control`) asks
//! the shards for them over the mesh instead, for `$SYS`, `/metrics` and
//! the API.

use std::sync::{Arc, Mutex};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Counters of one shard (or their sum over shards).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        /// Every counter's name and its doc comment (Prometheus HELP).
        pub const HELP: &[(&str, &str)] = &[$((stringify!($name), concat!($($doc, " ",)* "")),)*];

        impl Metrics {
            /// Add another shard's counters into these.
            pub fn merge(&mut self, other: &Metrics) {
                $(self.$name += other.$name;)*
            }

            /// `(name, value)` for every counter, for logs and `$SYS`.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// MQTT bytes read from clients (after TLS/WebSocket framing).
    bytes_received,
    /// MQTT bytes written to clients.
    bytes_sent,
    /// Packets received by type (PUBLISH: publish_received).
    packets_received_connect,
    packets_received_puback,
    packets_received_pubrec,
    packets_received_pubrel,
    packets_received_pubcomp,
    packets_received_subscribe,
    packets_received_unsubscribe,
    packets_received_pingreq,
    packets_received_disconnect,
    packets_received_auth,
    /// Packets sent by type (PUBLISH: publish_sent, and publish_resent for
    /// re-sends).
    packets_sent_connack,
    packets_sent_puback,
    packets_sent_pubrec,
    packets_sent_pubrel,
    packets_sent_pubcomp,
    packets_sent_suback,
    packets_sent_unsuback,
    packets_sent_pingresp,
    packets_sent_auth,
    /// Bytes the storage writer appended to the log.
    storage_bytes_written,
    /// fdatasyncs of the log (with fsync = "always", one per group of acks).
    storage_syncs,
    /// Log writes that failed (a full disk, an I/O error); each is retried.
    storage_write_errors,
    /// Online compactions finished.
    storage_compactions,
    /// Bytes of snapshot records online compactions wrote (the part of
    /// `storage_bytes_written` that is rewriting, not new events).
    storage_compaction_bytes,
    /// Records read back from the log at start.
    storage_records_replayed,
    /// Persistent sessions refused because the log could not be written.
    storage_refused_sessions,
    /// Sockets accepted.
    connections_accepted,
    /// Sockets closed at once: the node was at max_connections.
    connections_refused_limit,
    /// Sockets closed at once: their listener's max_connection_rate was
    /// exceeded (beyond connection_rate_burst).
    connections_refused_rate,
    /// TLS handshakes completed.
    tls_handshakes,
    /// TLS handshakes that failed (bad or missing client certificate, no
    /// common version or cipher, not TLS, timeout).
    tls_handshake_failures,
    /// Connections closed on a proxy_protocol listener: no valid PROXY
    /// header in time.
    proxy_header_failures,
    /// Times a connection stopped being read: it sent faster than its
    /// listener's max_inbound_bytes_per_s.
    inbound_rate_pauses,
    /// accept() failed for lack of file descriptors (EMFILE/ENFILE).
    accept_fd_exhausted,
    /// Connections currently open on this shard (a gauge).
    connections_open,
    /// Sockets handed to their client's home shard.
    handoffs_sent,
    /// Sockets received from another shard.
    handoffs_received,
    /// CONNECTs accepted.
    connects_accepted,
    /// CONNECTs refused with a non-zero CONNACK.
    connects_refused,
    /// MQTT 5 enhanced authentications (CONNECT or re-authentication) that
    /// succeeded.
    auth_successes,
    /// MQTT 5 enhanced authentications refused: by the authenticator, or
    /// for a method none offers (CONNACK 0x8C).
    auth_failures,
    /// CONNECTs refused (0x05 / 0x87): no credentials, and the listener's
    /// allow_anonymous does not let the client's address in.
    auth_anonymous_refused,
    /// Logins accepted by a method (certificate identity, client id,
    /// password file, JWT, authenticate hook); MQTT 5 enhanced
    /// authentication counts in auth_successes instead.
    auth_logins,
    /// Logins refused by a method (wrong password, unknown user, bad
    /// token, the hook's refusal or timeout): CONNACK 0x04/0x05/0x03.
    auth_login_failures,
    /// Logins answered from the cache of verified passwords (no hashing).
    auth_cache_hits,
    /// Logins refused 0x03 (0x88) at once: the shard already had its
    /// most password hashes queued (a flood of logins).
    auth_busy_refused,
    /// Logins refused because the authenticate hook took longer than
    /// auth.hook_timeout_ms (also counted in auth_login_failures).
    auth_hook_timeouts,
    /// CONNECTs refused: the will was over max_will_bytes.
    wills_refused,
    /// CONNECTs refused: the shard held its share of max_sessions.
    sessions_refused_limit,
    /// Subscriptions refused (SUBACK 0x80) by max_subscriptions_per_client,
    /// max_topic_levels or max_filter_len.
    subscriptions_refused_limit,
    /// Connections closed for malformed input or a protocol violation (other than size).
    protocol_errors,
    /// Connections closed for control characters (U+0001..U+001F,
    /// U+007F..U+009F) in a topic, filter, client id, user name or will
    /// topic (`strict.control_characters = "reject"`). Not in protocol_errors.
    control_chars_refused,
    /// Connections closed because their transport refused the peer's bytes:
    /// a WebSocket text, unmasked, malformed or oversized frame.
    transport_errors,
    /// WebSocket upgrade requests refused with an HTTP error: not an upgrade,
    /// wrong path, no `mqtt` subprotocol, a request over 8 KiB.
    ws_handshakes_refused,
    /// Connections closed because the packet exceeded max_packet_size.
    packets_too_large,
    /// Connections closed by keepalive expiry.
    keepalive_timeouts,
    /// Keepalive deadlines passed but not acted on: the broker was not
    /// reading from the connection, its bytes waited unread, or the shard was late.
    keepalive_spared,
    /// Times a connection's reading paused: its unsent output reached max_outbox_bytes.
    output_pauses,
    /// Connections closed: unsent output over max_outbox_bytes past output_stall_timeout_s.
    output_stall_closes,
    /// Connections closed: a packet took longer than packet_timeout_s to arrive.
    packet_timeouts,
    /// Connections closed: their incomplete packet would exceed the shard's input budget.
    input_budget_closes,
    /// Bytes held for incomplete packets (a gauge).
    incomplete_bytes,
    /// Sockets closed for not sending CONNECT in time.
    connect_timeouts,
    /// Sessions taken over by a new connection with the same client id.
    takeovers,
    /// Offline persistent sessions discarded after expiry.
    sessions_expired,
    /// Sessions currently held by this shard (a gauge).
    sessions,
    /// PUBLISH packets received from clients.
    publish_received,
    /// Messages delivered to sessions (encoded for sending or queued).
    publish_sent,
    /// PUBLISH re-sent with DUP=1 (retry or reconnect).
    publish_resent,
    /// Duplicate inbound QoS 2 PUBLISH not routed again.
    qos2_duplicates,
    /// Messages dropped by the message.publish hook.
    dropped_by_hook,
    /// QoS 0 messages dropped: the connection's outbox was over max_outbox_bytes.
    dropped_qos0_slow,
    /// QoS 0 messages not queued for an offline session (store_qos0 = false).
    dropped_qos0_offline,
    /// Messages published that no subscription matched (a retained one is
    /// still kept); the broker's own messages are not counted.
    dropped_no_subscribers,
    /// Messages dropped by a full session queue (the configured policy).
    dropped_queue_full,
    /// Queued or inflight messages discarded with an expired or clean session.
    dropped_session_discarded,
    /// Messages not sent because their MQTT 5 Message Expiry Interval had
    /// passed (in a session queue, a retained backlog or the retained store).
    dropped_expired,
    /// Deliveries not sent to an MQTT 5 client: the PUBLISH would exceed the
    /// client's Maximum Packet Size (other subscribers still get it).
    dropped_too_large,
    /// MQTT 5 PUBLISHes not routed: Payload Format Indicator 1 with a payload
    /// that is not UTF-8 (PUBACK/PUBREC 0x99; `strict.payload_format`).
    dropped_payload_format,
    /// Connections closed for a PUBLISH the broker does not take: retained
    /// with `retain_available = false`, or above `maximum_qos`.
    publishes_refused,
    /// PUBLISHes the ACL denied (acknowledged as usual and dropped on
    /// 3.1.1; PUBACK/PUBREC 0x87 on MQTT 5; QoS 0 dropped).
    acl_denied_publish,
    /// SUBSCRIBE filters the ACL denied (SUBACK 0x80; MQTT 5: 0x87).
    acl_denied_subscribe,
    /// Wills the ACL denied when they were due: dropped, not published.
    acl_denied_will,
    /// Subscriptions removed because the ACL in force no longer allows
    /// them: after a reload, or when a session is resumed by a client the
    /// rules treat differently.
    acl_revoked_subscriptions,
    /// Retained messages refused: max_retained reached.
    retained_refused,
    /// Retained messages not sent on subscribe: the session's backlog of
    /// retained messages to send already held max_retained.
    retained_replay_dropped,
    /// Retained messages stored (a gauge, this shard's replica).
    retained,
    /// Wills published.
    wills_published,
    /// Delayed wills not published: the session was taken up within the delay.
    wills_cancelled,
    /// Messages delivered to the chosen member of a shared group (on the member's shard).
    shared_delivered,
    /// Messages a shared-group member held when its session ended, sent to
    /// another member of the group.
    shared_redistributed,
    /// Shared-group messages dropped: the group had no member left (or the
    /// message was chosen again more times than there are shards).
    shared_dropped_no_member,
    /// Batches sent to other shards.
    mailbox_batches_sent,
    /// Messages sent to other shards (the control plane's questions and
    /// answers, `crate::control`, are not counted).
    mailbox_msgs_sent,
    /// Batches that waited in the overflow queue because a mailbox was full.
    mailbox_overflows,
    /// Times a connection stopped reading because mailboxes to other shards were backed up.
    mailbox_backpressure,
}

/// The counters that are gauges (a level now, not a total since start).
pub const GAUGES: &[&str] = &[
    "connections_open",
    "incomplete_bytes",
    "sessions",
    "retained",
];

impl Metrics {
    /// Count a packet received (PUBLISH is counted where it is handled).
    pub fn count_received(&mut self, p: &crate::codec::Packet) {
        use crate::codec::Packet as P;
        let c = match p {
            P::Connect(_) => &mut self.packets_received_connect,
            P::PubAck(_) => &mut self.packets_received_puback,
            P::PubRec(_) => &mut self.packets_received_pubrec,
            P::PubRel(_) => &mut self.packets_received_pubrel,
            P::PubComp(_) => &mut self.packets_received_pubcomp,
            P::Subscribe(_) => &mut self.packets_received_subscribe,
            P::Unsubscribe(_) => &mut self.packets_received_unsubscribe,
            P::PingReq => &mut self.packets_received_pingreq,
            P::Disconnect(_) => &mut self.packets_received_disconnect,
            P::Auth(_) => &mut self.packets_received_auth,
            _ => return,
        };
        *c += 1;
    }

    /// Count a packet sent (PUBLISH is counted where it is encoded).
    pub fn count_sent(&mut self, p: &crate::codec::Packet) {
        use crate::codec::Packet as P;
        let c = match p {
            P::ConnAck(_) => &mut self.packets_sent_connack,
            P::PubAck(_) => &mut self.packets_sent_puback,
            P::PubRec(_) => &mut self.packets_sent_pubrec,
            P::PubRel(_) => &mut self.packets_sent_pubrel,
            P::PubComp(_) => &mut self.packets_sent_pubcomp,
            P::SubAck(_) => &mut self.packets_sent_suback,
            P::UnsubAck(_) => &mut self.packets_sent_unsuback,
            P::PingResp => &mut self.packets_sent_pingresp,
            P::Auth(_) => &mut self.packets_sent_auth,
            _ => return,
        };
        *c += 1;
    }
}

/// Where shards post their counters once a tick.
#[derive(Debug, Default)]
pub struct MetricsBoard {
    slots: Mutex<Vec<Metrics>>,
}

impl MetricsBoard {
    pub fn new(shards: usize) -> Arc<Self> {
        Arc::new(MetricsBoard {
            slots: Mutex::new(vec![Metrics::default(); shards]),
        })
    }

    /// Called by shard `i` with its current counters.
    pub fn post(&self, shard: usize, m: &Metrics) {
        if let Ok(mut slots) = self.slots.lock() {
            if let Some(slot) = slots.get_mut(shard) {
                slot.clone_from(m);
            }
        }
    }

    /// The sum over shards, as of their last post.
    pub fn total(&self) -> Metrics {
        let mut sum = Metrics::default();
        if let Ok(slots) = self.slots.lock() {
            slots.iter().for_each(|m| sum.merge(m));
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_sums_shards() {
        let board = MetricsBoard::new(2);
        let a = Metrics {
            publish_received: 3,
            ..Default::default()
        };
        let b = Metrics {
            publish_received: 4,
            takeovers: 1,
            ..Default::default()
        };
        board.post(0, &a);
        board.post(1, &b);
        board.post(9, &b); // out of range: ignored
        let t = board.total();
        assert_eq!(t.publish_received, 7);
        assert_eq!(t.takeovers, 1);
        assert!(t.pairs().contains(&("publish_received", 7)));
    }
}
