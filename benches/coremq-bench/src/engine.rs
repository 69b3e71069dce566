//! The worker runtime: glommio executors full of clients, the run's phases,
//! publish pacing and keepalive.
//!
//! Owns [`Exec`] (per-executor state: the clients it runs, its latency
//! histogram, the tick task's schedule) and the worker main loop
//! ([`run_worker`]), which moves the shared [`Phase`] forward: connect, wait
//! for the parent's GO, publish for `--duration`, drain, done. Called by
//! `main.rs` in worker processes; talks to the parent through stdout lines
//! (`PROG`, `READY`, `FINAL`) and reads `GO` from stdin.

use crate::args::Args;
use crate::client::{run_client, Client};
use crate::procstat;
use crate::scenario::{ClientSpec, Plan};
use crate::stats::{new_histogram, ConnectClock, Counters, WorkerResult};
use crate::transport::Setup;
use crate::verify::Tally;
use coremq::codec::Disconnect;
use coremq::codec::Packet;
use glommio::timer::sleep;
use glommio::{spawn_local, LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the run is; set by the worker main thread, read by every task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting = 0,
    /// Connect phase over; waiting for GO.
    Ready = 1,
    Publishing = 2,
    Draining = 3,
    Done = 4,
}

fn phase_of(v: u8) -> Phase {
    match v {
        0 => Phase::Connecting,
        1 => Phase::Ready,
        2 => Phase::Publishing,
        3 => Phase::Draining,
        _ => Phase::Done,
    }
}

/// Per-executor state, shared by its client tasks and its tick task.
pub struct Exec {
    pub args: Arc<Args>,
    pub plan: Arc<Plan>,
    pub counters: Arc<Counters>,
    phase: Arc<AtomicU8>,
    pub target: SocketAddr,
    /// TLS / WebSocket settings; `None` for plain TCP.
    pub transport: Option<Arc<Setup>>,
    /// When this worker's clients finished connecting.
    pub clock: Arc<ConnectClock>,
    pub bad_payload: Cell<u64>,
    pub hist: RefCell<Histogram<u64>>,
    clients: RefCell<Vec<Rc<RefCell<Client>>>>,
    /// Clients whose outbox the socket did not take entirely.
    dirty: RefCell<Vec<Rc<RefCell<Client>>>>,
    errors_shown: Cell<u32>,
}

impl Exec {
    pub fn phase(&self) -> Phase {
        phase_of(self.phase.load(Relaxed))
    }

    pub fn register(&self, c: Rc<RefCell<Client>>) {
        self.clients.borrow_mut().push(c);
    }

    pub fn mark_dirty(&self, c: &Rc<RefCell<Client>>) {
        self.dirty.borrow_mut().push(c.clone());
    }

    /// Print the first few errors of this executor (they are counted anyway).
    pub fn note_error(&self, e: &std::io::Error) {
        if self.errors_shown.get() < 3 {
            self.errors_shown.set(self.errors_shown.get() + 1);
            eprintln!("coremq-bench: client error: {e}");
        }
    }

    /// After an ack: when saturating, put the next publish in the window now.
    pub fn refill(&self, c: &mut Client) {
        if self.plan.rate_per_pub == 0.0
            && self.phase() == Phase::Publishing
            && c.spec.publish.is_some()
            && c.can_publish()
        {
            c.publish(self);
        }
    }
}

/// What one executor hands back when the run is over.
struct ExecResult {
    tally: Tally,
    expected: u64,
    bad_payload: u64,
    hist: Histogram<u64>,
}

/// Spread the initial phase of publisher `i` over its interval.
fn phase_offset(i: u64) -> f64 {
    (i as f64 * 0.618_033_988_749_895).fract()
}

/// Rate-paced publishing: pop every publisher that is due, publish once.
fn pace(
    exec: &Exec,
    pubs: &[Rc<RefCell<Client>>],
    heap: &mut BinaryHeap<Reverse<(u64, usize)>>,
    elapsed_us: u64,
) {
    let rate = exec.plan.rate_per_pub;
    // Publishers that were due but could not publish (QoS 1/2 window or
    // outbox full). Their slot stays due and is retried on the next tick,
    // once this tick has let the read tasks take the acks: pushed straight
    // back, with the same due time, it would be popped again at once, and
    // this loop would spin forever without yielding, so the acks that free
    // the window were never read (the worker hung until the parent killed it).
    let mut blocked = Vec::new();
    while let Some(&Reverse((due, k))) = heap.peek() {
        if due > elapsed_us {
            break;
        }
        heap.pop();
        let mut c = pubs[k].borrow_mut();
        if !c.open {
            continue;
        }
        if !c.can_publish() {
            blocked.push(Reverse((due, k)));
            continue;
        }
        c.publish(exec);
        c.scheduled += 1;
        if !c.flush() || c.has_backlog() {
            drop(c);
            exec.mark_dirty(&pubs[k]);
            c = pubs[k].borrow_mut();
        }
        let next = (c.scheduled as f64 + 1.0 - phase_offset(c.spec.index)) / rate;
        heap.push(Reverse(((next * 1e6) as u64, k)));
    }
    heap.extend(blocked);
}

/// Saturating publishing: fill each publisher's window (or a batch) per tick.
fn saturate(exec: &Exec, pubs: &[Rc<RefCell<Client>>]) {
    for p in pubs {
        let mut c = p.borrow_mut();
        let mut n = 0;
        while n < exec.args.batch && c.can_publish() {
            c.publish(exec);
            n += 1;
        }
        c.flush();
    }
}

fn flush_dirty(exec: &Exec) {
    let list: Vec<_> = exec.dirty.borrow_mut().drain(..).collect();
    for c in list {
        let mut b = c.borrow_mut();
        if b.open && (!b.flush() || b.has_backlog()) {
            drop(b);
            exec.dirty.borrow_mut().push(c);
        }
    }
}

fn ping_all(exec: &Exec) {
    for c in exec.clients.borrow().iter() {
        let mut b = c.borrow_mut();
        if b.open {
            b.push_packet(&Packet::PingReq);
            b.flush();
        }
    }
}

/// The executor's one timer loop: publishing, retrying writes, keepalive.
async fn tick_loop(exec: Rc<Exec>) {
    let tick = Duration::from_millis(if exec.plan.publishers > 0 { 1 } else { 50 });
    let ping_every = Duration::from_secs(u64::from(exec.args.keepalive) / 2);
    let mut next_ping = Instant::now() + ping_every;
    let mut start: Option<Instant> = None;
    let mut pubs: Vec<Rc<RefCell<Client>>> = Vec::new();
    let mut heap = BinaryHeap::new();
    loop {
        sleep(tick).await;
        let phase = exec.phase();
        if phase == Phase::Done {
            return;
        }
        if phase == Phase::Publishing {
            let t0 = *start.get_or_insert_with(|| {
                pubs = exec
                    .clients
                    .borrow()
                    .iter()
                    .filter(|c| c.borrow().spec.publish.is_some())
                    .cloned()
                    .collect();
                heap = (0..pubs.len())
                    .map(|k| {
                        let first = (1.0 - phase_offset(pubs[k].borrow().spec.index))
                            / exec.plan.rate_per_pub.max(1e-9);
                        Reverse(((first * 1e6) as u64, k))
                    })
                    .collect();
                Instant::now()
            });
            if exec.plan.rate_per_pub > 0.0 {
                pace(&exec, &pubs, &mut heap, t0.elapsed().as_micros() as u64);
            } else {
                saturate(&exec, &pubs);
            }
        }
        flush_dirty(&exec);
        if Instant::now() >= next_ping {
            ping_all(&exec);
            next_ping += ping_every;
        }
    }
}

/// Spawn this executor's clients at its share of `--conn-rate`.
async fn connector(exec: Rc<Exec>, specs: Vec<ClientSpec>, rate: f64) {
    let step = Duration::from_millis(10);
    let per_step = rate * step.as_secs_f64();
    let mut budget = 0.0;
    let mut it = specs.into_iter();
    'outer: while exec.phase() == Phase::Connecting {
        budget += per_step;
        while budget >= 1.0 {
            let Some(spec) = it.next() else { break 'outer };
            spawn_local(run_client(exec.clone(), spec)).detach();
            budget -= 1.0;
        }
        sleep(step).await;
    }
}

fn collect(exec: &Exec) -> ExecResult {
    let mut tally = Tally::default();
    let mut expected = 0;
    for c in exec.clients.borrow().iter() {
        let mut b = c.borrow_mut();
        tally.add(&b.tracker.tally);
        if b.spec.publish.is_some() {
            expected += b.acked * exec.plan.fanout_of(b.spec.index);
        }
        if b.open {
            b.push_packet(&Packet::Disconnect(Disconnect::normal()));
            b.flush();
        }
    }
    ExecResult {
        tally,
        expected,
        bad_payload: exec.bad_payload.get(),
        hist: exec.hist.borrow().clone(),
    }
}

struct ExecInit {
    args: Arc<Args>,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
    phase: Arc<AtomicU8>,
    target: SocketAddr,
    transport: Option<Arc<Setup>>,
    clock: Arc<ConnectClock>,
    specs: Vec<ClientSpec>,
    conn_rate: f64,
}

async fn exec_main(init: ExecInit) -> ExecResult {
    let exec = Rc::new(Exec {
        args: init.args,
        plan: init.plan,
        counters: init.counters,
        phase: init.phase,
        target: init.target,
        transport: init.transport,
        clock: init.clock,
        bad_payload: Cell::new(0),
        hist: RefCell::new(new_histogram()),
        clients: RefCell::new(Vec::new()),
        dirty: RefCell::new(Vec::new()),
        errors_shown: Cell::new(0),
    });
    let ticker = spawn_local(tick_loop(exec.clone()));
    spawn_local(connector(exec.clone(), init.specs, init.conn_rate)).detach();
    while exec.phase() != Phase::Done {
        sleep(Duration::from_millis(20)).await;
    }
    ticker.await;
    collect(&exec)
}

fn resolve(args: &Args) -> Result<SocketAddr, String> {
    (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}:{}: {e}", args.host, args.port))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{}: no IPv4 address", args.host))
}

/// Start `threads` executors, each with a round-robin share of `specs`.
fn start_executors(
    args: &Arc<Args>,
    plan: &Arc<Plan>,
    counters: &Arc<Counters>,
    phase: &Arc<AtomicU8>,
    clock: &Arc<ConnectClock>,
    specs: Vec<ClientSpec>,
) -> Result<Vec<glommio::ExecutorJoinHandle<ExecResult>>, String> {
    let target = resolve(args)?;
    let transport = Setup::from_args(args)?;
    let threads = args.threads as usize;
    let mut shares: Vec<Vec<ClientSpec>> = vec![Vec::new(); threads];
    for (k, s) in specs.into_iter().enumerate() {
        shares[k % threads].push(s);
    }
    let k = args.worker_count.unwrap_or(1).max(1);
    let conn_rate = args.conn_rate / f64::from(k) / threads as f64;
    let mut handles = Vec::new();
    for (t, specs) in shares.into_iter().enumerate() {
        let init = ExecInit {
            args: args.clone(),
            plan: plan.clone(),
            counters: counters.clone(),
            phase: phase.clone(),
            target,
            transport: transport.clone(),
            clock: clock.clone(),
            specs,
            conn_rate,
        };
        let h = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("bench-{t}"))
            .io_memory(64 << 10)
            .ring_depth(1024)
            .spawn(move || exec_main(init))
            .map_err(|e| format!("cannot start executor: {e}"))?;
        handles.push(h);
    }
    Ok(handles)
}

/// Print a PROG line every second until `until` or `stop()`.
fn progress_until(counters: &Counters, until: Instant, stop: impl Fn() -> bool) {
    let mut next = Instant::now();
    let mut out = std::io::stdout();
    while Instant::now() < until && !stop() {
        if Instant::now() >= next {
            let _ = writeln!(out, "PROG {}", counters.snapshot().to_kv());
            let _ = out.flush();
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Read the parent's `GO` from stdin; EOF (parent gone) aborts the run.
fn watch_stdin(go: Arc<AtomicBool>, abort: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("GO") => go.store(true, Relaxed),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        abort.store(true, Relaxed);
    });
}

/// Main of a worker process. Returns the exit code.
pub fn run_worker(args: Args) -> i32 {
    coremq::host::raise_nofile();
    let args = Arc::new(args);
    let plan = Arc::new(Plan::from_args(&args));
    let (w, k) = (
        args.worker_index.unwrap_or(0),
        args.worker_count.unwrap_or(1),
    );
    let specs: Vec<ClientSpec> = plan
        .worker_share(u64::from(w), u64::from(k))
        .map(|i| plan.client(i, &args.client_prefix))
        .collect();
    let mine = specs.len() as u64;
    let counters = Arc::new(Counters::default());
    let phase = Arc::new(AtomicU8::new(Phase::Connecting as u8));
    let clock = Arc::new(ConnectClock::start());
    let handles = match start_executors(&args, &plan, &counters, &phase, &clock, specs) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("coremq-bench worker {w}: {e}");
            return 2;
        }
    };
    let (go, abort) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    watch_stdin(go.clone(), abort.clone());
    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout);
    progress_until(&counters, deadline, || {
        let s = counters.snapshot();
        s.connect_ok + s.connect_fail >= mine || abort.load(Relaxed)
    });
    phase.store(Phase::Ready as u8, Relaxed);
    let s = counters.snapshot();
    let connect_timeout = mine.saturating_sub(s.connect_ok + s.connect_fail);
    println!("READY {}", s.to_kv());
    let _ = std::io::stdout().flush();
    let go_deadline = Instant::now() + Duration::from_secs(120);
    progress_until(&counters, go_deadline, || {
        go.load(Relaxed) || abort.load(Relaxed)
    });
    let mut publish_secs = 0.0;
    let mut window = s;
    if go.load(Relaxed) && !abort.load(Relaxed) {
        phase.store(Phase::Publishing as u8, Relaxed);
        let t0 = Instant::now();
        progress_until(
            &counters,
            t0 + Duration::from_secs_f64(args.duration),
            || abort.load(Relaxed),
        );
        window = counters.snapshot();
        publish_secs = t0.elapsed().as_secs_f64();
        phase.store(Phase::Draining as u8, Relaxed);
        progress_until(
            &counters,
            Instant::now() + Duration::from_secs_f64(args.drain),
            || abort.load(Relaxed),
        );
    }
    phase.store(Phase::Done as u8, Relaxed);
    let mut res = WorkerResult::empty();
    for h in handles {
        match h.join() {
            Ok(r) => {
                res.tally.add(&r.tally);
                res.expected += r.expected;
                res.bad_payload += r.bad_payload;
                let _ = res.latency_us.add(&r.hist);
            }
            Err(e) => eprintln!("coremq-bench worker {w}: executor failed: {e}"),
        }
    }
    // After the join: the trackers and the counters saw the same deliveries.
    res.snap = counters.snapshot();
    res.window_sent = window.sent;
    res.window_received = window.received;
    res.connect_timeout = connect_timeout;
    res.connect_secs = clock.secs();
    res.publish_secs = publish_secs;
    res.cpu_secs = procstat::self_cpu_secs();
    println!("{}", res.to_line());
    let _ = std::io::stdout().flush();
    0
}
