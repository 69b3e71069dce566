//! The login decision: which method speaks for a CONNECT, and what it says.
//!
//! [`Sources`] is what every shard shares, built once by the broker at
//! start: the password table (a [`Reloadable`], replaced on SIGHUP) and the
//! JWT key. [`Logins`] is one shard's part (`Shard::logins`): its view of
//! the table, the client-id list, its [`Cache`] of verified logins.
//! The CONNECT handler (`protocol/login.rs`) asks [`Logins::decide`]; the
//! methods are tried in this order and the first definitive answer wins:
//!
//! 1. a verified TLS certificate identity: accepted, it is the user name
//!    (Mosquitto's `use_identity_as_username`);
//! 2. a client id in `auth.client_ids`, sending no password: accepted;
//! 3. neither user name nor password: anonymous (the listener's
//!    `allow_anonymous` decides, in the handler);
//! 4. a user the password file lists: its hash decides (a cached login
//!    answers at once; else a [`Check`] runs off the reactor);
//! 5. a password shaped like a JWT, with `[auth.jwt]` set: the token decides;
//! 6. the embedder's authenticate hook, if set: it decides (a [`Check`]);
//! 7. otherwise: refused as bad credentials when any method checks
//!    passwords (an unknown user gets the same answer as a wrong password);
//!    with none configured the user name is a mere label and the client is
//!    anonymous (3.).

use super::cache::Cache;
use super::check::{Check, HashSlot};
use super::jwt::JwtVerifier;
use super::passwd::PasswordFile;
use crate::config::{AuthConfig, ConfigError, JwtConfig};
use crate::reload::{Local, Reloadable};
use bytes::Bytes;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Why a login was refused, and so the CONNACK code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 0x04 (MQTT 5 0x86) Bad user name or password.
    BadCredentials,
    /// 0x05 (MQTT 5 0x87) Not authorized.
    NotAuthorized,
    /// 0x03 (MQTT 5 0x88) Server unavailable: the backend did not answer.
    Unavailable,
}

/// What the authenticate hook (or a check) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    Allow,
    Refuse(Refusal),
}

/// A login, as the authenticate hook sees it.
#[derive(Clone)]
pub struct LoginRequest {
    /// The CONNECT's client id (empty when the broker will assign one).
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub peer: SocketAddr,
    /// Index of the listener it came in on (`cfg.listener`).
    pub listener: usize,
    /// What a verified TLS client certificate says, if any.
    pub identity: Option<Box<str>>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("LoginRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("peer", &self.peer)
            .field("listener", &self.listener)
            .field("identity", &self.identity)
            .finish()
    }
}

/// What the shards share: loaded at start from `[auth]`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The password file and its table (None without `password_file`).
    passwords: Option<(PathBuf, Arc<Reloadable<PasswordFile>>)>,
    /// The JWT settings and the verifier made from them (None when off).
    jwt: Option<(JwtConfig, Arc<Reloadable<JwtVerifier>>)>,
}

impl Sources {
    /// Read the files `[auth]` names; the error names the key, file and line.
    pub fn load(cfg: &AuthConfig) -> Result<Sources, ConfigError> {
        let passwords = match cfg.password_file.as_str() {
            "" => None,
            path => {
                let table = PasswordFile::load(path.as_ref())
                    .map_err(|e| ConfigError(format!("auth.password_file: {e}")))?;
                log::info!("password file {path}: {} users", table.len());
                Some((PathBuf::from(path), Reloadable::new(table)))
            }
        };
        let jwt =
            JwtVerifier::from_config(&cfg.jwt)?.map(|v| (cfg.jwt.clone(), Reloadable::new(v)));
        Ok(Sources { passwords, jwt })
    }

    /// The SIGHUP action for the password file, if there is one: re-read
    /// it; a broken file keeps the old table.
    pub fn reloader(&self) -> Option<impl Fn() -> Result<String, String> + Send + Sync + 'static> {
        let (path, table) = self.passwords.clone()?;
        Some(move || {
            let new = PasswordFile::load(&path)?;
            let n = new.len();
            table.store(new);
            Ok(format!("{}: {n} users", path.display()))
        })
    }

    /// The SIGHUP action for an RS256 public key file, if one is set:
    /// re-read it; a file that does not load keeps the old key. (An HS256
    /// secret lives in the configuration, which is read at start only.)
    pub fn jwt_reloader(
        &self,
    ) -> Option<impl Fn() -> Result<String, String> + Send + Sync + 'static> {
        let (cfg, verifier) = self.jwt.clone()?;
        if cfg.public_key_file.is_empty() {
            return None;
        }
        Some(move || match JwtVerifier::from_config(&cfg) {
            Ok(Some(v)) => {
                verifier.store(v);
                Ok(cfg.public_key_file.clone())
            }
            Ok(None) => Err("auth.jwt: no key configured".into()),
            Err(e) => Err(e.to_string()),
        })
    }
}

/// Who is logging in (borrowed from the CONNECT and the connection).
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub identity: Option<&'a str>,
}

/// The decision for one CONNECT.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted by `method`; the session's user name becomes `username`
    /// when Some (certificate identity, JWT claim).
    Accept {
        method: &'static str,
        username: Option<String>,
    },
    /// No credentials (or, with no method configured, a mere user name):
    /// the listener's `allow_anonymous` decides.
    Anonymous,
    Refuse(Refusal, &'static str),
    /// A slow check must run first (`auth::check`).
    Check(Check),
}

/// One shard's login methods and memory.
#[derive(Debug)]
pub struct Logins {
    passwords: Option<Local<PasswordFile>>,
    jwt: Option<Local<JwtVerifier>>,
    client_ids: HashSet<Box<str>>,
    /// The embedder set an authenticate hook.
    hook: bool,
    cache: Cache,
    /// The password table generation the cache was filled from.
    cache_generation: u64,
    /// Hashes queued or running on this shard's blocking pool.
    hashing: Arc<AtomicUsize>,
}

impl Logins {
    pub fn new(cfg: &AuthConfig, sources: &Sources, hook: bool) -> Logins {
        Logins {
            passwords: sources
                .passwords
                .as_ref()
                .map(|(_, t)| Local::new(t.clone())),
            jwt: sources.jwt.as_ref().map(|(_, v)| Local::new(v.clone())),
            client_ids: cfg.client_ids.iter().map(|s| s.as_str().into()).collect(),
            hook,
            cache: Cache::new(cfg.cache_size, cfg.cache_ttl_s * 1000),
            cache_generation: 0,
            hashing: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether any method checks user names and passwords.
    fn checks_passwords(&self) -> bool {
        self.passwords.is_some() || self.jwt.is_some() || self.hook
    }

    /// Decide what to do with a login at `now_ms` (shard clock) and
    /// `unix_s` (wall clock, for JWT times). See the module doc for the order.
    pub fn decide(&mut self, a: &Attempt<'_>, now_ms: u64, unix_s: u64) -> Outcome {
        if let Some(id) = a.identity {
            return Outcome::Accept {
                method: "certificate",
                username: Some(id.to_owned()),
            };
        }
        if a.password.is_none() && self.client_ids.contains(a.client_id) {
            return Outcome::Accept {
                method: "client id",
                username: None,
            };
        }
        if a.username.is_none() && a.password.is_none() {
            return Outcome::Anonymous;
        }
        if let Some(outcome) = self.by_password_file(a, now_ms) {
            return outcome;
        }
        if let (Some(jwt), Some(p)) = (&mut self.jwt, a.password) {
            if JwtVerifier::looks_like_token(p) {
                return match jwt.get().verify(p, a.username, unix_s) {
                    Ok(user) => Outcome::Accept {
                        method: "jwt",
                        username: Some(user),
                    },
                    Err(e) => {
                        log::debug!("jwt refused: {e:?}");
                        Outcome::Refuse(Refusal::BadCredentials, "token refused")
                    }
                };
            }
        }
        if self.hook {
            return Outcome::Check(Check::Hook);
        }
        if self.checks_passwords() {
            return Outcome::Refuse(Refusal::BadCredentials, "unknown user");
        }
        Outcome::Anonymous
    }

    /// The password file's answer, when it lists the user.
    fn by_password_file(&mut self, a: &Attempt<'_>, now_ms: u64) -> Option<Outcome> {
        let table = self.passwords.as_mut()?;
        let user = a.username?;
        let hash = table.get().get(user)?.clone();
        if table.generation() != self.cache_generation {
            self.cache.clear();
            self.cache_generation = table.generation();
        }
        let Some(password) = a.password else {
            return Some(Outcome::Refuse(Refusal::BadCredentials, "no password"));
        };
        if self.cache.hit(user, password, now_ms) {
            return Some(Outcome::Accept {
                method: "password file (cached)",
                username: None,
            });
        }
        match HashSlot::take(&self.hashing) {
            Some(slot) => Some(Outcome::Check(Check::Hash(hash, slot))),
            None => Some(Outcome::Refuse(
                Refusal::Unavailable,
                "too many password checks",
            )),
        }
    }

    /// The password table generation decisions are made from now (a
    /// check started under another one must not fill the cache).
    pub fn generation(&self) -> u64 {
        self.cache_generation
    }

    /// A password check started at `generation` succeeded: remember it,
    /// unless the table was reloaded meanwhile.
    pub fn remember(&mut self, user: &str, password: &[u8], now_ms: u64, generation: u64) {
        if generation == self.cache_generation {
            self.cache.insert(user, password, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::testing::hs256;

    const FILE: &str = "alice:$7$101$Bt1tV2Ycw9gVPLrr$5qezWJVUxrtNyKL2sSscLZX73C+nOYyouwYCB7ZpwYt0KlLX+kxIuRuM83RYZ3Mq0EWaw2yiSWTBNlD0r8EKfA==\n";

    fn logins(jwt: bool, hook: bool) -> (Logins, Arc<Reloadable<PasswordFile>>) {
        let table = Reloadable::new(PasswordFile::parse(FILE).unwrap());
        let mut cfg = AuthConfig {
            client_ids: vec!["dev-1".into()],
            ..AuthConfig::default()
        };
        cfg.jwt.secret = if jwt { "k".into() } else { String::new() };
        let sources = Sources {
            passwords: Some(("pw".into(), table.clone())),
            jwt: JwtVerifier::from_config(&cfg.jwt)
                .unwrap()
                .map(|v| (cfg.jwt.clone(), Reloadable::new(v))),
        };
        (Logins::new(&cfg, &sources, hook), table)
    }

    fn attempt<'a>(id: &'a str, user: Option<&'a str>, pw: Option<&'a [u8]>) -> Attempt<'a> {
        Attempt {
            client_id: id,
            username: user,
            password: pw,
            identity: None,
        }
    }

    #[test]
    fn the_methods_answer_in_order() {
        let (mut l, _) = logins(true, false);
        let cert = Attempt {
            identity: Some("CN=dev"),
            ..attempt("c", Some("x"), Some(b"wrong"))
        };
        assert!(
            matches!(l.decide(&cert, 0, 0), Outcome::Accept { method: "certificate", username: Some(u) } if u == "CN=dev")
        );
        assert!(matches!(
            l.decide(&attempt("dev-1", None, None), 0, 0),
            Outcome::Accept {
                method: "client id",
                ..
            }
        ));
        // A listed id with a password is checked like any other.
        assert!(matches!(
            l.decide(&attempt("dev-1", Some("alice"), Some(b"pw")), 0, 0),
            Outcome::Check(Check::Hash(..))
        ));
        assert!(matches!(
            l.decide(&attempt("c", None, None), 0, 0),
            Outcome::Anonymous
        ));
        assert!(matches!(
            l.decide(&attempt("c", Some("alice"), None), 0, 0),
            Outcome::Refuse(Refusal::BadCredentials, _)
        ));
        let token = hs256(b"k", &serde_json::json!({"sub": "bob", "exp": 2_000}));
        let jwt = attempt("c", None, Some(token.as_bytes()));
        assert!(
            matches!(l.decide(&jwt, 0, 1_000), Outcome::Accept { method: "jwt", username: Some(u) } if u == "bob")
        );
        assert!(matches!(
            l.decide(&jwt, 0, 2_000),
            Outcome::Refuse(Refusal::BadCredentials, _)
        ));
        assert!(matches!(
            l.decide(&attempt("c", Some("zed"), Some(b"pw")), 0, 0),
            Outcome::Refuse(Refusal::BadCredentials, "unknown user")
        ));
    }

    #[test]
    fn a_hook_answers_for_unknown_users_and_no_method_means_a_label() {
        let (mut l, _) = logins(false, true);
        assert!(matches!(
            l.decide(&attempt("c", Some("zed"), Some(b"pw")), 0, 0),
            Outcome::Check(Check::Hook)
        ));
        let mut none = Logins::new(&AuthConfig::default(), &Sources::default(), false);
        assert!(matches!(
            none.decide(&attempt("c", Some("zed"), Some(b"pw")), 0, 0),
            Outcome::Anonymous
        ));
    }

    #[test]
    fn the_cache_answers_until_the_file_is_reloaded() {
        let (mut l, table) = logins(false, false);
        let a = attempt("c", Some("alice"), Some(b"secret"));
        assert!(matches!(l.decide(&a, 0, 0), Outcome::Check(_)));
        let started = l.generation();
        l.remember("alice", b"secret", 0, started);
        assert!(matches!(l.decide(&a, 1, 0), Outcome::Accept { .. }));
        table.store(PasswordFile::parse(FILE).unwrap());
        assert!(
            matches!(l.decide(&a, 2, 0), Outcome::Check(_)),
            "reload empties the cache"
        );
        // A check that started before the reload is not remembered.
        l.remember("alice", b"secret", 3, started);
        assert!(matches!(l.decide(&a, 4, 0), Outcome::Check(_)));
    }
}
