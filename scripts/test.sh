#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting, lints, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI runs as root with everything scripts/test-deps.sh installs: a test that would skip (not
# root, a tool missing) fails instead, so a green run means every test ran. RSMTPD_CI=0 turns
# that off for a run by hand on a machine that lacks something.
export RSMTPD_CI="${RSMTPD_CI:-1}"
bash scripts/test-deps.sh
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
cargo test --workspace
# Fuzzing, bounded (about two minutes): the seeds and saved regressions replayed, then every
# target under AFL++ for 10 s; fails on any crash. Long runs: see fuzz/README.md.
bash fuzz/run.sh 10
