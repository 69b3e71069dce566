//! The inbound decoder on byte slices: unmasking across calls, the
//! server-side rules of RFC 6455 and the close payload.

use super::*;
use crate::transport::ws::testkit::{binary, frame, frame_len, MASK};

const MAX: u64 = 1 << 20;

fn decode(rx: &mut Inbound, buf: &mut [u8]) -> Result<Decoded, Violation> {
    rx.decode(buf, MAX, &mut |_| {})
}

fn refused(bytes: &[u8]) -> Violation {
    decode(&mut Inbound::default(), &mut bytes.to_vec()).expect_err("refused")
}

/// A payload cut anywhere keeps unmasking where it left off (§5.3).
#[test]
fn a_frame_cut_anywhere_unmasks_to_the_same_bytes() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    let raw = binary(&payload);
    for cut in 1..raw.len() {
        let mut rx = Inbound::default();
        let mut first = raw[..cut].to_vec();
        let d1 = decode(&mut rx, &mut first).unwrap();
        let mut got = first[..d1.data].to_vec();
        let mut rest = first[d1.used..].to_vec();
        rest.extend_from_slice(&raw[cut..]);
        let d2 = decode(&mut rx, &mut rest).unwrap();
        assert_eq!(d2.used, rest.len(), "cut {cut}");
        got.extend_from_slice(&rest[..d2.data]);
        assert_eq!(got, payload, "cut {cut}");
        assert!(!rx.mid_frame());
    }
}

#[test]
fn several_frames_and_a_ping_in_one_buffer() {
    let mut raw = frame(2, false, b"MQ", Some(MASK));
    raw.extend(frame(9, true, b"are you there", Some([1, 2, 3, 4])));
    raw.extend(frame(0, true, b"TT", Some([9, 9, 9, 9])));
    raw.extend(binary(b"\x10\x00"));
    let mut pings = Vec::new();
    let d = Inbound::default()
        .decode(&mut raw, MAX, &mut |p| pings.push(p.to_vec()))
        .unwrap();
    assert_eq!(&raw[..d.data], b"MQTT\x10\x00");
    assert_eq!(pings, vec![b"are you there".to_vec()]);
    assert_eq!(d.close, None);
}

/// A control frame cut in two is left whole for the next call.
#[test]
fn a_cut_control_frame_is_not_consumed() {
    let ping = frame(9, true, b"abcdef", Some(MASK));
    let mut raw = binary(b"xy");
    raw.extend_from_slice(&ping[..5]);
    let d = decode(&mut Inbound::default(), &mut raw).unwrap();
    assert_eq!(d.data, 2);
    assert_eq!(d.used, raw.len() - 5);
}

#[test]
fn text_frames_are_refused_with_1003() {
    let v = refused(&frame(1, true, b"hello", Some(MASK)));
    assert_eq!((v, v.close_code()), (Violation::Text, 1003));
}

/// [RFC 6455 §5.1] a server closes on a frame that is not masked.
#[test]
fn unmasked_client_frames_are_refused_with_1002() {
    let v = refused(&frame(2, true, b"hello", None));
    assert_eq!((v, v.close_code()), (Violation::Unmasked, 1002));
}

#[test]
fn protocol_violations_close_with_1002() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("rsv1", {
            let mut f = binary(b"x");
            f[0] |= 0x40;
            f
        }),
        ("reserved opcode", frame(3, true, b"x", Some(MASK))),
        ("reserved control opcode", frame(0xb, true, b"", Some(MASK))),
        ("continuation first", frame(0, true, b"x", Some(MASK))),
        ("binary inside a message", {
            let mut f = frame(2, false, b"x", Some(MASK));
            f.extend(binary(b"y"));
            f
        }),
        ("fragmented ping", frame(9, false, b"x", Some(MASK))),
        ("long ping", frame(9, true, &[0; 126], Some(MASK))),
        ("one-byte close", frame(8, true, &[3], Some(MASK))),
        (
            "close 1005",
            frame(8, true, &1005u16.to_be_bytes(), Some(MASK)),
        ),
        (
            "close 999",
            frame(8, true, &999u16.to_be_bytes(), Some(MASK)),
        ),
    ];
    for (what, bytes) in cases {
        let v = refused(&bytes);
        assert_eq!(v.close_code(), 1002, "{what}: {v}");
    }
}

/// A frame declaring 2^62 bytes is refused from its header alone: nothing
/// waits for (or holds) its payload.
#[test]
fn an_oversized_frame_is_refused_from_its_header() {
    let mut head = vec![0x82];
    frame_len(&mut head, 0x80, 1 << 62);
    head.extend_from_slice(&MASK);
    let v = refused(&head);
    assert_eq!(v, Violation::TooLarge(1 << 62));
    assert_eq!(v.close_code(), 1009);
    // At the limit it streams through.
    let mut rx = Inbound::default();
    let mut at_limit = vec![0x82];
    frame_len(&mut at_limit, 0x80, MAX);
    at_limit.extend_from_slice(&MASK);
    let d = decode(&mut rx, &mut at_limit).unwrap();
    assert_eq!((d.data, d.used), (0, at_limit.len()));
    assert!(rx.mid_frame());
}

#[test]
fn a_close_frame_stops_decoding_and_gives_the_code_to_echo() {
    let mut raw = binary(b"last");
    raw.extend(frame(8, true, b"\x0b\xb8bye", Some(MASK)));
    raw.extend(binary(b"ignored"));
    let d = decode(&mut Inbound::default(), &mut raw).unwrap();
    assert_eq!(&raw[..d.data], b"last");
    assert_eq!(d.close, Some(3000));
    let empty = decode(
        &mut Inbound::default(),
        &mut frame(8, true, b"", Some(MASK)),
    );
    assert_eq!(empty.unwrap().close, Some(1000));
    let bad_reason = refused(&frame(8, true, b"\x03\xe8\xff\xfe", Some(MASK)));
    assert_eq!(bad_reason.close_code(), 1007);
}

#[test]
fn server_frames_are_unmasked_with_the_shortest_length() {
    assert_eq!(binary_head(5).0[..binary_head(5).1], [0x82, 5]);
    assert_eq!(binary_head(300).0[..binary_head(300).1], [0x82, 126, 1, 44]);
    let (h, n) = binary_head(70_000);
    assert_eq!(h[..n], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    assert_eq!(close_frame(1003), vec![0x88, 2, 0x03, 0xeb]);
    assert_eq!(
        control_frame(Control::Pong, b"hi"),
        vec![0x8a, 2, b'h', b'i']
    );
}
