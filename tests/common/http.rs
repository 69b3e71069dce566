//! A tiny HTTP/1.1 client for the tests of the management listener
//! (`[http]`): one request per fresh connection (`Connection: close`),
//! each exchange bounded by [`HTTP_DEADLINE`], the response parsed whole
//! (Content-Length or chunked). Its pieces ([`dial`], [`head`],
//! [`read_all`], [`parse`]) are public for tests that write their own
//! bytes (slow, partial or garbage requests). [`broker_with`] starts an
//! in-process broker with the listener on a free loopback port.
//!
//! Used by tests/http_api.rs, tests/http_metrics.rs, tests/dashboard.rs
//! and tests/alarms.rs; a broker process's HTTP address comes from
//! [`BrokerProcess::http_addr`](super::binary::BrokerProcess::http_addr).

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one HTTP exchange may take before the test fails.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(8);

/// A response: status, headers (names lower-cased), body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Read until the peer closes (or errors), at most until `deadline`.
pub fn read_all(s: &mut TcpStream, deadline: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return out,
        }
    }
    panic!(
        "HTTP: no close within {HTTP_DEADLINE:?}; got so far: {:?}",
        String::from_utf8_lossy(&out)
    );
}

/// A body sent with `Transfer-Encoding: chunked`, decoded.
pub fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n").expect("chunk size line");
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("chunk size");
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Where `needle` first starts in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse one response from raw bytes (panics, showing them, if malformed).
pub fn parse(raw: &[u8]) -> Resp {
    let head_end =
        find(raw, b"\r\n\r\n").unwrap_or_else(|| panic!("no response head in {:?}", raw));
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    r.body = if r
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        unchunk(rest)
    } else if let Some(n) = r.header("content-length").and_then(|v| v.parse().ok()) {
        assert!(rest.len() >= n, "body shorter than Content-Length {n}");
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    r
}

/// A connected socket with bounded reads and writes.
pub fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to http");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The head of a request (`Connection: close`; Content-Length when `body` is given).
pub fn head(method: &str, path: &str, headers: &[(&str, &str)], body: Option<usize>) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = body {
        req.push_str(&format!("Content-Length: {n}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// One request on a fresh connection; its response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let deadline = Instant::now() + HTTP_DEADLINE;
    let mut s = dial(addr);
    let len = (!body.is_empty() || method == "POST").then_some(body.len());
    let mut req = head(method, path, headers, len).into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).expect("send request");
    parse(&read_all(&mut s, deadline))
}

/// `GET path`, no credentials.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

/// `DELETE path`, no credentials.
pub fn delete(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "DELETE", path, &[], b"")
}

/// `POST path` with a JSON content type and `body`.
pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    let ct = [("Content-Type", "application/json")];
    request(addr, "POST", path, &ct, body)
}

/// `POST path` with `v` as its body.
pub fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Resp {
    post(addr, path, v.to_string().as_bytes())
}

/// A 200 with a JSON body: that body.
pub fn ok_json(r: Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{what}: content type {:?}",
        r.header("content-type")
    );
    r.json()
}

/// An error answer: its status, and the JSON `{"error": code, "message": text}`.
#[track_caller]
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "status of an error; body {}", r.text());
    let v = r.json();
    assert_eq!(v["error"], code, "error code in {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message in {v}"
    );
}

/// An in-process broker on `shards` shards with the HTTP listener on a free
/// loopback port, its configuration changed by `f`; and the HTTP address.
pub fn broker_with(
    shards: usize,
    f: impl FnOnce(&mut coremq::Config),
) -> (super::TestBroker, SocketAddr) {
    let mut cfg = super::config(shards);
    cfg.http.enabled = true;
    cfg.http.bind = "127.0.0.1:0".into();
    f(&mut cfg);
    let b = super::start_with(cfg, coremq::Hooks::new());
    let http = b
        .handle
        .as_ref()
        .and_then(|h| h.http_addr())
        .expect("the http listener is bound");
    (b, http)
}
