#!/usr/bin/env bash
# Builds and links the examples for the platforms app developers write code on, from this
# Linux machine: macOS (aarch64-apple-darwin, linked by zig through cargo-zigbuild; zig's
# bundled macOS headers are enough for the bundled SQLite) and Windows (x86_64-pc-windows-gnu,
# linked by Debian's mingw-w64). Nothing can run them here (Debian 12's wine lacks what Rust's
# standard library needs on Windows), so the fallbacks those builds use are tested on Linux
# (`FsStore::portable`, `--serve-threads 0`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Where pip puts the commands it installs (cargo-zigbuild), even when it is not on the PATH.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

rustup target add aarch64-apple-darwin x86_64-pc-windows-gnu >/dev/null 2>&1
if ! command -v cargo-zigbuild >/dev/null; then
  echo "[cross] pip install ziglang cargo-zigbuild"
  python3 -m pip install --quiet ziglang cargo-zigbuild
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "[cross] apt-get install gcc-mingw-w64-x86-64"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
fi

echo "[cross] macOS: cargo zigbuild --target aarch64-apple-darwin -p blog -p shop"
cargo zigbuild --target aarch64-apple-darwin -p blog -p shop
echo "[cross] Windows: cargo build --target x86_64-pc-windows-gnu -p blog -p shop"
cargo build --target x86_64-pc-windows-gnu -p blog -p shop

# The linked executables are what each platform runs: Mach-O 64-bit arm64 and PE32+.
python3 - <<'PY'
import sys
checks = [
    ("target/aarch64-apple-darwin/debug/blog", b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01", "Mach-O arm64"),
    ("target/aarch64-apple-darwin/debug/shop", b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01", "Mach-O arm64"),
    ("target/x86_64-pc-windows-gnu/debug/blog.exe", b"MZ", "PE (Windows)"),
    ("target/x86_64-pc-windows-gnu/debug/shop.exe", b"MZ", "PE (Windows)"),
]
for path, magic, what in checks:
    with open(path, "rb") as f:
        head = f.read(len(magic))
    if head != magic:
        sys.exit(f"[cross] {path} is not a {what} executable: {head!r}")
    print(f"[cross] {path}: {what}")
PY
