//! Password files in Mosquitto's format, so a file `mosquitto_passwd`
//! wrote works unchanged: one `user:hash` per line, the hash one of
//!
//! * `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 (mosquitto_passwd 2.x),
//! * `$6$SALT$HASH`: SHA-512 of password then salt (Mosquitto 1.6 and older),
//! * `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH`: a PHC string (what
//!   `coremq passwd` writes).
//!
//! SALT and HASH of `$7$` and `$6$` are standard base64. Blank lines and
//! lines starting with `#` are skipped. Owns the parsed table
//! ([`PasswordFile`]) and the editing of a file's text for `coremq passwd`
//! ([`set_entry`], [`delete_entry`]). Verifying costs milliseconds of CPU
//! on purpose: the broker calls [`Hash::verify`] on glommio's blocking
//! thread pool (`auth::check`), never on a shard's reactor.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::Hmac;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Iterations accepted in a `$7$` hash: enough headroom for any real file,
/// small enough that a hostile file cannot make one login take minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    /// `$argon2id$...`: kept as its PHC string.
    Argon2(String),
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print hash material into a log.
        f.write_str(match self {
            Hash::Pbkdf2Sha512 { .. } => "Hash($7$)",
            Hash::Sha512 { .. } => "Hash($6$)",
            Hash::Argon2(_) => "Hash($argon2id$)",
        })
    }
}

impl Hash {
    /// Parse the part after `user:`.
    pub fn parse(s: &str) -> Result<Hash, String> {
        let b64 = |what: &str, v: &str| {
            B64.decode(v)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        if s.starts_with("$argon2id$") {
            let h = PasswordHash::new(s).map_err(|e| format!("bad argon2id string: {e}"))?;
            if h.salt.is_none() || h.hash.is_none() || argon2::Params::try_from(&h).is_err() {
                return Err("bad argon2id string: needs parameters, salt and hash".into());
            }
            return Ok(Hash::Argon2(s.to_owned()));
        }
        let parts: Vec<&str> = s.split('$').collect();
        match parts.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))
                    .ok_or("bad iteration count")?;
                Ok(Hash::Pbkdf2Sha512 {
                    iterations,
                    salt: b64("salt", salt)?,
                    hash: b64("hash", hash)?,
                })
            }
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: b64("salt", salt)?,
                hash: b64("hash", hash)?,
            }),
            _ => Err("unknown hash format (expected $7$, $6$ or $argon2id$)".into()),
        }
    }

    /// Whether `password` matches. CPU-heavy by design (see the module doc).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                if pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, *iterations, &mut out).is_err() {
                    return false;
                }
                constant_time_eq(&out, hash)
            }
            Hash::Sha512 { salt, hash } => {
                let mut d = Sha512::new();
                d.update(password);
                d.update(salt);
                constant_time_eq(&d.finalize(), hash)
            }
            Hash::Argon2(phc) => PasswordHash::new(phc)
                .is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok()),
        }
    }

    /// A new argon2id hash of `password` with a random salt (argon2's
    /// default cost), as a PHC string.
    pub fn argon2id(password: &[u8]) -> Result<String, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password, &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    }
}

/// Compare without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed password file: user name → hash.
#[derive(Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, Arc<Hash>>,
}

impl PasswordFile {
    /// Read and parse `path`; the error names the file (and line).
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("password file {}: {e}", path.display()))?;
        PasswordFile::parse(&text).map_err(|e| format!("password file {}: {e}", path.display()))
    }

    /// Parse a file's text; the error names the line.
    pub fn parse(text: &str) -> Result<PasswordFile, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| format!("line {}: {why}", n + 1);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| at("expected user:hash".into()))?;
            if user.is_empty() {
                return Err(at("empty user name".into()));
            }
            let hash = Hash::parse(hash).map_err(at)?;
            if users.insert(user.to_owned(), Arc::new(hash)).is_some() {
                return Err(at(format!("user {user:?} listed twice")));
            }
        }
        Ok(PasswordFile { users })
    }

    pub fn get(&self, user: &str) -> Option<&Arc<Hash>> {
        self.users.get(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The file's text with `user`'s line set to `hash` (replaced where it
/// was, appended otherwise); every other line is kept as it was.
pub fn set_entry(text: &str, user: &str, hash: &str) -> String {
    let line = format!("{user}:{hash}");
    let mut found = false;
    let mut out: Vec<&str> = text
        .lines()
        .map(|l| match l.split_once(':') {
            Some((u, _)) if u == user && !found => {
                found = true;
                line.as_str()
            }
            _ => l,
        })
        .collect();
    if !found {
        out.push(&line);
    }
    out.join("\n") + "\n"
}

/// The file's text without `user`'s line, and whether it was there.
pub fn delete_entry(text: &str, user: &str) -> (String, bool) {
    let before = text.lines().count();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(user))
        .collect();
    let removed = kept.len() != before;
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    (out, removed)
}

/// `coremq passwd`: set `user`'s password (a new argon2id hash) or, with
/// `password` None, delete the user, in the file at `path`. `create`
/// starts from an empty file (overwriting one that exists). The new text
/// goes to a temporary file (mode 0600) renamed over the old, so a reader
/// never sees half a file. Returns what was done, for the user.
pub fn edit_file(
    path: &Path,
    create: bool,
    user: &str,
    password: Option<&[u8]>,
) -> Result<String, String> {
    if !valid_user(user) {
        return Err(format!("invalid user name {user:?}"));
    }
    let name = path.display();
    let old = match create {
        true => String::new(),
        false => std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?,
    };
    // Refuse to rewrite a file the broker could not read.
    PasswordFile::parse(&old).map_err(|e| format!("{name}: {e}"))?;
    let (text, done) = match password {
        Some(pw) => {
            let hash = Hash::argon2id(pw)?;
            (
                set_entry(&old, user, &hash),
                format!("{user}: password set"),
            )
        }
        None => match delete_entry(&old, user) {
            (text, true) => (text, format!("{user}: deleted")),
            (_, false) => return Err(format!("{name}: no user {user:?}")),
        },
    };
    write_atomically(path, &text).map_err(|e| format!("{name}: {e}"))?;
    Ok(done)
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Whether a user name can be written to a password file.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && !user.contains([':', '\n', '\r']) && !user.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Debian's `mosquitto_passwd -b` (2.0.11) for alice / secret.
    const MOSQUITTO_7: &str = "alice:$7$101$Bt1tV2Ycw9gVPLrr$5qezWJVUxrtNyKL2sSscLZX73C+nOYyouwYCB7ZpwYt0KlLX+kxIuRuM83RYZ3Mq0EWaw2yiSWTBNlD0r8EKfA==";

    #[test]
    fn a_committed_mosquitto_pbkdf2_line_verifies() {
        let f = PasswordFile::parse(MOSQUITTO_7).unwrap();
        let h = f.get("alice").unwrap();
        assert!(matches!(
            **h,
            Hash::Pbkdf2Sha512 {
                iterations: 101,
                ..
            }
        ));
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"secreT"));
        assert!(!h.verify(b""));
    }

    #[test]
    fn argon2id_round_trips_and_sha512_verifies() {
        let phc = Hash::argon2id(b"pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"));
        let h = Hash::parse(&phc).unwrap();
        assert!(h.verify(b"pw") && !h.verify(b"pW"));
        // $6$: SHA-512(password ‖ salt), base64 salt and hash.
        let salt = b"0123456789ab";
        let mut d = Sha512::new();
        d.update(b"pw");
        d.update(salt);
        let line = format!("$6${}${}", B64.encode(salt), B64.encode(d.finalize()));
        let h = Hash::parse(&line).unwrap();
        assert!(h.verify(b"pw") && !h.verify(b"px"));
    }

    /// Files made by Debian's `mosquitto_passwd` when it is installed
    /// (scripts/test.sh installs it): both of its formats.
    #[test]
    fn files_made_by_mosquitto_passwd_verify() {
        if std::process::Command::new("mosquitto_passwd")
            .arg("-h")
            .output()
            .is_err()
        {
            eprintln!("mosquitto_passwd not installed: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("coremq-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (algo, prefix) in [("sha512-pbkdf2", "$7$"), ("sha512", "$6$")] {
            let file = dir.join(algo);
            let _ = std::fs::remove_file(&file);
            let ok = std::process::Command::new("mosquitto_passwd")
                .args(["-H", algo, "-c", "-b"])
                .arg(&file)
                .args(["bob", "hunter2"])
                .status()
                .unwrap();
            assert!(ok.success());
            let f = PasswordFile::load(&file).unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.starts_with(&format!("bob:{prefix}")), "{text}");
            let h = f.get("bob").unwrap();
            assert!(h.verify(b"hunter2") && !h.verify(b"hunter3"), "{algo}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_files_name_the_line() {
        for (text, line) in [
            ("a:$7$101$AA==$AA==\nnocolon\n", "line 2"),
            ("\n# c\na:$5$x$y\n", "line 3"),
            ("a:$7$0$AA==$AA==\n", "line 1"),
            ("a:$7$101$!!$AA==\n", "line 1"),
            (":$6$AA==$AA==\n", "line 1"),
            ("a:$6$AA==$AA==\na:$6$AA==$AA==\n", "line 2"),
            ("a:$argon2id$garbage\n", "line 1"),
        ] {
            let err = PasswordFile::parse(text).unwrap_err();
            assert!(err.contains(line), "{text:?}: {err}");
        }
        let err = PasswordFile::load(Path::new("/nonexistent/pw")).unwrap_err();
        assert!(err.contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn entries_are_set_and_deleted_keeping_other_lines() {
        let text = "# users\nalice:$6$AA==$AA==\nbob:$6$AA==$AA==\n";
        let t = set_entry(text, "bob", "NEW");
        assert_eq!(t, "# users\nalice:$6$AA==$AA==\nbob:NEW\n");
        let t = set_entry(&t, "carol", "C");
        assert!(t.ends_with("bob:NEW\ncarol:C\n"));
        let (t, removed) = delete_entry(&t, "alice");
        assert!(removed);
        assert_eq!(t, "# users\nbob:NEW\ncarol:C\n");
        assert!(!delete_entry(&t, "zed").1);
        assert_eq!(set_entry("", "a", "h"), "a:h\n");
        assert!(valid_user("a") && !valid_user("a:b") && !valid_user(""));
    }

    #[test]
    fn edit_file_creates_updates_and_deletes() {
        let path = std::env::temp_dir().join(format!("coremq-edit-{}", std::process::id()));
        edit_file(&path, true, "u1", Some(b"one")).unwrap();
        edit_file(&path, false, "u2", Some(b"two")).unwrap();
        edit_file(&path, false, "u1", Some(b"uno")).unwrap();
        let f = PasswordFile::load(&path).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.get("u1").unwrap().verify(b"uno"));
        assert!(f.get("u2").unwrap().verify(b"two"));
        edit_file(&path, false, "u2", None).unwrap();
        assert!(edit_file(&path, false, "u2", None).is_err());
        assert!(edit_file(&path, false, "a:b", Some(b"x")).is_err());
        assert_eq!(PasswordFile::load(&path).unwrap().len(), 1);
        let _ = std::fs::remove_file(&path);
    }
}
