//! A full disk: the storage directory on a small loop-mounted ext4
//! filesystem that a filler file fills up. The broker logs the condition
//! ("storage" and "full" or "No space"), keeps serving what needs no disk
//! (clean sessions, QoS 0), refuses new persistent sessions with CONNACK
//! return code 3, server unavailable (3.1.1 §3.2.2.3), and accepts them
//! again once space is back.
//!
//! Needs root (mount). Run as another user it says it was skipped; run as
//! root, a mount that fails is a failure, with the reason.

mod common;
use common::binary::{run_bounded, BrokerProcess};
use common::*;
use coremq::codec::{Packet, QoS, Reason};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// An ext4 image loop-mounted on a fresh directory; unmounted and removed
/// when dropped (also when the test fails).
struct LoopMount {
    image: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

impl LoopMount {
    fn new(mib: u64) -> LoopMount {
        let base = std::env::temp_dir().join(format!("coremq-full-{}", std::process::id()));
        let mut m = LoopMount {
            image: base.with_extension("img"),
            mnt: base.join("mnt"),
            mounted: false,
        };
        std::fs::create_dir_all(&m.mnt).expect("create mount point");
        let f = std::fs::File::create(&m.image).expect("create image");
        f.set_len(mib << 20).expect("size image");
        drop(f);
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]).arg(&m.image);
        let (code, out, err) = run_bounded(mkfs, Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "mkfs.ext4 on {} failed (is e2fsprogs installed?):\n{out}{err}",
            m.image.display()
        );
        let mut mount = Command::new("mount");
        mount.args(["-o", "loop"]).arg(&m.image).arg(&m.mnt);
        let (code, out, err) = run_bounded(mount, Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "running as root but `mount -o loop {} {}` failed; this test needs loop \
             devices and mount (a container needs CAP_SYS_ADMIN and /dev/loop*):\n{out}{err}",
            m.image.display(),
            m.mnt.display()
        );
        m.mounted = true;
        m
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted {
            let mut u = Command::new("umount");
            u.arg(&self.mnt);
            let (code, _, _) = run_bounded(u, Duration::from_secs(20));
            if code != Some(0) {
                let mut u = Command::new("umount");
                u.arg("-l").arg(&self.mnt);
                let _ = run_bounded(u, Duration::from_secs(20));
            }
        }
        let _ = std::fs::remove_dir(&self.mnt);
        if let Some(parent) = self.mnt.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Write `path` until the filesystem has no block left; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let mut total = 0u64;
    for chunk in [1 << 16, 1 << 12, 1 << 10, 1] {
        let buf = vec![0xEEu8; chunk];
        while f.write_all(&buf).is_ok() {
            total += chunk as u64;
        }
    }
    let _ = f.sync_all();
    total
}

fn full_logged(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("storage") && (l.contains("full") || l.contains("No space")))
}

#[test]
fn full_disk_refuses_persistence_and_recovers() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("storage_full: skipped (needs root to loop-mount an ext4 filesystem)");
        return;
    }
    let fs = LoopMount::new(8);
    let dir = fs.mnt.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // Started before the disk is full: creating DIR/LOCK, CURRENT and the
    // first segments needs a little space.
    let b = BrokerProcess::start_in(&dir, 1, Some("[storage]\nsegment_bytes = 4096\n"));
    let (mut sub, _) = Client::connect(b.addr(), "full-sub", false);
    sub.subscribe("full/#", QoS::AtLeastOnce);
    sub.disconnect_wait();
    // An operator watching the broker's alarms (the seeds' $SYS alarm topics).
    let (mut alarms, _) = Client::connect(b.addr(), "full-alarms", true);
    alarms.subscribe("$SYS/brokers/+/alarms/#", QoS::AtMostOnce);

    let filler = fs.mnt.join("filler");
    let filled = fill(&filler);
    eprintln!("storage_full: filler {filled} bytes");

    // Persistent QoS 1 traffic until the broker meets the full disk.
    let payload = vec![b'p'; 1024];
    let end = Instant::now() + Duration::from_secs(30);
    let mut pubc: Option<Client> = None;
    let (mut sent, mut acked) = (0u32, 0u32);
    while !full_logged(&b.log()) {
        assert!(
            Instant::now() < end,
            "no 'storage ... full' / 'No space' error within 30 s ({sent} sent, {acked} \
             acknowledged); log:\n{}",
            b.log()
        );
        let c = pubc.get_or_insert_with(|| Client::connect(b.addr(), "full-pub", true).0);
        let pkid = (sent % 60_000) as u16 + 1;
        c.send(&Packet::Publish(publish_packet(
            "full/x",
            &payload,
            QoS::AtLeastOnce,
            pkid,
            false,
            false,
        )));
        sent += 1;
        match c.recv_within(Duration::from_secs(2)) {
            Some(Packet::PubAck(a)) if a.pkid == pkid => acked += 1,
            Some(_) => {}
            // Closed (or no answer): a new connection for the next one.
            None => pubc = None,
        }
    }
    eprintln!("storage_full: full after {sent} sent, {acked} acknowledged");
    drop(pubc);
    let alert = alarms
        .recv_publish()
        .unwrap_or_else(|| panic!("a storage_full alarm raised; log:\n{}", b.log()));
    assert!(alert.topic.ends_with("/alarms/alert"), "{}", alert.topic);
    let json: serde_json::Value = serde_json::from_slice(&alert.payload).expect("alarm JSON");
    assert_eq!(json["title"], "storage_full", "{json}");

    // A clean session needs no disk: it connects, subscribes and gets QoS 0
    // messages [MQTT-3.1.2-6].
    let (mut clean, present) = Client::connect(b.addr(), "full-clean", true);
    assert!(!present);
    clean.subscribe("free/#", QoS::AtMostOnce);
    clean.publish("free/x", b"still-serving", QoS::AtMostOnce, false);
    let p = clean
        .recv_publish()
        .unwrap_or_else(|| panic!("QoS 0 served on a full disk; log:\n{}", b.log()));
    assert_eq!(text(&p), "still-serving");

    // A new persistent session cannot be kept: CONNACK 3, server
    // unavailable, with session present 0 [MQTT-3.2.2-4], and the server
    // closes the connection [MQTT-3.2.2-5].
    let (mut c, ack) = Client::connect_with(b.addr(), connect_packet("full-new", false));
    assert_eq!(
        ack.code,
        Reason::SERVER_UNAVAILABLE,
        "persistent CONNECT on a full disk: return code 3; log:\n{}",
        b.log()
    );
    assert!(!ack.session_present, "[MQTT-3.2.2-4]");
    assert!(
        c.closed(),
        "the connection closes after a refusing CONNACK [MQTT-3.2.2-5]"
    );
    clean.ping();

    // Space back: within 10 s a persistent session is accepted again.
    std::fs::remove_file(&filler).expect("remove filler");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, ack) = Client::connect_with(b.addr(), connect_packet("full-new", false));
        if ack.code == Reason::SUCCESS {
            c.disconnect_wait();
            break;
        }
        assert!(
            Instant::now() < end,
            "no persistent session accepted within 10 s of freeing space (last CONNACK \
             {ack:?}); log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let clear = alarms
        .recv_publish()
        .unwrap_or_else(|| panic!("the storage_full alarm cleared; log:\n{}", b.log()));
    assert!(clear.topic.ends_with("/alarms/clear"), "{}", clear.topic);
    // And persistence works again: a QoS 1 message for full-sub is acknowledged.
    let (mut p, _) = Client::connect(b.addr(), "full-pub", true);
    p.publish("full/x", b"after-space", QoS::AtLeastOnce, false);
    p.disconnect();
    // Nothing acknowledged was lost on the way: full-sub gets every message
    // whose PUBACK came, and the one after the space came back.
    let (mut sub, present) = Client::connect(b.addr(), "full-sub", false);
    assert!(present, "[MQTT-3.2.2-2]");
    let mut got = Vec::new();
    while let Some(Packet::Publish(p)) = sub.recv_within(Duration::from_secs(2)) {
        sub.ack(&p);
        got.push(p);
    }
    assert!(
        got.len() as u32 > acked && got.last().is_some_and(|p| text(p) == "after-space"),
        "{} delivered for {acked} acknowledged before the disk filled, then after-space",
        got.len()
    );
    sub.disconnect();
    alarms.disconnect();
    clean.disconnect();
    b.stop();
    drop(fs);
}
