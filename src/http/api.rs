//! The JSON API under `/api/v1` (see the README's "HTTP API").
//!
//! Each endpoint asks the shards over the mesh (`crate::control`): listings
//! ask every shard for its first `page × limit` rows and merge them; one
//! client's or session's question goes to its home shard only; retained
//! messages are read from shard 0's replica (every shard holds them all).
//! Publishing, and deleting a retained message, go through the publish path
//! as a message from the broker itself. Called by `routes.rs`.

use super::parse::{self, decode, json_object, text, PublishRequest};
use super::reply::{no_content, ok, ApiError, ApiResult};
use crate::control::ask::{Answer, Ask, Query};
use crate::control::sys::{self, OpsRef};
use crate::control::{ask_all, ask_one, home_of};
use crate::message::Message;
use crate::shard::ShardRef;
use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
/// The deepest row a listing reaches (page × limit).
const MAX_ROWS: usize = 10_000;
/// Bytes of a payload a retained listing shows (one message: all of it).
const LISTED_PAYLOAD: usize = 1024;

/// Dispatch `rest` (the path after `/api/v1/`).
pub async fn route(
    shard: &ShardRef,
    ops: &OpsRef,
    method: &Method,
    rest: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> ApiResult {
    let segs: Vec<String> = rest.split('/').map(|s| decode(s, false)).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.clone();
    match (segs.as_slice(), m) {
        (["node"], Method::GET) => node(shard, ops).await,
        (["clients"], Method::GET) => clients(shard, query).await,
        (["clients", id], Method::GET) => one(shard, id, Ask::Client(id.to_string())).await,
        (["clients", id], Method::DELETE) => action(shard, id, Ask::Kick(id.to_string())).await,
        (["clients", id, "subscriptions"], Method::GET) => subscriptions(shard, id).await,
        (["clients", id, "subscribe"], Method::POST) => subscribe(shard, id, body).await,
        (["clients", id, "unsubscribe"], Method::POST) => unsubscribe(shard, id, body).await,
        (["sessions"], Method::GET) => sessions(shard, query).await,
        (["sessions", id], Method::GET) => one(shard, id, Ask::Session(id.to_string())).await,
        (["sessions", id], Method::DELETE) => {
            action(shard, id, Ask::DeleteSession(id.to_string())).await
        }
        (["topics"], Method::GET) => topics(shard, query).await,
        (["retained"], Method::GET) => retained_list(shard, query),
        (["retained", ..], m) if segs.len() > 1 => {
            let topic = decode(rest.strip_prefix("retained/").unwrap_or(""), false);
            match m {
                Method::GET => retained_one(shard, &topic),
                Method::DELETE => retained_delete(shard, &topic),
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        (["alarms"], Method::GET) => alarms(ops),
        (["publish"], Method::POST) => publish(shard, body),
        (
            ["node"]
            | ["clients", ..]
            | ["sessions", ..]
            | ["topics"]
            | ["retained"]
            | ["alarms"]
            | ["publish"],
            _,
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found(format!("no such path: /api/v1/{rest}"))),
    }
}

/// `/health/ready`: every shard answers and the log can be written (a
/// ping each: no session is looked at).
pub async fn ready(shard: &ShardRef) -> ApiResult {
    let answers = ask_all(shard, Ask::Ping).await;
    let missing = answers.iter().filter(|a| a.is_none()).count();
    let reason = if missing > 0 {
        Some(format!("{missing} shards did not answer"))
    } else {
        answers.into_iter().find_map(|a| match a {
            Some(Answer::Pong(failure)) => failure,
            _ => None,
        })
    };
    match reason {
        None => ok(json!({"status": "ready"})),
        Some(r) => Ok(super::reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": r}),
        )),
    }
}

/// The node's figures, summed and per shard.
async fn node(shard: &ShardRef, ops: &OpsRef) -> ApiResult {
    let n = sys::gather(shard).await;
    let node_id = shard.borrow().cfg.runtime.node_id;
    let o = ops.borrow();
    let m = &n.total;
    let per_shard: Vec<Value> = n
        .shards
        .iter()
        .map(|s| {
            let sm = &s.metrics;
            json!({
                "shard": s.shard,
                "connections": sm.connections_open,
                "sessions": sm.sessions,
                "subscriptions": s.subscriptions,
                "messages_received": sm.publish_received,
                "messages_sent": sm.publish_sent,
                "messages_dropped": sys::dropped(sm).iter().map(|(_, v)| v).sum::<u64>(),
                "bytes_received": sm.bytes_received,
                "bytes_sent": sm.bytes_sent,
                "mailbox_msgs_sent": sm.mailbox_msgs_sent,
                "mailbox_overflows": sm.mailbox_overflows,
                "mailbox_queued": s.mailbox_queued,
                "busy": s.busy,
            })
        })
        .collect();
    let metrics: serde_json::Map<String, Value> = m
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let dropped: serde_json::Map<String, Value> = sys::dropped(m)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    ok(json!({
        "node": node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "sysdescr": sys::sysdescr(node_id),
        "uptime_s": o.started.elapsed().as_secs(),
        "datetime": sys::rfc3339(sys::now_ms() / 1000),
        "shards": n.shards.len() + n.missing.len(),
        "shards_missing": n.missing,
        "connections": n.clients(),
        "connections_max": o.clients_max.max(n.clients()),
        "sockets": m.connections_open,
        "max_connections": o.max_connections,
        "sessions": n.sessions(),
        "sessions_persistent": n.sessions_persistent(),
        "sessions_offline": n.sessions_offline(),
        "subscriptions": n.subscriptions(),
        "topics": n.topics(),
        "retained": n.retained(),
        "memory_bytes": n.process.memory_bytes,
        "memory_limit": n.process.memory_limit,
        "fds": n.process.fds,
        "fd_limit": n.process.fd_limit,
        "messages_received": m.publish_received,
        "messages_sent": m.publish_sent,
        "messages_dropped": n.dropped(),
        "dropped": dropped,
        "bytes_received": m.bytes_received,
        "bytes_sent": m.bytes_sent,
        "alarms": o.alarms.active().count(),
        "metrics": metrics,
        "per_shard": per_shard,
    }))
}

/// `page` and `limit` from the query.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let num = |k: &str, d: usize| -> Result<usize, ApiError> {
        match query.get(k) {
            None => Ok(d),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("{k} must be a number, got {v:?}"))),
        }
    };
    let (page, limit) = (num("page", 1)?, num("limit", DEFAULT_LIMIT)?);
    if page == 0 || !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "page must be at least 1 and limit 1..={MAX_LIMIT}"
        )));
    }
    // Each shard builds up to page × limit rows: bounded, so one request
    // cannot make every shard list a million sessions.
    if page.checked_mul(limit).is_none_or(|n| n > MAX_ROWS) {
        return Err(ApiError::bad_request(format!(
            "page × limit may be at most {MAX_ROWS}: narrow the query (client_id, username)"
        )));
    }
    Ok((page, limit))
}

/// The query of a listing: filters, and the rows each shard keeps.
fn listing(query: &HashMap<String, String>) -> Result<(Query, usize, usize), ApiError> {
    let (page, limit) = paging(query)?;
    let q = Query {
        client_id: query.get("client_id").filter(|s| !s.is_empty()).cloned(),
        username: query.get("username").filter(|s| !s.is_empty()).cloned(),
        keep: page.saturating_mul(limit),
    };
    Ok((q, page, limit))
}

/// Merge per-shard rows (each sorted, each the first `keep`) into one page.
fn page_of<T: serde::Serialize>(
    mut rows: Vec<T>,
    total: usize,
    page: usize,
    limit: usize,
    key: impl Fn(&T) -> &str,
) -> ApiResult {
    rows.sort_by(|a, b| key(a).cmp(key(b)));
    let data: Vec<T> = rows
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    ok(json!({"data": data, "meta": {"page": page, "limit": limit, "count": total}}))
}

/// A shard filter from `?shard=N`, if given.
fn shard_filter(query: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    query
        .get("shard")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("shard must be a number"))
        })
        .transpose()
}

async fn clients(shard: &ShardRef, query: &HashMap<String, String>) -> ApiResult {
    let (q, page, limit) = listing(query)?;
    let only = shard_filter(query)?;
    let (mut rows, mut total) = (Vec::new(), 0);
    for (i, a) in ask_all(shard, Ask::Clients(q))
        .await
        .into_iter()
        .enumerate()
    {
        if let Some(Answer::Clients(r, n)) = a.filter(|_| only.is_none_or(|s| s == i)) {
            rows.extend(r);
            total += n;
        }
    }
    page_of(rows, total, page, limit, |r| &r.client_id)
}

async fn sessions(shard: &ShardRef, query: &HashMap<String, String>) -> ApiResult {
    if query.contains_key("username") {
        return Err(ApiError::bad_request(
            "sessions keep no user name: filter clients by username instead",
        ));
    }
    let (q, page, limit) = listing(query)?;
    let (mut rows, mut total) = (Vec::new(), 0);
    for a in ask_all(shard, Ask::Sessions(q)).await.into_iter().flatten() {
        if let Answer::Sessions(r, n) = a {
            rows.extend(r);
            total += n;
        }
    }
    page_of(rows, total, page, limit, |r| &r.client_id)
}

async fn topics(shard: &ShardRef, query: &HashMap<String, String>) -> ApiResult {
    let (page, limit) = paging(query)?;
    let mut merged: std::collections::BTreeMap<String, usize> = Default::default();
    for a in ask_all(shard, Ask::Topics(page * limit))
        .await
        .into_iter()
        .flatten()
    {
        if let Answer::Topics(rows) = a {
            for r in rows {
                *merged.entry(r.topic).or_default() += r.subscribers;
            }
        }
    }
    // Shard 0's replica knows every filter of the node.
    let total = shard.borrow().router.filters_known();
    let data: Vec<Value> = merged
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(t, n)| json!({"topic": t, "subscribers": n}))
        .collect();
    ok(json!({"data": data, "meta": {"page": page, "limit": limit, "count": total}}))
}

/// Ask a client's home shard; None when it did not answer.
async fn ask_home(shard: &ShardRef, client_id: &str, q: Ask) -> Result<Answer, ApiError> {
    let home = home_of(shard, client_id);
    ask_one(shard, home, q)
        .await
        .ok_or_else(|| ApiError::unavailable(format!("shard {home} did not answer")))
}

fn no_client(id: &str) -> ApiError {
    ApiError::not_found(format!("no client or session {id:?}"))
}

/// One client or session row.
async fn one(shard: &ShardRef, id: &str, q: Ask) -> ApiResult {
    let row = match ask_home(shard, id, q).await? {
        Answer::Client(Some(r)) => serde_json::to_value(r),
        Answer::Session(Some(r)) => serde_json::to_value(r),
        _ => return Err(no_client(id)),
    };
    ok(row.unwrap_or_default())
}

/// An action on a client's home shard: 204, or 404.
async fn action(shard: &ShardRef, id: &str, q: Ask) -> ApiResult {
    match ask_home(shard, id, q).await? {
        Answer::Done => no_content(),
        Answer::Refused(why) => Err(ApiError::bad_request(why)),
        _ => Err(no_client(id)),
    }
}

async fn subscriptions(shard: &ShardRef, id: &str) -> ApiResult {
    match ask_home(shard, id, Ask::Subscriptions(id.to_string())).await? {
        Answer::Subscriptions(Some(rows)) => ok(json!({"data": rows})),
        _ => Err(no_client(id)),
    }
}

async fn subscribe(shard: &ShardRef, id: &str, body: &[u8]) -> ApiResult {
    let v = json_object(body).map_err(ApiError::bad_request)?;
    let filter = text(&v, "topic").map_err(ApiError::bad_request)?.to_owned();
    let qos = parse::qos(&v).map_err(ApiError::bad_request)? as u8;
    let q = Ask::Subscribe {
        client_id: id.to_string(),
        filter: filter.clone(),
        qos,
    };
    match ask_home(shard, id, q).await? {
        Answer::Done => ok(json!({"topic": filter, "qos": qos})),
        Answer::Refused(why) => Err(ApiError::bad_request(why)),
        _ => Err(no_client(id)),
    }
}

async fn unsubscribe(shard: &ShardRef, id: &str, body: &[u8]) -> ApiResult {
    let v = json_object(body).map_err(ApiError::bad_request)?;
    let filter = text(&v, "topic").map_err(ApiError::bad_request)?.to_owned();
    let q = Ask::Unsubscribe {
        client_id: id.to_string(),
        filter: filter.clone(),
    };
    match ask_home(shard, id, q).await? {
        Answer::Done => no_content(),
        _ => Err(ApiError::not_found(format!(
            "no session {id:?} subscribed to {filter:?}"
        ))),
    }
}

/// A retained message as JSON: the payload as text when it is UTF-8, its
/// first `max` bytes (`truncated` says when there was more).
fn retained_row(m: &Message, max: usize) -> Value {
    let shown = &m.payload[..m.payload.len().min(max)];
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(s) => (s.to_owned(), "text"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    json!({
        "topic": &*m.topic,
        "qos": m.qos as u8,
        "payload": payload,
        "encoding": encoding,
        "bytes": m.payload.len(),
        "truncated": shown.len() < m.payload.len(),
    })
}

fn retained_list(shard: &ShardRef, query: &HashMap<String, String>) -> ApiResult {
    let (page, limit) = paging(query)?;
    let prefix = query.get("topic").map_or("", String::as_str);
    let sh = shard.borrow();
    let mut all: Vec<&Arc<Message>> = sh
        .router
        .retained()
        .all()
        .filter(|m| m.topic.starts_with(prefix))
        .collect();
    all.sort_by(|a, b| a.topic.cmp(&b.topic));
    let data: Vec<Value> = all
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|m| retained_row(m, LISTED_PAYLOAD))
        .collect();
    ok(json!({"data": data, "meta": {"page": page, "limit": limit, "count": all.len()}}))
}

/// The retained message of `topic` in shard 0's replica.
fn retained_get(shard: &ShardRef, topic: &str) -> Result<Arc<Message>, ApiError> {
    if !crate::topic::valid_topic_name(topic) {
        return Err(ApiError::bad_request(format!(
            "not a topic name: {topic:?}"
        )));
    }
    let sh = shard.borrow();
    let found = sh.router.retained_matching(topic).into_iter().next();
    found.ok_or_else(|| ApiError::not_found(format!("no retained message on {topic:?}")))
}

fn retained_one(shard: &ShardRef, topic: &str) -> ApiResult {
    let m = retained_get(shard, topic)?;
    ok(retained_row(&m, usize::MAX))
}

fn retained_delete(shard: &ShardRef, topic: &str) -> ApiResult {
    retained_get(shard, topic)?;
    let mut sh = shard.borrow_mut();
    sh.clear_retained(topic.into());
    log::info!("http: retained message on {topic:?} deleted by the API");
    no_content()
}

fn alarms(ops: &OpsRef) -> ApiResult {
    let o = ops.borrow();
    let active: Vec<_> = o.alarms.active().collect();
    let cleared: Vec<_> = o.alarms.cleared().collect();
    ok(json!({"active": active, "cleared": cleared}))
}

/// `POST /api/v1/publish`: the seeds' HTTP publish.
fn publish(shard: &ShardRef, body: &[u8]) -> ApiResult {
    let r = PublishRequest::parse(body).map_err(ApiError::bad_request)?;
    let max = shard.borrow().cfg.mqtt.max_packet_size;
    if r.payload.len() + r.topic.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the message is over mqtt.max_packet_size ({max} bytes)"),
        ));
    }
    let id =
        shard
            .borrow_mut()
            .publish_as_broker(r.topic.into(), r.payload.into(), r.qos, r.retain);
    match id {
        Some(id) => ok(json!({"id": format!("{:032x}", id.0)})),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            "a message.publish hook dropped the message",
        )),
    }
}
