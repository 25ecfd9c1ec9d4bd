//! The blog's HTTP contract, against the real binary over loopback: headers, conditional
//! requests, staleness, single-flight regeneration, failures, on-demand revalidation, metrics,
//! restarts and hostile paths. Each test has its own server, posts and site root.

use isr_tests::{poll_until, BlogServer, Fixture, Resp, POLL_DEADLINE, POST_REVALIDATE, SECRET};
use reqwest::Method;
use serde_json::json;

const POST: &str = "/blog/what-is-isr";
const POST_SLUG: &str = "what-is-isr";
const POST_TITLE: &str = "What is Incremental Static Regeneration?";
/// A sentence of `what-is-isr.md` that the tests replace.
const POST_OLD_TEXT: &str = "No content frozen forever.";
const SLUG_ROUTE: &str = "/blog/:slug";
const POST_CACHE_CONTROL: &str = "max-age=0, must-revalidate, s-maxage=5";
const LIST_CACHE_CONTROL: &str = "max-age=0, must-revalidate, s-maxage=60";

/// The published posts, as `/blog` must list them: newest first, ties by slug.
const PUBLISHED_IN_ORDER: [&str; 6] = [
    "choosing-a-strategy",
    "failure-modes",
    "hydration",
    "on-demand",
    "revalidate-explained",
    "what-is-isr",
];

/// The `data-slug`s of the list page, in order.
fn listed_slugs(body: &str) -> Vec<String> {
    body.split("data-slug=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
        .collect()
}

/// A 200 HTML page with the ISR headers.
fn assert_isr_page(resp: &Resp, cache_control: &str) {
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header("cache-control"), Some(cache_control));
    assert!(
        matches!(resp.cache(), "HIT" | "STALE" | "MISS"),
        "x-isr-cache = {:?}",
        resp.cache()
    );
    let etag = resp.header("etag").expect("an etag");
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "not a strong, quoted etag: {etag}"
    );
    age_of(resp);
    let status = resp.header("cache-status").expect("a cache-status");
    let expected = match resp.cache() {
        "HIT" => "isr; hit; detail=within-window; ttl=",
        "STALE" => "isr; fwd=stale; detail=window-passed; ttl=",
        _ => "isr; fwd=miss; stored; ttl=",
    };
    assert!(
        status.starts_with(expected),
        "cache-status {status:?} for {}",
        resp.cache()
    );
}

/// The `age` header, whole seconds (required).
fn age_of(resp: &Resp) -> u64 {
    let age = resp.header("age").expect("an age header");
    age.parse()
        .unwrap_or_else(|_| panic!("age {age:?} is not whole seconds"))
}

/// The `ttl` of a `cache-status` header.
fn ttl_of(resp: &Resp) -> i64 {
    let status = resp.header("cache-status").expect("a cache-status");
    let ttl = status.rsplit("ttl=").next().unwrap();
    ttl.parse().unwrap_or_else(|_| panic!("ttl in {status:?}"))
}

fn h1(title: &str) -> String {
    format!("<h1>{title}</h1>")
}

#[tokio::test]
async fn pages_carry_isr_headers_and_answer_conditional_and_head_requests() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);

    let page = server.get(POST).await;
    assert_isr_page(&page, POST_CACHE_CONTROL);
    assert_eq!(page.cache(), "HIT", "a freshly built page");
    assert!(page.body.contains(&h1(POST_TITLE)), "{}", page.body);
    assert!(
        page.body.contains("<li>No full rebuilds.</li>"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<strong>Incremental Static Regeneration</strong>"));
    let etag = page.header("etag").unwrap().to_string();

    // Same bytes, same etag.
    assert_eq!(server.get(POST).await.header("etag"), Some(etag.as_str()));

    // If-None-Match with the current etag: 304, same validators, no body.
    let not_modified = server
        .send(
            server
                .request(Method::GET, POST)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(
        not_modified.header("cache-control"),
        Some(POST_CACHE_CONTROL)
    );
    assert_eq!(not_modified.cache(), "HIT");
    assert!(not_modified.body.is_empty(), "{}", not_modified.body);

    // Another etag: the full page.
    let other = server
        .send(
            server
                .request(Method::GET, POST)
                .header("if-none-match", "\"0123456789abcdef\""),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, page.body);

    // HEAD: the GET headers, no body.
    let head = server.head(POST).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("content-type"), page.header("content-type"));
    assert_eq!(head.header("cache-control"), Some(POST_CACHE_CONTROL));
    assert_eq!(head.cache(), "HIT");
    assert!(head.body.is_empty());

    // The list page: revalidate 60.
    let list = server.get("/blog").await;
    assert_isr_page(&list, LIST_CACHE_CONTROL);
    assert_eq!(list.cache(), "HIT");
    assert!(list.body.contains(&h1("Blog")));
    let list_head = server.head("/blog").await;
    assert_eq!(list_head.status, 200);
    assert_eq!(list_head.header("etag"), list.header("etag"));

    // Trailing slashes redirect to the canonical path.
    for (path, location) in [("/blog/", "/blog"), ("/blog/what-is-isr/", POST)] {
        let redirect = server.get(path).await;
        assert_eq!(redirect.status, 308, "{path}");
        assert_eq!(redirect.header("location"), Some(location), "{path}");
    }
}

/// The post and the list hydrate in leptos's islands mode: the post's Markdown body is in the
/// page once (as HTML, never again as props), the like button is an island with its own props,
/// the table of contents is static HTML, and the list's filter island carries the summaries it
/// filters.
#[tokio::test]
async fn the_post_and_the_list_ship_only_their_islands_props() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let post = server.get(POST).await;
    assert_isr_page(&post, POST_CACHE_CONTROL);
    assert!(!post.body.contains("__isr_props") && !post.body.contains("__isr_params"));
    assert_eq!(
        post.body.matches("No full rebuilds.").count(),
        1,
        "{}",
        post.body
    );
    let like = post
        .body
        .split("<leptos-island data-component=\"LikeButton_")
        .nth(1)
        .expect("the like button island");
    assert!(
        like.split('>')
            .next()
            .unwrap()
            .ends_with(r#"data-props="{&quot;slug&quot;:&quot;what-is-isr&quot;}""#),
        "{like}"
    );
    assert_eq!(
        post.body.matches("<leptos-island").count(),
        1,
        "only the like button"
    );
    assert!(post
        .body
        .contains("<details class=\"toc\"><summary>Contents</summary>"));
    // Without a client bundle (this fixture builds none) no page loads a script.
    assert!(!post.body.contains("<script type=\"module\""));

    let list = server.get("/blog").await;
    assert!(!list.body.contains("__isr_props"));
    let filter = list
        .body
        .split("<leptos-island data-component=\"PostFilter_")
        .nth(1)
        .expect("the filter island");
    assert!(
        filter.contains("&quot;slug&quot;:&quot;what-is-isr&quot;"),
        "{filter}"
    );
    assert!(
        filter.contains("<li data-slug=\"what-is-isr\"><a href=\"/blog/what-is-isr\">"),
        "{filter}"
    );
}

#[tokio::test]
async fn pages_answer_only_get_and_head() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    for path in ["/blog", POST, "/blog/upcoming"] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let resp = server.send(server.request(method.clone(), path)).await;
            assert_eq!(resp.status, 405, "{method} {path}");
            let allow = resp.header("allow").unwrap_or_default();
            assert!(allow.contains("GET"), "{method} {path}: allow = {allow:?}");
        }
    }
    // Still served afterwards, unchanged.
    assert_eq!(server.get(POST).await.status, 200);
}

#[tokio::test]
async fn list_is_newest_first_and_skips_drafts_and_broken_posts() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let list = server.get("/blog").await;
    assert_eq!(list.status, 200);
    assert_eq!(listed_slugs(&list.body), PUBLISHED_IN_ORDER);
    assert!(list.body.contains(POST_TITLE));
    assert!(!list.body.contains("upcoming"), "a draft is listed");

    // A post whose front matter does not parse, and one dated like two others (tie → by slug).
    fx.write_post(
        "broken",
        "---\ntitle: [unclosed\ndate: 2026-11-30\n---\nBroken.\n",
    );
    fx.write_post(
        "aaa-tie",
        &isr_tests::post_markdown("Tied post", "2026-11-12", "Tie."),
    );
    let results = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog"] }))
        .await;
    assert_eq!(results.status, 200, "{}", results.body);
    assert_eq!(
        results.json(),
        json!({ "results": [{ "path": "/blog", "outcome": "regenerated" }], "counts": { "regenerated": 1 } })
    );
    let list = server.get("/blog").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        listed_slugs(&list.body),
        [
            "choosing-a-strategy",
            "aaa-tie",
            "failure-modes",
            "hydration",
            "on-demand",
            "revalidate-explained",
            "what-is-isr",
        ]
    );
    assert!(list.body.contains("Tied post"));
    assert!(list.body.contains("7 posts"), "{}", list.body);
}

#[tokio::test]
async fn drafts_and_unknown_pages_are_404_and_counted_as_not_found() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let before = server.metrics().await;
    let paths = [
        "/blog/upcoming",
        "/blog/no-such-post",
        "/nope",
        "/",
        "/blog/what-is-isr/extra",
    ];
    for path in paths {
        let resp = server.get(path).await;
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        assert!(
            resp.header("content-type")
                .is_some_and(|v| v.starts_with("text/html")),
            "{path}"
        );
        assert!(!resp.body.contains(POST_TITLE), "{path}");
    }
    let after = server.metrics().await;
    assert_eq!(
        after.requests("not_found") - before.requests("not_found"),
        paths.len() as f64,
        "every 404 counts as cache=\"not_found\""
    );
    assert_eq!(after.requests("hit"), before.requests("hit"));
    assert_eq!(after.requests("miss"), before.requests("miss"));
}

#[tokio::test]
async fn traversal_and_odd_paths_are_404() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let meta_dir = format!("{}.isr", fx.site_root().display());
    assert!(
        std::path::Path::new(&meta_dir)
            .join("index.sqlite")
            .is_file(),
        "the build wrote the page index beside the export"
    );
    assert!(
        !fx.site_root().join(".isr").exists(),
        "nothing of isr's inside the export"
    );
    let long = format!("/blog/{}", "a".repeat(256));
    let meta_path = "/.isr/index.sqlite";
    let targets = [
        "/blog/..%2f..%2fetc%2fpasswd",
        "/blog/..%2F..%2F..%2FCargo.toml",
        "/blog/%2e%2e",
        "/blog/%2E%2E/%2E%2E/Cargo.toml",
        "/blog/..",
        "/blog/../../Cargo.toml",
        "/blog/../../../../../../etc/passwd",
        "/../Cargo.toml",
        "/blog/%2e",
        "/.isr/pages",
        "/.isr",
        meta_path,
        "/.isr/index.sqlite-wal",
        "/blog/.isr",
        "/blog/a%2Fb",
        "/blog/a%5Cb",
        "/blog/%00",
        "/blog/a%00b",
        "/blog/%0a",
        "/blog/%ff",
        long.as_str(),
        "/blog/.hidden",
        "/blog//what-is-isr",
        "/blog/what-is-isr/index.html",
    ];
    for target in targets {
        let resp = server.raw("GET", target).await;
        assert_eq!(resp.status, 404, "GET {target}:\n{}", resp.head);
        for leak in [
            "root:x:",
            "[workspace]",
            "[package]",
            "\"generated_at",
            "SQLite format",
            POST_TITLE,
        ] {
            assert!(!resp.body.contains(leak), "GET {target} leaked {leak:?}");
        }
    }
    // The server is still fine.
    assert_eq!(server.raw("GET", POST).await.status, 200);
    assert_eq!(server.raw("HEAD", "/blog/%2e%2e").await.status, 404);
}

/// Slugs the router accepts (up to 255 bytes) but that name no post are plain 404s, even when
/// `<slug>.md` would be too long a file name: nothing is "unavailable", retrying cannot help.
#[tokio::test]
async fn long_slugs_without_a_post_are_404() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    for len in [200, 252, 253, 255] {
        let path = format!("/blog/{}", "a".repeat(len));
        let resp = server.get(&path).await;
        assert_eq!(
            resp.status,
            404,
            "GET /blog/<{len} × 'a'>: retry-after {:?}",
            resp.header("retry-after")
        );
    }
    assert_eq!(server.get(POST).await.status, 200);
}

/// A slug that is also the name of a file of the static export (`<site>/blog/index.html` is the
/// list page) is just a post that does not exist.
#[tokio::test]
async fn slug_named_like_an_exported_file_is_404() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    // Twice: the first answer must not be a transient failure either.
    for path in ["/blog/index.html", "/blog/index.html"] {
        let resp = server.get(path).await;
        assert_eq!(
            resp.status,
            404,
            "GET {path}: retry-after {:?}\n{}",
            resp.header("retry-after"),
            resp.body
        );
    }
    // The list page is intact.
    let list = server.get("/blog").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(POST_TITLE));
}

#[tokio::test]
async fn edited_post_is_served_stale_once_then_regenerated() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let old = server.get(POST).await;
    assert_eq!(old.status, 200);
    assert!(old.body.contains(POST_OLD_TEXT));
    let old_etag = old.header("etag").unwrap().to_string();

    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Edited marker 7f3a.");
    // Fresh pages are not regenerated, whatever the data does.
    let still = server.get(POST).await;
    assert_eq!(still.cache(), "HIT");
    assert!(still.body.contains(POST_OLD_TEXT));

    fx.wait_until_stale(POST, POST_REVALIDATE).await;
    let stale = server.get(POST).await;
    assert_isr_page(&stale, POST_CACHE_CONTROL);
    assert_eq!(stale.cache(), "STALE", "first request after the window");
    // Stale downstream as well: its age is past the window.
    assert!(
        age_of(&stale) >= POST_REVALIDATE.as_secs(),
        "age {}",
        age_of(&stale)
    );
    assert!(ttl_of(&stale) <= 0, "ttl {}", ttl_of(&stale));
    assert!(stale.body.contains(POST_OLD_TEXT), "the old page, at once");
    assert!(!stale.body.contains("Edited marker 7f3a."));
    assert_eq!(stale.header("etag"), Some(old_etag.as_str()));

    let s = &server;
    let fresh = poll_until("the regenerated page", POLL_DEADLINE, || async move {
        let resp = s.get(POST).await;
        assert_eq!(resp.status, 200);
        resp.body.contains("Edited marker 7f3a.").then_some(resp)
    })
    .await;
    assert_isr_page(&fresh, POST_CACHE_CONTROL);
    assert_eq!(fresh.cache(), "HIT");
    assert!(
        age_of(&fresh) <= 3,
        "a page regenerated just now, age {}",
        age_of(&fresh)
    );
    assert_eq!(
        ttl_of(&fresh),
        POST_REVALIDATE.as_secs() as i64 - age_of(&fresh) as i64
    );
    assert!(!fresh.body.contains(POST_OLD_TEXT));
    assert!(fresh.body.contains(&h1(POST_TITLE)));
    assert_ne!(fresh.header("etag"), Some(old_etag.as_str()));
    // The static export follows.
    let exported = std::fs::read_to_string(fx.page_file(POST)).unwrap();
    assert!(exported.contains("Edited marker 7f3a."));
    let metrics = server.metrics().await;
    assert_eq!(metrics.regenerations(SLUG_ROUTE, "ok", "stale"), 1.0);
    assert!(metrics.requests("stale") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_a_stale_page_regenerate_it_once() {
    const ADMIN_TOKEN: &str = "single-flight-admin-0123456789";
    let fx = Fixture::new();
    // The operator API tells whether a generation of the page is running.
    let server = BlogServer::start(&fx, &[], &[("ISR_ADMIN_TOKEN", ADMIN_TOKEN)]);
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Single flight marker.");
    fx.wait_until_stale(POST, POST_REVALIDATE).await;
    let before = server.metrics().await;
    assert_eq!(before.sum("isr_regenerations_total", &[]), 0.0);

    let responses = futures::future::join_all((0..200).map(|_| server.get(POST))).await;
    let mut stale = 0;
    for resp in &responses {
        assert_eq!(resp.status, 200, "{}", resp.body);
        match resp.cache() {
            "STALE" => {
                stale += 1;
                assert!(resp.body.contains(POST_OLD_TEXT));
            }
            "HIT" => assert!(resp.body.contains("Single flight marker.")),
            other => panic!("x-isr-cache = {other:?}"),
        }
    }
    assert!(stale >= 1, "no STALE answer among 200");

    let s = &server;
    poll_until("the regeneration to finish", POLL_DEADLINE, || async move {
        (s.metrics().await.regenerations(SLUG_ROUTE, "ok", "stale") >= 1.0).then_some(())
    })
    .await;
    // …and no second one: a request registers the generation it starts before it is answered,
    // and every request has been answered. So once no generation of the page is running (the
    // operator API reads the engine's in-flight set), any second one has been counted.
    let state = poll_until(
        "no generation of the page running",
        POLL_DEADLINE,
        || async move {
            let resp = s
                .send(
                    s.request(Method::GET, &format!("/_isr/api/pages{POST}"))
                        .header("authorization", format!("Bearer {ADMIN_TOKEN}")),
                )
                .await;
            assert_eq!(resp.status, 200, "{}", resp.body);
            let state = resp.json()["state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (state != "regenerating").then_some(state)
        },
    )
    .await;
    assert!(matches!(state.as_str(), "fresh" | "stale"), "{state}");
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.regenerations(SLUG_ROUTE, "ok", "stale"),
        1.0,
        "exactly one regeneration for {} concurrent requests",
        responses.len()
    );
    assert_eq!(metrics.sum("isr_regenerations_total", &[]), 1.0);
    let after = server.get(POST).await;
    assert_eq!(after.cache(), "HIT");
    assert!(after.body.contains("Single flight marker."));
}

#[tokio::test]
async fn failed_regeneration_keeps_the_old_page_and_recovers_after_backoff() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let old = server.get(POST).await;
    let old_etag = old.header("etag").unwrap().to_string();
    fx.wait_until_stale(POST, POST_REVALIDATE).await;

    fx.hide_content();
    let first = server.get(POST).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.cache(), "STALE");
    assert_eq!(first.body, old.body);

    let s = &server;
    poll_until("the failed regeneration", POLL_DEADLINE, || async move {
        (s.metrics()
            .await
            .regenerations(SLUG_ROUTE, "error", "stale")
            >= 1.0)
            .then_some(())
    })
    .await;
    // The old page keeps being served.
    for _ in 0..3 {
        let resp = server.get(POST).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.cache(), "STALE");
        assert_eq!(resp.header("etag"), Some(old_etag.as_str()));
        assert_eq!(resp.body, old.body);
    }
    assert_eq!(
        server
            .metrics()
            .await
            .regenerations(SLUG_ROUTE, "ok", "stale"),
        0.0
    );
    let logged = server.stderr_text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains(POST) && l.to_lowercase().contains("fail")),
        "the failure is logged with the page path:\n{logged}"
    );

    // The data source comes back (with new text): a later request regenerates the page.
    fx.restore_content();
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Recovered marker.");
    let fresh = poll_until("recovery after the backoff", POLL_DEADLINE, || async move {
        let resp = s.get(POST).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body.contains("Recovered marker.").then_some(resp)
    })
    .await;
    assert_eq!(fresh.cache(), "HIT");
    assert_eq!(
        server
            .metrics()
            .await
            .regenerations(SLUG_ROUTE, "ok", "stale"),
        1.0
    );
}

#[tokio::test]
async fn never_generated_page_with_a_failing_loader_is_503() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    fx.write_post(
        "late-arrival",
        &isr_tests::post_markdown("Late arrival", "2026-11-21", "Late."),
    );
    fx.hide_content();
    let resp = server.get("/blog/late-arrival").await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let retry_after: u64 = resp
        .header("retry-after")
        .expect("a retry-after header")
        .parse()
        .expect("retry-after in seconds");
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    // Built pages are still served from the cache.
    let built = server.get(POST).await;
    assert_eq!(built.status, 200);

    // Once the data is back, the page is generated on a later request.
    fx.restore_content();
    let s = &server;
    let page = poll_until("the page after recovery", POLL_DEADLINE, || async move {
        let resp = s.get("/blog/late-arrival").await;
        assert!(matches!(resp.status, 200 | 503), "{}", resp.status);
        (resp.status == 200).then_some(resp)
    })
    .await;
    assert_eq!(page.cache(), "MISS");
    assert!(page.body.contains(&h1("Late arrival")));
}

#[tokio::test]
async fn deleted_post_becomes_404_once_regenerated() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert_eq!(server.get("/blog/hydration").await.status, 200);
    fx.remove_post("hydration");
    fx.wait_until_stale("/blog/hydration", POST_REVALIDATE)
        .await;

    let first = server.get("/blog/hydration").await;
    match first.status {
        200 => {
            assert_eq!(first.cache(), "STALE");
            assert!(first.body.contains(&h1("ISR pages still hydrate")));
        }
        404 => {}
        other => panic!("first request after deletion: {other}"),
    }
    let s = &server;
    poll_until(
        "the deleted post to answer 404",
        POLL_DEADLINE,
        || async move {
            let resp = s.get("/blog/hydration").await;
            assert!(matches!(resp.status, 200 | 404), "{}", resp.status);
            (resp.status == 404).then_some(())
        },
    )
    .await;
    for _ in 0..3 {
        let resp = server.get("/blog/hydration").await;
        assert_eq!(resp.status, 404);
        assert!(!resp.body.contains("ISR pages still hydrate"));
        // Kept downstream only until isr checks it again; never served stale.
        assert_eq!(
            resp.header("cache-control"),
            Some("max-age=0, must-revalidate, s-maxage=5")
        );
        assert_eq!(resp.header("cdn-cache-control"), Some("max-age=5"));
        assert!(age_of(&resp) <= 5);
    }
    // Other posts are unaffected.
    assert_eq!(server.get(POST).await.status, 200);
}

#[tokio::test]
async fn new_post_is_generated_on_first_visit() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    fx.write_post(
        "brand-new",
        &isr_tests::post_markdown("A brand new post", "2026-11-22", "Fresh *ink*."),
    );
    let first = server.get("/blog/brand-new").await;
    assert_isr_page(&first, POST_CACHE_CONTROL);
    assert_eq!(first.cache(), "MISS");
    assert!(
        first.body.contains(&h1("A brand new post")),
        "{}",
        first.body
    );
    assert!(first.body.contains("<em>ink</em>"));

    let second = server.get("/blog/brand-new").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.header("etag"), first.header("etag"));
    assert!(fx.page_file("/blog/brand-new").is_file());

    let metrics = server.metrics().await;
    assert_eq!(metrics.regenerations(SLUG_ROUTE, "ok", "miss"), 1.0);
    assert_eq!(metrics.requests("miss"), 1.0);
}

#[tokio::test]
async fn on_demand_revalidation_by_path_regenerates_before_answering() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert!(server.get(POST).await.body.contains(POST_OLD_TEXT));
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "On-demand marker.");

    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": [POST] }))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({ "results": [{ "path": POST, "outcome": "regenerated" }], "counts": { "regenerated": 1 } })
    );
    // No waiting: the very next request has the new page.
    let page = server.get(POST).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.cache(), "HIT");
    assert!(page.body.contains("On-demand marker."), "{}", page.body);
    assert!(!page.body.contains(POST_OLD_TEXT));
    assert_eq!(
        server
            .metrics()
            .await
            .regenerations(SLUG_ROUTE, "ok", "on_demand"),
        1.0
    );

    // Paths without a route, and posts that do not exist.
    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/nope/x", "/blog/does-not-exist"] }))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({ "results": [
            { "path": "/nope/x", "outcome": "no_route" },
            { "path": "/blog/does-not-exist", "outcome": "not_found" },
        ], "counts": { "not_found": 1, "no_route": 1 } })
    );
    assert_eq!(server.get("/blog/does-not-exist").await.status, 404);

    // A failing loader: outcome error with a message, the old page stays.
    let before = server.get("/blog/on-demand").await;
    fx.hide_content();
    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/on-demand"] }))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let results = resp.json()["results"].clone();
    assert_eq!(results.as_array().map(Vec::len), Some(1), "{results}");
    assert_eq!(results[0]["path"], "/blog/on-demand");
    assert_eq!(results[0]["outcome"], "error");
    // The step and the cause, each once (the page is the result's `path`).
    assert_eq!(
        results[0]["error"], "loader: the content folder (BLOG_CONTENT_DIR) is missing",
        "{results}"
    );
    let after = server.get("/blog/on-demand").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before.body);
    fx.restore_content();
}

#[tokio::test]
async fn on_demand_revalidation_by_tag_refreshes_the_list() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let old_title = "On-demand revalidation from your CMS";
    assert!(server.get("/blog").await.body.contains(old_title));

    fx.edit_post("on-demand", old_title, "Retitled by the CMS");
    fx.write_post(
        "tag-new",
        &isr_tests::post_markdown("Freshly tagged post", "2026-11-25", "New."),
    );
    // The list is fresh for 60 s: nothing changes by itself.
    let list = server.get("/blog").await;
    assert_eq!(list.cache(), "HIT");
    assert!(list.body.contains(old_title));

    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "tags": ["posts"] }))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let results = body["results"].as_array().expect("results").clone();
    let outcome_of = |path: &str| {
        let matching: Vec<_> = results.iter().filter(|r| r["path"] == path).collect();
        assert_eq!(matching.len(), 1, "{path} once in {body}");
        matching[0]["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(outcome_of("/blog"), "regenerated");
    for slug in PUBLISHED_IN_ORDER {
        assert_eq!(outcome_of(&format!("/blog/{slug}")), "regenerated");
    }

    let list = server.get("/blog").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.cache(), "HIT");
    assert!(list.body.contains("Retitled by the CMS"), "{}", list.body);
    assert!(!list.body.contains(old_title));
    assert!(list.body.contains("Freshly tagged post"));
    assert_eq!(
        listed_slugs(&list.body).first().map(String::as_str),
        Some("tag-new")
    );
    let post = server.get("/blog/on-demand").await;
    assert!(post.body.contains(&h1("Retitled by the CMS")));
}

#[tokio::test]
async fn revalidate_endpoint_checks_token_then_size_then_json() {
    let fx = Fixture::new();
    // 21 refused tokens from one address: more than the default limit per minute.
    let server = BlogServer::start(&fx, &["--max-auth-failures", "100"], &[]);
    let endpoint = "/_isr/revalidate";
    let valid = json!({ "paths": [POST] }).to_string();
    // Larger than 64 KiB, and valid JSON if it were accepted.
    let huge = json!({ "paths": [format!("/blog/{}", "x".repeat(100 * 1024))] }).to_string();

    let bearer = format!("Bearer {SECRET}");
    let bad_tokens = [
        None,
        Some("Bearer wrong-secret".to_string()),
        Some(format!("Bearer {SECRET}x")),
        Some(format!("Basic {SECRET}")),
        Some(SECRET.to_string()),
        Some("Bearer ".to_string()),
        Some(format!("bearer{SECRET}")),
    ];
    // The token is checked first, whatever the body. Raw requests: the server may answer
    // before reading a large body, which HTTP client libraries report as a send error.
    for auth in &bad_tokens {
        for body in [&valid, &huge, &"y".repeat(1024 * 1024)] {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| ("authorization", a))
                .into_iter()
                .collect();
            let resp = server
                .raw_with_body("POST", endpoint, &headers, body.as_bytes())
                .await;
            assert_eq!(
                resp.status,
                401,
                "auth {auth:?}, body of {} bytes:\n{}",
                body.len(),
                resp.head
            );
        }
    }

    let too_large = server
        .raw_with_body(
            "POST",
            endpoint,
            &[("authorization", &bearer)],
            huge.as_bytes(),
        )
        .await;
    assert_eq!(too_large.status, 413, "{}", too_large.head);
    // Exactly at the limit is still accepted (and parsed: here, not as JSON).
    let at_limit = server
        .raw_with_body(
            "POST",
            endpoint,
            &[("authorization", &bearer)],
            &vec![b' '; 64 * 1024],
        )
        .await;
    assert_eq!(at_limit.status, 400, "{}", at_limit.head);

    let authorized = |body: String| {
        server
            .request(Method::POST, endpoint)
            .header("authorization", &bearer)
            .body(body)
    };
    for malformed in ["{\"paths\": [", "not json", "{\"paths\": \"/blog\"}"] {
        let resp = server.send(authorized(malformed.to_string())).await;
        assert_eq!(resp.status, 400, "{malformed}: {}", resp.body);
        let message = resp.json()["error"].clone();
        assert!(
            message.as_str().is_some_and(|m| !m.is_empty()),
            "{malformed}: {}",
            resp.body
        );
    }

    // Both keys are optional.
    let empty = server.send(authorized("{}".to_string())).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.json(), json!({ "results": [], "counts": {} }));
    // Nothing above regenerated anything.
    assert_eq!(
        server.metrics().await.sum("isr_regenerations_total", &[]),
        0.0
    );
    let ok = server.send(authorized(valid)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn revalidate_endpoint_is_absent_without_a_secret() {
    let fx = Fixture::new();
    let server = BlogServer::start_with_secret(&fx, &[], &[], None);
    let with_token = server
        .send(
            server
                .request(Method::POST, "/_isr/revalidate")
                .header("authorization", format!("Bearer {SECRET}"))
                .body(json!({ "paths": [POST] }).to_string()),
        )
        .await;
    assert_eq!(with_token.status, 404, "{}", with_token.body);
    let without = server
        .send(server.request(Method::POST, "/_isr/revalidate").body("{}"))
        .await;
    assert_eq!(without.status, 404);
    assert_eq!(
        server.metrics().await.sum("isr_regenerations_total", &[]),
        0.0
    );
    assert_eq!(server.get(POST).await.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_and_not_build_time_generations() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let raw = server.get("/_isr/metrics").await;
    assert_eq!(raw.status, 200);
    assert!(
        raw.header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        raw.header("content-type")
    );
    let start = isr_tests::Metrics::parse(&raw.body);
    assert_eq!(
        start.sum("isr_regenerations_total", &[]),
        0.0,
        "build-time generations are not counted:\n{}",
        raw.body
    );

    for _ in 0..3 {
        assert_eq!(server.get(POST).await.cache(), "HIT");
    }
    assert_eq!(server.get("/blog").await.cache(), "HIT");
    assert_eq!(server.get("/nope/nothing").await.status, 404);
    let metrics = server.metrics().await;
    assert_eq!(metrics.requests("hit") - start.requests("hit"), 4.0);
    assert_eq!(
        metrics.requests("not_found") - start.requests("not_found"),
        1.0
    );
    assert_eq!(metrics.requests("miss"), 0.0);
    assert_eq!(metrics.requests("stale"), 0.0);
    assert_eq!(metrics.sum("isr_regenerations_total", &[]), 0.0);
    let text = server.get("/_isr/metrics").await.body;
    assert!(text.contains("isr_requests_total"), "{text}");
}

#[tokio::test]
async fn restart_serves_the_stored_pages_without_regenerating() {
    let fx = Fixture::new();
    let mut first = BlogServer::start(&fx, &[], &[]);
    let before = first.get(POST).await;
    assert_eq!(before.status, 200);
    assert!(
        first.stdout_text().contains("Built "),
        "{}",
        first.stdout_text()
    );
    let status = first.stop_with("TERM");
    assert_eq!(status.code(), Some(0), "SIGTERM: {}", first.stderr_text());
    drop(first);

    let second = BlogServer::start(&fx, &["serve"], &[]);
    let metrics = second.metrics().await;
    assert_eq!(
        metrics.sum("isr_regenerations_total", &[]),
        0.0,
        "nothing regenerates at start-up"
    );
    let again = second.get(POST).await;
    assert_eq!(again.status, 200);
    assert!(
        matches!(again.cache(), "HIT" | "STALE"),
        "{}",
        again.cache()
    );
    assert_eq!(again.header("etag"), before.header("etag"));
    assert_eq!(again.body, before.body);
    for path in std::iter::once("/blog".to_string())
        .chain(PUBLISHED_IN_ORDER.iter().map(|s| format!("/blog/{s}")))
    {
        let resp = second.get(&path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert!(
            matches!(resp.cache(), "HIT" | "STALE"),
            "{path}: {}",
            resp.cache()
        );
    }
    assert_eq!(second.get("/blog/upcoming").await.status, 404);
    let metrics = second.metrics().await;
    assert_eq!(metrics.requests("miss"), 0.0);
    assert_eq!(
        metrics.sum("isr_regenerations_total", &[("trigger", "miss")]),
        0.0
    );
    assert!(
        !second.stdout_text().contains("Built "),
        "`serve` does not build:\n{}",
        second.stdout_text()
    );
}

/// Random slugs on a `fallback = "blocking"` route run the loader (bounded), answer 404, and
/// leave no file behind: a crawler cannot fill the disk or slow the next start.
#[tokio::test]
async fn random_slugs_are_404_and_leave_the_site_root_as_it_was() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert_eq!(server.get(POST).await.status, 200);
    // the index is a SQLite file with its WAL: count files after the server settled
    let before = isr_tests::files_under(&fx.site_root());
    let mut rng_state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut slugs = Vec::new();
    for _ in 0..5_000 {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        slugs.push(format!("/blog/r{rng_state:016x}"));
    }
    for chunk in slugs.chunks(50) {
        let answers = futures::future::join_all(chunk.iter().map(|path| server.get(path))).await;
        for (path, resp) in chunk.iter().zip(answers) {
            assert_eq!(resp.status, 404, "{path}");
        }
    }
    let after = isr_tests::files_under(&fx.site_root());
    assert!(
        after <= before + 2,
        "site root grew from {before} to {after} files"
    );
    let post = server.get(POST).await;
    assert_eq!(post.status, 200);
    assert!(matches!(post.cache(), "HIT" | "STALE"), "{}", post.cache());
}

/// A webhook naming more than 1,000 pages is answered `202` at once; the pages are regenerated
/// in the background (tracked work), each once however often it is named.
#[tokio::test]
async fn revalidating_more_than_a_thousand_pages_is_accepted_and_finishes_in_the_background() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Regenerated in the background.");
    let mut paths: Vec<String> = (0..1_100)
        .map(|i| format!("/blog/not-a-post-{i}"))
        .collect();
    paths.push(POST.to_string());
    paths.push(POST.to_string()); // named twice: regenerated once
    let before = server.metrics().await;
    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": paths }))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(body["accepted"], 1_101);
    let s = &server;
    poll_until(
        "the background revalidation",
        POLL_DEADLINE,
        || async move {
            let m = s.metrics().await;
            let done = m.regenerations(SLUG_ROUTE, "not_found", "on_demand")
                + m.regenerations(SLUG_ROUTE, "ok", "on_demand");
            (done >= 1_101.0).then_some(())
        },
    )
    .await;
    let after = server.metrics().await;
    assert_eq!(
        after.regenerations(SLUG_ROUTE, "ok", "on_demand")
            - before.regenerations(SLUG_ROUTE, "ok", "on_demand"),
        1.0,
        "the post named twice ran once"
    );
    let post = server.get(POST).await;
    assert!(post.body.contains("Regenerated in the background."));
    assert!(
        !fx.page_file("/blog/not-a-post-7").exists(),
        "unknown paths are not written"
    );
}

#[tokio::test]
async fn pages_are_served_precompressed_by_accept_encoding() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let client = reqwest::Client::new();
    let get = |accept: Option<&'static str>, if_none_match: Option<String>| {
        let mut request = client.get(server.url(POST));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        if let Some(etag) = if_none_match {
            request = request.header("if-none-match", etag);
        }
        async move { request.send().await.expect("GET") }
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    let plain = get(None, None).await;
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(header(&plain, "vary").as_deref(), Some("accept-encoding"));
    let identity_etag = header(&plain, "etag").unwrap();
    let html = plain.text().await.unwrap();
    assert!(html.contains(&h1(POST_TITLE)));

    let mut etags = vec![identity_etag.clone()];
    for (accept, encoding) in [
        ("gzip, deflate, br", "br"),
        ("br;q=0.1, gzip;q=0.5", "gzip"),
        ("gzip", "gzip"),
    ] {
        let response = get(Some(accept), None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "content-encoding").as_deref(),
            Some(encoding),
            "{accept}"
        );
        assert_eq!(
            header(&response, "vary").as_deref(),
            Some("accept-encoding")
        );
        let etag = header(&response, "etag").unwrap();
        let length: usize = header(&response, "content-length")
            .unwrap()
            .parse()
            .unwrap();
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), length);
        assert!(
            body.len() * 2 < html.len(),
            "{encoding}: {} of {} bytes",
            body.len(),
            html.len()
        );
        assert_eq!(
            isr_tests::decompressed(encoding, &body),
            html,
            "{encoding} is the same page"
        );

        // 304 for this encoding's own etag; another encoding's etag gets the full answer.
        let not_modified = get(Some(accept), Some(etag.clone())).await;
        assert_eq!(not_modified.status(), 304, "{accept}");
        assert_eq!(header(&not_modified, "etag"), Some(etag.clone()));
        assert_eq!(
            header(&not_modified, "vary").as_deref(),
            Some("accept-encoding")
        );
        let other = get(Some(accept), Some(identity_etag.clone())).await;
        assert_eq!(
            other.status(),
            200,
            "the identity etag does not validate {encoding}"
        );
        etags.push(etag);

        // HEAD: the same head, no body.
        let head = client
            .head(server.url(POST))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&head, "content-length"), Some(length.to_string()));
        assert_eq!(header(&head, "content-encoding").as_deref(), Some(encoding));
        assert!(head.bytes().await.unwrap().is_empty());
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 3, "one strong etag per encoding: {etags:?}");

    // Refused or unknown codings get the HTML as it is.
    for accept in ["br;q=0, gzip;q=0", "deflate", "identity"] {
        let response = get(Some(accept), None).await;
        assert_eq!(header(&response, "content-encoding"), None, "{accept}");
        assert_eq!(response.text().await.unwrap(), html);
    }

    // The static export has the variants where nginx's gzip_static / brotli_static look.
    let file = fx.page_file(POST);
    let gz = std::fs::read(format!("{}.gz", file.display())).unwrap();
    let br = std::fs::read(format!("{}.br", file.display())).unwrap();
    assert_eq!(isr_tests::decompressed("gzip", &gz), html);
    assert_eq!(isr_tests::decompressed("br", &br), html);
}

#[tokio::test]
async fn pages_carry_surrogate_keys_and_cache_tags_when_asked() {
    let fx = Fixture::new();
    let plain = BlogServer::start(&fx, &[], &[]);
    let page = plain.get(POST).await;
    assert_eq!(
        page.header("surrogate-key"),
        Some("posts post%3Awhat-is-isr /blog/what-is-isr"),
        "tags percent-encoded outside the characters every CDN takes (`:` is not Akamai's)"
    );
    assert_eq!(page.header("cache-tag"), None, "off unless asked");
    drop(plain);

    let tagged = BlogServer::start(&fx, &["serve"], &[("ISR_CACHE_TAG", "true")]);
    let page = tagged.get(POST).await;
    assert_eq!(
        page.header("cache-tag"),
        Some("posts,post%3Awhat-is-isr,/blog/what-is-isr")
    );
    let list = tagged.get("/blog").await;
    assert!(
        list.header("surrogate-key").unwrap().ends_with(" /blog"),
        "{:?}",
        list.header("surrogate-key")
    );
}
