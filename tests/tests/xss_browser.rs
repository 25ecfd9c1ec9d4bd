//! A page's data never runs as script, in a real browser (Debian's chromium).
//!
//! Reproduces the stored XSS of a post title (leptos_meta writes `<Title>` text unescaped, and
//! `<Body>` attributes went to the first `<body` in the rendered head): a title that closes
//! `<title>` and opens `<script>`, and one that carries a `<body onload=…>`. Then markup that
//! the post's own body holds (Markdown passes raw HTML through): the blog's strict
//! Content-Security-Policy keeps it from running while the page still hydrates.
//!
//! Chromium and chromedriver are required; a machine without them fails this test unless
//! `ISR_SKIP_BROWSER_TESTS=1` is set (CI does not set it).

use isr_tests::browser::{
    browsers_available, build_with_client, console_errors, wait_for_hydration, Driver,
};
use isr_tests::{post_markdown, BlogServer, Fixture};

/// What the injected scripts set when they run.
const PWNED: &str = "return window.isrPwned === undefined ? null : String(window.isrPwned);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn titles_and_post_markup_never_run_as_script() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    let titles = [
        (
            "xss-title",
            "x</title><script>window.isrPwned='title'</script>",
        ),
        ("xss-body", "y <body onload=\"window.isrPwned='body'\">"),
    ];
    for (slug, title) in titles {
        fx.write_post(slug, &post_markdown(title, "2026-12-05", "Plain text."));
    }
    fx.write_post(
        "xss-markup",
        &post_markdown(
            "Markup in the body",
            "2026-12-05",
            "<script>window.isrPwned='markup'</script>\n\n<img src=\"/none.png\" onerror=\"window.isrPwned='img'\">",
        ),
    );
    build_with_client(&fx.site_root(), |args, envs, deadline| {
        fx.run_with_deadline(args, envs, deadline)
    });
    let server = BlogServer::start(&fx, &["serve"], &[]);

    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("browser profile dir");
    let browser = driver.browser(profile.path()).await;

    for (slug, title) in titles {
        browser
            .goto(&server.url(&format!("/blog/{slug}")))
            .await
            .expect("open the post");
        // Hydrated (the like button counts): every script the page is meant to run has run.
        wait_for_hydration(&browser).await;
        assert_eq!(
            browser.title().await.unwrap(),
            title,
            "the title is the post's text"
        );
        let pwned = browser.execute(PWNED, vec![]).await.unwrap();
        assert!(pwned.is_null(), "{slug}: the title ran as script ({pwned})");
        let body_onload = browser
            .execute("return document.body.getAttribute('onload');", vec![])
            .await
            .unwrap();
        assert!(
            body_onload.is_null(),
            "{slug}: <body onload> = {body_onload}"
        );
        let errors = console_errors(&browser).await;
        assert!(
            errors.is_empty(),
            "{slug}: the policy blocks none of isr's own scripts: {errors:#?}"
        );
    }

    // Raw markup in the post body is in the DOM, but the policy keeps it from running.
    browser
        .goto(&server.url("/blog/xss-markup"))
        .await
        .expect("open the post");
    wait_for_hydration(&browser).await;
    let injected = browser
        .execute(
            "return document.querySelectorAll('div.body script, div.body img[onerror]').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, 2, "the markup is in the page");
    let pwned = browser.execute(PWNED, vec![]).await.unwrap();
    assert!(pwned.is_null(), "the post's markup ran as script ({pwned})");
    let errors = console_errors(&browser).await;
    assert!(
        errors.iter().any(|e| e.contains("Content Security Policy")),
        "the browser reports the blocked script: {errors:#?}"
    );
    browser.close().await.unwrap();
}
