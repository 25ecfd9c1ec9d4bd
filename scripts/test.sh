#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what the tests need, checks
# formatting and lints, then runs every test (unit, trybuild, integration over loopback HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-off run gains nothing from incremental caches, and they were most of a fresh clone's
# target/ (24 of 35 GB in target/debug; CI's shared disk ran out). Set it to keep your own.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

bash scripts/setup-wasm.sh
# Varnish (with varnish-modules: the xkey vmod the shipped VCL purges by) and nginx for the
# CDN tests (tests/tests/cdn.rs, cdn_tags.rs), redis-server for the shared-tier
# tests (tests/tests/shared.rs); the tests start their own on free ports. A policy-rc.d keeps
# the packages from starting system-wide services.
if ! command -v varnishd >/dev/null || ! command -v nginx >/dev/null || ! command -v redis-server >/dev/null \
    || ! dpkg -s varnish-modules >/dev/null 2>&1; then
  echo "[test] apt-get install varnish varnish-modules nginx redis-server"
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq varnish varnish-modules nginx redis-server >/dev/null
  if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
cargo fmt --all --check
# The book: mdBook fails on a chapter or an included file that is missing; tests/tests/book.rs
# checks the rest (anchors, links, no inline Rust).
command -v mdbook >/dev/null || cargo install mdbook --locked --version 0.5.4 --no-default-features --features search
mdbook build book
cargo clippy --workspace --all-targets -- -D warnings
# isr with fewer features than the examples use: `ssr` + `cli` (no `redis`, no `metrics`)
# builds, lints clean and refuses --redis naming the feature; `ssr` alone (a library, no
# command line) builds and lints clean.
cargo clippy -p isr --features ssr --all-targets -- -D warnings
cargo test -p isr --features ssr --lib cli::
cargo clippy -p isr --no-default-features --features ssr --all-targets -- -D warnings
# An islands-only client bundle as an app's `hydrate` build sees isr (no `ssr`): a fully
# hydrated page is a compile error naming it, layouts are left out (trybuild).
cargo test -p isr --no-default-features --features hydrate,islands --test macros
# API docs without a broken link or a private link, as docs.rs would build them.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p isr-core -p isr-macros -p isr --features isr/ssr,isr/redis,isr/metrics,isr/cdn-apis
# The dependency contract (deny.toml: licenses, sources, no second version of a crate without
# a reason) and the library crates as they would be published (packaged and built from the
# package). Not `--workspace`: the examples and the test crate are apps (publish = false) and
# their `isr` dependency would resolve against crates.io, where that name is another crate.
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --version 0.20.2
cargo deny check bans licenses sources
# cargo verifies each package against its own extraction of the ones before it, and never
# extracts a name and version again: drop the extractions an earlier run of this left.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/isr-macros-* "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/isr-core-*
cargo package -p isr-macros -p isr-core -p isr --allow-dirty
# The examples build and link for macOS and Windows too (scripts/cross.sh).
bash scripts/cross.sh
cargo test --workspace
