//! The shop's cart in a real browser: Debian's chromium driven through chromedriver.
//!
//! The shop is built WITH its client bundle (wasm) and served. On a product page the static
//! HTML says 0 items; once hydrated, "Add to cart" counts, the count is kept in localStorage,
//! survives a reload and shows on every page. The shop's pages hydrate in full (the default), so
//! their links are leptos_router `<A>`s: a click loads the next page from the server, as a plain
//! link does, and that page hydrates with its own props. Any console error fails the test.
//!
//! Chromium and chromedriver are required; a machine without them fails this test unless
//! `ISR_SKIP_BROWSER_TESTS=1` is set (CI does not set it).

use fantoccini::{Client, Locator};
use isr_tests::browser::{
    browsers_available, build_with_client, click, console_errors, has_marker, set_marker, text,
    BrowserLog, Driver,
};
use isr_tests::shop::{ShopFixture, ShopServer, TEST_PRODUCTS};
use isr_tests::{poll_until, POLL_DEADLINE};
use rusqlite::{Connection, OpenFlags};
use std::time::{Duration, Instant};

/// The badge's number (`None` while it is not a number).
async fn badge(browser: &Client) -> Option<u32> {
    text(browser, ".cart-count").await.trim().parse().ok()
}

/// Clicks "Add to cart" until the badge moves (the page is hydrated), then returns the count.
/// On timeout the failure shows the browser console, where hydration errors land.
async fn add_until_hydrated(browser: &Client) -> u32 {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Ok(button) = browser.find(Locator::Css("button.add-to-cart")).await {
            let _ = button.click().await;
            if let Some(count) = badge(browser).await.filter(|n| *n > 0) {
                return count;
            }
        }
        if Instant::now() > deadline {
            let log = browser.issue_cmd(BrowserLog).await;
            panic!("\"Add to cart\" never reacted (no hydration); browser console: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_badge(browser: &Client, expected: u32) {
    poll_until(
        &format!("the cart badge to show {expected}"),
        POLL_DEADLINE,
        || async { (badge(browser).await == Some(expected)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_counts_in_the_browser_and_survives_a_reload() {
    if !browsers_available() {
        return;
    }
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    build_with_client(&fx.site_root(), |args, envs, deadline| {
        fx.run_with_deadline(args, envs, deadline)
    });
    let server = ShopServer::start(&fx, &["serve"], &[]);

    // A product in stock (its button is enabled).
    let id: i64 = Connection::open_with_flags(fx.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|db| {
            db.query_row(
                "SELECT id FROM products WHERE stock > 0 ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
        })
        .expect("a product in stock");
    let path = format!("/products/{id}");

    // The static page: badge 0, the bundle imported.
    let page = server.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<span class=\"cart-count\">0</span>"));
    assert!(page.body.contains("from \"/pkg/shop-"), "{}", page.body);

    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("browser profile dir");
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&server.url(&path))
        .await
        .expect("open the product");
    assert!(browser.title().await.unwrap().ends_with("— ISR shop"));

    let first = add_until_hydrated(&browser).await;
    assert_eq!(first, 1, "one click, one item");
    click(&browser, "button.add-to-cart").await;
    wait_for_badge(&browser, 2).await;

    // Reload: the static page says 0, then the stored cart shows up after hydration.
    browser.refresh().await.expect("reload");
    wait_for_badge(&browser, 2).await;
    let stored = browser
        .execute(
            "return window.localStorage.getItem('isr-shop-cart');",
            vec![],
        )
        .await
        .expect("read localStorage");
    let stored: serde_json::Value =
        serde_json::from_str(stored.as_str().expect("a stored cart")).expect("JSON cart");
    assert_eq!(stored, serde_json::json!({ id.to_string(): 2 }));

    // Every page of the shop shows the same cart.
    browser
        .goto(&server.url("/products/page/2"))
        .await
        .expect("open the catalogue");
    wait_for_badge(&browser, 2).await;
    // The pager's `<A>` loads page 3 from the server (every page is its own document, with its
    // own props): a marker set on this document is gone once page 3 shows, and page 3
    // hydrates (its badge shows the stored cart).
    set_marker(&browser).await;
    click(&browser, "nav.pager a.next").await;
    poll_until("page 3 to replace page 2", POLL_DEADLINE, || async {
        let url = browser.current_url().await.ok()?;
        let fresh = !has_marker(&browser).await?;
        (url.path() == "/products/page/3" && fresh).then_some(())
    })
    .await;
    wait_for_badge(&browser, 2).await;
    let screenshot = browser.screenshot().await.expect("screenshot");
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(fx.path().join("catalogue.png"), &screenshot).unwrap();

    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.close().await.unwrap();
}
