//! `[auth]` and `[auth.jwt]`: how a CONNECT with credentials is checked.
//!
//! Owns the configuration values only; the files they name are read by
//! `crate::auth` (at start, and again on SIGHUP for the password file). The
//! methods are tried in a fixed order, the first definitive answer wins:
//! certificate identity, `client_ids`, `password_file`, `[auth.jwt]`, the
//! embedder's authenticate hook (see the README's "Authentication").

use super::ConfigError;
use serde::Deserialize;

/// The longest `hook_timeout_ms`: one hour (the connect timeout's bound).
const MAX_HOOK_TIMEOUT_MS: u64 = 3_600_000;
/// The most cached logins per shard.
const MAX_CACHE_SIZE: usize = 10_000_000;
/// The longest `cache_ttl_s`: one day.
const MAX_CACHE_TTL_S: u64 = 86_400;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A Mosquitto password file (`user:$7$...`, `user:$argon2id$...`,
    /// `user:$6$...`); "" for none. Re-read on SIGHUP.
    pub password_file: String,
    /// Client ids that connect without a password (a CONNECT with a
    /// password is checked like any other).
    pub client_ids: Vec<String>,
    /// Verified logins each shard remembers (user + keyed hash of the
    /// password), so reconnects do not hash again; 0 turns the cache off.
    pub cache_size: usize,
    /// Seconds a remembered login stays valid.
    pub cache_ttl_s: u64,
    /// Milliseconds the authenticate hook may take; then CONNACK 0x03
    /// (MQTT 5 0x88) Server unavailable.
    pub hook_timeout_ms: u64,
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_file: String::new(),
            client_ids: Vec::new(),
            cache_size: 10_000,
            cache_ttl_s: 300,
            hook_timeout_ms: 5_000,
            jwt: JwtConfig::default(),
        }
    }
}

/// `[auth.jwt]`: a JSON Web Token sent as the CONNECT password.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// HS256 shared secret; "" for none.
    pub secret: String,
    /// RS256 public key (PEM, PKCS#8 or PKCS#1); "" for none.
    pub public_key_file: String,
    /// The claim that holds the user name (required in every token).
    pub username_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: String::new(),
            public_key_file: String::new(),
            username_claim: "sub".into(),
        }
    }
}

impl JwtConfig {
    /// Whether JWT logins are configured.
    pub fn enabled(&self) -> bool {
        !self.secret.is_empty() || !self.public_key_file.is_empty()
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("auth.{key}: {why}")));
        if self.cache_size > MAX_CACHE_SIZE {
            return bad("cache_size", "must be at most 10000000");
        }
        if self.cache_ttl_s > MAX_CACHE_TTL_S {
            return bad("cache_ttl_s", "must be at most 86400");
        }
        if !(1..=MAX_HOOK_TIMEOUT_MS).contains(&self.hook_timeout_ms) {
            return bad("hook_timeout_ms", "must be 1..=3600000");
        }
        if let Some(id) = self
            .client_ids
            .iter()
            .find(|id| id.is_empty() || id.len() > 65535)
        {
            return bad("client_ids", &format!("{id:?} is not a client id"));
        }
        let jwt = &self.jwt;
        if !jwt.secret.is_empty() && !jwt.public_key_file.is_empty() {
            return bad(
                "jwt",
                "set secret (HS256) or public_key_file (RS256), not both",
            );
        }
        if jwt.username_claim.is_empty() {
            return bad("jwt.username_claim", "must not be empty");
        }
        Ok(())
    }

    /// Whether any method checks a user name and password (then a user name
    /// none of them knows is refused instead of taken as a mere label).
    pub fn checks_passwords(&self) -> bool {
        !self.password_file.is_empty() || self.jwt.enabled()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn auth_keys_parse_and_bad_values_are_named() {
        let c = Config::from_toml(
            "[auth]\npassword_file = \"/etc/pw\"\nclient_ids = [\"dev-1\"]\n\
             [auth.jwt]\nsecret = \"s\"\nusername_claim = \"user\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.password_file, "/etc/pw");
        assert_eq!(c.auth.client_ids, vec!["dev-1".to_string()]);
        assert!(c.auth.jwt.enabled() && c.auth.checks_passwords());
        for (toml, key) in [
            ("[auth]\nhook_timeout_ms = 0\n", "auth.hook_timeout_ms"),
            ("[auth]\ncache_ttl_s = 100000\n", "auth.cache_ttl_s"),
            ("[auth]\nclient_ids = [\"\"]\n", "auth.client_ids"),
            (
                "[auth.jwt]\nsecret = \"s\"\npublic_key_file = \"k.pem\"\n",
                "auth.jwt",
            ),
            (
                "[auth.jwt]\nusername_claim = \"\"\n",
                "auth.jwt.username_claim",
            ),
            ("[auth]\npasswords = \"x\"\n", "passwords"),
        ] {
            let err = Config::from_toml(toml).unwrap_err();
            assert!(err.0.contains(key), "{toml:?}: {err}");
        }
    }
}
