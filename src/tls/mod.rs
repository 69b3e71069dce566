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
//! - [`TlsSession`]: one connection's rustls state on the unbuffered API;
//!   the buffers it works in are the shard thread's, so an idle connection
//!   holds none.
//! - [`TlsStream`]: the socket plus its boxed session. It detaches as the
//!   dup'd fd and the session (with whatever ciphertext or plaintext it
//!   still holds), and [`TlsStream::resume`] rebuilds it on the home shard.
//! - [`identity`]: the CN or SAN of a verified client certificate, which
//!   becomes [`Origin::identity`](crate::transport::Origin).

pub mod config;
mod handshake;
pub mod identity;
mod session;
mod stream;

pub use handshake::handshake;
pub use session::TlsSession;
pub use stream::TlsStream;
