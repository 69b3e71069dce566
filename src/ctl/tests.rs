//! Tests of `coremq ctl` without a broker: the path encoding, the command
//! line, the reading of answers, and whole commands against a canned HTTP
//! server on a loopback socket.

use super::*;
use clap::Parser;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::sync::mpsc;

/// `ctl` as the binary nests it.
#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand, Debug)]
enum Top {
    Ctl(CtlArgs),
}

fn parse(args: &[&str]) -> Result<CtlArgs, clap::Error> {
    let cli = Cli::try_parse_from(["coremq", "ctl"].iter().chain(args))?;
    let Top::Ctl(a) = cli.command;
    Ok(a)
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn segments_keep_only_unreserved_bytes() {
    assert_eq!(encode_segment("abc-XYZ_0.9~"), "abc-XYZ_0.9~");
    assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    assert_eq!(encode_segment("$SYS"), "%24SYS");
    assert_eq!(encode_segment("100%+#?&="), "100%25%2B%23%3F%26%3D");
    assert_eq!(encode_segment("é"), "%C3%A9");
    assert_eq!(encode_segment(".."), "%2E%2E");
    assert_eq!(encode_segment("."), "%2E");
    assert_eq!(encode_segment("a.."), "a..");
    assert_eq!(encode_segment(""), "");
}

#[test]
fn topics_keep_their_slashes_and_ids_do_not() {
    assert_eq!(topic_path("t/x"), "t/x");
    assert_eq!(
        topic_path("$SYS/brokers/0/uptime"),
        "%24SYS/brokers/0/uptime"
    );
    assert_eq!(topic_path("/lead//trail/"), "/lead//trail/");
    assert_eq!(topic_path("a b/ü/#"), "a%20b/%C3%BC/%23");
    assert_eq!(topic_path("a/../b"), "a/%2E%2E/b");
    assert_eq!(retained_path("t/x y"), "/api/v1/retained/t/x%20y");
    assert_eq!(client_path("dev/1 ?"), "/api/v1/clients/dev%2F1%20%3F");
    assert_eq!(session_path("c1"), "/api/v1/sessions/c1");
}

#[test]
fn url_comes_from_the_flag_then_the_environment_then_the_default() {
    let env = Env {
        url: Some("http://10.0.0.1:8080/".into()),
        api_key: None,
    };
    assert_eq!(
        base_url(Some("http://h:1/"), &env).unwrap(),
        "http://h:1".to_string()
    );
    assert_eq!(base_url(None, &env).unwrap(), "http://10.0.0.1:8080");
    assert_eq!(base_url(None, &Env::default()).unwrap(), DEFAULT_URL);
    assert_eq!(base_url(Some("HTTP://h:1"), &env).unwrap(), "HTTP://h:1");
    for bad in ["https://h:1", "h:1", "http://", "ftp://h", ""] {
        let e = base_url(Some(bad), &env).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}");
        assert!(e.to_string().contains("plain HTTP"), "{e}");
    }
}

#[test]
fn credentials_basic_then_key_then_environment() {
    let env = Env {
        url: None,
        api_key: Some("envkey".into()),
    };
    let a = parse(&["--api-key", "k1", "status"]).unwrap();
    assert_eq!(authorization(&a, &env).as_deref(), Some("Bearer k1"));
    let a = parse(&["status"]).unwrap();
    assert_eq!(authorization(&a, &env).as_deref(), Some("Bearer envkey"));
    assert_eq!(authorization(&a, &Env::default()), None);
    let a = parse(&["status", "--user", "admin", "--password", "pw"]).unwrap();
    // base64("admin:pw")
    assert_eq!(
        authorization(&a, &env).as_deref(),
        Some("Basic YWRtaW46cHc=")
    );
}

#[test]
fn options_go_before_or_after_the_command() {
    let a = parse(&["--url", "http://h:1", "clients", "list", "--json"]).unwrap();
    assert_eq!(a.url.as_deref(), Some("http://h:1"));
    assert!(a.json);
    let a = parse(&[
        "clients",
        "list",
        "--page",
        "2",
        "--limit",
        "10",
        "--client-id",
        "dev",
        "--username",
        "bob",
        "--url",
        "http://h:2",
    ])
    .unwrap();
    assert_eq!(a.url.as_deref(), Some("http://h:2"));
    let CtlCommand::Clients(ClientsCommand::List(l)) = a.command else {
        panic!("{a:?}")
    };
    assert_eq!((l.page.page, l.page.limit), (Some(2), Some(10)));
    assert_eq!(l.client_id.as_deref(), Some("dev"));
    assert_eq!(l.username.as_deref(), Some("bob"));
    let a = parse(&["publish", "t/x", "hello", "--qos", "2", "--retain"]).unwrap();
    let CtlCommand::Publish(p) = a.command else {
        panic!()
    };
    assert_eq!((p.topic.as_str(), p.payload.as_str()), ("t/x", "hello"));
    assert!(p.retain && !p.base64 && p.qos == 2);
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["publish", "t", "p", "--qos", "3"][..],
        &["clients", "list", "--page", "0"],
        &["clients", "list", "--limit", "x"],
        &["status", "--user", "u"],
        &["status", "--password", "p"],
        &["status", "--api-key", "k", "--user", "u", "--password", "p"],
        &["clients", "kick"],
        &["clients"],
        &["bogus"],
        &[],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
}

#[test]
fn answers_are_json_nothing_or_the_api_error() {
    assert_eq!(
        interpret(200, br#"{"a":1}"#),
        Ok(Some(serde_json::json!({"a": 1})))
    );
    assert_eq!(interpret(204, b""), Ok(None));
    let e = interpret(200, b"<html>").unwrap_err();
    assert!(
        matches!(&e, Failure::BadAnswer(m) if m.contains("not JSON: <html>")),
        "{e:?}"
    );
    let e = interpret(404, br#"{"error":"not_found","message":"no client x"}"#).unwrap_err();
    assert_eq!(e.to_string(), "404 not_found: no client x");
    assert_eq!(e.exit_code(), 1);
    let e = interpret(
        401,
        br#"{"error":"unauthorized","message":"credentials needed"}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("401 unauthorized: credentials needed (give --api-key"),
        "{e}"
    );
    // Not the API's error shape: the status's reason and what the body says.
    let e = interpret(502, b"<h1>Bad Gateway</h1>\n").unwrap_err();
    assert_eq!(e.to_string(), "502 bad_gateway: <h1>Bad Gateway</h1>");
    let e = interpret(500, br#"{"error": 5}"#).unwrap_err();
    assert_eq!(e.to_string(), "500 internal_server_error: (no message)");
    let e = interpret(599, b"").unwrap_err();
    assert_eq!(e.to_string(), "599 error: (no message)");
    let e = interpret(
        400,
        "{\"error\":\"bad_request\",\"message\":\"x\\u001b[2J\"}".as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "400 bad_request: x\\u{1b}[2J");
}

/// One request as the canned server saw it.
#[derive(Debug)]
struct Seen {
    /// `GET /path?query HTTP/1.1`
    line: String,
    /// Lowercased header names with their values.
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP server answering each connection with the next of
/// `answers` (status, body) and closing it; the requests come back on the
/// channel. Returns its base URL.
fn canned(answers: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body_in = vec![0; len];
            let _ = reader.read_exact(&mut body_in);
            let _ = tx.send(Seen {
                line: line.trim_end().to_string(),
                headers,
                body: String::from_utf8_lossy(&body_in).into_owned(),
            });
            let mut stream = reader.into_inner();
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (url, rx)
}

fn exec(url: &str, args: &[&str]) -> Result<String, Failure> {
    let mut full = vec!["--url", url];
    full.extend_from_slice(args);
    execute(&parse(&full).unwrap(), &Env::default())
}

#[test]
fn clients_list_sends_the_query_and_renders_the_table() {
    let (url, seen) = canned(vec![(
        200,
        r#"{"data":[{"client_id":"c1","username":null,"peer":"127.0.0.1:5555","shard":0,
            "protocol":4,"keepalive":60,"clean_start":true,"subscriptions":1,"inflight":0,
            "queued":0}],"meta":{"page":2,"limit":1,"count":2}}"#,
    )]);
    let out = exec(
        &url,
        &[
            "clients",
            "list",
            "--page",
            "2",
            "--limit",
            "1",
            "--client-id",
            "a b&c",
        ],
    )
    .unwrap();
    let req = seen.recv().unwrap();
    assert_eq!(
        req.line,
        "GET /api/v1/clients?page=2&limit=1&client_id=a%20b%26c HTTP/1.1"
    );
    assert_eq!(req.header("authorization"), None);
    assert!(out.starts_with("CLIENT ID  USERNAME  PEER"), "{out}");
    assert!(out.ends_with("page 2 of 2, 2 clients\n"), "{out}");
}

#[test]
fn json_prints_the_answer_pretty() {
    let (url, _seen) = canned(vec![(
        200,
        r#"{"data":[],"meta":{"page":1,"limit":50,"count":0}}"#,
    )]);
    let out = exec(&url, &["--json", "clients", "list"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["meta"]["count"], 0);
    assert!(out.contains("\n  \"meta\""), "{out}");
}

#[test]
fn kick_encodes_the_id_and_sends_the_key() {
    let (url, seen) = canned(vec![
        (204, ""),
        (404, r#"{"error":"not_found","message":"no such client"}"#),
    ]);
    let out = exec(&url, &["--api-key", "s3cret", "clients", "kick", "dev/1 x"]).unwrap();
    assert_eq!(out, "kicked dev/1 x\n");
    let req = seen.recv().unwrap();
    assert_eq!(req.line, "DELETE /api/v1/clients/dev%2F1%20x HTTP/1.1");
    assert_eq!(req.header("authorization"), Some("Bearer s3cret"));
    let e = exec(&url, &["clients", "kick", "ghost"]).unwrap_err();
    assert_eq!(e.to_string(), "404 not_found: no such client");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn client_show_makes_two_calls_and_survives_a_missing_session() {
    let client = r#"{"client_id":"c1","username":"u","peer":"p","shard":1,"protocol":5,
        "keepalive":10,"clean_start":false,"subscriptions":1,"inflight":0,"queued":0}"#;
    let (url, seen) = canned(vec![
        (200, client),
        (
            200,
            r#"{"data":[{"topic":"a/#","qos":1,"no_local":false,"retain_as_published":false,"retain_handling":0}]}"#,
        ),
        (200, client),
        (404, r#"{"error":"not_found","message":"no session"}"#),
        (200, client),
        (200, r#"{"data":[]}"#),
    ]);
    let out = exec(&url, &["clients", "show", "c1"]).unwrap();
    assert!(out.contains("protocol       5.0"), "{out}");
    assert!(out.contains("\na/#      1"), "{out}");
    assert_eq!(seen.recv().unwrap().line, "GET /api/v1/clients/c1 HTTP/1.1");
    assert_eq!(
        seen.recv().unwrap().line,
        "GET /api/v1/clients/c1/subscriptions HTTP/1.1"
    );
    let out = exec(&url, &["clients", "show", "c1"]).unwrap();
    assert!(out.ends_with("(no session)\n"), "{out}");
    let out = exec(&url, &["clients", "show", "c1", "--json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client"]["client_id"], "c1");
    assert_eq!(v["subscriptions"], serde_json::json!([]));
}

#[test]
fn publish_posts_the_body_and_delete_retained_encodes_the_topic() {
    let (url, seen) = canned(vec![(200, r#"{"id":"0a0b"}"#), (204, "")]);
    let out = exec(
        &url,
        &[
            "--user",
            "admin",
            "--password",
            "pw",
            "publish",
            "t/x",
            "AAE=",
            "--base64",
            "--qos",
            "1",
            "--retain",
        ],
    )
    .unwrap();
    assert_eq!(out, "published to t/x (message id 0a0b)\n");
    let req = seen.recv().unwrap();
    assert_eq!(req.line, "POST /api/v1/publish HTTP/1.1");
    assert_eq!(req.header("authorization"), Some("Basic YWRtaW46cHc="));
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"topic": "t/x", "payload": "AAE=", "encoding": "base64",
                           "qos": 1, "retain": true})
    );
    let out = exec(&url, &["--json", "retained", "delete", "$SYS/a b"]).unwrap();
    assert_eq!(out, "");
    assert_eq!(
        seen.recv().unwrap().line,
        "DELETE /api/v1/retained/%24SYS/a%20b HTTP/1.1"
    );
}

#[test]
fn malformed_answers_are_errors_or_dashes_never_panics() {
    let (url, _seen) = canned(vec![
        (200, "not json"),
        (200, ""),
        (200, "[1,2,3]"),
        (200, r#"{"active":"x","cleared":null}"#),
        (200, r#"{"data":[1,"x",null,{"client_id":7}]}"#),
        (500, "oops"),
    ]);
    let e = exec(&url, &["status"]).unwrap_err();
    assert!(e.to_string().contains("not JSON: not json"), "{e}");
    let e = exec(&url, &["status"]).unwrap_err();
    assert!(e.to_string().contains("answered nothing"), "{e}");
    let out = exec(&url, &["status"]).unwrap();
    assert!(out.contains("connections       -"), "{out}");
    let out = exec(&url, &["alarms"]).unwrap();
    assert_eq!(out, "active alarms:\n(none)\n\nrecently cleared:\n(none)\n");
    let out = exec(&url, &["clients", "list"]).unwrap();
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.ends_with("4 clients\n"), "{out}");
    let e = exec(&url, &["sessions", "list"]).unwrap_err();
    assert_eq!(e.to_string(), "500 internal_server_error: oops");
}

#[test]
fn empty_ids_and_topics_are_usage_errors() {
    for args in [
        &["clients", "kick", ""][..],
        &["clients", "show", ""],
        &["sessions", "delete", ""],
        &["retained", "show", ""],
        &["publish", "", "x"],
    ] {
        let e = exec("http://127.0.0.1:9", args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
}
