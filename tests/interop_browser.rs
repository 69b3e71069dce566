//! MQTT.js (the `mqtt` 5.x npm package, pinned in tests/browser/) in a real
//! browser: headless Chromium loads tests/browser/index.html from a tiny
//! HTTP server on loopback run by this test; the page connects to the
//! broker's `ws://` listener, publishes a retained message, subscribes,
//! publishes at QoS 0 and 1, and POSTs what came back to `/result`. The
//! test asserts on that report. The broker is coremq with a `ws` listener,
//! at 1 and 2 shards.
//!
//! Fails, not skips, where Chromium (/usr/bin/chromium) or
//! tests/browser/node_modules is missing: `scripts/test.sh` installs
//! Chromium (apt) and runs `npm ci` in tests/browser.

mod common;
use common::mosquitto_server::free_port;
use coremq::config::{ListenerConfig, ListenerKind};
use coremq::Hooks;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Bound on the whole page run, Chromium's start included.
const PAGE_WAIT: Duration = Duration::from_secs(60);

/// coremq with a `ws` listener on `/mqtt`: its URL and the broker.
fn coremq_ws(shards: usize) -> (String, common::TestBroker) {
    let mut cfg = common::config(shards);
    cfg.listener.push(ListenerConfig {
        kind: ListenerKind::Ws,
        bind: "127.0.0.1:0".into(),
        ..ListenerConfig::default()
    });
    let b = common::start_with(cfg, Hooks::new());
    let ws = b.handle.as_ref().unwrap().listener_addr(1).unwrap();
    (format!("ws://{ws}/mqtt"), b)
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The files the page needs, by URL path.
fn asset(path: &str) -> Option<(PathBuf, &'static str)> {
    let dir = browser_dir();
    match path {
        "/index.html" => Some((dir.join("index.html"), "text/html")),
        "/test.js" => Some((dir.join("test.js"), "text/javascript")),
        "/mqtt.min.js" => Some((
            dir.join("node_modules/mqtt/dist/mqtt.min.js"),
            "text/javascript",
        )),
        _ => None,
    }
}

/// Serves the page's files on 127.0.0.1 and sends the body of each POST to
/// `/result` down a channel; its thread ends when the server is dropped.
struct PageServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PageServer {
    fn start(results: Sender<String>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let tx = results.clone();
                        std::thread::spawn(move || serve(s, &tx));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        PageServer { port, stop }
    }
}

/// One HTTP/1.1 request, answered with `Connection: close`.
fn serve(stream: TcpStream, results: &Sender<String>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("POST", "/result") => {
            let mut body = vec![0u8; length.min(1 << 20)];
            if reader.read_exact(&mut body).is_ok() {
                let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            }
            ("200 OK", "text/plain", Vec::new())
        }
        ("GET", p) => match asset(p).and_then(|(f, k)| std::fs::read(f).ok().map(|b| (k, b))) {
            Some((kind, bytes)) => ("200 OK", kind, bytes),
            None => ("404 Not Found", "text/plain", Vec::new()),
        },
        _ => ("405 Method Not Allowed", "text/plain", Vec::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = &stream;
    let _ = out
        .write_all(head.as_bytes())
        .and_then(|_| out.write_all(&body));
}

/// Headless Chromium in a process group of its own, with a fresh profile
/// directory; on drop the group (its browser, renderer and helper
/// processes, all started by it) is killed by its id, the browser reaped
/// and the profile removed, whatever the test's outcome.
struct Chromium {
    child: Child,
    profile: PathBuf,
}

impl Chromium {
    fn open(url: &str) -> Chromium {
        let profile = std::env::temp_dir().join(format!(
            "coremq-chromium-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = common::chromium::headless(&profile)
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Chromium { child, profile }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group this test created, named by the browser's PID.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall; a negative pid names our own process group.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Load the page against `ws_url` at protocol level `v`; the report's lines.
fn run_page(ws_url: &str, v: u8, topic: &str) -> Vec<String> {
    let lib = asset("/mqtt.min.js").expect("asset").0;
    assert!(
        lib.is_file(),
        "{} is missing: run `npm ci` in tests/browser (scripts/test.sh does)",
        lib.display()
    );
    let (tx, rx) = channel();
    let server = PageServer::start(tx);
    let page = format!(
        "http://127.0.0.1:{}/index.html?ws={ws_url}&v={v}&topic={topic}",
        server.port
    );
    let _browser = Chromium::open(&page);
    let report = rx
        .recv_timeout(PAGE_WAIT)
        .unwrap_or_else(|_| panic!("no report from the page within {PAGE_WAIT:?}: {page}"));
    report.lines().map(str::to_string).collect()
}

/// [MQTT-3.3.1-8] a retained message sent for a new subscription has RETAIN
/// set; [MQTT-3.3.1-9] a live one does not; [MQTT-3.8.4-6] delivery QoS is
/// the lower of the publish and the subscription QoS.
fn check_report(lines: &[String], topic: &str, v: u8) {
    let all = lines.join("\n");
    assert!(
        lines.iter().all(|l| !l.starts_with("error")),
        "v{v}: the page reported errors:\n{all}"
    );
    assert_eq!(
        lines.first().map(String::as_str),
        Some("connected"),
        "v{v}:\n{all}"
    );
    let mut got: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("message "))
        .collect();
    got.sort_unstable();
    let want = [
        format!("{topic}/q0 0 false zero"),
        format!("{topic}/q1 1 false one"),
        format!("{topic}/retained 1 true kept"),
    ];
    assert_eq!(got, want, "v{v}:\n{all}");
}

#[test]
fn mqtt_js_in_headless_chromium_over_websocket() {
    for shards in [1, 2] {
        let (ws_url, _broker) = coremq_ws(shards);
        for v in [4u8, 5] {
            let topic = format!("browser/{}/s{shards}/v{v}", std::process::id());
            let lines = run_page(&ws_url, v, &topic);
            check_report(&lines, &topic, v);
        }
    }
}
