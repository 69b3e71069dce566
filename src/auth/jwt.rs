//! JSON Web Tokens as CONNECT passwords (`[auth.jwt]`): HS256 with a shared
//! secret or RS256 with a public key, verified by hand (HMAC-SHA-256, or
//! RSASSA-PKCS1-v1_5 with SHA-256 from the `rsa` crate).
//!
//! Owns the key ([`JwtVerifier`], built once at start and shared by every
//! shard). Called by the login decision (`auth::login`) for a password that
//! has a token's shape. A token is accepted when its header's `alg` is the
//! configured one (so an RS256 key cannot be used as an HS256 secret, and
//! `none` never passes), its signature verifies, `exp` is in the future
//! (required), `nbf` (if present) is not, and it carries the user name
//! claim, which must equal the CONNECT's user name when one was sent.
//! Verifying takes microseconds (RS256 with e = 65537 is cheap), so it runs
//! inline on the shard.

use super::passwd::constant_time_eq;
use crate::config::{ConfigError, JwtConfig};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::Value;
use sha2::Sha256;

/// Longest token looked at (a password is at most 65535 bytes anyway).
const MAX_TOKEN: usize = 16 * 1024;

/// The configured key.
enum Key {
    Hs256(Vec<u8>),
    Rs256(Box<VerifyingKey<Sha256>>),
}

/// Verifies tokens against the configured key.
pub struct JwtVerifier {
    key: Key,
    username_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self.key {
            Key::Hs256(_) => "HS256",
            Key::Rs256(_) => "RS256",
        };
        write!(f, "JwtVerifier({alg}, claim {:?})", self.username_claim)
    }
}

/// Why a token was refused (logged; the client gets CONNACK 0x04 / 0x86).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    /// The header's alg is not the configured one.
    WrongAlgorithm(String),
    BadSignature,
    Expired,
    NotYetValid,
    NoExpiry,
    /// The user name claim is missing or not a string.
    NoUsername,
    /// The claim differs from the CONNECT's user name.
    UsernameMismatch,
}

impl JwtVerifier {
    /// The verifier `[auth.jwt]` asks for, or None when it is off. Reads the
    /// public key file; the error names the key and the file.
    pub fn from_config(cfg: &JwtConfig) -> Result<Option<JwtVerifier>, ConfigError> {
        let key = if !cfg.secret.is_empty() {
            Key::Hs256(cfg.secret.as_bytes().to_vec())
        } else if !cfg.public_key_file.is_empty() {
            let bad = |e: String| {
                ConfigError(format!(
                    "auth.jwt.public_key_file: {}: {e}",
                    cfg.public_key_file
                ))
            };
            let pem =
                std::fs::read_to_string(&cfg.public_key_file).map_err(|e| bad(e.to_string()))?;
            let key = RsaPublicKey::from_public_key_pem(&pem)
                .or_else(|_| RsaPublicKey::from_pkcs1_pem(&pem))
                .map_err(|e| bad(format!("not an RSA public key in PEM: {e}")))?;
            Key::Rs256(Box::new(VerifyingKey::new(key)))
        } else {
            return Ok(None);
        };
        Ok(Some(JwtVerifier {
            key,
            username_claim: cfg.username_claim.clone(),
        }))
    }

    /// Whether a password has a token's shape (three base64url parts).
    pub fn looks_like_token(password: &[u8]) -> bool {
        password.len() <= MAX_TOKEN
            && password.iter().filter(|&&b| b == b'.').count() == 2
            && password
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(b))
    }

    /// Verify `token` at `now_s` (Unix seconds) for a CONNECT with this user
    /// name; returns the user name the token vouches for.
    pub fn verify(
        &self,
        token: &[u8],
        username: Option<&str>,
        now_s: u64,
    ) -> Result<String, JwtError> {
        let text = std::str::from_utf8(token).map_err(|_| JwtError::Malformed)?;
        let mut parts = text.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header = decode_json(h)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let want = match self.key {
            Key::Hs256(_) => "HS256",
            Key::Rs256(_) => "RS256",
        };
        if alg != want {
            return Err(JwtError::WrongAlgorithm(alg.chars().take(16).collect()));
        }
        let sig = B64URL.decode(s).map_err(|_| JwtError::Malformed)?;
        let signed = &text[..h.len() + 1 + c.len()];
        if !self.signature_ok(signed.as_bytes(), &sig) {
            return Err(JwtError::BadSignature);
        }
        let claims = decode_json(c)?;
        check_times(&claims, now_s)?;
        let user = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .ok_or(JwtError::NoUsername)?;
        match username {
            Some(u) if u != user => Err(JwtError::UsernameMismatch),
            _ => Ok(user.to_owned()),
        }
    }

    fn signature_ok(&self, signed: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            Key::Hs256(secret) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                    return false;
                };
                mac.update(signed);
                constant_time_eq(&mac.finalize().into_bytes(), sig)
            }
            Key::Rs256(key) => {
                Signature::try_from(sig).is_ok_and(|s| key.verify(signed, &s).is_ok())
            }
        }
    }
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(JwtError::Malformed),
    }
}

/// `exp` required and in the future; `nbf`, if present, not.
fn check_times(claims: &Value, now_s: u64) -> Result<(), JwtError> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(JwtError::NoExpiry)?;
    if exp <= now_s {
        return Err(JwtError::Expired);
    }
    match claims.get("nbf") {
        None => Ok(()),
        Some(v) => match v.as_u64() {
            Some(nbf) if nbf <= now_s => Ok(()),
            Some(_) => Err(JwtError::NotYetValid),
            None => Err(JwtError::Malformed),
        },
    }
}

/// Token making for tests (this crate's and the integration tests').
#[doc(hidden)]
pub mod testing {
    use super::*;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    /// A token over `claims` signed with HS256 and `secret`.
    pub fn hs256(secret: &[u8], claims: &Value) -> String {
        sign("HS256", claims, |m| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(m);
            mac.finalize().into_bytes().to_vec()
        })
    }

    /// A token over `claims` signed with RS256 and a PKCS#8 PEM private key.
    pub fn rs256(private_pem: &str, claims: &Value) -> String {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).expect("test key");
        let signer = SigningKey::<Sha256>::new(key);
        sign("RS256", claims, |m| signer.sign(m).to_vec())
    }

    fn sign(alg: &str, claims: &Value, f: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let header = serde_json::json!({"alg": alg, "typ": "JWT"});
        let signed = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = f(signed.as_bytes());
        format!("{signed}.{}", B64URL.encode(sig))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{hs256, rs256};
    use super::*;
    use serde_json::json;

    const PRIVATE: &str = include_str!("../../tests/data/jwt/jwt-rs256.pem");
    const OTHER: &str = include_str!("../../tests/data/jwt/jwt-other.pem");
    const NOW: u64 = 1_800_000_000;

    fn hs() -> JwtVerifier {
        let cfg = JwtConfig {
            secret: "s3cret".into(),
            ..JwtConfig::default()
        };
        JwtVerifier::from_config(&cfg).unwrap().unwrap()
    }

    fn rs() -> JwtVerifier {
        let cfg = JwtConfig {
            public_key_file: concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/jwt/jwt-rs256.pub.pem"
            )
            .into(),
            ..JwtConfig::default()
        };
        JwtVerifier::from_config(&cfg).unwrap().unwrap()
    }

    fn claims(exp: u64) -> Value {
        json!({"sub": "dev-1", "exp": exp})
    }

    #[test]
    fn hs256_accepted_expired_forged_and_mismatched() {
        let v = hs();
        let ok = hs256(b"s3cret", &claims(NOW + 60));
        assert!(JwtVerifier::looks_like_token(ok.as_bytes()));
        assert_eq!(v.verify(ok.as_bytes(), None, NOW), Ok("dev-1".into()));
        assert_eq!(
            v.verify(ok.as_bytes(), Some("dev-1"), NOW),
            Ok("dev-1".into())
        );
        assert_eq!(
            v.verify(ok.as_bytes(), Some("dev-2"), NOW),
            Err(JwtError::UsernameMismatch)
        );
        let expired = hs256(b"s3cret", &claims(NOW));
        assert_eq!(
            v.verify(expired.as_bytes(), None, NOW),
            Err(JwtError::Expired)
        );
        let forged = hs256(b"guess", &claims(NOW + 60));
        assert_eq!(
            v.verify(forged.as_bytes(), None, NOW),
            Err(JwtError::BadSignature)
        );
        let no_exp = hs256(b"s3cret", &json!({"sub": "dev-1"}));
        assert_eq!(
            v.verify(no_exp.as_bytes(), None, NOW),
            Err(JwtError::NoExpiry)
        );
        let early = hs256(
            b"s3cret",
            &json!({"sub": "d", "exp": NOW + 60, "nbf": NOW + 30}),
        );
        assert_eq!(
            v.verify(early.as_bytes(), None, NOW),
            Err(JwtError::NotYetValid)
        );
        let nobody = hs256(b"s3cret", &json!({"exp": NOW + 60}));
        assert_eq!(
            v.verify(nobody.as_bytes(), None, NOW),
            Err(JwtError::NoUsername)
        );
    }

    #[test]
    fn rs256_accepted_expired_and_forged() {
        let v = rs();
        let ok = rs256(PRIVATE, &claims(NOW + 60));
        assert_eq!(
            v.verify(ok.as_bytes(), Some("dev-1"), NOW),
            Ok("dev-1".into())
        );
        let expired = rs256(PRIVATE, &claims(NOW - 1));
        assert_eq!(
            v.verify(expired.as_bytes(), None, NOW),
            Err(JwtError::Expired)
        );
        let forged = rs256(OTHER, &claims(NOW + 60));
        assert_eq!(
            v.verify(forged.as_bytes(), None, NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn the_wrong_key_type_or_none_is_refused() {
        // An HS256 token "signed" with the RSA public key's text must not
        // pass an RS256 verifier (algorithm confusion), nor RS256 an HS256 one.
        let public = include_str!("../../tests/data/jwt/jwt-rs256.pub.pem");
        let confused = hs256(public.as_bytes(), &claims(NOW + 60));
        assert!(matches!(
            rs().verify(confused.as_bytes(), None, NOW),
            Err(JwtError::WrongAlgorithm(_))
        ));
        let rs_token = rs256(PRIVATE, &claims(NOW + 60));
        assert!(matches!(
            hs().verify(rs_token.as_bytes(), None, NOW),
            Err(JwtError::WrongAlgorithm(_))
        ));
        let none = format!(
            "{}.{}.",
            B64URL.encode(r#"{"alg":"none"}"#),
            B64URL.encode(claims(NOW + 60).to_string())
        );
        assert!(matches!(
            hs().verify(none.as_bytes(), None, NOW),
            Err(JwtError::WrongAlgorithm(_))
        ));
        for junk in [&b"a.b.c"[..], b"..", b"\xff.\xff.\xff", b"x"] {
            assert!(hs().verify(junk, None, NOW).is_err());
        }
    }

    #[test]
    fn a_bad_key_file_is_a_config_error_naming_it() {
        let cfg = JwtConfig {
            public_key_file: "/nonexistent/key.pem".into(),
            ..JwtConfig::default()
        };
        let err = JwtVerifier::from_config(&cfg).unwrap_err();
        assert!(
            err.0.contains("auth.jwt.public_key_file") && err.0.contains("/nonexistent/key.pem")
        );
        assert!(JwtVerifier::from_config(&JwtConfig::default())
            .unwrap()
            .is_none());
    }
}
