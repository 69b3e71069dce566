//! The fan-out part: large fan-outs delivered in slices.
//!
//! Owns the queue of messages still being delivered to this shard's
//! subscribers ([`Fanout`]), the fan-out task's waker and the scratch list
//! the router fills with a message's local hits. `protocol/deliver.rs`
//! decides when a fan-out is too large to deliver at once and drives the
//! slices; the per-shard task (`deliver::fanout_task`) waits here for work.

use crate::message::Message;
use crate::router::Hit;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The subscriptions one message goes to, a session's next to each other
/// (`Router::local_hits`).
pub type Hits = Vec<Hit>;

/// A message still being delivered to its local subscribers.
#[derive(Debug)]
pub struct Fanout {
    pub msg: Arc<Message>,
    /// The sessions to deliver to; shared by consecutive messages to the same
    /// subscribers, so a burst is recognised by pointer.
    pub hits: Rc<Hits>,
    /// Index of the next hit to deliver.
    pub next: usize,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct Fanouts {
    pending: VecDeque<Fanout>,
    waker: Option<Waker>,
    /// Reused to collect a message's hits: no allocation per publish.
    scratch: Hits,
}

impl Fanouts {
    /// Whether a fan-out is in progress (later messages must queue behind it).
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The scratch hit list (empty); give it back with [`Self::give_back`].
    pub fn take_scratch(&mut self) -> Hits {
        std::mem::take(&mut self.scratch)
    }

    /// Return the scratch list, emptied, for the next message.
    pub fn give_back(&mut self, mut hits: Hits) {
        hits.clear();
        self.scratch = hits;
    }

    /// Queue `msg` for `hits` and wake the task. A burst to the same
    /// subscribers shares the previous message's list (recognised by
    /// pointer); the scratch list then goes back for the next message.
    pub fn enqueue(&mut self, msg: &Arc<Message>, hits: Hits) {
        let hits = match self.pending.back() {
            Some(back) if *back.hits == hits => {
                let shared = back.hits.clone();
                self.give_back(hits);
                shared
            }
            _ => Rc::new(hits),
        };
        self.pending.push_back(Fanout {
            msg: msg.clone(),
            hits,
            next: 0,
        });
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Ready when there is work; otherwise keep the task's waker.
    pub fn poll_work(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.busy() {
            return Poll::Ready(());
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The oldest pending messages that share their subscribers and progress
    /// (a burst to one topic), taken off the queue to be delivered together.
    pub fn take_group(&mut self) -> Vec<Fanout> {
        let Some(head) = self.pending.front() else {
            return Vec::new();
        };
        let same = |f: &Fanout| f.next == head.next && Rc::ptr_eq(&f.hits, &head.hits);
        let group = self.pending.iter().take_while(|f| same(f)).count();
        self.pending.drain(..group).collect()
    }

    /// Put a partly delivered group back at the front, resuming at `next`.
    pub fn put_back(&mut self, group: Vec<Fanout>, next: usize) {
        for mut f in group.into_iter().rev() {
            f.next = next;
            self.pending.push_front(f);
        }
    }
}
