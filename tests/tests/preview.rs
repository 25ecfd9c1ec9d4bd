//! Editors' previews against the blog, over real HTTP, with a real Redis (the shared tier) and
//! the shipped VCL in a real Varnish in front: a signed link (made by `blog preview-link`)
//! opens the draft `upcoming` while the public gets its 404 at the same moment; after it,
//! nothing of the draft is on disk, in Redis or in Varnish; a preview of a stale public page
//! neither regenerates it nor counts as a request; the exit link ends it.

use isr_tests::redis::{redis_available, Redis};
use isr_tests::varnish::{self, Varnish};
use isr_tests::{decompressed, poll_until, BlogServer, Fixture, POLL_DEADLINE, SECRET};
use std::time::Duration;

const PREVIEW_SECRET: &str = "preview-secret-0123456789";

/// What only the draft holds: its title and its body's text.
const DRAFT_TEXTS: [&str; 2] = [
    "A post that is not published yet",
    "Drafts are skipped by the list",
];

/// One answer through Varnish (redirects not followed).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Whether Varnish answered from its cache (`x-varnish` holds two transaction ids).
    fn varnish_hit(&self) -> bool {
        self.header("x-varnish").split_whitespace().count() == 2
    }
}

async fn through(varnish: &Varnish, path: &str, cookie: Option<&str>) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(varnish.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("GET through Varnish");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// The files of the site root that hold a draft text (compressed variants decompressed).
fn site_files_with_draft(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let text = match path.extension().and_then(|e| e.to_str()) {
                Some("br") => decompressed("br", &bytes),
                Some("gz") => decompressed("gzip", &bytes),
                _ => String::from_utf8_lossy(&bytes).into_owned(),
            };
            if DRAFT_TEXTS.iter().any(|t| text.contains(t)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_link_opens_a_draft_that_nothing_keeps() {
    assert!(
        redis_available(),
        "redis-server is not installed: `apt-get install redis-server` (scripts/test.sh does)"
    );
    let fixture = Fixture::new();
    let redis = Redis::start();
    let redis_url = redis.url();
    let (server, varnish) = varnish::in_front_of(|_| {
        BlogServer::start(
            &fixture,
            &["--redis", &redis_url],
            &[
                ("ISR_PREVIEW_SECRET", PREVIEW_SECRET),
                ("ISR_ADMIN_TOKEN", SECRET),
            ],
        )
    });

    // The CLI signs a link for the site's origin (here: Varnish).
    let made = fixture.run(
        &[
            "preview-link",
            "/blog/upcoming",
            "--ttl",
            "10m",
            "--url",
            &varnish.base_url(),
        ],
        &[("ISR_PREVIEW_SECRET", PREVIEW_SECRET)],
    );
    assert_eq!(made.code(), Some(0), "{}", made.stderr);
    let link = made.stdout.trim().to_owned();
    let prefix = format!(
        "{}/_isr/preview?path=%2Fblog%2Fupcoming&expires=",
        varnish.base_url()
    );
    assert!(link.starts_with(&prefix), "{link}");
    let path_and_query = link.strip_prefix(&varnish.base_url()).unwrap();

    // Forged and altered links: 401, no cookie (through Varnish, which passes `/_isr/`).
    // The signature with its last digit changed (to another digit, whatever it was).
    let last = if path_and_query.ends_with('0') {
        '1'
    } else {
        '0'
    };
    let forged = format!("{}{last}", &path_and_query[..path_and_query.len() - 1]);
    let altered = path_and_query.replace("upcoming", "what-is-isr");
    for refused in [&forged, &altered] {
        let answer = through(&varnish, refused, None).await;
        assert_eq!(answer.status, 401, "{refused}: {}", answer.body);
        assert_eq!(answer.header("set-cookie"), "", "{refused}");
    }

    let opened = through(&varnish, path_and_query, None).await;
    assert_eq!(opened.status, 307, "{}", opened.body);
    assert_eq!(opened.header("location"), "/blog/upcoming");
    let set_cookie = opened.header("set-cookie").to_owned();
    assert!(
        set_cookie.contains("; HttpOnly") && set_cookie.contains("; SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // The editor sees the draft while the public, at the same time, gets its 404.
    let (editor, public, origin) = tokio::join!(
        through(&varnish, "/blog/upcoming", Some(&cookie)),
        through(&varnish, "/blog/upcoming", None),
        server.get("/blog/upcoming"),
    );
    assert_eq!(editor.status, 200, "{}", editor.body);
    assert!(editor.body.contains(DRAFT_TEXTS[0]) && editor.body.contains(DRAFT_TEXTS[1]));
    assert!(editor.body.contains("Not public: draft"));
    assert!(editor
        .body
        .contains("<aside id=\"isr-preview\" role=\"status\""));
    assert!(editor
        .body
        .contains("href=\"/_isr/preview/exit?path=%2Fblog%2Fupcoming\""));
    assert_eq!(editor.header("cache-control"), "private, no-store");
    assert_eq!(editor.header("x-robots-tag"), "noindex");
    assert_eq!(editor.header("x-isr-cache"), "PREVIEW");
    assert_eq!(public.status, 404);
    assert_eq!(origin.status, 404);
    assert!(DRAFT_TEXTS.iter().all(|t| !public.body.contains(t)));

    // The list: with the draft (labelled) in the preview, without it for the public.
    let editor_list = through(&varnish, "/blog", Some(&cookie)).await;
    assert!(editor_list.body.contains("href=\"/blog/upcoming\""));
    assert!(editor_list
        .body
        .contains("<span class=\"unpublished\">draft</span>"));
    let public_list = through(&varnish, "/blog", None).await;
    assert_eq!(public_list.status, 200);
    assert!(!public_list.body.contains("/blog/upcoming"));
    assert!(!public_list.body.contains("unpublished"));

    // Varnish keeps none of it: a preview is never answered from its cache, and what the
    // public gets (now from Varnish's cache) is the public page.
    let again = through(&varnish, "/blog/upcoming", Some(&cookie)).await;
    assert!(again.body.contains(DRAFT_TEXTS[0]) && !again.varnish_hit());
    let editor_list = through(&varnish, "/blog", Some(&cookie)).await;
    assert!(editor_list.body.contains("/blog/upcoming") && !editor_list.varnish_hit());
    let public_list = through(&varnish, "/blog", None).await;
    assert!(public_list.varnish_hit(), "{:?}", public_list.headers);
    assert!(!public_list.body.contains("/blog/upcoming"));
    let public = through(&varnish, "/blog/upcoming", None).await;
    assert_eq!(public.status, 404);
    // A forged cookie is passed to isr, which serves it the public page.
    let forged_cookie = format!("isr_preview=9999999999.{}", "0".repeat(64));
    let forged = through(&varnish, "/blog/upcoming", Some(&forged_cookie)).await;
    assert_eq!(forged.status, 404);
    assert_ne!(forged.header("x-isr-cache"), "PREVIEW");
    // A cookie that is not one's shape is not even passed: the cached public list answers.
    let shapeless = through(&varnish, "/blog", Some("isr_preview=x")).await;
    assert!(shapeless.varnish_hit() && !shapeless.body.contains("/blog/upcoming"));

    // The public feed and sitemap never have it, even asked with the cookie (the feed's loader
    // takes no `Preview`).
    for path in ["/blog/feed.xml", "/sitemap.xml"] {
        for cookie in [None, Some(cookie.as_str())] {
            let answer = through(&varnish, path, cookie).await;
            assert_eq!(answer.status, 200, "{path}");
            assert!(
                !answer.body.contains("/blog/upcoming"),
                "{path}: {}",
                answer.body
            );
        }
    }

    // Nothing of the draft on disk or in Redis.
    assert_eq!(
        site_files_with_draft(&fixture.site_root()),
        Vec::<String>::new()
    );
    let contents = redis.contents();
    assert!(
        contents.iter().any(|(_, field, value)| field == "identity"
            && String::from_utf8_lossy(value).contains("<h1>Blog</h1>")),
        "the public pages are in Redis: {} strings",
        contents.len()
    );
    let in_redis: Vec<_> = contents
        .iter()
        .filter(|(_, _, value)| {
            let text = String::from_utf8_lossy(value);
            DRAFT_TEXTS.iter().any(|t| text.contains(t))
        })
        .map(|(key, field, _)| format!("{key} {field}"))
        .collect();
    assert_eq!(in_redis, Vec::<String>::new());

    // The exit link clears the cookie and goes back to the page.
    let exit = through(
        &varnish,
        "/_isr/preview/exit?path=%2Fblog%2Fupcoming",
        Some(&cookie),
    )
    .await;
    assert_eq!(exit.status, 307);
    assert_eq!(exit.header("location"), "/blog/upcoming");
    assert!(exit.header("set-cookie").starts_with("isr_preview=;"));
    assert!(exit.header("set-cookie").contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_neither_regenerates_nor_refreshes_the_public_page() {
    let fixture = Fixture::new();
    let server = BlogServer::start(
        &fixture,
        &[],
        &[
            ("ISR_PREVIEW_SECRET", PREVIEW_SECRET),
            ("ISR_ADMIN_TOKEN", SECRET),
        ],
    );
    let made = fixture.run(
        &[
            "preview-link",
            "/blog/what-is-isr",
            "--url",
            &server.base_url(),
        ],
        &[("ISR_PREVIEW_SECRET", PREVIEW_SECRET)],
    );
    assert_eq!(made.code(), Some(0), "{}", made.stderr);
    let opened = server
        .get(made.stdout.trim().strip_prefix(&server.base_url()).unwrap())
        .await;
    assert_eq!(opened.status, 307);
    let cookie = opened
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // `/blog/:slug` revalidates after 5 s: past that, previews of the page leave it stale.
    let path = "/blog/what-is-isr";
    fixture.wait_until_stale(path, Duration::from_secs(5)).await;
    let runs = |metrics: &isr_tests::Metrics| {
        metrics.sum("isr_regenerations_total", &[("route", "/blog/:slug")])
    };
    let requests = |metrics: &isr_tests::Metrics| metrics.sum("isr_requests_total", &[]);
    let metrics = server.metrics().await;
    let (before, requests_before) = (runs(&metrics), requests(&metrics));
    for _ in 0..3 {
        let preview = server
            .send(
                server
                    .request(reqwest::Method::GET, path)
                    .header("cookie", &cookie),
            )
            .await;
        assert_eq!(preview.status, 200);
        assert_eq!(preview.cache(), "PREVIEW");
        assert!(preview.body.contains("id=\"isr-preview\""));
        assert!(
            !preview.body.contains("Not public"),
            "a public post is not labelled"
        );
    }
    let status = server
        .send(
            server
                .request(reqwest::Method::GET, &format!("/_isr/api/pages{path}"))
                .header("authorization", format!("Bearer {SECRET}")),
        )
        .await
        .json();
    assert_eq!(status["state"], "stale", "{status}");
    let metrics = server.metrics().await;
    assert_eq!(runs(&metrics), before);
    assert_eq!(
        requests(&metrics),
        requests_before,
        "previews are no page requests"
    );
    // The first public request after them finds it stale, and regenerates it.
    let public = server.get(path).await;
    assert_eq!(public.cache(), "STALE");
    let s = &server;
    poll_until(
        "the public request's regeneration",
        POLL_DEADLINE,
        || async move { (runs(&s.metrics().await) > before).then_some(()) },
    )
    .await;
}
