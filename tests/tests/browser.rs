//! Hydration in a real browser: Debian's chromium driven through chromedriver (WebDriver).
//!
//! The blog is built WITH its client bundle (wasm), served, and a post and the list are used
//! like a person would. Both pages hydrate in leptos's islands mode (`hydrate = "islands"`):
//! the like button counts (on the server, through a server function) and the filter box
//! filters, each an `#[island]` of an otherwise static page whose bundle holds no page's code
//! and no layout; the table of contents (a `<details>`) opens with no code at all. Then the post is edited and revalidated on demand, the page reloaded:
//! new content, still hydrated, and a `#fragment` link stays in the page. Any console error
//! fails the test.
//!
//! Chromium and chromedriver are required; a machine without them fails this test unless
//! `ISR_SKIP_BROWSER_TESTS=1` is set (CI does not set it).

use fantoccini::Locator;
use isr_tests::browser::{
    browsers_available, build_with_client, click, console_errors, has_marker, set_marker, text,
    wait_for_hydration, Driver,
};
use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE};
use serde_json::json;

/// The secret that signs the preview links of the browser test.
const PREVIEW_SECRET: &str = "preview-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_hydrate_in_chromium_and_stay_hydrated_after_revalidation() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    build_with_client(&fx.site_root(), |args, envs, deadline| {
        fx.run_with_deadline(args, envs, deadline)
    });
    let server = BlogServer::start(&fx, &["serve"], &[("ISR_PREVIEW_SECRET", PREVIEW_SECRET)]);

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
    // An islands page: no props, the islands' own props in their elements, and a script that
    // starts leptos's islands mode.
    assert!(!page.body.contains("__isr_props"), "{}", page.body);
    assert!(page
        .body
        .contains("<leptos-island data-component=\"LikeButton_"));
    assert!(page.body.contains("bundle.isr_hydrate_islands();"));
    let bundle = server.get(&js).await;
    assert_eq!(bundle.status, 200);
    // The bundle exports the islands, and no page's hydration (no view's code).
    assert!(
        bundle.body.contains("export function LikeButton_"),
        "the like button island"
    );
    assert!(
        bundle.body.contains("export function PostFilter_"),
        "the filter island"
    );
    assert!(
        !bundle.body.contains("isr_hydrate__sblog"),
        "a page's own export"
    );
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
    let brotli = server
        .send(
            server
                .request(reqwest::Method::GET, &wasm)
                .header("accept-encoding", "gzip, br"),
        )
        .await;
    assert_eq!(brotli.header("content-encoding"), Some("br"));

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
        click(&browser, "button.like").await;
    }
    poll_until("three likes", POLL_DEADLINE, || async {
        (text(&browser, "span.likes").await == "3").then_some(())
    })
    .await;
    // The contents are a `<details>`: folded at first, open on a click, with no code.
    let toc = browser.find(Locator::Css("details.toc nav")).await.unwrap();
    assert!(!toc.is_displayed().await.unwrap(), "contents start folded");
    click(&browser, "details.toc summary").await;
    poll_until("the contents to unfold", POLL_DEADLINE, || async {
        toc.is_displayed().await.ok()?.then_some(())
    })
    .await;
    assert!(text(&browser, "details.toc nav")
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

    // A link of the filter island loads the post from the server: a marker set on this
    // document is gone once the post is shown, and the post's islands hydrate.
    set_marker(&browser).await;
    let link = browser
        .find(Locator::Css("ul.posts li a"))
        .await
        .expect("a post link");
    let href = link.attr("href").await.unwrap().expect("the link's href");
    link.click().await.unwrap();
    poll_until("the post to replace the list", POLL_DEADLINE, || async {
        let url = browser.current_url().await.ok()?;
        let fresh = !has_marker(&browser).await?;
        (url.path() == href && fresh).then_some(())
    })
    .await;
    assert!(browser.find(Locator::Css("article h1")).await.is_ok());
    assert_eq!(wait_for_hydration(&browser).await, 1, "the post hydrated");
    // `<A exact>` marks the current page only: not the header's "/blog" on a post.
    let header = browser.find(Locator::Css("header.site a")).await.unwrap();
    assert_eq!(header.attr("aria-current").await.unwrap(), None);

    // Edit → on-demand revalidation → reload: new content, and still hydrated.
    fx.edit_post(
        "what-is-isr",
        "## When to use it",
        "## When to reach for it",
    );
    let answer = server
        .revalidate(&json!({ "mode": "regenerate","paths": ["/blog/what-is-isr"]}))
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
    // The likes were counted on the server (a server function): once hydrated, the new page
    // shows the stored three, not the 0 it was rendered with; one more click makes four there.
    poll_until(
        "the stored likes after hydration",
        POLL_DEADLINE,
        || async { (text(&browser, "span.likes").await == "3").then_some(()) },
    )
    .await;
    click(&browser, "button.like").await;
    poll_until("the fourth like, stored", POLL_DEADLINE, || async {
        let stored = server
            .call_server_fn("/api/post_likes", "slug=what-is-isr")
            .await;
        (stored.body == "4" && text(&browser, "span.likes").await == "4").then_some(())
    })
    .await;

    // A contents entry (`#fragment`) stays in the document: the router scrolls, nothing loads.
    click(&browser, "details.toc summary").await;
    set_marker(&browser).await;
    let entry = browser
        .find(Locator::Css("details.toc nav a"))
        .await
        .unwrap();
    let fragment = entry.attr("href").await.unwrap().expect("an entry's href");
    entry.click().await.unwrap();
    poll_until("the fragment in the address bar", POLL_DEADLINE, || async {
        let url = browser.current_url().await.ok()?;
        (url.fragment() == fragment.strip_prefix('#')).then_some(())
    })
    .await;
    assert_eq!(has_marker(&browser).await, Some(true), "same document");

    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");

    // An editor's preview of the list (a link made by `blog preview-link`): the draft is
    // listed and labelled, the filter island hydrates over it, and the banner's exit link
    // brings back the public list.
    let made = fx.run(
        &["preview-link", "/blog", "--url", &server.base_url()],
        &[("ISR_PREVIEW_SECRET", PREVIEW_SECRET)],
    );
    assert_eq!(made.code(), Some(0), "{}", made.stderr);
    browser
        .goto(made.stdout.trim())
        .await
        .expect("open the preview link");
    poll_until("the preview of the list", POLL_DEADLINE, || async {
        let url = browser.current_url().await.ok()?;
        (url.path() == "/blog" && url.query().is_none()).then_some(())
    })
    .await;
    let banner = browser.find(Locator::Css("#isr-preview")).await.unwrap();
    assert!(
        banner.is_displayed().await.unwrap(),
        "the preview banner shows"
    );
    let listed = browser.find_all(Locator::Css("ul.posts li")).await.unwrap();
    assert_eq!(listed.len(), 7, "six published posts and the draft");
    assert_eq!(text(&browser, "span.unpublished").await, "draft");
    let filter = browser.find(Locator::Css("input.filter")).await.unwrap();
    poll_until("the preview's list to filter", POLL_DEADLINE, || async {
        filter.clear().await.ok()?;
        filter.send_keys("not published").await.ok()?;
        let shown = browser.find_all(Locator::Css("ul.posts li")).await.ok()?;
        let first = shown.first()?.attr("data-slug").await.ok()??;
        (shown.len() == 1 && first == "upcoming").then_some(())
    })
    .await;
    click(&browser, "#isr-preview a").await;
    poll_until("the public list after the exit", POLL_DEADLINE, || async {
        let url = browser.current_url().await.ok()?;
        let posts = browser.find_all(Locator::Css("ul.posts li")).await.ok()?;
        let banner = browser.find(Locator::Css("#isr-preview")).await.is_ok();
        (url.path() == "/blog" && posts.len() == 6 && !banner).then_some(())
    })
    .await;
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.close().await.unwrap();
}

/// Dev mode (`blog dev`): the port opens before the client bundle exists; the bundle builds in
/// the background, and pages rendered once it is ready load it and hydrate in chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_pages_hydrate_once_the_background_client_build_is_ready() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["dev"], &[("ISR_CLIENT_BUILD", "auto")]);
    // Served before (or while) the bundle builds: a complete page, without hydration yet.
    assert_eq!(server.get("/blog/what-is-isr").await.status, 200);
    poll_until(
        "a dev page that loads the client bundle",
        isr_tests::browser::CLIENT_BUILD_DEADLINE,
        || async {
            let page = server.get("/blog/what-is-isr").await;
            page.body.contains("/pkg/blog-").then_some(())
        },
    )
    .await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("browser profile dir");
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&server.url("/blog/what-is-isr"))
        .await
        .expect("open the post");
    let first = wait_for_hydration(&browser).await;
    click(&browser, "button.like").await;
    poll_until("one more like", POLL_DEADLINE, || async {
        (text(&browser, "span.likes").await == (first + 1).to_string()).then_some(())
    })
    .await;
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    browser.close().await.unwrap();
}
