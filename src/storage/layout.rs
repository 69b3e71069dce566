//! The storage directory: its lock, the `CURRENT` file and the generations.
//!
//! ```text
//! DIR/LOCK                      flock'd by the broker (or a storage command) using DIR
//! DIR/CURRENT                   "coremq-storage 1\ngeneration G\nshards N\n"
//! DIR/gen-G/shard-I/SEQ.log     shard I's segments, SEQ 20 digits, in order
//! ```
//! Every start reads generation G (all shards' segments when the shard
//! count changed), writes the state it rebuilt as the first segment of
//! generation G+1, and only once every shard has that on disk does
//! [`Layout::commit`] point `CURRENT` at G+1 (a rename) and remove G. A crash
//! before that leaves G in force; a directory of another generation is a
//! leftover and is removed. Everything here is plain blocking file I/O: it
//! runs on the thread that starts the broker (or a storage command), never
//! on a shard.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why the storage directory cannot be used.
#[derive(Debug)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> LayoutError {
    LayoutError(format!("storage: cannot {what} {}: {e}", path.display()))
}

/// The directory's lock: held while the value lives (the fd closes on drop).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Lock `dir` (creating it) for this process; fails if another holds it.
pub fn lock(dir: &Path) -> Result<DirLock, LayoutError> {
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let path = dir.join("LOCK");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("open", &path, e))?;
    // SAFETY: flock(2) on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        return Err(LayoutError(format!(
            "storage: {} is in use by another coremq process ({}); one broker per storage directory",
            dir.display(),
            holder.trim()
        )));
    }
    let _ = file.set_len(0);
    let _ = writeln!(file, "pid {}", std::process::id());
    Ok(DirLock { _file: file })
}

/// What a start reads and where it writes.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// The generation in force (0: none, a fresh directory).
    pub old_gen: u64,
    /// Shards of the generation in force (0: none).
    pub old_shards: usize,
    /// Each old shard's segments, in order.
    pub old_segments: Vec<Vec<PathBuf>>,
    /// The generation this run writes.
    pub new_gen: u64,
    pub shards: usize,
}

impl Layout {
    /// Read `CURRENT` and list the segments of the generation in force;
    /// create generation G+1's shard directories (after removing leftovers).
    pub fn open(dir: &Path, shards: usize) -> Result<Layout, LayoutError> {
        let (old_gen, old_shards) = read_current(dir)?;
        let new_gen = old_gen + 1;
        remove_leftovers(dir, old_gen)?;
        let mut old_segments = Vec::with_capacity(old_shards);
        for i in 0..old_shards {
            old_segments.push(segments(&shard_dir(dir, old_gen, i))?);
        }
        for i in 0..shards {
            let d = shard_dir(dir, new_gen, i);
            fs::create_dir_all(&d).map_err(|e| io_err("create", &d, e))?;
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            old_gen,
            old_shards,
            old_segments,
            new_gen,
            shards,
        })
    }

    /// Whether the shard count changed (sessions move to new homes).
    pub fn resharding(&self) -> bool {
        self.old_shards != 0 && self.old_shards != self.shards
    }

    /// Shard `i`'s directory in the generation this run writes.
    pub fn new_shard_dir(&self, i: usize) -> PathBuf {
        shard_dir(&self.dir, self.new_gen, i)
    }

    /// The old segments shard `i` replays: its own, or every shard's when
    /// the shard count changed (each keeps the sessions homed on it).
    /// Each with the old shard that wrote it.
    pub fn segments_for(&self, i: usize) -> Vec<(usize, PathBuf)> {
        let mut out = Vec::new();
        for (old, v) in self.old_segments.iter().enumerate() {
            if self.resharding() || old == i {
                out.extend(v.iter().map(|p| (old, p.clone())));
            }
        }
        out
    }

    /// Every shard wrote its state into the new generation: make it the one
    /// in force and remove the old one.
    pub fn commit(&self) -> Result<(), LayoutError> {
        let tmp = self.dir.join("CURRENT.tmp");
        let text = format!(
            "coremq-storage 1\ngeneration {}\nshards {}\n",
            self.new_gen, self.shards
        );
        let mut f = File::create(&tmp).map_err(|e| io_err("write", &tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("write", &tmp, e))?;
        let cur = self.dir.join("CURRENT");
        fs::rename(&tmp, &cur).map_err(|e| io_err("rename into", &cur, e))?;
        sync_dir(&self.dir)?;
        if self.old_gen != 0 {
            let old = gen_dir(&self.dir, self.old_gen);
            if let Err(e) = fs::remove_dir_all(&old) {
                log::warn!("storage: cannot remove {}: {e}", old.display());
            }
        }
        Ok(())
    }
}

fn gen_dir(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("gen-{gen}"))
}

pub fn shard_dir(dir: &Path, gen: u64, shard: usize) -> PathBuf {
    gen_dir(dir, gen).join(format!("shard-{shard}"))
}

/// The name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

/// The generation and shard count in force ((0, 0): none yet).
pub fn read_current(dir: &Path) -> Result<(u64, usize), LayoutError> {
    let path = dir.join("CURRENT");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io_err("read", &path, e)),
    };
    let bad = || {
        LayoutError(format!(
            "storage: {} is not a coremq CURRENT file",
            path.display()
        ))
    };
    let mut lines = text.lines();
    if lines.next() != Some("coremq-storage 1") {
        return Err(bad());
    }
    let mut field = |name: &str| -> Result<u64, LayoutError> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(bad)
    };
    let gen = field("generation")?;
    let shards = field("shards")? as usize;
    if gen == 0 || shards == 0 || shards > crate::config::MAX_SHARDS {
        return Err(bad());
    }
    Ok((gen, shards))
}

/// Segment files of one shard directory, in order (none if it is missing).
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>, LayoutError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    out.sort();
    Ok(out)
}

/// Remove generation directories other than `keep` (an interrupted start's).
fn remove_leftovers(dir: &Path, keep: u64) -> Result<(), LayoutError> {
    let rd = fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?;
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(gen) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        if gen != keep {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("coremq-layout-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn generations_advance_on_commit() {
        let dir = temp("gen");
        let _lock = lock(&dir).unwrap();
        let l = Layout::open(&dir, 2).unwrap();
        assert_eq!((l.old_gen, l.new_gen, l.resharding()), (0, 1, false));
        fs::write(l.new_shard_dir(1).join(segment_name(1)), b"x").unwrap();
        l.commit().unwrap();
        assert_eq!(read_current(&dir).unwrap(), (1, 2));
        let l = Layout::open(&dir, 3).unwrap();
        assert!(l.resharding());
        assert_eq!(l.segments_for(0), vec![(1, l.old_segments[1][0].clone())]);
        // Not committed: a restart reads generation 1 again, 2 is a leftover.
        let l = Layout::open(&dir, 3).unwrap();
        assert_eq!((l.old_gen, l.new_gen), (1, 2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_lock_is_refused() {
        let dir = temp("lock");
        let first = lock(&dir).unwrap();
        let e = lock(&dir).unwrap_err();
        assert!(e.0.contains("in use"), "{e}");
        drop(first);
        lock(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
