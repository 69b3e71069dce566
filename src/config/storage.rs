//! `[storage]`: the per-shard durable log (see `crate::storage`).
//!
//! Owns the storage settings and their checks; read by `crate::storage` and
//! the broker's start.

use super::ConfigError;
use serde::Deserialize;

/// When the log is made durable (fdatasync), and whether acks wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Before the ack that promises it: group commit, acks wait.
    Always,
    /// Every `fsync_interval_ms`; acks do not wait (that window can be lost).
    Interval,
    /// Never asked for: the kernel writes when it likes.
    Never,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Keep persistent sessions and retained messages on disk.
    pub enabled: bool,
    /// The directory of the log (one per broker: it is locked).
    pub dir: String,
    pub fsync: Fsync,
    /// With `fsync = "interval"`: the most milliseconds of acknowledged
    /// state a crash of the machine can lose.
    pub fsync_interval_ms: u64,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// A shard's log is compacted once it is this large and more than twice
    /// the size it had after its last compaction.
    pub compact_min_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            enabled: true,
            dir: "./data".into(),
            fsync: Fsync::Always,
            fsync_interval_ms: 100,
            segment_bytes: 64 << 20,
            compact_min_bytes: 64 << 20,
        }
    }
}

impl StorageConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("storage.{key}: {why}")));
        if self.enabled && self.dir.trim().is_empty() {
            return bad("dir", "must not be empty");
        }
        if !(1..=60_000).contains(&self.fsync_interval_ms) {
            return bad("fsync_interval_ms", "must be 1..=60000");
        }
        if !(4096..=1 << 32).contains(&self.segment_bytes) {
            return bad("segment_bytes", "must be 4096..=4294967296");
        }
        if self.compact_min_bytes < 4096 {
            return bad("compact_min_bytes", "must be at least 4096");
        }
        Ok(())
    }

    /// Whether acks wait for the log to be on disk.
    pub fn acks_wait(&self) -> bool {
        self.enabled && self.fsync == Fsync::Always
    }
}
