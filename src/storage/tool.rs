//! `coremq storage inspect DIR` and `coremq storage compact DIR`: the log
//! read (and rewritten) by a process that is not serving it.
//!
//! Both lock the directory first (a running broker holds the lock, so they
//! refuse while it runs), replay each shard's segments into a shard built
//! from the configuration, as a start does (`replay.rs`), and either
//! describe what came back — segments and their sizes, persistent sessions
//! with their subscriptions, queued, unacknowledged and awaiting-PUBREL
//! counts, retained messages — or write it as a new generation and make
//! that the one in force, removing the old segments. Plain blocking file
//! I/O: this runs in the command's own thread, never on a shard. Called by
//! the `coremq` binary.

use super::layout::{self, Layout};
use super::record::Encoder;
use super::replay::Replayer;
use super::start::write_state;
use crate::config::Config;
use crate::message::wall_clock_us;
use crate::shard::Shard;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// One segment file.
#[derive(Debug, Serialize)]
pub struct SegmentInfo {
    pub shard: usize,
    pub file: String,
    pub bytes: u64,
}

/// One persistent session.
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    pub client_id: String,
    pub shard: usize,
    pub subscriptions: Vec<String>,
    pub queued: usize,
    pub inflight: usize,
    pub awaiting_rel: usize,
}

/// One retained message.
#[derive(Debug, Serialize)]
pub struct RetainedInfo {
    pub topic: String,
    pub bytes: usize,
}

/// What `inspect` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub generation: u64,
    pub shards: usize,
    pub records: u64,
    pub segments: Vec<SegmentInfo>,
    pub sessions: Vec<SessionInfo>,
    pub retained: Vec<RetainedInfo>,
    /// Where a segment stopped short of its end (a torn tail, or damage).
    pub damage: Vec<String>,
}

/// A shard of no running broker, to replay a log into.
fn offline_shard(cfg: &Arc<Config>, i: usize, shards: usize) -> Shard {
    Shard::new(
        i,
        shards,
        cfg.clone(),
        Arc::new(crate::hooks::Hooks::new()),
        crate::metrics::MetricsBoard::new(shards),
        Arc::new(AtomicBool::new(false)),
    )
}

/// Replay shard `i`'s `paths` into a fresh shard; damage before a
/// segment's end is an error unless it is the last segment or `recover`.
fn replay_shard(
    cfg: &Arc<Config>,
    i: usize,
    shards: usize,
    paths: &[(usize, PathBuf)],
    recover: bool,
    damage: &mut Vec<String>,
) -> Result<(Shard, u64), String> {
    let mut sh = offline_shard(cfg, i, shards);
    let mut rp = Replayer::new(None);
    for (k, (old, path)) in paths.iter().enumerate() {
        rp.source(*old);
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(d) = rp.segment(&mut sh, &bytes) {
            let what = format!(
                "{} at offset {}: {} ({} bytes)",
                path.display(),
                d.offset,
                d.why,
                d.dropped
            );
            if k + 1 < paths.len() && !recover {
                return Err(format!(
                    "damaged log before its end: {what}; use --recover to keep what is readable"
                ));
            }
            damage.push(what);
        }
    }
    sh.journal.attach(Box::<Encoder>::default());
    let counts = rp.finish(&mut sh, wall_clock_us() / 1000);
    Ok((sh, counts.records))
}

/// Read the log in `dir` (locking it) and describe it.
pub fn inspect(cfg: &Config, dir: &Path, recover: bool) -> Result<Report, String> {
    let _lock = layout::lock(dir).map_err(|e| e.0)?;
    let (generation, shards) = layout::read_current(dir).map_err(|e| e.0)?;
    let cfg = Arc::new(cfg.clone());
    let mut report = Report {
        generation,
        shards,
        records: 0,
        segments: Vec::new(),
        sessions: Vec::new(),
        retained: Vec::new(),
        damage: Vec::new(),
    };
    for i in 0..shards {
        let paths = layout::segments(&layout::shard_dir(dir, generation, i)).map_err(|e| e.0)?;
        let paths: Vec<(usize, PathBuf)> = paths.into_iter().map(|p| (i, p)).collect();
        for (_, p) in &paths {
            report.segments.push(SegmentInfo {
                shard: i,
                file: p.display().to_string(),
                bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            });
        }
        let (sh, records) = replay_shard(&cfg, i, shards, &paths, recover, &mut report.damage)?;
        report.records += records;
        describe(&sh, i, &mut report);
    }
    report
        .sessions
        .sort_by(|a, b| a.client_id.cmp(&b.client_id));
    report.retained.sort_by(|a, b| a.topic.cmp(&b.topic));
    report.retained.dedup_by(|a, b| a.topic == b.topic);
    Ok(report)
}

fn describe(sh: &Shard, i: usize, report: &mut Report) {
    for (_, s) in sh.sessions.iter() {
        let mut subscriptions = Vec::new();
        s.for_each_filter(|f| subscriptions.push(f.to_string()));
        subscriptions.sort();
        report.sessions.push(SessionInfo {
            client_id: s.client_id().to_string(),
            shard: i,
            subscriptions,
            queued: s.queued().count(),
            inflight: s.window_entries().count(),
            awaiting_rel: s.awaiting_rel_ids().len(),
        });
    }
    for m in sh.router.retained().all() {
        report.retained.push(RetainedInfo {
            topic: m.topic.to_string(),
            bytes: m.payload.len(),
        });
    }
}

/// Rewrite the log in `dir` as one snapshot segment per shard.
pub fn compact(cfg: &Config, dir: &Path, recover: bool) -> Result<String, String> {
    let _lock = layout::lock(dir).map_err(|e| e.0)?;
    let (old_gen, shards) = layout::read_current(dir).map_err(|e| e.0)?;
    if old_gen == 0 {
        return Err(format!("{} holds no coremq log", dir.display()));
    }
    let before = dir_bytes(dir);
    let l = Layout::open(dir, shards).map_err(|e| e.0)?;
    let cfg = Arc::new(cfg.clone());
    let mut damage = Vec::new();
    for i in 0..shards {
        let (mut sh, _) = replay_shard(&cfg, i, shards, &l.segments_for(i), recover, &mut damage)?;
        let sh = &mut sh;
        let Some(enc) = sh.journal.log_mut() else {
            return Err("no encoder".into());
        };
        write_state((&sh.sessions, &sh.router), enc, wall_clock_us() / 1000);
        let path = l.new_shard_dir(i).join(layout::segment_name(1));
        let mut f = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        f.write_all(&enc.take())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    l.commit().map_err(|e| e.0)?;
    let after = dir_bytes(dir);
    let mut out = format!(
        "compacted {}: {before} bytes of log -> {after} bytes",
        dir.display()
    );
    for d in damage {
        out.push_str(&format!("\ndropped: {d}"));
    }
    Ok(out)
}

/// Bytes of every segment under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok((gen, shards)) = layout::read_current(dir) else {
        return 0;
    };
    (0..shards)
        .flat_map(|i| layout::segments(&layout::shard_dir(dir, gen, i)).unwrap_or_default())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The report as readable text.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "generation {}, {} shards, {} records\n\nSEGMENT{:>60}\n",
        r.generation, r.shards, r.records, "BYTES"
    );
    for s in &r.segments {
        out.push_str(&format!("{:<58} {:>10}\n", s.file, s.bytes));
    }
    out.push_str(&format!(
        "\n{} persistent sessions\n{:<32} {:>5} {:>7} {:>8} {:>12}  SUBSCRIPTIONS\n",
        r.sessions.len(),
        "CLIENT ID",
        "SHARD",
        "QUEUED",
        "INFLIGHT",
        "AWAITING_REL"
    ));
    for s in &r.sessions {
        out.push_str(&format!(
            "{:<32} {:>5} {:>7} {:>8} {:>12}  {}\n",
            s.client_id,
            s.shard,
            s.queued,
            s.inflight,
            s.awaiting_rel,
            s.subscriptions.join(" ")
        ));
    }
    out.push_str(&format!("\n{} retained messages\n", r.retained.len()));
    for m in &r.retained {
        out.push_str(&format!("{:<58} {:>10}\n", m.topic, m.bytes));
    }
    for d in &r.damage {
        out.push_str(&format!("\ndamaged: {d}\n"));
    }
    out
}

/// Replay `bytes` as one shard's only segment into a fresh shard (fuzzing:
/// a log file is input from outside). Returns the records read and where
/// the good records end (`None`: the bytes end cleanly).
#[doc(hidden)]
pub fn replay_bytes(bytes: &[u8]) -> (u64, Option<usize>) {
    let mut sh = offline_shard(&Arc::new(Config::default()), 0, 1);
    let mut rp = Replayer::new(None);
    let damage = rp.segment(&mut sh, bytes);
    sh.journal.attach(Box::<Encoder>::default());
    let counts = rp.finish(&mut sh, wall_clock_us() / 1000);
    (counts.records, damage.map(|d| d.offset))
}
