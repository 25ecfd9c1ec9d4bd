//! The blog embedded in an app's own axum server (`examples/blog/examples/embedded.rs`): the
//! app's route and `tower` layer next to isr's pages, revalidation, sitemap and access log.

use isr_tests::{BlogServer, Fixture, SECRET};
use serde_json::json;
use std::process::{Command, Stdio};

#[tokio::test]
async fn isr_serves_inside_the_apps_own_router_and_layers() {
    let fx = Fixture::new();
    let mut command = Command::new(isr_tests::cargo_build_example("blog", "embedded"));
    for var in [
        "LEPTOS_SITE_ADDR",
        "LEPTOS_SITE_ROOT",
        "ISR_CLIENT_BUILD",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("LEPTOS_SITE_ROOT", fx.site_root())
        .env("BLOG_CONTENT_DIR", fx.content_dir())
        .env("ISR_CLIENT_BUILD", "off")
        .env("ISR_REVALIDATE_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = BlogServer::spawn(command);

    // The app's own route, under the app's own layer.
    let health = server.get("/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    assert_eq!(health.header("x-served-by"), Some("embedded-blog"));

    // isr's pages, built before serving, under the same layer.
    let post = server.get("/blog/what-is-isr").await;
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(post.cache(), "HIT");
    assert_eq!(post.header("x-served-by"), Some("embedded-blog"));
    assert!(fx.page_file("/blog/what-is-isr").is_file());
    let missing = server.get("/blog/no-such-post").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("No such page"), "the app's own 404");

    // Everything else isr serves: on-demand revalidation, the sitemap.
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/what-is-isr"] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["results"][0]["outcome"], "regenerated");
    let sitemap = server.get("/sitemap.xml").await;
    assert!(
        sitemap.body.contains("/blog/what-is-isr</loc>"),
        "{}",
        sitemap.body
    );

    // One access log line per request, and a graceful stop.
    assert!(
        server
            .stderr_text()
            .lines()
            .any(|l| l.contains("isr::access") && l.contains("/healthz")),
        "{}",
        server.stderr_text()
    );
    let status = server.stop_with("TERM");
    assert!(status.success(), "{status}; {}", server.stderr_text());
}
