#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what the tests need, checks
# formatting and lints, then runs every test (unit, trybuild, integration over loopback HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

bash scripts/setup-wasm.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
