//! One broker per listen address: a second `coremq` on a port that a broker
//! (or any other listener) holds exits 1 with "address in use" and leaves the
//! first one serving; a broker restarted right after `kill -9` on the same
//! port gets every connection (none is handed to the dead one's lingering
//! sockets and reset).
mod common;

use common::binary::{wait_timeout, BrokerProcess};
use common::{connect_packet, packet_bytes};
use coremq::codec::{Packet, Reason, Side};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free right now (bound to port 0, then released).
/// One test at a time: each picks a port and frees it again (a restart), and
/// a client of a test running beside it could take that port meanwhile.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Run `coremq --listen LISTEN --cores 1` expecting it to give up: its exit
/// code and stderr. A broker still running after 10 s is killed and fails
/// the test (today's SO_REUSEPORT-on-everything broker would share the port).
fn second_broker(listen: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coremq"))
        .args(["--listen", listen, "--cores", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coremq");
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.unwrap_or_else(|| {
        panic!("a second coremq on {listen} was still running after 10 s; its log:\n{err}")
    });
    (status.code().unwrap_or(-1), err)
}

/// CONNECT as `id` over a fresh socket and read the CONNACK.
fn connack(addr: SocketAddr, id: &str) -> Result<Reason, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    handshake(&mut s, id)
}

/// Send CONNECT as `id` on `s` and read the CONNACK (5 s at most).
fn handshake(s: &mut TcpStream, id: &str) -> Result<Reason, String> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(&packet_bytes(&Packet::Connect(Box::new(connect_packet(
        id, true,
    )))))
    .map_err(|e| format!("send CONNECT: {e}"))?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)
        .map_err(|e| format!("read CONNACK: {e}"))?;
    match coremq::codec::decode(
        &bytes::Bytes::copy_from_slice(&ack),
        1024,
        Side::Client,
        coremq::codec::ProtocolVersion::V311,
    ) {
        Ok(Some((Packet::ConnAck(a), 4))) => Ok(a.code),
        other => Err(format!("not a CONNACK: {ack:?} ({other:?})")),
    }
}

#[test]
fn a_second_broker_on_the_same_port_exits_1_and_the_first_keeps_serving() {
    let _serial = serial();
    let port = free_port();
    let first = BrokerProcess::start_on(&format!("127.0.0.1:{port}"), 1, None);
    let started = Instant::now();
    let (code, err) = second_broker(&format!("127.0.0.1:{port}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("address in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Another coremq on the same address is known at once (the lock), not
    // after the wait for a foreign listener to leave.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    // The wildcard address on the same port is the same port.
    let (code, err) = second_broker(&format!("0.0.0.0:{port}"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("address in use"), "{err}");
    // The first broker still gets every client.
    for i in 0..20 {
        assert_eq!(
            connack(first.addr(), &format!("after-{i}")),
            Ok(Reason::SUCCESS),
            "client {i}; first broker's log:\n{}",
            first.log()
        );
    }
    first.stop();
}

#[test]
fn a_port_held_by_another_program_with_so_reuseport_is_refused() {
    let _serial = serial();
    // Any program that listens with SO_REUSEPORT (as our own shards do)
    // would otherwise silently share the port with the broker.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other.set_reuse_address(true).unwrap();
    other.set_reuse_port(true).unwrap();
    // Port 0, resolved by this bind: no window in which another test takes it.
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    other.bind(&any.into()).unwrap();
    other.listen(16).unwrap();
    let addr = other
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an IPv4 address");
    let (code, err) = second_broker(&addr.to_string());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("address in use") && err.contains(&addr.to_string()),
        "{err}"
    );
}

#[test]
fn a_broker_restarted_right_after_kill_9_serves_its_first_200_connections() {
    let _serial = serial();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    for round in 0..3 {
        let old = BrokerProcess::start_on(&listen, 2, None);
        // Live connections keep io_uring requests pending on the old broker's
        // sockets, as in production.
        let held: Vec<TcpStream> = (0..50)
            .map(|i| {
                let mut s = TcpStream::connect(old.addr()).expect("connect to the old broker");
                assert_eq!(handshake(&mut s, &format!("old-{i}")), Ok(Reason::SUCCESS));
                s
            })
            .collect();
        old.kill9();
        let new = BrokerProcess::start_on(&listen, 2, None);
        // All 200 handshakes first, as fast as possible, then the CONNECTs.
        let socks: Vec<Result<TcpStream, String>> = (0..200)
            .map(|_| TcpStream::connect(new.addr()).map_err(|e| format!("connect: {e}")))
            .collect();
        let failed: Vec<String> = socks
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let r = s.and_then(|mut s| handshake(&mut s, &format!("new-{i}")));
                (r != Ok(Reason::SUCCESS)).then(|| format!("client {i}: {r:?}"))
            })
            .collect();
        assert!(
            failed.is_empty(),
            "round {round}: {} of 200 connections failed after the restart: {:?}; new broker's log:\n{}",
            failed.len(),
            &failed[..failed.len().min(5)],
            new.log()
        );
        drop(held);
        new.stop();
    }
}

#[test]
fn in_process_the_address_is_refused_while_held_and_free_again_after_join() {
    let _serial = serial();
    let port = free_port();
    let mut cfg = common::config(1);
    cfg.listener[0].bind = format!("127.0.0.1:{port}");
    let first = coremq::Broker::new(cfg.clone())
        .start()
        .expect("first start");
    let t = Instant::now();
    match coremq::Broker::new(cfg.clone()).start() {
        Err(e @ coremq::StartError::AddressInUse(..)) => {
            assert!(e.to_string().contains("address in use"), "{e}");
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "took {:?}",
                t.elapsed()
            );
        }
        Err(e) => panic!("second start: unexpected error {e}"),
        Ok(h) => {
            h.stop();
            let _ = h.join();
            panic!("a second broker started on {port} beside the first");
        }
    }
    first.stop();
    first.join().expect("first joins");
    // Joined: the same address can be served again at once (tests restart brokers).
    let again = coremq::Broker::new(cfg)
        .start()
        .expect("restart after join");
    assert_eq!(connack(again.local_addr(), "again"), Ok(Reason::SUCCESS));
    again.stop();
    again.join().expect("joins");
}
