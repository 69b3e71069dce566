//! The configuration examples in the README parse and validate: each
//! ```toml block of the "Security", "Listeners" and "Operations" sections is read with
//! `Config::from_toml` (file paths in them are not opened by validation).

use coremq::config::Config;

/// The ```toml blocks between `## heading` and the next `## `.
fn toml_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no ## {heading}"));
    let body = &readme[start + 4..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end]
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn readme_security_and_listener_examples_are_valid_configs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut checked = 0;
    for heading in ["Security", "Listeners", "Operations"] {
        for block in toml_blocks(&readme, heading) {
            if let Err(e) = Config::from_toml(&block) {
                panic!("README ## {heading} example does not load: {e}\n{block}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found {checked} examples");
}
