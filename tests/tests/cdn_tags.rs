//! Purging by tag through a real Varnish with the xkey vmod (Debian's `varnish-modules`) and
//! the shipped `deploy/varnish/isr.vcl`: a tag revalidation of about a thousand pages is one
//! soft purge request; the edge serves its old copy while it refetches, and the new page
//! ever after.

use isr_tests::varnish::{self, through, Varnish};
use isr_tests::{poll_until, post_markdown, BlogServer, Fixture, POLL_DEADLINE};
use serde_json::json;

const POST: &str = "/blog/what-is-isr";
const POST_SLUG: &str = "what-is-isr";
const POST_OLD_TEXT: &str = "No content frozen forever.";
const FEED: &str = "/blog/feed.xml";
/// What a browser asks for (the CDN keeps one copy per encoding).
const BROWSER: [(&str, &str); 1] = [("accept-encoding", "br, gzip")];

/// Posts added to the fixture's, so that the tag `posts` names about 1,000 pages.
const EXTRA_POSTS: usize = 990;

fn blog_behind_varnish(fx: &Fixture) -> (BlogServer, Varnish) {
    varnish::in_front_of(|port| {
        let endpoint = format!("http://127.0.0.1:{port}");
        BlogServer::start(fx, &["--cdn-purge", &endpoint], &[])
    })
}

fn purges(metrics: &isr_tests::Metrics, kind: &str) -> f64 {
    metrics.sum(
        "isr_cdn_purges_total",
        &[("cdn", "varnish"), ("kind", kind), ("outcome", "ok")],
    )
}

#[tokio::test]
async fn a_tag_of_a_thousand_pages_is_one_soft_purge_and_the_edge_serves_stale_while_it_refetches()
{
    let fx = Fixture::new();
    for i in 0..EXTRA_POSTS {
        fx.write_post(
            &format!("bulk-{i:04}"),
            &post_markdown(&format!("Bulk post {i}"), "2025-01-01", "Bulk."),
        );
    }
    let (server, varnish) = blog_behind_varnish(&fx);
    let cached = through(&varnish, POST, &[]).await;
    assert!(cached.body.contains(POST_OLD_TEXT));
    assert!(through(&varnish, POST, &[]).await.varnish_hit());
    // Another page of the tag at the edge, kept there for 60 s unless purged.
    assert!(through(&varnish, FEED, &[])
        .await
        .body
        .contains(POST_OLD_TEXT));
    assert!(through(&varnish, FEED, &[]).await.varnish_hit());

    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Soft-purged edit 5e1b.");
    let before = purges(&server.metrics().await, "soft");
    // `auto`: the post just requested is regenerated, every other page of the tag marked
    // stale; the edge is told once, by the tag.
    let answer = server.revalidate(&json!({ "tags": ["posts"] })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let results = results["results"].as_array().unwrap();
    assert!(results.len() >= EXTRA_POSTS, "{}", results.len());
    let post = results.iter().find(|r| r["path"] == POST).unwrap();
    assert_eq!(post["outcome"], "regenerated", "{post}");
    assert_eq!(post["purged"], true, "{post}");
    let metrics = server.metrics().await;
    assert_eq!(
        purges(&metrics, "soft") - before,
        1.0,
        "one xkey-softpurge request for {} pages",
        results.len()
    );
    assert_eq!(purges(&metrics, "hard"), 0.0);

    // Soft: the first request after the purge gets the old copy at once (and starts the
    // refetch); once the new page arrived, only the new page.
    let first = through(&varnish, POST, &[]).await;
    assert!(first.body.contains(POST_OLD_TEXT), "{}", first.status);
    poll_until("the new page through the edge", POLL_DEADLINE, || async {
        let edge = through(&varnish, POST, &[]).await;
        edge.body.contains("Soft-purged edit 5e1b.").then_some(())
    })
    .await;
    for _ in 0..5 {
        let edge = through(&varnish, POST, &[]).await;
        assert!(
            edge.body.contains("Soft-purged edit 5e1b."),
            "old copy after the new one"
        );
        assert!(edge.varnish_hit());
    }
    // The same one request reached the feed's object: it carries the edit well within its
    // 60-second window.
    poll_until("the new feed through the edge", POLL_DEADLINE, || async {
        let edge = through(&varnish, FEED, &[]).await;
        edge.body.contains("Soft-purged edit 5e1b.").then_some(())
    })
    .await;
    assert_eq!(purges(&server.metrics().await, "soft") - before, 1.0);
    eprintln!(
        "tag `posts`: {} pages revalidated, 1 purge request",
        results.len()
    );
}

#[tokio::test]
async fn an_expire_invalidation_is_a_hard_purge_the_next_edge_request_waits_for() {
    let fx = Fixture::new();
    let (server, varnish) = blog_behind_varnish(&fx);
    assert!(through(&varnish, POST, &[])
        .await
        .body
        .contains(POST_OLD_TEXT));
    assert!(through(&varnish, POST, &[]).await.varnish_hit());
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Expired edit 77c0.");
    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "expire" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("\"marked_expired\""),
        "{}",
        answer.body
    );
    assert_eq!(purges(&server.metrics().await, "hard"), 1.0);
    // Gone from the edge: the next request reaches isr, which waits for the new version.
    let edge = through(&varnish, POST, &[]).await;
    assert!(edge.body.contains("Expired edit 77c0."), "{}", edge.status);
    assert!(!edge.varnish_hit());
}

/// Regenerates the post now, so that the edge copy made next lives its whole 5-second window
/// (longer than the edge waits below) unless purged.
async fn fresh(server: &BlogServer) {
    let answer = server
        .revalidate(&json!({ "paths": [POST], "mode": "regenerate" }))
        .await;
    assert!(answer.body.contains("\"regenerated\""), "{}", answer.body);
}

/// The blog behind Varnish, purging it (or not) and asking it for `"wait": "edge"`.
fn blog_with_edge_url(fx: &Fixture, purge: bool) -> (BlogServer, Varnish) {
    varnish::in_front_of(|port| {
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut args = vec!["--cdn-url", endpoint.as_str()];
        if purge {
            args.extend(["--cdn-purge", endpoint.as_str()]);
        }
        BlogServer::start(fx, &args, &[])
    })
}

#[tokio::test]
async fn wait_edge_answers_once_the_cdn_serves_the_new_page_or_says_which_did_not() {
    let fx = Fixture::new();
    let (server, varnish) = blog_with_edge_url(&fx, true);
    // A version just made: the edge would keep it for 5 s without a purge.
    fresh(&server).await;
    // The copy browsers get (brotli) is cached: the one the check asks for.
    let cached = through(&varnish, POST, &BROWSER).await;
    assert_eq!(cached.header("content-encoding"), Some("br"));
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Live everywhere 41d9.");
    let answer = server
        .revalidate(&json!({
            "paths": [POST], "mode": "regenerate", "wait": "edge", "wait_seconds": 2
        }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let live = body["edge"]["live"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{body}");
    assert_eq!(live[0]["path"], POST);
    let seconds = live[0]["seconds"].as_f64().unwrap();
    eprintln!("edge propagation of {POST}: {seconds} s");
    assert_eq!(body["edge"]["missed"], json!([]));
    assert_eq!(body["edge"]["not_checked"], 0);
    // Live means live: the copy browsers get is the new page now.
    let client = reqwest::Client::new();
    let (text, _) = isr_tests::get_encoded(&client, &varnish.url(POST), "br").await;
    assert!(text.contains("41d9"), "{text}");
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.sum("isr_cdn_propagation_seconds_count", &[]),
        1.0,
        "one page's propagation recorded"
    );
}

#[tokio::test]
async fn wait_edge_names_the_pages_the_cdn_did_not_serve_new_in_time() {
    let fx = Fixture::new();
    // No purging: the edge keeps its copy for the page's window (5 s); the copy browsers get
    // (brotli) is the one cached and the one the check asks for.
    let (server, varnish) = blog_with_edge_url(&fx, false);
    fresh(&server).await;
    let cached = through(&varnish, POST, &BROWSER).await;
    assert_eq!(cached.header("content-encoding"), Some("br"));
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Not yet at the edge 9a0e.");
    let answer = server
        .revalidate(&json!({
            "paths": [POST], "mode": "regenerate", "wait": "edge", "wait_seconds": 1
        }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["edge"]["missed"], json!([POST]), "{body}");
    assert_eq!(body["edge"]["live"], json!([]));
    assert_eq!(body["edge"]["deadline_seconds"], 1);
}

#[tokio::test]
async fn wait_edge_without_a_cdn_url_is_a_clear_400() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let answer = server
        .revalidate(&json!({ "paths": [POST], "wait": "edge" }))
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("--cdn-url"), "{}", answer.body);
}
