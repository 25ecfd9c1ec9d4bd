//! The starter (`examples/starter`, the app the book's Getting started builds) as its reader
//! runs it: built with its client bundle over a SQLite file of its own, served, and opened in
//! Debian's chromium. The note page is static HTML from the database, and once the bundle has
//! hydrated it, the Like button counts. Any console error fails the test.
//!
//! Chromium and chromedriver are required; a machine without them fails this test unless
//! `ISR_SKIP_BROWSER_TESTS=1` is set (CI does not set it).

use fantoccini::{Client, Locator};
use isr_tests::browser::{
    browsers_available, console_errors, BrowserLog, Driver, CLIENT_BUILD_DEADLINE,
};
use isr_tests::{poll_until, BlogServer, POLL_DEADLINE};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The starter's binary, with its database and site root in `dir`.
fn starter(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(isr_tests::cargo_build_binary("starter"));
    command
        .args(args)
        .arg("--site-root")
        .arg(dir.join("site"))
        .env("STARTER_DB", dir.join("notes.db"))
        .env("RUST_LOG", "info")
        .env_remove("LEPTOS_SITE_ROOT")
        .env_remove("LEPTOS_SITE_ADDR")
        .env_remove("LEPTOS_OUTPUT_NAME")
        .env_remove("ISR_CLIENT_BUILD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Clicks Like until the page is hydrated (the count moves), then returns the button's text.
async fn like_until_hydrated(browser: &Client) -> String {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Ok(button) = browser.find(Locator::Css("button")).await {
            let _ = button.click().await;
            if let Ok(label) = button.text().await {
                if label != "Like (0)" {
                    return label;
                }
            }
        }
        if Instant::now() > deadline {
            let log = browser.issue_cmd(BrowserLog).await;
            panic!("the Like button never reacted (no hydration); browser console: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starter_serves_its_database_and_hydrates() {
    if !browsers_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let build =
        isr_tests::run_to_completion(starter(dir.path(), &["build"]), CLIENT_BUILD_DEADLINE);
    assert_eq!(build.code(), Some(0), "build failed:\n{}", build.stderr);
    assert!(
        build.stderr.contains("client bundle ready"),
        "{}",
        build.stderr
    );

    let mut serve = starter(dir.path(), &["serve"]);
    serve.args(["--addr", "127.0.0.1:0"]);
    let server = tokio::task::block_in_place(|| BlogServer::spawn(serve));
    let page = server.get("/notes/1").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Hello, isr</h1>"), "{}", page.body);
    assert!(
        page.body.contains("/pkg/starter-"),
        "the page loads the bundle: {}",
        page.body
    );

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser.goto(&server.url("/notes/1")).await.unwrap();
    assert_eq!(
        like_until_hydrated(&browser).await,
        "Like (1)",
        "one click, one like"
    );
    browser
        .find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    poll_until("a second like", POLL_DEADLINE, || async {
        let label = browser
            .find(Locator::Css("button"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (label == "Like (2)").then_some(())
    })
    .await;
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.close().await.unwrap();
}
