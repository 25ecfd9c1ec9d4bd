//! State-machine tests of the engine with scripted loaders, a manual clock and real stores.

use super::*;
use crate::clock::ManualClock;
use crate::page::PageDef;
use crate::render::RenderedBody;
use crate::store::{FsStore, MemoryStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// What a scripted loader does on its next call.
#[derive(Clone)]
enum Mode {
    Page(&'static str),
    Fail,
    Panic,
    NotFound,
    Hang,
}

struct Script {
    calls: AtomicUsize,
    mode: Mutex<Mode>,
    delay: Mutex<Duration>,
}

fn scripts() -> &'static Mutex<HashMap<String, Arc<Script>>> {
    static SCRIPTS: OnceLock<Mutex<HashMap<String, Arc<Script>>>> = OnceLock::new();
    SCRIPTS.get_or_init(Default::default)
}

/// A loader script for the page `/t/<case>` (each test uses its own case name).
fn script(case: &str, mode: Mode) -> Arc<Script> {
    let script = Arc::new(Script {
        calls: AtomicUsize::new(0),
        mode: Mutex::new(mode),
        delay: Mutex::new(Duration::ZERO),
    });
    scripts()
        .lock()
        .unwrap()
        .insert(case.into(), script.clone());
    script
}

impl Script {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn scripted_load(params: Params) -> BoxFuture<'static, crate::Result<Generated>> {
    Box::pin(async move {
        let case = params.get("case")?.to_string();
        let script = scripts()
            .lock()
            .unwrap()
            .get(&case)
            .cloned()
            .expect("script");
        script.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *script.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let mode = script.mode.lock().unwrap().clone();
        match mode {
            Mode::Page(text) => Ok(Generated::Page(RenderedBody {
                body: format!("<p>{text}</p>"),
                tags: vec![format!("case:{case}")],
                ..Default::default()
            })),
            Mode::Fail => Err(anyhow::anyhow!("data source down")),
            Mode::Panic => panic!("loader bug"),
            Mode::NotFound => Ok(Generated::NotFound),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!()
            }
        }
    })
}

static BLOCKING: PageDef = PageDef {
    id: "tests::blocking",
    path: "/t/:case",
    revalidate: Revalidate::After(10),
    timeout_secs: Some(1),
    fallback: Fallback::Blocking,
    tags: &["t"],
    load: scripted_load,
    paths: None,
    hydrate_export: "isr_hydrate_test",
};

static ONLY_LISTED: PageDef = PageDef {
    id: "tests::only_listed",
    path: "/listed/:case",
    revalidate: Revalidate::After(10),
    timeout_secs: Some(1),
    fallback: Fallback::NotFound,
    tags: &[],
    load: scripted_load,
    paths: None,
    hydrate_export: "isr_hydrate_test",
};

const START_MS: u64 = 1_700_000_000_000;

struct Harness {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
}

async fn harness_with(store: Arc<dyn PageStore>, clock: Arc<ManualClock>) -> Harness {
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let engine = Engine::open(routes, store, clock.clone()).await.unwrap();
    Harness { engine, clock }
}

async fn harness() -> Harness {
    harness_with(
        Arc::new(MemoryStore::default()),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await
}

impl Harness {
    async fn get(&self, path: &str) -> (Option<CacheStatus>, String) {
        match self.engine.request(path).await {
            Served::Stored { page, cache, .. } => {
                let body = match &page.meta.kind {
                    PageKind::Page { .. } => {
                        String::from_utf8(page.html.clone().unwrap().to_vec()).unwrap()
                    }
                    PageKind::NotFound => "404".into(),
                    PageKind::Redirect { location, .. } => format!("-> {location}"),
                };
                (Some(cache), body)
            }
            Served::NotFound | Served::NoRoute => (None, "404".into()),
            Served::Unavailable { .. } => (None, "503".into()),
            Served::Canonical(p) => (None, format!("308 {p}")),
        }
    }

    /// Polls until `path` serves a body containing `text`, with a deadline.
    async fn eventually_contains(&self, path: &str, text: &str) -> (Option<CacheStatus>, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.get(path).await;
            if got.1.contains(text) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_idle(&self) {
        self.wait_idle_within(Duration::from_secs(5)).await;
    }

    async fn wait_idle_within(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.engine.lock_inflight().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            self.engine.lock_inflight().is_empty(),
            "generation still running"
        );
    }
}

#[tokio::test]
async fn miss_then_hit_then_stale_then_new_page() {
    let h = harness().await;
    let s = script("cycle", Mode::Page("v1"));
    let (cache, body) = h.get("/t/cycle").await;
    assert_eq!(cache, Some(CacheStatus::Miss));
    assert!(body.contains("<p>v1</p>") && body.starts_with("<!DOCTYPE html>"));
    assert_eq!(h.get("/t/cycle").await.0, Some(CacheStatus::Hit));

    s.set(Mode::Page("v2"));
    h.clock.advance_ms(9_999);
    assert_eq!(
        h.get("/t/cycle").await,
        (Some(CacheStatus::Hit), body.clone())
    );
    assert_eq!(s.calls(), 1, "fresh pages do not regenerate");
    h.clock.advance_ms(1); // age == revalidate: stale
    let (cache, stale_body) = h.get("/t/cycle").await;
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert!(
        stale_body.contains("v1"),
        "the stale request gets the old page"
    );
    let (cache, new_body) = h.eventually_contains("/t/cycle", "v2").await;
    assert!(new_body.contains("v2"), "{new_body}");
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn no_traffic_no_work() {
    let h = harness().await;
    let s = script("idle", Mode::Page("v1"));
    h.get("/t/idle").await;
    h.clock.advance_ms(1_000_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_generation() {
    let h = harness().await;
    let s = script("storm", Mode::Page("once"));
    s.delay(Duration::from_millis(200));
    let requests = (0..100).map(|_| h.get("/t/storm"));
    let results = futures::future::join_all(requests).await;
    assert_eq!(s.calls(), 1);
    for (cache, body) in results {
        assert_eq!(cache, Some(CacheStatus::Miss));
        assert!(body.contains("once"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_page_regenerates_once_and_requests_never_wait() {
    let h = harness().await;
    let s = script("single", Mode::Page("v1"));
    h.get("/t/single").await;
    s.set(Mode::Page("v2"));
    s.delay(Duration::from_millis(800));
    h.clock.advance_ms(10_000);
    let results = futures::future::join_all((0..200).map(|_| h.get("/t/single"))).await;
    // All 200 were answered while the (slow) regeneration is still running: none waited on it.
    assert!(
        !h.engine.lock_inflight().is_empty(),
        "requests waited on the regeneration"
    );
    assert!(results
        .iter()
        .all(|(c, b)| *c == Some(CacheStatus::Stale) && b.contains("v1")));
    h.wait_idle_within(Duration::from_secs(10)).await;
    assert_eq!(
        s.calls(),
        2,
        "exactly one regeneration for the stale window"
    );
    assert!(h.get("/t/single").await.1.contains("v2"));
}

#[tokio::test]
async fn failed_regeneration_keeps_the_old_page_and_backs_off() {
    let h = harness().await;
    let s = script("flaky", Mode::Page("good"));
    h.get("/t/flaky").await;
    s.set(Mode::Fail);
    h.clock.advance_ms(10_000);
    let (cache, body) = h.get("/t/flaky").await;
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert!(body.contains("good"));
    h.wait_idle().await;
    assert_eq!(s.calls(), 2);
    // Still the old page, and no new attempt inside the backoff window (first delay < 1 s).
    for _ in 0..5 {
        let (cache, body) = h.get("/t/flaky").await;
        assert_eq!(cache, Some(CacheStatus::Stale));
        assert!(body.contains("good"));
    }
    h.wait_idle().await;
    assert_eq!(s.calls(), 2, "backoff: no retry before the delay");
    h.clock.advance_ms(1_000);
    h.get("/t/flaky").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 3, "retried once the backoff passed");
    // Second failure: the delay doubles (≥ 1 s now).
    h.clock.advance_ms(900);
    h.get("/t/flaky").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 3);
    // Success resets everything.
    s.set(Mode::Page("fixed"));
    h.clock.advance_ms(2_000);
    h.get("/t/flaky").await;
    let (_, body) = h.eventually_contains("/t/flaky", "fixed").await;
    assert!(body.contains("fixed"));
    let state_failures = h.engine.read_pages().get("/t/flaky").unwrap().failures;
    assert_eq!(state_failures, 0);
}

#[tokio::test]
async fn panics_and_timeouts_keep_the_old_page() {
    let h = harness().await;
    let s = script("boom", Mode::Page("good"));
    h.get("/t/boom").await;
    s.set(Mode::Panic);
    let outcome = h
        .engine
        .regenerate("/t/boom", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Failed { kind: FailureKind::Panic, ref message } if message.contains("loader bug"))
    );
    assert!(h.get("/t/boom").await.1.contains("good"));

    s.set(Mode::Hang);
    let started = Instant::now();
    let outcome = h
        .engine
        .regenerate("/t/boom", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Failed {
            kind: FailureKind::Timeout,
            ..
        }
    ));
    assert!(started.elapsed() < Duration::from_secs(3), "timeout is 1 s");
    assert!(h.get("/t/boom").await.1.contains("good"));
}

#[tokio::test]
async fn not_found_removes_the_page_and_is_rechecked_later() {
    let h = harness().await;
    let s = script("gone", Mode::Page("here"));
    h.get("/t/gone").await;
    s.set(Mode::NotFound);
    h.clock.advance_ms(10_000);
    assert!(
        h.get("/t/gone").await.1.contains("here"),
        "stale request still gets the page"
    );
    let (_, body) = h.eventually_contains("/t/gone", "404").await;
    assert_eq!(body, "404");
    // Remembered: no loader call while the not-found is fresh (min(revalidate, 60 s) = 10 s).
    h.get("/t/gone").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 2);
    s.set(Mode::Page("back"));
    h.clock.advance_ms(10_000);
    h.get("/t/gone").await;
    let (_, body) = h.eventually_contains("/t/gone", "back").await;
    assert!(body.contains("back"));
}

#[tokio::test]
async fn never_generated_page_that_fails_is_unavailable_and_backs_off() {
    let h = harness().await;
    let s = script("down", Mode::Fail);
    assert_eq!(h.get("/t/down").await.1, "503");
    assert_eq!(h.get("/t/down").await.1, "503");
    assert_eq!(s.calls(), 1, "second request is inside the backoff window");
    match h.engine.request("/t/down").await {
        Served::Unavailable { retry_after } => assert!(retry_after <= Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    s.set(Mode::Page("up"));
    h.clock.advance_ms(1_000);
    let (cache, body) = h.get("/t/down").await;
    assert_eq!(cache, Some(CacheStatus::Miss));
    assert!(body.contains("up"));
}

#[tokio::test]
async fn fallback_404_never_calls_the_loader() {
    let h = harness().await;
    let s = script("unlisted", Mode::Page("x"));
    assert_eq!(h.get("/listed/unlisted").await.1, "404");
    assert_eq!(s.calls(), 0);
}

#[tokio::test]
async fn on_demand_bypasses_backoff_and_freshness() {
    let h = harness().await;
    let s = script("cms", Mode::Page("v1"));
    h.get("/t/cms").await;
    s.set(Mode::Page("v2"));
    let outcome = h
        .engine
        .regenerate("/t/cms", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Generated(_)));
    assert_eq!(
        h.get("/t/cms").await,
        (Some(CacheStatus::Hit), h.get("/t/cms").await.1)
    );
    assert!(h.get("/t/cms").await.1.contains("v2"));
    s.set(Mode::Fail);
    h.engine.regenerate("/t/cms", Trigger::OnDemand).await;
    s.set(Mode::Page("v3"));
    // inside the backoff window, on-demand still runs
    h.engine.regenerate("/t/cms", Trigger::OnDemand).await;
    assert!(h.get("/t/cms").await.1.contains("v3"));
    assert!(h
        .engine
        .regenerate("/nope", Trigger::OnDemand)
        .await
        .is_none());
}

#[tokio::test]
async fn tags_combine_attribute_and_loader_tags() {
    let h = harness().await;
    script("tagged", Mode::Page("x"));
    script("other", Mode::Page("y"));
    h.get("/t/tagged").await;
    h.get("/t/other").await;
    assert_eq!(h.engine.keys_with_tag("t"), ["/t/other", "/t/tagged"]);
    assert_eq!(h.engine.keys_with_tag("case:tagged"), ["/t/tagged"]);
    assert!(h.engine.keys_with_tag("nope").is_empty());
}

#[tokio::test]
async fn restart_serves_from_disk_without_generating() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let s = script("disk", Mode::Page("persisted"));
    {
        let h = harness_with(Arc::new(FsStore::new(dir.path())), clock.clone()).await;
        h.get("/t/disk").await;
    }
    let h = harness_with(Arc::new(FsStore::new(dir.path())), clock.clone()).await;
    let (cache, body) = h.get("/t/disk").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("persisted"));
    assert_eq!(s.calls(), 1);

    // HTML replaced behind the metadata's back: served whole, but as stale.
    std::fs::write(
        dir.path().join("t/disk/index.html"),
        "<p>edited on disk</p>",
    )
    .unwrap();
    let h = harness_with(Arc::new(FsStore::new(dir.path())), clock).await;
    s.set(Mode::Page("regenerated"));
    let (cache, body) = h.get("/t/disk").await;
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert_eq!(body, "<p>edited on disk</p>");
    let (_, body) = h.eventually_contains("/t/disk", "regenerated").await;
    assert!(body.contains("regenerated"));
}

#[tokio::test]
async fn routing_outcomes() {
    let h = harness().await;
    assert_eq!(h.get("/t/x/").await.1, "308 /t/x");
    assert_eq!(h.get("/t/%2e%2e").await.1, "404");
    assert_eq!(h.get("/nothing").await.1, "404");
}

#[tokio::test]
async fn hot_cache_stays_within_its_budget_and_evicted_pages_still_serve() {
    let h = harness().await;
    let names: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
    for name in &names {
        script(name, Mode::Page("some page body"));
    }
    let one_page = {
        h.get("/t/hot0").await;
        h.engine.hot_cache_bytes()
    };
    h.engine.set_hot_cache_budget(one_page * 3);
    for name in &names {
        h.get(&format!("/t/{name}")).await;
        assert!(
            h.engine.hot_cache_bytes() <= one_page * 3,
            "{} > {}",
            h.engine.hot_cache_bytes(),
            one_page * 3
        );
    }
    // The first pages lost their HTML in memory, not their content.
    let (cache, body) = h.get("/t/hot0").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("some page body"));
    assert!(h.engine.hot_cache_bytes() <= one_page * 3);
}
