//! Freshness through a real Varnish 7 (the shipped `deploy/varnish/isr.vcl`, which reads isr's
//! `cdn-cache-control`): no cache in front of isr serves a page past its `expire` (plus its
//! `stale_if_error`). The bench app's `/expiring` (revalidate 1 s, expire 2 s, stale-if-error
//! 2 s) and `/expiring-strict` (no stale-if-error) are fetched through Varnish while their data
//! source is down, so that the first version is the only one there can be: every `200` must be
//! that version, requested while it was younger than its limit; after the limit, `503`. With
//! isr itself down, Varnish serves its own copy within the page's `stale-if-error`, never after.

use isr_tests::varnish::{self, through, Varnish};
use isr_tests::{bench_binary, serving_on_a_free_port, BlogServer, SECRET};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bench app (its loaders of the expiring pages fail while `down` exists) with Varnish in
/// front.
fn bench_behind_varnish(dir: &std::path::Path, down: &std::path::Path) -> (BlogServer, Varnish) {
    let mut attempt = 0;
    varnish::in_front_of(|_| {
        attempt += 1;
        let mut command = Command::new(bench_binary());
        command
            .env("RUST_LOG", "info")
            .env("ISR_ADMIN_TOKEN", SECRET)
            .env("BENCH_PAGES", "5")
            .env("BENCH_DOWN_FILE", down)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let site = dir.join(format!("site-{attempt}"));
        serving_on_a_free_port(&mut command, &["start"], &[], &site);
        BlogServer::spawn_with_deadline(command, Duration::from_secs(120))
    })
}

/// The `<h1>` of a bench page (`Expiring, run 3`): which version an answer is.
fn title(body: &str) -> &str {
    body.split("<h1>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
}

/// What was seen of one page through Varnish.
struct Watch {
    path: &'static str,
    /// `expire` + `stale_if_error`: the oldest the page may be when served.
    limit: Duration,
    /// The first answer's title (the only version there is while the data source is down).
    first: String,
    /// When the first answer arrived: the page was generated before, so a request sent `d`
    /// after this finds the page at least `d` old.
    generated_by: Instant,
    hits: usize,
    marked_stale_if_error: usize,
    refused_after_limit: bool,
}

impl Watch {
    async fn start(varnish: &Varnish, path: &'static str, limit: Duration) -> Watch {
        let first = through(varnish, path, &[]).await;
        assert_eq!(first.status, 200, "{}", first.body);
        Watch {
            path,
            limit,
            first: title(&first.body).to_string(),
            generated_by: Instant::now(),
            hits: 0,
            marked_stale_if_error: 0,
            refused_after_limit: false,
        }
    }

    /// One request: a `200` must be the first version, sent before the limit; a `503` comes
    /// only once isr has nothing it may serve.
    async fn observe(&mut self, varnish: &Varnish) {
        let sent = Instant::now();
        let edge = through(varnish, self.path, &[]).await;
        let isr_cache = edge.header("x-isr-cache").unwrap_or_default();
        let at_least = sent.saturating_duration_since(self.generated_by);
        match edge.status {
            200 => {
                assert_eq!(
                    title(&edge.body),
                    self.first,
                    "{}: no other version exists",
                    self.path
                );
                assert!(
                    at_least < self.limit,
                    "{} served at an age of at least {at_least:?}, past its limit {:?} (x-isr-cache {}, varnish hit {})",
                    self.path,
                    self.limit,
                    isr_cache,
                    edge.varnish_hit()
                );
                self.hits += usize::from(edge.varnish_hit());
                self.marked_stale_if_error += usize::from(isr_cache == "STALE-IF-ERROR");
            }
            503 => self.refused_after_limit |= at_least >= self.limit,
            other => panic!("{}: unexpected {other}: {}", self.path, edge.body),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_varnish_no_page_is_served_past_expire_and_stale_if_error() {
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down");
    let (_server, varnish) = bench_behind_varnish(dir.path(), &down);

    let mut pages = [
        Watch::start(&varnish, "/expiring", Duration::from_secs(4)).await,
        Watch::start(&varnish, "/expiring-strict", Duration::from_secs(2)).await,
    ];
    // The data source goes down: no later version can be generated.
    std::fs::write(&down, b"").unwrap();

    // Watch both pages until each has been refused past its limit (bounded by a deadline).
    let deadline = Instant::now() + Duration::from_secs(20);
    while pages.iter().any(|page| !page.refused_after_limit) {
        assert!(
            Instant::now() < deadline,
            "no 503 past the limit within 20 s"
        );
        for page in &mut pages {
            page.observe(&varnish).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for page in &pages {
        assert!(page.hits > 0, "{}: Varnish kept the page at all", page.path);
    }
    assert!(
        pages[0].marked_stale_if_error > 0,
        "past expire, isr served the old page under stale-if-error through Varnish"
    );
    assert_eq!(pages[1].marked_stale_if_error, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_isr_down_varnish_serves_its_copy_within_stale_if_error_and_never_after() {
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down");
    let (server, varnish) = bench_behind_varnish(dir.path(), &down);
    let mut page = Watch::start(&varnish, "/expiring", Duration::from_secs(4)).await;
    // isr itself is gone (the process stopped): only Varnish's copy is left.
    drop(server);

    let mut past_expire = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !page.refused_after_limit {
        assert!(
            Instant::now() < deadline,
            "no 503 past the limit within 20 s"
        );
        let sent = Instant::now();
        page.observe(&varnish).await;
        // Served after expire (2 s) with isr down: Varnish's own stale-if-error.
        if sent.saturating_duration_since(page.generated_by) > Duration::from_millis(2_200)
            && !page.refused_after_limit
        {
            past_expire += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        past_expire > 0,
        "Varnish served its copy within stale-if-error while isr was down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_ask_varnish_for_a_stale_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, varnish) = bench_behind_varnish(dir.path(), &dir.path().join("down"));
    let first = through(&varnish, "/expiring", &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let generated_by = Instant::now();
    // Past expire (2 s), isr up: the answer is a new version, whatever the request claims
    // about how this cache handles it (headers the VCL sets for itself on its restarts).
    tokio::time::sleep((generated_by + Duration::from_millis(2_300)) - Instant::now()).await;
    let forged = through(
        &varnish,
        "/expiring",
        &[("x-isr-stale-if-error", "1"), ("x-isr-refresh", "1")],
    )
    .await;
    assert_eq!(forged.status, 200);
    let body = forged.body;
    assert_ne!(title(&body), title(&first.body), "never the expired copy");
}
