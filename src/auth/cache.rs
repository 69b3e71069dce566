//! A shard's memory of logins it verified, so a reconnect storm does not
//! hash every password again.
//!
//! Owned by the shard's [`Logins`](super::login::Logins) (one cache per
//! shard, no lock). An entry is the user name and a keyed hash
//! (HMAC-SHA-256 under a random key made when the cache is) of the
//! password, never the password itself; it lives `ttl_ms` and the cache
//! holds at most `capacity` entries (the oldest goes first). Emptied when
//! the password file is reloaded.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};

type Key = (Box<str>, [u8; 16]);

/// Verified (user, password) pairs, bounded in number and age.
pub struct Cache {
    /// The HMAC key; random per cache, never leaves it.
    secret: [u8; 32],
    /// Entry → the time (ms) it expires.
    entries: HashMap<Key, u64>,
    /// Insertion order, to drop the oldest when full.
    order: VecDeque<Key>,
    capacity: usize,
    ttl_ms: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Cache {
    pub fn new(capacity: usize, ttl_ms: u64) -> Cache {
        let mut secret = [0u8; 32];
        if getrandom::fill(&mut secret).is_err() {
            // Without randomness, remember nothing rather than use a known key.
            return Cache::with_secret(secret, 0, ttl_ms);
        }
        Cache::with_secret(secret, capacity, ttl_ms)
    }

    fn with_secret(secret: [u8; 32], capacity: usize, ttl_ms: u64) -> Cache {
        Cache {
            secret,
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            ttl_ms,
        }
    }

    fn key(&self, user: &str, password: &[u8]) -> Key {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            // HMAC takes a key of any length.
            Err(_) => unreachable!("HMAC accepts 32-byte keys"),
        };
        mac.update(password);
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        (user.into(), fp)
    }

    /// Whether `user` logged in with `password` within the TTL.
    pub fn hit(&mut self, user: &str, password: &[u8], now_ms: u64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let key = self.key(user, password);
        match self.entries.get(&key) {
            Some(&expires) if expires > now_ms => true,
            Some(_) => {
                self.entries.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remember a verified login.
    pub fn insert(&mut self, user: &str, password: &[u8], now_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        let key = self.key(user, password);
        if self
            .entries
            .insert(key.clone(), now_ms + self.ttl_ms)
            .is_none()
        {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        // Keys of entries that expired and were removed by `hit` stay in
        // `order` until they reach its front: bound it too.
        if self.order.len() > 2 * self.capacity {
            self.order.retain(|k| self.entries.contains_key(k));
        }
    }

    /// Forget everything (the password file changed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_login_until_its_ttl_and_only_with_that_password() {
        let mut c = Cache::new(10, 1_000);
        assert!(!c.hit("u", b"pw", 0));
        c.insert("u", b"pw", 0);
        assert!(c.hit("u", b"pw", 999));
        assert!(!c.hit("u", b"px", 10));
        assert!(!c.hit("v", b"pw", 10));
        assert!(!c.hit("u", b"pw", 1_000), "expired");
        assert!(c.is_empty());
    }

    #[test]
    fn is_bounded_oldest_first_and_cleared() {
        let mut c = Cache::new(3, 1_000);
        for u in ["a", "b", "c", "d"] {
            c.insert(u, b"pw", 0);
        }
        assert_eq!(c.len(), 3);
        assert!(!c.hit("a", b"pw", 1));
        assert!(c.hit("d", b"pw", 1));
        c.clear();
        assert!(!c.hit("d", b"pw", 1));
        let mut off = Cache::new(0, 1_000);
        off.insert("a", b"pw", 0);
        assert!(!off.hit("a", b"pw", 0));
    }

    #[test]
    fn keeps_no_password_bytes() {
        let mut c = Cache::with_secret([7; 32], 4, 1_000);
        c.insert("u", b"very-secret-password", 0);
        let dump = format!("{:?}", c.entries);
        assert!(!dump.contains("very-secret"), "{dump}");
        // Another key, another fingerprint.
        let other = Cache::with_secret([8; 32], 4, 1_000);
        assert_ne!(c.key("u", b"x"), other.key("u", b"x"));
    }
}
