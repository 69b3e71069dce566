//! The connections part: what the shard keeps per open socket.
//!
//! Owns one [`Conn`] per socket (the socket itself belongs to its connection
//! task, `crate::conn`): the outbox of encoded packets not yet written, the
//! task's waker, the keepalive clock, the acknowledgements held behind
//! barriers, and the connection's [`Phase`]. Also owns the list of readers
//! paused by mailbox backpressure and the MQTT 5 authentication exchanges in
//! progress (`protocol/auth.rs` drives them). The protocol handlers reach a connection
//! by its typed [`ConnKey`]; only [`Phase::Connected`] links it to a session,
//! and that link is made and broken in one place (`protocol/connect.rs`).

pub use super::aliases::AliasError;
pub use super::conn5::ConnV5;
use crate::acl::cache::DecisionCache;
use crate::auth::AuthExchange;
use crate::codec::{self, Connect, DecodeError, Disconnect, Packet, ProtocolVersion, QoS, Reason};
use crate::hooks::ClientInfo;
use crate::message::Message;
use crate::peer::PeerAddr;
use crate::slab::{ConnKey, ConnTag, SessionKey, Slab};
use crate::transport::Origin;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;

/// The unit of a connection's last-seen time: the timer wheel's resolution
/// (keepalive is judged no finer), small enough to keep `Conn` compact.
pub const SEEN_UNIT_MS: u64 = super::timers::TICK_MS;

/// `now_ms` in [`SEEN_UNIT_MS`] units, rounded up: a deadline computed from
/// it is never earlier than 1.5 × keepalive after the bytes [MQTT-3.1.2-24].
fn seen_units(now_ms: u64) -> u32 {
    u32::try_from(now_ms.div_ceil(SEEN_UNIT_MS)).unwrap_or(u32::MAX)
}

/// Why a connection is being closed; decides whether the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT: no will.
    Normal,
    /// The peer closed the socket or a socket error.
    SocketClosed,
    /// Malformed packet or protocol violation.
    ProtocolError,
    /// Silent for 1.5× its keepalive.
    KeepaliveTimeout,
    /// No CONNECT within connect_timeout_s.
    ConnectTimeout,
    /// Another connection took over the client id.
    Takeover,
    /// CONNACK with a refusal code was sent.
    Refused,
    /// The broker is stopping.
    Shutdown,
    /// The socket went to the client's home shard.
    HandedOff,
    /// Its unsent output stayed over `max_outbox_bytes` past `output_stall_timeout_s`.
    OutputStalled,
    /// A packet did not arrive completely within `packet_timeout_s`.
    PacketTimeout,
    /// Its incomplete packet would take the shard over its share of
    /// `max_incomplete_bytes`.
    InputBudget,
    /// A packet that is not well formed (MQTT 5: DISCONNECT 0x81).
    Malformed,
    /// A PUBLISH topic name that is not valid (0x90).
    TopicNameInvalid,
    /// A packet over the broker's maximum packet size (0x95).
    PacketTooLarge,
    /// More unanswered QoS 1/2 PUBLISHes than the broker's Receive Maximum (0x93).
    ReceiveMaximumExceeded,
    /// A topic alias of 0 or over the broker's Topic Alias Maximum (0x94).
    TopicAliasInvalid,
    /// A retained PUBLISH while `retain_available` is off (0x9A).
    RetainNotSupported,
    /// A PUBLISH above `maximum_qos` (0x9B).
    QosNotSupported,
    /// The client sent DISCONNECT with a reason other than success (MQTT 5):
    /// its will is published.
    ClientError,
    /// An operator closed it through the API (MQTT 5: DISCONNECT 0x98).
    Kicked,
    /// Re-authentication failed (MQTT 5 enhanced authentication): DISCONNECT
    /// with the authenticator's reason [MQTT-4.12.1-2].
    AuthFailed(Reason),
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::SocketClosed => "socket_closed",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::Takeover => "takeover",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::HandedOff => "handed_off",
            CloseReason::OutputStalled => "output_stalled",
            CloseReason::PacketTimeout => "packet_timeout",
            CloseReason::InputBudget => "input_budget",
            CloseReason::Malformed => "malformed",
            CloseReason::TopicNameInvalid => "topic_name_invalid",
            CloseReason::PacketTooLarge => "packet_too_large",
            CloseReason::ReceiveMaximumExceeded => "receive_maximum_exceeded",
            CloseReason::TopicAliasInvalid => "topic_alias_invalid",
            CloseReason::RetainNotSupported => "retain_not_supported",
            CloseReason::QosNotSupported => "qos_not_supported",
            CloseReason::ClientError => "client_error",
            CloseReason::AuthFailed(_) => "auth_failed",
            CloseReason::Kicked => "kicked",
        }
    }

    /// The reason of the DISCONNECT an MQTT 5 client is sent before the
    /// close, if it gets one: none when the client ended it, when the socket
    /// is gone or moved, and when a CONNACK already said why.
    pub fn v5_reason(self) -> Option<Reason> {
        let r = match self {
            CloseReason::Normal
            | CloseReason::ClientError
            | CloseReason::SocketClosed
            | CloseReason::Refused
            | CloseReason::HandedOff
            | CloseReason::ConnectTimeout => return None,
            CloseReason::ProtocolError => Reason::PROTOCOL_ERROR,
            CloseReason::KeepaliveTimeout | CloseReason::PacketTimeout => {
                Reason::KEEP_ALIVE_TIMEOUT
            }
            CloseReason::Takeover => Reason::SESSION_TAKEN_OVER,
            CloseReason::Shutdown => Reason::SERVER_SHUTTING_DOWN,
            CloseReason::OutputStalled | CloseReason::InputBudget => Reason::QUOTA_EXCEEDED,
            CloseReason::Malformed => Reason::MALFORMED_PACKET,
            CloseReason::TopicNameInvalid => Reason::TOPIC_NAME_INVALID,
            CloseReason::PacketTooLarge => Reason::PACKET_TOO_LARGE,
            CloseReason::ReceiveMaximumExceeded => Reason::RECEIVE_MAXIMUM_EXCEEDED,
            CloseReason::TopicAliasInvalid => Reason::TOPIC_ALIAS_INVALID,
            CloseReason::RetainNotSupported => Reason::RETAIN_NOT_SUPPORTED,
            CloseReason::QosNotSupported => Reason::QOS_NOT_SUPPORTED,
            CloseReason::AuthFailed(r) => r,
            CloseReason::Kicked => Reason::ADMINISTRATIVE_ACTION,
        };
        Some(r)
    }

    /// The close for a packet that could not be decoded, by its MQTT 5 reason.
    pub fn for_decode_error(e: &DecodeError) -> CloseReason {
        match e.reason() {
            Reason::PACKET_TOO_LARGE => CloseReason::PacketTooLarge,
            Reason::MALFORMED_PACKET => CloseReason::Malformed,
            Reason::TOPIC_NAME_INVALID => CloseReason::TopicNameInvalid,
            Reason::TOPIC_ALIAS_INVALID => CloseReason::TopicAliasInvalid,
            _ => CloseReason::ProtocolError,
        }
    }
}

/// Where a connection is in its life: the one source of truth for
/// "connected" and for the session it serves.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Accepted; the first packet must be CONNECT.
    AwaitingConnect,
    /// An MQTT 5 CONNECT with an Authentication Method, held while its
    /// exchange runs (`protocol/auth.rs`): only AUTH and DISCONNECT are
    /// accepted, and the connect timeout still runs.
    Authenticating(Box<Connect>),
    /// A CONNECT whose login is checked off the reactor (a password hash,
    /// the authenticate hook: `protocol/login.rs`), with the packets that
    /// came after it; the connect timeout still runs.
    Verifying(Box<crate::auth::check::Pending>),
    /// CONNECT accepted: serving this session for this client.
    Connected {
        session: SessionKey,
        info: Rc<ClientInfo>,
    },
    /// Being closed: the session (if any) is already detached.
    Closing(CloseReason),
}

/// An acknowledgement waiting for its barrier (`barrier` != 0) or queued
/// behind one (0), with what must follow it.
#[derive(Debug)]
pub struct HeldAck {
    pub barrier: u64,
    pub packet: Packet,
    /// Retained messages for the subscriptions of a SUBACK, delivered right
    /// after it (empty, with no allocation, for every other ack).
    pub then_retained: Vec<crate::session::RetainedSend>,
}

/// What the shard keeps per open socket.
#[derive(Debug)]
pub struct Conn {
    /// Encoded packets not yet written (from `out_pos`); freed once written.
    outbox: Vec<u8>,
    /// Bytes of `outbox` already written.
    out_pos: u32,
    /// The connection task, woken when the outbox fills or a close is asked.
    waker: Option<Waker>,
    phase: Phase,
    /// Listed in [`Connections::paused`] (each connection once).
    paused: bool,
    /// Reading is paused because the unsent output is over its limit.
    stalled: bool,
    /// Numbers each stall, so a stall timer fires only for its own stall.
    stall_epoch: u8,
    /// Shard clock of the last bytes received, in [`SEEN_UNIT_MS`] units
    /// (a `u32` of them spans 13 years): keepalive.
    last_seen: u32,
    /// Keepalive in seconds from CONNECT; 0 disables.
    keepalive_s: u16,
    /// The first keepalive check waits for the connect timer, which fires
    /// before the keepalive can be due: one timer entry per connection,
    /// not two.
    keepalive_deferred: bool,
    /// Bytes the connection task holds for an incomplete packet (counted
    /// against the shard's share of `max_incomplete_bytes`).
    input_held: u32,
    /// Shard clock (s) + 1 when the incomplete packet began; 0: none.
    partial_since: u32,
    /// The socket's descriptor, to ask the kernel whether unread bytes wait
    /// (keepalive); -1 when there is none (tests).
    fd: RawFd,
    /// What few connections have (held acks, MQTT 5 state, an ACL cache,
    /// a certificate identity): one word while it has none of them.
    extras: Option<Box<Extras>>,
    peer: PeerAddr,
    /// The protocol version packets are decoded and encoded for: 3.1.1
    /// until CONNECT is handled, then the CONNECT's.
    version: ProtocolVersion,
    /// Index of the listener the connection came in on.
    listener: u16,
}

/// A connection's rarer state, boxed together (`Conn::extras`) and freed
/// once it holds nothing.
#[derive(Debug, Default)]
struct Extras {
    /// Acks waiting for a barrier or queued behind one, in packet order.
    held_acks: VecDeque<HeldAck>,
    /// What an MQTT 5 client asked of the broker (None before MQTT 5).
    v5: Option<Box<ConnV5>>,
    /// Recent ACL publish decisions (absent until it publishes under an
    /// active ACL; `crate::acl::cache`).
    acl_cache: Option<Box<DecisionCache>>,
    /// What a TLS client certificate proved (None without one).
    identity: Option<Box<str>>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.held_acks.is_empty()
            && self.v5.is_none()
            && self.acl_cache.is_none()
            && self.identity.is_none()
    }
}

impl Conn {
    /// The extras, made on first use.
    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Default::default)
    }

    fn v5_ref(&self) -> Option<&ConnV5> {
        self.extras.as_ref()?.v5.as_deref()
    }

    pub fn peer(&self) -> PeerAddr {
        self.peer
    }

    /// Where the connection came in (listener index, certificate identity).
    pub fn origin(&self) -> Origin {
        Origin {
            listener: self.listener,
            identity: self.extras.as_ref().and_then(|e| e.identity.clone()),
        }
    }

    /// Index of the listener the connection came in on (in `cfg.listener`).
    pub fn listener(&self) -> usize {
        usize::from(self.listener)
    }

    /// The identity a verified TLS client certificate gave, if any.
    pub fn identity(&self) -> Option<&str> {
        self.extras.as_ref()?.identity.as_deref()
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The protocol version the connection speaks.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Set from the CONNECT being handled.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// The session this connection serves, while connected.
    pub fn session(&self) -> Option<SessionKey> {
        match self.phase {
            Phase::Connected { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Whether its CONNECT has not been answered yet (none came, or it is
    /// held while authenticating): the connect timeout applies.
    pub fn awaiting_connack(&self) -> bool {
        matches!(
            self.phase,
            Phase::AwaitingConnect | Phase::Authenticating(_) | Phase::Verifying(_)
        )
    }

    /// Who the client is, while connected.
    pub fn info(&self) -> Option<&Rc<ClientInfo>> {
        match &self.phase {
            Phase::Connected { info, .. } => Some(info),
            _ => None,
        }
    }

    /// Why it is closing, once a close was asked.
    pub fn closing(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Closing(r) => Some(r),
            _ => None,
        }
    }

    /// Append a packet to the outbox and wake the task.
    pub fn send(&mut self, packet: &Packet) {
        codec::encode(packet, self.version, &mut self.outbox);
        self.wake();
    }

    /// Append a PUBLISH of `msg` to the outbox and wake the task: the 3.1.1
    /// encoding for a 3.1/3.1.1 client (no properties), the MQTT 5 one with
    /// this delivery's subscription identifiers `sub_ids` for an MQTT 5
    /// client (see [`ConnV5::encode_publish`]). Check [`fits`](Self::fits) first.
    pub fn send_publish(
        &mut self,
        msg: &Message,
        retain: bool,
        qos: QoS,
        pkid: u16,
        dup: bool,
        sub_ids: &[u32],
    ) {
        match self.extras.as_mut().and_then(|e| e.v5.as_deref_mut()) {
            None => codec::encode_publish(
                &mut self.outbox,
                &msg.topic,
                &msg.payload,
                qos,
                pkid,
                retain,
                dup,
            ),
            Some(v5) => v5.encode_publish(&mut self.outbox, msg, retain, qos, pkid, dup, sub_ids),
        }
        self.wake();
    }

    /// Whether a PUBLISH of `msg` may be sent to the client: within an MQTT
    /// 5 client's Maximum Packet Size (always for 3.1/3.1.1).
    pub fn fits(&self, msg: &Message, qos: QoS, sub_ids: &[u32]) -> bool {
        self.v5_ref().is_none_or(|v5| v5.fits(msg, qos, sub_ids))
    }

    /// Bytes waiting to be written.
    pub fn unsent(&self) -> usize {
        self.outbox.len() - self.out_pos as usize
    }

    /// The bytes waiting to be written.
    pub fn unsent_bytes(&self) -> &[u8] {
        &self.outbox[self.out_pos as usize..]
    }

    /// `n` more bytes were written: free the buffer once all are out, and
    /// drop the written prefix once it is most of the buffer.
    pub fn wrote(&mut self, n: usize) {
        let pos = self.out_pos as usize + n;
        if pos >= self.outbox.len() {
            self.outbox = Vec::new();
            self.out_pos = 0;
            return;
        }
        match u32::try_from(pos) {
            Ok(pos) if pos as usize <= self.outbox.len() / 2 => self.out_pos = pos,
            _ => {
                self.outbox.drain(..pos);
                self.out_pos = 0;
            }
        }
    }

    /// Take what is left to write (closing, or a harness test reading output).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.outbox);
        out.drain(..(self.out_pos as usize).min(out.len()));
        self.out_pos = 0;
        out
    }

    /// Keep the connection task's waker; cloned only when it changed.
    pub fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// Wake the connection's task if it is waiting.
    pub fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Bytes arrived at `now_ms`.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_seen = seen_units(now_ms);
    }

    /// When a silent connection is closed: 1.5 × keepalive after the last
    /// bytes received ([MQTT-3.1.2-24]); None when keepalive is off.
    pub fn keepalive_deadline(&self) -> Option<u64> {
        let ka_ms = self.keepalive_ms();
        (ka_ms > 0).then(|| u64::from(self.last_seen) * SEEN_UNIT_MS + ka_ms * 3 / 2)
    }

    /// Let the connect timer, still to fire, start the keepalive checks.
    pub fn defer_keepalive(&mut self) {
        self.keepalive_deferred = true;
    }

    /// Whether the keepalive checks wait for the connect timer (once: this
    /// clears it).
    pub fn take_deferred_keepalive(&mut self) -> bool {
        std::mem::take(&mut self.keepalive_deferred)
    }

    /// The keepalive, in ms (0: off).
    pub fn keepalive_ms(&self) -> u64 {
        u64::from(self.keepalive_s) * 1000
    }

    /// Whether the broker itself stopped reading from it (backpressure or
    /// output over its limit): its silence is not the client's.
    pub fn reading_paused(&self) -> bool {
        self.paused || self.stalled
    }

    /// Unread bytes waiting in the kernel for this socket.
    pub fn unread_bytes(&self) -> usize {
        crate::transport::unread_bytes(self.fd)
    }

    /// The output went over the limit: returns the stall's number when it
    /// just began (the caller arms its timer), None if it was over already.
    pub fn output_over(&mut self) -> Option<u8> {
        if self.stalled {
            return None;
        }
        self.stalled = true;
        self.stall_epoch = self.stall_epoch.wrapping_add(1);
        Some(self.stall_epoch)
    }

    /// The output is under the limit again.
    pub fn output_ok(&mut self) {
        self.stalled = false;
    }

    /// Whether stall number `epoch` is still going on.
    pub fn stalled_since(&self, epoch: u8) -> bool {
        self.stalled && self.stall_epoch == epoch
    }

    /// Whether no incomplete packet is held or pending.
    pub fn holds_no_input(&self) -> bool {
        self.input_held == 0 && self.partial_since == 0
    }

    /// When the incomplete packet at the front began (shard clock, ms).
    pub fn partial_since_ms(&self) -> Option<u64> {
        (self.partial_since > 0).then(|| u64::from(self.partial_since - 1) * 1000)
    }

    /// Record the incomplete packet's state after a read or a decode: it
    /// began at `now_ms` if `restart` (a packet completed) or none was
    /// pending. Returns true when a new deadline must be armed.
    pub fn partial(&mut self, pending: bool, restart: bool, now_ms: u64) -> bool {
        let was = self.partial_since;
        self.partial_since = if !pending {
            0
        } else if restart || was == 0 {
            u32::try_from(now_ms / 1000).unwrap_or(u32::MAX - 1) + 1
        } else {
            was
        };
        was == 0 && self.partial_since != 0
    }

    /// Whether an ack must wait: one is already held (acks leave in order).
    pub fn holds_acks(&self) -> bool {
        self.extras
            .as_ref()
            .is_some_and(|e| !e.held_acks.is_empty())
    }

    /// PUBACKs held (QoS 1 PUBLISHes not answered yet).
    pub fn held_pubacks(&self) -> usize {
        self.extras.as_ref().map_or(0, |e| {
            e.held_acks
                .iter()
                .filter(|a| matches!(a.packet, Packet::PubAck(_)))
                .count()
        })
    }

    /// Queue an ack behind its barrier or behind the acks held already.
    pub fn hold_ack(&mut self, held: HeldAck) {
        self.extras_mut().held_acks.push_back(held);
    }

    /// A barrier completed: the acks now free to leave, in order.
    pub fn barrier_passed(&mut self, barrier: u64) -> Vec<HeldAck> {
        let Some(extras) = self.extras.as_mut() else {
            return Vec::new();
        };
        let held_acks = &mut extras.held_acks;
        if let Some(held) = held_acks.iter_mut().find(|h| h.barrier == barrier) {
            held.barrier = 0;
        }
        let mut ready = Vec::new();
        while held_acks.front().is_some_and(|h| h.barrier == 0) {
            ready.extend(held_acks.pop_front());
        }
        if extras.is_empty() {
            // Free the box: an idle connection keeps no buffer.
            self.extras = None;
        }
        ready
    }

    /// What the MQTT 5 client asked of the broker (None for 3.1/3.1.1).
    pub fn v5(&self) -> Option<&ConnV5> {
        self.v5_ref()
    }

    pub fn v5_mut(&mut self) -> Option<&mut ConnV5> {
        self.extras.as_mut()?.v5.as_deref_mut()
    }

    /// Set once, from an MQTT 5 CONNECT.
    pub fn set_v5(&mut self, v5: ConnV5) {
        self.extras_mut().v5 = Some(Box::new(v5));
    }

    /// Its ACL decision cache, made on first use.
    pub fn acl_cache(&mut self, generation: u64) -> &mut DecisionCache {
        self.extras_mut()
            .acl_cache
            .get_or_insert_with(|| Box::new(DecisionCache::new(generation)))
    }
}

/// Every open connection of the shard, and the readers paused by backpressure.
#[derive(Default)]
pub struct Connections {
    slab: Slab<Conn, ConnTag>,
    /// Connections that stopped reading while mailboxes were backed up.
    paused: Vec<ConnKey>,
    /// Sum of the connections' `input_held`.
    input_held: usize,
    /// Enhanced-authentication exchanges in progress (CONNECT or
    /// re-authentication), rare enough to live beside the connections.
    exchanges: HashMap<ConnKey, Box<dyn AuthExchange>>,
}

impl Connections {
    /// Register a new socket (awaiting its CONNECT).
    pub fn add(&mut self, peer: SocketAddr, fd: RawFd, origin: Origin, now_ms: u64) -> ConnKey {
        self.slab.insert(Conn {
            outbox: Vec::new(),
            out_pos: 0,
            waker: None,
            phase: Phase::AwaitingConnect,
            paused: false,
            stalled: false,
            stall_epoch: 0,
            last_seen: seen_units(now_ms),
            keepalive_s: 0,
            keepalive_deferred: false,
            input_held: 0,
            partial_since: 0,
            fd,
            extras: origin.identity.map(|identity| {
                Box::new(Extras {
                    identity: Some(identity),
                    ..Default::default()
                })
            }),
            version: ProtocolVersion::V311,
            peer: peer.into(),
            listener: origin.listener,
        })
    }

    /// The connection task holds `bytes` for an incomplete packet now.
    /// False when that would take the shard over `budget` (the caller closes it).
    pub fn hold_input(&mut self, key: ConnKey, bytes: usize, budget: usize) -> bool {
        let Some(c) = self.slab.get_mut(key) else {
            return true;
        };
        let old = c.input_held as usize;
        let total = self.input_held - old + bytes;
        if bytes > old && total > budget {
            return false;
        }
        c.input_held = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.input_held = total;
        true
    }

    /// Bytes of incomplete packets held by all connections of the shard.
    pub fn input_held(&self) -> usize {
        self.input_held
    }

    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.slab.get(key)
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.slab.get_mut(key)
    }

    /// Forget a connection whose task has ended (and the input it held).
    pub fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        let c = self.slab.remove(key)?;
        self.input_held -= c.input_held as usize;
        self.exchanges.remove(&key);
        Some(c)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every open connection.
    pub fn keys(&self) -> Vec<ConnKey> {
        self.slab.keys()
    }

    /// CONNECT accepted: the connection now serves `session`.
    pub fn connected(
        &mut self,
        key: ConnKey,
        session: SessionKey,
        info: Rc<ClientInfo>,
        keepalive_s: u16,
        now_ms: u64,
    ) {
        if let Some(c) = self.slab.get_mut(key) {
            c.phase = Phase::Connected { session, info };
            c.keepalive_s = keepalive_s;
            c.last_seen = seen_units(now_ms);
        }
    }

    /// Ask the connection's task to close it. Returns the phase it left, or
    /// None when it was closing already (or is gone): the caller ends the
    /// session side once.
    pub fn close(&mut self, key: ConnKey, reason: CloseReason) -> Option<Phase> {
        let c = self.slab.get_mut(key)?;
        if c.closing().is_some() {
            return None;
        }
        let was = std::mem::replace(&mut c.phase, Phase::Closing(reason));
        // After a CONNACK, an MQTT 5 client is told why [MQTT-4.13.1-1].
        let reason_code = reason.v5_reason().filter(|_| c.version().is_v5());
        if let (Phase::Connected { .. }, Some(code)) = (&was, reason_code) {
            c.send(&Packet::Disconnect(Disconnect::with(code)));
        }
        c.wake();
        Some(was)
    }

    /// The reader stopped for backpressure: remember it (once) to wake later.
    pub fn pause(&mut self, key: ConnKey, waker: &Waker) {
        if let Some(c) = self.slab.get_mut(key) {
            c.set_waker(waker);
            if !c.paused {
                c.paused = true;
                self.paused.push(key);
            }
        }
    }

    /// Wake every paused reader (the backlog has fallen, or the shard stops).
    pub fn resume_paused(&mut self) {
        for key in std::mem::take(&mut self.paused) {
            if let Some(c) = self.slab.get_mut(key) {
                c.paused = false;
                c.wake();
            }
        }
    }

    /// Hold an MQTT 5 CONNECT while its authentication exchange runs.
    pub fn authenticating(&mut self, key: ConnKey, connect: Box<Connect>) {
        if let Some(c) = self.slab.get_mut(key) {
            c.phase = Phase::Authenticating(connect);
        }
    }

    /// The held CONNECT, its exchange over: the connection awaits its
    /// CONNECT's acceptance again (within the same handler call).
    pub fn authenticated(&mut self, key: ConnKey) -> Option<Box<Connect>> {
        let c = self.slab.get_mut(key)?;
        match std::mem::replace(&mut c.phase, Phase::AwaitingConnect) {
            Phase::Authenticating(connect) => Some(connect),
            other => {
                c.phase = other;
                None
            }
        }
    }

    /// Hold a CONNECT while its login is checked.
    pub fn verifying(&mut self, key: ConnKey, pending: Box<crate::auth::check::Pending>) {
        if let Some(c) = self.slab.get_mut(key) {
            c.phase = Phase::Verifying(pending);
        }
    }

    /// The CONNECT held for its login check, if the connection is in that phase.
    pub fn pending_mut(&mut self, key: ConnKey) -> Option<&mut crate::auth::check::Pending> {
        match &mut self.slab.get_mut(key)?.phase {
            Phase::Verifying(p) => Some(p),
            _ => None,
        }
    }

    /// The held CONNECT, its check over: the connection awaits its CONNECT's
    /// acceptance again (within the same handler call). None when it is
    /// not verifying (closed meanwhile).
    pub fn verified(&mut self, key: ConnKey) -> Option<Box<crate::auth::check::Pending>> {
        let c = self.slab.get_mut(key)?;
        match std::mem::replace(&mut c.phase, Phase::AwaitingConnect) {
            Phase::Verifying(p) => Some(p),
            other => {
                c.phase = other;
                None
            }
        }
    }

    /// Keep (or replace) the authentication exchange of a connection.
    pub fn set_exchange(&mut self, key: ConnKey, exchange: Box<dyn AuthExchange>) {
        if self.slab.get(key).is_some() {
            self.exchanges.insert(key, exchange);
        }
    }

    /// The connection's authentication exchange in progress.
    pub fn exchange_mut(&mut self, key: ConnKey) -> Option<&mut Box<dyn AuthExchange>> {
        self.exchanges.get_mut(&key)
    }

    /// The exchange ended (success or failure).
    pub fn end_exchange(&mut self, key: ConnKey) {
        self.exchanges.remove(&key);
    }

    /// Whether any reader is paused.
    pub fn any_paused(&self) -> bool {
        !self.paused.is_empty()
    }
}
