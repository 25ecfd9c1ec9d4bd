//! Invalidation modes over HTTP against the blog (issue 30, item 5): the webhook's `mode`
//! (`stale`, `expire`, `auto`, `regenerate`), what the next request gets and why
//! (`cache-status`'s `detail`), the answer's counts, and marks that survive a restart.

use isr_tests::{BlogServer, Fixture, Resp};
use serde_json::json;
use std::time::{Duration, Instant};

const POST: &str = "/blog/what-is-isr";
const POST_SLUG: &str = "what-is-isr";
const POST_OLD_TEXT: &str = "No content frozen forever.";

/// Replaces `POST_OLD_TEXT` (or the last replacement) in the post's file with `text`.
fn edit_post(fx: &Fixture, from: &str, to: &str) {
    let file = fx.post_file(POST_SLUG);
    let markdown = std::fs::read_to_string(&file).unwrap();
    assert!(markdown.contains(from), "{from:?} is not in the post");
    fx.write_post(POST_SLUG, &markdown.replace(from, to));
}

/// The outcome the answer gives `path`.
fn outcome_of(answer: &Resp, path: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON answer");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no result for {path}: {body}"))["outcome"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls `path` until its body contains `text` (deadline).
async fn eventually(server: &BlogServer, path: &str, text: &str) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = server.get(path).await;
        if resp.body.contains(text) || Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_marks_serve_the_old_page_once_and_expire_marks_make_the_next_request_wait() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert!(server.get(POST).await.body.contains(POST_OLD_TEXT));

    // `stale`: no loader runs now; the next request gets the old page, marked, and starts
    // the regeneration.
    edit_post(&fx, POST_OLD_TEXT, "Edited once.");
    let answer = server
        .revalidate(&json!({ "paths": [POST], "mode": "stale" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(outcome_of(&answer, POST), "marked_stale");
    let stale = server.get(POST).await;
    assert_eq!(stale.cache(), "STALE");
    assert!(stale.body.contains(POST_OLD_TEXT), "the old page at once");
    // Stale downstream too: its `age` is at least its window (5 s), so a CDN keeps it only to
    // serve it stale while it fetches the new one.
    let age: u64 = stale
        .header("age")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    assert!(age >= 5, "age {age}");
    let why = stale.header("cache-status").unwrap_or_default();
    assert!(
        why.contains(&format!("detail=\"invalidated (stale): path {POST}\"")),
        "{why}"
    );
    let fresh = eventually(&server, POST, "Edited once.").await;
    assert!(
        fresh.body.contains("Edited once."),
        "regenerated after the stale answer"
    );

    // `expire`: the next request waits for the new version (read-your-own-writes).
    edit_post(&fx, "Edited once.", "Edited twice.");
    let answer = server
        .revalidate(&json!({ "paths": [POST], "mode": "expire" }))
        .await;
    assert_eq!(outcome_of(&answer, POST), "marked_expired");
    let waited = server.get(POST).await;
    assert_eq!(waited.cache(), "EXPIRED");
    assert!(waited.body.contains("Edited twice."), "never the old page");
    let why = waited.header("cache-status").unwrap_or_default();
    assert!(why.contains("invalidated (expire)"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_regenerates_requested_pages_marks_the_rest_and_marks_survive_a_restart() {
    let fx = Fixture::new();
    let admin = [("ISR_ADMIN_TOKEN", isr_tests::SECRET)];
    let server = BlogServer::start(&fx, &[], &admin);
    // Only the post is requested; the other posts were only built.
    assert_eq!(server.get(POST).await.status, 200);
    let answer = server.revalidate(&json!({ "tags": ["posts"] })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(outcome_of(&answer, POST), "regenerated");
    assert_eq!(outcome_of(&answer, "/blog/hydration"), "marked_stale");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let results = body["results"].as_array().unwrap().len() as u64;
    assert_eq!(body["counts"]["regenerated"], 1, "{body}");
    assert_eq!(
        body["counts"]["marked_stale"].as_u64(),
        Some(results - 1),
        "{body}"
    );
    // The operator view of a marked page.
    let status = server
        .send(
            server
                .request(reqwest::Method::GET, "/_isr/api/pages/blog/hydration")
                .header("authorization", format!("Bearer {}", isr_tests::SECRET)),
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["state"], "stale", "{status}");
    assert_eq!(status["mark"]["mode"], "stale", "{status}");
    assert_eq!(status["mark"]["cause"], "tag posts", "{status}");

    // A restart (serving what is stored, no build) finds the marks: never fresh again.
    drop(server);
    let server = BlogServer::start(&fx, &["serve"], &admin);
    let after = server.get("/blog/hydration").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.cache(), "STALE", "{:?}", after.headers);
    let why = after.header("cache-status").unwrap_or_default();
    assert!(why.contains("invalidated (stale): tag posts"), "{why}");
    // ... and the regeneration that request started clears it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = server.get("/blog/hydration").await;
        if resp.cache() == "HIT" {
            break;
        }
        assert!(Instant::now() < deadline, "still {}", resp.cache());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `regenerate` runs every loader now, whatever was requested: no page is only marked.
    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "regenerate" }))
        .await;
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let counts = body["counts"].as_object().unwrap();
    assert_eq!(
        counts.values().filter_map(|n| n.as_u64()).sum::<u64>(),
        results,
        "{body}"
    );
    assert!(counts.contains_key("regenerated"), "{body}");
    assert!(!counts.keys().any(|k| k.starts_with("marked")), "{body}");
}
