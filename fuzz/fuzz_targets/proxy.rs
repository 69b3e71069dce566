//! Fuzz target `proxy`: arbitrary bytes as the start of a connection on a
//! `proxy_protocol` listener. The check is `fuzz/check_proxy.rs`, shared with
//! the stable pass in `tests/fuzz_decode.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check_proxy.rs"]
mod check_proxy;

fuzz_target!(|data: &[u8]| check_proxy::check(data));
