//! coremq: a thread-per-core, shared-nothing MQTT broker on io_uring (glommio).
pub mod codec;
pub mod router;
pub mod session;
pub mod shard;
