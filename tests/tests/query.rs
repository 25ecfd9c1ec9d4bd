//! Query strings that matter, against the blog over real HTTP: its list (`query = ["page",
//! "tag"]`, ten posts a page) makes `/blog?page=2` and `/blog?tag=isr` pages of their own,
//! stored, tagged, revalidated and purged like `/blog`; every other parameter is ignored (no
//! loader run, no entry); made-up values leave disk and memory flat; and through the shipped
//! VCL in a real Varnish each variant is one object.

use isr_tests::varnish::{self, through};
use isr_tests::{files_under, post_markdown, rss, BlogServer, Fixture};
use serde_json::json;

/// The shipped posts (6 public) and 15 more: 21 public posts, three pages of the list.
fn fixture_with_three_pages() -> Fixture {
    let fx = Fixture::new();
    for i in 1..=15 {
        fx.write_post(
            &format!("extra-{i:02}"),
            &post_markdown(
                &format!("Extra post {i:02}"),
                "2026-10-01",
                "An extra post.",
            ),
        );
    }
    fx
}

/// The slugs a list page links to, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("data-slug=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_of_the_list_is_a_page_and_other_parameters_change_nothing() {
    let fx = fixture_with_three_pages();
    let server = BlogServer::start(&fx, &[], &[]);
    let runs = |m: &isr_tests::Metrics| m.sum("isr_regenerations_total", &[("route", "/blog")]);

    let first = server.get("/blog").await;
    assert_eq!(first.status, 200);
    assert_eq!(listed(&first.body).len(), 10);
    assert!(first.body.contains("href=\"/blog?page=2\""), "the pager");
    // Tracking parameters get the canonical page from the cache: no loader runs.
    let before = runs(&server.metrics().await);
    for query in ["utm_source=x", "fbclid=abc&utm_medium=mail", "ref=home"] {
        let same = server.get(&format!("/blog?{query}")).await;
        assert_eq!(same.status, 200, "{query}");
        assert_eq!(same.cache(), "HIT", "{query}");
        assert_eq!(listed(&same.body), listed(&first.body), "{query}");
    }
    assert_eq!(runs(&server.metrics().await), before);

    let second = server.get("/blog?page=2&utm_source=x").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.cache(), "MISS");
    let page2 = listed(&second.body);
    assert_eq!(page2.len(), 10);
    assert!(page2.iter().all(|slug| !listed(&first.body).contains(slug)));
    assert!(second.body.contains("<title>Blog, page 2 of 3</title>"));
    assert!(
        second.body.contains("rel=\"prev\" href=\"/blog\""),
        "{}",
        second.body
    );
    assert!(second.body.contains("rel=\"next\" href=\"/blog?page=3\""));
    assert_eq!(server.get("/blog?page=2").await.cache(), "HIT");
    assert_eq!(listed(&server.get("/blog?page=3").await.body).len(), 1);
    assert_eq!(server.get("/blog?page=4").await.status, 404);
    assert_eq!(server.get("/blog?page=two").await.status, 404);
    // One page, one URL: other spellings are sent to it, other parameters kept.
    for (query, location) in [
        ("page=1", "/blog"),
        ("page=1&utm_source=x", "/blog?utm_source=x"),
        ("page=02", "/blog?page=2"),
        ("page=2&page=3", "/blog?page=2"),
    ] {
        let moved = server.get(&format!("/blog?{query}")).await;
        assert_eq!(moved.status, 308, "{query}");
        assert_eq!(moved.header("location"), Some(location), "{query}");
    }

    // Stored in its page's folder under its query's name; the sitemap lists the page only.
    assert!(fx.site_root().join("blog/%3Fpage=2/index.html").is_file());
    let sitemap = server.get("/sitemap.xml").await.body;
    assert!(
        sitemap.contains("/blog</loc>") && !sitemap.contains("page=2"),
        "{sitemap}"
    );

    // A tag's list, linked from its posts; a tag no post has is a 404.
    let post = server.get("/blog/on-demand").await;
    assert!(
        post.body.contains("href=\"/blog?tag=cms\""),
        "{}",
        post.body
    );
    let tagged = server.get("/blog?tag=cms").await;
    assert_eq!(tagged.status, 200);
    assert_eq!(listed(&tagged.body), ["on-demand"]);
    assert!(tagged.body.contains("<h1>Posts tagged #cms</h1>"));
    assert_eq!(server.get("/blog?tag=no-such-tag").await.status, 404);

    // A tag revalidation reaches the variants; a path revalidation of `/blog` reaches them all.
    fx.edit_post("on-demand", "title: ", "title: Edited ");
    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "regenerate" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let paths: Vec<String> = answer.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    for variant in ["/blog?page=2", "/blog?page=3", "/blog?tag=cms"] {
        assert!(paths.iter().any(|p| p == variant), "{variant} in {paths:?}");
    }
    let tagged = server.get("/blog?tag=cms").await;
    assert!(tagged.body.contains("Edited "), "{}", tagged.body);
    let answer = server
        .revalidate(&json!({ "paths": ["/blog"], "mode": "regenerate" }))
        .await;
    let results = answer.json()["results"].as_array().unwrap().len();
    assert_eq!(results, 4, "/blog and its three variants: {}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_made_up_pages_leave_disk_and_memory_flat() {
    let fx = fixture_with_three_pages();
    let server = BlogServer::start(&fx, &[], &[]);
    assert_eq!(server.get("/blog?page=2").await.status, 200);
    let stored = |m: &isr_tests::Metrics| m.sum("isr_pages", &[]);
    let pages_before = stored(&server.metrics().await);
    assert!(
        pages_before >= 10.0,
        "the stored pages are counted: {pages_before}"
    );
    let started = std::time::Instant::now();
    let files_before = files_under(&fx.site_root());
    let rss_before = rss(server.pid());
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let values: Vec<String> = (0..10_000)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Half past the last page (the loader runs, finds nothing), half not numbers.
            match i % 2 {
                0 => format!("{}", 4 + state % 1_000_000_000),
                _ => format!("x{state:x}"),
            }
        })
        .collect();
    let urls: Vec<String> = values
        .iter()
        .map(|page| format!("/blog?page={page}&utm_source={page}"))
        .collect();
    for chunk in urls.chunks(50) {
        let answers = futures::future::join_all(chunk.iter().map(|url| server.get(url))).await;
        for (url, answer) in chunk.iter().zip(answers) {
            assert_eq!(answer.status, 404, "{url}");
        }
    }
    assert_eq!(stored(&server.metrics().await), pages_before);
    let files_after = files_under(&fx.site_root());
    assert!(
        files_after <= files_before + 2,
        "site root grew from {files_before} to {files_after} files"
    );
    let grown = rss(server.pid()).saturating_sub(rss_before);
    eprintln!(
        "10,000 made-up variants in {:.1} s: files {files_before} → {files_after}, stored pages {pages_before}, RSS {} → {} MiB",
        started.elapsed().as_secs_f64(),
        rss_before >> 20,
        rss(server.pid()) >> 20
    );
    assert!(grown < 48 << 20, "RSS grew by {} MiB", grown >> 20);
    assert_eq!(server.get("/blog?page=2").await.cache(), "HIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_varnish_each_variant_is_one_object() {
    let fx = fixture_with_three_pages();
    let (_server, varnish) = varnish::in_front_of(|_| BlogServer::start(&fx, &[], &[]));
    let first = through(&varnish, "/blog?page=2&utm_source=a", &[]).await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("page 2 of 3"));
    // Other tracking values and another order: the same object, from Varnish's cache.
    let again = through(&varnish, "/blog?fbclid=b&page=2", &[]).await;
    assert!(again.varnish_hit(), "{:?}", again.headers);
    assert_eq!(listed(&again.body), listed(&first.body));
    let tagged = through(&varnish, "/blog?tag=isr&page=1", &[]).await;
    // `page=1` is the default: isr sends it to the canonical URL.
    assert_eq!(tagged.status, 200, "followed to /blog?tag=isr");
    assert!(tagged.body.contains("Posts tagged #isr"));
    let list = through(&varnish, "/blog?utm_campaign=z", &[]).await;
    assert!(list.body.contains("page 1 of 3") || list.body.contains("Page 1 of 3"));
    assert!(!list.body.contains("Posts tagged"));
}
