//! The writer task: one per shard, the only code that writes its log.
//!
//! Each round it takes the bytes the journal encoded, appends them to the
//! current segment (glommio `DmaStreamWriter`, O_DIRECT) and, per
//! `[storage] fsync`, syncs (`always`: at once, so every ack waiting shares
//! the one fdatasync — group commit; `interval`: every
//! `fsync_interval_ms`; `never`: not at all), then tells the shard how far
//! the log is durable. It rotates segments past `segment_bytes`, and
//! compacts once the log outgrows `compact_min_bytes` and twice its size
//! after the last compaction: it starts a segment, writes the live state
//! into the stream a few hundred sessions per round (`snapshot.rs`), and
//! once that is on disk removes the segments before it. A failed write (a
//! full disk) is logged once, raises the shard's full state (no new
//! persistent sessions; acks keep waiting), and is retried every second
//! into a fresh segment from the last good position; a round that works
//! clears it. Spawned by `start.rs`; stops when [`Storage::close`](super::Storage::close) is called.

use super::layout::segment_name;
use super::snapshot;
use crate::config::{Fsync, StorageConfig};
use crate::message::wall_clock_us;
use crate::shard::{SessionKey, ShardRef};
use futures_lite::AsyncWriteExt;
use glommio::io::{DmaFile, DmaStreamWriter, DmaStreamWriterBuilder, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Buffer of the segment writer: a write of this size goes out at once.
const BUFFER: usize = 256 << 10;
/// Sessions written into a compaction snapshot per round.
const SNAPSHOT_CHUNK: usize = 256;
/// How often a clock record is written, at most.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// How often a failed write is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The segment being written.
pub struct Segment {
    dir: PathBuf,
    seq: u64,
    writer: Option<DmaStreamWriter>,
    /// Bytes of this segment known written (the position to cut back to
    /// after a failed write).
    good: u64,
}

impl Segment {
    /// Create segment `seq` in `dir`.
    pub async fn create(dir: &Path, seq: u64) -> std::io::Result<Segment> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .dma_open(&path)
            .await?;
        let writer = DmaStreamWriterBuilder::new(file)
            .with_buffer_size(BUFFER)
            .build();
        if let Ok(d) = glommio::io::Directory::open(dir).await {
            let _ = d.sync().await;
            let _ = d.close().await;
        }
        Ok(Segment {
            dir: dir.to_path_buf(),
            seq,
            writer: Some(writer),
            good: 0,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(segment_name(self.seq))
    }

    /// Append `bytes` and make them durable (`sync`) or at least written.
    pub async fn append(&mut self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("segment closed"))?;
        if !bytes.is_empty() {
            w.write_all(bytes).await?;
        }
        if sync {
            w.sync().await.map_err(std::io::Error::from)?;
        } else {
            w.flush().await?;
        }
        self.good = w.current_pos();
        Ok(())
    }

    /// Close (the file is cut to its exact length).
    pub async fn close(mut self) -> std::io::Result<()> {
        match self.writer.take() {
            Some(mut w) => w.close().await,
            None => Ok(()),
        }
    }
}

/// A compaction in progress.
struct Compaction {
    /// Segments before the one the snapshot started in.
    old: Vec<PathBuf>,
    keys: Vec<SessionKey>,
    next: usize,
    retained_done: bool,
    /// Journal position the snapshot ends at (once all is written).
    end: Option<u64>,
}

/// The writer's own state across rounds.
struct Log {
    cfg: StorageConfig,
    id: usize,
    /// The shard's directory and the number of the next segment.
    dir: PathBuf,
    next_seq: u64,
    /// The segment being written (None after a failed start of one).
    seg: Option<Segment>,
    /// Closed segments of this generation, oldest first, with their sizes.
    closed: Vec<(PathBuf, u64)>,
    /// Bytes taken from the journal and not yet known written.
    unsynced: Vec<u8>,
    /// Written since the last sync (`interval` syncs them when due).
    dirty: bool,
    last_sync: Instant,
    last_tick: Instant,
    /// Log size right after the last compaction (or the start).
    base: u64,
    compaction: Option<Compaction>,
    failed_at: Option<Instant>,
}

impl Log {
    fn size(&self) -> u64 {
        self.closed.iter().map(|(_, n)| n).sum::<u64>() + self.seg.as_ref().map_or(0, |s| s.good)
    }
}

/// Run the writer of `shard` from segment `seg` (the start's snapshot).
pub async fn run(shard: ShardRef, seg: Segment) {
    let (cfg, id) = {
        let sh = shard.borrow();
        (sh.cfg.storage.clone(), sh.id)
    };
    let period = match cfg.fsync {
        Fsync::Interval => Duration::from_millis(cfg.fsync_interval_ms),
        _ => Duration::from_millis(20),
    };
    let base = seg.good;
    let mut log = Log {
        cfg,
        id,
        dir: seg.dir.clone(),
        next_seq: seg.seq + 1,
        seg: Some(seg),
        closed: Vec::new(),
        unsynced: Vec::new(),
        dirty: false,
        last_sync: Instant::now(),
        last_tick: Instant::now(),
        base,
        compaction: None,
        failed_at: None,
    };
    loop {
        if let Some(at) = log.failed_at {
            // Writing failed: wait for the retry (acks that wait keep waiting).
            glommio::timer::sleep(RETRY_EVERY.saturating_sub(at.elapsed())).await;
        } else if log.compaction.as_ref().is_some_and(|c| c.end.is_none()) {
            futures_lite::future::yield_now().await;
        } else {
            let wanted = std::future::poll_fn(|cx| shard.borrow_mut().storage.poll_wanted(cx));
            futures_lite::future::or(wanted, glommio::timer::sleep(period)).await;
        }
        let closing = shard.borrow().storage.closing();
        round(&shard, &mut log).await;
        let pending = shard.borrow().journal.log().map_or(0, |l| l.pending());
        if closing && log.failed_at.is_some() {
            log::error!(
                "storage: shard {id}: stopping with {} bytes of log not written",
                pending + log.unsynced.len()
            );
            break;
        }
        if closing && pending == 0 {
            break;
        }
    }
    if let Some(seg) = log.seg.take() {
        if let Err(e) = seg.close().await {
            log::warn!("storage: shard {id}: closing the last segment: {e}");
        }
    }
}

/// One round: write, sync per policy, rotate, compact.
async fn round(shard: &ShardRef, log: &mut Log) {
    if log.failed_at.is_some_and(|at| at.elapsed() < RETRY_EVERY) {
        return;
    }
    let (bytes, upto) = take(shard, log);
    log.unsynced.extend_from_slice(&bytes);
    if !log.unsynced.is_empty() || log.dirty {
        if let Err(e) = write(shard, log, upto).await {
            fail(shard, log, &e);
            return;
        }
    }
    if log
        .seg
        .as_ref()
        .is_some_and(|s| s.good >= log.cfg.segment_bytes)
    {
        if let Err(e) = rotate(shard, log, true).await {
            fail(shard, log, &e);
            return;
        }
    }
    compact(shard, log).await;
}

/// Write what was taken; sync per policy; tell the shard how far it is durable.
async fn write(shard: &ShardRef, log: &mut Log, upto: u64) -> std::io::Result<()> {
    let sync = match log.cfg.fsync {
        Fsync::Always => true,
        Fsync::Interval => {
            log.last_sync.elapsed() >= Duration::from_millis(log.cfg.fsync_interval_ms)
        }
        Fsync::Never => false,
    };
    if log.unsynced.is_empty() && !sync {
        return Ok(());
    }
    if log.failed_at.is_some() || log.seg.is_none() {
        rotate(shard, log, false).await?;
    }
    let Some(seg) = log.seg.as_mut() else {
        return Err(std::io::Error::other("no segment open"));
    };
    seg.append(&log.unsynced, sync).await?;
    let written = std::mem::take(&mut log.unsynced).len();
    log.dirty = !sync;
    if sync {
        log.last_sync = Instant::now();
    }
    recovered(shard, log);
    let mut sh = shard.borrow_mut();
    sh.log_durable(upto);
    sh.metrics.storage_bytes_written += written as u64;
    sh.metrics.storage_syncs += u64::from(sync);
    Ok(())
}

/// Take the journal's bytes (with a clock record now and then).
fn take(shard: &ShardRef, log: &mut Log) -> (Vec<u8>, u64) {
    let mut sh = shard.borrow_mut();
    let Some(enc) = sh.journal.log_mut() else {
        return (Vec::new(), 0);
    };
    // A clock record each second while there are durable sessions, written
    // or idle: one online at a crash counts as offline from the last one.
    let due = enc.pending() > 0 || enc.durable_sessions() > 0;
    if due && log.last_tick.elapsed() >= TICK_EVERY {
        log.last_tick = Instant::now();
        enc.tick(wall_clock_us() / 1000);
    }
    let bytes = enc.take();
    (bytes, enc.appended())
}

/// Close the current segment and start the next (after a failed write,
/// `clean` false: the current one is cut back to its last good position
/// instead, so the next repeats nothing and loses nothing).
async fn rotate(shard: &ShardRef, log: &mut Log, clean: bool) -> std::io::Result<()> {
    if let Some(seg) = log.seg.take() {
        let (path, good) = (seg.path(), seg.good);
        if clean {
            if let Err(e) = seg.close().await {
                log::warn!("storage: shard {}: closing {}: {e}", log.id, path.display());
                cut(&path, good).await;
            }
        } else {
            drop(seg);
            cut(&path, good).await;
        }
        log.closed.push((path, good));
    }
    let seg = Segment::create(&log.dir, log.next_seq).await?;
    log.next_seq += 1;
    log.seg = Some(seg);
    if let Some(enc) = shard.borrow_mut().journal.log_mut() {
        enc.new_segment();
    }
    Ok(())
}

/// Cut a segment back to `len` bytes (a failed write may have left more).
async fn cut(path: &Path, len: u64) {
    if let Ok(f) = OpenOptions::new().write(true).dma_open(path).await {
        let _ = f.truncate(len).await;
        let _ = f.close().await;
    }
}

fn fail(shard: &ShardRef, log: &mut Log, e: &std::io::Error) {
    let mut sh = shard.borrow_mut();
    sh.metrics.storage_write_errors += 1;
    if log.failed_at.is_none() {
        log::error!(
            "storage: shard {}: cannot write the log ({e}); the disk may be full: new persistent \
             sessions are refused and acknowledgements wait until writing works again",
            log.id
        );
        let why = format!("storage: shard {}: cannot write the log: {e}", log.id);
        sh.storage.set_failure(Some(why));
    }
    log.failed_at = Some(Instant::now());
}

fn recovered(shard: &ShardRef, log: &mut Log) {
    if log.failed_at.take().is_some() {
        let line = format!("storage: shard {}: writing the log again", log.id);
        log::warn!("{line}");
        let mut sh = shard.borrow_mut();
        sh.storage.set_failure(None);
    }
}

/// Start, continue or finish a compaction.
async fn compact(shard: &ShardRef, log: &mut Log) {
    let Some(c) = log.compaction.as_mut() else {
        let size = log.size();
        if size >= log.cfg.compact_min_bytes && size > 2 * log.base.max(1) {
            start_compaction(shard, log).await;
        }
        return;
    };
    if let Some(end) = c.end {
        if shard.borrow().storage.durable() >= end {
            finish_compaction(shard, log).await;
        }
        return;
    }
    let mut sh = shard.borrow_mut();
    let sh = &mut *sh;
    let Some(enc) = sh.journal.log_mut() else {
        return;
    };
    let before = enc.appended();
    let stop = (c.next + SNAPSHOT_CHUNK).min(c.keys.len());
    for sk in &c.keys[c.next..stop] {
        snapshot::session(&sh.sessions, &sh.router, enc, *sk);
    }
    c.next = stop;
    if c.next == c.keys.len() && !c.retained_done {
        snapshot::retained(&sh.router, enc);
        c.retained_done = true;
    }
    sh.metrics.storage_compaction_bytes += enc.appended() - before;
    if c.retained_done {
        c.end = Some(enc.appended());
        sh.storage.wake_writer();
    }
}

async fn start_compaction(shard: &ShardRef, log: &mut Log) {
    if let Err(e) = rotate(shard, log, true).await {
        fail(shard, log, &e);
        return;
    }
    let keys = shard
        .borrow()
        .journal
        .log()
        .map(|l| l.durable_keys())
        .unwrap_or_default();
    log::info!(
        "storage: shard {}: compacting {} bytes of log ({} sessions)",
        log.id,
        log.size(),
        keys.len()
    );
    log.compaction = Some(Compaction {
        old: log.closed.drain(..).map(|(p, _)| p).collect(),
        keys,
        next: 0,
        retained_done: false,
        end: None,
    });
}

async fn finish_compaction(shard: &ShardRef, log: &mut Log) {
    let Some(c) = log.compaction.take() else {
        return;
    };
    // The snapshot must be on disk (whatever the fsync policy) before the
    // segments it replaces go.
    if let Some(seg) = log.seg.as_mut() {
        if let Err(e) = seg.append(&[], true).await {
            log.compaction = Some(c);
            fail(shard, log, &e);
            return;
        }
    }
    for path in &c.old {
        if let Err(e) = glommio::io::remove(path).await {
            log::warn!(
                "storage: shard {}: cannot remove {}: {e}",
                log.id,
                path.display()
            );
        }
    }
    log.base = log.size();
    shard.borrow_mut().metrics.storage_compactions += 1;
    log::info!(
        "storage: shard {}: compaction done, {} segments removed, log now {} bytes",
        log.id,
        c.old.len(),
        log.base
    );
}

/// Open segment files read back at start, for `DmaFile` reads.
pub async fn read_segment(path: &Path) -> std::io::Result<Vec<u8>> {
    use futures_lite::AsyncReadExt;
    let file = DmaFile::open(path).await?;
    let mut reader = glommio::io::DmaStreamReaderBuilder::new(file)
        .with_buffer_size(BUFFER)
        .build();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    let _ = reader.close().await;
    Ok(out)
}
