//! `[http]`, `[sys]` and `[alarms]`: how the broker is operated.
//!
//! Owns the settings of the management HTTP listener (`crate::http`), the
//! `$SYS` topics and the alarms (`crate::control`), and their checks; read
//! at start by the broker and by the control task of shard 0.

use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;

/// `[http]`: the management listener (metrics, health, API, dashboard).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Off by default: turn it on to get /metrics, the API and the dashboard.
    pub enabled: bool,
    /// Where it listens; loopback by default (port 0: any free port).
    pub bind: String,
    /// Accepted as `Authorization: Bearer KEY` or `X-API-Key: KEY`.
    pub api_key: String,
    /// With `password`: accepted as HTTP Basic credentials.
    pub username: String,
    pub password: String,
    /// A request body larger than this is refused (413).
    pub max_body_bytes: usize,
    /// Connections the listener serves at once; one more is answered 503
    /// at once (200 to `GET /health/live`).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: false,
            bind: "127.0.0.1:18083".into(),
            api_key: String::new(),
            username: String::new(),
            password: String::new(),
            max_body_bytes: 64 << 10,
            max_connections: 64,
        }
    }
}

impl HttpConfig {
    /// Whether requests need credentials.
    pub fn needs_auth(&self) -> bool {
        !self.api_key.is_empty() || !self.username.is_empty()
    }

    /// The bind address, checked.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind
            .parse()
            .map_err(|_| ConfigError(format!("http.bind: not an address: {:?}", self.bind)))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("http.{key}: {why}")));
        let addr = self.bind_addr()?;
        if self.username.is_empty() != self.password.is_empty() {
            return bad("username", "username and password go together");
        }
        if self.enabled && !self.needs_auth() && !addr.ip().is_loopback() {
            return bad(
                "bind",
                "a non-loopback address needs api_key or username/password",
            );
        }
        if !(1024..=64 << 20).contains(&self.max_body_bytes) {
            return bad("max_body_bytes", "must be 1024..=67108864");
        }
        if !(1..=10_000).contains(&self.max_connections) {
            return bad("max_connections", "must be 1..=10000");
        }
        Ok(())
    }
}

/// `[sys]`: the `$SYS/brokers/<node>/...` topics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// Seconds between two publications of the `$SYS` topics; 0: none.
    pub interval_s: u64,
    /// Publish a JSON message on `$SYS/brokers/<node>/clients/<id>/connected`
    /// (and `.../disconnected`) for every client that comes and goes.
    pub client_events: bool,
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            interval_s: 10,
            client_events: false,
        }
    }
}

impl SysConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_s > 86_400 {
            return Err(ConfigError("sys.interval_s: must be 0..=86400".into()));
        }
        Ok(())
    }
}

/// `[alarms]`: when an alarm is raised and when it clears.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// Seconds between two checks.
    pub check_interval_s: u64,
    /// Share of a gauge's limit at which an alarm is raised; it clears
    /// below `high × (1 - clear_margin)` (hysteresis).
    pub clear_margin: f64,
    /// Share of memory (the broker's RSS over `memory_limit_bytes`).
    pub memory_high_watermark: f64,
    /// The memory the broker may use; 0: the cgroup's limit if there is one,
    /// else the machine's memory.
    pub memory_limit_bytes: u64,
    /// Share of the file descriptor limit in use.
    pub fd_high_watermark: f64,
    /// Share of the listeners' max_connections (summed) in use.
    pub connections_high_watermark: f64,
    /// A session with this many messages queued is a slow subscriber.
    pub slow_subscriber_queue: usize,
    /// Share of a shard's time spent running (not waiting) above which it is
    /// saturated, when it stays so for `saturated_checks` checks in a row.
    pub shard_busy_watermark: f64,
    pub saturated_checks: u32,
    /// An alarm raised by events (mailbox overflow, slow subscriber drops)
    /// clears after this many seconds without one.
    pub quiet_s: u64,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            check_interval_s: 1,
            clear_margin: 0.1,
            memory_high_watermark: 0.8,
            memory_limit_bytes: 0,
            fd_high_watermark: 0.9,
            connections_high_watermark: 0.9,
            slow_subscriber_queue: 1000,
            shard_busy_watermark: 0.9,
            saturated_checks: 3,
            quiet_s: 10,
        }
    }
}

impl AlarmsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("alarms.{key}: {why}")));
        let share = |v: f64| v > 0.0 && v <= 1.0;
        if !(1..=3600).contains(&self.check_interval_s) {
            return bad("check_interval_s", "must be 1..=3600");
        }
        if !(0.0..0.9).contains(&self.clear_margin) {
            return bad("clear_margin", "must be 0 <= x < 0.9");
        }
        for (key, v) in [
            ("memory_high_watermark", self.memory_high_watermark),
            ("fd_high_watermark", self.fd_high_watermark),
            (
                "connections_high_watermark",
                self.connections_high_watermark,
            ),
            ("shard_busy_watermark", self.shard_busy_watermark),
        ] {
            if !share(v) {
                return bad(key, "must be a share: 0 < x <= 1");
            }
        }
        if self.slow_subscriber_queue == 0 {
            return bad("slow_subscriber_queue", "must be at least 1");
        }
        if !(1..=100).contains(&self.saturated_checks) {
            return bad("saturated_checks", "must be 1..=100");
        }
        if !(1..=86_400).contains(&self.quiet_s) {
            return bad("quiet_s", "must be 1..=86400");
        }
        Ok(())
    }
}
