//! Fuzz target `log`: arbitrary bytes as a segment of the storage log,
//! replayed into a shard. The check is `fuzz/check_log.rs`, shared with the
//! stable pass in `tests/fuzz_decode.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check_log.rs"]
mod check_log;

fuzz_target!(|data: &[u8]| check_log::check(data));
