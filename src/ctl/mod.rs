//! `coremq ctl`: the command-line client of a running broker's management
//! HTTP API (the `[http]` listener; endpoints under `/api/v1`).
//!
//! Owns the `ctl` command line ([`CtlArgs`], clap derive), the HTTP calls
//! (a blocking `ureq` agent, plain HTTP, no proxy, the API key or HTTP
//! Basic credentials), the percent-encoding of client ids and topics in paths
//! ([`encode_segment`], [`topic_path`]), and the exit codes: 0 on success, 1
//! when the API answers an error or the broker cannot be reached, 2 for bad
//! flags. The text output is [`render`] (JSON in, text out, one function per
//! command) over the aligned tables of [`table`]; `--json` prints the API's
//! JSON instead. Nothing an answer holds makes it panic: missing fields print
//! as `-`, a body that is not JSON is an error message.
//!
//! Called by the `coremq` binary (`src/bin/coremq.rs`, `coremq ctl ...`) as
//! [`run`]; the broker itself never uses it.

pub mod render;
pub mod table;

use serde_json::{json, Value};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Where the management listener is when neither `--url` nor `COREMQ_URL` says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:18083";

/// The most of an answer's body read (a client list of a big node is large).
const BODY_LIMIT: u64 = 256 << 20;

/// `coremq ctl [--url URL] [--api-key KEY | --user USER --password PASS] [--json] COMMAND`.
/// The options may come before or after the command.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The broker's management listener [default: $COREMQ_URL, else http://127.0.0.1:18083].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// API key, sent as `Authorization: Bearer KEY` [default: $COREMQ_API_KEY].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "KEY",
        conflicts_with = "user"
    )]
    pub api_key: Option<String>,
    /// HTTP Basic user name (with --password).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "USER",
        requires = "password"
    )]
    pub user: Option<String>,
    /// HTTP Basic password (with --user).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PASS",
        requires = "user"
    )]
    pub password: Option<String>,
    /// Print the API's JSON answer (pretty) instead of tables.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What `coremq ctl` can do.
#[derive(clap::Subcommand, Debug)]
pub enum CtlCommand {
    /// The node: version, uptime, counts, traffic, memory, and a row per shard.
    Status,
    /// Connected clients: list, show, kick.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Sessions (connected or not): list, show, delete.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Retained messages: list, show, delete.
    #[command(subcommand)]
    Retained(RetainedCommand),
    /// Publish a message as the broker.
    Publish(PublishArgs),
    /// Active alarms, then the recently cleared ones.
    Alarms,
}

/// `coremq ctl clients ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ClientsCommand {
    /// One page of the connected clients, sorted by client id.
    List(ClientListArgs),
    /// A client and its subscriptions.
    Show {
        /// The client id.
        id: String,
    },
    /// Close a client's connection.
    Kick {
        /// The client id.
        id: String,
    },
}

/// `coremq ctl sessions ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SessionsCommand {
    /// One page of the sessions, sorted by client id.
    List(SessionListArgs),
    /// One session.
    Show {
        /// The client id.
        id: String,
    },
    /// Discard a session (closing its connection, if any).
    Delete {
        /// The client id.
        id: String,
    },
}

/// `coremq ctl retained ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RetainedCommand {
    /// One page of the retained messages.
    List(RetainedListArgs),
    /// One retained message, with its whole payload.
    Show {
        /// The topic.
        topic: String,
    },
    /// Delete the retained message of a topic.
    Delete {
        /// The topic.
        topic: String,
    },
}

/// Which page of a list.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct PageArgs {
    /// Page number, from 1 [default: the broker's, 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub page: Option<u64>,
    /// Rows per page [default: the broker's, 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// `coremq ctl clients list`.
#[derive(clap::Args, Debug, Default)]
pub struct ClientListArgs {
    #[command(flatten)]
    pub page: PageArgs,
    /// Only client ids containing this.
    #[arg(long, value_name = "SUBSTR")]
    pub client_id: Option<String>,
    /// Only clients logged in as this user.
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Only clients of this shard.
    #[arg(long, value_name = "N")]
    pub shard: Option<u64>,
}

/// `coremq ctl sessions list`.
#[derive(clap::Args, Debug, Default)]
pub struct SessionListArgs {
    #[command(flatten)]
    pub page: PageArgs,
    /// Only client ids containing this.
    #[arg(long, value_name = "SUBSTR")]
    pub client_id: Option<String>,
}

/// `coremq ctl retained list`.
#[derive(clap::Args, Debug, Default)]
pub struct RetainedListArgs {
    #[command(flatten)]
    pub page: PageArgs,
    /// Only topics starting with this.
    #[arg(long, value_name = "PREFIX")]
    pub topic: Option<String>,
}

/// `coremq ctl publish TOPIC PAYLOAD`.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The topic (no wildcards).
    pub topic: String,
    /// The payload: text, or base64 with --base64.
    pub payload: String,
    /// Quality of service.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Retain the message.
    #[arg(long)]
    pub retain: bool,
    /// PAYLOAD is base64 (binary payloads).
    #[arg(long)]
    pub base64: bool,
}

/// Run `coremq ctl`: print the answer on stdout, or the reason on stderr.
/// Exit 0, 1 (an API error or no broker), or 2 (a bad `--url` or argument).
pub fn run(args: &CtlArgs) -> ExitCode {
    match execute(args, &Env::from_process()) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is no reason to fail or panic.
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("coremq ctl: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

/// The environment variables `ctl` reads (a value only when set and not empty).
#[derive(Debug, Default, Clone)]
pub struct Env {
    /// `COREMQ_URL`.
    pub url: Option<String>,
    /// `COREMQ_API_KEY`.
    pub api_key: Option<String>,
}

impl Env {
    /// Read from this process's environment.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            url: var("COREMQ_URL"),
            api_key: var("COREMQ_API_KEY"),
        }
    }
}

/// Why a command failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A bad argument (exit 2): an empty id, a URL that is not `http://`.
    Usage(String),
    /// No HTTP answer from the listener at `url`.
    Unreachable { url: String, reason: String },
    /// The API answered an error: `{"error": ..., "message": ...}`.
    Api {
        status: u16,
        error: String,
        message: String,
    },
    /// An answer that is not what the API gives (not JSON, not HTTP).
    BadAnswer(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::BadAnswer(m) => f.write_str(m),
            Failure::Unreachable { url, reason } => write!(
                f,
                "cannot reach the broker's HTTP listener at {url}: {reason} (is [http] enabled?)"
            ),
            Failure::Api {
                status,
                error,
                message,
            } => {
                write!(f, "{status} {error}: {message}")?;
                if *status == 401 {
                    f.write_str(" (give --api-key KEY, or --user USER --password PASS)")?;
                }
                Ok(())
            }
        }
    }
}

/// Percent-encode one path segment: every byte but the unreserved ones
/// (`A-Z a-z 0-9 - . _ ~`) as `%XX`; a segment of only dots (`.`, `..`)
/// has them encoded too, so no client or proxy takes it for a step up.
pub fn encode_segment(s: &str) -> String {
    let dots_only = !s.is_empty() && s.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved && !(dots_only && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A topic as a path: each level percent-encoded, `/` kept between them.
pub fn topic_path(topic: &str) -> String {
    topic
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// `/api/v1/clients/ID` (the id as one encoded segment, `/` included).
pub fn client_path(id: &str) -> String {
    format!("/api/v1/clients/{}", encode_segment(id))
}

/// `/api/v1/sessions/ID`.
pub fn session_path(id: &str) -> String {
    format!("/api/v1/sessions/{}", encode_segment(id))
}

/// `/api/v1/retained/TOPIC`.
pub fn retained_path(topic: &str) -> String {
    format!("/api/v1/retained/{}", topic_path(topic))
}

/// The base URL: `--url`, else `COREMQ_URL`, else [`DEFAULT_URL`], without
/// a trailing `/`. Only `http://` URLs are taken.
pub fn base_url(flag: Option<&str>, env: &Env) -> Result<String, Failure> {
    let url = flag
        .or(env.url.as_deref())
        .unwrap_or(DEFAULT_URL)
        .trim()
        .trim_end_matches('/');
    let scheme_ok = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !scheme_ok || url.len() == 7 {
        return Err(Failure::Usage(format!(
            "--url {url:?}: expected http://HOST:PORT (the management listener speaks plain HTTP)"
        )));
    }
    Ok(url.to_string())
}

/// The `Authorization` header value, if any: `--user/--password` (Basic),
/// else `--api-key`, else `COREMQ_API_KEY` (Bearer).
pub fn authorization(args: &CtlArgs, env: &Env) -> Option<String> {
    use base64::Engine as _;
    if let (Some(u), Some(p)) = (&args.user, &args.password) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        return Some(format!("Basic {token}"));
    }
    let key = args.api_key.as_deref().or(env.api_key.as_deref())?;
    Some(format!("Bearer {key}"))
}

/// A non-empty id or topic argument.
fn nonempty<'a>(what: &str, v: &'a str) -> Result<&'a str, Failure> {
    if v.is_empty() {
        Err(Failure::Usage(format!("the {what} is empty")))
    } else {
        Ok(v)
    }
}

/// The page and limit query parameters that were given.
fn page_query(p: &PageArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(n) = p.page {
        q.push(("page", n.to_string()));
    }
    if let Some(n) = p.limit {
        q.push(("limit", n.to_string()));
    }
    q
}

/// Run the command against the API; the text to print on success.
pub fn execute(args: &CtlArgs, env: &Env) -> Result<String, Failure> {
    let api = Api::new(
        base_url(args.url.as_deref(), env)?,
        authorization(args, env),
    );
    let json = args.json;
    // A JSON answer printed as it is (--json) or through its renderer.
    let show = |v: Value, render: fn(&Value) -> String| {
        if json {
            pretty(&v)
        } else {
            render(&v)
        }
    };
    // A 204 answer: nothing with --json (the exit code says it), else `done`.
    let done = |text: String| if json { String::new() } else { text + "\n" };
    match &args.command {
        CtlCommand::Status => Ok(show(api.get("/api/v1/node", &[])?, render::status)),
        CtlCommand::Alarms => Ok(show(api.get("/api/v1/alarms", &[])?, render::alarms)),
        CtlCommand::Clients(ClientsCommand::List(a)) => {
            let mut q = page_query(&a.page);
            if let Some(s) = &a.client_id {
                q.push(("client_id", s.clone()));
            }
            if let Some(s) = &a.username {
                q.push(("username", s.clone()));
            }
            if let Some(s) = a.shard {
                q.push(("shard", s.to_string()));
            }
            Ok(show(api.get("/api/v1/clients", &q)?, render::clients))
        }
        CtlCommand::Clients(ClientsCommand::Show { id }) => {
            let path = client_path(nonempty("client id", id)?);
            let client = api.get(&path, &[])?;
            let subs = match api.get(&format!("{path}/subscriptions"), &[]) {
                Ok(s) => Some(s),
                // The session went between the two calls.
                Err(Failure::Api { status: 404, .. }) => None,
                Err(e) => return Err(e),
            };
            if json {
                let subs = subs.map(|s| s.get("data").cloned().unwrap_or(s));
                Ok(pretty(&json!({"client": client, "subscriptions": subs})))
            } else {
                Ok(render::client(&client, subs.as_ref()))
            }
        }
        CtlCommand::Clients(ClientsCommand::Kick { id }) => {
            api.delete(&client_path(nonempty("client id", id)?))?;
            Ok(done(format!("kicked {}", table::clean(id))))
        }
        CtlCommand::Sessions(SessionsCommand::List(a)) => {
            let mut q = page_query(&a.page);
            if let Some(s) = &a.client_id {
                q.push(("client_id", s.clone()));
            }
            Ok(show(api.get("/api/v1/sessions", &q)?, render::sessions))
        }
        CtlCommand::Sessions(SessionsCommand::Show { id }) => Ok(show(
            api.get(&session_path(nonempty("client id", id)?), &[])?,
            render::session,
        )),
        CtlCommand::Sessions(SessionsCommand::Delete { id }) => {
            api.delete(&session_path(nonempty("client id", id)?))?;
            Ok(done(format!("deleted session {}", table::clean(id))))
        }
        CtlCommand::Retained(RetainedCommand::List(a)) => {
            let mut q = page_query(&a.page);
            if let Some(s) = &a.topic {
                q.push(("topic", s.clone()));
            }
            Ok(show(
                api.get("/api/v1/retained", &q)?,
                render::retained_list,
            ))
        }
        CtlCommand::Retained(RetainedCommand::Show { topic }) => Ok(show(
            api.get(&retained_path(nonempty("topic", topic)?), &[])?,
            render::retained,
        )),
        CtlCommand::Retained(RetainedCommand::Delete { topic }) => {
            api.delete(&retained_path(nonempty("topic", topic)?))?;
            Ok(done(format!("deleted retained {}", table::clean(topic))))
        }
        CtlCommand::Publish(p) => {
            let body = json!({
                "topic": nonempty("topic", &p.topic)?,
                "payload": p.payload,
                "encoding": if p.base64 { "base64" } else { "text" },
                "qos": p.qos,
                "retain": p.retain,
            });
            let answer = api.post("/api/v1/publish", &body)?.unwrap_or(Value::Null);
            if json {
                Ok(pretty(&answer))
            } else {
                Ok(render::published(&p.topic, &answer))
            }
        }
    }
}

/// Pretty JSON and a newline.
fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// The management API at one base URL, with its credentials.
struct Api {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Api {
    fn new(base: String, auth: Option<String>) -> Api {
        let agent = ureq::Agent::config_builder()
            // 4xx/5xx are answers to read (the JSON error), not transport errors.
            .http_status_as_error(false)
            .max_redirects(0)
            // The listener is on the broker's host or its network: an
            // HTTP_PROXY set for the internet must not reroute it.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(concat!("coremq-ctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Api { agent, base, auth }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The credentials and the query on a request.
    fn prepare<B>(
        &self,
        mut rb: ureq::RequestBuilder<B>,
        query: &[(&str, String)],
    ) -> ureq::RequestBuilder<B> {
        if let Some(a) = &self.auth {
            rb = rb.header("Authorization", a);
        }
        for (k, v) in query {
            rb = rb.query(*k, v);
        }
        rb
    }

    /// GET: the JSON answer (an empty body is a bad answer).
    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        let rb = self.prepare(self.agent.get(self.url(path)), query);
        let body = self.answer(rb.call())?;
        body.ok_or_else(|| Failure::BadAnswer(format!("GET {path}: the broker answered nothing")))
    }

    /// DELETE: 2xx, with or without a body.
    fn delete(&self, path: &str) -> Result<Option<Value>, Failure> {
        let rb = self.prepare(self.agent.delete(self.url(path)), &[]);
        self.answer(rb.call())
    }

    /// POST a JSON body.
    fn post(&self, path: &str, body: &Value) -> Result<Option<Value>, Failure> {
        let rb = self.prepare(self.agent.post(self.url(path)), &[]);
        self.answer(rb.send_json(body))
    }

    /// A 2xx answer's JSON body (None when empty), or why it failed.
    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Option<Value>, Failure> {
        let mut response = result.map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| self.transport_failure(e))?;
        interpret(status.as_u16(), &body)
    }

    fn transport_failure(&self, e: ureq::Error) -> Failure {
        match e {
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_) => Failure::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            },
            ureq::Error::BadUri(m) => Failure::Usage(format!("--url {}: {m}", self.base)),
            other => Failure::BadAnswer(format!(
                "the answer of {} is not HTTP the API speaks: {other}",
                self.base
            )),
        }
    }
}

/// What an answer of `status` with `body` means: a 2xx with JSON or
/// nothing, or the API's error.
pub fn interpret(status: u16, body: &[u8]) -> Result<Option<Value>, Failure> {
    let text = String::from_utf8_lossy(body);
    let parsed = if text.trim().is_empty() {
        None
    } else {
        serde_json::from_str::<Value>(&text).ok()
    };
    if (200..300).contains(&status) {
        return match parsed {
            Some(v) => Ok(Some(v)),
            None if text.trim().is_empty() => Ok(None),
            None => Err(Failure::BadAnswer(format!(
                "the broker answered {status} with a body that is not JSON: {}",
                excerpt(&text)
            ))),
        };
    }
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(table::clean)
    };
    let error = field("error").unwrap_or(reason);
    let message = field("message").unwrap_or_else(|| {
        if parsed.is_some() || text.trim().is_empty() {
            "(no message)".to_string()
        } else {
            excerpt(&text)
        }
    });
    Err(Failure::Api {
        status,
        error,
        message,
    })
}

/// The start of a body, on one line, for an error message.
fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let t = text.trim();
    let mut s: String = t.chars().take(MAX).collect();
    if s.len() < t.len() {
        s.push_str("...");
    }
    table::clean(&s)
}

#[cfg(test)]
mod tests;
