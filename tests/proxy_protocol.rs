//! PROXY protocol listeners: the v1 or v2 header's source address becomes
//! the client's (checked through allow_anonymous = "loopback", which lets
//! loopback addresses in and refuses others), v2 LOCAL keeps the socket's,
//! and a connection without a valid header is closed and counted. Also in
//! front of TLS, and for clients handed to their home shard.

mod common;

use common::tls::{Ca, TlsClient, Version};
use common::{config, connect_packet, start_with, Client};
use coremq::codec::{Packet, Reason};
use coremq::config::{Anonymous, ClientAuth};
use coremq::Hooks;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

fn v1(src: &str) -> Vec<u8> {
    let fam = if src.contains(':') { "TCP6" } else { "TCP4" };
    let dst = if fam == "TCP6" { "::1" } else { "127.0.0.1" };
    format!("PROXY {fam} {src} {dst} 40000 1883\r\n").into_bytes()
}

fn v2(cmd: u8, src: Option<IpAddr>) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | cmd);
    let body = match src {
        Some(IpAddr::V4(a)) => {
            h.push(0x11);
            [
                &a.octets()[..],
                &[127, 0, 0, 1],
                &40000u16.to_be_bytes(),
                &1883u16.to_be_bytes(),
            ]
            .concat()
        }
        Some(IpAddr::V6(a)) => {
            h.push(0x21);
            let lo = std::net::Ipv6Addr::LOCALHOST.octets();
            [
                &a.octets()[..],
                &lo,
                &40000u16.to_be_bytes(),
                &1883u16.to_be_bytes(),
            ]
            .concat()
        }
        None => {
            h.push(0x00);
            Vec::new()
        }
    };
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

fn proxy_broker(shards: usize) -> common::TestBroker {
    let mut cfg = config(shards);
    cfg.listener[0].proxy_protocol = true;
    cfg.listener[0].allow_anonymous = Anonymous::Loopback;
    start_with(cfg, Hooks::new())
}

/// Send `header`, then an anonymous CONNECT; the CONNACK's code.
fn connack_after(addr: SocketAddr, header: &[u8], id: &str) -> Option<Reason> {
    let mut c = Client::raw(addr);
    c.send_raw(header);
    c.send(&Packet::Connect(Box::new(connect_packet(id, true))));
    match c.recv() {
        Some(Packet::ConnAck(a)) => Some(a.code),
        _ => None,
    }
}

#[test]
fn the_header_source_address_decides_allow_anonymous() {
    for shards in [1, 2] {
        let b = proxy_broker(shards);
        for home in 0..shards {
            let id = b.id_on("p", home);
            let far4: IpAddr = "10.1.2.3".parse().unwrap();
            let far6: IpAddr = "2001:db8::7".parse().unwrap();
            for (header, want) in [
                (v1("127.0.0.9"), Reason::SUCCESS),
                (v1("10.1.2.3"), Reason::NOT_AUTHORIZED),
                (v1("2001:db8::7"), Reason::NOT_AUTHORIZED),
                (b"PROXY UNKNOWN\r\n".to_vec(), Reason::SUCCESS),
                (v2(1, Some("127.0.0.2".parse().unwrap())), Reason::SUCCESS),
                (v2(1, Some(far4)), Reason::NOT_AUTHORIZED),
                (v2(1, Some(far6)), Reason::NOT_AUTHORIZED),
                // LOCAL: the socket's own address (loopback here).
                (v2(0, None), Reason::SUCCESS),
            ] {
                let got = connack_after(b.addr, &header, &id);
                assert_eq!(
                    got,
                    Some(want),
                    "{:?} on shard {home}",
                    String::from_utf8_lossy(&header)
                );
            }
        }
        let m = b.wait_metrics(|m| m.auth_anonymous_refused >= 4 * shards as u64);
        assert_eq!(m.auth_anonymous_refused, 4 * shards as u64);
        assert_eq!(m.proxy_header_failures, 0);
    }
}

#[test]
fn a_header_split_over_several_writes_is_read_whole() {
    let b = proxy_broker(1);
    let mut c = Client::raw(b.addr);
    let header = v2(1, Some("10.0.0.1".parse().unwrap()));
    for part in header.chunks(5) {
        c.stream.write_all(part).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    c.send(&Packet::Connect(Box::new(connect_packet("split", true))));
    match c.recv() {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, Reason::NOT_AUTHORIZED),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn connections_without_a_valid_header_are_closed_and_counted() {
    for shards in [1, 2] {
        let b = proxy_broker(shards);
        let mut bad_v2 = v2(1, Some("10.0.0.1".parse().unwrap()));
        bad_v2[12] = 0x31; // version 3
        let cases: [&[u8]; 4] = [
            b"PROXY TCP4 10.1.2.3 nope 1 2\r\n",
            &bad_v2,
            b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", // a CONNECT, no header
            b"PROXY TCP4 10.1.2.3 127.0.0.1 1 2 and far too long for a v1 line: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ];
        for bytes in cases {
            let mut c = Client::raw(b.addr);
            c.send_raw(bytes);
            assert!(c.closed(), "{:?}", String::from_utf8_lossy(bytes));
        }
        let m = b.wait_metrics(|m| m.proxy_header_failures >= 4);
        assert_eq!(m.proxy_header_failures, 4, "{m:?}");
        assert_eq!(m.connects_accepted, 0);
    }
}

#[test]
fn a_proxy_header_comes_before_tls() {
    let dir = common::tls::temp_dir("proxy-tls");
    let ca = Ca::new(&dir, "main");
    for shards in [1, 2] {
        let mut cfg = config(shards);
        let mut l = common::tls::listener(&ca.server(), None, ClientAuth::None);
        l.proxy_protocol = true;
        l.allow_anonymous = Anonymous::Loopback;
        cfg.listener[0] = l;
        let b = start_with(cfg, Hooks::new());
        for home in 0..shards {
            for (src, want) in [
                ("127.0.0.3", Reason::SUCCESS),
                ("10.9.9.9", Reason::NOT_AUTHORIZED),
            ] {
                let id = b.id_on("pt", home);
                let mut c =
                    TlsClient::open_after(b.addr, &v1(src), &ca.file, Version::V13).unwrap();
                let ack = c.mqtt_connect(connect_packet(&id, true)).unwrap();
                assert_eq!(ack.code, want, "{src} on shard {home}");
            }
        }
        let m = b.wait_metrics(|m| m.tls_handshakes >= 2 * shards as u64);
        assert_eq!(m.tls_handshakes, 2 * shards as u64);
    }
}
