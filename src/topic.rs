//! Topic names and topic filters of MQTT 3.1.1 §4.7: validation and single-pair matching.
//!
//! Owns no state: these are pure functions over `&str`, one layer below both
//! the codec and the router (it imports neither). The codec calls
//! [`valid_topic_name`] on every PUBLISH and will topic it decodes, and the protocol layer
//! calls [`valid_filter`] on every SUBSCRIBE entry before anything reaches the router (an
//! UNSUBSCRIBE filter only removes one that was stored; an empty one in either closes the
//! connection); the router's [`Trie`] assumes valid input. [`has_control_chars`] is the
//! `strict.control_characters` rule's test, applied by the protocol layer to topic names,
//! filters, client ids, user names and will topics. [`matches()`] is the one-pair reference matcher: used where a single filter is checked
//! against a single topic (retained-message delivery to a new subscription) and as the oracle
//! the trie is tested against.
//!
//! [`Trie`]: crate::router::trie::Trie

/// The longest topic name or filter: a UTF-8 string prefixed by a 16-bit length (§1.5.3).
const MAX_LEN: usize = 65535;

/// A PUBLISH topic name: non-empty, no '+' or '#', no U+0000, at most 65535 bytes.
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_LEN
        && !topic.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// A subscription filter: non-empty, no U+0000, '#' only as the whole last level, '+' only as a whole level.
///
/// Also at most 65535 bytes, like every MQTT string.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_LEN || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && !(level == "#" && last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// Whether `s` holds a control character, U+0001..=U+001F or U+007F..=U+009F: code points a
/// UTF-8 string SHOULD NOT include and whose receiver MAY close the connection (3.1.1 §1.5.3,
/// 5.0 §1.5.4; unnumbered statements). U+0000 counts too, though the codec already refuses it
/// [MQTT-1.5.3-2].
///
/// A byte scan: on valid UTF-8, U+0001..=U+007F are single bytes and U+0080..=U+009F are
/// exactly the pairs `C2 80`..=`C2 9F`.
pub fn has_control_chars(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20 || c == 0x7F || (c == 0xC2 && b.get(i + 1).is_some_and(|n| *n <= 0x9F))
    })
}

/// How every shared subscription's filter starts (MQTT 5 §4.8.2).
pub const SHARE_PREFIX: &str = "$share/";

/// Whether a SUBSCRIBE filter asks for a shared subscription (valid or not).
pub fn is_share(filter: &str) -> bool {
    filter.starts_with(SHARE_PREFIX)
}

/// A shared subscription's group and topic filter: `$share/{group}/{filter}`
/// with a non-empty group holding no '/', '+' or '#' [MQTT-4.8.2-1]
/// [MQTT-4.8.2-2], followed by a valid, non-empty filter. None if `share`
/// is not one.
pub fn share_parts(share: &str) -> Option<(&str, &str)> {
    let rest = share.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/')?;
    let group_ok = !group.is_empty() && !group.bytes().any(|b| matches!(b, b'+' | b'#' | 0));
    (group_ok && valid_filter(filter)).then_some((group, filter))
}

/// True if the filter has '+' or '#'.
pub fn has_wildcards(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

/// Whether `filter` matches `topic` (both assumed valid). Topics starting with '$' are NOT matched by filters
/// whose first level is '+' or '#' [MQTT-4.7.2-1]. "sport/#" matches "sport" too. "+" matches an empty level.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            // Matches the parent level and any number of child levels.
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// §4.7 matching cases shared by the topic and trie tests: (filter, topic, matches).
#[cfg(test)]
pub(crate) const MATCH_CASES: &[(&str, &str, bool)] = &[
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/tennis/player1/#", "sport/tennis/player2", false),
    ("sport/#", "sport", true),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("sport/+", "sport/tennis", true),
    ("sport/+", "sport/tennis/x", false),
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("+", "finance", true),
    ("#", "a/b/c", true),
    ("#", "/", true),
    ("a//b", "a//b", true),
    ("a/+/b", "a//b", true),
    ("a/b", "a//b", false),
    ("#", "$SYS/x", false),
    ("+/x", "$SYS/x", false),
    ("+", "$SYS", false),
    ("$SYS/#", "$SYS/x", true),
    ("$SYS/+", "$SYS/x", true),
    ("$SYS", "$SYS", true),
    ("a/$x/#", "a/$x", true),
    ("+/$x", "a/$x", true),
    ("a/b", "a/b/c", false),
    ("a/b/c", "a/b", false),
    ("sport/tennis/player1/#", "sport/tennis", false),
    ("sport/+", "sport/tennis/player1", false),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("+", "", true),
    ("+/#", "a", true),
    ("a//#", "a/", true),
    ("#", "$SYS/broker", false),
    ("+/broker", "$SYS/broker", false),
    ("+/#", "$SYS", false),
    ("$SYS/#", "$SYS/broker", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/+", "$SYS/broker", true),
    ("a/#", "a/$x", true),
    ("a/+", "a/$x", true),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in [
            "a",
            "/",
            "a/b",
            "a//b",
            "$SYS/x",
            " ",
            "sport/tennis/player1",
            "ü/€",
        ] {
            assert!(valid_topic_name(ok), "{ok:?}");
        }
        for bad in ["", "a/+", "#", "a/#", "a+b", "a\0b"] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
        assert!(valid_topic_name(&"a".repeat(MAX_LEN)));
        assert!(!valid_topic_name(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn filters() {
        let ok = [
            "#", "+", "/", "a/#", "a/+", "+/+", "/+", "+/#", "a/+/b/#", "a//b", "$SYS/#", "//",
        ];
        for f in ok {
            assert!(valid_filter(f), "{f:?}");
        }
        let bad = [
            "", "a#", "a/#/b", "#/a", "##", "a/b#", "a+", "+a/b", "a/++", "a\0",
        ];
        for f in bad {
            assert!(!valid_filter(f), "{f:?}");
        }
        assert!(!valid_filter(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn control_characters_match_their_code_points() {
        // Against the definition, over every code point up to U+07FF and a few beyond.
        let is_control = |c: char| matches!(c, '\u{1}'..='\u{1F}' | '\u{7F}'..='\u{9F}');
        let chars = (1u32..0x800)
            .chain([0xFEFF, 0xFFFD, 0x1_F600])
            .filter_map(char::from_u32);
        for c in chars {
            for s in [
                c.to_string(),
                format!("a/{c}"),
                format!("{c}/b"),
                format!("é{c}é"),
            ] {
                assert_eq!(
                    has_control_chars(&s),
                    is_control(c),
                    "{s:?} (U+{:04X})",
                    c as u32
                );
            }
        }
        for ok in ["", "a/b", "ü/€", "\u{A0}", "\u{100}", "\u{C2}\u{A0}"] {
            assert!(!has_control_chars(ok), "{ok:?}");
        }
        for bad in ["a\tb", "a\nb", "\u{1B}[0m", "x\u{7F}", "\u{85}", "\u{9F}"] {
            assert!(has_control_chars(bad), "{bad:?}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(has_wildcards("a/+"));
        assert!(has_wildcards("#"));
        assert!(!has_wildcards("a/b"));
        assert!(!has_wildcards(""));
    }

    #[test]
    fn matching_examples() {
        let cases = MATCH_CASES;
        for &(f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f:?} vs {t:?}");
        }
    }

    #[test]
    fn share_names_split_or_fail() {
        // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
        assert_eq!(share_parts("$share/g/a/+"), Some(("g", "a/+")));
        assert_eq!(share_parts("$share/g/#"), Some(("g", "#")));
        for bad in [
            "$share/g",
            "$share//t",
            "$share/g/",
            "$share/+/t",
            "$share/#",
            "$share/g#/t",
            "$share/g/a/#/b",
            "a/b",
        ] {
            assert_eq!(share_parts(bad), None, "{bad:?}");
        }
        assert!(is_share("$share/g") && !is_share("$sharex/g/t") && !is_share("$share"));
    }
}
