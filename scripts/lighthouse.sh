#!/usr/bin/env bash
# Lighthouse 12 (npm) against Debian chromium, headless: performance, accessibility, best
# practices and SEO of a blog post, the blog list, a product page and a catalogue page, each
# site built with its client bundle and served on a free loopback port. Prints the four scores
# per page (0-100). Run by hand: `bash scripts/lighthouse.sh` (needs npm and chromium; the first
# run installs lighthouse into target/lighthouse).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
tools=target/lighthouse
if [ ! -x "$tools/node_modules/.bin/lighthouse" ]; then
  echo "[lighthouse] npm install lighthouse@12 into $tools" >&2
  npm install --silent --no-audit --no-fund --prefix "$tools" lighthouse@12 >&2
fi
cargo build -q -p blog -p shop
work=$(mktemp -d /tmp/isr-lighthouse-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start <app> <port>: builds the site (with its client bundle) and serves it; waits until it serves.
start() {
  local app=$1 port=$2
  ISR_CLIENT_BUILD=auto SHOP_DB="$work/shop.db" RUST_LOG=info \
    "target/debug/$app" start --site-root "$work/$app" --addr "127.0.0.1:$port" \
    >"$work/$app.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 1800); do
    if grep -q "serving .* at http://" "$work/$app.log"; then return 0; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$work/$app.log" >&2; exit 1; fi
    sleep 1
  done
  echo "[lighthouse] $app did not start" >&2; exit 1
}

blog_port=$(free_port); start blog "$blog_port"
shop_port=$(free_port); start shop "$shop_port"

printf '%-40s %11s %13s %14s %4s\n' page performance accessibility best-practices seo
n=0
for url in "http://127.0.0.1:$blog_port/blog/what-is-isr" "http://127.0.0.1:$blog_port/blog" \
           "http://127.0.0.1:$shop_port/products/42" "http://127.0.0.1:$shop_port/products/page/2"; do
  n=$((n + 1))
  CHROME_PATH=/usr/bin/chromium "$tools/node_modules/.bin/lighthouse" "$url" --quiet \
    --output=json --output-path="$work/report-$n.json" \
    --only-categories=performance,accessibility,best-practices,seo \
    --chrome-flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$work/profile-$n" \
    >/dev/null 2>"$work/lighthouse-$n.log" || { cat "$work/lighthouse-$n.log" >&2; exit 1; }
  python3 - "$work/report-$n.json" "$url" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
cats = report["categories"]
scores = [round(100 * (cats[c]["score"] or 0)) for c in ("performance", "accessibility", "best-practices", "seo")]
path = sys.argv[2].split("/", 3)[3]
lcp = report["audits"]["largest-contentful-paint"]["displayValue"]
print(f"/{path:<39} {scores[0]:>11} {scores[1]:>13} {scores[2]:>14} {scores[3]:>4}   (LCP {lcp})")
if scores[0] < 100:
    element = report["audits"].get("largest-contentful-paint-element", {}).get("details", {})
    for item in element.get("items", []):
        for row in item.get("items", []):
            node = row.get("node")
            if node:
                print(f"    LCP element: {node.get('snippet')}")
            elif "phase" in row:
                print(f"    LCP {row['phase']}: {row.get('timing', 0):.0f} ms")
for cat in cats.values():
    for ref in cat["auditRefs"]:
        audit = report["audits"][ref["id"]]
        if ref["weight"] > 0 and audit.get("score") is not None and audit["score"] < 1:
            print(f"    {cat['id']}: {audit['id']} ({audit['score']}) {audit['title']}")
PY
done
