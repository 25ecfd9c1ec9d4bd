//! The operator dashboard (`/_isr/`) in Debian's chromium: log in, find a page by search,
//! revalidate it and see its generation time change without a reload, then see a failing
//! page's error. The blog is built without its client bundle: the dashboard needs none (its one
//! inline script keeps it live, see `isr::dashboard::LIVE_SCRIPT`).

use fantoccini::{Client, Locator};
use isr_tests::browser::{browsers_available, click, console_errors, BrowserLog, Driver};
use isr_tests::{BlogServer, Fixture, POLL_DEADLINE};
use std::time::{Duration, Instant};

const TOKEN: &str = "dashboard-token-0123456789";
const POST: &str = "/blog/what-is-isr";

/// Polls `probe` (a script returning a value or null) until it gives something.
async fn until(browser: &Client, what: &str, script: &str) -> serde_json::Value {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Ok(value) = browser.execute(script, vec![]).await {
            if !value.is_null() && value != false {
                return value;
            }
        }
        if Instant::now() > deadline {
            let log = browser.issue_cmd(BrowserLog).await;
            panic!("timed out waiting for {what}; browser console: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(part: &str) -> String {
    format!(
        "const row = document.querySelector('tr[data-key=\"{POST}\"]'); if (!row) return null; {part}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_search_revalidate_and_watch_the_page_change_without_a_reload() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[("ISR_ADMIN_TOKEN", TOKEN)]);
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;

    // Log in.
    browser.goto(&server.url("/_isr/")).await.unwrap();
    let field = browser.find(Locator::Css("#token")).await.unwrap();
    field.send_keys(TOKEN).await.unwrap();
    click(&browser, "form[action='/_isr/login'] button").await;
    until(
        &browser,
        "the dashboard",
        "return document.querySelector('#isr-pages') ? true : null",
    )
    .await;
    // No client bundle: the one script is isr's inline one.
    let scripts = browser
        .execute(
            "return [...document.scripts].map(s => s.src || s.textContent.slice(0, 40));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scripts.as_array().map(Vec::len), Some(1), "{scripts}");
    assert!(
        scripts[0].as_str().unwrap().starts_with("const parts = ["),
        "{scripts}"
    );

    // Find the page by search (a GET form).
    let search = browser.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("what-is").await.unwrap();
    click(&browser, "#isr-filter button").await;
    until(
        &browser,
        "the search result",
        &format!(
            "return document.querySelectorAll('#isr-pages tbody tr').length === 1 && {} ? true : null",
            format_args!("!!document.querySelector('tr[data-key=\"{POST}\"]')")
        ),
    )
    .await;

    // From here on the page must never reload: a marker on the window survives only that way.
    browser
        .execute("window.__stayed = true; return true;", vec![])
        .await
        .unwrap();
    let first_ms = until(
        &browser,
        "the row",
        &row("return row.querySelector('td.generated').dataset.ms;"),
    )
    .await;
    // Hydrated and live: the age cell changes by itself (the page refreshes every second).
    let first_age = until(
        &browser,
        "the age",
        &row("return row.children[3].textContent;"),
    )
    .await;
    until(
        &browser,
        "a live update of the age",
        &row(&format!(
            "return row.children[3].textContent !== {first_age} && window.__stayed ? true : null;"
        )),
    )
    .await;

    // Revalidate: the generation time changes, with no reload.
    browser
        .find(Locator::Css(&format!(
            "tr[data-key='{POST}'] form.revalidate button"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let new_ms = until(
        &browser,
        "a new generation time",
        &row(&format!(
            "const ms = row.querySelector('td.generated').dataset.ms; return ms !== {first_ms} && window.__stayed ? ms : null;"
        )),
    )
    .await;
    assert!(
        new_ms.as_str().unwrap().parse::<u64>().unwrap()
            > first_ms.as_str().unwrap().parse::<u64>().unwrap()
    );
    let notice = until(
        &browser,
        "the notice",
        "const n = document.querySelector('#isr-notice'); return n && !n.hidden && n.textContent ? n.textContent : null;",
    )
    .await;
    assert!(notice.as_str().unwrap().contains("regenerated"), "{notice}");

    // `ISR_DASHBOARD_SCREENSHOT=book/src/dashboard.png` saves the book's screenshot (Operating).
    if let Some(path) = std::env::var_os("ISR_DASHBOARD_SCREENSHOT") {
        browser.goto(&server.url("/_isr/")).await.unwrap();
        until(
            &browser,
            "the full dashboard",
            "return document.querySelector('#isr-pages') ? true : null",
        )
        .await;
        std::fs::write(path, browser.screenshot().await.unwrap()).unwrap();
        browser.goto(&server.url("/_isr/?q=what-is")).await.unwrap();
        browser
            .execute("window.__stayed = true; return true;", vec![])
            .await
            .unwrap();
        until(&browser, "the row again", &row("return true;")).await;
    }

    // A failing page shows its error.
    fx.hide_content();
    browser
        .find(Locator::Css(&format!(
            "tr[data-key='{POST}'] form.revalidate button"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = until(
        &browser,
        "the page's error",
        &row("const e = row.querySelector('td.error').textContent; return e.includes('content folder') && window.__stayed ? e : null;"),
    )
    .await;
    // Its backoff after one failure is about a second, so the state may be back to fresh by
    // now; the failure count and the last run stay until a generation succeeds.
    let run = until(
        &browser,
        "the last run",
        &row("return [row.children[5].textContent, row.children[6].textContent];"),
    )
    .await;
    assert_eq!(
        run,
        serde_json::json!(["1", "error (on_demand)"]),
        "{error}"
    );
    let errors: Vec<String> = console_errors(&browser)
        .await
        .into_iter()
        // The failed revalidation's answer is 200: nothing in the console is expected at all.
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    drop(server);
}
