//! The check run on one fuzz input of the PROXY protocol parser, by the
//! cargo-fuzz target (`fuzz/fuzz_targets/proxy.rs`) and by the stable pass
//! (`tests/fuzz_decode.rs`, seeds in `fuzz/corpus/proxy/`).
//!
//! Nothing may panic; a header found is no longer than the input or
//! `MAX_HEADER`, is found again in exactly its own bytes, and any shorter
//! prefix of it asks for more bytes.

use coremq::proxy::{parse, MAX_HEADER};

pub fn check(data: &[u8]) {
    let Ok(Some(h)) = parse(data) else {
        return;
    };
    assert!(h.len <= data.len() && h.len <= MAX_HEADER, "{h:?}");
    assert_eq!(parse(&data[..h.len]), Ok(Some(h)));
    for cut in [h.len - 1, h.len / 2] {
        assert_eq!(parse(&data[..cut]), Ok(None), "prefix of {cut} bytes");
    }
}
