//! Handler tests without sockets: each drives a shard through the harness
//! (`crate::shard::harness`) and asserts the effects — packets written, mesh
//! messages queued, timers armed, session events emitted. One file per
//! packet family; each test names the spec statement it checks.

mod anonymous;
mod auth;
mod connect;
mod connect5;
mod fuzz;
mod limits;
mod publish5;
mod qos;
mod retained;
mod routing;
mod shared;
mod strict;
mod subscribe5;
mod will;
