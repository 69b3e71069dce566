//! The log's records: framing with a CRC32C, and the encoding of session
//! events.
//!
//! ```text
//! | len: u32 LE | crc32c(payload): u32 LE | payload (len bytes): tag u8, fields |
//! ```
//! Sessions are named by the key they had when the record was written (a
//! `u64`); a session's snapshot (written by compaction) starts with its
//! `Created` record, which replaces whatever the replay held under that
//! key. A message queued for several sessions is written once per segment
//! (a [`TAG_MESSAGE`] record) and referred to by its 128-bit id. Integers
//! are little-endian; strings carry a `u16` length, payloads a `u32` one.
//!
//! Owns the [`Encoder`] (the journal's log side: which sessions are durable,
//! the bytes not yet written) and the [`Frames`] reader. Called by the
//! journal (`crate::session::event`), the writer and the replay.

use crate::codec::{read_message_properties, write_message_properties, QoS};
use crate::message::{Message, MsgId};
use crate::session::event::SessionEvent;
use crate::session::{Delivery, Expiry};
use crate::slab::SessionKey;
use ahash::{AHashMap, AHashSet};
use bytes::Bytes;
use std::sync::Arc;

/// Message bodies remembered as written (then forgotten all at once, and
/// written again when next referred to): a fan-out's deliveries to many
/// sessions come together, so a small set shares one body among them and
/// the set never grows with the segment.
const REMEMBERED_BODIES: usize = 4096;

/// Bytes of a record's header.
pub const HEADER: usize = 8;
/// The largest payload a record may have (a message of 256 MB and its topic).
pub const MAX_PAYLOAD: usize = 300 << 20;

pub const TAG_CREATED: u8 = 1;
pub const TAG_RESUMED: u8 = 2;
pub const TAG_EXPIRY_SET: u8 = 3;
pub const TAG_DISCARDED: u8 = 4;
pub const TAG_EXPIRED: u8 = 5;
pub const TAG_SUBSCRIBED: u8 = 6;
pub const TAG_UNSUBSCRIBED: u8 = 7;
pub const TAG_QUEUED: u8 = 8;
pub const TAG_WINDOWED: u8 = 9;
pub const TAG_SENT: u8 = 10;
pub const TAG_UNQUEUED: u8 = 11;
pub const TAG_ACKED: u8 = 12;
pub const TAG_PUBREC: u8 = 13;
pub const TAG_PUBREL_AWAITED: u8 = 14;
pub const TAG_PUBREL_RECEIVED: u8 = 15;
pub const TAG_RETAINED_SET: u8 = 16;
pub const TAG_RETAINED_CLEARED: u8 = 17;
pub const TAG_MESSAGE: u8 = 18;
pub const TAG_OFFLINE: u8 = 19;
/// Wall-clock time of a write (ms): sessions online at a crash went offline then.
pub const TAG_TICK: u8 = 20;

/// Encodes durable events into the bytes the writer appends. See the module doc.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Sessions whose events are written (they outlive their connection).
    durable: AHashSet<SessionKey>,
    /// Messages whose body is in the current segment already (at most
    /// [`REMEMBERED_BODIES`]).
    written: AHashSet<MsgId>,
    /// When each offline durable session went offline (wall clock, ms).
    offline: AHashMap<SessionKey, u64>,
    buf: Vec<u8>,
    /// Bytes encoded since the start (the writer's durable position
    /// compares with it).
    appended: u64,
}

impl Encoder {
    pub fn is_durable(&self, sk: SessionKey) -> bool {
        self.durable.contains(&sk)
    }

    pub fn make_durable(&mut self, sk: SessionKey) {
        self.durable.insert(sk);
    }

    pub fn forget(&mut self, sk: SessionKey) {
        self.durable.remove(&sk);
        self.offline.remove(&sk);
    }

    /// When offline session `sk` went offline (wall clock, ms).
    pub fn offline_at(&self, sk: SessionKey) -> Option<u64> {
        self.offline.get(&sk).copied()
    }

    /// Set when `sk` went offline (a replayed session).
    pub fn set_offline(&mut self, sk: SessionKey, at_ms: u64) {
        self.offline.insert(sk, at_ms);
    }

    /// The durable sessions, for a snapshot.
    pub fn durable_keys(&self) -> Vec<SessionKey> {
        self.durable.iter().copied().collect()
    }

    /// Durable sessions now.
    pub fn durable_sessions(&self) -> usize {
        self.durable.len()
    }

    /// Bytes encoded since the start.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Bytes encoded and not yet taken by the writer.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Take the encoded bytes (the writer appends them).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// A new segment starts: message bodies are written again when referred to.
    pub fn new_segment(&mut self) {
        self.written.clear();
    }

    /// A clock record: what the log knew of the time when it was written.
    pub fn tick(&mut self, unix_ms: u64) {
        self.record(|b| {
            b.push(TAG_TICK);
            put_u64(b, unix_ms);
        });
    }

    /// Encode one event (the caller decided it is durable).
    pub fn encode(&mut self, ev: &SessionEvent) {
        match ev {
            SessionEvent::Offline { session, at_ms } => {
                self.offline.insert(*session, *at_ms);
            }
            SessionEvent::Resumed { session, .. } => {
                self.offline.remove(session);
            }
            SessionEvent::Queued { delivery, .. } | SessionEvent::Windowed { delivery, .. } => {
                self.message_body(&delivery.msg);
            }
            _ => {}
        }
        self.record(|b| encode_event(b, ev));
    }

    /// Write `msg`'s body unless the current segment has it.
    fn message_body(&mut self, msg: &Arc<Message>) {
        if self.written.len() >= REMEMBERED_BODIES {
            self.written.clear();
        }
        if self.written.insert(msg.id) {
            self.record(|b| {
                b.push(TAG_MESSAGE);
                put_message(b, msg);
            });
        }
    }

    /// Frame one record built by `fill`.
    fn record(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        fill(&mut self.buf);
        let len = self.buf.len() - start - HEADER;
        let crc = crc32c::crc32c(&self.buf[start + HEADER..]);
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.appended += (len + HEADER) as u64;
    }
}

fn encode_event(b: &mut Vec<u8>, ev: &SessionEvent) {
    let sid = |b: &mut Vec<u8>, tag: u8, sk: &SessionKey| {
        b.push(tag);
        put_u64(b, sk.to_raw());
    };
    match ev {
        SessionEvent::Created {
            session,
            client_id,
            expiry,
        } => {
            sid(b, TAG_CREATED, session);
            put_expiry(b, *expiry);
            put_str(b, client_id);
        }
        SessionEvent::Resumed { session, expiry } => {
            sid(b, TAG_RESUMED, session);
            put_expiry(b, *expiry);
        }
        SessionEvent::ExpirySet { session, expiry } => {
            sid(b, TAG_EXPIRY_SET, session);
            put_expiry(b, *expiry);
        }
        SessionEvent::Discarded { session } => sid(b, TAG_DISCARDED, session),
        SessionEvent::Expired { session } => sid(b, TAG_EXPIRED, session),
        SessionEvent::Subscribed {
            session,
            filter,
            opts,
        } => {
            sid(b, TAG_SUBSCRIBED, session);
            put_u32(b, opts.bits());
            put_str(b, filter);
        }
        SessionEvent::Unsubscribed { session, filter } => {
            sid(b, TAG_UNSUBSCRIBED, session);
            put_str(b, filter);
        }
        SessionEvent::Queued {
            session,
            delivery,
            qos,
            share,
        } => {
            sid(b, TAG_QUEUED, session);
            put_delivery(b, delivery, *qos, share.as_deref());
        }
        SessionEvent::Windowed {
            session,
            delivery,
            qos,
            pkid,
            share,
        } => {
            sid(b, TAG_WINDOWED, session);
            put_u16(b, *pkid);
            put_delivery(b, delivery, *qos, share.as_deref());
        }
        SessionEvent::Sent { session, pkid } => {
            sid(b, TAG_SENT, session);
            put_u16(b, *pkid);
        }
        SessionEvent::Unqueued { session } => sid(b, TAG_UNQUEUED, session),
        SessionEvent::Acked { session, pkid } => {
            sid(b, TAG_ACKED, session);
            put_u16(b, *pkid);
        }
        SessionEvent::PubRecReceived { session, pkid } => {
            sid(b, TAG_PUBREC, session);
            put_u16(b, *pkid);
        }
        SessionEvent::PubRelAwaited { session, pkid } => {
            sid(b, TAG_PUBREL_AWAITED, session);
            put_u16(b, *pkid);
        }
        SessionEvent::PubRelReceived { session, pkid } => {
            sid(b, TAG_PUBREL_RECEIVED, session);
            put_u16(b, *pkid);
        }
        SessionEvent::Offline { session, at_ms } => {
            sid(b, TAG_OFFLINE, session);
            put_u64(b, *at_ms);
        }
        SessionEvent::RetainedSet { msg } => {
            b.push(TAG_RETAINED_SET);
            put_message(b, msg);
        }
        SessionEvent::RetainedCleared { msg } => {
            b.push(TAG_RETAINED_CLEARED);
            put_message(b, msg);
        }
    }
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// A string of at most 65535 bytes (topics and client ids are, by MQTT).
fn put_str(b: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    put_u16(b, bytes.len() as u16);
    b.extend_from_slice(bytes);
}

fn put_expiry(b: &mut Vec<u8>, e: Expiry) {
    match e {
        Expiry::OnDisconnect => b.push(0),
        Expiry::AfterSecs(s) => {
            b.push(1);
            put_u32(b, s);
        }
    }
}

fn put_delivery(b: &mut Vec<u8>, d: &Delivery, qos: QoS, share: Option<&str>) {
    b.extend_from_slice(&d.msg.id.0.to_le_bytes());
    b.push(qos as u8);
    b.push(u8::from(d.retain));
    put_str(b, share.unwrap_or(""));
    let ids = d.ids();
    b.push(ids.len().min(255) as u8);
    for id in ids.iter().take(255) {
        put_u32(b, *id);
    }
}

fn put_message(b: &mut Vec<u8>, m: &Message) {
    b.extend_from_slice(&m.id.0.to_le_bytes());
    b.push(m.qos as u8);
    b.push(u8::from(m.retain));
    put_str(b, &m.topic);
    put_str(b, &m.from);
    let mut props = Vec::new();
    if m.props.is_some() {
        write_message_properties(&mut props, m.props.as_deref());
    }
    put_u32(b, props.len() as u32);
    b.extend_from_slice(&props);
    put_u32(b, m.payload.len() as u32);
    b.extend_from_slice(&m.payload);
}

/// A record that cannot be read: its checksum, length or fields are wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub &'static str);

/// Reads framed records from a segment's bytes.
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// What the next frame is.
pub enum Frame<'a> {
    Record(&'a [u8]),
    /// The clean end: no more bytes, or only the zero padding a sync leaves.
    End,
    /// A torn or corrupt record at this offset.
    Damaged(usize, &'static str),
}

impl<'a> Frames<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Frames { buf, pos: 0 }
    }

    /// Offset of the next frame.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn next_frame(&mut self) -> Frame<'a> {
        let rest = &self.buf[self.pos..];
        if rest.iter().all(|&b| b == 0) {
            return Frame::End;
        }
        if rest.len() < HEADER {
            return Frame::Damaged(self.pos, "a record header cut short");
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len > MAX_PAYLOAD {
            return Frame::Damaged(self.pos, "a record length out of range");
        }
        let Some(payload) = rest.get(HEADER..HEADER + len) else {
            return Frame::Damaged(self.pos, "a record cut short");
        };
        if crc32c::crc32c(payload) != crc {
            return Frame::Damaged(self.pos, "a record whose checksum does not match");
        }
        self.pos += HEADER + len;
        Frame::Record(payload)
    }
}

/// Reads a record's fields.
pub struct Fields<'a> {
    b: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Fields { b }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if self.b.len() < n {
            return Err(Bad("a record shorter than its fields"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, Bad> {
        let t = self.take(2)?;
        Ok(u16::from_le_bytes([t[0], t[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, Bad> {
        let t = self.take(4)?;
        Ok(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, Bad> {
        let t = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(t);
        Ok(u64::from_le_bytes(a))
    }
    pub fn u128(&mut self) -> Result<u128, Bad> {
        let t = self.take(16)?;
        let mut a = [0; 16];
        a.copy_from_slice(t);
        Ok(u128::from_le_bytes(a))
    }
    pub fn str(&mut self) -> Result<Arc<str>, Bad> {
        let n = self.u16()? as usize;
        let t = self.take(n)?;
        std::str::from_utf8(t)
            .map(Arc::from)
            .map_err(|_| Bad("a string that is not UTF-8"))
    }
    pub fn qos(&mut self) -> Result<QoS, Bad> {
        QoS::from_u8(self.u8()?).ok_or(Bad("a QoS over 2"))
    }
    pub fn bool(&mut self) -> Result<bool, Bad> {
        Ok(self.u8()? != 0)
    }
    pub fn expiry(&mut self) -> Result<Expiry, Bad> {
        match self.u8()? {
            0 => Ok(Expiry::OnDisconnect),
            1 => Ok(Expiry::AfterSecs(self.u32()?)),
            _ => Err(Bad("an unknown expiry kind")),
        }
    }

    /// A message body as [`put_message`] wrote it.
    pub fn message(&mut self) -> Result<Message, Bad> {
        let id = MsgId(self.u128()?);
        let qos = self.qos()?;
        let retain = self.bool()?;
        let topic = self.str()?;
        let from = self.str()?;
        let plen = self.u32()? as usize;
        let props = match plen {
            0 => None,
            n => {
                let raw = Bytes::copy_from_slice(self.take(n)?);
                read_message_properties(&raw).map_err(|_| Bad("malformed message properties"))?
            }
        };
        let n = self.u32()? as usize;
        let payload = Bytes::copy_from_slice(self.take(n)?);
        Ok(Message {
            id,
            topic,
            payload,
            qos,
            retain,
            from,
            props,
        })
    }

    /// A delivery's fields: message id, QoS, RETAIN, share, identifiers.
    pub fn delivery(&mut self) -> Result<DeliveryRef, Bad> {
        let msg = MsgId(self.u128()?);
        let qos = self.qos()?;
        let retain = self.bool()?;
        let share = self.str()?;
        let n = self.u8()? as usize;
        let mut ids = smallvec::SmallVec::new();
        for _ in 0..n {
            ids.push(self.u32()?);
        }
        Ok(DeliveryRef {
            msg,
            qos,
            retain,
            share: (!share.is_empty()).then_some(share),
            ids,
        })
    }
}

/// A delivery as a record names it: the message by id.
#[derive(Debug)]
pub struct DeliveryRef {
    pub msg: MsgId,
    pub qos: QoS,
    pub retain: bool,
    pub share: Option<Arc<str>>,
    pub ids: smallvec::SmallVec<[u32; 4]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_find_the_end_and_damage() {
        let mut e = Encoder::default();
        e.tick(5);
        e.tick(6);
        let mut bytes = e.take();
        let whole = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        let mut f = Frames::new(&bytes);
        assert!(matches!(f.next_frame(), Frame::Record(_)));
        assert!(matches!(f.next_frame(), Frame::Record(_)));
        assert!(matches!(f.next_frame(), Frame::End));
        // A flipped byte in the second record's payload.
        bytes[whole - 1] ^= 1;
        let mut f = Frames::new(&bytes);
        assert!(matches!(f.next_frame(), Frame::Record(_)));
        assert!(matches!(f.next_frame(), Frame::Damaged(17, _)));
        // Cut inside the second record.
        let mut f = Frames::new(&bytes[..whole - 3]);
        f.next_frame();
        assert!(matches!(f.next_frame(), Frame::Damaged(17, _)));
    }

    #[test]
    fn a_message_reads_back() {
        let props = crate::codec::Properties {
            content_type: Some("text/plain".into()),
            message_expiry_interval: Some(30),
            ..Default::default()
        };
        let m = Message {
            id: MsgId(0x1234_5678_9abc_def0_1122_3344_5566_7788),
            topic: "a/b".into(),
            payload: Bytes::from_static(b"payload"),
            qos: QoS::ExactlyOnce,
            retain: true,
            from: "client".into(),
            props: Some(Box::new(props)),
        };
        let mut b = Vec::new();
        put_message(&mut b, &m);
        let back = Fields::new(&b).message().unwrap();
        assert_eq!(back.id, m.id);
        assert_eq!(&*back.topic, "a/b");
        assert_eq!(back.payload, m.payload);
        assert_eq!(back.qos, QoS::ExactlyOnce);
        assert!(back.retain);
        assert_eq!(back.props, m.props);
        assert!(Fields::new(&b[..b.len() - 1]).message().is_err());
    }
}
