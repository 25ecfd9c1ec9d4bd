#!/usr/bin/python3
"""The dev loop of an example, checked end to end (run by hand; not part of CI):

    /usr/bin/python3 scripts/dev-loop.py blog     # or: shop

1. starts `cargo leptos watch --project <example>` on free loopback ports, with its site root,
   content (blog) or database (shop: 200 products, seeded first) in a temporary folder;
2. opens the example's page in headless chromium once it answers (the cold build);
3. edits a view (the "← All …" link text in `src/pages.rs`) and waits until the server serves
   the new text AND the open page reloaded itself (cargo-leptos's live reload: a mark set on the
   page is gone, the new text is in it) — nothing here navigates the browser;
4. edits the loader's data (blog: a heading of a post's Markdown; shop: a price through the
   admin API, which revalidates on demand) and waits until the page serves it;
5. restores the view file, stops the watch (its whole process group) and removes the folder.

Prints each step's time. Needs cargo-leptos (`INSTALL_CARGO_LEPTOS=1 bash scripts/setup-wasm.sh`),
Debian's chromium + chromedriver and python3-selenium (installed here when missing).
Exit status: 0 when every step was seen, 1 when one was not within its deadline, 2 on bad usage.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLD_DEADLINE_S = 30 * 60
STEP_DEADLINE_S = 10 * 60
ADMIN_TOKEN = "dev-loop-token"

EXAMPLES = {
    "blog": {
        "page": "/blog/what-is-isr",
        "view": ("examples/blog/src/pages.rs", '"← All posts"', '"← Every post"'),
        "view_text": "← Every post",
    },
    "shop": {
        "page": "/products/1",
        "view": ("examples/shop/src/pages.rs", '"← All products"', '"← Every product"'),
        "view_text": "← Every product",
    },
}


def log(message):
    print(f"[dev-loop] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None, ""


def poll(what, deadline_s, check, every=0.25):
    """Calls `check` until it returns a truthy value; the value, or exits 1 at the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    log(f"FAILED: {what} not seen within {deadline_s} s")
    raise SystemExit(1)


def ensure_tools():
    if shutil.which("cargo-leptos") is None:
        log("cargo-leptos is missing: INSTALL_CARGO_LEPTOS=1 bash scripts/setup-wasm.sh")
        raise SystemExit(2)
    try:
        import selenium  # noqa: F401
    except ImportError:
        log("apt-get install python3-selenium")
        subprocess.run(["apt-get", "install", "-y", "-qq", "python3-selenium"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        os.execv(sys.executable, [sys.executable, *sys.argv])


def browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in EXAMPLES:
        log(f"usage: {sys.argv[0]} blog|shop")
        raise SystemExit(2)
    ensure_tools()
    name = sys.argv[1]
    example = EXAMPLES[name]
    work = Path(tempfile.mkdtemp(prefix=f"isr-dev-loop-{name}-"))
    site_port, reload_port = free_port(), free_port()
    base = f"http://127.0.0.1:{site_port}"
    env = {**os.environ, "LEPTOS_SITE_ADDR": f"127.0.0.1:{site_port}", "LEPTOS_RELOAD_PORT": str(reload_port),
           "LEPTOS_SITE_ROOT": str(work / "site"), "RUST_LOG": "info"}
    if name == "blog":
        shutil.copytree(ROOT / "examples/blog/content", work / "content")
        env["BLOG_CONTENT_DIR"] = str(work / "content")
    else:
        env.update(SHOP_DB=str(work / "shop.db"), SHOP_ADMIN_TOKEN=ADMIN_TOKEN)
        log("seeding a 200-product database")
        subprocess.run(["cargo", "run", "-q", "-p", "shop", "--", "seed", "--products", "200",
                        "--db", str(work / "shop.db")], cwd=ROOT, check=True)
    view_file, old_text, new_text = example["view"]
    view_path = ROOT / view_file
    original = view_path.read_text()
    assert old_text in original, f"{old_text} not in {view_file}"
    watch_log = open(work / "watch.log", "w")
    watch = None
    driver = None
    timings = []
    try:
        log(f"cargo leptos watch --project {name} (site {base}, reload port {reload_port}); log: {work}/watch.log")
        started = time.monotonic()
        watch = subprocess.Popen(["cargo", "leptos", "watch", "--project", name], cwd=ROOT, env=env,
                                 stdout=watch_log, stderr=subprocess.STDOUT, start_new_session=True)
        url = base + example["page"]
        poll("the first answer", COLD_DEADLINE_S, lambda: get(url)[0] == 200, every=1)
        timings.append(("cold start: watch → first page served", time.monotonic() - started))

        driver = browser(work / "profile")
        driver.get(url)
        poll("the page loaded", 30, lambda: driver.execute_script("return document.readyState") == "complete")
        # The live-reload script opens its websocket once the page has loaded: give it a moment.
        time.sleep(2)
        driver.execute_script("window.__devLoopMark = true;")

        log(f"edit: {view_file}: {old_text} → {new_text}")
        edited = time.monotonic()
        view_path.write_text(original.replace(old_text, new_text))
        poll("the edited view served", STEP_DEADLINE_S, lambda: example["view_text"] in get(url)[1])
        timings.append(("view edit → new HTML served", time.monotonic() - edited))
        poll("the open page reloaded by cargo-leptos", 60,
             lambda: not driver.execute_script("return window.__devLoopMark === true;")
             and example["view_text"] in driver.page_source)
        timings.append(("view edit → open page live-reloaded with it", time.monotonic() - edited))

        changed = time.monotonic()
        if name == "blog":
            post = work / "content/what-is-isr.md"
            text = post.read_text()
            assert "## When to use it" in text
            post.write_text(text.replace("## When to use it", "## When to reach for it"))
            poll("the edited post served", STEP_DEADLINE_S, lambda: "When to reach for it" in get(url)[1])
            timings.append(("post edit → served (revalidate 5 s: a request after the window regenerates)",
                            time.monotonic() - changed))
        else:
            request = urllib.request.Request(f"{base}/api/products/1/price", method="PUT",
                                             data=json.dumps({"price_cents": 424242}).encode(),
                                             headers={"authorization": f"Bearer {ADMIN_TOKEN}",
                                                      "content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200, response.status
            poll("the new price served", STEP_DEADLINE_S, lambda: "$4,242.42" in get(url)[1])
            timings.append(("price change (admin API, on-demand revalidation) → served",
                            time.monotonic() - changed))
    finally:
        view_path.write_text(original)
        if driver is not None:
            driver.quit()
        if watch is not None and watch.poll() is None:
            os.killpg(watch.pid, signal.SIGTERM)
            try:
                watch.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(watch.pid, signal.SIGKILL)
                watch.wait(timeout=20)
        watch_log.close()
        if timings and len(timings) == 4:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work} (watch.log) for a look")
    print(f"| {name}: step | seconds |\n|---|---|")
    for what, seconds in timings:
        print(f"| {what} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
