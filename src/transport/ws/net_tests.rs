//! [`Ws`] over real loopback sockets on glommio executors, with clients on
//! std threads: the upgrade (accepted and refused), a tungstenite client
//! exchanging MQTT bytes, pings and the close handshake, and a connection
//! detached mid-frame and resumed on other executor threads.

use super::testkit::{binary, frame, MASK};
use super::*;
use crate::codec::{self, Packet, ProtocolVersion, Side};
use crate::transport::unread_bytes;
use bytes::Bytes;
use glommio::net::{TcpListener, TcpStream};
use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// Run `f` on a glommio executor in a thread of its own.
fn on_executor<R: Send + 'static, Fut: Future<Output = R> + 'static>(
    f: impl FnOnce() -> Fut + Send + 'static,
) -> JoinHandle<R> {
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor")
            .run(async move { f().await })
    })
}

/// A server on its own executor thread, given a bound listener.
fn serve<R, Fut>(f: impl FnOnce(TcpListener) -> Fut + Send + 'static) -> (SocketAddr, JoinHandle<R>)
where
    R: Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let h = on_executor(move || async move {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        tx.send(l.local_addr().expect("addr"))
            .expect("address sent");
        f(l).await
    });
    (rx.recv().expect("server address"), h)
}

async fn upgrade(l: &TcpListener) -> Result<Ws<TcpStream>, UpgradeError> {
    let s = l.accept().await.expect("accept");
    accept_ws(s, "/mqtt", MAX_REQUEST_BYTES, 1 << 20).await
}

async fn read_once<T: Transport>(t: &mut T) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; 65536];
    let n = poll_fn(|cx| t.poll_read(cx, &mut buf)).await?;
    Ok(buf[..n].to_vec())
}

async fn write_all<T: Transport>(t: &mut T, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| t.poll_write(cx, bytes)).await.expect("write");
        bytes = &bytes[n..];
    }
}

/// Wait until the kernel holds at least `n` unread bytes on `fd`.
async fn wait_unread(fd: std::os::fd::RawFd, n: usize) {
    for _ in 0..10_000 {
        if unread_bytes(fd) >= n {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    panic!("{n} bytes never arrived");
}

fn client_stream(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// The response head, read up to its blank line.
fn response_head(s: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).expect("response") == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ascii response")
}

/// MQTT packets in `bytes`, in order.
fn packets(bytes: &[u8]) -> Vec<Packet> {
    let mut data = Bytes::copy_from_slice(bytes);
    let mut out = Vec::new();
    while let Ok(Some((p, used))) =
        codec::decode(&data, 1 << 20, Side::Server, ProtocolVersion::V311)
    {
        out.push(p);
        data = data.slice(used..);
    }
    assert!(data.is_empty(), "{} bytes left undecoded", data.len());
    out
}

fn connect_and_publish() -> Vec<u8> {
    let mut out = Vec::new();
    let connect = crate::shard::harness::connect_packet("ws-client", true, None);
    codec::encode(&connect, ProtocolVersion::V311, &mut out);
    let publish =
        crate::shard::harness::publish("a/b", b"over websocket", codec::QoS::AtMostOnce, 0, false);
    codec::encode(&publish, ProtocolVersion::V311, &mut out);
    out
}

/// A tungstenite client: the upgrade selects `mqtt` [MQTT-6.0.0-4], MQTT
/// packets cut across frames and packed into one come through as a byte
/// stream [MQTT-6.0.0-2] and are echoed back as binary frames, a ping
/// gets its pong, and the client's close is answered.
#[test]
fn a_tungstenite_client_sends_packets_pings_and_closes() {
    let (addr, server) = serve(|l| async move {
        let mut ws = upgrade(&l).await.expect("upgraded");
        let mut got = Vec::new();
        loop {
            let bytes = read_once(&mut ws).await.expect("read");
            if bytes.is_empty() {
                return got; // the close handshake ends reads
            }
            write_all(&mut ws, &bytes).await;
            got.extend_from_slice(&bytes);
        }
    });
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().expect("header"));
    let (mut ws, resp) = tungstenite::client(req, client_stream(addr)).expect("handshake");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["Sec-WebSocket-Protocol"], "mqtt");

    let bytes = connect_and_publish();
    ws.send(Message::binary(bytes[..5].to_vec())).expect("send");
    ws.send(Message::binary(bytes[5..].to_vec())).expect("send");
    let mut echoed = Vec::new();
    while echoed.len() < bytes.len() {
        match ws.read().expect("echo") {
            Message::Binary(b) => echoed.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, bytes);

    ws.send(Message::Ping(Bytes::from_static(b"hi")))
        .expect("ping");
    assert_eq!(
        ws.read().expect("pong"),
        Message::Pong(Bytes::from_static(b"hi"))
    );

    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    let got = server.join().expect("server");
    let ps = packets(&got);
    assert!(
        matches!(ps.as_slice(), [Packet::Connect(_), Packet::Publish(_)]),
        "{ps:?}"
    );
}

/// Every refused upgrade gets an HTTP error and the connection closes;
/// `mqttv3.1` is served too, and `mqtt` is preferred when both are offered.
#[test]
fn upgrades_are_checked_and_refusals_answered() {
    let pad = "X".repeat(MAX_REQUEST_BYTES);
    let cases: Vec<(String, &str)> = vec![
        (
            request(
                "/other",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
            ),
            "404",
        ),
        (request("/mqtt", "Sec-WebSocket-Version: 13\r\n"), "400"),
        (
            request(
                "/mqtt",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n",
            ),
            "400",
        ),
        (
            "GET /mqtt HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".into(),
            "400",
        ),
        ("POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n".into(), "400"),
        (
            "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\r\n\r\n".into(),
            "400",
        ),
        (
            request(
                "/mqtt",
                "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: mqtt\r\n",
            ),
            "426",
        ),
        (pad[..MAX_REQUEST_BYTES].to_string(), "431"),
        (
            request(
                "/mqtt?x=1",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqttv3.1\r\n",
            ),
            "101",
        ),
        (
            request(
                "/mqtt",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqttv3.1, mqtt\r\n",
            ),
            "101",
        ),
    ];
    let n = cases.len();
    let (addr, server) = serve(move |l| async move {
        let mut results = Vec::new();
        for _ in 0..n {
            results.push(match upgrade(&l).await {
                Ok(_) => "101".to_string(),
                Err(UpgradeError::Refused(status, _)) => status.to_string(),
                Err(e) => format!("io: {e}"),
            });
        }
        results
    });
    let mut heads = Vec::new();
    for (req, _) in &cases {
        let mut s = client_stream(addr);
        s.write_all(req.as_bytes()).expect("request");
        heads.push(response_head(&mut s));
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // the server closes
    }
    let results = server.join().expect("server");
    for (i, (_, want)) in cases.iter().enumerate() {
        assert_eq!(results[i], *want, "case {i}: {}", heads[i]);
        assert!(
            heads[i].starts_with(&format!("HTTP/1.1 {want} ")),
            "case {i}: {}",
            heads[i]
        );
    }
    assert!(
        heads[6].contains("Sec-WebSocket-Version: 13\r\n"),
        "{}",
        heads[6]
    );
    assert!(heads[8]
        .to_ascii_lowercase()
        .contains("sec-websocket-protocol: mqttv3.1\r\n"));
    assert!(heads[9]
        .to_ascii_lowercase()
        .contains("sec-websocket-protocol: mqtt\r\n"));
    assert!(
        heads[9].contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "accept key: {}",
        heads[9]
    );
}

/// One hop of a moving connection: read what arrived, then detach.
struct Hop {
    expect: usize,
    reply: Option<&'static [u8]>,
}

type HopResult = (Vec<u8>, Detached);

impl Resume for Hop {
    type Output = Pin<Box<dyn Future<Output = HopResult>>>;

    fn resume<T: Transport>(self, mut stream: T) -> Self::Output {
        Box::pin(async move {
            wait_unread(stream.socket_fd(), self.expect).await;
            let got = read_once(&mut stream).await.expect("read");
            if let Some(reply) = self.reply {
                write_all(&mut stream, reply).await;
            }
            (got, stream.detach().expect("detach"))
        })
    }
}

/// Resume `d` on a new executor thread and run one hop there.
fn hop(d: Detached, hop: Hop) -> HopResult {
    on_executor(move || d.resume(hop).expect("resumed"))
        .join()
        .expect("hop thread")
}

/// A connection detached with half a frame received moves to another
/// executor thread, which finishes the frame; detached there with half a
/// frame header carried, it moves again and the third thread reads on.
#[test]
fn a_detached_connection_resumes_mid_frame_on_other_threads() {
    let first = binary(b"abc");
    let second = frame(2, true, b"0123456789", Some([4, 3, 2, 1]));
    let third = frame(2, true, b"XYZ", Some(MASK));
    let ping = frame(9, true, b"p", Some(MASK));
    // Cut points: half of `second`'s payload, then 3 bytes into `third`'s header.
    let part1 = [first.as_slice(), &second[..6 + 4]].concat();
    let part2 = [&second[10..], &third[..3]].concat();
    let part3 = [&third[3..], ping.as_slice()].concat();

    let part1_len = part1.len();
    let (addr, server) = serve(move |l| async move {
        let mut ws = upgrade(&l).await.expect("upgraded");
        wait_unread(ws.socket_fd(), part1_len).await;
        let got = read_once(&mut ws).await.expect("read");
        (got, ws.detach().expect("detach"))
    });
    let mut c = client_stream(addr);
    let head = request(
        "/mqtt",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
    );
    c.write_all(head.as_bytes()).expect("request");
    assert!(response_head(&mut c).starts_with("HTTP/1.1 101 "));
    c.write_all(&part1).expect("part 1");

    let (got, d) = server.join().expect("server");
    assert_eq!(got, b"abc0123");
    let Detached::Ws { state, .. } = &d else {
        panic!("{d:?}")
    };
    assert!(state.rx.mid_frame(), "half a frame in the detached state");

    c.write_all(&part2).expect("part 2");
    let (got, d) = hop(
        d,
        Hop {
            expect: part2.len(),
            reply: None,
        },
    );
    assert_eq!(got, b"456789");
    let Detached::Ws { state, .. } = &d else {
        panic!("{d:?}")
    };
    assert_eq!(state.carry.len(), 3, "half a header carried");

    c.write_all(&part3).expect("part 3");
    let (got, _) = hop(
        d,
        Hop {
            expect: part3.len(),
            reply: Some(b"ok"),
        },
    );
    assert_eq!(got, b"XYZ");
    let mut reply = [0u8; 7];
    c.read_exact(&mut reply).expect("pong and reply");
    assert_eq!(&reply, b"\x8a\x01p\x82\x02ok");
}
