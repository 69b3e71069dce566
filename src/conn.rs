//! The per-connection task: read → decode → protocol handlers → write.
//!
//! One glommio task per socket, on the shard that owns the client. It owns
//! the [`Transport`] (a `TcpStream` or a [`TlsStream`](crate::tls::TlsStream)) and the bytes of an incomplete
//! packet; everything else about the connection is in the shard's
//! connections part ([`Conn`](crate::shard::conns::Conn)), whose phase says
//! whether CONNECT has been accepted.
//! An idle connection holds no buffer: reads go into the shard's shared
//! scratch buffer inside a synchronous poll (glommio's plain stream is
//! readiness-based, so a pending read pins no buffer), and only the bytes of
//! an incomplete packet are kept. The outbox is freed once written.
//!
//! A listener's `max_inbound_bytes_per_s` is a token bucket in the task: a
//! connection that read more than it allows stops reading (its bytes stay in
//! the kernel, TCP pushes back) until the shard's timer wheel wakes it
//! (`TimerItem::InputResume`).
//!
//! The first packet must be CONNECT. The accepting shard decodes it and, if
//! the client's home shard is another one, hands the socket there (the
//! detached transport plus the bytes already read) and ends.

use crate::codec::{self, ConnAck, DecodeError, Packet, ProtocolVersion, Reason, Side};
use crate::conn_limit::Slot;
use crate::rate::TokenBucket;
use crate::shard::mesh::MeshMsg;
use crate::shard::{home_shard, CloseReason, ConnKey, Phase, Shard, ShardRef, TimerItem};
use crate::transport::{Handoff, Origin, Resume, Transport};
use bytes::Bytes;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

/// Writes one poll may make before yielding to other tasks.
const MAX_WRITES_PER_POLL: usize = 16;

/// Start serving a stream accepted on this shard.
pub fn spawn_accepted<T: Transport>(
    shard: &ShardRef,
    stream: T,
    peer: SocketAddr,
    slot: Slot,
    origin: Origin,
) {
    start(shard, stream, Vec::new(), (peer, origin), slot, false);
}

/// Start serving a stream handed over by another shard: the broker
/// registers this with the mesh as its [`HandoffHandler`](crate::shard::mesh::HandoffHandler).
pub fn spawn_handoff(shard: &ShardRef, h: Handoff) {
    if shard.borrow().stop.load(Ordering::Relaxed) {
        // Too late: this shard's connections are being closed (drop closes the socket).
        return;
    }
    shard.borrow_mut().metrics.handoffs_received += 1;
    let peer = h.peer;
    let restart = Restart {
        shard,
        initial: h.initial.to_vec(),
        peer: (peer, h.origin),
        slot: h.slot,
    };
    if let Err(e) = h.transport.resume(restart) {
        log::warn!("handoff from {peer}: cannot resume the transport: {e}");
    }
}

/// The connection arriving in a handoff, waiting for its transport.
struct Restart<'a> {
    shard: &'a ShardRef,
    initial: Vec<u8>,
    peer: (SocketAddr, Origin),
    slot: Slot,
}

impl Resume for Restart<'_> {
    type Output = ();

    fn resume<T: Transport>(self, stream: T) {
        start(self.shard, stream, self.initial, self.peer, self.slot, true);
    }
}

/// Register the connection and spawn its task. Everything is built before
/// the spawn so the task's future holds only `Conn`, the stream and `serve`.
fn start<T: Transport>(
    shard: &ShardRef,
    stream: T,
    inbuf: Vec<u8>,
    (peer, origin): (SocketAddr, Origin),
    slot: Slot,
    handed: bool,
) {
    let (key, rate) = {
        let mut sh = shard.borrow_mut();
        let rate = inbound_rate(&sh, origin.listener);
        (sh.add_conn(peer, stream.socket_fd(), origin), rate)
    };
    let conn = Conn {
        shard: shard.clone(),
        key,
        inbuf,
        need: 0,
        handed,
        step: Step::Input,
        slot: Some(slot),
        rate,
    };
    glommio::spawn_local(conn.run(stream)).detach();
}

/// The inbound byte-rate bucket of a connection on listener `listener`, if
/// it sets `max_inbound_bytes_per_s`.
fn inbound_rate(sh: &Shard, listener: u16) -> Option<Box<InboundRate>> {
    let l = sh.cfg.listener.get(usize::from(listener))?;
    (l.max_inbound_bytes_per_s > 0).then(|| {
        Box::new(InboundRate {
            bucket: TokenBucket::new(
                l.max_inbound_bytes_per_s as f64,
                l.inbound_burst_bytes as f64,
                sh.timers.clock_ms(),
            ),
            paused_until: 0,
        })
    })
}

/// A connection's `max_inbound_bytes_per_s`: the bytes it may still read,
/// and until when it is not read from after going over.
struct InboundRate {
    bucket: TokenBucket,
    /// Shard milliseconds; 0 when not paused.
    paused_until: u64,
}

/// What woke the connection task.
enum Event {
    Read,
    Eof,
    Close(CloseReason),
}

/// The task's own state.
struct Conn {
    shard: ShardRef,
    key: ConnKey,
    /// Bytes of an incomplete packet (empty, with no allocation, when idle).
    inbuf: Vec<u8>,
    /// Size of that packet once its fixed header is in (0 before): reads
    /// append until it is whole, so a large packet is not re-copied per read.
    /// (A u32: `mqtt.max_packet_size` is at most 268,435,455.)
    need: u32,
    /// Came from another shard: never hand it over again.
    handed: bool,
    /// Where the task's loop is.
    step: Step,
    /// The node-wide connection slot, held until the socket closes or moves.
    slot: Option<Slot>,
    /// The listener's inbound byte rate, if it has one (boxed: most have none).
    rate: Option<Box<InboundRate>>,
}

impl InboundRate {
    /// Whether reading must wait (and the pause, if one ended, is over).
    fn over(&mut self, now: u64) -> bool {
        if self.bucket.wait_ms(now) > 0 {
            return true;
        }
        self.paused_until = 0;
        false
    }
}

/// The connection task: the connection and its stream, polled by hand.
/// (An async fn kept `serve`'s borrows, locals and awaitees beside them:
/// 232 B per connection; this is 96 B.)
struct Task<T> {
    conn: Conn,
    stream: T,
    /// The login check or injected delay of `Step::Login` / `Step::Delay`.
    wait: Wait,
}

/// Where the task's loop is: ① handle buffered input and start a login
/// check it asks for, ② wait for the check, ③ wait out an injected delay,
/// ④ wait for the next event (write, read, close).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Input,
    Login,
    Delay,
    Event,
}

// Nothing in the task is pinned in place: its futures are boxed.
impl<T> Unpin for Task<T> {}

impl<T: Transport> Future for Task<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Task { conn, stream, wait } = self.get_mut();
        let reason = std::task::ready!(conn.serve(stream, wait, cx));
        conn.shard.borrow_mut().conn_closed(conn.key, reason);
        Poll::Ready(())
    }
}

/// A wait of the task (a login check, an injected delay): boxed, and the
/// box's two-word pointer boxed again, so the task holds one word.
type Wait = Option<Box<Pin<Box<dyn Future<Output = Result<(), CloseReason>>>>>>;

impl Conn {
    fn run<T: Transport>(self, stream: T) -> Task<T> {
        Task {
            conn: self,
            stream,
            wait: None,
        }
    }

    /// The connection's loop, one poll at a time; `Ready` ends it.
    fn serve<T: Transport>(
        &mut self,
        stream: &mut T,
        wait: &mut Wait,
        cx: &mut Context<'_>,
    ) -> Poll<CloseReason> {
        loop {
            match self.step {
                Step::Input => {
                    if let Some(r) = self.input(stream) {
                        return Poll::Ready(r);
                    }
                    // A CONNECT held for its login check: run it (reading
                    // nothing more meanwhile); the packets read after it
                    // were held. Boxed, with the job moved in: the task
                    // stays small for its whole life.
                    let job = self.shard.borrow_mut().take_login_job(self.key);
                    match job {
                        Some(job) => {
                            let shard = self.shard.clone();
                            let check = Self::check_login(shard, self.key, job);
                            *wait = Some(Box::new(Box::pin(check)));
                            self.step = Step::Login;
                        }
                        None => self.after_login(wait),
                    }
                }
                Step::Login | Step::Delay => {
                    if let Some(w) = wait.as_mut() {
                        let done = std::task::ready!(w.as_mut().as_mut().poll(cx));
                        *wait = None;
                        if let Err(reason) = done {
                            self.flush_nonblocking(stream);
                            return Poll::Ready(reason);
                        }
                    }
                    match self.step {
                        Step::Login => self.after_login(wait),
                        _ => self.step = Step::Event,
                    }
                }
                Step::Event => match std::task::ready!(self.next_event(stream, cx)) {
                    Event::Read => {
                        if self.inbuf.len() < self.need as usize {
                            // Still one incomplete packet: count what it holds.
                            let mut sh = self.shard.borrow_mut();
                            if let Err(reason) = self.account_input(&mut sh, false) {
                                return Poll::Ready(reason);
                            }
                        }
                        // Fairness: a client that always has bytes ready (a
                        // flooding publisher) goes to the back of the run
                        // queue after each read, so the connections it
                        // publishes to get to write.
                        self.step = Step::Input;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Event::Eof => return Poll::Ready(CloseReason::SocketClosed),
                    Event::Close(reason) => {
                        self.flush_nonblocking(stream);
                        return Poll::Ready(reason);
                    }
                },
            }
        }
    }

    /// Handle every whole packet buffered; `Some` ends the connection (a
    /// handoff or a close).
    fn input<T: Transport>(&mut self, stream: &mut T) -> Option<CloseReason> {
        if self.inbuf.is_empty() || self.inbuf.len() < self.need as usize {
            return None;
        }
        match self.process_input() {
            Ok(None) => None,
            Ok(Some((home, bytes))) => Some(self.hand_off(stream, home, bytes)),
            Err(reason) => {
                self.flush_nonblocking(stream);
                Some(reason)
            }
        }
    }

    /// The step after the login check: an injected delay (fault tests
    /// slowing this shard; boxed, so the task stays as small without), or
    /// the next event.
    fn after_login(&mut self, wait: &mut Wait) {
        self.step = match self.injected_delay() {
            Some(d) => {
                *wait = Some(Box::new(Box::pin(async move {
                    glommio::timer::sleep(d).await;
                    Ok(())
                })));
                Step::Delay
            }
            None => Step::Event,
        };
    }

    /// Run a login check without blocking the shard, giving up when the
    /// connection is closed meanwhile (connect or hook timeout, shutdown);
    /// hand its answer to the shard. `Err` ends the connection.
    /// (Not a method: the connection's future boxes it, and it must not
    /// borrow the connection meanwhile.)
    async fn check_login(
        shard: ShardRef,
        key: ConnKey,
        job: crate::auth::check::Job,
    ) -> Result<(), CloseReason> {
        let hooks = shard.borrow().hooks.clone();
        let mut check = std::pin::pin!(crate::auth::check::run(job, hooks));
        let decision = poll_fn(|cx| {
            match shard.borrow_mut().conns.get_mut(key) {
                None => return Poll::Ready(Err(CloseReason::SocketClosed)),
                Some(c) => match c.closing() {
                    Some(r) => return Poll::Ready(Err(r)),
                    None => c.set_waker(cx.waker()),
                },
            }
            check.as_mut().poll(cx).map(Ok)
        })
        .await?;
        let mut sh = shard.borrow_mut();
        let result = sh.login_checked(key, decision);
        if let Err(reason) = result {
            sh.close_conn(key, reason);
        }
        result
    }

    /// Fault injection: wait before writing when the test slowed this shard.
    fn injected_delay(&self) -> Option<std::time::Duration> {
        let sh = self.shard.borrow();
        let delay = sh.faults.as_ref()?.write_delay(sh.id)?;
        sh.conns
            .get(self.key)
            .is_some_and(|c| c.unsent() > 0)
            .then_some(delay)
    }

    /// One step of the connection, all inside one poll: close if asked, write
    /// as much of the outbox as the socket takes, then read what arrived.
    /// Writing here (not in a separate future) keeps the task small and lets
    /// a connection read while its output is blocked.
    fn next_event<T: Transport>(&mut self, stream: &mut T, cx: &mut Context<'_>) -> Poll<Event> {
        let mut guard = self.shard.borrow_mut();
        let sh = &mut *guard;
        if let Err(e) = sh.write_outbox(self.key, cx, stream) {
            return Poll::Ready(e);
        }
        if sh.mesh.congested() {
            // Mailboxes to other shards are backed up: stop reading so
            // publishers feel TCP backpressure instead of memory growing.
            sh.conns.pause(self.key, cx.waker());
            sh.metrics.mailbox_backpressure += 1;
            return Poll::Pending;
        }
        let max_out = sh.cfg.mqtt.max_outbox_bytes;
        let Some(c) = sh.conns.get_mut(self.key) else {
            return Poll::Ready(Event::Close(CloseReason::SocketClosed));
        };
        if c.unsent() >= max_out {
            // The client does not read what it is sent: stop reading
            // what it sends (PINGREQs, publishes) until it does; the
            // socket's writability wakes this task.
            c.set_waker(cx.waker());
            if let Some(epoch) = c.output_over() {
                let stall_ms = sh.cfg.limits.output_stall_timeout_s * 1000;
                let deadline = sh.timers.now_ms() + stall_ms;
                sh.timers
                    .arm(deadline, TimerItem::OutputStall(self.key, epoch));
                sh.metrics.output_pauses += 1;
            }
            return Poll::Pending;
        }
        c.output_ok();
        let now = sh.timers.now_ms();
        if let Some(rate) = self.rate.as_deref_mut() {
            if rate.over(now) {
                // Sent faster than the listener allows: leave its bytes
                // in the kernel (TCP pushes back) until the debt is paid.
                c.set_waker(cx.waker());
                if now >= rate.paused_until {
                    // A new pause (counted), or its timer came early.
                    if rate.paused_until == 0 {
                        sh.metrics.inbound_rate_pauses += 1;
                    }
                    rate.paused_until = now + rate.bucket.wait_ms(now).max(1);
                    sh.timers
                        .arm(rate.paused_until, TimerItem::InputResume(self.key));
                }
                return Poll::Pending;
            }
        }
        match stream.poll_read(cx, &mut sh.scratch) {
            Poll::Ready(Ok(0)) => Poll::Ready(Event::Eof),
            Poll::Ready(Ok(n)) => {
                sh.metrics.bytes_received += n as u64;
                self.inbuf.extend_from_slice(&sh.scratch[..n]);
                if let Some(rate) = self.rate.as_deref_mut() {
                    rate.bucket.spend(n as f64, now);
                }
                c.touch(now);
                Poll::Ready(Event::Read)
            }
            Poll::Ready(Err(e)) => {
                sh.read_failed(self.key, &e);
                Poll::Ready(Event::Eof)
            }
            Poll::Pending => {
                c.set_waker(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Decode and handle every complete packet buffered. `Ok(Some)` asks for a
    /// handoff to that shard with these bytes.
    fn process_input(&mut self) -> Result<Option<(usize, Bytes)>, CloseReason> {
        let mut data = Bytes::from(std::mem::take(&mut self.inbuf));
        self.need = 0;
        let mut guard = self.shard.borrow_mut();
        let shard = &mut *guard;
        // Kept only until CONNECT, in case the socket moves to its home shard.
        let all = self.awaiting_connect(shard).then(|| data.clone());
        let max = shard.cfg.mqtt.max_packet_size;
        let mut completed = false;
        let result = loop {
            let version = self.version(shard);
            let (packet, used) = match codec::decode(&data, max, Side::Server, version) {
                Ok(Some(p)) => p,
                Ok(None) => break Ok(None),
                Err(e) => break Err(self.decode_failed(shard, e)),
            };
            data = data.slice(used..);
            completed = true;
            if let Some(home) = self.moves_to(shard, &packet) {
                break Ok(Some((home, all.unwrap_or_default())));
            }
            if let Err(r) = shard.on_packet(self.key, packet) {
                break Err(r);
            }
        };
        if !data.is_empty() && matches!(result, Ok(None)) {
            // decode already accepted this fixed header, if it is complete.
            self.need = codec::frame_len(&data, max, Side::Server, self.version(shard))
                .ok()
                .flatten()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            self.inbuf = data.to_vec();
        }
        match result {
            Ok(_) => self.account_input(shard, completed)?,
            // Closed here, so that what the close sends (an MQTT 5
            // DISCONNECT) is in the outbox flushed before the socket goes.
            Err(reason) => shard.close_conn(self.key, reason),
        }
        result
    }

    /// Count the bytes held for an incomplete packet against the shard's
    /// share of `max_incomplete_bytes`, and track how long that packet has
    /// been arriving (`restart`: a packet just completed, so a new one
    /// began). `Err` closes the connection.
    fn account_input(&self, sh: &mut Shard, restart: bool) -> Result<(), CloseReason> {
        let idle = sh.conns.get(self.key).is_some_and(|c| c.holds_no_input());
        if self.inbuf.capacity() == 0 && idle {
            return Ok(()); // the common case: whole packets, nothing held
        }
        let budget = sh.cfg.limits.max_incomplete_bytes.div_ceil(sh.shards);
        if !sh.conns.hold_input(self.key, self.inbuf.capacity(), budget) {
            sh.metrics.input_budget_closes += 1;
            if let Some(held) = sh.lines.input_budget.allow() {
                log::warn!(
                    "{}: incomplete packets on this shard would exceed {budget} bytes, closing{held}",
                    sh.who(self.key)
                );
            }
            return Err(CloseReason::InputBudget);
        }
        let now = sh.timers.now_ms();
        let pending = !self.inbuf.is_empty();
        if sh
            .conns
            .get_mut(self.key)
            .is_some_and(|c| c.partial(pending, restart, now))
        {
            let deadline = now + sh.cfg.limits.packet_timeout_s * 1000;
            sh.timers.arm(deadline, TimerItem::PacketDeadline(self.key));
        }
        Ok(())
    }

    /// The protocol version the connection speaks: 3.1.1 until its CONNECT
    /// is handled.
    fn version(&self, shard: &Shard) -> ProtocolVersion {
        shard
            .conns
            .get(self.key)
            .map_or(ProtocolVersion::V311, |c| c.version())
    }

    /// Whether the connection still waits for its CONNECT.
    fn awaiting_connect(&self, shard: &Shard) -> bool {
        shard
            .conns
            .get(self.key)
            .is_some_and(|c| matches!(c.phase(), Phase::AwaitingConnect))
    }

    /// The home shard this connection must move to before `packet` (its
    /// CONNECT) is handled, if that is another shard.
    fn moves_to(&self, shard: &Shard, packet: &Packet) -> Option<usize> {
        let Packet::Connect(connect) = packet else {
            return None;
        };
        if self.handed || connect.client_id.is_empty() || !self.awaiting_connect(shard) {
            return None;
        }
        let home = home_shard(&connect.client_id, shard.shards);
        (home != shard.id).then_some(home)
    }

    /// Log and count a decode failure; answer CONNACK 0x01 for an unsupported level.
    fn decode_failed(&self, shard: &mut Shard, e: DecodeError) -> CloseReason {
        if let Some(held) = shard.lines.malformed.allow() {
            log::info!(
                "{}: malformed input ({e}), closing{held}",
                shard.who(self.key)
            );
        }
        match e {
            DecodeError::PacketTooLarge { .. } => {
                shard.metrics.packets_too_large += 1;
                return CloseReason::PacketTooLarge;
            }
            DecodeError::UnsupportedProtocolLevel(_) if self.awaiting_connect(shard) => {
                shard.metrics.connects_refused += 1;
                let ack = ConnAck {
                    session_present: false,
                    code: Reason::UNSUPPORTED_PROTOCOL_VERSION,
                    props: None,
                };
                shard.send_packet(self.key, &Packet::ConnAck(ack));
                return CloseReason::Refused;
            }
            _ => {}
        }
        shard.metrics.protocol_errors += 1;
        CloseReason::for_decode_error(&e)
    }

    /// Best effort, never waits: send what is left (a refusing CONNACK, say) before closing.
    fn flush_nonblocking<T: Transport>(&self, stream: &mut T) {
        let out = match self.shard.borrow_mut().conns.get_mut(self.key) {
            Some(c) => c.take_unsent(),
            None => return,
        };
        // Even with nothing left: TLS and WebSocket say goodbye
        // (close_notify, a close frame) in write_now.
        stream.write_now(&out);
    }

    /// Move the stream to its home shard: detach it and mail it with the bytes read so far.
    fn hand_off<T: Transport>(&mut self, stream: &mut T, home: usize, bytes: Bytes) -> CloseReason {
        let Some(slot) = self.slot.take() else {
            return CloseReason::SocketClosed;
        };
        let transport = match stream.detach() {
            Ok(t) => t,
            Err(err) => {
                log::warn!(
                    "{}: detach failed for handoff: {err}",
                    self.shard.borrow().who(self.key)
                );
                return CloseReason::SocketClosed;
            }
        };
        let mut sh = self.shard.borrow_mut();
        let Some((peer, origin)) = sh.conns.get(self.key).map(|c| (c.peer(), c.origin())) else {
            return CloseReason::SocketClosed;
        };
        sh.metrics.handoffs_sent += 1;
        sh.mesh.push(
            home,
            MeshMsg::Handoff(Handoff {
                transport,
                initial: bytes,
                peer: peer.into(),
                origin,
                slot,
            }),
        );
        CloseReason::HandedOff
    }
}

impl Shard {
    /// Log a read error; a transport's refusal of the peer's bytes (a bad
    /// WebSocket frame) is counted and logged rate-limited.
    fn read_failed(&mut self, key: ConnKey, e: &std::io::Error) {
        if e.kind() != std::io::ErrorKind::InvalidData {
            log::debug!("{}: read error: {e}", self.who(key));
            return;
        }
        self.metrics.transport_errors += 1;
        if let Some(held) = self.lines.malformed.allow() {
            log::info!("{}: {e}, closing{held}", self.who(key));
        }
    }

    /// Write a connection's pending output without waiting; refill it from
    /// the session queue as it empties. `Err` ends the connection.
    fn write_outbox<T: Transport>(
        &mut self,
        key: ConnKey,
        cx: &mut Context<'_>,
        stream: &mut T,
    ) -> Result<(), Event> {
        for _ in 0..MAX_WRITES_PER_POLL {
            let Some(c) = self.conns.get_mut(key) else {
                return Err(Event::Close(CloseReason::SocketClosed));
            };
            if let Some(r) = c.closing() {
                return Err(Event::Close(r));
            }
            if c.unsent() == 0 {
                // What the transport itself still holds (TLS records).
                return match stream.poll_flush(cx) {
                    Poll::Ready(Err(_)) => Err(Event::Eof),
                    _ => Ok(()),
                };
            }
            if self.faults.as_ref().is_some_and(|f| f.writes_fail(self.id)) {
                return Err(Event::Eof);
            }
            match stream.poll_write(cx, c.unsent_bytes()) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(Event::Eof),
                Poll::Ready(Ok(n)) => {
                    c.wrote(n);
                    self.metrics.bytes_sent += n as u64;
                }
                // The socket is full: glommio wakes us when it drains.
                Poll::Pending => return Ok(()),
            }
            if let Some(sk) = c.session().filter(|_| c.unsent() == 0) {
                self.after_write(sk);
            }
        }
        // Plenty written this turn; come back after others had theirs.
        cx.waker().wake_by_ref();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tcp::Tcp;
    use std::os::fd::OwnedFd;
    use std::rc::Rc;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// An idle connection is mostly its task (BENCHMARKS.md's memory
    /// breakdown): `cargo test --lib the_connection_task_stays_small --
    /// --nocapture` prints the size of its future (96 B: the connection,
    /// the stream and one word for a boxed wait), and this fails if it grows.
    #[test]
    fn the_connection_task_stays_small() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor");
        ex.run(async {
            let shard: ShardRef = Rc::new(std::cell::RefCell::new(Shard::new(
                0,
                1,
                Arc::new(crate::config::Config::default()),
                Arc::new(crate::hooks::Hooks::new()),
                crate::metrics::MetricsBoard::new(1),
                Arc::new(AtomicBool::new(false)),
            )));
            let (ours, _peer) = std::os::unix::net::UnixStream::pair().expect("pair");
            let tcp = Tcp::new(OwnedFd::from(ours)).expect("register");
            let conn = Conn {
                shard,
                key: ConnKey::from_raw(0),
                inbuf: Vec::new(),
                need: 0,
                handed: false,
                step: Step::Input,
                slot: None,
                rate: None,
            };
            let task = conn.run(tcp);
            let size = std::mem::size_of_val(&task);
            eprintln!("connection task future: {size} B");
            assert!(size <= 96, "the connection task's future grew to {size} B");
        });
    }
}
