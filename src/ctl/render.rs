//! The human-readable output of each `coremq ctl` command, made from the
//! API's JSON answer (the shapes of /work/spec/api.md).
//!
//! Every function takes `serde_json::Value`s and returns the text to print,
//! so the output is tested without a broker. None of them fails: a missing
//! or mistyped field prints as `-`, a missing list as `(none)`.

use super::table::{clean, kv_block, Table};
use serde_json::Value;

/// The text of a JSON value as one table cell: strings as they are (control
/// characters escaped), numbers, `yes`/`no`, `-` for null or missing,
/// anything else as compact JSON.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => clean(s),
        Some(Value::Bool(b)) => yes_no(*b),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => clean(&other.to_string()),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// `v[key]` as a cell.
fn field(v: &Value, key: &str) -> String {
    cell(v.get(key))
}

/// `v[key]` as an unsigned number, if it is one.
fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// The rows of a list answer: `v["data"]`, or an empty list.
fn data(v: &Value) -> &[Value] {
    v.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A table of `rows`, one cell per (key) column.
fn table_of(headers: &[&str], keys: &[&str], right: &[usize], rows: &[Value]) -> Table {
    let mut t = Table::new(headers).right(right);
    for r in rows {
        t.row(keys.iter().map(|k| field(r, k)).collect());
    }
    t
}

/// `page P of N, C things` from a list answer's `meta` (`C things` alone
/// when the answer has no usable meta).
pub fn footer(v: &Value, noun: &str) -> String {
    let meta = v.get("meta");
    let count = meta.and_then(|m| num(m, "count"));
    let shown = data(v).len() as u64;
    let count_text = |c: u64| format!("{c} {noun}{}", if c == 1 { "" } else { "s" });
    match (
        meta.and_then(|m| num(m, "page")),
        meta.and_then(|m| num(m, "limit")),
        count,
    ) {
        (Some(page), Some(limit), Some(count)) if limit > 0 => {
            let pages = count.div_ceil(limit).max(1);
            format!("page {page} of {pages}, {}", count_text(count))
        }
        (_, _, Some(count)) => count_text(count),
        _ => count_text(shown),
    }
}

/// The MQTT version of a protocol level (3, 4, 5).
pub fn protocol(v: Option<&Value>) -> String {
    match v.and_then(Value::as_u64) {
        Some(3) => "3.1".to_string(),
        Some(4) => "3.1.1".to_string(),
        Some(5) => "5.0".to_string(),
        _ => cell(v),
    }
}

/// `1d 2h 3m 4s` (leading zero units left out).
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// A byte count in binary units: `512 B`, `11.8 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn timestamp_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_date(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01, counting in 400-year eras that start on March 1st (so the
/// leap day is the last day of its year).
fn civil_date(days: i64) -> (i64, u32, u32) {
    const DAYS_PER_ERA: i64 = 146_097;
    // Day 0 of era 0 is 0000-03-01; 1970-01-01 is 719_468 days later.
    let z = days + 719_468;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    // Years of 365 days, less the leap days of every 4th, 100th and 400th year.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 31 30 31 30 31 31 30 31 30 31 31 28/29, in 153-day runs of five.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

/// `coremq ctl status`: GET /api/v1/node.
pub fn status(node: &Value) -> String {
    let n = |k: &str| field(node, k);
    let mut connections = n("connections");
    let mut extra = Vec::new();
    if let Some(peak) = num(node, "connections_max") {
        extra.push(format!("peak {peak}"));
    }
    if let Some(limit) = num(node, "max_connections").filter(|&l| l > 0) {
        extra.push(format!("limit {limit}"));
    }
    if !extra.is_empty() {
        connections = format!("{connections} ({})", extra.join(", "));
    }
    let mut sessions = n("sessions");
    if let (Some(p), Some(o)) = (
        num(node, "sessions_persistent"),
        num(node, "sessions_offline"),
    ) {
        sessions = format!("{sessions} ({p} persistent, {o} offline)");
    }
    let uptime = num(node, "uptime_s").map_or_else(|| n("uptime_s"), duration);
    let memory = num(node, "memory_bytes").map_or_else(|| n("memory_bytes"), bytes);
    let fds = match num(node, "fd_limit") {
        Some(limit) => format!("{} (limit {limit})", n("fds")),
        None => n("fds"),
    };
    let traffic = |k: &str| num(node, k).map_or_else(|| n(k), bytes);
    let mut out = kv_block(&[
        ("node", n("node")),
        ("version", n("version")),
        ("uptime", uptime),
        ("shards", n("shards")),
        ("connections", connections),
        ("sessions", sessions),
        ("subscriptions", n("subscriptions")),
        ("topics", n("topics")),
        ("retained", n("retained")),
        ("messages in", n("messages_received")),
        ("messages out", n("messages_sent")),
        ("messages dropped", n("messages_dropped")),
        ("bytes in", traffic("bytes_received")),
        ("bytes out", traffic("bytes_sent")),
        ("memory", memory),
        ("fds", fds),
        ("alarms", n("alarms")),
    ]);
    out.push('\n');
    let shards = node
        .get("per_shard")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let t = table_of(
        &[
            "SHARD",
            "CONNECTIONS",
            "SESSIONS",
            "SUBS",
            "MSGS IN",
            "MSGS OUT",
            "DROPPED",
            "MAILBOX SENT",
            "OVERFLOWS",
        ],
        &[
            "shard",
            "connections",
            "sessions",
            "subscriptions",
            "messages_received",
            "messages_sent",
            "messages_dropped",
            "mailbox_msgs_sent",
            "mailbox_overflows",
        ],
        &[0, 1, 2, 3, 4, 5, 6, 7, 8],
        shards,
    );
    out.push_str(&t.render());
    out
}

/// `coremq ctl clients list`: GET /api/v1/clients.
pub fn clients(list: &Value) -> String {
    let mut t = Table::new(&[
        "CLIENT ID",
        "USERNAME",
        "PEER",
        "SHARD",
        "PROTO",
        "KEEPALIVE",
        "SUBS",
        "INFLIGHT",
        "QUEUED",
    ])
    .right(&[3, 5, 6, 7, 8]);
    for c in data(list) {
        t.row(vec![
            field(c, "client_id"),
            field(c, "username"),
            field(c, "peer"),
            field(c, "shard"),
            protocol(c.get("protocol")),
            field(c, "keepalive"),
            field(c, "subscriptions"),
            field(c, "inflight"),
            field(c, "queued"),
        ]);
    }
    format!("{}{}\n", t.render(), footer(list, "client"))
}

/// `coremq ctl clients show ID`: the client (GET /api/v1/clients/ID) and
/// its subscriptions (GET .../subscriptions; None when it has no session).
pub fn client(c: &Value, subscriptions: Option<&Value>) -> String {
    let keepalive = match num(c, "keepalive") {
        Some(k) => format!("{k}s"),
        None => field(c, "keepalive"),
    };
    let mut out = kv_block(&[
        ("client id", field(c, "client_id")),
        ("username", field(c, "username")),
        ("peer", field(c, "peer")),
        ("shard", field(c, "shard")),
        ("protocol", protocol(c.get("protocol"))),
        ("keepalive", keepalive),
        ("clean start", field(c, "clean_start")),
        ("subscriptions", field(c, "subscriptions")),
        ("inflight", field(c, "inflight")),
        ("queued", field(c, "queued")),
    ]);
    out.push_str("\nsubscriptions:\n");
    match subscriptions {
        Some(s) => out.push_str(&subscription_table(s).render()),
        None => out.push_str("(no session)\n"),
    }
    out
}

/// The subscriptions of a client: GET /api/v1/clients/ID/subscriptions.
fn subscription_table(list: &Value) -> Table {
    table_of(
        &[
            "TOPIC",
            "QOS",
            "NO LOCAL",
            "RETAIN AS PUBLISHED",
            "RETAIN HANDLING",
        ],
        &[
            "topic",
            "qos",
            "no_local",
            "retain_as_published",
            "retain_handling",
        ],
        &[1, 4],
        data(list),
    )
}

/// `coremq ctl sessions list`: GET /api/v1/sessions.
pub fn sessions(list: &Value) -> String {
    let t = table_of(
        &[
            "CLIENT ID",
            "SHARD",
            "CONNECTED",
            "PERSISTENT",
            "EXPIRY",
            "SUBS",
            "INFLIGHT",
            "QUEUED",
            "AWAITING REL",
        ],
        &[
            "client_id",
            "shard",
            "connected",
            "persistent",
            "expiry_s",
            "subscriptions",
            "inflight",
            "queued",
            "awaiting_rel",
        ],
        &[1, 4, 5, 6, 7, 8],
        data(list),
    );
    format!("{}{}\n", t.render(), footer(list, "session"))
}

/// `coremq ctl sessions show ID`: GET /api/v1/sessions/ID.
pub fn session(s: &Value) -> String {
    let expiry = match num(s, "expiry_s") {
        Some(e) => format!("{e}s"),
        None => field(s, "expiry_s"),
    };
    kv_block(&[
        ("client id", field(s, "client_id")),
        ("shard", field(s, "shard")),
        ("connected", field(s, "connected")),
        ("persistent", field(s, "persistent")),
        ("expiry", expiry),
        ("subscriptions", field(s, "subscriptions")),
        ("inflight", field(s, "inflight")),
        ("queued", field(s, "queued")),
        ("awaiting rel", field(s, "awaiting_rel")),
    ])
}

/// The longest payload `retained list` shows (in characters); `retained
/// show` prints all of it.
pub const PAYLOAD_PREVIEW: usize = 40;

/// A retained payload cut to [`PAYLOAD_PREVIEW`] characters (with `...`),
/// base64 ones marked `base64:`.
fn payload_preview(r: &Value) -> String {
    let text = field(r, "payload");
    let mut preview: String = text.chars().take(PAYLOAD_PREVIEW).collect();
    if preview.len() < text.len() {
        preview.push_str("...");
    }
    match r.get("encoding").and_then(Value::as_str) {
        Some("base64") => format!("base64:{preview}"),
        _ => preview,
    }
}

/// `coremq ctl retained list`: GET /api/v1/retained.
pub fn retained_list(list: &Value) -> String {
    let mut t = Table::new(&["TOPIC", "QOS", "BYTES", "PAYLOAD"]).right(&[1, 2]);
    for r in data(list) {
        t.row(vec![
            field(r, "topic"),
            field(r, "qos"),
            field(r, "bytes"),
            payload_preview(r),
        ]);
    }
    format!("{}{}\n", t.render(), footer(list, "retained message"))
}

/// `coremq ctl retained show TOPIC`: GET /api/v1/retained/TOPIC. The
/// payload comes last, whole (newlines and tabs kept, other control
/// characters escaped).
pub fn retained(r: &Value) -> String {
    let mut out = kv_block(&[
        ("topic", field(r, "topic")),
        ("qos", field(r, "qos")),
        ("bytes", field(r, "bytes")),
        ("encoding", field(r, "encoding")),
    ]);
    out.push_str("payload:\n");
    match r.get("payload") {
        Some(Value::String(p)) => {
            let lines: Vec<String> = p.split('\n').map(clean_keep_tabs).collect();
            out.push_str(&lines.join("\n"));
        }
        other => out.push_str(&cell(other)),
    }
    out.push('\n');
    out
}

fn clean_keep_tabs(line: &str) -> String {
    line.split('\t').map(clean).collect::<Vec<_>>().join("\t")
}

/// `coremq ctl alarms`: GET /api/v1/alarms, the active ones then the
/// recently cleared.
pub fn alarms(v: &Value) -> String {
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    };
    let when = |a: &Value, k: &str| match num(a, k) {
        Some(ms) => timestamp_ms(ms),
        None => field(a, k),
    };
    let mut active = Table::new(&["ID", "SEVERITY", "RAISED", "SUMMARY"]);
    for a in list("active") {
        active.row(vec![
            field(a, "id"),
            field(a, "severity"),
            when(a, "raised_at"),
            field(a, "summary"),
        ]);
    }
    let mut cleared = Table::new(&["ID", "SEVERITY", "RAISED", "CLEARED", "SUMMARY"]);
    for a in list("cleared") {
        cleared.row(vec![
            field(a, "id"),
            field(a, "severity"),
            when(a, "raised_at"),
            when(a, "cleared_at"),
            field(a, "summary"),
        ]);
    }
    format!(
        "active alarms:\n{}\nrecently cleared:\n{}",
        active.render(),
        cleared.render()
    )
}

/// `coremq ctl publish`: POST /api/v1/publish answered `{"id": ...}`.
pub fn published(topic: &str, answer: &Value) -> String {
    format!(
        "published to {} (message id {})\n",
        clean(topic),
        field(answer, "id")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Value {
        json!({"node": 1, "version": "0.1.0", "sysdescr": "coremq 0.1.0", "uptime_s": 3725,
            "datetime": "2026-12-03T13:40:00Z",
            "shards": 2, "connections": 3, "connections_max": 5, "max_connections": 0,
            "sessions": 4, "sessions_persistent": 1, "sessions_offline": 1,
            "subscriptions": 7, "topics": 5, "retained": 2,
            "memory_bytes": 12345678, "fds": 40, "fd_limit": 20000,
            "messages_received": 100, "messages_sent": 500, "messages_dropped": 0,
            "bytes_received": 1000, "bytes_sent": 9000, "alarms": 0,
            "metrics": {"publish_received": 100},
            "per_shard": [
                {"shard": 0, "connections": 2, "sessions": 2, "subscriptions": 3,
                 "messages_received": 60, "messages_sent": 300, "messages_dropped": 0,
                 "bytes_received": 600, "bytes_sent": 5000, "mailbox_msgs_sent": 10,
                 "mailbox_overflows": 0},
                {"shard": 1, "connections": 1, "sessions": 2, "subscriptions": 4,
                 "messages_received": 40, "messages_sent": 200, "messages_dropped": 0,
                 "bytes_received": 400, "bytes_sent": 4000, "mailbox_msgs_sent": 12345,
                 "mailbox_overflows": 0}]})
    }

    /// The value after `key` on the line that starts with it.
    fn value_of<'a>(out: &'a str, key: &str) -> &'a str {
        out.lines()
            .find_map(|l| {
                l.strip_prefix(key)
                    .filter(|rest| rest.starts_with("  "))
                    .map(str::trim)
            })
            .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
    }

    #[test]
    fn status_shows_the_node_and_a_shard_table() {
        let out = status(&node());
        assert_eq!(value_of(&out, "node"), "1");
        assert_eq!(value_of(&out, "version"), "0.1.0");
        assert_eq!(value_of(&out, "uptime"), "1h 2m 5s");
        assert_eq!(value_of(&out, "connections"), "3 (peak 5)");
        assert_eq!(value_of(&out, "sessions"), "4 (1 persistent, 1 offline)");
        assert_eq!(value_of(&out, "subscriptions"), "7");
        assert_eq!(value_of(&out, "topics"), "5");
        assert_eq!(value_of(&out, "retained"), "2");
        assert_eq!(value_of(&out, "messages in"), "100");
        assert_eq!(value_of(&out, "messages out"), "500");
        assert_eq!(value_of(&out, "messages dropped"), "0");
        assert_eq!(value_of(&out, "memory"), "11.8 MiB");
        assert_eq!(value_of(&out, "fds"), "40 (limit 20000)");
        // Every key's value starts in the same column.
        let col = |key: &str| {
            let l = out.lines().find(|l| l.starts_with(key)).unwrap();
            l.len() - l[key.len()..].trim_start().len()
        };
        assert_eq!(col("node"), col("messages dropped"));
        let shard_lines: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("SHARD"))
            .collect();
        assert_eq!(shard_lines.len(), 3, "{out}");
        assert!(shard_lines[0].starts_with("SHARD  CONNECTIONS  SESSIONS"));
        assert!(shard_lines[2].ends_with("12345          0"), "{out}");
    }

    #[test]
    fn status_of_a_malformed_answer_prints_dashes() {
        for v in [
            json!({}),
            json!([1, 2]),
            json!("x"),
            json!({"per_shard": "no"}),
        ] {
            let out = status(&v);
            assert_eq!(value_of(&out, "connections"), "-");
            assert!(out.ends_with("(none)\n"), "{out}");
        }
        let out = status(&json!({"connections": 2, "connections_max": "many"}));
        assert_eq!(value_of(&out, "connections"), "2");
    }

    fn client_list() -> Value {
        json!({"data": [
            {"client_id": "c1", "username": null, "peer": "127.0.0.1:5555", "shard": 0,
             "protocol": 4, "keepalive": 60, "clean_start": true, "subscriptions": 1,
             "inflight": 0, "queued": 0},
            {"client_id": "sensor-long-name", "username": "alice", "peer": "127.0.0.1:40000",
             "shard": 1, "protocol": 5, "keepalive": 30, "clean_start": false,
             "subscriptions": 12, "inflight": 3, "queued": 100}],
            "meta": {"page": 1, "limit": 50, "count": 2}})
    }

    #[test]
    fn clients_list_has_the_columns_and_the_footer() {
        let out = clients(&client_list());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CLIENT ID         USERNAME  PEER             SHARD  PROTO  KEEPALIVE  SUBS  INFLIGHT  QUEUED"
        );
        assert_eq!(
            lines[1],
            "c1                -         127.0.0.1:5555       0  3.1.1         60     1         0       0"
        );
        assert_eq!(
            lines[2],
            "sensor-long-name  alice     127.0.0.1:40000      1  5.0           30    12         3     100"
        );
        assert_eq!(lines[3], "page 1 of 1, 2 clients");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn footers_count_pages_and_survive_missing_meta() {
        let v = json!({"data": [{}], "meta": {"page": 2, "limit": 10, "count": 21}});
        assert_eq!(footer(&v, "client"), "page 2 of 3, 21 clients");
        let v = json!({"data": [], "meta": {"page": 1, "limit": 10, "count": 0}});
        assert_eq!(footer(&v, "client"), "page 1 of 1, 0 clients");
        let v = json!({"data": [{}], "meta": {"count": 1}});
        assert_eq!(footer(&v, "client"), "1 client");
        let v = json!({"data": [{}, {}]});
        assert_eq!(footer(&v, "session"), "2 sessions");
        assert_eq!(footer(&json!(null), "client"), "0 clients");
    }

    #[test]
    fn an_empty_or_malformed_list_prints_none() {
        for v in [
            json!({"data": [], "meta": {"page": 1, "limit": 50, "count": 0}}),
            json!({}),
            json!({"data": {"not": "a list"}}),
            json!(7),
        ] {
            let out = clients(&v);
            assert!(out.starts_with("(none)\n"), "{out}");
            assert!(sessions(&v).starts_with("(none)\n"));
            assert!(retained_list(&v).starts_with("(none)\n"));
        }
    }

    #[test]
    fn client_show_has_its_fields_and_subscriptions() {
        let c = &client_list()["data"][1];
        let subs = json!({"data": [
            {"topic": "a/b", "qos": 1, "no_local": false, "retain_as_published": true,
             "retain_handling": 0},
            {"topic": "sensors/#", "qos": 2, "no_local": true, "retain_as_published": false,
             "retain_handling": 2}]});
        let out = client(c, Some(&subs));
        assert_eq!(value_of(&out, "client id"), "sensor-long-name");
        assert_eq!(value_of(&out, "username"), "alice");
        assert_eq!(value_of(&out, "protocol"), "5.0");
        assert_eq!(value_of(&out, "keepalive"), "30s");
        assert_eq!(value_of(&out, "clean start"), "no");
        assert_eq!(value_of(&out, "queued"), "100");
        let tail = out.split("subscriptions:\n").nth(1).unwrap();
        assert_eq!(
            tail,
            "TOPIC      QOS  NO LOCAL  RETAIN AS PUBLISHED  RETAIN HANDLING\n\
             a/b          1  no        yes                                0\n\
             sensors/#    2  yes       no                                 2\n"
        );
        let out = client(c, Some(&json!({"data": []})));
        assert!(out.ends_with("subscriptions:\n(none)\n"), "{out}");
        let out = client(c, None);
        assert!(out.ends_with("subscriptions:\n(no session)\n"), "{out}");
    }

    #[test]
    fn sessions_list_and_show() {
        let list = json!({"data": [
            {"client_id": "c1", "shard": 0, "connected": true, "persistent": false,
             "expiry_s": 0, "subscriptions": 1, "inflight": 0, "queued": 0, "awaiting_rel": 0},
            {"client_id": "c2", "shard": 1, "connected": false, "persistent": true,
             "expiry_s": 3600, "subscriptions": 2, "inflight": 1, "queued": 7, "awaiting_rel": 1}],
            "meta": {"page": 1, "limit": 1, "count": 2}});
        let out = sessions(&list);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CLIENT ID  SHARD  CONNECTED  PERSISTENT  EXPIRY  SUBS  INFLIGHT  QUEUED  AWAITING REL"
        );
        assert_eq!(
            lines[2],
            "c2             1  no         yes           3600     2         1       7             1"
        );
        assert_eq!(lines[3], "page 1 of 2, 2 sessions");
        let out = session(&list["data"][1]);
        assert_eq!(value_of(&out, "client id"), "c2");
        assert_eq!(value_of(&out, "connected"), "no");
        assert_eq!(value_of(&out, "persistent"), "yes");
        assert_eq!(value_of(&out, "expiry"), "3600s");
        assert_eq!(value_of(&out, "awaiting rel"), "1");
    }

    #[test]
    fn retained_list_previews_payloads_and_show_prints_them_whole() {
        let long = "y".repeat(100);
        let list = json!({"data": [
            {"topic": "a/b", "qos": 1, "payload": "hello", "encoding": "text", "bytes": 5},
            {"topic": "bin", "qos": 0, "payload": "AAEC", "encoding": "base64", "bytes": 3},
            {"topic": "big", "qos": 0, "payload": long, "encoding": "text", "bytes": 100}],
            "meta": {"page": 1, "limit": 50, "count": 3}});
        let out = retained_list(&list);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["TOPIC", "QOS", "BYTES", "PAYLOAD"]
        );
        assert!(
            lines[1].starts_with("a/b") && lines[1].ends_with("hello"),
            "{out}"
        );
        assert!(lines[2].ends_with("base64:AAEC"), "{out}");
        assert!(
            lines[3].ends_with(&format!("{}...", "y".repeat(PAYLOAD_PREVIEW))),
            "{out}"
        );
        assert_eq!(lines[4], "page 1 of 1, 3 retained messages");

        let out = retained(
            &json!({"topic": "a/b", "qos": 1, "payload": "line 1\n\tline 2\x1b",
            "encoding": "text", "bytes": 15}),
        );
        assert_eq!(value_of(&out, "topic"), "a/b");
        assert_eq!(value_of(&out, "encoding"), "text");
        assert!(
            out.ends_with("payload:\nline 1\n\tline 2\\u{1b}\n"),
            "{out:?}"
        );
        let out = retained(&json!({"topic": "a/b"}));
        assert!(out.ends_with("payload:\n-\n"), "{out:?}");
    }

    #[test]
    fn alarms_list_active_then_cleared() {
        let v = json!({
            "active": [{"id": "connections_high", "severity": "warning",
                        "title": "connections_high", "summary": "95% of max_connections",
                        "raised_at": 1764769200000u64, "cleared_at": null}],
            "cleared": [{"id": "memory_high", "severity": "critical", "title": "memory_high",
                         "summary": "RSS over 90%", "raised_at": 1764769200000u64,
                         "cleared_at": 1764772865000u64}]});
        let out = alarms(&v);
        assert_eq!(
            out,
            "active alarms:\n\
             ID                SEVERITY  RAISED                   SUMMARY\n\
             connections_high  warning   2025-12-03 13:40:00 UTC  95% of max_connections\n\
             \n\
             recently cleared:\n\
             ID           SEVERITY  RAISED                   CLEARED                  SUMMARY\n\
             memory_high  critical  2025-12-03 13:40:00 UTC  2025-12-03 14:41:05 UTC  RSS over 90%\n"
        );
        assert_eq!(
            alarms(&json!({"active": [], "cleared": []})),
            "active alarms:\n(none)\n\nrecently cleared:\n(none)\n"
        );
        assert_eq!(
            alarms(&json!(null)),
            "active alarms:\n(none)\n\nrecently cleared:\n(none)\n"
        );
    }

    #[test]
    fn dates_durations_and_sizes() {
        assert_eq!(timestamp_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(timestamp_ms(951_868_799_999), "2000-02-29 23:59:59 UTC");
        assert_eq!(timestamp_ms(4_107_542_400_000), "2100-03-01 00:00:00 UTC");
        assert_eq!(timestamp_ms(1_767_225_599_000), "2025-12-31 23:59:59 UTC");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(86_400 + 3600 + 60 + 1), "1d 1h 1m 1s");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(protocol(Some(&json!(3))), "3.1");
        assert_eq!(protocol(Some(&json!(9))), "9");
        assert_eq!(protocol(None), "-");
    }

    #[test]
    fn cells_of_every_json_type() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!("a\nb"))), "a\\nb");
        assert_eq!(cell(Some(&json!(true))), "yes");
        assert_eq!(cell(Some(&json!(-1.5))), "-1.5");
        assert_eq!(cell(Some(&json!([1, "x"]))), "[1,\"x\"]");
        assert_eq!(
            published("t/x", &json!({"id": "00ab"})),
            "published to t/x (message id 00ab)\n"
        );
        assert_eq!(
            published("t/x", &json!({})),
            "published to t/x (message id -)\n"
        );
    }
}
