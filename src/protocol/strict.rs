//! Strictness checks the handlers make before acting on a packet: the
//! `[strict]` rules (where the spec lets a server choose, each configurable)
//! and the MUSTs next to them that the codec cannot see.
//!
//! * `strict.control_characters`: U+0001..U+001F and U+007F..U+009F in a
//!   topic name, topic filter, client id, user name or will topic (3.1.1
//!   §1.5.3, 5.0 §1.5.4: SHOULD NOT, the receiver MAY close). Refused by
//!   closing the connection, counted in `control_chars_refused`.
//! * `strict.wrong_qos_ack`: PUBREC or PUBCOMP for a QoS 1 delivery, PUBACK
//!   for a QoS 2 one; closed as a protocol error.
//! * A zero-length topic filter in SUBSCRIBE or UNSUBSCRIBE [MQTT-4.7.3-1]:
//!   always closed, as a protocol error.
//! * No Local on a shared subscription (MQTT 5) [MQTT-3.8.3-4]: always
//!   closed, as a protocol error (DISCONNECT 0x82).
//!
//! The MQTT 3.1 client id rules are made with the other CONNECT refusals in
//! `connect.rs`. Each check returns `Err` to close the connection, logs on
//! the shard's rate-limited lines (`ShardLines`) and counts itself.

use crate::codec::QoS;
use crate::config::Strictness;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};
use crate::topic;

/// The most characters of a refused string a log line shows.
const SHOWN_CHARS: usize = 64;

/// `s` for a log line: at most [`SHOWN_CHARS`] characters, escaped by `{:?}`.
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{:?}...", &s[..at]),
        None => format!("{s:?}"),
    }
}

impl Shard {
    /// `strict.control_characters`: `Err` (close) when it rejects and one
    /// of `fields` (what it is, its text) holds a control character.
    pub(super) fn refuse_control_chars<'a>(
        &mut self,
        conn: ConnKey,
        fields: impl IntoIterator<Item = (&'static str, &'a str)>,
    ) -> Result<(), CloseReason> {
        if self.cfg.strict.control_characters == Strictness::Allow {
            return Ok(());
        }
        let Some((what, text)) = fields
            .into_iter()
            .find(|(_, text)| topic::has_control_chars(text))
        else {
            return Ok(());
        };
        self.metrics.control_chars_refused += 1;
        if let Some(held) = self.lines.control_chars.allow() {
            log::info!(
                "{}: control character in {what} {}, closing (strict.control_characters){held}",
                self.who(conn),
                shown(text)
            );
        }
        Err(CloseReason::ProtocolError)
    }

    /// [MQTT-4.7.3-1]: a topic filter is at least one character long;
    /// `Err` (close) when one of `filters` of a `packet` is empty.
    pub(super) fn refuse_empty_filter<'a>(
        &mut self,
        conn: ConnKey,
        packet: &str,
        mut filters: impl Iterator<Item = &'a str>,
    ) -> Result<(), CloseReason> {
        if !filters.any(str::is_empty) {
            return Ok(());
        }
        self.protocol_error(
            conn,
            &format!("empty topic filter in {packet} [MQTT-4.7.3-1]"),
        )
    }

    /// MQTT 5: a SUBSCRIBE asking No Local on a shared subscription is a
    /// protocol error [MQTT-3.8.3-4]; `Err` before anything of it acts.
    pub(super) fn refuse_shared_no_local<'a>(
        &mut self,
        conn: ConnKey,
        mut no_local_filters: impl Iterator<Item = &'a str>,
    ) -> Result<(), CloseReason> {
        if !no_local_filters.any(topic::is_share) {
            return Ok(());
        }
        self.protocol_error(conn, "No Local on a shared subscription [MQTT-3.8.3-4]")
    }

    /// Count a protocol error, log `what` on the rate-limited line, close.
    fn protocol_error(&mut self, conn: ConnKey, what: &str) -> Result<(), CloseReason> {
        self.metrics.protocol_errors += 1;
        if let Some(held) = self.lines.strict.allow() {
            log::info!("{}: {what}, closing{held}", self.who(conn));
        }
        Err(CloseReason::ProtocolError)
    }

    /// `strict.wrong_qos_ack`: `Err` (close) when it rejects and the window
    /// holds `pkid` at another QoS than the `ack` answers (`flow`). An id
    /// the window does not hold passes (the handler tolerates it).
    pub(super) fn refuse_wrong_qos_ack(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        ack: &str,
        flow: QoS,
        pkid: u16,
    ) -> Result<(), CloseReason> {
        if self.cfg.strict.wrong_qos_ack == Strictness::Allow {
            return Ok(());
        }
        let held = self.sessions.get(sk).and_then(|s| s.window_phase(pkid));
        let Some((qos, _)) = held.filter(|(qos, _)| *qos != flow) else {
            return Ok(());
        };
        self.metrics.protocol_errors += 1;
        if let Some(held) = self.lines.strict.allow() {
            log::info!(
                "{}: {ack} for packet id {pkid}, a QoS {} delivery, closing (strict.wrong_qos_ack){held}",
                self.who(conn),
                qos as u8
            );
        }
        Err(CloseReason::ProtocolError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_strings_are_escaped_and_cut() {
        assert_eq!(shown("a\tb"), "\"a\\tb\"");
        let long = "é".repeat(100);
        let s = shown(&long);
        assert!(s.ends_with("\"..."), "{s}");
        assert_eq!(s.chars().filter(|c| *c == 'é').count(), SHOWN_CHARS);
    }
}
