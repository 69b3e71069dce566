//! Access control: an ordered list of allow/deny rules over who may publish
//! to a topic and subscribe to a filter (the seeds' emqttd ACL, in TOML).
//!
//! Owns [`Acl`], an immutable, parsed rule list built once from `[acl]`
//! (inline `[[acl.rule]]`s first, then the rules of `acl.file`; see
//! [`file`]) and shared read-only by every shard through a
//! `crate::reload::Reloadable<Acl>`; a reload (SIGHUP, `BrokerHandle::reload`)
//! builds a new one, and a bad file on reload keeps the old. The protocol handlers ask it through the shard's glue
//! (`crate::protocol::acl`), which keeps each connection's recent publish
//! decisions in a [`cache::DecisionCache`].
//!
//! # Matching
//! * Rules are tried in order; the first whose `who` and `access` apply
//!   and one of whose `topics` matches decides. None: `acl.no_match`.
//! * `who`: everyone, a client id, a username, or the peer's address in a
//!   CIDR network ([`Cidr`]).
//! * A rule topic is a filter (wildcards allowed) in which `%c` stands for
//!   the client id and `%u` for the username. A client without a username
//!   matches no topic using `%u`; an id or username holding `/`, `+` or `#`
//!   matches no topic using it (it could widen the rule). `eq F` names the
//!   filter `F` literally: no wildcards, no substitution.
//! * PUBLISH topic `T`: a rule topic matches when it matches `T` as a filter
//!   (`eq F`: when `T` is `F`).
//! * SUBSCRIBE filter `F` (for `$share/{group}/F`, `F`): an *allow* rule
//!   topic matches when it covers `F` (every topic `F` can match, it
//!   matches too; `a/#` covers `a/+/b`, `a/+` does not cover `a/#`); a
//!   *deny* rule topic matches when it meets `F` (some topic matches both:
//!   deny `a/secret` refuses `a/#` and `#`). So every message a granted
//!   subscription receives has a topic whose first matching rule allows
//!   reading it, and messages are not checked again on delivery. `eq F`
//!   matches the filter `F` only, literally.
//! * `$SYS`: a topic or filter whose first level is `$SYS` is allowed only
//!   by a rule that matches it; `no_match = "allow"` does not open it.
//! * An ACL with no rules and `no_match = "allow"` is off: nothing is
//!   checked ([`Acl::is_off`]), as if there were no ACL.

pub mod cache;
mod cidr;
pub mod file;
mod filters;

use crate::config::{AclConfig, AclRuleConfig, AclWho, ConfigError};
use crate::hooks::ClientInfo;
use crate::topic;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

pub use cidr::Cidr;

/// What a rule (or `no_match`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Allow,
    Deny,
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Publish,
    Subscribe,
    /// Both.
    Pubsub,
}

impl Access {
    fn includes(self, asked: Access) -> bool {
        self == Access::Pubsub || self == asked
    }
}

/// Who is asking: what `who` rules and `%c` / `%u` look at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub ip: Option<IpAddr>,
}

impl<'a> Subject<'a> {
    pub fn of(info: &'a ClientInfo) -> Subject<'a> {
        Subject {
            client_id: &info.client_id,
            username: info.username.as_deref(),
            ip: info.peer.map(|p| p.ip()),
        }
    }
}

/// A decision and what made it: the rule's number (1-based, in the order
/// rules are tried) or `None` for `no_match` / the `$SYS` default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub permission: Permission,
    pub rule: Option<usize>,
}

impl Verdict {
    pub fn allowed(self) -> bool {
        self.permission == Permission::Allow
    }
}

/// The parsed rules.
#[derive(Debug)]
pub struct Acl {
    rules: Vec<Rule>,
    no_match: Permission,
    /// Unique per `Acl` built in this process: caches of decisions made
    /// under another one are stale.
    generation: u64,
}

#[derive(Debug)]
struct Rule {
    permission: Permission,
    who: Who,
    access: Access,
    topics: Vec<Pattern>,
}

#[derive(Debug)]
enum Who {
    All,
    ClientId(Box<str>),
    Username(Box<str>),
    Ip(Cidr),
}

#[derive(Debug)]
enum Pattern {
    /// `eq F`: the filter F, literally.
    Eq(Box<str>),
    /// A filter without `%c` / `%u`.
    Filter(Box<str>),
    /// A filter with `%c` and/or `%u`, substituted per client.
    Template(Box<str>),
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl Acl {
    /// No rules, everything allowed: the ACL is off.
    pub fn open() -> Acl {
        Acl::new(Vec::new(), Permission::Allow)
    }

    fn new(rules: Vec<Rule>, no_match: Permission) -> Acl {
        Acl {
            rules,
            no_match,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The inline rules, then those of `acl.file` (read now). The error
    /// names the key or the file, and the rule.
    pub fn load(cfg: &AclConfig) -> Result<Acl, ConfigError> {
        let mut rules = parse_rules(&cfg.rule, "acl.rule")?;
        if !cfg.file.is_empty() {
            let from_file = file::read(&cfg.file)?;
            rules.extend(parse_rules(
                &from_file,
                &format!("acl.file {}: rule", cfg.file),
            )?);
        }
        Ok(Acl::new(rules, cfg.no_match))
    }

    /// Tells caches apart: see [`cache::DecisionCache`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether nothing is checked: no rules and `no_match = "allow"`.
    pub fn is_off(&self) -> bool {
        self.rules.is_empty() && self.no_match == Permission::Allow
    }

    /// Rules, inline and from the file.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// May `who` publish to `topic` (a valid topic name)?
    pub fn check_publish(&self, who: &Subject, topic: &str) -> Verdict {
        self.decide(who, Access::Publish, topic, |p, _, s| match p.expand(s) {
            Some(Expanded::Eq(e)) => e == topic,
            Some(Expanded::Filter(f)) => topic::matches(&f, topic),
            None => false,
        })
    }

    /// May `who` subscribe to `filter` (a valid filter, not `$share/`: the
    /// caller passes the filter a shared subscription names)?
    pub fn check_subscribe(&self, who: &Subject, filter: &str) -> Verdict {
        self.decide(who, Access::Subscribe, filter, |p, permission, s| {
            match p.expand(s) {
                Some(Expanded::Eq(e)) => e == filter,
                Some(Expanded::Filter(f)) => match permission {
                    Permission::Allow => filters::covers(&f, filter),
                    Permission::Deny => filters::meets(&f, filter),
                },
                None => false,
            }
        })
    }

    /// The first rule for `who` and `access` with a topic `hit` accepts.
    fn decide(
        &self,
        who: &Subject,
        access: Access,
        name: &str,
        hit: impl Fn(&Pattern, Permission, &Subject) -> bool,
    ) -> Verdict {
        let found = self.rules.iter().enumerate().find(|(_, r)| {
            r.access.includes(access)
                && r.who.is(who)
                && r.topics.iter().any(|p| hit(p, r.permission, who))
        });
        match found {
            Some((i, r)) => Verdict {
                permission: r.permission,
                rule: Some(i + 1),
            },
            None => Verdict {
                permission: match is_sys(name) {
                    true => Permission::Deny,
                    false => self.no_match,
                },
                rule: None,
            },
        }
    }
}

/// Whether a topic or filter is under `$SYS`.
fn is_sys(name: &str) -> bool {
    name.split('/').next() == Some("$SYS")
}

impl Who {
    fn is(&self, s: &Subject) -> bool {
        match self {
            Who::All => true,
            Who::ClientId(id) => **id == *s.client_id,
            Who::Username(u) => s.username == Some(&**u),
            Who::Ip(net) => s.ip.is_some_and(|ip| net.contains(ip)),
        }
    }
}

/// A rule topic made concrete for one client.
enum Expanded<'a> {
    Eq(&'a str),
    Filter(Cow<'a, str>),
}

impl Pattern {
    /// For this client: `None` when it cannot match (a `%u` and no
    /// username, or a value that would add levels or wildcards).
    fn expand<'a>(&'a self, s: &Subject) -> Option<Expanded<'a>> {
        match self {
            Pattern::Eq(e) => Some(Expanded::Eq(e)),
            Pattern::Filter(f) => Some(Expanded::Filter(Cow::Borrowed(f))),
            Pattern::Template(t) => {
                substitute(t, s.client_id, s.username).map(|f| Expanded::Filter(Cow::Owned(f)))
            }
        }
    }
}

/// `%c` and `%u` replaced; `None` if a needed value is missing, empty or
/// holds `/`, `+` or `#`.
fn substitute(template: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let safe = |v: &str| !v.is_empty() && !v.bytes().any(|b| matches!(b, b'/' | b'+' | b'#'));
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let value = match rest.get(i + 1..i + 2) {
            Some("c") => Some(client_id),
            Some("u") => Some(username?),
            _ => None,
        };
        match value {
            Some(v) if safe(v) => {
                out.push_str(v);
                rest = &rest[i + 2..];
            }
            Some(_) => return None,
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Parse rules; errors are `{origin}[{n}]...` (`n` counts from 1).
fn parse_rules(rules: &[AclRuleConfig], origin: &str) -> Result<Vec<Rule>, ConfigError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            parse_rule(r).map_err(|why| ConfigError(format!("{origin}[{}]: {why}", i + 1)))
        })
        .collect()
}

fn parse_rule(r: &AclRuleConfig) -> Result<Rule, String> {
    if r.topics.is_empty() {
        return Err("topics: at least one topic is needed".into());
    }
    let topics = r
        .topics
        .iter()
        .enumerate()
        .map(|(i, t)| parse_pattern(t).map_err(|why| format!("topics[{}] {t:?}: {why}", i + 1)))
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        permission: r.permission,
        who: parse_who(&r.who)?,
        access: r.access,
        topics,
    })
}

fn parse_who(w: &AclWho) -> Result<Who, String> {
    let err = |why: &str| Err(format!("who: {why}"));
    match w {
        AclWho::Keyword(k) if k == "all" => Ok(Who::All),
        AclWho::Keyword(k) => err(&format!(
            "{k:?}: expected \"all\" or {{ clientid | username | ipaddr = \"...\" }}"
        )),
        AclWho::Match(m) => match (&m.clientid, &m.username, &m.ipaddr) {
            (Some(c), None, None) => Ok(Who::ClientId(c.as_str().into())),
            (None, Some(u), None) => Ok(Who::Username(u.as_str().into())),
            (None, None, Some(ip)) => Cidr::parse(ip)
                .map(Who::Ip)
                .map_err(|e| format!("who: {e}")),
            _ => err("exactly one of clientid, username, ipaddr"),
        },
    }
}

fn parse_pattern(t: &str) -> Result<Pattern, String> {
    if let Some(f) = t.strip_prefix("eq ") {
        return match topic::valid_filter(f) {
            true => Ok(Pattern::Eq(f.into())),
            false => Err("not a valid topic filter after \"eq \"".into()),
        };
    }
    if topic::is_share(t) {
        return Err("a rule names the filter inside $share/{group}/, not the share".into());
    }
    let templated = t.contains("%c") || t.contains("%u");
    // Validated with a stand-in value for each placeholder.
    let sample = substitute(t, "c", Some("u")).unwrap_or_default();
    if !topic::valid_filter(&sample) {
        return Err("not a valid topic filter".into());
    }
    Ok(match templated {
        true => Pattern::Template(t.into()),
        false => Pattern::Filter(t.into()),
    })
}

#[cfg(test)]
mod tests;
