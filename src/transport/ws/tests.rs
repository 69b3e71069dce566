//! [`Ws`] over the in-memory [`Mock`] transport: reads cut at every size,
//! writes taken a few bytes at a time, pings, closes and refusals. The
//! tests over real sockets (handshake, detach and resume across threads)
//! are in `net_tests`.

use super::testkit::{binary, frame, frame_len, server_frames, Mock, MASK};
use super::*;
use std::sync::Arc;
use std::task::{Wake, Waker};

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn cx_do<R>(f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    let waker = Waker::from(Arc::new(Noop));
    f(&mut Context::from_waker(&waker))
}

fn ws(mock: &Mock) -> Ws<Mock> {
    Ws::upgraded(mock.clone(), 1 << 20, Vec::new())
}

fn read(w: &mut Ws<Mock>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    cx_do(|cx| w.poll_read(cx, buf))
}

/// Everything readable until EOF, or Pending with nothing left to read
/// (a Pending with bytes left is a read yielding), with `buf_len`-byte reads.
fn read_all(w: &mut Ws<Mock>, buf_len: usize) -> Vec<u8> {
    let mut buf = vec![0; buf_len];
    let mut out = Vec::new();
    loop {
        match read(w, &mut buf) {
            Poll::Ready(r) => match r.expect("read") {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            },
            Poll::Pending if w.inner.0.borrow().inbound.is_empty() => break,
            Poll::Pending => {}
        }
    }
    out
}

/// Write all of `bytes` as a connection task does: re-offer the rest after
/// each partial write. `None` if the transport stayed full.
fn write_all(w: &mut Ws<Mock>, mut bytes: &[u8]) -> Option<()> {
    while !bytes.is_empty() {
        match cx_do(|cx| w.poll_write(cx, bytes)) {
            Poll::Ready(Ok(n)) if n > 0 => bytes = &bytes[n..],
            Poll::Pending => return None,
            other => panic!("write: {other:?}"),
        }
    }
    Some(())
}

/// A client's stream: fragments, a ping inside a fragmented message, and
/// frames with 7-, 16- and 64-bit lengths. Returns (raw, MQTT bytes).
fn mixed_stream() -> (Vec<u8>, Vec<u8>) {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut raw = binary(b"\x10\x0c\x00\x04MQTT");
    raw.extend(frame(2, false, b"\x04\x02\x00", Some([5, 6, 7, 8])));
    raw.extend(frame(9, true, b"ping!", Some(MASK)));
    raw.extend(frame(0, false, b"", Some(MASK)));
    raw.extend(frame(0, true, b"\x3c\x00\x00", Some([0xff; 4])));
    raw.extend(binary(&[7u8; 300]));
    raw.extend(frame(10, true, b"unsolicited pong", Some(MASK)));
    raw.extend(binary(&big));
    let mut mqtt = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00".to_vec();
    mqtt.extend_from_slice(&[7u8; 300]);
    mqtt.extend_from_slice(&big);
    (raw, mqtt)
}

/// MQTT is a byte stream over the frames [MQTT-6.0.0-2]: however the bytes
/// arrive and whatever the read size, the same bytes come out, and the ping
/// is answered.
#[test]
fn the_byte_stream_survives_any_cut_and_read_size() {
    let (raw, mqtt) = mixed_stream();
    for cut in [1, 2, 3, 5, 13, 64, 1000, 4096, raw.len()] {
        for buf_len in [200, 65536] {
            let mock = Mock::new();
            raw.chunks(cut).for_each(|c| mock.push(c));
            mock.0.borrow_mut().eof = true;
            let mut w = ws(&mock);
            assert_eq!(
                read_all(&mut w, buf_len),
                mqtt,
                "cut {cut}, reads of {buf_len}"
            );
            let frames = server_frames(&mock.take_written());
            assert_eq!(frames, vec![(10, true, b"ping!".to_vec())], "cut {cut}");
            assert!(w.st.carry.is_empty() && !w.st.rx.mid_frame());
        }
    }
}

/// Bytes the client sent right behind its upgrade request come first.
#[test]
fn bytes_sent_with_the_upgrade_request_are_decoded_first() {
    let mock = Mock::new();
    let mut early = binary(b"early");
    let late = binary(b"+late");
    early.extend_from_slice(&late[..3]);
    mock.push(&late[3..]);
    let mut w = Ws::upgraded(mock.clone(), 1 << 20, early);
    assert_eq!(read_all(&mut w, 64), b"early+late");
    assert_eq!(w.st.carry.capacity(), 0, "nothing held once decoded");
}

/// Each write is one binary frame, even when the socket takes a byte at a
/// time and the header goes out in pieces.
#[test]
fn each_write_is_one_frame_whatever_the_socket_takes() {
    let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    for limit in [1, 2, 3, 4, 5, 17, 1000] {
        let mock = Mock::new();
        mock.0.borrow_mut().write_limit = limit;
        let mut w = ws(&mock);
        write_all(&mut w, &payload).expect("written");
        write_all(&mut w, b"second").expect("written");
        let frames = server_frames(&mock.take_written());
        assert_eq!(
            frames,
            vec![(2, true, payload.clone()), (2, true, b"second".to_vec())],
            "{limit} bytes per write"
        );
    }
}

/// A ping read while an outbound frame is half written is answered after
/// that frame, never inside it (§5.4); with nothing to write, the read
/// itself sends the pong.
#[test]
fn pongs_wait_for_the_frame_in_progress() {
    let mock = Mock::new();
    let mut w = ws(&mock);
    mock.0.borrow_mut().write_limit = 4;
    assert!(matches!(
        cx_do(|cx| w.poll_write(cx, b"0123456789")),
        Poll::Ready(Ok(2))
    ));
    mock.push(&frame(9, true, b"p", Some(MASK)));
    assert!(read(&mut w, &mut [0; 64]).is_pending());
    assert_eq!(mock.0.borrow().written.len(), 4, "no pong inside the frame");
    write_all(&mut w, b"23456789").expect("written");
    mock.0.borrow_mut().write_limit = usize::MAX;
    write_all(&mut w, b"next").expect("written");
    let frames = server_frames(&mock.take_written());
    let ops: Vec<u8> = frames.iter().map(|f| f.0).collect();
    assert_eq!(ops, vec![2, 10, 2]);
    assert_eq!(frames[0].2, b"0123456789");

    mock.push(&frame(9, true, b"idle", Some(MASK)));
    assert!(read(&mut w, &mut [0; 64]).is_pending());
    assert_eq!(
        server_frames(&mock.take_written()),
        vec![(10, true, b"idle".to_vec())]
    );
}

/// The close handshake (§5.5.1): data before the close frame is delivered,
/// the close is echoed, then reads end and writes fail.
#[test]
fn a_close_frame_is_answered_and_ends_the_stream() {
    let mock = Mock::new();
    let mut raw = binary(b"bye");
    raw.extend(frame(8, true, &1001u16.to_be_bytes(), Some(MASK)));
    mock.push(&raw);
    let mut w = ws(&mock);
    let mut buf = [0; 64];
    assert!(matches!(read(&mut w, &mut buf), Poll::Ready(Ok(3))));
    assert!(matches!(read(&mut w, &mut buf), Poll::Ready(Ok(0))));
    assert_eq!(
        server_frames(&mock.take_written()),
        vec![(8, true, 1001u16.to_be_bytes().to_vec())]
    );
    assert!(matches!(
        cx_do(|cx| w.poll_write(cx, b"x")),
        Poll::Ready(Err(_))
    ));
    w.write_now(b"late");
    assert!(
        mock.take_written().is_empty(),
        "nothing after the close frame"
    );
}

/// Refused frames: the read fails with InvalidData (the connection task
/// counts it) and the client gets a close frame with the code; a text
/// frame closes the connection [MQTT-6.0.0-1].
#[test]
fn refused_frames_close_with_their_code() {
    let mut huge = vec![0x82];
    frame_len(&mut huge, 0x80, (1 << 20) + 1);
    huge.extend_from_slice(&MASK);
    for (bytes, code) in [
        (frame(1, true, b"{\"json\":1}", Some(MASK)), 1003u16),
        (frame(2, true, b"raw", None), 1002),
        (huge, 1009),
    ] {
        let mock = Mock::new();
        mock.push(&bytes);
        let mut w = ws(&mock);
        let err = match read(&mut w, &mut [0; 64]) {
            Poll::Ready(Err(e)) => e,
            other => panic!("code {code}: {other:?}"),
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let frames = server_frames(&mock.take_written());
        assert_eq!(frames, vec![(8, true, code.to_be_bytes().to_vec())]);
        assert!(read(&mut w, &mut [0; 64]).is_ready(), "stays failed");
    }
}

/// write_now (before the connection closes) finishes the frame in progress,
/// frames the rest, and closes normally.
#[test]
fn write_now_finishes_the_frame_and_closes() {
    let mock = Mock::new();
    let mut w = ws(&mock);
    mock.0.borrow_mut().write_limit = 5;
    let msg: Vec<u8> = (0..100).collect();
    assert!(matches!(
        cx_do(|cx| w.poll_write(cx, &msg)),
        Poll::Ready(Ok(3))
    ));
    let mut rest = msg[3..].to_vec();
    rest.extend_from_slice(b"connack");
    w.write_now(&rest);
    assert_eq!(
        server_frames(&mock.take_written()),
        vec![
            (2, true, msg),
            (2, true, b"connack".to_vec()),
            (8, true, 1000u16.to_be_bytes().to_vec())
        ]
    );
}

/// The per-connection cost: the state lives inside the task's future, and
/// an idle connection holds no heap of its own.
#[test]
fn an_idle_connection_holds_no_heap() {
    let mock = Mock::new();
    let mut w = ws(&mock);
    mock.push(&binary(b"\x30\x03\x00\x01t"));
    assert_eq!(read_all(&mut w, 64).len(), 5);
    assert_eq!(w.st.carry.capacity(), 0);
    assert!(w.st.ctl.is_none());
    let size = std::mem::size_of::<WsState>();
    assert!(size <= 96, "WsState grew to {size} bytes");
}
/// Frames that carry no MQTT bytes (pings, empty frames) do not keep one
/// read going forever: it yields after a few, and the next read goes on.
#[test]
fn a_flood_of_empty_frames_yields() {
    let mock = Mock::new();
    for _ in 0..3 * MAX_EMPTY_READS {
        mock.push(&frame(9, true, b"", Some(MASK)));
    }
    mock.push(&binary(b"x"));
    let mut w = ws(&mock);
    let mut buf = [0u8; 64];
    let mut polls = 1;
    while read(&mut w, &mut buf).is_pending() {
        assert!(
            !mock.0.borrow().inbound.is_empty(),
            "pending with nothing to read"
        );
        polls += 1;
    }
    assert!(polls > 3, "{polls} polls");
    assert_eq!(buf[0], b'x');
}
