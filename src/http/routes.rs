//! Routing a management request to its endpoint.
//!
//! [`handle`] refuses what a web page elsewhere could send
//! (`auth::same_origin`), checks the credentials (all paths but
//! `/health/*`), reads a
//! POST body up to `max_body_bytes`, splits the path into percent-decoded
//! segments and calls the endpoint in `api.rs` (or `prom.rs`). Unknown
//! paths are 404, a known path with another method 405, both as JSON.

use super::api;
use super::parse::parse_query;
use super::reply::{body, ApiError, ApiResult, Reply};
use crate::control::sys::OpsRef;
use crate::shard::ShardRef;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::collections::HashMap;

/// Answer one request; never fails (errors are JSON replies).
pub async fn handle(shard: &ShardRef, ops: &OpsRef, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    let cfg = shard.borrow().cfg.clone();
    let result = if let Err(e) = super::auth::same_origin(&cfg.http, req.headers()) {
        Err(e)
    } else if path.starts_with("/health/") {
        health(shard, &method, &path).await
    } else if !super::auth::allowed(&cfg.http, req.headers()) {
        Ok(unauthorized(!cfg.http.username.is_empty()))
    } else if let Err(e) = super::auth::json_body(&method, req.headers()) {
        Err(e)
    } else {
        match read_body(req, cfg.http.max_body_bytes).await {
            Ok(b) => route(shard, ops, &method, &path, &query, b).await,
            Err(e) => Err(e),
        }
    };
    let reply = result.unwrap_or_else(|e| e.reply());
    log::debug!("http: {method} {path} -> {}", reply.status());
    reply
}

/// 401, asking for Basic credentials when those are configured.
fn unauthorized(basic: bool) -> Reply {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "credentials needed",
    )
    .reply();
    let scheme = if basic {
        "Basic realm=\"coremq\""
    } else {
        "Bearer"
    };
    if let Ok(v) = scheme.parse() {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    r
}

async fn health(shard: &ShardRef, method: &Method, path: &str) -> ApiResult {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    match path {
        "/health/live" => super::reply::ok(serde_json::json!({"status": "live"})),
        "/health/ready" => api::ready(shard).await,
        _ => Err(ApiError::not_found(format!("no such path: {path}"))),
    }
}

/// The body, at most `max` bytes (413 past it).
async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    }
}

/// Dispatch by method and path.
async fn route(
    shard: &ShardRef,
    ops: &OpsRef,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body_bytes: Bytes,
) -> ApiResult {
    let get = method == Method::GET;
    match path {
        "/" if get => Ok(redirect("/dashboard")),
        "/dashboard" if get => Ok(body(
            StatusCode::OK,
            "text/html; charset=utf-8",
            super::DASHBOARD_HTML,
        )),
        "/metrics" if get => super::prom::metrics(shard, ops).await,
        "/" | "/dashboard" | "/metrics" => Err(ApiError::method_not_allowed()),
        _ => match path.strip_prefix("/api/v1/") {
            Some(rest) => api::route(shard, ops, method, rest, query, &body_bytes).await,
            None => Err(ApiError::not_found(format!("no such path: {path}"))),
        },
    }
}

fn redirect(to: &str) -> Reply {
    let mut r = body(StatusCode::FOUND, "text/plain", Bytes::new());
    if let Ok(v) = to.parse() {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}
