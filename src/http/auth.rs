//! Credentials of the management listener: an API key or HTTP Basic.
//!
//! With `[http] api_key` set, `Authorization: Bearer KEY` or `X-API-Key: KEY`
//! is accepted; with `username`/`password`, Basic credentials. None set: no
//! check (the configuration allows that only on a loopback bind). Compared
//! in constant time. Called by `routes.rs` for every path but `/health/*`.
//!
//! [`same_origin`] keeps web pages out (cross-site request forgery, DNS
//! rebinding): a browser on another site may send simple requests to a
//! loopback listener, so a request carrying a foreign `Origin` is refused,
//! a POST must say `Content-Type: application/json` (which a page elsewhere
//! cannot send without a CORS preflight this listener never grants), and
//! without credentials the `Host` must be an IP address or `localhost`.

use super::reply::ApiError;
use crate::config::HttpConfig;
use base64::Engine;
use hyper::{HeaderMap, Method, StatusCode};

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

/// Whether the request may come from where it comes from (see the module doc).
pub fn same_origin(cfg: &HttpConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forbidden = |why: &str| Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", why));
    let host = header("host");
    if let Some(origin) = header("origin") {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if host != Some(origin_host) {
            return forbidden("a request from another origin (a web page elsewhere) is refused");
        }
    }
    if !cfg.needs_auth() && host.is_some_and(|h| !local_name(h)) {
        return forbidden("without credentials, Host must be an IP address or localhost");
    }
    Ok(())
}

/// A POST must carry JSON, said so in its `Content-Type` (see the module doc).
pub fn json_body(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if method == Method::POST
        && !header("content-type").is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a POST body must be sent as Content-Type: application/json",
        ));
    }
    Ok(())
}

/// `localhost` or an IP address, with or without a port (not a name a
/// rebinding DNS could point here).
fn local_name(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
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
    fn web_pages_elsewhere_are_refused() {
        let cfg = HttpConfig::default();
        let get = |h: &[(&'static str, &str)]| same_origin(&cfg, &headers(h));
        assert!(get(&[]).is_ok(), "no Host, no Origin: a tool like curl");
        assert!(get(&[("host", "127.0.0.1:18083")]).is_ok());
        assert!(get(&[("host", "localhost:18083")]).is_ok());
        assert!(get(&[("host", "[::1]:18083")]).is_ok());
        assert!(get(&[
            ("host", "127.0.0.1:18083"),
            ("origin", "http://127.0.0.1:18083")
        ])
        .is_ok());
        assert!(get(&[
            ("host", "127.0.0.1:18083"),
            ("origin", "http://evil.example")
        ])
        .is_err());
        assert!(
            get(&[("host", "evil.example:18083")]).is_err(),
            "DNS rebinding"
        );
        let post = |h: &[(&'static str, &str)]| json_body(&Method::POST, &headers(h));
        assert!(post(&[("content-type", "application/json")]).is_ok());
        assert!(post(&[("content-type", "text/plain")]).is_err());
        assert!(post(&[]).is_err());
        let with_key = HttpConfig {
            api_key: "k".into(),
            ..HttpConfig::default()
        };
        let named = headers(&[("host", "broker.example:18083")]);
        assert!(
            same_origin(&with_key, &named).is_ok(),
            "credentials guard it"
        );
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
