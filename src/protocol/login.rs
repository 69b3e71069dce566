//! Logins: the CONNECT gate for everything but MQTT 5 enhanced
//! authentication (`auth.rs`).
//!
//! Called by the CONNECT handler (`connect.rs`) once a CONNECT passed its
//! checks. Asks the shard's login methods ([`crate::auth::login`]) and acts
//! on their answer: accept (the session's user name may become the
//! certificate identity or the token's claim), anonymous (the listener's
//! `allow_anonymous` decides: 0x05 / 0x87 when it does not let the
//! address in), refuse, or check. A check parks the CONNECT in
//! [`Phase::Verifying`](crate::shard::Phase) until the connection task
//! (`crate::conn`) brings the job's answer to [`Shard::login_checked`];
//! packets arriving meanwhile are held and handled after CONNACK. A
//! connection closed meanwhile (the connect timeout, the hook's
//! `auth.hook_timeout_ms`, shutdown) drops the answer. Every refusal is
//! counted and logged (rate-limited) with client id, user name and
//! address, never the password.

use crate::auth::check::{Job, Pending};
use crate::auth::login::{Attempt, AuthDecision, LoginRequest, Outcome, Refusal};
use crate::codec::{Connect, Packet, Reason};
use crate::shard::{CloseReason, ConnKey, Shard, TimerItem};

impl Shard {
    /// Decide a CONNECT's login (see the module doc).
    pub(super) fn login(&mut self, conn: ConnKey, mut connect: Connect) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get(conn) else {
            return Err(CloseReason::SocketClosed);
        };
        let (peer, listener) = (c.peer(), c.listener());
        let identity: Option<Box<str>> = c.identity().map(Box::from);
        let attempt = Attempt {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            password: connect.password.as_deref(),
            identity: identity.as_deref(),
        };
        let unix_s = crate::message::wall_clock_us() / 1_000_000;
        let outcome = self.logins.decide(&attempt, self.timers.now_ms(), unix_s);
        let generation = self.logins.generation();
        let job = match outcome {
            Outcome::Accept { method, username } => {
                if method.ends_with("(cached)") {
                    self.metrics.auth_cache_hits += 1;
                }
                if let Some(u) = username {
                    connect.username = Some(u);
                }
                return self.login_accepted(conn, connect, method);
            }
            Outcome::Anonymous => return self.anonymous(conn, connect),
            Outcome::Refuse(r, why) => {
                if r == Refusal::Unavailable {
                    self.metrics.auth_busy_refused += 1;
                }
                return self.login_refused(conn, &connect, r, why);
            }
            Outcome::Check(crate::auth::check::Check::Hash(hash, slot)) => {
                Job::Hash(hash, connect.password.clone().unwrap_or_default(), slot)
            }
            Outcome::Check(crate::auth::check::Check::Hook) => {
                let deadline = self.timers.now_ms() + self.cfg.auth.hook_timeout_ms;
                self.timers.arm(deadline, TimerItem::LoginTimeout(conn));
                Job::Hook(LoginRequest {
                    client_id: connect.client_id.clone(),
                    username: connect.username.clone(),
                    password: connect.password.clone(),
                    peer: peer.into(),
                    listener,
                    identity,
                })
            }
        };
        self.conns.verifying(
            conn,
            Box::new(Pending::new(Box::new(connect), job, generation)),
        );
        Ok(())
    }

    /// The connection task takes the job of a CONNECT held for its check.
    pub fn take_login_job(&mut self, conn: ConnKey) -> Option<Job> {
        self.conns.pending_mut(conn)?.take_job()
    }

    /// A check's answer: accept the held CONNECT and handle the packets
    /// held after it, or refuse it. Nothing happens when the connection is
    /// no longer waiting (closed or timed out meanwhile).
    pub fn login_checked(
        &mut self,
        conn: ConnKey,
        decision: AuthDecision,
    ) -> Result<(), CloseReason> {
        let Some(pending) = self.conns.verified(conn) else {
            return Ok(());
        };
        let (hashed, generation) = (pending.hashes(), pending.generation());
        let (connect, held) = pending.into_parts();
        if let AuthDecision::Refuse(r) = decision {
            let why = if hashed {
                "wrong password"
            } else {
                "refused by the hook"
            };
            return self.login_refused(conn, &connect, r, why);
        }
        if let (true, Some(user), Some(pw)) = (hashed, &connect.username, &connect.password) {
            let now = self.timers.now_ms();
            self.logins.remember(user, pw, now, generation);
        }
        let method = if hashed { "password file" } else { "hook" };
        self.login_accepted(conn, *connect, method)?;
        held.into_iter().try_for_each(|p| self.on_packet(conn, p))
    }

    /// A packet while the CONNECT's check runs: held for after CONNACK.
    pub(super) fn on_verifying(
        &mut self,
        conn: ConnKey,
        packet: Packet,
    ) -> Result<(), CloseReason> {
        if self.conns.pending_mut(conn).is_some_and(|p| p.hold(packet)) {
            return Ok(());
        }
        log::info!(
            "{}: over {} packets before CONNACK, closing",
            self.who(conn),
            crate::auth::check::MAX_HELD
        );
        self.metrics.protocol_errors += 1;
        Err(CloseReason::ProtocolError)
    }

    /// The hook did not answer within `auth.hook_timeout_ms` (the wheel fired).
    pub(crate) fn login_timed_out(&mut self, conn: ConnKey) {
        let Some(pending) = self.conns.verified(conn) else {
            return; // answered, or closed, already
        };
        self.metrics.auth_hook_timeouts += 1;
        let (connect, _) = pending.into_parts();
        if let Err(reason) =
            self.login_refused(conn, &connect, Refusal::Unavailable, "hook timed out")
        {
            self.close_conn(conn, reason);
        }
    }

    fn login_accepted(
        &mut self,
        conn: ConnKey,
        connect: Connect,
        method: &str,
    ) -> Result<(), CloseReason> {
        self.metrics.auth_logins += 1;
        log::debug!(
            "{}: login of {:?} accepted ({method})",
            self.who(conn),
            connect.username
        );
        self.accept_connect(conn, connect, None)
    }

    /// Refuse a login: counted, logged (rate-limited, no password), CONNACK.
    fn login_refused(
        &mut self,
        conn: ConnKey,
        connect: &Connect,
        r: Refusal,
        why: &str,
    ) -> Result<(), CloseReason> {
        self.metrics.auth_login_failures += 1;
        if let Some(held) = self.lines.auth_refused.allow() {
            log::warn!(
                "{}: login refused ({why}): client id {:?}, user name {:?}{held}",
                self.who(conn),
                connect.client_id,
                connect.username
            );
        }
        let (code, text) = match r {
            Refusal::BadCredentials => (
                Reason::BAD_USER_NAME_OR_PASSWORD,
                "bad user name or password",
            ),
            Refusal::NotAuthorized => (Reason::NOT_AUTHORIZED, "not authorized"),
            Refusal::Unavailable => (Reason::SERVER_UNAVAILABLE, "authentication unavailable"),
        };
        self.refuse(conn, code, text)
    }

    /// A client no method vouched for: the listener's `allow_anonymous`
    /// decides by its address; refused ones are logged and counted, 0x05 / 0x87.
    fn anonymous(&mut self, conn: ConnKey, connect: Connect) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get(conn) else {
            return Err(CloseReason::SocketClosed);
        };
        let policy = self
            .cfg
            .listener
            .get(c.listener())
            .map_or(Default::default(), |l| l.allow_anonymous);
        if policy.allows(&c.peer().into()) {
            return self.accept_connect(conn, connect, None);
        }
        self.metrics.auth_anonymous_refused += 1;
        if let Some(held) = self.lines.auth_refused.allow() {
            log::warn!(
                "{}: anonymous client refused (user name {:?} unverified; listener \
                 allow_anonymous = {policy:?}){held}",
                self.who(conn),
                connect.username
            );
        }
        self.refuse(conn, Reason::NOT_AUTHORIZED, "anonymous access not allowed")
    }
}
