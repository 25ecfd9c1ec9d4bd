#!/usr/bin/env bash
# Installs what the client (hydrate) build and the browser tests need. Idempotent; run as root
# on Debian 12 (CI calls it). Prints the environment to use at the end.
#
# - wasm32 target: `rustup target add wasm32-unknown-unknown` (time-boxed). Where that cannot
#   download (offline machines), falls back to Debian's rustc-web 1.96 + rust-web-src, building
#   std from source (`-Zbuild-std`), linked by lld-22. scripts/build-client.sh picks whichever
#   works.
# - wasm-bindgen-cli at exactly the version of the `wasm-bindgen` crate in Cargo.lock.
# - chromium + chromedriver (browser tests), from Debian; npm when missing (the client build
#   installs binaryen's wasm-opt with it, into target/isr-tools).
# - INSTALL_CARGO_LEPTOS=1 also installs cargo-leptos (slow: ~27 min on 2 cores), npm's
#   binaryen (wasm-opt; Debian's binaryen 108 breaks wasm-bindgen output and is removed) and
#   python3-selenium (scripts/dev-loop.py drives chromium with it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '[setup-wasm] %s\n' "$*" >&2; }

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
CARGO_LEPTOS_VERSION="${CARGO_LEPTOS_VERSION:-0.3.11}"
BINARYEN_NPM_VERSION="${BINARYEN_NPM_VERSION:-132.0.0}"

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# ---- wasm32 target -------------------------------------------------------------
if rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  log "rustup wasm32-unknown-unknown target present"
elif timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  log "installed rustup target wasm32-unknown-unknown"
else
  log "rustup cannot add wasm32 here: using Debian rustc-web + std from source"
  apt_install rustc-web cargo-web rust-web-src lld-22
  test -x /usr/bin/rust-lld
  test -f /usr/lib/rustlib/src/rust/library/Cargo.lock
fi

# ---- browser for tests -------------------------------------------------------------
apt_install chromium chromium-driver
# npm: the client build installs binaryen's wasm-opt with it (Debian's binaryen 108 breaks
# wasm-bindgen's output).
command -v npm >/dev/null || apt_install npm

# ---- wasm-bindgen-cli --------------------------------------------------------------
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (~2.5 min)"
  # no --locked: the registry mirror may lack a version pinned by the CLI's own lockfile
  cargo install -q --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
log "wasm-bindgen $(wasm-bindgen --version | awk '{print $2}')"

# ---- optional: cargo-leptos + wasm-opt -----------------------------------------------
if [ "${INSTALL_CARGO_LEPTOS:-0}" = "1" ]; then
  if dpkg-query -W -f='${Status}' binaryen 2>/dev/null | grep -q "install ok installed"; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq binaryen >/dev/null
  fi
  if command -v npm >/dev/null && [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_NPM_VERSION%%.*}" ]; then
    npm install -g --silent "binaryen@$BINARYEN_NPM_VERSION"
  fi
  apt_install python3-selenium
  if [ "$(cargo-leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
    log "cargo install cargo-leptos $CARGO_LEPTOS_VERSION (~27 min)"
    if [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; then
      RUSTC=/usr/bin/rustc /usr/bin/cargo install -q cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
    elif ! cargo install -q cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked; then
      # cargo-leptos 0.3.11's Cargo.lock pins cargo-util-schemas 0.14.2 (rustc >= 1.96) and
      # unlocked its newest dependencies need 1.97: build its own lock with 0.14.1 (rustc 1.94).
      log "retrying with cargo-util-schemas 0.14.1 in cargo-leptos's lock (for rustc $(rustc --version | awk '{print $2}'))"
      src=$(mktemp -d)
      cargo info -q "cargo-leptos@$CARGO_LEPTOS_VERSION" >/dev/null
      tar xzf "$(ls "$HOME"/.cargo/registry/cache/*/"cargo-leptos-$CARGO_LEPTOS_VERSION.crate" | head -1)" -C "$src"
      (cd "$src/cargo-leptos-$CARGO_LEPTOS_VERSION" \
        && cargo update -q -p cargo-util-schemas --precise 0.14.1 \
        && cargo install -q --path . --locked)
      rm -rf "$src"
    fi
  fi
  if command -v rustup >/dev/null && [ -x /usr/bin/rustc ] && ! rustup toolchain list | grep -q '^debian-web'; then
    rustup toolchain link debian-web /usr
  fi
fi
log "done"
