//! Fuzz target `decode`: arbitrary bytes at each protocol version and side
//! (the first byte chooses), every decoded packet re-encoded and decoded
//! again. The check itself is `fuzz/check.rs`, shared with the stable pass
//! in `tests/fuzz_decode.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
