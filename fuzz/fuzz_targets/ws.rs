//! Fuzz target `ws`: arbitrary bytes as what a WebSocket client sends after
//! the upgrade, decoded whole and read by read. The check is
//! `fuzz/check_ws.rs`, shared with the stable pass in `tests/fuzz_decode.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check_ws.rs"]
mod check_ws;

fuzz_target!(|data: &[u8]| check_ws::check(data));
