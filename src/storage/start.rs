//! Start-up: each shard rebuilds its state from the log, writes it as the
//! first segment of the new generation, and waits until every shard has.
//!
//! The starting thread locks the directory and lays out the generations
//! (`layout.rs`), then hands every shard the same [`Plan`]. Each shard, on
//! its own executor and in parallel with the others, reads its segments
//! with `DmaFile` reads and replays them (`replay.rs`): a torn or corrupt
//! last record of a shard's last segment is cut off with a warning that
//! says what was dropped; damage anywhere else stops the start unless
//! `--recover` says to keep what is readable. The shard then attaches the
//! journal's encoder, writes its state (a snapshot) into generation G+1,
//! syncs it and reports. Once all have, the starting thread makes G+1 the
//! generation in force ([`super::layout::Layout::commit`]) and the shards
//! begin serving; if any failed, none serves. Retained messages this shard
//! received first are then offered to the other shards again (an update
//! that reached this shard's disk but not a peer's before a crash).

use super::layout::Layout;
use super::record::Encoder;
use super::replay::Replayer;
use super::snapshot;
use super::writer::{read_segment, Segment};
use crate::message::{wall_clock_us, Message};
use crate::shard::mesh::MeshMsg;
use crate::shard::{Shard, ShardRef};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PENDING: u8 = 0;
const GO: u8 = 1;
const ABORT: u8 = 2;

/// What every shard is given at start, and how it reports back.
#[derive(Debug)]
pub struct Plan {
    pub layout: Layout,
    /// Start from what is readable when a segment is damaged before its end.
    pub recover: bool,
    reports: Mutex<Sender<Result<String, String>>>,
    go: AtomicU8,
}

impl Plan {
    pub fn new(layout: Layout, recover: bool) -> (Arc<Plan>, Receiver<Result<String, String>>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let plan = Arc::new(Plan {
            layout,
            recover,
            reports: Mutex::new(tx),
            go: AtomicU8::new(PENDING),
        });
        (plan, rx)
    }

    /// Every shard reported: serve (`ok`) or not.
    pub fn release(&self, ok: bool) {
        self.go
            .store(if ok { GO } else { ABORT }, Ordering::Release);
    }

    fn report(&self, r: Result<String, String>) {
        if let Ok(tx) = self.reports.lock() {
            let _ = tx.send(r);
        }
    }
}

/// Reports a failure when dropped while still holding the plan.
struct Unreported<'a>(Option<&'a Plan>);

impl Drop for Unreported<'_> {
    fn drop(&mut self) {
        if let Some(plan) = self.0.take() {
            plan.report(Err("storage: a shard stopped during its replay".into()));
        }
    }
}

/// Rebuild `shard` from the log, write its state into the new generation,
/// report, and wait for the others. The writer's segment when it may serve.
pub async fn open(shard: &ShardRef, plan: &Plan) -> Option<Segment> {
    // A replay that panics still reports (from the drop), so the start
    // fails with a message instead of waiting for this shard forever.
    let mut pending = Unreported(Some(plan));
    let result = rebuild(shard, plan).await;
    pending.0 = None;
    let (seg, report) = match result {
        Ok((seg, summary)) => (Some(seg), Ok(summary)),
        Err(e) => (None, Err(e)),
    };
    plan.report(report);
    loop {
        match plan.go.load(Ordering::Acquire) {
            PENDING => glommio::timer::sleep(Duration::from_millis(2)).await,
            GO => break,
            _ => return None,
        }
    }
    shard.borrow_mut().offer_restored_retained();
    seg
}

/// The writer's segment and a line that says what came back.
async fn rebuild(shard: &ShardRef, plan: &Plan) -> Result<(Segment, String), String> {
    let t0 = Instant::now();
    let (id, n) = {
        let sh = shard.borrow();
        (sh.id, sh.shards)
    };
    let layout = &plan.layout;
    let keep = layout.resharding().then_some((id, n));
    let mut rp = Replayer::new(keep);
    let paths = layout.segments_for(id);
    for (old, path) in &paths {
        rp.source(*old);
        let bytes = read_segment(path)
            .await
            .map_err(|e| format!("storage: cannot read {}: {e}", path.display()))?;
        let damage = rp.segment(&mut shard.borrow_mut(), &bytes);
        let Some(d) = damage else { continue };
        let last = layout.old_segments.iter().any(|s| s.last() == Some(path));
        let what = format!(
            "{} at offset {}: {} ({} bytes dropped)",
            path.display(),
            d.offset,
            d.why,
            d.dropped
        );
        if last {
            log::warn!(
                "storage: shard {id}: the log ends in a torn or corrupt record, cut there: {what}"
            );
        } else if plan.recover {
            log::warn!(
                "storage: shard {id}: --recover: skipping the rest of a damaged segment: {what}"
            );
        } else {
            return Err(format!(
                "storage: shard {id}: damaged log before its end: {what}; start with --recover \
                 to keep what is readable and drop the rest of that segment"
            ));
        }
    }
    let now_ms = wall_clock_us() / 1000;
    let (counts, bytes, upto, sessions, retained) = {
        let mut guard = shard.borrow_mut();
        let sh = &mut *guard;
        sh.journal.attach(Box::default());
        let counts = rp.finish(sh, now_ms);
        sh.metrics.storage_records_replayed += counts.records;
        let (bytes, upto, sessions) = match sh.journal.log_mut() {
            Some(enc) => {
                write_state((&sh.sessions, &sh.router), enc, now_ms);
                (enc.take(), enc.appended(), enc.durable_sessions())
            }
            None => return Err("storage: no encoder".into()),
        };
        sh.post_durable();
        (counts, bytes, upto, sessions, sh.router.retained().len())
    };
    let dir = layout.new_shard_dir(id);
    let mut seg = Segment::create(&dir, 1)
        .await
        .map_err(|e| format!("storage: cannot create a segment in {}: {e}", dir.display()))?;
    seg.append(&bytes, true)
        .await
        .map_err(|e| format!("storage: cannot write {}: {e}", seg.path().display()))?;
    shard.borrow_mut().log_durable(upto);
    let summary = format!(
        "storage: shard {id}: replayed {} records ({} bytes) from {} segments in {} ms: {sessions} \
         persistent sessions, {retained} retained messages, {} sessions expired while stopped",
        counts.records,
        counts.bytes,
        paths.len(),
        t0.elapsed().as_millis(),
        counts.expired
    );
    Ok((seg, summary))
}

/// Write a shard's whole state through `enc` (a start, or a compaction offline).
pub fn write_state(
    (sessions, router): (&crate::session::store::Sessions, &crate::router::Router),
    enc: &mut Encoder,
    now_ms: u64,
) {
    enc.tick(now_ms);
    for sk in enc.durable_keys() {
        snapshot::session(sessions, router, enc, sk);
    }
    snapshot::retained(router, enc);
}

impl Shard {
    /// Offer the retained messages and deletes this shard received first
    /// to the other shards (last writer wins there by id).
    fn offer_restored_retained(&mut self) {
        if self.shards < 2 {
            return;
        }
        let mine = |m: &Message| usize::from(m.id.shard()) == self.id;
        let mut offers: Vec<Arc<Message>> = self
            .router
            .retained()
            .all()
            .filter(|m| mine(m))
            .cloned()
            .collect();
        for (topic, id) in self.router.retained().tombstones() {
            let m = Message {
                id,
                topic: topic.clone(),
                payload: bytes::Bytes::new(),
                qos: crate::codec::QoS::AtMostOnce,
                retain: true,
                from: "".into(),
                props: None,
            };
            if mine(&m) {
                offers.push(Arc::new(m));
            }
        }
        for msg in offers {
            self.broadcast(|| MeshMsg::Retain {
                msg: msg.clone(),
                barrier: 0,
            });
        }
    }
}
