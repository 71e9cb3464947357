//! Tests that cannot run here say so: `SKIPPED: <test>: <reason>` on stderr, never a silent pass.
//! Under `RSMTPD_CI=1` (scripts/test.sh, which runs as root after scripts/test-deps.sh installed
//! every tool) a skip is a failure instead: a green CI run means every test really ran.
//!
//! Included by path from each crate's test helpers (`#[path = ...] mod skip;`), so that the
//! workspace shares one definition without a crate of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Whether this run is CI's, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("RSMTPD_CI").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The running test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("test")
        .to_string()
}

/// Reports the current test as skipped for `reason`, or fails it under CI.
pub fn skip(reason: &str) {
    let line = format!("SKIPPED: {}: {reason}", test_name());
    if in_ci() {
        panic!(
            "{line} (RSMTPD_CI=1: CI runs as root with every tool installed, so nothing may skip)"
        );
    }
    eprintln!("{line}");
}

/// `true` when `cond` holds; otherwise reports the skip (see [`skip`]) and returns `false`:
/// `if !require(x, "why") { return; }`.
pub fn require(cond: bool, reason: &str) -> bool {
    if !cond {
        skip(reason);
    }
    cond
}

/// Whether the effective user is root (read from /proc, so that every crate can include this
/// file without a dependency).
pub fn is_root_user() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uids = s.lines().find_map(|l| l.strip_prefix("Uid:"))?.to_string();
            uids.split_whitespace().nth(1).map(|e| e == "0")
        })
        .unwrap_or(false)
}

/// Root, which mounting, namespaces, chown and the real OpenSMTPD need.
pub fn require_root() -> bool {
    require(
        is_root_user(),
        "needs root (run the tests as root, as CI does)",
    )
}

/// Where `tool` is: itself when it is a path, else the first match in `PATH`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).exists().then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A program the test runs (`swaks`, `/usr/sbin/makemap`): scripts/test-deps.sh installs it.
pub fn require_tool(tool: &str) -> bool {
    require(
        find_tool(tool).is_some(),
        &format!("{tool} is not installed (bash scripts/test-deps.sh installs it)"),
    )
}
