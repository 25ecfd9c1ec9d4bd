//! What an app gets besides its HTML pages, against the real blog and shop binaries over
//! loopback: the blog's RSS feed (a file route with its own content type), the sitemap and
//! robots.txt every app serves, the app's own 404 page in its layout, its hashed assets and public
//! files, and typed params that answer 404 before any loader runs.

use isr_tests::shop::{ShopFixture, ShopServer};
use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE};
use serde_json::json;

/// The published posts of the shipped content.
const PUBLISHED: [&str; 6] = [
    "choosing-a-strategy",
    "failure-modes",
    "hydration",
    "on-demand",
    "revalidate-explained",
    "what-is-isr",
];

/// The `<loc>`s of a sitemap.
fn locations(xml: &str) -> Vec<String> {
    xml.split("<loc>")
        .skip(1)
        .filter_map(|rest| rest.split("</loc>").next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_feed_is_rss_that_follows_the_posts() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--public-url", "https://blog.example.com"], &[]);
    let feed = server.get("/blog/feed.xml").await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert_eq!(
        feed.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert!(feed.header("etag").is_some());
    assert_eq!(
        feed.header("cache-control"),
        Some("max-age=0, must-revalidate, s-maxage=60")
    );
    assert_eq!(
        feed.header("cdn-cache-control"),
        Some("max-age=60, stale-while-revalidate=31536000")
    );
    // A real RSS parser reads it back: every published post, newest first, absolute links.
    let channel = rss::Channel::read_from(feed.body.as_bytes()).expect("valid RSS 2.0");
    assert_eq!(channel.title(), "The ISR blog");
    assert_eq!(channel.link(), "https://blog.example.com/blog");
    let links: Vec<&str> = channel.items().iter().filter_map(|i| i.link()).collect();
    assert_eq!(links.len(), PUBLISHED.len(), "{links:?}");
    for slug in PUBLISHED {
        assert!(
            links.contains(&format!("https://blog.example.com/blog/{slug}").as_str()),
            "{slug} missing from {links:?}"
        );
    }
    assert!(channel.items().iter().all(|i| i.pub_date().is_some()));
    // Stored as a file of the static export, next to the list's folder.
    assert!(fx.site_root().join("blog/feed.xml").is_file());

    // A new post reaches the feed when the `posts` tag is revalidated.
    fx.write_post(
        "fresh-news",
        &isr_tests::post_markdown("Fresh news", "2030-01-01", "Hot off the press."),
    );
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "tags": ["posts"] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let feed = server.get("/blog/feed.xml").await;
    let channel = rss::Channel::read_from(feed.body.as_bytes()).expect("valid RSS 2.0");
    assert_eq!(
        channel.items()[0].title(),
        Some("Fresh news"),
        "the newest post comes first"
    );
    // Compressed like pages.
    let gzip = server
        .send(
            server
                .request(reqwest::Method::GET, "/blog/feed.xml")
                .header("accept-encoding", "gzip"),
        )
        .await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn the_sitemap_lists_every_page_as_pages_appear_and_disappear() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let origin = server.base_url();
    let sitemap = server.get("/sitemap.xml").await;
    assert_eq!(sitemap.status, 200);
    assert_eq!(
        sitemap.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    let listed = locations(&sitemap.body);
    let mut expected: Vec<String> = PUBLISHED
        .iter()
        .map(|slug| format!("{origin}/blog/{slug}"))
        .collect();
    expected.push(format!("{origin}/blog"));
    expected.sort();
    assert_eq!(listed, expected, "HTML pages only: no feed, no 404s");
    assert_eq!(
        sitemap.body.matches("<lastmod>").count(),
        expected.len(),
        "{}",
        sitemap.body
    );

    // A new post appears once it is generated…
    fx.write_post(
        "late-arrival",
        &isr_tests::post_markdown("Late arrival", "2026-11-30", "Here now."),
    );
    assert_eq!(server.get("/blog/late-arrival").await.status, 200);
    let new_loc = format!("{origin}/blog/late-arrival");
    let sitemap = server.get("/sitemap.xml").await;
    assert!(
        locations(&sitemap.body).contains(&new_loc),
        "{}",
        sitemap.body
    );

    // …and a deleted one disappears once its regeneration finds it gone.
    fx.remove_post("late-arrival");
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/late-arrival"] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    poll_until(
        "the deleted post leaves the sitemap",
        POLL_DEADLINE,
        || async {
            let sitemap = server.get("/sitemap.xml").await;
            (!locations(&sitemap.body).contains(&new_loc)).then_some(())
        },
    )
    .await;

    // robots.txt points at the sitemap of the origin the request was sent to.
    let robots = server.get("/robots.txt").await;
    assert_eq!(robots.status, 200);
    assert_eq!(
        robots.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        robots
            .body
            .contains(&format!("Sitemap: {origin}/sitemap.xml")),
        "{}",
        robots.body
    );
}

#[tokio::test]
async fn pages_and_404s_get_the_layouts_that_cover_their_path() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    // The site layout (header, footer) around the /blog layout (feed link) around the view.
    let post = server.get("/blog/what-is-isr").await;
    assert_eq!(post.status, 200);
    let header = post
        .body
        .find(r#"<header class="site">"#)
        .expect("site header");
    let article = post.body.find("<article>").expect("the view");
    let subscribe = post
        .body
        .find(r#"<p class="subscribe">"#)
        .expect("blog layout");
    let footer = post
        .body
        .find(r#"<footer class="site">"#)
        .expect("site footer");
    assert!(
        header < article && article < subscribe && subscribe < footer,
        "{}",
        post.body
    );
    assert_eq!(post.body.matches(r#"<header class="site">"#).count(), 1);
    assert!(
        post.body
            .contains(r#"<link href="/blog/feed.xml" rel="alternate""#),
        "{}",
        post.body
    );
    // The 404 under /blog is in both layouts; elsewhere only in the site's.
    let in_blog = server.get("/blog/no-such-post").await;
    assert_eq!(in_blog.status, 404);
    assert!(
        in_blog.body.contains(r#"<p class="subscribe">"#),
        "{}",
        in_blog.body
    );
    for path in ["/nowhere", "/blogroll"] {
        let outside = server.get(path).await;
        assert_eq!(outside.status, 404, "{path}");
        assert!(
            outside.body.contains(r#"<header class="site">"#),
            "{}",
            outside.body
        );
        assert!(
            !outside.body.contains("subscribe"),
            "{path}: {}",
            outside.body
        );
    }
    // The feed is a file route: no layout.
    let feed = server.get("/blog/feed.xml").await;
    assert!(!feed.body.contains("<header"), "{}", feed.body);
}

#[tokio::test]
async fn a_missing_page_gets_the_blogs_own_404_in_its_layout() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    for path in ["/nowhere", "/blog/no-such-post", "/blog/a/b"] {
        let missing = server.get(path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(
            missing.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(missing.body.contains("No such page"), "{}", missing.body);
        assert!(
            missing.body.contains("The ISR blog"),
            "the layout's header: {}",
            missing.body
        );
        assert!(missing
            .body
            .contains("<title>Not found — the ISR blog</title>"));
    }
}

#[tokio::test]
async fn typed_params_that_do_not_read_back_are_404_before_any_loader_runs() {
    let fx = ShopFixture::seeded(50);
    let server = ShopServer::start(&fx, &[], &[]);
    assert_eq!(server.get("/products/42").await.status, 200);
    // With the database gone, a loader that ran would fail (503 for a page never generated):
    // these paths never reach one.
    fx.hide_db();
    for path in [
        "/products/042",
        "/products/+42",
        "/products/0",
        "/products/abc",
        "/products/99999999999",
        "/products/page/01",
        "/products/page/zero",
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
    }
    // A well-formed id the database does not know yet does reach its loader, which fails.
    assert_eq!(server.get("/products/4242").await.status, 503);
    fx.restore_db();
    assert_eq!(server.get("/products/42").await.status, 200);
}

/// The blog's stylesheet, as compiled into it.
const BLOG_STYLE: &str = include_str!("../../examples/blog/assets/style.css");

#[tokio::test]
async fn assets_are_served_at_content_hashed_urls_cached_forever_and_precompressed() {
    use sha2::Digest;
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let page = server.get("/blog").await;
    let href = page
        .body
        .split(r#"rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the layout links its stylesheet: {}", page.body))
        .to_string();
    let hash: String = sha2::Sha256::digest(BLOG_STYLE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(href, format!("/assets/style-{}.css", &hash[..12]));

    let css = server.get(&href).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.body, BLOG_STYLE);
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    for encoding in ["br", "gzip"] {
        let (text, wire) =
            isr_tests::get_encoded(&reqwest::Client::new(), &server.url(&href), encoding).await;
        assert!(wire < BLOG_STYLE.len(), "{encoding}");
        assert_eq!(text, BLOG_STYLE);
    }
    // In the static export too, with its variants.
    let exported = fx.site_root().join(href.trim_start_matches('/'));
    assert_eq!(std::fs::read_to_string(&exported).unwrap(), BLOG_STYLE);
    assert!(exported.with_extension("css.br").is_file());
    assert!(exported.with_extension("css.gz").is_file());
    // Another hash of it is no asset, and that answer is kept by no cache (it may be a file of
    // a build this instance has not got yet).
    let other = server.get("/assets/style-000000000000.css").await;
    assert_eq!(other.status, 404);
    assert_eq!(other.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn public_files_keep_their_names_with_short_caching() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let icon = server.get("/favicon.svg").await;
    assert_eq!(icon.status, 200);
    assert_eq!(
        icon.body,
        include_str!("../../examples/blog/public/favicon.svg")
    );
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert_eq!(icon.header("cache-control"), Some("public, max-age=3600"));
    let page = server.get("/blog").await;
    assert!(
        page.body
            .contains(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("data:,"), "no blank icon beside it");
}

#[test]
fn another_public_folder_replaces_robots_txt_and_may_not_shadow_a_page() {
    let fx = Fixture::new();
    let public = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(public.path().join(".well-known")).unwrap();
    std::fs::write(
        public.path().join(".well-known/security.txt"),
        "Contact: mailto:x@example.com\n",
    )
    .unwrap();
    std::fs::write(
        public.path().join("robots.txt"),
        "User-agent: *\nDisallow: /\n",
    )
    .unwrap();
    // At the path of a server function (a route of the app's own): the route wins, no clash.
    std::fs::create_dir_all(public.path().join("api")).unwrap();
    std::fs::write(public.path().join("api/post_likes"), "a file").unwrap();
    // Under a dynamic route (`/blog/:slug`): the file wins over a page that would be looked up.
    std::fs::create_dir_all(public.path().join("blog")).unwrap();
    std::fs::write(public.path().join("blog/pic.txt"), "a picture").unwrap();
    let dir = public.path().to_str().unwrap();
    let server = BlogServer::start(&fx, &["--public-dir", dir], &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let robots = server.get("/robots.txt").await;
        assert_eq!(
            robots.body, "User-agent: *\nDisallow: /\n",
            "the app's own, not isr's"
        );
        let security = server.get("/.well-known/security.txt").await;
        assert_eq!(security.status, 200);
        assert!(security.body.starts_with("Contact:"));
        // The blog's own public folder is not served beside it.
        assert_eq!(server.get("/favicon.svg").await.status, 404);
        let likes = server
            .call_server_fn("/api/post_likes", "slug=what-is-isr")
            .await;
        assert_eq!(likes.body, "0", "the server function, not the file");
        assert_eq!(server.get("/blog/pic.txt").await.body, "a picture");
        // HEAD of a public file: its headers, no body.
        let head = server
            .send(server.request(reqwest::Method::HEAD, "/robots.txt"))
            .await;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("cache-control"), Some("public, max-age=3600"));
        assert!(head.body.is_empty());
    });
    drop(server);

    std::fs::create_dir_all(public.path().join("blog")).unwrap();
    std::fs::write(public.path().join("blog/feed.xml"), "<rss/>").unwrap();
    let site_root = fx.site_root();
    let site_root = site_root.to_str().unwrap();
    let clash = fx.run(
        &["build", "--site-root", site_root, "--public-dir", dir],
        &[],
    );
    assert_eq!(clash.status.code(), Some(2), "{}", clash.stderr);
    assert!(
        clash
            .stderr
            .contains("blog/feed.xml and the page `blog::pages::feed` both answer /blog/feed.xml"),
        "{}",
        clash.stderr
    );
    let missing = fx.run(
        &[
            "build",
            "--site-root",
            site_root,
            "--public-dir",
            "/nonexistent/public",
        ],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        missing
            .stderr
            .contains("--public-dir / ISR_PUBLIC_DIR: no folder at /nonexistent/public"),
        "{}",
        missing.stderr
    );
}
