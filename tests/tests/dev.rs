//! Dev mode (`blog dev`, what `cargo run` of a debug build does) over HTTP: the port opens
//! without a build, every request runs its loader and renders (an edit shows on the next
//! request), nothing is stored or cached, pages carry a visible marker, and a failing loader
//! shows its route and message in the page.

use isr_tests::{BlogServer, Fixture};

const POST: &str = "/blog/what-is-isr";

#[tokio::test]
async fn every_request_renders_and_nothing_is_stored_or_cached() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["dev"], &[]);
    let log = server.stderr_text();
    assert!(log.contains("dev mode"), "{log}");
    assert!(!log.contains("building"), "no build before serving: {log}");

    let page = server.get(POST).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.cache(), "DEV");
    assert!(page
        .body
        .contains("<h1>What is Incremental Static Regeneration?</h1>"));
    assert!(page.body.contains("isr dev"), "the marker: {}", page.body);
    // In its layouts, as in production.
    assert!(page.body.contains(r#"<header class="site">"#));

    // An edit to the post shows on the very next request, without a webhook or a window.
    fx.edit_post("what-is-isr", "selectively", "SELECTIVELY-EDITED");
    let edited = server.get(POST).await;
    assert!(
        edited.body.contains("SELECTIVELY-EDITED"),
        "{}",
        edited.body
    );
    // The list too (a new post appears at once).
    fx.write_post(
        "brand-new",
        &isr_tests::post_markdown("Brand new", "2026-12-07", "Fresh."),
    );
    assert!(server.get("/blog").await.body.contains("Brand new"));
    assert_eq!(server.get("/blog/brand-new").await.status, 200);

    // Nothing was written as a page.
    assert!(!fx.page_file(POST).exists());
    assert!(!fx.page_file("/blog").exists());

    // A path that is no page: the app's 404, marked, not stored.
    let missing = server.get("/blog/no-such-post").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    assert!(missing.body.contains("No such page") && missing.body.contains("isr dev"));
    // The same HTTP rules as in production: pages answer GET and HEAD, a trailing slash is
    // redirected with its query string.
    let post = server
        .send(server.request(reqwest::Method::POST, "/blog"))
        .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let slash = server.get("/blog/?page=2").await;
    assert_eq!(slash.status, 308);
    assert_eq!(slash.header("location"), Some("/blog?page=2"));
    // File routes render per request too.
    let feed = server.get("/blog/feed.xml").await;
    assert_eq!(feed.status, 200);
    assert!(feed.body.contains("Brand new"), "{}", feed.body);
}

#[tokio::test]
async fn a_failing_loader_shows_its_route_and_message_in_the_page() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["dev"], &[]);
    assert_eq!(server.get(POST).await.status, 200);
    // Front matter that does not parse: the loader returns an error.
    fx.write_post("what-is-isr", "---\ntitle: [unclosed\n---\nbody");
    let failed = server.get(POST).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.header("cache-control"), Some("no-store"));
    assert!(
        failed
            .body
            .contains("The loader of <code>/blog/:slug</code> failed"),
        "{}",
        failed.body
    );
    assert!(failed.body.contains("<code>/blog/what-is-isr</code>"));
    let message = failed
        .body
        .split(r#"<pre class="isr-error">"#)
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .expect("the error in the page");
    assert!(
        message.contains("what-is-isr"),
        "the cause names the post: {message}"
    );
    // Logged with the page's path (the log is read as the server writes it).
    isr_tests::poll_until(
        "the failure in the log",
        isr_tests::POLL_DEADLINE,
        || async {
            let log = server.stderr_text();
            log.lines()
                .any(|line| {
                    line.contains("dev: the loader failed")
                        && line.contains("path=/blog/what-is-isr")
                })
                .then_some(())
        },
    )
    .await;
    // Fixed: the next request renders it again.
    fx.write_post(
        "what-is-isr",
        &isr_tests::post_markdown("Fixed again", "2026-11-02", "Back."),
    );
    let fixed = server.get(POST).await;
    assert_eq!(fixed.status, 200);
    assert!(fixed.body.contains("Fixed again"));
}

#[test]
fn without_a_subcommand_a_debug_build_develops_and_start_serves_the_site() {
    let fx = Fixture::new();
    // The test binaries are debug builds: the default is `dev`.
    let mut command = std::process::Command::new(isr_tests::blog_binary());
    command
        .env("BLOG_CONTENT_DIR", fx.content_dir())
        .env("ISR_CLIENT_BUILD", "off")
        .env("RUST_LOG", "info")
        .args([
            "--site-root",
            fx.site_root().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = BlogServer::spawn(command);
    assert!(
        server.stderr_text().contains("dev mode"),
        "{}",
        server.stderr_text()
    );
    drop(server);
    let server = BlogServer::start(&fx, &["start"], &[]);
    assert!(!server.stderr_text().contains("dev mode"));
    assert!(fx.page_file(POST).exists(), "start builds the site");
}
