//! Fuzz target `http`: arbitrary bytes as a management request target and
//! an HTTP publish body. The check is `fuzz/check_http.rs`, shared with the
//! stable pass in `tests/fuzz_decode.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check_http.rs"]
mod check_http;

fuzz_target!(|data: &[u8]| check_http::check(data));
