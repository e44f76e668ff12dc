#!/usr/bin/env bash
# The whole test suite: formatting, lints, root-free unit tests, then the
# integration tests as root against the real kernel.
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${MCM_TEST_THREADS:-4}"
