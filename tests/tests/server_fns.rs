//! leptos server functions on isr's router, against the blog's like button (`like_post`,
//! `post_likes`): calls over HTTP as a hydrated page makes them, persistence across restarts,
//! and what a call may not do (come from another site, like a post that does not exist, send an
//! unbounded body, be cached).

use isr_tests::{BlogServer, Fixture};

const SLUG: &str = "what-is-isr";

/// A call as the hydrated page makes it: a form-encoded POST from the site's own origin.
async fn call(
    server: &BlogServer,
    function: &str,
    slug: &str,
    extra: &[(&str, &str)],
) -> isr_tests::Resp {
    let mut request = server
        .request(reqwest::Method::POST, &format!("/api/{function}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", server.base_url())
        .body(format!("slug={slug}"));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    server.send(request).await
}

#[tokio::test]
async fn likes_are_counted_on_the_server_and_survive_a_restart() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert_eq!(call(&server, "post_likes", SLUG, &[]).await.body, "0");
    for expected in ["1", "2"] {
        let liked = call(&server, "like_post", SLUG, &[]).await;
        assert_eq!(liked.status, 200, "{}", liked.body);
        assert_eq!(liked.body, expected);
        assert_eq!(liked.header("cache-control"), Some("no-store"));
    }
    drop(server);
    let restarted = BlogServer::start(&fx, &[], &[]);
    assert_eq!(call(&restarted, "post_likes", SLUG, &[]).await.body, "2");
    let file = std::fs::read_to_string(fx.path().join("likes.json")).unwrap();
    let counts: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(counts, serde_json::json!({ SLUG: 2 }));
}

#[tokio::test]
async fn calls_from_other_sites_unknown_posts_and_huge_bodies_change_nothing() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    // Another site's page (a form or a script posting here): refused before the function runs.
    let forged = call(
        &server,
        "like_post",
        SLUG,
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let fetched = call(
        &server,
        "like_post",
        SLUG,
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(fetched.status, 403);
    // A post that does not exist: an error, and no entry.
    let unknown = call(&server, "like_post", "no-such-post", &[]).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    for spelling in ["./what-is-isr", "../content/what-is-isr", "/etc/passwd"] {
        let other = call(&server, "like_post", spelling, &[]).await;
        assert_eq!(other.status, 404, "{spelling}: {}", other.body);
    }
    assert!(
        unknown.body.contains("no post `no-such-post`"),
        "{}",
        unknown.body
    );
    // A body over the limit: 413, answered before the body is read (raw, so that the answer is
    // read even while the rest of the body is refused).
    let origin = server.base_url();
    let huge = server
        .raw_with_body(
            "POST",
            "/api/like_post",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", origin.as_str()),
            ],
            format!("slug={}", "x".repeat(2 * 1024 * 1024)).as_bytes(),
        )
        .await;
    assert_eq!(huge.status, 413);
    assert_eq!(call(&server, "post_likes", SLUG, &[]).await.body, "0");
    assert!(
        !fx.path().join("likes.json").exists(),
        "nothing was written"
    );
    // A call without Origin (curl, a script on the server) is not a browser's cross-site one.
    let plain = server
        .call_server_fn("/api/like_post", &format!("slug={SLUG}"))
        .await;
    assert_eq!(plain.body, "1");
}
