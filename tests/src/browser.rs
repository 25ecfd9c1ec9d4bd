//! WebDriver helpers shared by the browser tests: Debian's chromium driven through chromedriver,
//! both on loopback, killed on drop.
//!
//! Not run as a documentation test: it starts chromedriver and chromium (the browser tests do).
//!
//! ```no_run
//! # async fn demo() {
//! use isr_tests::browser::{browsers_available, Driver};
//! if browsers_available() {
//!     let driver = Driver::start();
//!     let profile = tempfile::tempdir().unwrap();
//!     let browser = driver.browser(profile.path()).await;
//!     browser.goto("http://127.0.0.1:3000/").await.unwrap();
//! }
//! # }
//! ```

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A cold client build compiles leptos for wasm32 (minutes on 2 cores).
pub const CLIENT_BUILD_DEADLINE: Duration = Duration::from_secs(25 * 60);

/// Runs `<app> build --site-root <site_root>` with the client build on (`run` is the fixture's
/// `run_with_deadline`) and asserts that it succeeded and produced the client bundle.
pub fn build_with_client(
    site_root: &std::path::Path,
    run: impl FnOnce(&[&str], &[(&str, &str)], Duration) -> crate::RunOutput,
) {
    let root = site_root.to_str().expect("utf-8 temp path");
    let build = run(
        &["build", "--site-root", root],
        &[("ISR_CLIENT_BUILD", "auto")],
        CLIENT_BUILD_DEADLINE,
    );
    assert_eq!(build.code(), Some(0), "build failed:\n{}", build.stderr);
    assert!(
        build.stderr.contains("client bundle ready"),
        "the build must produce the client bundle:\n{}",
        build.stderr
    );
    // The bundle of a new site root is size-optimized (`wasm-opt -Oz`).
    assert!(
        build.stderr.contains("client wasm optimized"),
        "the wasm must go through wasm-opt:\n{}",
        build.stderr
    );
}

/// Clicks the blog's like button until the page is hydrated (the count moves), then returns
/// the count. On timeout the failure shows the browser console, where hydration errors land.
///
/// Not run as a documentation test: it needs a browser on a served page (the browser tests do).
///
/// ```no_run
/// # async fn demo(browser: &fantoccini::Client) {
/// assert!(isr_tests::browser::wait_for_hydration(browser).await >= 1);
/// # }
/// ```
pub async fn wait_for_hydration(browser: &Client) -> u32 {
    let deadline = Instant::now() + crate::POLL_DEADLINE;
    loop {
        if let Ok(button) = browser.find(Locator::Css("button.like")).await {
            let _ = button.click().await;
            if let Ok(likes) = text(browser, "span.likes").await.trim().parse::<u32>() {
                if likes > 0 {
                    return likes;
                }
            }
        }
        if Instant::now() > deadline {
            let log = browser.issue_cmd(BrowserLog).await;
            panic!("the like button never reacted (no hydration); browser console: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether chromium and chromedriver are installed. When they are not, a browser test fails
/// unless `ISR_SKIP_BROWSER_TESTS=1` is set (then it returns `false` and the test skips).
///
/// ```no_run
/// if !isr_tests::browser::browsers_available() { return; }
/// ```
pub fn browsers_available() -> bool {
    let missing =
        !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists();
    if missing {
        assert!(
            std::env::var("ISR_SKIP_BROWSER_TESTS").as_deref() == Ok("1"),
            "chromium/chromedriver missing: run `bash scripts/setup-wasm.sh` (or set ISR_SKIP_BROWSER_TESTS=1 to skip)"
        );
        eprintln!("skipping: ISR_SKIP_BROWSER_TESTS=1 and no chromium");
    }
    !missing
}

/// chromedriver on a free loopback port, killed on drop.
///
/// Not run as a documentation test: it starts chromedriver and chromium (the browser tests do).
///
/// ```no_run
/// # async fn demo() {
/// let driver = isr_tests::browser::Driver::start();
/// let profile = tempfile::tempdir().unwrap();
/// let browser = driver.browser(profile.path()).await;
/// assert!(isr_tests::browser::console_errors(&browser).await.is_empty());
/// # }
/// ```
pub struct Driver {
    child: Child,
    url: String,
}

/// Starts of chromedriver tried, each on a new port: `crate::free_port` releases the port it
/// found, and when another process binds it first, chromedriver exits.
const DRIVER_ATTEMPTS: usize = 3;

impl Driver {
    /// Starts chromedriver and waits (deadline) until it answers `GET /status`; starts it
    /// again on another port when it exits first (its port was taken).
    pub fn start() -> Driver {
        let mut exits: Vec<String> = Vec::new();
        for _ in 0..DRIVER_ATTEMPTS {
            let port = crate::free_port();
            let child = Command::new(CHROMEDRIVER)
                .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                // A process that took the port first answers otherwise (or not at all), and
                // ours exits: it counts only while ours runs.
                let answered = driver_status(port).is_some_and(|body| body.contains("\"ready\""));
                if let Some(status) = driver.child.try_wait().expect("wait for chromedriver") {
                    exits.push(format!("port {port}: chromedriver exited ({status})"));
                    break;
                }
                if answered {
                    return driver;
                }
                assert!(Instant::now() < deadline, "chromedriver did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "chromedriver exited at start {DRIVER_ATTEMPTS} times: {}",
            exits.join("; ")
        );
    }

    /// A headless chromium session with its profile in `user_data_dir` and the console log on.
    pub async fn browser(&self, user_data_dir: &std::path::Path) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1000,800",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", user_data_dir.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("open a chromium session")
    }
}

/// What chromedriver on `port` answers to `GET /status` (head and body as text; `None`: no
/// answer). Read until the answer ends or holds its `"ready"` field.
fn driver_status(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !received.windows(7).any(|w| w == b"\"ready\"") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    (!received.is_empty()).then(|| String::from_utf8_lossy(&received).into_owned())
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type": "browser"}`: console messages so far
/// (each read empties the log).
#[derive(Debug)]
pub struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Console errors and warnings logged since the last read.
pub async fn console_errors(browser: &Client) -> Vec<String> {
    let entries = browser
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Clicks the first element matching `css` (panics when there is none or the click fails).
pub async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The text of the first element matching `css` (panics when there is none).
pub async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .text()
        .await
        .expect("element text")
}

/// Marks the current document (a page load replaces it, and the mark with it): with
/// [`has_marker`], tells a navigation that loaded a document from one that stayed in it.
pub async fn set_marker(browser: &Client) {
    browser
        .execute("window.__isr_test_marker = true;", vec![])
        .await
        .expect("set the marker");
}

/// Whether the current document carries the mark [`set_marker`] set; `None` while it cannot be
/// asked (loading).
pub async fn has_marker(browser: &Client) -> Option<bool> {
    browser
        .execute("return window.__isr_test_marker === true;", vec![])
        .await
        .ok()?
        .as_bool()
}
