//! Hydration in a real browser: Debian's chromium driven through chromedriver (WebDriver).
//!
//! The blog is built WITH its client bundle (wasm), served, and a post and the list are used
//! like a person would: the like button counts, the table of contents opens, the filter box
//! filters. Then the post is edited and revalidated on demand, the page reloaded: new content,
//! still hydrated. Any console error fails the test.
//!
//! Chromium and chromedriver are required; a machine without them fails this test unless
//! `ISR_SKIP_BROWSER_TESTS=1` is set (CI does not set it).

use fantoccini::Locator;
use isr_tests::browser::{
    browsers_available, build_with_client, console_errors, text, wait_for_hydration, Driver,
};
use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_hydrate_in_chromium_and_stay_hydrated_after_revalidation() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    build_with_client(&fx.site_root(), |args, envs, deadline| {
        fx.run_with_deadline(args, envs, deadline)
    });
    let server = BlogServer::start(&fx, &["serve"], &[]);

    // The page loads a content-hashed bundle that is served with long-lived cache headers.
    let page = server.get("/blog/what-is-isr").await;
    let js = page
        .body
        .split("from \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page imports its bundle")
        .to_string();
    assert!(js.starts_with("/pkg/blog-") && js.ends_with(".js"), "{js}");
    let bundle = server.get(&js).await;
    assert_eq!(bundle.status, 200);
    assert_eq!(
        bundle.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let wasm = js.replace(".js", "_bg.wasm");
    let gzipped = server
        .send(
            server
                .request(reqwest::Method::GET, &wasm)
                .header("accept-encoding", "gzip"),
        )
        .await;
    assert_eq!(gzipped.status, 200);
    assert_eq!(
        gzipped.header("content-encoding"),
        Some("gzip"),
        "the wasm is served precompressed"
    );

    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("browser profile dir");
    let browser = driver.browser(profile.path()).await;

    // A post: like ×3, table of contents toggles.
    browser
        .goto(&server.url("/blog/what-is-isr"))
        .await
        .expect("open the post");
    assert_eq!(
        browser.title().await.unwrap(),
        "What is Incremental Static Regeneration?"
    );
    let first = wait_for_hydration(&browser).await;
    for _ in first..3 {
        browser
            .find(Locator::Css("button.like"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    poll_until("three likes", POLL_DEADLINE, || async {
        (text(&browser, "span.likes").await == "3").then_some(())
    })
    .await;
    let toc = browser.find(Locator::Css("nav.toc")).await.unwrap();
    assert!(!toc.is_displayed().await.unwrap(), "contents start hidden");
    browser
        .find(Locator::Css("button.toc-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    poll_until("the toggle to show the contents", POLL_DEADLINE, || async {
        toc.is_displayed().await.ok()?.then_some(())
    })
    .await;
    assert!(text(&browser, "nav.toc")
        .await
        .contains("How a request is served"));
    let screenshot = browser.screenshot().await.expect("screenshot");
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(fx.path().join("post.png"), &screenshot).unwrap();

    // The list: typing filters it.
    browser
        .goto(&server.url("/blog"))
        .await
        .expect("open the list");
    let all = browser
        .find_all(Locator::Css("ul.posts li"))
        .await
        .unwrap()
        .len();
    assert_eq!(all, 6, "six published posts");
    let filter = browser.find(Locator::Css("input.filter")).await.unwrap();
    let shown = poll_until("the list to filter", POLL_DEADLINE, || async {
        filter.clear().await.ok()?;
        filter.send_keys("regenerat").await.ok()?;
        let shown = browser
            .find_all(Locator::Css("ul.posts li"))
            .await
            .ok()?
            .len();
        (shown < all).then_some(shown)
    })
    .await;
    assert_eq!(shown, 2, "two titles mention regeneration");
    poll_until("the count to follow the filter", POLL_DEADLINE, || async {
        text(&browser, "p.count")
            .await
            .starts_with("2 of 6")
            .then_some(())
    })
    .await;

    // Edit → on-demand revalidation → reload: new content, and still hydrated.
    fx.edit_post(
        "what-is-isr",
        "## When to use it",
        "## When to reach for it",
    );
    let answer = server
        .revalidate(&json!({"paths": ["/blog/what-is-isr"]}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["results"][0]["outcome"], "regenerated");
    browser
        .goto(&server.url("/blog/what-is-isr"))
        .await
        .unwrap();
    assert!(browser
        .source()
        .await
        .unwrap()
        .contains("When to reach for it"));
    assert_eq!(
        wait_for_hydration(&browser).await,
        1,
        "a fresh page starts at 0 likes"
    );

    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.close().await.unwrap();
}
