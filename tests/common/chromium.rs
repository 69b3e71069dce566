//! Headless Chromium for the browser tests (tests/interop_browser.rs,
//! tests/dashboard.rs): Debian's `chromium`, with the flags every run needs.

use std::path::Path;
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium headless on the profile directory `profile`, with no sandbox,
/// GPU, QUIC or background traffic; the caller adds its flags and the URL.
/// Fails the test (with an install hint) when Chromium is missing.
pub fn headless(profile: &Path) -> Command {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does)"
    );
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}
