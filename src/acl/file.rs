//! `acl.file`: more ACL rules in a TOML file of their own, in the same
//! `[[rule]]` shape as the inline `[[acl.rule]]`s and tried after them.
//!
//! Read by [`super::Acl::load`] at start (a bad file is a `ConfigError`
//! naming the file and the rule, so the broker does not start) and again on
//! each reload (where the caller keeps the old rules on an error).
//!
//! ```toml
//! [[rule]]
//! permission = "allow"
//! who = { username = "sensor" }
//! access = "publish"
//! topics = ["sensors/%u/#"]
//! ```

use crate::config::{AclRuleConfig, ConfigError};
use serde::Deserialize;

/// The file's shape: rules and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    rule: Vec<AclRuleConfig>,
}

/// The rules in the file at `path`, not yet checked (see `super::parse_rules`).
pub fn read(path: &str) -> Result<Vec<AclRuleConfig>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("acl.file {path}: cannot read: {e}")))?;
    parse(&text).map_err(|e| ConfigError(format!("acl.file {path}: {e}")))
}

/// The rules in a file's text.
fn parse(text: &str) -> Result<Vec<AclRuleConfig>, String> {
    toml::from_str::<AclFile>(text)
        .map(|f| f.rule)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Access, Permission};
    use crate::config::AclWho;

    #[test]
    fn rules_in_order() {
        let rules = parse(
            "[[rule]]\npermission = \"deny\"\nwho = { ipaddr = \"10.0.0.0/8\" }\naccess = \"pubsub\"\ntopics = [\"#\"]\n\
             [[rule]]\npermission = \"allow\"\nwho = \"all\"\naccess = \"publish\"\ntopics = [\"a\", \"eq b/#\"]\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].permission, Permission::Deny);
        assert_eq!(rules[1].access, Access::Publish);
        assert_eq!(rules[1].who, AclWho::Keyword("all".into()));
        assert_eq!(rules[1].topics, ["a", "eq b/#"]);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_files_say_why() {
        let e = parse("[[rule]]\npermission = \"maybe\"\nwho = \"all\"\naccess = \"publish\"\ntopics = [\"a\"]\n")
            .unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        let e = parse("no_match = \"deny\"\n").unwrap_err();
        assert!(e.contains("no_match"), "{e}");
        let e = read("/nonexistent/acl.toml").unwrap_err();
        assert!(e.0.contains("acl.file /nonexistent/acl.toml"), "{e}");
    }
}
