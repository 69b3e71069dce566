//! TLS listeners: the rustls server configuration built from
//! `[listener.tls]`, the handshake, and the TLS stream as a
//! [`Transport`](crate::transport::Transport).
//!
//! - [`config`]: reads the PEM files into a `rustls::ServerConfig` (at start:
//!   a bad file is a start error naming it; on SIGHUP: the broker's reloader
//!   stores a new one into a [`Reloadable`](crate::reload::Reloadable), a bad
//!   file keeps the old one).
//! - [`handshake`](handshake::handshake): run by the accepting shard before
//!   any MQTT byte (the accept path in [`crate::listener`] bounds it by
//!   `mqtt.connect_timeout_s`); counted and logged there.
//! - [`TlsStream`]: the socket plus its boxed rustls connection. It detaches
//!   as the dup'd fd and the connection (with whatever ciphertext or
//!   plaintext rustls already holds), and [`TlsStream::resume`] rebuilds it on
//!   the home shard.
//! - [`identity`]: the CN or SAN of a verified client certificate, which
//!   becomes [`Origin::identity`](crate::transport::Origin).

pub mod config;
mod handshake;
pub mod identity;
mod stream;

pub use handshake::handshake;
pub use stream::TlsStream;
