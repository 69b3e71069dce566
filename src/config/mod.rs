//! Broker configuration: the TOML file, its defaults and its validation.
//!
//! Owns the [`Config`] value, which is read once at start and then shared
//! read-only (`Arc<Config>`) by every shard. Called by `bin/coremq.rs` (file +
//! CLI flags) and by embedders (`Config::default()` then field edits).
//! Unknown keys and bad values are a [`ConfigError`] naming the key, never a
//! panic. The commented default file lives in `config/coremq.toml` and is
//! embedded as [`DEFAULT_CONFIG_TOML`]; a unit test keeps the two in step.

mod auth;
mod listener;
mod ops;
mod storage;
mod tls;

pub use auth::{AuthConfig, JwtConfig};
pub use listener::{Anonymous, ListenerConfig, ListenerKind, Listeners};
pub use ops::{AlarmsConfig, HttpConfig, SysConfig};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
pub use storage::{Fsync, StorageConfig};
pub use tls::{ClientAuth, IdentitySource, MinVersion, TlsConfig};

/// The fully commented default configuration (`coremq --print-default-config`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../config/coremq.toml");

/// The most shards one broker runs (interest sets are 64-bit masks).
pub const MAX_SHARDS: usize = 64;

/// Upper bounds of the keys that count time. Each is multiplied into
/// milliseconds or microseconds (u64) by its user; these keep every such
/// product, and a deadline `now + it`, far from overflow, and refuse values
/// that can only be a typo.
pub mod bounds {
    /// `runtime.spin_before_park_us`: one second of spinning.
    pub const SPIN_BEFORE_PARK_US: u64 = 1_000_000;
    /// `runtime.wake_window_us`: 10 ms of added latency at most.
    pub const WAKE_WINDOW_US: u64 = 10_000;
    /// `listener.tcp_keepalive_s` and `listener.tcp_keepalive_interval_s`:
    /// Linux refuses more (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL).
    pub const TCP_KEEPALIVE_S: u64 = 32_767;
    /// `listener.tcp_keepalive_probes`: Linux refuses more (MAX_TCP_KEEPCNT).
    pub const TCP_KEEPALIVE_PROBES: u32 = 127;
    /// `mqtt.connect_timeout_s`: one hour.
    pub const CONNECT_TIMEOUT_S: u64 = 3_600;
    /// `session.retry_interval_s`: one day.
    pub const RETRY_INTERVAL_S: u64 = 86_400;
    /// `session.expiry_s`: ten years (sessions keep it in u32 seconds).
    pub const EXPIRY_S: u64 = 315_360_000;
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub runtime: RuntimeConfig,
    /// `[listener]` (one) or `[[listener]]` (a list).
    pub listener: Listeners,
    pub mqtt: MqttConfig,
    pub session: SessionConfig,
    pub limits: LimitsConfig,
    pub strict: StrictConfig,
    /// `[auth]`: password file, client ids, JWT, the authenticate hook.
    pub auth: AuthConfig,
    pub acl: AclConfig,
    /// `[storage]`: the durable log.
    pub storage: StorageConfig,
    /// `[http]`: the management listener.
    pub http: HttpConfig,
    /// `[sys]`: the `$SYS` topics.
    pub sys: SysConfig,
    /// `[alarms]`: thresholds and hysteresis.
    pub alarms: AlarmsConfig,
}

/// Which CPUs run shards: all of the process's CPUs, a count, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Cores {
    /// `"all"`: one shard per CPU in the process's affinity mask.
    All(String),
    /// `N`: the first N CPUs of the affinity mask (wrapping if N exceeds them).
    Count(usize),
    /// `[0, 2]`: these CPU ids, one shard each.
    List(Vec<usize>),
}

impl Default for Cores {
    fn default() -> Self {
        Cores::All("all".into())
    }
}

impl Cores {
    /// Parse the CLI form: `all`, `N` or `a,b,c`.
    pub fn parse_cli(s: &str) -> Result<Cores, ConfigError> {
        let s = s.trim();
        if s == "all" {
            return Ok(Cores::All(s.into()));
        }
        if s.contains(',') {
            let list: Result<Vec<usize>, _> = s.split(',').map(|p| p.trim().parse()).collect();
            return list
                .map(Cores::List)
                .map_err(|_| ConfigError(format!("--cores: bad CPU list {s:?}")));
        }
        s.parse()
            .map(Cores::Count)
            .map_err(|_| ConfigError(format!("--cores: expected all, N or a,b,c; got {s:?}")))
    }
}

/// `[runtime]`: executors and their placement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Shards and the CPUs they are pinned to.
    pub cores: Cores,
    /// Pin each shard's thread to its CPU (false: the kernel places and
    /// moves them, for a host whose cores other busy processes share).
    pub pin: bool,
    /// io_uring submission queue depth per shard.
    pub ring_depth: usize,
    /// Microseconds an idle shard spins before parking (0: park at once).
    pub spin_before_park_us: u64,
    /// Microseconds a busy shard gathers network input and mailbox output
    /// before it takes or sends them (0: at once): fewer executor sleeps and
    /// wakes under load, at most this much added latency.
    pub wake_window_us: u64,
    /// Node id (0..65535) written into every message id; unique per cluster node.
    pub node_id: u16,
    /// Capacity of each shard-to-shard mailbox, in batches.
    pub mailbox_capacity: usize,
    /// Local deliveries of one message done at once; a larger fan-out is
    /// delivered by the shard's fan-out task in ~2 ms slices.
    pub fanout_inline_max: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cores: Cores::default(),
            pin: true,
            ring_depth: 8192,
            spin_before_park_us: 0,
            wake_window_us: 500,
            node_id: 0,
            mailbox_capacity: 128,
            fanout_inline_max: 16384,
        }
    }
}

/// `[mqtt]`: protocol limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Largest packet accepted, fixed header included (bytes).
    pub max_packet_size: usize,
    /// Longest client id accepted (bytes); longer gets CONNACK 0x02.
    pub max_client_id_len: usize,
    /// Seconds a new socket may take to send a whole CONNECT.
    pub connect_timeout_s: u64,
    /// Most retained messages kept; new retained topics beyond it are refused.
    pub max_retained: usize,
    /// Most bytes (payload + topic, summed) the retained store keeps; a message
    /// that would take it over is refused.
    pub max_retained_bytes: usize,
    /// Bytes of unsent output a connection may hold before QoS 0 messages
    /// to it are dropped (and QoS 1/2 wait in the session queue).
    pub max_outbox_bytes: usize,
    /// Whether clients may publish retained messages (MQTT 5 Retain Available).
    pub retain_available: bool,
    /// Highest QoS the broker accepts and grants (MQTT 5 Maximum QoS), 0..=2.
    pub maximum_qos: u8,
    /// Whether subscriptions may use `+` and `#` (MQTT 5 Wildcard Subscription Available).
    pub wildcard_subscriptions: bool,
    /// Whether SUBSCRIBE may carry a subscription identifier (MQTT 5).
    pub subscription_identifiers: bool,
    /// Topic aliases an MQTT 5 client may use towards the broker (advertised in
    /// CONNACK as Topic Alias Maximum); 0 turns inbound aliases off.
    pub topic_alias_maximum: u16,
    /// Topic aliases the broker assigns at most per MQTT 5 connection when it
    /// sends (never more than the client's Topic Alias Maximum); 0: none.
    pub max_topic_aliases_out: u16,
    /// Prefix of the Response Information sent to an MQTT 5 client that asks
    /// for it (the client id is appended); empty: none is sent.
    pub response_information: String,
    /// Accept `$share/{group}/{filter}` subscriptions (false: SUBACK 0x80).
    pub shared_subscriptions: bool,
    /// How a shared group's member is chosen for each message.
    pub shared_subscription_strategy: SharedStrategy,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_packet_size: 1 << 20,
            max_client_id_len: 256,
            connect_timeout_s: 10,
            max_retained: 100_000,
            max_retained_bytes: 256 << 20,
            max_outbox_bytes: 1 << 20,
            retain_available: true,
            maximum_qos: 2,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            topic_alias_maximum: 64,
            max_topic_aliases_out: 64,
            response_information: String::new(),
            shared_subscriptions: true,
            shared_subscription_strategy: SharedStrategy::RoundRobin,
        }
    }
}

/// How the publishing shard picks one member of a shared group per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Each member in turn (a cursor per group on each publishing shard).
    RoundRobin,
    /// A member at random.
    Random,
    /// By a hash of the publisher's client id: one publisher, one member.
    HashClientid,
    /// By a hash of the topic: one topic, one member.
    HashTopic,
    /// The same member until it leaves the group, then another at random.
    Sticky,
}

/// What a full session queue drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueDropPolicy {
    /// Drop the oldest pending message (the seeds' default).
    Oldest,
    /// Refuse the newest (incoming) message.
    Newest,
}

/// `[session]`: the seeds' session design.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// QoS 1/2 messages sent to a client and not yet acknowledged, at most.
    pub inflight_window: usize,
    /// Messages waiting behind the window (offline, or window full), at most.
    pub max_mqueue_len: usize,
    /// Bytes (topic + payload) waiting in one session's queue, at most.
    pub max_mqueue_bytes: usize,
    /// Queue QoS 0 messages for offline persistent sessions too.
    pub store_qos0: bool,
    /// What a full queue drops (QoS 0 first when store_qos0).
    pub mqueue_drop: QueueDropPolicy,
    /// Seconds before an unacknowledged message is sent again with DUP=1 (0: only on reconnect).
    pub retry_interval_s: u64,
    /// Seconds an offline persistent session is kept.
    pub expiry_s: u64,
    /// Inbound QoS 2 messages awaiting PUBREL, at most; beyond it the client is disconnected.
    pub max_awaiting_rel: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            inflight_window: 32,
            max_mqueue_len: 1000,
            max_mqueue_bytes: 16 << 20,
            store_qos0: false,
            mqueue_drop: QueueDropPolicy::Oldest,
            retry_interval_s: 30,
            expiry_s: 7200,
            max_awaiting_rel: 100,
        }
    }
}

/// One strictness rule: refuse what it names (close the connection, or
/// refuse the CONNECT), or let it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strictness {
    /// Refuse it (see each rule for how).
    Reject,
    /// Let it through.
    Allow,
}

/// `[strict]`: where the spec lets a server choose between refusing a
/// packet and going on, what coremq does. Each default is what Mosquitto does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrictConfig {
    /// Control characters (U+0001..U+001F, U+007F..U+009F) in a PUBLISH
    /// topic, a SUBSCRIBE or UNSUBSCRIBE filter, a client id, a user name
    /// or a will topic (3.1.1 §1.5.3: SHOULD NOT, the receiver MAY close).
    /// `Reject` closes the connection (a CONNECT without a CONNACK).
    pub control_characters: Strictness,
    /// An acknowledgement of the wrong QoS flow for a packet id in the
    /// window: PUBREC or PUBCOMP for a QoS 1 delivery, PUBACK for a QoS 2
    /// one. `Reject` closes the connection (a protocol error); `Allow`
    /// ignores the ack (a PUBREC is still answered with PUBREL). Acks for
    /// ids not in the window are always tolerated.
    pub wrong_qos_ack: Strictness,
    /// MQTT 3.1 client ids over 23 characters (3.1 says 1 to 23). `Reject`
    /// answers CONNACK 0x02; `Allow` holds them to `mqtt.max_client_id_len`
    /// only, like 3.1.1 ids.
    pub mqtt31_client_id_over_23: Strictness,
    /// An MQTT 5 PUBLISH whose Payload Format Indicator says UTF-8 but whose
    /// payload is not (§3.3.2.3.2: the receiver MAY check). `Reject` answers
    /// PUBACK/PUBREC 0x99 and does not route it (QoS 0: dropped); `Allow`
    /// routes it unchecked.
    pub payload_format: Strictness,
}

impl Default for StrictConfig {
    fn default() -> Self {
        StrictConfig {
            control_characters: Strictness::Reject,
            wrong_qos_ack: Strictness::Reject,
            mqtt31_client_id_over_23: Strictness::Allow,
            payload_format: Strictness::Reject,
        }
    }
}

/// `[acl]`: access control (see `crate::acl` and the README's "Access
/// control (ACL)").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// The decision when no rule matches (never opens `$SYS`).
    pub no_match: crate::acl::Permission,
    /// A TOML file of more `[[rule]]`s, tried after the inline ones; read at
    /// start and on reload. Empty: none.
    pub file: String,
    /// The inline rules, in order.
    pub rule: Vec<AclRuleConfig>,
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            no_match: crate::acl::Permission::Allow,
            file: String::new(),
            rule: Vec::new(),
        }
    }
}

/// One ACL rule as written (`[[acl.rule]]`, or `[[rule]]` in `acl.file`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRuleConfig {
    pub permission: crate::acl::Permission,
    pub who: AclWho,
    pub access: crate::acl::Access,
    /// Filters with `%c` / `%u`, or `eq F` for the filter F literally.
    pub topics: Vec<String>,
}

/// A rule's `who`: `"all"` or one of `{ clientid | username | ipaddr = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AclWho {
    Keyword(String),
    Match(AclWhoMatch),
}

/// `who = { clientid = "x" }` and the like: exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclWhoMatch {
    pub clientid: Option<String>,
    pub username: Option<String>,
    /// A CIDR network (`10.0.0.0/8`, `fd00::/8`) or one address.
    pub ipaddr: Option<String>,
}

impl Config {
    /// Parse TOML text and validate it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse (types and key names only; [`validate`](Self::validate) checks values).
    fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Read and parse a file. Values are not validated yet: command-line
    /// overrides come first, then one [`validate`](Self::validate).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The first listener's address, parsed (the one `--listen` sets).
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listener[0].bind_addr(&self.listener.key(0))
    }

    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let in_range = |key: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError(format!(
                    "{key}: must be {min}..={max}, got {value}"
                )))
            }
        };
        match &self.runtime.cores {
            Cores::All(s) if s != "all" => {
                return bad("runtime.cores", "expected \"all\", N or a list")
            }
            Cores::Count(0) => return bad("runtime.cores", "must be at least 1"),
            Cores::Count(n) if *n > MAX_SHARDS => return bad("runtime.cores", "at most 64 shards"),
            Cores::List(l) if l.is_empty() => return bad("runtime.cores", "empty CPU list"),
            Cores::List(l) if l.len() > MAX_SHARDS => {
                return bad("runtime.cores", "at most 64 shards")
            }
            _ => {}
        }
        if !(2..=32768).contains(&self.runtime.ring_depth) {
            return bad("runtime.ring_depth", "must be 2..=32768");
        }
        if !(2..=1 << 20).contains(&self.runtime.mailbox_capacity) {
            return bad("runtime.mailbox_capacity", "must be 2..=1048576");
        }
        if self.runtime.fanout_inline_max == 0 {
            return bad("runtime.fanout_inline_max", "must be at least 1");
        }
        in_range(
            "runtime.wake_window_us",
            self.runtime.wake_window_us,
            0,
            bounds::WAKE_WINDOW_US,
        )?;
        in_range(
            "runtime.spin_before_park_us",
            self.runtime.spin_before_park_us,
            0,
            bounds::SPIN_BEFORE_PARK_US,
        )?;
        if !self.runtime.pin && self.runtime.spin_before_park_us > 0 {
            return bad(
                "runtime.spin_before_park_us",
                "spinning needs pinned shards (runtime.pin = true)",
            );
        }
        self.listener.validate()?;
        let m = &self.mqtt;
        if m.max_packet_size < 64 || m.max_packet_size > crate::codec::MAX_REMAINING_LENGTH + 5 {
            return bad("mqtt.max_packet_size", "must be 64..=268435460");
        }
        if m.max_client_id_len == 0 || m.max_client_id_len > 65535 {
            return bad("mqtt.max_client_id_len", "must be 1..=65535");
        }
        in_range(
            "mqtt.connect_timeout_s",
            m.connect_timeout_s,
            1,
            bounds::CONNECT_TIMEOUT_S,
        )?;
        if m.max_retained_bytes == 0 {
            return bad("mqtt.max_retained_bytes", "must be at least 1");
        }
        if m.max_outbox_bytes < 1024 {
            return bad("mqtt.max_outbox_bytes", "must be at least 1024");
        }
        if m.maximum_qos > 2 {
            return bad("mqtt.maximum_qos", "must be 0, 1 or 2");
        }
        if m.response_information.len() > 1024 {
            return bad("mqtt.response_information", "must be at most 1024 bytes");
        }
        let s = &self.session;
        if s.inflight_window == 0 || s.inflight_window > 65535 {
            return bad("session.inflight_window", "must be 1..=65535");
        }
        if s.max_mqueue_len == 0 {
            return bad("session.max_mqueue_len", "must be at least 1");
        }
        if s.max_mqueue_bytes < 1024 {
            return bad("session.max_mqueue_bytes", "must be at least 1024");
        }
        if s.max_awaiting_rel == 0 || s.max_awaiting_rel > 65535 {
            return bad("session.max_awaiting_rel", "must be 1..=65535");
        }
        in_range(
            "session.retry_interval_s",
            s.retry_interval_s,
            0,
            bounds::RETRY_INTERVAL_S,
        )?;
        in_range("session.expiry_s", s.expiry_s, 0, bounds::EXPIRY_S)?;
        self.limits.validate()?;
        self.auth.validate()?;
        self.storage.validate()?;
        self.http.validate()?;
        self.sys.validate()?;
        self.alarms.validate()?;
        // The rules parse, and `acl.file` is read and parses (errors name the rule).
        crate::acl::Acl::load(&self.acl).map(drop)
    }
}

/// `[limits]`: what one client can make the broker hold, and for how long.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Subscriptions one session may hold; more get SUBACK 0x80.
    pub max_subscriptions_per_client: usize,
    /// Levels of a subscription filter (`a/b/c` has 3); more get SUBACK 0x80.
    pub max_topic_levels: usize,
    /// Bytes of a subscription filter; longer get SUBACK 0x80.
    pub max_filter_len: usize,
    /// Sessions the node holds (split evenly over the shards); a CONNECT
    /// that needs a new one beyond it gets CONNACK 0x03.
    pub max_sessions: usize,
    /// Bytes (topic + payload) of a will; a larger one gets CONNACK 0x05.
    pub max_will_bytes: usize,
    /// Bytes of incomplete packets the node holds for all connections (split
    /// evenly over the shards); a read beyond it closes its connection.
    pub max_incomplete_bytes: usize,
    /// Seconds a packet may take to arrive once its first byte has.
    pub packet_timeout_s: u64,
    /// Seconds: a client asking for no keepalive (0) or a longer one is held
    /// to this one (silent for 1.5× it, it is closed). 0: no limit.
    pub max_keepalive: u16,
    /// Seconds a connection's unsent output may stay over
    /// `mqtt.max_outbox_bytes` (reading from it is paused meanwhile) before
    /// it is closed.
    pub output_stall_timeout_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_subscriptions_per_client: 10_000,
            max_topic_levels: 128,
            max_filter_len: 1024,
            max_sessions: 1_000_000,
            max_will_bytes: 64 << 10,
            max_incomplete_bytes: 256 << 20,
            packet_timeout_s: 30,
            max_keepalive: 0,
            output_stall_timeout_s: 30,
        }
    }
}

impl LimitsConfig {
    /// Each value in range; the error names the key.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("limits.{key}: {why}")));
        if self.max_subscriptions_per_client == 0 {
            return bad("max_subscriptions_per_client", "must be at least 1");
        }
        if !(1..=32768).contains(&self.max_topic_levels) {
            return bad("max_topic_levels", "must be 1..=32768");
        }
        if !(1..=65535).contains(&self.max_filter_len) {
            return bad("max_filter_len", "must be 1..=65535");
        }
        if self.max_sessions == 0 {
            return bad("max_sessions", "must be at least 1");
        }
        if self.max_incomplete_bytes < 1 << 20 {
            return bad("max_incomplete_bytes", "must be at least 1048576");
        }
        // Seconds become milliseconds: bounded so that cannot overflow.
        for (key, v) in [
            ("packet_timeout_s", self.packet_timeout_s),
            ("output_stall_timeout_s", self.output_stall_timeout_s),
        ] {
            if !(1..=86_400).contains(&v) {
                return bad(key, "must be 1..=86400");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_equals_default_struct() {
        let parsed = Config::from_toml(DEFAULT_CONFIG_TOML).expect("default config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[session]\ninflight_windw = 3\n").unwrap_err();
        assert!(err.0.contains("inflight_windw"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        for (toml, key) in [
            (
                "[session]\ninflight_window = 0\n",
                "session.inflight_window",
            ),
            ("[listener]\nbind = \"nope\"\n", "listener.bind"),
            ("[session]\nmqueue_drop = \"random\"\n", "mqueue_drop"),
            (
                "[mqtt]\nshared_subscription_strategy = \"fastest\"\n",
                "shared_subscription_strategy",
            ),
            (
                "[mqtt]\nshared_subscriptions = \"yes\"\n",
                "shared_subscriptions",
            ),
            (
                "[mqtt]\nmax_retained_bytes = 0\n",
                "mqtt.max_retained_bytes",
            ),
            (
                "[listener]\ntcp_keepalive_interval_s = 0\n",
                "listener.tcp_keepalive_interval_s",
            ),
            (
                "[listener]\ntcp_keepalive_probes = 0\n",
                "listener.tcp_keepalive_probes",
            ),
            (
                "[strict]\ncontrol_characters = \"close\"\n",
                "control_characters",
            ),
            ("[strict]\nwrong_qos_ack = true\n", "wrong_qos_ack"),
            (
                "[strict]\nmqtt31_client_id_over_23 = \"Reject\"\n",
                "mqtt31_client_id_over_23",
            ),
        ] {
            let err = Config::from_toml(toml).unwrap_err();
            assert!(err.0.contains(key), "{toml:?}: {err}");
        }
        // 0 is a valid keepalive: it turns TCP keepalive off.
        let c = Config::from_toml("[listener]\ntcp_keepalive_s = 0\n").unwrap();
        assert_eq!(c.listener[0].tcp_keepalive_s, 0);
    }

    #[test]
    fn unpinned_shards_are_allowed_but_not_with_spinning() {
        let c = Config::from_toml("[runtime]\npin = false\n").unwrap();
        assert!(!c.runtime.pin);
        assert!(Config::default().runtime.pin, "pinned unless asked");
        let err =
            Config::from_toml("[runtime]\npin = false\nspin_before_park_us = 10\n").unwrap_err();
        assert!(err.0.contains("runtime.spin_before_park_us"), "{err}");
    }

    #[test]
    fn huge_durations_are_refused_naming_the_key() {
        for (section, key, max) in [
            (
                "runtime",
                "spin_before_park_us",
                bounds::SPIN_BEFORE_PARK_US,
            ),
            ("runtime", "wake_window_us", bounds::WAKE_WINDOW_US),
            ("listener", "tcp_keepalive_s", bounds::TCP_KEEPALIVE_S),
            (
                "listener",
                "tcp_keepalive_interval_s",
                bounds::TCP_KEEPALIVE_S,
            ),
            (
                "listener",
                "tcp_keepalive_probes",
                u64::from(bounds::TCP_KEEPALIVE_PROBES),
            ),
            ("mqtt", "connect_timeout_s", bounds::CONNECT_TIMEOUT_S),
            ("session", "retry_interval_s", bounds::RETRY_INTERVAL_S),
            ("session", "expiry_s", bounds::EXPIRY_S),
        ] {
            // The bound itself is accepted; one more, and u64::MAX (whose
            // milliseconds would overflow), are refused with the key's name.
            let ok = Config::from_toml(&format!("[{section}]\n{key} = {max}\n"));
            assert!(ok.is_ok(), "{section}.{key} = {max}: {ok:?}");
            for v in [max + 1, u64::MAX / 1000 + 1, i64::MAX as u64] {
                match Config::from_toml(&format!("[{section}]\n{key} = {v}\n")) {
                    Ok(_) => panic!("{section}.{key} = {v} was accepted"),
                    // u32 keys refuse a huge value while parsing, also by name.
                    Err(e) => assert!(e.0.contains(key), "{section}.{key} = {v}: {e}"),
                }
            }
        }
    }

    #[test]
    fn every_bound_fits_the_arithmetic_done_on_it() {
        // Deadlines are `now_ms + s * 1000` in u64: a century of uptime plus
        // the largest bound must not overflow, and expiry fits its u32.
        let century_ms: u64 = 100 * 365 * 86_400 * 1000;
        for max in [
            bounds::TCP_KEEPALIVE_S,
            bounds::CONNECT_TIMEOUT_S,
            bounds::RETRY_INTERVAL_S,
            bounds::EXPIRY_S,
        ] {
            let ms = max.checked_mul(1000).expect("bound in ms fits u64");
            assert!(century_ms.checked_add(ms).is_some());
        }
        assert!(u32::try_from(bounds::EXPIRY_S).is_ok());
        assert!(i32::try_from(bounds::TCP_KEEPALIVE_S).is_ok());
    }

    #[test]
    fn limits_are_checked_by_name() {
        let err = Config::from_toml("[limits]\npacket_timeout_s = 0\n").unwrap_err();
        assert!(err.0.contains("limits.packet_timeout_s"), "{err}");
        let err = Config::from_toml("[limits]\nmax_filter_len = 70000\n").unwrap_err();
        assert!(err.0.contains("limits.max_filter_len"), "{err}");
        let err =
            Config::from_toml("[limits]\noutput_stall_timeout_s = 99999999999\n").unwrap_err();
        assert!(err.0.contains("limits.output_stall_timeout_s"), "{err}");
    }

    #[test]
    fn strict_rules_read_both_values_and_name_the_choices() {
        let c = Config::from_toml(
            "[strict]\ncontrol_characters = \"allow\"\nwrong_qos_ack = \"allow\"\nmqtt31_client_id_over_23 = \"reject\"\n",
        )
        .unwrap();
        assert_eq!(c.strict.control_characters, Strictness::Allow);
        assert_eq!(c.strict.wrong_qos_ack, Strictness::Allow);
        assert_eq!(c.strict.mqtt31_client_id_over_23, Strictness::Reject);
        let err = Config::from_toml("[strict]\ncontrol_characters = \"drop\"\n").unwrap_err();
        assert!(
            err.0.contains("`reject`") && err.0.contains("`allow`"),
            "{err}"
        );
        let err = Config::from_toml("[strict]\ncontrol_chars = \"allow\"\n").unwrap_err();
        assert!(err.0.contains("control_chars"), "{err}");
    }

    #[test]
    fn cores_forms() {
        assert_eq!(Cores::parse_cli("2"), Ok(Cores::Count(2)));
        assert_eq!(Cores::parse_cli("0,1"), Ok(Cores::List(vec![0, 1])));
        assert!(Cores::parse_cli("x").is_err());
        let c = Config::from_toml("[runtime]\ncores = [1]\n").unwrap();
        assert_eq!(c.runtime.cores, Cores::List(vec![1]));
        assert!(Config::from_toml("[runtime]\ncores = 0\n").is_err());
        assert!(Config::from_toml("[runtime]\ncores = \"some\"\n").is_err());
    }
}
