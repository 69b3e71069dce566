//! The connections part: what the shard keeps per open socket.
//!
//! Owns one [`Conn`] per socket (the socket itself belongs to its connection
//! task, `crate::conn`): the outbox of encoded packets not yet written, the
//! task's waker, the keepalive clock, the acknowledgements held behind
//! barriers, and the connection's [`Phase`]. Also owns the list of readers
//! paused by mailbox backpressure. The protocol handlers reach a connection
//! by its typed [`ConnKey`]; only [`Phase::Connected`] links it to a session,
//! and that link is made and broken in one place (`protocol/connect.rs`).

use crate::codec::{self, Packet, QoS};
use crate::hooks::ClientInfo;
use crate::message::Message;
use crate::slab::{ConnKey, ConnTag, SessionKey, Slab};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

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
        }
    }
}

/// Where a connection is in its life: the one source of truth for
/// "connected" and for the session it serves.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Accepted; the first packet must be CONNECT.
    AwaitingConnect,
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
    pub then_retained: Vec<(Arc<Message>, QoS)>,
}

/// What the shard keeps per open socket.
#[derive(Debug)]
pub struct Conn {
    /// Encoded packets not yet written (from `out_pos`); freed once written.
    outbox: Vec<u8>,
    /// Bytes of `outbox` already written.
    out_pos: usize,
    /// The connection task, woken when the outbox fills or a close is asked.
    waker: Option<Waker>,
    phase: Phase,
    /// Listed in [`Connections::paused`] (each connection once).
    paused: bool,
    /// Shard clock (ms) of the last bytes received: keepalive.
    last_seen_ms: u64,
    /// Keepalive in ms from CONNECT; 0 disables.
    keepalive_ms: u64,
    /// Acks waiting for a barrier or queued behind one, in packet order.
    held_acks: VecDeque<HeldAck>,
    peer: SocketAddr,
}

impl Conn {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The session this connection serves, while connected.
    pub fn session(&self) -> Option<SessionKey> {
        match self.phase {
            Phase::Connected { session, .. } => Some(session),
            _ => None,
        }
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
        codec::encode(packet, &mut self.outbox);
        self.wake();
    }

    /// Append a PUBLISH of `msg` to the outbox and wake the task.
    pub fn send_publish(&mut self, msg: &Message, retain: bool, qos: QoS, pkid: u16, dup: bool) {
        codec::encode_publish(
            &mut self.outbox,
            &msg.topic,
            &msg.payload,
            qos,
            pkid,
            retain,
            dup,
        );
        self.wake();
    }

    /// Bytes waiting to be written.
    pub fn unsent(&self) -> usize {
        self.outbox.len() - self.out_pos
    }

    /// The bytes waiting to be written.
    pub fn unsent_bytes(&self) -> &[u8] {
        &self.outbox[self.out_pos..]
    }

    /// `n` more bytes were written: free the buffer once all are out, and
    /// drop the written prefix once it is most of the buffer.
    pub fn wrote(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.outbox.len() {
            self.outbox = Vec::new();
            self.out_pos = 0;
        } else if self.out_pos > self.outbox.len() / 2 {
            self.outbox.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Take what is left to write (closing, or a harness test reading output).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.outbox);
        out.drain(..self.out_pos.min(out.len()));
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
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Bytes arrived at `now_ms`.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_seen_ms = now_ms;
    }

    /// When a silent connection is closed: 1.5 × keepalive after the last
    /// bytes received ([MQTT-3.1.2-24]); None when keepalive is off.
    pub fn keepalive_deadline(&self) -> Option<u64> {
        (self.keepalive_ms > 0).then(|| self.last_seen_ms + self.keepalive_ms * 3 / 2)
    }

    /// Whether an ack must wait: one is already held (acks leave in order).
    pub fn holds_acks(&self) -> bool {
        !self.held_acks.is_empty()
    }

    /// Queue an ack behind its barrier or behind the acks held already.
    pub fn hold_ack(&mut self, held: HeldAck) {
        self.held_acks.push_back(held);
    }

    /// A barrier completed: the acks now free to leave, in order.
    pub fn barrier_passed(&mut self, barrier: u64) -> Vec<HeldAck> {
        if let Some(held) = self.held_acks.iter_mut().find(|h| h.barrier == barrier) {
            held.barrier = 0;
        }
        let mut ready = Vec::new();
        while self.held_acks.front().is_some_and(|h| h.barrier == 0) {
            ready.extend(self.held_acks.pop_front());
        }
        if self.held_acks.is_empty() {
            // Free the queue: an idle connection keeps no buffer.
            self.held_acks = VecDeque::new();
        }
        ready
    }
}

/// Every open connection of the shard, and the readers paused by backpressure.
#[derive(Default)]
pub struct Connections {
    slab: Slab<Conn, ConnTag>,
    /// Connections that stopped reading while mailboxes were backed up.
    paused: Vec<ConnKey>,
}

impl Connections {
    /// Register a new socket (awaiting its CONNECT).
    pub fn add(&mut self, peer: SocketAddr, now_ms: u64) -> ConnKey {
        self.slab.insert(Conn {
            outbox: Vec::new(),
            out_pos: 0,
            waker: None,
            phase: Phase::AwaitingConnect,
            paused: false,
            last_seen_ms: now_ms,
            keepalive_ms: 0,
            held_acks: VecDeque::new(),
            peer,
        })
    }

    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.slab.get(key)
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.slab.get_mut(key)
    }

    /// Forget a connection whose task has ended.
    pub fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        self.slab.remove(key)
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
        keepalive_ms: u64,
        now_ms: u64,
    ) {
        if let Some(c) = self.slab.get_mut(key) {
            c.phase = Phase::Connected { session, info };
            c.keepalive_ms = keepalive_ms;
            c.last_seen_ms = now_ms;
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

    /// Whether any reader is paused.
    pub fn any_paused(&self) -> bool {
        !self.paused.is_empty()
    }
}
