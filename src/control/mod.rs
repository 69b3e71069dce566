//! The control part: node-wide questions asked over the mesh.
//!
//! `$SYS`, the alarms, Prometheus `/metrics`, the HTTP API and the dashboard
//! ask the node questions. Whoever asks ([`ask_all`], [`ask_one`]: the
//! control task and the HTTP listener, both on shard 0) sends one
//! [`Ask`](ask::Ask) per shard over the mesh; each shard answers from its own
//! parts ([`answer`]) with a `MeshMsg::Answer`, and the asker merges. The
//! asker's own shard answers at once, without a message. Counters stay
//! plain per-shard integers: nothing shared is written on the publish path.
//!
//! [`Control`] is the per-shard part: the questions this shard asked that
//! still wait for answers. `sys.rs` is the task publishing `$SYS` and the
//! alarms (`alarms.rs`); `process.rs` reads the process's own figures.

pub mod alarms;
pub mod answer;
pub mod ask;
pub mod process;
pub mod sys;

use crate::shard::mesh::MeshMsg;
use crate::shard::ShardRef;
use ahash::AHashMap;
use ask::{Answer, Ask};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How long an asker waits for every shard's answer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// A question waiting for answers: one slot per shard.
#[derive(Debug)]
struct Pending {
    answers: Vec<Option<Answer>>,
    remaining: usize,
    waker: Option<Waker>,
    /// Past this, the entry is dropped even if its asker never came back.
    expires: Instant,
}

/// How long [`Control::busy`] averages over.
const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// How long a count of the open descriptors is used before it is taken
/// again (listing `/proc/self/fd` is linear in them).
const FDS_FRESH: Duration = Duration::from_secs(10);

/// The control part of a shard (see the module doc).
#[derive(Debug)]
pub struct Control {
    pending: AHashMap<u64, Pending>,
    next: u64,
    /// The executor's run time since `window_start` (sampled every tick).
    ran: Duration,
    window_start: Instant,
    /// Share of the last full [`BUSY_WINDOW`] the shard spent running.
    busy: f64,
    /// The process's open descriptors and when they were counted.
    fds: Option<(Instant, u64)>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            pending: AHashMap::new(),
            next: 1,
            ran: Duration::ZERO,
            window_start: Instant::now(),
            busy: 0.0,
            fds: None,
        }
    }
}

impl Control {
    /// Register a question for `targets` shards out of `shards`; entries
    /// whose askers went away without giving up are swept first.
    fn open(&mut self, shards: usize, targets: usize) -> u64 {
        let now = Instant::now();
        self.pending.retain(|_, p| p.expires > now);
        let id = self.next;
        self.next += 1;
        self.pending.insert(
            id,
            Pending {
                answers: (0..shards).map(|_| None).collect(),
                remaining: targets,
                waker: None,
                expires: now + 2 * ASK_TIMEOUT,
            },
        );
        id
    }

    /// Shard `from` answered question `id` (one that gave up is ignored).
    pub fn put(&mut self, id: u64, from: usize, answer: Answer) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if let Some(slot) = p.answers.get_mut(from).filter(|s| s.is_none()) {
            *slot = Some(answer);
            p.remaining = p.remaining.saturating_sub(1);
            if p.remaining == 0 {
                if let Some(w) = p.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// The answers once all arrived, else remember who to wake.
    fn poll(&mut self, id: u64, waker: &Waker) -> Poll<Vec<Option<Answer>>> {
        match self.pending.get_mut(&id) {
            Some(p) if p.remaining > 0 => {
                p.waker = Some(waker.clone());
                Poll::Pending
            }
            _ => Poll::Ready(self.give_up(id)),
        }
    }

    /// Stop waiting: what arrived so far.
    fn give_up(&mut self, id: u64) -> Vec<Option<Answer>> {
        self.pending
            .remove(&id)
            .map(|p| p.answers)
            .unwrap_or_default()
    }

    /// Add the executor's run time since the last sample (every tick);
    /// each [`BUSY_WINDOW`] becomes the new [`busy`](Self::busy) share.
    pub fn sample_busy(&mut self) {
        self.ran += glommio::executor().executor_stats().total_runtime();
        let span = self.window_start.elapsed();
        if span >= BUSY_WINDOW {
            self.busy = (self.ran.as_secs_f64() / span.as_secs_f64()).min(1.0);
            self.ran = Duration::ZERO;
            self.window_start = Instant::now();
        }
    }

    /// Share of the last second the shard spent running (not waiting).
    pub fn busy(&self) -> f64 {
        self.busy
    }

    /// The open descriptors counted less than [`FDS_FRESH`] ago, if any.
    pub fn fds(&self) -> Option<u64> {
        self.fds
            .filter(|(at, _)| at.elapsed() < FDS_FRESH)
            .map(|(_, n)| n)
    }

    pub fn set_fds(&mut self, n: u64) {
        self.fds = Some((Instant::now(), n));
    }
}

impl crate::shard::Shard {
    /// Send `ask` to each shard of `targets`; this shard answers at once.
    fn send_ask(&mut self, targets: &[usize], ask: Ask) -> u64 {
        let id = self.control.open(self.shards, targets.len());
        for &t in targets {
            if t == self.id {
                let a = self.answer_ask(ask.clone());
                self.control.put(id, t, a);
            } else {
                self.mesh.push(
                    t,
                    MeshMsg::Ask {
                        id,
                        ask: Box::new(ask.clone()),
                    },
                );
            }
        }
        id
    }

    /// A peer's question: answer it from this shard's parts.
    pub fn on_ask(&mut self, peer: usize, id: u64, ask: Ask) {
        let answer = Box::new(self.answer_ask(ask));
        let from = self.id;
        self.mesh.push(peer, MeshMsg::Answer { id, from, answer });
    }
}

/// Gives a question up if its asker is dropped before the answers came
/// (an HTTP client that went away): its entry does not wait for the sweep.
struct Asking<'a> {
    shard: &'a ShardRef,
    id: u64,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if let Ok(mut sh) = self.shard.try_borrow_mut() {
            sh.control.give_up(self.id);
        }
    }
}

/// Ask `targets`; their answers by shard id (None: no answer in time).
async fn ask(shard: &ShardRef, targets: &[usize], q: Ask) -> Vec<Option<Answer>> {
    let asking = Asking {
        shard,
        id: shard.borrow_mut().send_ask(targets, q),
    };
    let id = asking.id;
    let wait = poll_fn(|cx| shard.borrow_mut().control.poll(id, cx.waker()));
    match glommio::timer::timeout(ASK_TIMEOUT, async { Ok(wait.await) }).await {
        Ok(answers) => answers,
        Err(_) => shard.borrow_mut().control.give_up(id),
    }
}

/// Ask every shard; the answers by shard id (None: no answer in time).
pub async fn ask_all(shard: &ShardRef, q: Ask) -> Vec<Option<Answer>> {
    let all: Vec<usize> = (0..shard.borrow().shards).collect();
    ask(shard, &all, q).await
}

/// Ask one shard (None: no answer in time).
pub async fn ask_one(shard: &ShardRef, to: usize, q: Ask) -> Option<Answer> {
    let mut answers = ask(shard, &[to], q).await;
    answers.get_mut(to).and_then(Option::take)
}

/// The home shard of a client id on this broker.
pub fn home_of(shard: &ShardRef, client_id: &str) -> usize {
    crate::shard::home_shard(client_id, shard.borrow().shards)
}
