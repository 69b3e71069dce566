//! The ACL at the packet handlers: whether a PUBLISH, a SUBSCRIBE filter or
//! a will may go on, under the shard's rules (`Shard::acl`, `crate::acl`).
//!
//! Called by `publish.rs` (each inbound PUBLISH, through the connection's
//! decision cache), `subscribe.rs` (each filter, after its syntax is
//! checked; a shared subscription by the filter it names) and `connect.rs`
//! (a will, when it is due). A reload is seen at the next check. Every
//! denial is counted and logged on the shard's rate-limited `acl` line.
//! With the ACL off nothing is looked at.
//!
//! Subscriptions are checked when they are made, and again when the rules
//! change (the shard's tick notices a new rule generation and checks every
//! connected session) or when a session is resumed (`connect.rs`: the
//! client may come back as another user or from another address): what
//! the rules in force no longer allow is removed, counted and logged.

use crate::acl::{Subject, Verdict};
use crate::hooks::ClientInfo;
use crate::shard::{ConnKey, SessionKey, Shard};
use crate::topic;
use std::rc::Rc;

impl Shard {
    /// May the client publish to `topic`? Remembered per connection.
    pub(super) fn acl_allows_publish(
        &mut self,
        conn: ConnKey,
        info: &ClientInfo,
        topic: &str,
    ) -> bool {
        let acl = self.acl.get();
        if acl.is_off() {
            return true;
        }
        let generation = acl.generation();
        let decide = || acl.check_publish(&Subject::of(info), topic).allowed();
        let allowed = match self.conns.get_mut(conn) {
            Some(c) => c
                .acl_cache(generation)
                .get_or_decide(generation, topic, decide),
            None => decide(),
        };
        if !allowed {
            self.metrics.acl_denied_publish += 1;
            self.log_acl_denial(info, "PUBLISH to", topic, None);
        }
        allowed
    }

    /// May the client subscribe to `filter` (a valid filter or share)?
    pub(super) fn acl_allows_subscribe(&mut self, info: &ClientInfo, filter: &str) -> bool {
        let acl = self.acl.get();
        if acl.is_off() {
            return true;
        }
        // A shared subscription is checked on the filter it names.
        let named = topic::share_parts(filter).map_or(filter, |(_, f)| f);
        let verdict = acl.check_subscribe(&Subject::of(info), named);
        if !verdict.allowed() {
            self.metrics.acl_denied_subscribe += 1;
            self.log_acl_denial(info, "SUBSCRIBE to", filter, Some(verdict));
        }
        verdict.allowed()
    }

    /// May the will of the client that `info` describes be published now?
    pub(super) fn acl_allows_will(&mut self, info: &ClientInfo, topic: &str) -> bool {
        let acl = self.acl.get();
        if acl.is_off() {
            return true;
        }
        let verdict = acl.check_publish(&Subject::of(info), topic);
        if !verdict.allowed() {
            self.metrics.acl_denied_will += 1;
            self.log_acl_denial(info, "will on", topic, Some(verdict));
        }
        verdict.allowed()
    }

    /// Remove the subscriptions of session `sk` that the rules in force do
    /// not allow the client `info` describes; peers are told.
    pub(super) fn acl_recheck_session(&mut self, sk: SessionKey, info: &ClientInfo) {
        let acl = self.acl.get().clone();
        if acl.is_off() {
            return;
        }
        let subject = Subject::of(info);
        let mut revoked = Vec::new();
        if let Some(s) = self.sessions.get(sk) {
            s.for_each_filter(|f| {
                let named = topic::share_parts(f).map_or(&**f, |(_, n)| n);
                let verdict = acl.check_subscribe(&subject, named);
                if !verdict.allowed() {
                    revoked.push((f.clone(), verdict));
                }
            });
        }
        let mut changes = Vec::new();
        for (filter, verdict) in revoked {
            self.metrics.acl_revoked_subscriptions += 1;
            self.log_acl_denial(info, "subscription to", &filter, Some(verdict));
            changes.extend(self.unsubscribe_session(sk, &filter));
        }
        self.announce(changes, 0);
    }

    /// Once per new rule generation (a reload): check the subscriptions of
    /// every connected session. Offline sessions are checked when resumed.
    pub(crate) fn recheck_subscriptions_after_reload(&mut self) {
        let generation = self.acl.get().generation();
        if generation == self.acl_rechecked {
            return;
        }
        self.acl_rechecked = generation;
        if self.acl.get().is_off() {
            return;
        }
        let online: Vec<(SessionKey, Rc<ClientInfo>)> = self
            .sessions
            .iter()
            .filter_map(|(sk, s)| Some((sk, self.conns.get(s.conn()?)?.info()?.clone())))
            .collect();
        for (sk, info) in online {
            self.acl_recheck_session(sk, &info);
        }
    }

    fn log_acl_denial(&mut self, info: &ClientInfo, what: &str, name: &str, v: Option<Verdict>) {
        let Some(held) = self.lines.acl.allow() else {
            return;
        };
        let by = match v.and_then(|v| v.rule) {
            Some(n) => format!("rule {n}"),
            None if v.is_some() => "no rule (acl.no_match or $SYS)".into(),
            None => "the ACL".into(),
        };
        log::info!(
            "shard {} client {:?} (user {:?}, peer {:?}): {what} {name:?} denied by {by}{held}",
            self.id,
            info.client_id,
            info.username,
            info.peer
        );
    }
}
