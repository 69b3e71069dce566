//! The parent process: forks `--workers K` copies of itself, starts them all
//! at once, aggregates their progress and results, and samples the broker.
//!
//! Owns the worker children (by PID: it kills only them, and only when they
//! overrun the run's time bound) and the broker samples. Called by
//! [`crate::run`]; hands an [`Outcome`] to `report.rs`.
//! Protocol: each worker prints `PROG k=v..` every second, `READY k=v..` when
//! its connect phase is over and `FINAL k=v..` at the end; the parent writes
//! `GO` to every worker's stdin once all are READY.

use crate::args::Args;
use crate::procstat::{self, Sample};
use crate::scenario::Plan;
use crate::stats::{parse_kv, Snapshot, WorkerResult};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Connections one worker process takes at most (fd limit 20000, minus slack).
pub const PER_WORKER: u64 = 19_000;

/// Broker figures sampled with `--broker-pid`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokerStats {
    pub pid: u32,
    /// Before the first connection.
    pub base: Sample,
    /// When every worker was READY (connections open, idle); publishing
    /// starts right after.
    pub connected: Sample,
    /// When the drain ended.
    pub end: Sample,
    pub rss_max_kb: u64,
}

/// Everything the report needs.
pub struct Outcome {
    pub result: WorkerResult,
    pub workers: u32,
    pub broker: Option<BrokerStats>,
    pub problems: Vec<String>,
    pub wall_secs: f64,
}

enum Event {
    Line(usize, String),
    Eof(usize),
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    last: Snapshot,
    ready: bool,
    result: Option<WorkerResult>,
    gone: bool,
}

fn spawn_workers(argv: &[OsString], k: u32) -> Result<(Vec<Worker>, Receiver<Event>), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let (tx, rx) = channel();
    let mut ws = Vec::new();
    for i in 0..k {
        let mut child = Command::new(&exe)
            .args(argv)
            .args([
                "--worker-index",
                &i.to_string(),
                "--worker-count",
                &k.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        let out = child.stdout.take().ok_or("worker stdout missing")?;
        let tx = tx.clone();
        let idx = i as usize;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Event::Line(idx, line));
            }
            let _ = tx.send(Event::Eof(idx));
        });
        let stdin = child.stdin.take();
        ws.push(Worker {
            child,
            stdin,
            last: Snapshot::default(),
            ready: false,
            result: None,
            gone: false,
        });
    }
    Ok((ws, rx))
}

fn handle(ws: &mut [Worker], ev: Event, problems: &mut Vec<String>) {
    match ev {
        Event::Eof(i) => ws[i].gone = true,
        Event::Line(i, line) => {
            let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match tag {
                "PROG" | "READY" => {
                    if let Ok(s) = Snapshot::from_kv(&parse_kv(rest)) {
                        ws[i].last = s;
                    }
                    ws[i].ready |= tag == "READY";
                }
                "FINAL" => match WorkerResult::from_kv_str(rest) {
                    Ok(r) => ws[i].result = Some(r),
                    Err(e) => problems.push(format!("worker {i}: bad FINAL line: {e}")),
                },
                _ => {}
            }
        }
    }
}

/// Aggregate progress line, once a second, on stderr.
fn progress(ws: &[Worker], prev: &mut Snapshot, t0: Instant, quiet: bool) {
    let mut s = Snapshot::default();
    ws.iter().for_each(|w| s.add(&w.last));
    if !quiet {
        eprintln!(
            "[{:>4.0}s] connected={} failed={} closed={} in={}/s out={}/s acked={}",
            t0.elapsed().as_secs_f64(),
            s.connected,
            s.connect_fail,
            s.closed,
            s.sent.saturating_sub(prev.sent),
            s.received.saturating_sub(prev.received),
            s.acked
        );
    }
    *prev = s;
}

/// Run the whole thing from the parent's side.
pub fn run_parent(args: &Args, argv: &[OsString]) -> Result<Outcome, String> {
    let plan = Plan::from_args(args);
    // Bad TLS flags or files: say so once, before any worker starts.
    crate::transport::Setup::from_args(args)?;
    let k = args
        .workers
        .unwrap_or(plan.total.div_ceil(PER_WORKER).max(1) as u32);
    if plan.total > u64::from(k) * PER_WORKER {
        eprintln!("coremq-bench: warning: {} clients over {k} workers exceeds ~{PER_WORKER} fds per process", plan.total);
    }
    let t0 = Instant::now();
    let mut broker = args
        .broker_pid
        .and_then(procstat::sample)
        .map(|s| BrokerStats {
            pid: args.broker_pid.unwrap_or(0),
            base: s,
            rss_max_kb: s.rss_kb,
            ..Default::default()
        });
    let (mut ws, rx) = spawn_workers(argv, k)?;
    let mut problems = Vec::new();
    let connect_bound = Duration::from_secs_f64(args.connect_timeout + 30.0);
    let run_bound = Duration::from_secs_f64(args.duration + args.drain + 60.0);
    let mut deadline = t0 + connect_bound;
    let (mut go_at, mut end_sampled) = (None::<Instant>, false);
    let mut prev = Snapshot::default();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(ev) => handle(&mut ws, ev, &mut problems),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if go_at.is_none() && ws.iter().all(|w| w.ready || w.gone) {
            go_at = Some(start_publishing(&mut ws, &mut broker));
            deadline = Instant::now() + run_bound;
        }
        if let (Some(g), false) = (go_at, end_sampled) {
            if g.elapsed().as_secs_f64() >= args.duration + args.drain * 0.9 {
                end_sampled = true;
                sample_into(&mut broker, |b, s| b.end = s);
            }
        }
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            progress(&ws, &mut prev, t0, args.quiet);
            sample_into(&mut broker, |_, _| {});
        }
        if ws.iter().all(|w| w.gone) {
            break;
        }
        if Instant::now() >= deadline {
            problems.push("run overran its time bound: workers killed".into());
            break;
        }
    }
    finish(ws, broker, problems, t0, k)
}

fn sample_into(broker: &mut Option<BrokerStats>, f: impl FnOnce(&mut BrokerStats, Sample)) {
    if let Some(b) = broker.as_mut() {
        if let Some(s) = procstat::sample(b.pid) {
            b.rss_max_kb = b.rss_max_kb.max(s.rss_kb);
            f(b, s);
        }
    }
}

fn start_publishing(ws: &mut [Worker], broker: &mut Option<BrokerStats>) -> Instant {
    sample_into(broker, |b, s| b.connected = s);
    for w in ws.iter_mut() {
        if let Some(stdin) = w.stdin.as_mut() {
            let _ = writeln!(stdin, "GO").and_then(|_| stdin.flush());
        }
    }
    Instant::now()
}

fn finish(
    ws: Vec<Worker>,
    broker: Option<BrokerStats>,
    mut problems: Vec<String>,
    t0: Instant,
    k: u32,
) -> Result<Outcome, String> {
    let mut result = WorkerResult::empty();
    for (i, mut w) in ws.into_iter().enumerate() {
        drop(w.stdin.take());
        if !w.gone {
            // Only our own child, by its PID.
            let _ = w.child.kill();
        }
        let _ = w.child.wait();
        match &w.result {
            Some(r) => result.merge(r),
            None => problems.push(format!("worker {i} gave no result")),
        }
    }
    Ok(Outcome {
        result,
        workers: k,
        broker,
        problems,
        wall_secs: t0.elapsed().as_secs_f64(),
    })
}
