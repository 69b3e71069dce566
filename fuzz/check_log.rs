//! The check run on one fuzz input of the storage log reader
//! (`coremq::storage_tool::replay_bytes`: framing, CRC32C, record fields,
//! the replay into a shard), by the cargo-fuzz target
//! (`fuzz/fuzz_targets/log.rs`) and by the stable pass
//! (`tests/fuzz_decode.rs`, seeds in `fuzz/corpus/log/`: segments a broker
//! wrote).
//!
//! A log file is input from outside the process (a disk, an operator's
//! copy): nothing in it may panic the reader, the good records end inside
//! the input, and reading only those good records again ends cleanly
//! with the same count.

pub fn check(data: &[u8]) {
    let (records, damage) = coremq::storage_tool::replay_bytes(data);
    if let Some(at) = damage {
        assert!(
            at <= data.len(),
            "damage at {at} past the end {}",
            data.len()
        );
        let (again, end) = coremq::storage_tool::replay_bytes(&data[..at]);
        assert_eq!(end, None, "the good prefix ends cleanly");
        assert_eq!(again, records, "the good prefix holds the same records");
    }
}
