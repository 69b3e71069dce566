//! The parts of a management request coremq parses itself: percent-encoded
//! path segments and query strings, and the body of `POST /api/v1/publish`.
//!
//! Pure functions over outside input (hyper parses the HTTP itself), used by
//! `routes.rs` and `api.rs`; public (doc-hidden, as `coremq::http_parse`)
//! for the fuzz target `http` (`fuzz/check_http.rs`). Nothing here panics:
//! a bad escape stays as it is, a bad body is an `Err` with the reason.

use crate::codec::QoS;
use base64::Engine;
use serde_json::Value;
use std::collections::HashMap;

/// Percent-decoding (and `+` as a space in a query); bad escapes stay as
/// they are, and bytes that are not UTF-8 become U+FFFD.
pub fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x%20y` as a map (the last of a repeated key wins).
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// A request body that must be a JSON object.
pub fn json_object(body: &[u8]) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("the body must be a JSON object".into());
    }
    Ok(v)
}

/// A non-empty string field of a body.
pub fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{key:?} (a non-empty string) is missing"))
}

/// The `qos` field of a body: 0, 1 or 2 (0 when absent).
pub fn qos(v: &Value) -> Result<QoS, String> {
    match v.get("qos") {
        None => Ok(QoS::AtMostOnce),
        Some(q) => q
            .as_u64()
            .and_then(|q| QoS::from_u8(u8::try_from(q).ok()?))
            .ok_or_else(|| "qos must be 0, 1 or 2".into()),
    }
}

/// A checked `POST /api/v1/publish` body.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

impl PublishRequest {
    /// `{"topic", "payload", "encoding": "text"|"base64", "qos", "retain"}`:
    /// a valid topic name without control characters and not starting with
    /// `$`, qos 0..=2 (default
    /// 0), retain a boolean (default false), payload text (default "").
    pub fn parse(body: &[u8]) -> Result<PublishRequest, String> {
        let v = json_object(body)?;
        let topic = text(&v, "topic")?;
        if !crate::topic::valid_topic_name(topic) || crate::topic::has_control_chars(topic) {
            return Err(format!("not a topic name: {topic:?}"));
        }
        // `$SYS/...` and other `$` topics are the broker's own.
        if topic.starts_with('$') {
            return Err(format!(
                "topics starting with $ are the broker's: {topic:?}"
            ));
        }
        let raw = v.get("payload").and_then(Value::as_str).unwrap_or("");
        let payload = match v.get("encoding").and_then(Value::as_str).unwrap_or("text") {
            "text" => raw.as_bytes().to_vec(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| format!("payload is not base64: {e}"))?,
            other => {
                return Err(format!(
                    "encoding must be \"text\" or \"base64\", got {other:?}"
                ))
            }
        };
        let qos = qos(&v)?;
        let retain = match v.get("retain") {
            None => false,
            Some(r) => r.as_bool().ok_or("retain must be true or false")?,
        };
        Ok(PublishRequest {
            topic: topic.to_owned(),
            payload,
            qos,
            retain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode("a%2Fb", false), "a/b");
        assert_eq!(decode("a+b", true), "a b");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("%", false), "%");
        assert_eq!(decode("%4", false), "%4");
        assert_eq!(decode("x%41", false), "xA");
        assert_eq!(decode("%e2%82%ac", false), "€");
        let q = parse_query("page=2&client_id=a%20b&x");
        assert_eq!(q["page"], "2");
        assert_eq!(q["client_id"], "a b");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn publish_bodies() {
        let ok = PublishRequest::parse(
            br#"{"topic":"a/b","payload":"aGk=","encoding":"base64","qos":2,"retain":true}"#,
        );
        assert_eq!(
            ok,
            Ok(PublishRequest {
                topic: "a/b".into(),
                payload: b"hi".to_vec(),
                qos: QoS::ExactlyOnce,
                retain: true
            })
        );
        for bad in [
            &br#"[]"#[..],
            br#"{"payload":"x"}"#,
            br#"{"topic":"a/#"}"#,
            br#"{"topic":"$SYS/x"}"#,
            br#"{"topic":"a","qos":3}"#,
            br#"{"topic":"a","qos":-1}"#,
            br#"{"topic":"a","retain":1}"#,
            br#"{"topic":"a","encoding":"hex"}"#,
            br#"{"topic":"a","encoding":"base64","payload":"!"}"#,
            b"{",
        ] {
            assert!(
                PublishRequest::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
