//! MQTT over WebSocket (RFC 6455; MQTT 3.1.1 §6, MQTT 5 §6): [`Ws`] wraps
//! any [`Transport`] — plain TCP for `ws`, TLS for `wss` — and is one
//! itself, so the connection task sees only MQTT bytes.
//!
//! Owns the framing state of one connection ([`WsState`]): inbound frames
//! are decoded in place in the caller's read buffer ([`frame::Inbound`]),
//! binary payloads are the MQTT byte stream (a packet may span frames, a
//! frame may hold several packets), pings are answered, a close frame is
//! answered and then reads end, anything else a server must refuse closes
//! with the RFC's code. Each write becomes one unmasked binary frame.
//! [`accept_ws`] (in `handshake`) performs the HTTP upgrade; the listener's
//! glue ([`crate::listener::spawn_ws_accepted`]) calls it.
//!
//! Memory: between reads the state is a few counters (~100 bytes inside
//! `Ws`, no heap), plus, only while a frame header or control frame is cut
//! across reads, those few bytes; a pending pong or close is allocated
//! while it waits to be written. A detached `Ws` carries all of this in
//! [`Detached::Ws`], so the home shard resumes mid-frame.

pub mod frame;
mod handshake;

pub use handshake::{accept_ws, UpgradeError, MAX_REQUEST_BYTES};

use super::{Detached, Resume, Transport};
use frame::{Inbound, Violation};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::task::{ready, Context, Poll};
use tungstenite::protocol::frame::coding::Control;

/// Payload bytes copied behind a frame header so both go out in one write
/// (the rest of a larger frame is written straight from the caller's buffer).
const COALESCE: usize = 16 * 1024;

thread_local! {
    /// Where a frame's header and first bytes are put together: one per
    /// thread, so no connection holds a write buffer.
    static COMPOSE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A WebSocket connection over the transport `T`, after the upgrade.
pub struct Ws<T> {
    inner: T,
    st: WsState,
}

/// Everything a [`Ws`] knows besides its inner transport: plain data,
/// `Send`, carried across shards in [`Detached::Ws`].
#[derive(Debug, Clone)]
pub struct WsState {
    rx: Inbound,
    /// Raw bytes read but not decoded yet: the tail of an incomplete header
    /// or control frame, or what followed the upgrade request. Empty (no
    /// allocation) otherwise.
    carry: Vec<u8>,
    /// `carry` holds no complete frame part: more must be read first.
    carry_incomplete: bool,
    /// Largest data-frame payload accepted (from mqtt.max_packet_size).
    max_frame: u64,
    /// The outbound data frame in progress.
    tx: Outbound,
    /// A control frame (pong) waiting to go out between data frames.
    ctl: Option<Box<Pending>>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The peer's close frame arrived and was answered: reads end,
    /// nothing more goes out.
    CloseReceived,
    /// A close frame was sent after a violation or the last write: nothing
    /// more goes out and reads fail.
    Closed,
}

/// The unsent part of the outbound data frame: header bytes and how much
/// payload it still expects from the caller.
#[derive(Debug, Clone, Default)]
struct Outbound {
    head: [u8; frame::MAX_HEAD],
    head_at: u8,
    head_end: u8,
    payload_left: usize,
}

impl Outbound {
    fn head_rest(&self) -> &[u8] {
        &self.head[usize::from(self.head_at)..usize::from(self.head_end)]
    }

    fn in_frame(&self) -> bool {
        self.head_at < self.head_end || self.payload_left > 0
    }

    fn start(&mut self, len: usize) {
        let (head, n) = frame::binary_head(len);
        *self = Outbound {
            head,
            head_at: 0,
            head_end: n as u8,
            payload_left: len,
        };
    }

    /// Account `n` frame bytes written; returns how many were payload.
    fn wrote(&mut self, n: usize) -> usize {
        let h = n.min(self.head_rest().len());
        self.head_at += h as u8;
        let p = n - h;
        self.payload_left -= p;
        p
    }
}

/// Bytes of control frames not written yet.
#[derive(Debug, Clone)]
struct Pending {
    bytes: Vec<u8>,
    sent: usize,
}

/// Reads one poll makes that yield no MQTT bytes (pings, empty frames)
/// before it yields to other tasks.
const MAX_EMPTY_READS: usize = 16;

/// Longest queue of pongs kept while the socket does not drain.
const MAX_PENDING_CTL: usize = 512;

impl<T: Transport> Ws<T> {
    /// A connection just upgraded; `early` is what the client sent after its
    /// request (frames it did not wait to send).
    fn upgraded(inner: T, max_frame: usize, early: Vec<u8>) -> Ws<T> {
        let st = WsState {
            rx: Inbound::default(),
            carry: early,
            carry_incomplete: false,
            max_frame: max_frame as u64,
            tx: Outbound::default(),
            ctl: None,
            phase: Phase::Open,
        };
        Ws { inner, st }
    }

    /// Resume a connection detached on another shard.
    pub fn resumed(inner: T, st: WsState) -> Ws<T> {
        Ws { inner, st }
    }

    /// Write pending control frames; `Ready(Ok)` once none is left.
    fn flush_ctl(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(p) = self.st.ctl.as_mut() {
            let n = ready!(self.inner.poll_write(cx, &p.bytes[p.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            p.sent += n;
            if p.sent == p.bytes.len() {
                self.st.ctl = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queue a pong for `payload`: it replaces a pong not started yet (only
    /// the latest ping needs one, RFC 6455 §5.5.3).
    fn queue_pong(ctl: &mut Option<Box<Pending>>, payload: &[u8]) {
        let pong = frame::control_frame(Control::Pong, payload);
        match ctl {
            Some(p) if p.sent > 0 => {
                if p.bytes.len() + pong.len() <= MAX_PENDING_CTL {
                    p.bytes.extend_from_slice(&pong);
                }
            }
            _ => {
                *ctl = Some(Box::new(Pending {
                    bytes: pong,
                    sent: 0,
                }))
            }
        }
    }

    /// The close frame and what must precede it, sent without waiting; after
    /// it nothing more is written. `prefix` is payload the caller still owes
    /// the frame in progress (nothing when closing on a violation: then the
    /// close frame is only sent between frames).
    fn send_close(&mut self, prefix: &[u8], code: u16) {
        if self.st.phase != Phase::Open {
            return;
        }
        self.st.phase = Phase::Closed;
        let mut out = Vec::new();
        if self.st.tx.in_frame() {
            if prefix.len() < self.st.tx.payload_left {
                return; // the frame cannot be finished: no close frame either
            }
            out.extend_from_slice(self.st.tx.head_rest());
            out.extend_from_slice(&prefix[..self.st.tx.payload_left]);
        }
        if let Some(p) = self.st.ctl.take().filter(|p| p.sent > 0) {
            out.extend_from_slice(&p.bytes[p.sent..]);
        }
        let rest = &prefix[self.st.tx.payload_left.min(prefix.len())..];
        if !rest.is_empty() {
            let (h, n) = frame::binary_head(rest.len());
            out.extend_from_slice(&h[..n]);
            out.extend_from_slice(rest);
        }
        out.extend_from_slice(&frame::close_frame(code));
        self.st.tx = Outbound::default();
        self.inner.write_now(&out);
    }

    /// Refuse the peer's frames: close with the violation's code, and the
    /// read error the connection task sees.
    fn violated(&mut self, v: Violation) -> io::Error {
        self.send_close(&[], v.close_code());
        io::Error::new(io::ErrorKind::InvalidData, v.to_string())
    }

    /// Move carried bytes to the front of `buf`, then read more behind them
    /// when needed; the number of raw bytes now in `buf`.
    fn fill(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let k = self.st.carry.len();
        if k >= buf.len() && (self.st.carry_incomplete || buf.is_empty()) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read buffer too small for a websocket frame header",
            )));
        }
        if k > 0 && !self.st.carry_incomplete {
            let n = k.min(buf.len());
            buf[..n].copy_from_slice(&self.st.carry[..n]);
            self.st.carry.drain(..n);
            if self.st.carry.is_empty() {
                self.st.carry = Vec::new();
            }
            return Poll::Ready(Ok(n));
        }
        let n = ready!(self.inner.poll_read(cx, &mut buf[k..]))?;
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        buf[..k].copy_from_slice(&self.st.carry);
        self.st.carry = Vec::new();
        Poll::Ready(Ok(k + n))
    }

    /// Keep `tail` (an incomplete frame part) for the next read, before
    /// anything still carried.
    fn keep(&mut self, tail: &[u8]) {
        if tail.is_empty() {
            return;
        }
        self.st.carry_incomplete = self.st.carry.is_empty();
        self.st.carry.splice(0..0, tail.iter().copied());
    }
}

impl<T: Transport> Transport for Ws<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        for _ in 0..MAX_EMPTY_READS {
            match self.st.phase {
                Phase::Open => {}
                Phase::CloseReceived => return Poll::Ready(Ok(0)),
                Phase::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
            if self.st.ctl.is_some() && !self.st.tx.in_frame() {
                // Pongs go out even when the broker has nothing to write;
                // a full socket wakes this task when it drains.
                if let Poll::Ready(Err(e)) = self.flush_ctl(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            let n = ready!(self.fill(cx, buf))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let st = &mut self.st;
            let ctl = &mut st.ctl;
            let decoded = st.rx.decode(&mut buf[..n], st.max_frame, &mut |ping| {
                Self::queue_pong(ctl, ping)
            });
            let d = match decoded {
                Ok(d) => d,
                Err(v) => return Poll::Ready(Err(self.violated(v))),
            };
            if let Some(code) = d.close {
                // Answer the close; the data before it is still delivered.
                self.send_close(&[], code);
                self.st.phase = Phase::CloseReceived;
            } else {
                self.keep(&buf[d.used..n]);
            }
            if d.data > 0 {
                return Poll::Ready(Ok(d.data));
            }
        }
        // A client sending only control frames: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.st.phase != Phase::Open {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if !self.st.tx.in_frame() {
                ready!(self.flush_ctl(cx))?;
                self.st.tx.start(buf.len());
            }
            let take = buf.len().min(self.st.tx.payload_left);
            let n = if self.st.tx.head_rest().is_empty() {
                ready!(self.inner.poll_write(cx, &buf[..take]))?
            } else {
                let head = self.st.tx.head_rest();
                let inner = &mut self.inner;
                ready!(COMPOSE.with_borrow_mut(|out| {
                    out.clear();
                    out.extend_from_slice(head);
                    out.extend_from_slice(&buf[..take.min(COALESCE)]);
                    inner.poll_write(cx, out)
                }))?
            };
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let payload = self.st.tx.wrote(n);
            if payload > 0 {
                return Poll::Ready(Ok(payload));
            }
            // Only header bytes went out: try again (the inner stream says
            // Pending, with our waker, if it is full).
        }
    }

    fn write_now(&mut self, buf: &[u8]) {
        // Called just before the connection closes: the data, then a normal close.
        self.send_close(buf, 1000);
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Control frames owed (pongs, a close), then what the stream under
        // it holds (TLS records, for wss).
        if self.st.phase == Phase::Open && !self.st.tx.in_frame() {
            ready!(self.flush_ctl(cx))?;
        }
        self.inner.poll_flush(cx)
    }

    fn detach(&mut self) -> io::Result<Detached> {
        Ok(Detached::Ws {
            inner: Box::new(self.inner.detach()?),
            state: self.st.clone(),
        })
    }

    fn socket_fd(&self) -> RawFd {
        self.inner.socket_fd()
    }
}

/// Resumes the inner transport of a [`Detached::Ws`] and wraps it again
/// before handing it to the caller's [`Resume`].
pub(super) struct Rewrap<R> {
    pub state: WsState,
    pub then: R,
}

impl<R: Resume> Resume for Rewrap<R> {
    type Output = R::Output;

    fn resume<T: Transport>(self, inner: T) -> R::Output {
        self.then.resume(Ws::resumed(inner, self.state))
    }
}

#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
