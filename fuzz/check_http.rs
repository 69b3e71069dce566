//! The check run on one fuzz input of the management listener's own parsing
//! (`coremq::http_parse`), by the cargo-fuzz target (`fuzz/fuzz_targets/http.rs`)
//! and by the stable pass (`tests/fuzz_decode.rs`, seeds in `fuzz/corpus/http/`).
//!
//! The input is a request target (`/api/v1/...?query`) and, after the first
//! newline, a `POST /api/v1/publish` body. Nothing may panic; decoding never
//! grows a string, a query's pairs come from its `&`-separated parts, and a
//! body that parses names a valid topic and a QoS of at most 2.

use coremq::http_parse::{decode, parse_query, PublishRequest};

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (target, body) = text.split_once('\n').unwrap_or((&text, ""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    for seg in path.split('/') {
        let d = decode(seg, false);
        assert!(d.len() <= seg.len() * 3, "{seg:?} -> {d:?}");
    }
    let q = parse_query(query);
    assert!(q.len() <= query.split('&').count(), "{query:?} -> {q:?}");
    if let Ok(r) = PublishRequest::parse(body.as_bytes()) {
        assert!(coremq::topic::valid_topic_name(&r.topic), "{r:?}");
        assert!((r.qos as u8) <= 2, "{r:?}");
    }
}
