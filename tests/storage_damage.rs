//! A damaged storage directory. The log is DIR/gen-<G>/shard-<i>/<seq>.log
//! segments of records `u32 LE length | u32 LE crc32c(payload) | payload`.
//!
//! * The last record of a shard's last segment torn (cut short, a partial
//!   header, a bad checksum): what a crash mid-write leaves. The broker
//!   starts, warns ("storage" ... "dropped"), keeps every earlier record, and
//!   writes after the good part, so the next start is clean too.
//! * A corrupt record in a segment that is not the last: not a crash but
//!   damage. The broker refuses to start (exit 1, the error names
//!   `--recover`); with `--recover` it starts from what is readable.

mod common;
use common::binary::{BrokerProcess, TempDir};
use common::*;
use coremq::codec::QoS;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// CRC-32C (Castagnoli, reflected 0x82F63B78), bit by bit.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_known_value() {
    // The check value of CRC-32C.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

/// What is under `dir`, for failure messages.
fn listing(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push_str(&format!("  {} ({len} bytes)\n", p.display()));
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// DIR/gen-<G> of the generation DIR/CURRENT names (its `generation G` line).
fn generation_dir(dir: &Path) -> PathBuf {
    let current = std::fs::read_to_string(dir.join("CURRENT"))
        .unwrap_or_else(|e| panic!("DIR/CURRENT readable ({e}); DIR:\n{}", listing(dir)));
    let g: u64 = current
        .lines()
        .find_map(|l| l.strip_prefix("generation "))
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("DIR/CURRENT names a generation: {current:?}"));
    let p = dir.join(format!("gen-{g}"));
    assert!(p.is_dir(), "{} exists; DIR:\n{}", p.display(), listing(dir));
    p
}

/// The segment files of `shard`, oldest first (by their 20-digit sequence).
fn segments(dir: &Path, shard: usize) -> Vec<PathBuf> {
    let sd = generation_dir(dir).join(format!("shard-{shard}"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(&sd)
        .unwrap_or_else(|e| panic!("{} ({e}); DIR:\n{}", sd.display(), listing(dir)))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// The (start, end) byte ranges of the valid records at the front of a
/// segment, up to the first record that is cut short, fails its checksum,
/// or is all zeroes (preallocated space).
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if len == 0 && crc == 0 {
            break;
        }
        let end = at + 8 + len;
        if end > bytes.len() || crc32c(&bytes[at + 8..end]) != crc {
            break;
        }
        out.push((at, end));
        at = end;
    }
    out
}

/// The last segment of `shard` that holds a record, its bytes and records.
fn last_segment(dir: &Path, shard: usize) -> (PathBuf, Vec<u8>, Vec<(usize, usize)>) {
    for seg in segments(dir, shard).into_iter().rev() {
        let bytes = std::fs::read(&seg).expect("read segment");
        let recs = records(&bytes);
        if !recs.is_empty() {
            return (seg, bytes, recs);
        }
    }
    panic!(
        "no segment of shard {shard} holds a valid record (length | crc32c | payload); DIR:\n{}",
        listing(dir)
    );
}

/// A persistent subscriber on `filter`, offline.
fn offline_sub(b: &BrokerProcess, id: &str, filter: &str) {
    let (mut c, _) = Client::connect(b.addr(), id, false);
    assert_eq!(
        c.subscribe(filter, QoS::AtLeastOnce),
        coremq::codec::SubAckCode::Granted(QoS::AtLeastOnce)
    );
    c.disconnect_wait();
}

/// Reconnect `id` (clean_session=0, session must be present) and take
/// everything queued, acknowledging it: payload -> times received.
fn drain_session(b: &BrokerProcess, id: &str, expect: usize) -> BTreeMap<String, usize> {
    let (mut c, present) = Client::connect(b.addr(), id, false);
    assert!(present, "{id}: session present; log:\n{}", b.log());
    let mut got = BTreeMap::new();
    let mut n = 0;
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < end {
        let wait = if n >= expect {
            Duration::from_millis(400)
        } else {
            end.saturating_duration_since(std::time::Instant::now())
        };
        match c.recv_within(wait) {
            Some(coremq::codec::Packet::Publish(p)) => {
                c.ack(&p);
                *got.entry(text(&p)).or_insert(0) += 1;
                n += 1;
            }
            Some(_) => {}
            None => break,
        }
    }
    c.disconnect_wait();
    got
}

#[derive(Debug, Clone, Copy)]
enum Tear {
    /// The last record cut 3 bytes short of its end.
    Truncate,
    /// A whole record appended whose checksum does not match.
    BadCrc,
    /// 3 bytes of a record header appended.
    PartialHeader,
    /// A header saying 100 bytes appended, followed by 10.
    PartialPayload,
}

// A crash mid-write leaves the last record of the last segment torn: the
// broker starts, warns that it dropped it, and keeps every earlier message
// of the persistent session [MQTT-3.1.2-4], [MQTT-3.1.2-5]. What it writes
// next follows the good records: after another SIGKILL it starts without
// complaint and has lost nothing it acknowledged since.
#[test]
fn torn_tail_is_dropped_with_a_warning() {
    const KEEP: usize = 10;
    for tear in [
        Tear::Truncate,
        Tear::BadCrc,
        Tear::PartialHeader,
        Tear::PartialPayload,
    ] {
        let dir = TempDir::new("coremq-damage-tail");
        let b = BrokerProcess::start_in(&dir.path, 1, None);
        offline_sub(&b, "tt-sub", "tt/#");
        let (mut p, _) = Client::connect(b.addr(), "tt-pub", true);
        for i in 0..KEEP {
            p.publish(
                "tt/x",
                format!("keep-{i}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            );
        }
        // The last thing logged: the one record a cut may take.
        p.publish("tt/x", b"tail", QoS::AtLeastOnce, false);
        b.kill9();
        drop(p);

        let (seg, bytes, recs) = last_segment(&dir.path, 0);
        if segments(&dir.path, 0).last() != Some(&seg) {
            eprintln!(
                "{tear:?}: tearing {}, followed by segments without records; DIR:\n{}",
                seg.display(),
                listing(&dir.path)
            );
        }
        let valid_end = recs.last().unwrap().1;
        let (last_start, _) = *recs.last().unwrap();
        let mut data = bytes[..valid_end].to_vec();
        match tear {
            Tear::Truncate => data.truncate(valid_end - 3),
            Tear::BadCrc => {
                let payload = [0xA5u8; 32];
                data.extend_from_slice(&32u32.to_le_bytes());
                data.extend_from_slice(&(crc32c(&payload) ^ 0x1).to_le_bytes());
                data.extend_from_slice(&payload);
            }
            Tear::PartialHeader => data.extend_from_slice(&[0x10, 0x00, 0x00]),
            Tear::PartialPayload => {
                let payload = [0x5Au8; 100];
                data.extend_from_slice(&100u32.to_le_bytes());
                data.extend_from_slice(&crc32c(&payload).to_le_bytes());
                data.extend_from_slice(&payload[..10]);
            }
        }
        assert!(matches!(tear, Tear::Truncate) || data.len() > valid_end);
        assert!(!matches!(tear, Tear::Truncate) || data.len() > last_start);
        std::fs::write(&seg, &data).expect("rewrite segment");

        let b = BrokerProcess::start_in(&dir.path, 1, None);
        assert!(
            b.wait_log(WAIT, |l| l
                .lines()
                .any(|l| l.contains("storage") && l.contains("dropped"))),
            "{tear:?}: a warning naming storage and 'dropped'; log:\n{}",
            b.log()
        );
        // Written after the recovered tail.
        let (mut p, _) = Client::connect(b.addr(), "tt-pub", true);
        p.publish("tt/x", b"after", QoS::AtLeastOnce, false);
        b.kill9();
        drop(p);

        let b = BrokerProcess::start_in(&dir.path, 1, None);
        let got = drain_session(&b, "tt-sub", KEEP + 1);
        for i in 0..KEEP {
            assert_eq!(
                got.get(&format!("keep-{i}")),
                Some(&1),
                "{tear:?}: keep-{i} (before the torn record) delivered once: {got:?}\nlog:\n{}",
                b.log()
            );
        }
        assert_eq!(
            got.get("after"),
            Some(&1),
            "{tear:?}: the message acknowledged after recovery survives the next SIGKILL: {got:?}"
        );
        let tail = got.get("tail").copied().unwrap_or(0);
        if !matches!(tear, Tear::Truncate) {
            // Only garbage after the last good record was dropped.
            assert_eq!(tail, 1, "{tear:?}: the last good record kept: {got:?}");
        }
        assert!(tail <= 1, "{tear:?}: tail at most once: {got:?}");
        assert_eq!(
            got.len(),
            KEEP + 1 + usize::from(tail == 1),
            "{tear:?}: nothing else: {got:?}"
        );
        eprintln!(
            "{tear:?}: tail {}",
            if tail == 1 { "kept" } else { "dropped" }
        );
        b.stop();
    }
}

// A bad record in a segment that is not a shard's last is not a torn write:
// the broker exits 1 and tells the operator about `--recover`; with it, the
// broker starts from what is readable and serves.
#[test]
fn corrupt_middle_segment_needs_recover() {
    const TOML: &str = "[storage]\nsegment_bytes = 4096\n";
    const N: usize = 60;
    let dir = TempDir::new("coremq-damage-middle");
    let b = BrokerProcess::start_in(&dir.path, 1, Some(TOML));
    offline_sub(&b, "cm-sub", "cm/#");
    let (mut p, _) = Client::connect(b.addr(), "cm-pub", true);
    let pad = "x".repeat(200);
    for i in 0..N {
        p.publish(
            "cm/x",
            format!("m-{i}-{pad}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
    }
    b.kill9();
    drop(p);

    let segs = segments(&dir.path, 0);
    assert!(
        segs.len() >= 2,
        "segment_bytes = 4096 and ~{} KiB logged: several segments; DIR:\n{}",
        N * 220 / 1024,
        listing(&dir.path)
    );
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    let recs = records(&bytes);
    assert!(
        !recs.is_empty(),
        "{} holds valid records; DIR:\n{}",
        first.display(),
        listing(&dir.path)
    );
    // A payload byte in the middle of a middle record: its checksum fails.
    let (start, end) = recs[recs.len() / 2];
    assert!(end > start + 8, "a record with a payload");
    let at = start + 8 + (end - start - 8) / 2;
    bytes[at] ^= 0xFF;
    std::fs::write(first, &bytes).unwrap();

    let (code, log) = BrokerProcess::run_expect_exit(&dir.path, 1, &[], Some(TOML));
    assert_eq!(
        code,
        Some(1),
        "a corrupt record before the last segment: exit 1; output:\n{log}"
    );
    assert!(
        log.contains("--recover"),
        "the error names --recover:\n{log}"
    );

    let b = BrokerProcess::start_in_with(&dir.path, 1, Some(TOML), &["--recover"]);
    let (mut c, _) = Client::connect(b.addr(), "cm-probe", true);
    c.subscribe("probe/#", QoS::AtLeastOnce);
    c.publish("probe/x", b"ok", QoS::AtLeastOnce, false);
    let got = c
        .recv_publish()
        .expect("a broker started with --recover serves");
    assert_eq!(text(&got), "ok");
    c.ack(&got);
    c.disconnect_wait();
    // What of the session survived depends on where the damage was; report it.
    let (mut s, present) = Client::connect(b.addr(), "cm-sub", false);
    let mut n = 0;
    while let Some(p) = s.recv_within(Duration::from_millis(500)) {
        if let coremq::codec::Packet::Publish(p) = p {
            s.ack(&p);
            n += 1;
        }
    }
    eprintln!("--recover: cm-sub present={present}, {n} of {N} messages back");
    s.disconnect_wait();
    b.stop();

    // Not asserted (the interface leaves it open): whether a start without
    // --recover works after a --recover start.
    match BrokerProcess::try_start_in(&dir.path, 1, Some(TOML), &[]) {
        Ok(b) => {
            eprintln!("start without --recover after a --recover start: runs");
            b.stop();
        }
        Err((code, log)) => {
            eprintln!("start without --recover after a --recover start: exits {code:?}:\n{log}")
        }
    }
}
