//! How an ACL rule's topic filter relates to a SUBSCRIBE filter: whether
//! the rule's filter *covers* it (every topic the subscription can receive
//! is one the rule matches) or *meets* it (some topic is matched by both).
//!
//! Pure functions over valid filters (`crate::topic::valid_filter`), used by
//! the rule matcher in `super` only. Both follow MQTT's rule that a topic
//! starting with `$` is not matched by a filter whose first level is a
//! wildcard [MQTT-4.7.2-1]: `#` neither covers nor meets `$SYS/#`.

/// Whether every topic `filter` matches is matched by `rule` too.
pub(super) fn covers(rule: &str, filter: &str) -> bool {
    if dollar_hidden_from(rule, filter) {
        return false;
    }
    // Every topic has a first level: "+/#" matches all that "#" does.
    if filter == "#" && rule == "+/#" {
        return true;
    }
    let mut f = filter.split('/');
    for r in rule.split('/') {
        if r == "#" {
            // Covers the parent level and every level below, '#' included.
            return true;
        }
        match f.next() {
            // '+' covers one level of anything but a multi-level '#'.
            Some("#") => return false,
            Some(level) if r == "+" || r == level => {}
            // The filter's literal level against another literal, or a
            // wildcard level of the filter against a literal of the rule.
            Some(_) => return false,
            // The filter ended before the rule (whose '#' was handled above).
            None => return false,
        }
    }
    // The rule ended: covered only if the filter ended too.
    f.next().is_none()
}

/// Whether some topic is matched by both `rule` and `filter`.
pub(super) fn meets(rule: &str, filter: &str) -> bool {
    if dollar_hidden_from(rule, filter) || dollar_hidden_from(filter, rule) {
        return false;
    }
    let mut a = rule.split('/');
    let mut b = filter.split('/');
    loop {
        match (a.next(), b.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            // One ended: the other may go on only with a '#' ("a" meets "a/#").
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) if x == "+" || y == "+" || x == y => {}
            (Some(_), Some(_)) => return false,
        }
    }
}

/// Whether `wild`'s first level is a wildcard and `other`'s first level is
/// a literal starting with '$': then `wild` matches none of `other`'s topics.
fn dollar_hidden_from(wild: &str, other: &str) -> bool {
    matches!(first_level(wild), "+" | "#") && first_level(other).starts_with('$')
}

fn first_level(s: &str) -> &str {
    s.split('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{matches, valid_filter};

    /// (rule, filter, covers, meets)
    const CASES: &[(&str, &str, bool, bool)] = &[
        ("a/#", "a/#", true, true),
        ("a/#", "a", true, true),
        ("a/#", "a/b/+", true, true),
        ("a/#", "a/+/#", true, true),
        ("a/+", "a/#", false, true),
        ("a/+", "a/b", true, true),
        ("a/+", "a/+", true, true),
        ("a/+", "a", false, false),
        ("a", "a/#", false, true),
        ("a/b", "a/+", false, true),
        ("a/b", "a/c", false, false),
        ("#", "a/b", true, true),
        ("#", "#", true, true),
        ("#", "$SYS/#", false, false),
        ("+/x", "$SYS/x", false, false),
        ("$SYS/#", "#", false, false),
        ("$SYS/#", "$SYS/broker/+", true, true),
        ("$SYS/#", "$SYS", true, true),
        ("+/+", "+/b", true, true),
        ("+/b", "+/+", false, true),
        ("a/+/c", "a/b/#", false, true),
        ("a/+/c/#", "a/+/c", true, true),
        ("a/b/c", "a/b", false, false),
        ("a//b", "a/+/b", false, true),
        ("+", "", true, true),
        ("+/#", "#", true, true),
        ("a/+/#", "a/#", false, true),
        ("users/alice/#", "users/+/#", false, true),
    ];

    #[test]
    fn table() {
        for &(rule, filter, c, m) in CASES {
            assert_eq!(covers(rule, filter), c, "covers({rule:?}, {filter:?})");
            assert_eq!(meets(rule, filter), m, "meets({rule:?}, {filter:?})");
            assert_eq!(
                meets(filter, rule),
                m,
                "meets is symmetric: {filter:?} {rule:?}"
            );
        }
    }

    /// Brute force over a small universe of topics: `covers` and `meets`
    /// agree with `topic::matches` on every pair of filters.
    #[test]
    fn agrees_with_matching_on_a_topic_universe() {
        let levels = ["a", "b", "", "$SYS"];
        let mut topics = Vec::new();
        for n in 1..=3 {
            let mut idx = vec![0usize; n];
            loop {
                topics.push(idx.iter().map(|&i| levels[i]).collect::<Vec<_>>().join("/"));
                let mut k = 0;
                while k < n {
                    idx[k] += 1;
                    if idx[k] < levels.len() {
                        break;
                    }
                    idx[k] = 0;
                    k += 1;
                }
                if k == n {
                    break;
                }
            }
        }
        let filters = [
            "#", "+", "a", "a/#", "a/+", "+/b", "+/+", "a/b", "a/+/b", "+/#", "$SYS/#", "$SYS/+",
            "$SYS", "a//b", "/#", "+/+/+", "a/b/#", "b/+/#",
        ];
        for r in filters {
            for f in filters {
                assert!(valid_filter(r) && valid_filter(f));
                // Filters of at most 3 levels: topics of up to 3 levels decide.
                let fs: Vec<_> = topics.iter().filter(|t| matches(f, t)).collect();
                let brute_covers = fs.iter().all(|t| matches(r, t));
                let brute_meets = fs.iter().any(|t| matches(r, t));
                // '#' reaches deeper than 3 levels, where the answers hold
                // the same way (a deeper topic adds no new shape).
                assert_eq!(covers(r, f), brute_covers, "covers({r:?}, {f:?})");
                assert_eq!(meets(r, f), brute_meets, "meets({r:?}, {f:?})");
            }
        }
    }
}
