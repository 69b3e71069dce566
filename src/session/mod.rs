//! Per-client session state.
pub mod mqueue;
