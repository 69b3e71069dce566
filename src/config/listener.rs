//! `[listener]` / `[[listener]]`: the listeners every shard serves, each with
//! its kind (tcp, tls, ws, wss), bind address, limits and who may connect
//! without credentials.
//!
//! Owned by [`Config`](super::Config) (its `listener` field, a
//! [`Listeners`] list of at least one). One `[listener]` table is the
//! one-listener form every earlier configuration used; `[[listener]]` tables
//! are the list. `--listen` sets the first listener's address. The broker
//! (`broker.rs`, `listener.rs`) binds them in order; a connection remembers
//! the index of the listener it came in on.

use super::{bounds, ConfigError, TlsConfig};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

/// Which stack a listener speaks under MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MQTT over plain TCP.
    #[default]
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

/// `allow_anonymous`: whether a client without credentials (no user name, no
/// certificate identity, no authentication method) is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// `"loopback"` (the default): only clients connecting from a loopback
    /// address (127.0.0.0/8, ::1), so a fresh install is not an open broker
    /// on the network but a local user can connect without setting anything up.
    #[default]
    Loopback,
    /// `true`: from anywhere.
    Always,
    /// `false`: never.
    Never,
}

impl Anonymous {
    /// Whether an anonymous client from `peer` is let in.
    pub fn allows(self, peer: &SocketAddr) -> bool {
        match self {
            Anonymous::Always => true,
            Anonymous::Never => false,
            Anonymous::Loopback => match peer {
                SocketAddr::V4(a) => a.ip().is_loopback(),
                SocketAddr::V6(a) => {
                    a.ip().is_loopback()
                        || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            },
        }
    }
}

impl<'de> Deserialize<'de> for Anonymous {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Flag(bool),
            Word(String),
        }
        match Form::deserialize(d)? {
            Form::Flag(true) => Ok(Anonymous::Always),
            Form::Flag(false) => Ok(Anonymous::Never),
            Form::Word(w) if w == "loopback" => Ok(Anonymous::Loopback),
            Form::Word(w) => Err(serde::de::Error::custom(format!(
                "allow_anonymous: expected true, false or \"loopback\", got {w:?}"
            ))),
        }
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// What it speaks: tcp, tls, ws or wss.
    pub kind: ListenerKind,
    /// `HOST:PORT`; port 0 picks a free port (tests).
    pub bind: String,
    /// Listen backlog per shard socket.
    pub backlog: u32,
    /// Connections this listener holds at most; beyond it new sockets are closed.
    pub max_connections: usize,
    /// Seconds an accepted socket is idle before TCP keepalive probes start
    /// (0: no TCP keepalive).
    pub tcp_keepalive_s: u64,
    /// Seconds between unanswered TCP keepalive probes.
    pub tcp_keepalive_interval_s: u64,
    /// Unanswered TCP keepalive probes before the kernel drops the connection.
    pub tcp_keepalive_probes: u32,
    /// Who may connect without credentials on this listener.
    pub allow_anonymous: Anonymous,
    /// `ws` / `wss`: the HTTP path the WebSocket upgrade must ask for.
    pub path: String,
    /// `[listener.tls]`: certificate and client-certificate policy; needed
    /// by (and only allowed on) a `tls` listener.
    pub tls: Option<TlsConfig>,
    /// Every connection starts with a PROXY protocol v1 or v2 header (from
    /// a load balancer); its source address becomes the client's address.
    pub proxy_protocol: bool,
    /// New connections per second this listener takes (0: no limit), spread
    /// over the shards; sockets over it are closed at once.
    pub max_connection_rate: u32,
    /// How many connections may arrive at once above that rate.
    pub connection_rate_burst: u32,
    /// Bytes per second one connection may send (0: no limit); a faster
    /// client is not read from until it is under the rate again.
    pub max_inbound_bytes_per_s: u64,
    /// Bytes a connection may send at once above that rate.
    pub inbound_burst_bytes: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            kind: ListenerKind::Tcp,
            bind: "0.0.0.0:1883".into(),
            backlog: 4096,
            max_connections: 1_000_000,
            tcp_keepalive_s: 120,
            tcp_keepalive_interval_s: 30,
            tcp_keepalive_probes: 4,
            allow_anonymous: Anonymous::Loopback,
            path: "/mqtt".into(),
            tls: None,
            proxy_protocol: false,
            max_connection_rate: 0,
            connection_rate_burst: 100,
            max_inbound_bytes_per_s: 0,
            inbound_burst_bytes: 1 << 20,
        }
    }
}

impl ListenerConfig {
    /// The address, parsed; `key` names this listener in the error.
    pub fn bind_addr(&self, key: &str) -> Result<SocketAddr, ConfigError> {
        self.bind.parse().map_err(|_| {
            ConfigError(format!(
                "{key}.bind: expected HOST:PORT with a numeric host, got {:?}",
                self.bind
            ))
        })
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        self.bind_addr(key)?;
        if self.max_connections == 0 {
            return Err(ConfigError(format!(
                "{key}.max_connections: must be at least 1"
            )));
        }
        let s = bounds::TCP_KEEPALIVE_S;
        let probes = u64::from(bounds::TCP_KEEPALIVE_PROBES);
        for (name, value, min, max) in [
            ("tcp_keepalive_s", self.tcp_keepalive_s, 0, s),
            (
                "tcp_keepalive_interval_s",
                self.tcp_keepalive_interval_s,
                1,
                s,
            ),
            (
                "tcp_keepalive_probes",
                u64::from(self.tcp_keepalive_probes),
                1,
                probes,
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError(format!(
                    "{key}.{name}: must be {min}..={max}, got {value}"
                )));
            }
        }
        self.validate_kind(key)?;
        if self.max_connection_rate > 0 && self.connection_rate_burst == 0 {
            return Err(ConfigError(format!(
                "{key}.connection_rate_burst: must be at least 1 with a max_connection_rate"
            )));
        }
        if self.max_inbound_bytes_per_s > 0 && self.inbound_burst_bytes < 1024 {
            return Err(ConfigError(format!(
                "{key}.inbound_burst_bytes: must be at least 1024 with a max_inbound_bytes_per_s"
            )));
        }
        Ok(())
    }

    /// The kind and its `[listener.tls]` table go together.
    fn validate_kind(&self, key: &str) -> Result<(), ConfigError> {
        match (self.kind, &self.tls) {
            (ListenerKind::Tls | ListenerKind::Wss, Some(t)) => t.validate(&format!("{key}.tls")),
            (ListenerKind::Tls | ListenerKind::Wss, None) => Err(ConfigError(format!(
                "{key}.tls: a tls or wss listener needs a [listener.tls] table (cert_file, key_file)"
            ))),
            (ListenerKind::Tcp | ListenerKind::Ws, Some(_)) => Err(ConfigError(format!(
                "{key}.tls: only a kind = \"tls\" or \"wss\" listener takes one"
            ))),
            (ListenerKind::Tcp | ListenerKind::Ws, None) => Ok(()),
        }?;
        if !self.path.starts_with('/') || self.path.len() > 1024 {
            return Err(ConfigError(format!(
                "{key}.path: must start with / (and be at most 1024 bytes), got {:?}",
                self.path
            )));
        }
        Ok(())
    }
}

/// The listeners, in configuration order; never empty once validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Listeners(Vec<ListenerConfig>);

impl Default for Listeners {
    /// One plain TCP listener on 0.0.0.0:1883.
    fn default() -> Self {
        Listeners(vec![ListenerConfig::default()])
    }
}

impl Deref for Listeners {
    type Target = Vec<ListenerConfig>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Listeners {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<Vec<ListenerConfig>> for Listeners {
    fn from(v: Vec<ListenerConfig>) -> Self {
        Listeners(v)
    }
}

impl<'de> Deserialize<'de> for Listeners {
    /// A `[listener]` table or a `[[listener]]` list.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a toml::Value rather than an untagged enum, whose error
        // ("did not match any variant") would hide the bad key.
        match toml::Value::deserialize(d)? {
            v @ toml::Value::Array(_) => Vec::<ListenerConfig>::deserialize(v).map(Listeners),
            v => ListenerConfig::deserialize(v).map(|l| Listeners(vec![l])),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Listeners {
    /// How errors name listener `i`: `listener` when there is one, else `listener[i]`.
    pub fn key(&self, i: usize) -> String {
        if self.0.len() == 1 {
            "listener".into()
        } else {
            format!("listener[{i}]")
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            return Err(ConfigError("listener: at least one is needed".into()));
        }
        let mut seen = Vec::with_capacity(self.0.len());
        for (i, l) in self.0.iter().enumerate() {
            let key = self.key(i);
            l.validate(&key)?;
            let addr = l.bind_addr(&key)?;
            if addr.port() != 0 && seen.contains(&addr) {
                return Err(ConfigError(format!(
                    "{key}.bind: {addr} is already another listener's"
                )));
            }
            seen.push(addr);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn one_table_or_a_list() {
        let one = Config::from_toml("[listener]\nbind = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(one.listener.len(), 1);
        assert_eq!(one.listener[0].bind, "127.0.0.1:1");
        let two = Config::from_toml(
            "[[listener]]\nbind = \"127.0.0.1:1\"\n[[listener]]\nkind = \"tls\"\nbind = \"127.0.0.1:2\"\nallow_anonymous = false\n[listener.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n",
        )
        .unwrap();
        assert_eq!(two.listener.len(), 2);
        assert_eq!(two.listener[1].kind, ListenerKind::Tls);
        assert_eq!(two.listener[1].tls.as_ref().unwrap().cert_file, "c");
        assert!(two.listener[0].tls.is_none());
        assert_eq!(two.listener[1].allow_anonymous, Anonymous::Never);
        assert_eq!(two.listener[0].allow_anonymous, Anonymous::Loopback);
    }

    #[test]
    fn bad_listeners_are_named() {
        for (toml, key) in [
            ("[listener]\nbnd = \"x\"\n", "bnd"),
            (
                "[[listener]]\nbind = \"x\"\n[[listener]]\n",
                "listener[0].bind",
            ),
            (
                "[[listener]]\nbind = \"127.0.0.1:5\"\n[[listener]]\nbind = \"127.0.0.1:5\"\n",
                "listener[1].bind",
            ),
            ("[listener]\nkind = \"quic\"\n", "quic"),
            ("[listener]\nallow_anonymous = \"yes\"\n", "allow_anonymous"),
            (
                "[[listener]]\nmax_connections = 0\n",
                "listener.max_connections",
            ),
            ("[listener]\nkind = \"wss\"\n", "listener.tls"),
            (
                "[listener]\nkind = \"ws\"\npath = \"mqtt\"\n",
                "listener.path",
            ),
            ("[listener]\nkind = \"tls\"\n", "listener.tls"),
            (
                "[listener]\n[listener.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n",
                "listener.tls",
            ),
            (
                "[listener]\nmax_connection_rate = 5\nconnection_rate_burst = 0\n",
                "listener.connection_rate_burst",
            ),
            (
                "[listener]\nmax_inbound_bytes_per_s = 5\ninbound_burst_bytes = 10\n",
                "listener.inbound_burst_bytes",
            ),
        ] {
            let err = Config::from_toml(toml).unwrap_err();
            assert!(err.0.contains(key), "{toml:?}: {err}");
        }
        let mut empty = Config::default();
        empty.listener.clear();
        assert!(empty.validate().is_err());
    }

    #[test]
    fn anonymous_by_peer() {
        let lo: SocketAddr = "127.0.0.9:1".parse().unwrap();
        let lo6: SocketAddr = "[::1]:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        let far: SocketAddr = "10.1.2.3:1".parse().unwrap();
        assert!(Anonymous::Loopback.allows(&lo));
        assert!(Anonymous::Loopback.allows(&lo6));
        assert!(Anonymous::Loopback.allows(&mapped));
        assert!(!Anonymous::Loopback.allows(&far));
        assert!(Anonymous::Always.allows(&far));
        assert!(!Anonymous::Never.allows(&lo));
    }
}
