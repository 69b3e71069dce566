//! Authentication: who a CONNECT says it is, and whether to believe it.
//!
//! Two families. **Logins** (a user name and password, a client id, a
//! certificate identity) are decided by [`login`] in a fixed order: the
//! TLS certificate identity, `auth.client_ids`, the password file
//! ([`passwd`], verified off the reactor, remembered in [`cache`]), JWT
//! ([`jwt`]), then the embedder's asynchronous authenticate hook
//! ([`crate::hooks::Hooks::set_authenticate`]); [`check`] holds a CONNECT
//! while a slow check runs. **MQTT 5 enhanced authentication** (below) is
//! a CONNECT with an Authentication Method.
//!
//! MQTT 5 enhanced authentication (§4.12): the interface an embedding
//! program implements, and the one method the broker ships (SCRAM-SHA-256,
//! [`scram`]).
//!
//! Owns no broker state. An embedder registers an [`Authenticator`] with
//! [`Hooks::add_authenticator`](crate::hooks::Hooks::add_authenticator)
//! before the broker starts; every shard shares it read-only. When a CONNECT
//! carries an Authentication Method (or a live connection sends AUTH 0x19,
//! re-authentication), the CONNECT handler (`protocol/auth.rs`) asks each
//! authenticator in turn to [`start`](Authenticator::start) an exchange of
//! that method; the first that does owns the exchange. The connections part
//! keeps the [`AuthExchange`] until it ends, and feeds it the Authentication
//! Data of each AUTH from the client ([`AuthExchange::step`]).
//!
//! Everything here is synchronous and runs on the client's home shard: a
//! step must be quick and must not block (SCRAM's PBKDF2 is done once per
//! user when the table is filled, not per exchange). An authenticator that
//! needs I/O (a database, an HTTP backend) cannot be written on this
//! interface; a login check can ([`crate::hooks::Hooks::set_authenticate`]).

pub mod cache;
pub mod check;
pub mod jwt;
pub mod login;
pub mod passwd;
pub mod scram;

pub use login::{AuthDecision, LoginRequest, Refusal};

use crate::codec::Reason;
use bytes::Bytes;
use std::net::SocketAddr;

/// What one step of an exchange decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated; the data (if any) goes to the client with CONNACK 0x00
    /// (or AUTH 0x00 after a re-authentication).
    Success(Option<Bytes>),
    /// More is needed: the data goes to the client in AUTH 0x18, whose
    /// answer is the next step.
    Continue(Bytes),
    /// Refused with this reason (0x86 Bad user name or password, 0x87 Not
    /// authorized, ...): CONNACK with it, or DISCONNECT with it on a live
    /// connection. A reason that is no error, or that the packet may not
    /// carry (DISCONNECT has no 0x86), is sent as 0x87.
    Fail(Reason),
}

/// Who is authenticating.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The CONNECT's client id (empty when the broker will assign one).
    pub client_id: &'a str,
    /// The CONNECT's user name, if any.
    pub username: Option<&'a str>,
    pub peer: Option<SocketAddr>,
    /// A re-authentication of a live connection (AUTH 0x19), not a CONNECT.
    pub reauth: bool,
}

/// An authentication method, or several. Shared by every shard.
pub trait Authenticator: Send + Sync {
    /// Begin an exchange of `method` for `client`, or `None` when this
    /// authenticator does not offer `method`. Its first step is then given
    /// the Authentication Data of the CONNECT (or of the AUTH 0x19).
    fn start(&self, client: &AuthRequest<'_>, method: &str) -> Option<Box<dyn AuthExchange>>;
}

/// One exchange in progress: the state a method keeps between steps.
pub trait AuthExchange {
    /// The client sent `data` (its Authentication Data, if any).
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;
}
