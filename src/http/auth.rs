//! Credentials of the management listener: an API key or HTTP Basic.
//!
//! With `[http] api_key` set, `Authorization: Bearer KEY` or `X-API-Key: KEY`
//! is accepted; with `username`/`password`, Basic credentials. None set: no
//! check (the configuration allows that only on a loopback bind). Compared
//! in constant time. Called by `routes.rs` for every path but `/health/*`.

use crate::config::HttpConfig;
use base64::Engine;
use hyper::HeaderMap;

/// Whether the request carries acceptable credentials.
pub fn allowed(cfg: &HttpConfig, headers: &HeaderMap) -> bool {
    if !cfg.needs_auth() {
        return true;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !cfg.api_key.is_empty() {
        let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
        if [bearer, header("x-api-key")]
            .into_iter()
            .flatten()
            .any(|k| same(k.trim().as_bytes(), cfg.api_key.as_bytes()))
        {
            return true;
        }
    }
    if !cfg.username.is_empty() {
        let basic = header("authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            });
        if let Some(pair) = basic {
            let want = format!("{}:{}", cfg.username, cfg.password);
            return same(&pair, want.as_bytes());
        }
    }
    false
}

/// Equality in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn key_and_basic() {
        let mut cfg = HttpConfig::default();
        assert!(allowed(&cfg, &headers(&[])), "no credentials configured");
        cfg.api_key = "k3y".into();
        cfg.username = "admin".into();
        cfg.password = "pw".into();
        assert!(!allowed(&cfg, &headers(&[])));
        assert!(allowed(&cfg, &headers(&[("authorization", "Bearer k3y")])));
        assert!(allowed(&cfg, &headers(&[("x-api-key", "k3y")])));
        assert!(!allowed(&cfg, &headers(&[("authorization", "Bearer k3z")])));
        // admin:pw
        assert!(allowed(
            &cfg,
            &headers(&[("authorization", "Basic YWRtaW46cHc=")])
        ));
        // admin:px
        assert!(!allowed(
            &cfg,
            &headers(&[("authorization", "Basic YWRtaW46cHg=")])
        ));
        assert!(!allowed(&cfg, &headers(&[("authorization", "Basic !!")])));
    }
}
