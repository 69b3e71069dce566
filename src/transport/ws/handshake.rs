//! The HTTP upgrade that turns a fresh stream into a [`Ws`]: read the
//! request (at most `max_request` bytes), check it, answer `101 Switching
//! Protocols` or an HTTP error. Called once per WebSocket connection by the
//! listener's glue, which applies the timeout and counts refusals.
//!
//! Checked: a GET for the configured path (query ignored), `Connection:
//! Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a key
//! (tungstenite's server handshake code does these and derives the accept
//! key), and a `Sec-WebSocket-Protocol` offering `mqtt` — the name MQTT
//! 3.1.1 §6 and MQTT 5 §6 give the subprotocol — or `mqttv3.1`, which MQTT
//! 3.1 clients (older Paho JavaScript) send; Mosquitto accepts both, and so
//! does coremq. `mqtt` is chosen when both are offered. No extension is
//! negotiated (permessage-deflate is ignored, as RFC 6455 allows) and the
//! Origin is not checked: MQTT clients authenticate in CONNECT.

use super::Ws;
use crate::transport::Transport;
use std::fmt;
use std::future::poll_fn;
use std::io;
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request};
use tungstenite::http::HeaderValue;

/// Default bound on the upgrade request (request line and headers).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Subprotocols served, in order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Why an upgrade did not happen.
#[derive(Debug)]
pub enum UpgradeError {
    /// The request was refused with this HTTP status (the response was
    /// sent, best effort); says why.
    Refused(u16, &'static str),
    /// The stream failed or closed during the upgrade.
    Io(io::Error),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Refused(status, why) => write!(f, "refused with {status}: {why}"),
            UpgradeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for UpgradeError {
    fn from(e: io::Error) -> Self {
        UpgradeError::Io(e)
    }
}

/// Upgrade `inner` to WebSocket, serving `path`; frames may carry up to
/// `max_frame` payload bytes afterwards. The caller bounds the time.
pub async fn accept_ws<T: Transport>(
    mut inner: T,
    path: &str,
    max_request: usize,
    max_frame: usize,
) -> Result<Ws<T>, UpgradeError> {
    let (request, mut raw, used) = match read_request(&mut inner, max_request).await? {
        Ok(r) => r,
        Err(refusal) => return Err(refuse(&mut inner, refusal).await),
    };
    let response = match check(&request, path) {
        Ok(r) => r,
        Err(refusal) => return Err(refuse(&mut inner, refusal).await),
    };
    let mut out = Vec::with_capacity(192);
    write_response(&mut out, &response).map_err(io::Error::other)?;
    write_all(&mut inner, &out).await?;
    raw.drain(..used);
    raw.shrink_to_fit();
    Ok(Ws::upgraded(inner, max_frame, raw))
}

/// An HTTP refusal: status, reason phrase, extra header line, and why (for the log).
#[derive(Debug, Clone, Copy)]
struct Refusal {
    status: u16,
    phrase: &'static str,
    header: &'static str,
    why: &'static str,
}

const fn refusal(status: u16, phrase: &'static str, why: &'static str) -> Refusal {
    Refusal {
        status,
        phrase,
        header: "",
        why,
    }
}

/// The parsed request, the bytes read and how many of them it took; or
/// the refusal for a request that is malformed or too large.
async fn read_request<T: Transport>(
    inner: &mut T,
    max_request: usize,
) -> io::Result<Result<(Request, Vec<u8>, usize), Refusal>> {
    let mut raw = Vec::new();
    loop {
        if raw.len() >= max_request {
            return Ok(Err(refusal(
                431,
                "Request Header Fields Too Large",
                "request too large",
            )));
        }
        let start = raw.len();
        raw.resize(max_request.min(start.max(512) * 2), 0);
        let n = poll_fn(|cx| inner.poll_read(cx, &mut raw[start..])).await;
        raw.truncate(start + n.as_ref().map_or(0, |n| *n));
        match n? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => match Request::try_parse(&raw) {
                Ok(Some((used, request))) => return Ok(Ok((request, raw, used))),
                Ok(None) => {}
                Err(_) => return Ok(Err(refusal(400, "Bad Request", "malformed HTTP request"))),
            },
        }
    }
}

/// The `101` response for a request that passes every check.
fn check(
    request: &Request,
    path: &str,
) -> Result<tungstenite::handshake::server::Response, Refusal> {
    if request.uri().path() != path {
        return Err(refusal(404, "Not Found", "wrong path"));
    }
    let version = request.headers().get("Sec-WebSocket-Version");
    if version.is_some_and(|v| v != "13") {
        return Err(Refusal {
            header: "Sec-WebSocket-Version: 13\r\n",
            ..refusal(426, "Upgrade Required", "unsupported websocket version")
        });
    }
    let mut response = create_response(request)
        .map_err(|_| refusal(400, "Bad Request", "not a websocket upgrade"))?;
    let proto = subprotocol(request).ok_or(refusal(
        400,
        "Bad Request",
        "no mqtt websocket subprotocol offered",
    ))?;
    response
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", proto);
    Ok(response)
}

/// The offered subprotocol to select, as the client spelled it.
fn subprotocol(request: &Request) -> Option<HeaderValue> {
    let offered: Vec<&str> = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS.iter().find_map(|want| {
        offered
            .iter()
            .find(|o| o.eq_ignore_ascii_case(want))
            .and_then(|o| HeaderValue::from_str(o).ok())
    })
}

/// Send the refusal (best effort: a failed write only ends it sooner).
async fn refuse<T: Transport>(inner: &mut T, r: Refusal) -> UpgradeError {
    let text = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Length: 0\r\n{}\r\n",
        r.status, r.phrase, r.header
    );
    let _ = write_all(inner, text.as_bytes()).await;
    UpgradeError::Refused(r.status, r.why)
}

async fn write_all<T: Transport>(inner: &mut T, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| inner.poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
