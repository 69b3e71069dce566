//! The routed message and its globally unique, time-ordered 128-bit id.
//!
//! A [`Message`] is built once by the publishing client's session and shared
//! (`Arc`) by every receiving shard and session: the payload is never copied
//! per subscriber. Ids come from a per-shard [`MsgIdGen`], owned by that
//! shard, so no atomic is touched per message. [`compact`] is the rule for a
//! payload kept long-term (the retained store): it must not pin a larger buffer.
//!
//! A message from an MQTT 5 publisher (or an MQTT 5 will) carries the
//! properties forwarded to MQTT 5 subscribers ([`forwarded`] keeps them);
//! its Message Expiry Interval runs from the receive time in its id
//! ([`Message::expired`], [`Message::expiry_left_s`]) [MQTT-3.3.2-5/6].
//!
//! ```text
//! |<------ 64 bits ------>|<- 16 ->|<- 16 ->|<-- 32 bits -->|
//! |  timestamp (µs, UNIX) |  node  | shard  |   sequence    |
//! ```
//! Ids from one shard are strictly increasing; ids compare by time first.

use crate::codec::{Properties, QoS};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A 128-bit message id; see the module docs for the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(pub u128);

impl MsgId {
    /// Microseconds since the UNIX epoch when the id was made.
    pub fn timestamp_us(self) -> u64 {
        (self.0 >> 64) as u64
    }
    /// The node id field.
    pub fn node(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// The shard id field.
    pub fn shard(self) -> u16 {
        (self.0 >> 32) as u16
    }
}

/// Makes ids for one shard: strictly increasing even if the clock steps back.
#[derive(Debug)]
pub struct MsgIdGen {
    node: u16,
    shard: u16,
    last_us: u64,
    seq: u32,
}

impl MsgIdGen {
    pub fn new(node: u16, shard: u16) -> Self {
        MsgIdGen {
            node,
            shard,
            last_us: 0,
            seq: 0,
        }
    }

    /// Make every later id newer than `id` (read back at start: ids stay
    /// unique across restarts even if the clock stepped back meanwhile).
    pub fn advance_past(&mut self, id: MsgId) {
        self.last_us = self.last_us.max(id.timestamp_us());
        self.seq = u32::MAX;
    }

    /// The next id.
    pub fn next_id(&mut self) -> MsgId {
        let now = wall_clock_us();
        if now > self.last_us {
            self.last_us = now;
            self.seq = 0;
        } else if self.seq == u32::MAX {
            self.last_us += 1;
            self.seq = 0;
        } else {
            self.seq += 1;
        }
        MsgId(
            (u128::from(self.last_us) << 64)
                | (u128::from(self.node) << 48)
                | (u128::from(self.shard) << 32)
                | u128::from(self.seq),
        )
    }
}

/// One published message, as routed. Shared by all its receivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique, time-ordered id (end-to-end tracing, retained versioning).
    pub id: MsgId,
    pub topic: Arc<str>,
    /// Zero-copy slice of the publisher's read buffer.
    pub payload: Bytes,
    /// QoS it was published with; each delivery is min(this, subscription).
    pub qos: QoS,
    /// The RETAIN flag as published.
    pub retain: bool,
    /// Client id of the publisher (empty for the broker's own messages).
    pub from: Arc<str>,
    /// The publisher's properties forwarded to MQTT 5 subscribers (Payload
    /// Format Indicator, Message Expiry Interval, Content Type, Response
    /// Topic, Correlation Data, User Properties): None for a 3.1.1
    /// publisher and for an MQTT 5 one that sent none. See [`forwarded`].
    pub props: Option<Box<Properties>>,
}

impl Message {
    /// Bytes it holds beyond its fixed size, as the byte limits count them:
    /// topic, payload and MQTT 5 properties.
    pub fn held_bytes(&self) -> usize {
        self.topic.len()
            + self.payload.len()
            + crate::codec::held_properties_len(self.props.as_deref())
    }

    /// The Message Expiry Interval (s) it was published with; None when it
    /// does not expire. An interval of 0 is taken as none (as Mosquitto does).
    pub fn expiry_interval_s(&self) -> Option<u32> {
        self.props
            .as_deref()?
            .message_expiry_interval
            .filter(|&s| s > 0)
    }

    /// Whether its expiry interval has passed at `now_us` (UNIX µs): such a
    /// message is no longer sent [MQTT-3.3.2-5].
    pub fn expired(&self, now_us: u64) -> bool {
        self.expiry_interval_s().is_some_and(|s| {
            now_us.saturating_sub(self.id.timestamp_us()) >= u64::from(s) * 1_000_000
        })
    }

    /// The expiry interval left at `now_us`, in whole seconds rounded up and
    /// at least 1 (what a forwarded copy carries [MQTT-3.3.2-6]); None when
    /// it does not expire.
    pub fn expiry_left_s(&self, now_us: u64) -> Option<u32> {
        let total_us = u64::from(self.expiry_interval_s()?) * 1_000_000;
        let elapsed = now_us.saturating_sub(self.id.timestamp_us());
        let left_s = total_us.saturating_sub(elapsed).div_ceil(1_000_000);
        Some(u32::try_from(left_s).unwrap_or(u32::MAX).max(1))
    }
}

/// The properties of an MQTT 5 PUBLISH (or will) that travel with its
/// message: everything but the Topic Alias, the Subscription Identifiers
/// (per connection and per delivery) and the Will Delay Interval. None when
/// nothing is left, so such a message costs what a 3.1.1 one does.
pub fn forwarded(props: Option<Box<Properties>>) -> Option<Box<Properties>> {
    let mut p = props?;
    p.topic_alias = None;
    p.subscription_identifiers = Vec::new();
    p.will_delay_interval = None;
    (*p != Properties::default()).then_some(p)
}

/// The wall clock in UNIX µs (message ids and expiry use it).
pub fn wall_clock_us() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now + test_clock::skew_us()
}

/// Harness tests move the wall clock forward with their shard clock.
#[cfg(test)]
pub(crate) mod test_clock {
    use std::cell::Cell;

    thread_local! {
        static SKEW_US: Cell<u64> = const { Cell::new(0) };
    }

    /// Added to this thread's wall clock.
    pub fn skew_us() -> u64 {
        SKEW_US.with(Cell::get)
    }

    /// Move this thread's wall clock forward by `ms`.
    pub fn advance_ms(ms: u64) {
        SKEW_US.with(|s| s.set(s.get() + ms * 1000));
    }
}

#[cfg(not(test))]
mod test_clock {
    #[inline(always)]
    pub fn skew_us() -> u64 {
        0
    }
}

/// Payloads shorter than this are copied by [`compact`].
pub(crate) const COMPACT_BELOW: usize = 4096;

/// The payload to keep long-term, so that it does not keep a larger buffer alive.
///
/// A payload is a slice of the publisher's read buffer, and holding the slice holds the
/// whole buffer: a 10-byte payload read together with 60 KB of other packets keeps all
/// of it. `Bytes` does not tell how large that buffer is, so the rule goes by length: a
/// payload under [`COMPACT_BELOW`] bytes is copied into an allocation of its own (cheap
/// at that size); a longer one is kept as it is, sharing its buffer, which then holds at
/// most the packets of the same read beside it.
pub(crate) fn compact(payload: Bytes) -> Bytes {
    if payload.len() < COMPACT_BELOW {
        Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids read back from the log at start: every new id is newer, even
    /// one from a clock behind them (a restart after the clock stepped back).
    #[test]
    fn ids_after_a_restart_are_newer_than_those_read_back() {
        let future = MsgId((u128::from(wall_clock_us() + 60_000_000) << 64) | 5);
        let mut ids = MsgIdGen::new(0, 0);
        ids.advance_past(future);
        let a = ids.next_id();
        let b = ids.next_id();
        assert!(a > future && b > a, "{a:?} {b:?} after {future:?}");
    }

    #[test]
    fn compact_copies_small_payloads_only() {
        let buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let small = buffer.slice(100..110);
        let kept = compact(small.clone());
        assert_eq!(kept, small);
        assert!(!buffer.as_ptr_range().contains(&kept.as_ptr()));
        let large = buffer.slice(..COMPACT_BELOW);
        let kept = compact(large.clone());
        assert_eq!(
            kept.as_ptr(),
            large.as_ptr(),
            "a large payload is not copied"
        );
    }

    #[test]
    fn ids_increase_and_carry_fields() {
        let mut g = MsgIdGen::new(7, 3);
        let mut last = g.next_id();
        for _ in 0..10_000 {
            let id = g.next_id();
            assert!(id > last);
            assert_eq!(id.node(), 7);
            assert_eq!(id.shard(), 3);
            last = id;
        }
        assert!(last.timestamp_us() > 1_600_000_000_000_000);
    }

    #[test]
    fn two_shards_never_collide() {
        let mut a = MsgIdGen::new(1, 0);
        let mut b = MsgIdGen::new(1, 1);
        let ids: std::collections::HashSet<_> =
            (0..1000).flat_map(|_| [a.next_id(), b.next_id()]).collect();
        assert_eq!(ids.len(), 2000);
    }
}
