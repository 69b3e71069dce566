//! MQTT 5 enhanced authentication (§4.12): the exchange after a CONNECT with
//! an Authentication Method, and re-authentication of a live connection.
//!
//! Called by the CONNECT handler (`connect.rs`, once the CONNECT passed its
//! checks) and by the packet dispatch (`mod.rs`: every packet of a
//! connection in [`Phase::Authenticating`](crate::shard::Phase), and AUTH
//! from a connected client). Owns no state: the held CONNECT is the
//! connection's phase, the exchange in progress is kept by the connections
//! part, the method a connection authenticated with is on its `ConnV5`, and
//! the authenticators are the embedder's ([`crate::auth`]).
//!
//! * CONNECT with a method: the first authenticator offering it starts an
//!   exchange (none: CONNACK 0x8C [MQTT-4.12.0-1]) and steps it with the
//!   CONNECT's data. Continue → AUTH 0x18 with the method and data
//!   [MQTT-4.12.0-2], answered by the client's AUTH 0x18 [MQTT-4.12.0-3];
//!   Success → the CONNECT is accepted as any other, its CONNACK carrying
//!   the method and the final data [MQTT-4.12.0-5]; Fail → CONNACK with the
//!   reason, closed [MQTT-4.12.0-4]. Anything but AUTH 0x18 with the same
//!   method, or DISCONNECT, meanwhile is a protocol error: CONNACK 0x82 (no
//!   DISCONNECT may precede a CONNACK [MQTT-3.14.0-1]).
//! * Re-authentication: AUTH 0x19 with the CONNECT's method [MQTT-4.12.1-1]
//!   runs the same exchange while other packets keep flowing; Success →
//!   AUTH 0x00; Fail → DISCONNECT with the reason [MQTT-4.12.1-2]. AUTH from
//!   a client that connected without a method [MQTT-4.12.0-7], with another
//!   method, or out of turn is a protocol error (DISCONNECT 0x82).

use crate::auth::{AuthExchange, AuthRequest, AuthStep};
use crate::codec::{Auth, Connect, Packet, Properties, Reason};
use crate::shard::{CloseReason, ConnKey, Phase, Shard};
use bytes::Bytes;

/// Whether a CONNECT asks for enhanced authentication.
pub(super) fn has_method(connect: &Connect) -> bool {
    method_of(connect.props.as_deref()).is_some()
}

fn method_of(props: Option<&Properties>) -> Option<&str> {
    props?.authentication_method.as_deref()
}

/// The CONNACK properties of an accepted CONNECT, with its Authentication
/// Method (and the final data) when it had one [MQTT-4.12.0-5]; none
/// without [MQTT-4.12.0-6].
pub(super) fn with_method(
    mut props: Box<Properties>,
    connect: &Connect,
    data: Option<Bytes>,
) -> Box<Properties> {
    if let Some(m) = method_of(connect.props.as_deref()) {
        props.authentication_method = Some(m.to_owned());
        props.authentication_data = data;
    }
    props
}

/// An AUTH packet with the method and (if any) data.
fn auth_packet(reason: Reason, method: &str, data: Option<Bytes>) -> Packet {
    Packet::Auth(Auth {
        reason,
        props: Some(Box::new(Properties {
            authentication_method: Some(method.to_owned()),
            authentication_data: data,
            ..Properties::default()
        })),
    })
}

/// A refusal's reason: the authenticator's, if it is an error code the
/// packet (CONNACK or DISCONNECT) may carry; else 0x87 Not authorized
/// (DISCONNECT has no 0x86 or 0x8C).
fn refusal(r: Reason, fits: fn(Reason) -> bool) -> Reason {
    if r.is_error() && fits(r) {
        r
    } else {
        Reason::NOT_AUTHORIZED
    }
}

impl Shard {
    /// A CONNECT with an Authentication Method that passed the checks.
    pub(super) fn start_connect_auth(
        &mut self,
        conn: ConnKey,
        connect: Connect,
    ) -> Result<(), CloseReason> {
        let props = connect.props.as_deref();
        let method = method_of(props).unwrap_or_default().to_owned();
        let data = props.and_then(|p| p.authentication_data.clone());
        let req = AuthRequest {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            peer: self.conns.get(conn).map(|c| c.peer().into()),
            reauth: false,
        };
        let Some(mut exchange) = self.hooks.start_auth(&req, &method) else {
            log::info!(
                "{}: authentication method {method:?} not offered",
                self.who(conn)
            );
            self.metrics.auth_failures += 1;
            return self.refuse(
                conn,
                Reason::BAD_AUTHENTICATION_METHOD,
                "authentication method not supported",
            );
        };
        let step = exchange.step(data.as_deref());
        self.conns.authenticating(conn, Box::new(connect));
        self.conns.set_exchange(conn, exchange);
        self.connect_auth_step(conn, &method, step)
    }

    /// A packet while the CONNECT's exchange runs.
    pub(super) fn on_authenticating(
        &mut self,
        conn: ConnKey,
        packet: Packet,
    ) -> Result<(), CloseReason> {
        let method = match self.conns.get(conn).map(|c| c.phase()) {
            Some(Phase::Authenticating(c)) => method_of(c.props.as_deref()).map(str::to_owned),
            _ => None,
        };
        let method = method.unwrap_or_default();
        let method = method.as_str();
        let auth = match packet {
            Packet::Auth(a) if a.reason == Reason::CONTINUE_AUTHENTICATION => a,
            // The client gives up [§4.12]: no CONNACK.
            Packet::Disconnect(_) => return Err(CloseReason::Normal),
            other => {
                log::info!(
                    "{}: {other:?} while authenticating, closing",
                    self.who(conn)
                );
                return self.auth_protocol_error(conn);
            }
        };
        let props = auth.props.as_deref();
        if method_of(props) != Some(method) {
            log::info!("{}: AUTH with another method, closing", self.who(conn));
            return self.auth_protocol_error(conn);
        }
        let data = props.and_then(|p| p.authentication_data.as_deref());
        let Some(step) = self.conns.exchange_mut(conn).map(|e| e.step(data)) else {
            return self.auth_protocol_error(conn);
        };
        self.connect_auth_step(conn, method, step)
    }

    /// Act on a step of the CONNECT's exchange.
    fn connect_auth_step(
        &mut self,
        conn: ConnKey,
        method: &str,
        step: AuthStep,
    ) -> Result<(), CloseReason> {
        match self.after_step(conn, method, step, "authentication") {
            None => Ok(()),
            Some(Ok(data)) => match self.conns.authenticated(conn) {
                Some(connect) => self.accept_connect(conn, *connect, data),
                None => Err(CloseReason::ProtocolError),
            },
            Some(Err(reason)) => {
                let code = refusal(reason, Reason::fits_connack);
                self.refuse(conn, code, "authentication failed")
            }
        }
    }

    /// Send AUTH 0x18 for a Continue (None), or end the exchange and count
    /// how it ended: the final data, or the refusal.
    fn after_step(
        &mut self,
        conn: ConnKey,
        method: &str,
        step: AuthStep,
        what: &str,
    ) -> Option<Result<Option<Bytes>, Reason>> {
        let end = match step {
            AuthStep::Continue(data) => {
                let auth = auth_packet(Reason::CONTINUE_AUTHENTICATION, method, Some(data));
                self.send_packet(conn, &auth);
                return None;
            }
            AuthStep::Success(data) => {
                self.metrics.auth_successes += 1;
                Ok(data)
            }
            AuthStep::Fail(reason) => {
                self.metrics.auth_failures += 1;
                log::info!("{}: {what} ({method}) refused: {reason:?}", self.who(conn));
                Err(reason)
            }
        };
        self.conns.end_exchange(conn);
        Some(end)
    }

    /// A protocol error before CONNACK: CONNACK 0x82, closed.
    fn auth_protocol_error(&mut self, conn: ConnKey) -> Result<(), CloseReason> {
        self.metrics.protocol_errors += 1;
        self.conns.end_exchange(conn);
        self.refuse(
            conn,
            Reason::PROTOCOL_ERROR,
            "protocol error while authenticating",
        )
    }

    /// AUTH from a connected client: re-authentication.
    pub(super) fn on_auth(&mut self, conn: ConnKey, auth: Auth) -> Result<(), CloseReason> {
        let theirs = method_of(auth.props.as_deref());
        let ours = self
            .conns
            .get(conn)
            .and_then(|c| c.v5())
            .and_then(|v| v.auth_method.clone());
        let Some(method) = ours.filter(|m| Some(m.as_str()) == theirs) else {
            log::info!(
                "{}: AUTH without or with another authentication method than CONNECT's, \
                 closing [MQTT-4.12.0-7] [MQTT-4.12.1-1]",
                self.who(conn)
            );
            self.metrics.protocol_errors += 1;
            return Err(CloseReason::ProtocolError);
        };
        let data = auth
            .props
            .as_deref()
            .and_then(|p| p.authentication_data.as_deref());
        let running = self.conns.exchange_mut(conn).is_some();
        let step = match (auth.reason, running) {
            (Reason::REAUTHENTICATE, false) => self.start_reauth(conn, &method, data),
            (Reason::CONTINUE_AUTHENTICATION, true) => {
                self.conns.exchange_mut(conn).map(|e| e.step(data))
            }
            _ => None,
        };
        let Some(step) = step else {
            log::info!(
                "{}: AUTH {:?} out of turn, closing",
                self.who(conn),
                auth.reason
            );
            self.metrics.protocol_errors += 1;
            return Err(CloseReason::ProtocolError);
        };
        self.reauth_step(conn, &method, step)
    }

    /// Start a re-authentication exchange and take its first step (None:
    /// no authenticator offers the method any more).
    fn start_reauth(
        &mut self,
        conn: ConnKey,
        method: &str,
        data: Option<&[u8]>,
    ) -> Option<AuthStep> {
        let info = self.conns.get(conn).and_then(|c| c.info()).cloned()?;
        let req = AuthRequest {
            client_id: &info.client_id,
            username: info.username.as_deref(),
            peer: info.peer.map(Into::into),
            reauth: true,
        };
        let mut exchange: Box<dyn AuthExchange> = match self.hooks.start_auth(&req, method) {
            Some(e) => e,
            None => return Some(AuthStep::Fail(Reason::BAD_AUTHENTICATION_METHOD)),
        };
        let step = exchange.step(data);
        self.conns.set_exchange(conn, exchange);
        Some(step)
    }

    /// Act on a step of a re-authentication.
    fn reauth_step(
        &mut self,
        conn: ConnKey,
        method: &str,
        step: AuthStep,
    ) -> Result<(), CloseReason> {
        match self.after_step(conn, method, step, "re-authentication") {
            None => Ok(()),
            Some(Ok(data)) => {
                self.send_packet(conn, &auth_packet(Reason::SUCCESS, method, data));
                Ok(())
            }
            Some(Err(reason)) => Err(CloseReason::AuthFailed(refusal(
                reason,
                Reason::fits_disconnect,
            ))),
        }
    }
}
