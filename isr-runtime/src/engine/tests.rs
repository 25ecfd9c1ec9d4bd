//! State-machine tests of the engine with scripted loaders, a manual clock and real stores.

use super::*;
use crate::clock::ManualClock;
use crate::encoding::Variants;
use crate::page::{Generated, PageDef, Revalidate};
use crate::render::DocumentShell;
use crate::render::RenderedBody;
use crate::route::PageKey;
use crate::store::{FsStore, MemoryStore, PageMeta, StoreFuture};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

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
    let earlier = scripts()
        .lock()
        .unwrap()
        .insert(case.into(), script.clone());
    // Tests run in parallel and share this registry: a second test with the same case
    // name would change the first one's loader under it.
    assert!(earlier.is_none(), "two tests use the case name {case:?}");
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

fn scripted_load(cx: crate::context::LoadContext) -> BoxFuture<'static, crate::Result<Generated>> {
    let params = cx.params().clone();
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
    accepts: crate::page::accept_all,
    check: crate::page::nothing_to_check,
    content_type: None,
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
    accepts: crate::page::accept_all,
    check: crate::page::nothing_to_check,
    content_type: None,
    hydrate_export: "isr_hydrate_test",
};

const START_MS: u64 = 1_700_000_000_000;

struct Harness {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
}

async fn harness_with(store: Arc<dyn PageStore>, clock: Arc<ManualClock>) -> Harness {
    harness_of(
        Engine::builder(Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap(), store),
        clock,
    )
    .await
}

/// A harness over `builder` with the test routes' documents and `clock`.
async fn harness_of(builder: crate::EngineBuilder, clock: Arc<ManualClock>) -> Harness {
    let engine = builder
        .clock(clock.clone())
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    Harness { engine, clock }
}

/// A harness that joined the shared tier `tier`.
#[cfg(feature = "redis")]
async fn shared_harness(tier: Arc<crate::shared::RedisTier>) -> Harness {
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let builder = Engine::builder(routes, Arc::new(MemoryStore::default())).shared(tier);
    harness_of(builder, Arc::new(ManualClock::new(START_MS))).await
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
                        String::from_utf8(page.html().unwrap().to_vec()).unwrap()
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
    let state_failures = h.engine.table.failures("/t/flaky").unwrap();
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
    let (cache, body) = h.get("/t/cms").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("v2"), "{body}");
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
    let keys = |tag: &str| -> Vec<String> {
        h.engine
            .keys_with_tag(tag)
            .iter()
            .map(|k| k.to_string())
            .collect()
    };
    assert_eq!(keys("t"), ["/t/other", "/t/tagged"]);
    assert_eq!(keys("case:tagged"), ["/t/tagged"]);
    assert!(h.engine.keys_with_tag("nope").is_empty());
}

#[tokio::test]
async fn restart_serves_from_disk_without_generating() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let s = script("disk", Mode::Page("persisted"));
    {
        let h = harness_with(
            Arc::new(FsStore::new(dir.path().join("site"))),
            clock.clone(),
        )
        .await;
        h.get("/t/disk").await;
    }
    let h = harness_with(
        Arc::new(FsStore::new(dir.path().join("site"))),
        clock.clone(),
    )
    .await;
    let (cache, body) = h.get("/t/disk").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("persisted"));
    assert_eq!(s.calls(), 1);

    // HTML replaced behind the index's back (or truncated): never served; regenerated as a miss.
    for tampered in ["<p>edited on disk</p>", ""] {
        let html = dir.path().join("site/t/disk/index.html");
        let whole = std::fs::read(&html).unwrap();
        let replaced = if tampered.is_empty() {
            whole[..whole.len() / 2].to_vec()
        } else {
            tampered.as_bytes().to_vec()
        };
        std::fs::write(&html, replaced).unwrap();
        let h = harness_with(
            Arc::new(FsStore::new(dir.path().join("site"))),
            clock.clone(),
        )
        .await;
        s.set(Mode::Page("regenerated"));
        let (cache, body) = h.get("/t/disk").await;
        assert_eq!(cache, Some(CacheStatus::Miss), "{tampered:?}");
        assert!(body.contains("regenerated"), "{body}");
        assert_eq!(h.get("/t/disk").await.0, Some(CacheStatus::Hit));
    }

    // A compressed variant of other bytes (a crash between renames, or an edit) is never
    // served either: the page is regenerated and its variants rewritten.
    for (variant, decode) in [("index.html.br", "br"), ("index.html.gz", "gzip")] {
        let path = dir.path().join("site/t/disk").join(variant);
        let other = Variants::compress(Bytes::from_static(b"<p>some other page</p>"));
        let stale = if decode == "br" {
            other.brotli
        } else {
            other.gzip
        };
        std::fs::write(&path, stale.unwrap()).unwrap();
        let h = harness_with(
            Arc::new(FsStore::new(dir.path().join("site"))),
            clock.clone(),
        )
        .await;
        s.set(Mode::Page(if decode == "br" {
            "fixed br"
        } else {
            "fixed gzip"
        }));
        let (cache, body) = h.get("/t/disk").await;
        assert_eq!(cache, Some(CacheStatus::Miss), "{variant}");
        let stored = FsStore::new(dir.path().join("site"))
            .body(&h.engine.routes().page_of_key("/t/disk").unwrap().1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.identity, body.as_bytes());
        assert!(stored.verified().is_ok(), "{variant} rewritten");
    }
}

#[tokio::test]
async fn a_page_read_from_disk_for_one_encoding_is_read_again_for_another() {
    use crate::encoding::Encoding;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let s = script("partial", Mode::Page("several encodings"));
    let store = || Arc::new(FsStore::new(dir.path().join("site")));
    harness_with(store(), clock.clone())
        .await
        .get("/t/partial")
        .await;
    let h = harness_with(store(), clock.clone()).await;
    let page = |served| match served {
        Served::Stored { page, cache, .. } => {
            assert_eq!(cache, CacheStatus::Hit);
            page
        }
        other => panic!("{other:?}"),
    };
    let want = |encoding| h.engine.request_wanting("/t/partial", encoding);

    // An identity request reads the HTML alone, and its copy answers identity requests.
    let html_only = page(want(Some(Encoding::Identity)).await);
    assert!(html_only.partial && !html_only.html().unwrap().is_empty());
    assert!(html_only.representation(Encoding::Brotli).is_none());
    assert!(Arc::ptr_eq(
        &html_only,
        &page(want(Some(Encoding::Identity)).await)
    ));
    // A brotli request finds no brotli in it: the page is read again, in full this time.
    let full = page(want(Some(Encoding::Brotli)).await);
    assert!(!full.partial && !Arc::ptr_eq(&html_only, &full));
    let (_, etag) = full.representation(Encoding::Brotli).unwrap();
    assert!(etag.ends_with("-br\""));
    let body = full.body.clone().unwrap();
    assert!(body.gzip.is_some() && body.verified().is_ok());
    // ... and then answers every encoding, and callers that want them all.
    assert!(Arc::ptr_eq(&full, &page(want(Some(Encoding::Gzip)).await)));
    assert!(Arc::ptr_eq(&full, &page(want(None).await)));
    assert_eq!(s.calls(), 1, "read back, never regenerated");

    // A fresh engine asked for brotli reads the HTML and brotli; `request` reads everything.
    let h = harness_with(store(), clock.clone()).await;
    match h
        .engine
        .request_wanting("/t/partial", Some(Encoding::Brotli))
        .await
    {
        Served::Stored { page, .. } => {
            assert!(page.partial && page.representation(Encoding::Brotli).is_some());
            assert!(page.representation(Encoding::Gzip).is_none());
        }
        other => panic!("{other:?}"),
    }
    let h = harness_with(store(), clock.clone()).await;
    match h.engine.request("/t/partial").await {
        Served::Stored { page, .. } => {
            assert!(!page.partial && page.representation(Encoding::Gzip).is_some())
        }
        other => panic!("{other:?}"),
    }
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
    let dir = tempfile::tempdir().unwrap();
    let h = harness_with(
        Arc::new(FsStore::new(dir.path().join("site"))),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await;
    let budget = 16 * 1024;
    h.engine.set_hot_cache_budget(budget);
    let names: Vec<String> = (0..40).map(|i| format!("hot{i}")).collect();
    for name in &names {
        script(
            name,
            Mode::Page("some page body that takes a few hundred bytes"),
        );
        h.get(&format!("/t/{name}")).await;
        assert!(
            h.engine.hot_cache_bytes() <= budget,
            "{} > {budget}",
            h.engine.hot_cache_bytes()
        );
    }
    // Some pages lost their bytes in memory, not their content.
    for name in &names {
        let (cache, body) = h.get(&format!("/t/{name}")).await;
        assert_eq!(cache, Some(CacheStatus::Hit));
        assert!(body.contains("some page body"));
        assert!(h.engine.hot_cache_bytes() <= budget);
    }
}

/// A store test double that wraps a real [`MemoryStore`] and fails on demand with the errors a
/// disk gives (the real thing cannot produce EIO when asked).
#[derive(Clone, Default)]
struct FaultyStore {
    inner: MemoryStore,
    fail_reads: Arc<AtomicBool>,
    fail_writes: Arc<Mutex<Option<std::io::ErrorKind>>>,
    slow_writes: Arc<Mutex<Duration>>,
    writes: Arc<AtomicUsize>,
}

impl PageStore for FaultyStore {
    fn load(&self) -> StoreFuture<Vec<PageMeta>> {
        self.inner.load()
    }
    fn meta(&self, key: &PageKey) -> StoreFuture<Option<PageMeta>> {
        self.inner.meta(key)
    }
    fn body(&self, key: &PageKey) -> StoreFuture<Option<Variants>> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(std::io::Error::other("EIO: injected read error")) });
        }
        self.inner.body(key)
    }
    fn put(&self, key: &PageKey, meta: PageMeta, body: Option<Variants>) -> StoreFuture<()> {
        let fault = *self.fail_writes.lock().unwrap();
        let delay = *self.slow_writes.lock().unwrap();
        let inner = self.inner.clone();
        let key = key.clone();
        let writes = self.writes.clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if let Some(kind) = fault {
                return Err(std::io::Error::new(kind, format!("injected {kind:?}")));
            }
            writes.fetch_add(1, Ordering::SeqCst);
            inner.put(&key, meta, body).await
        })
    }
    fn remove(&self, key: &PageKey) -> StoreFuture<()> {
        self.inner.remove(key)
    }
    fn keys_with_tag(&self, tag: &str) -> StoreFuture<Vec<String>> {
        self.inner.keys_with_tag(tag)
    }
}

async fn faulty_harness() -> (Harness, FaultyStore) {
    let store = FaultyStore::default();
    let h = harness_with(
        Arc::new(store.clone()),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await;
    (h, store)
}

#[tokio::test]
async fn unknown_paths_are_never_stored_and_their_memory_is_bounded() {
    let store = MemoryStore::default();
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let options = EngineOptions {
        not_found_capacity: 100,
        ..EngineOptions::default()
    };
    let engine = Engine::builder(routes, Arc::new(store.clone()))
        .clock(Arc::new(ManualClock::new(START_MS)))
        .options(options)
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    let s = script("missing", Mode::NotFound);
    let _ = s;
    let mut last = None;
    for i in 0..1_000 {
        let case = format!("random{i}");
        last = Some(script(&case, Mode::NotFound));
        match engine.request(&format!("/t/{case}")).await {
            Served::Stored {
                page,
                cache: CacheStatus::Miss,
                ..
            } => assert_eq!(page.meta.kind, PageKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        store.load().await.unwrap().is_empty(),
        "nothing written for unknown paths"
    );
    assert_eq!(engine.page_count(), 0);
    assert!(
        engine.remembered_non_pages() <= 110,
        "{}",
        engine.remembered_non_pages()
    );
    // a remembered one answers without its loader
    let last = last.expect("the loop ran");
    let calls = last.calls();
    assert!(matches!(
        engine.request("/t/random999").await,
        Served::Stored {
            cache: CacheStatus::Hit,
            ..
        }
    ));
    assert_eq!(last.calls(), calls);
}

#[tokio::test]
async fn a_page_that_existed_keeps_a_tombstone() {
    let (h, store) = faulty_harness().await;
    let s = script("tomb", Mode::Page("here"));
    h.get("/t/tomb").await;
    s.set(Mode::NotFound);
    h.engine.regenerate("/t/tomb", Trigger::OnDemand).await;
    let stored = store.inner.load().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, PageKind::NotFound);
    assert_eq!(h.get("/t/tomb").await.1, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_paths_runs_a_bounded_number_of_loaders_at_once() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    fn counting_load(
        _: crate::context::LoadContext,
    ) -> BoxFuture<'static, crate::Result<Generated>> {
        Box::pin(async {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            Ok(Generated::NotFound)
        })
    }
    static FLOOD: PageDef = PageDef {
        id: "tests::flood",
        path: "/flood/:slug",
        revalidate: Revalidate::After(10),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &[],
        load: counting_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydrate_export: "isr_hydrate_test",
    };
    let routes = Routes::new(vec![&FLOOD]).unwrap();
    let options = EngineOptions {
        max_regenerations: 8,
        ..EngineOptions::default()
    };
    let engine = Engine::builder(routes, Arc::new(MemoryStore::default()))
        .clock(Arc::new(ManualClock::new(START_MS)))
        .options(options)
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    let requests = (0..400).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move { engine.request(&format!("/flood/x{i}")).await })
    });
    for served in futures::future::join_all(requests).await {
        assert!(
            matches!(served.unwrap(), Served::Stored { ref page, .. } if page.meta.kind == PageKind::NotFound)
        );
    }
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&peak),
        "unknown paths of one route use at most half the slots: {peak}"
    );
}

#[tokio::test]
async fn a_read_error_answers_503_once_and_never_drops_the_page() {
    let (h, store) = faulty_harness().await;
    let s = script("eio", Mode::Page("kept"));
    h.get("/t/eio").await;
    h.engine.hot.remove("/t/eio"); // evicted: the next request reads the store
    store.fail_reads.store(true, Ordering::SeqCst);
    assert_eq!(h.get("/t/eio").await.1, "503");
    assert_eq!(h.engine.page_count(), 1, "the page is still known");
    store.fail_reads.store(false, Ordering::SeqCst);
    let (cache, body) = h.get("/t/eio").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("kept"), "{body}");
    assert_eq!(s.calls(), 1, "no regeneration was needed");
}

#[tokio::test]
async fn a_failed_store_write_keeps_the_old_page_backs_off_and_recovers() {
    for fault in [
        std::io::ErrorKind::StorageFull,
        std::io::ErrorKind::ReadOnlyFilesystem,
        std::io::ErrorKind::Other,
    ] {
        let (h, store) = faulty_harness().await;
        let case = format!("enospc{fault:?}");
        let s = script(&case, Mode::Page("old"));
        let path = format!("/t/{case}");
        h.get(&path).await;
        s.set(Mode::Page("new"));
        *store.fail_writes.lock().unwrap() = Some(fault);
        h.clock.advance_ms(10_000);
        let (cache, body) = h.get(&path).await;
        assert_eq!(cache, Some(CacheStatus::Stale));
        assert!(body.contains("old"));
        h.wait_idle().await;
        let outcome = h.engine.regenerate(&path, Trigger::OnDemand).await.unwrap();
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    kind: FailureKind::StoreError,
                    ..
                }
            ),
            "{outcome:?}"
        );
        assert!(
            h.get(&path).await.1.contains("old"),
            "the old page is still served"
        );
        assert!(h.engine.table.failures(&path).unwrap() >= 2, "backing off");
        // the disk recovers: the next attempt after the backoff succeeds by itself
        *store.fail_writes.lock().unwrap() = None;
        h.clock.advance_ms(5_000);
        h.get(&path).await;
        let (_, body) = h.eventually_contains(&path, "new").await;
        assert!(body.contains("new"), "{fault:?}: {body}");
    }
}

#[tokio::test]
async fn the_timeout_covers_the_store_write() {
    let (h, store) = faulty_harness().await;
    let s = script("slowdisk", Mode::Page("v1"));
    h.get("/t/slowdisk").await;
    s.set(Mode::Page("v2"));
    *store.slow_writes.lock().unwrap() = Duration::from_secs(30);
    let started = Instant::now();
    let outcome = h
        .engine
        .regenerate("/t/slowdisk", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Failed {
                kind: FailureKind::Timeout,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the page's timeout is 1 s"
    );
    assert!(h.get("/t/slowdisk").await.1.contains("v1"));
}

#[tokio::test]
async fn backoff_runs_on_the_monotonic_clock_not_the_wall_clock() {
    let h = harness().await;
    let s = script("step", Mode::Page("good"));
    h.get("/t/step").await;
    s.set(Mode::Fail);
    h.clock.advance_ms(10_000);
    h.get("/t/step").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 2);
    // The wall clock jumps a day ahead: the page is stale either way, but the backoff (< 1 s of
    // monotonic time) still holds: no new attempt.
    h.clock.step_wall_ms(86_400_000);
    h.get("/t/step").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 2, "a wall-clock step does not end the backoff");
    // ... and a step back does not extend it.
    h.clock.step_wall_ms(-2 * 86_400_000);
    h.clock.advance_ms(1_000);
    match h.engine.request("/t/step").await {
        Served::Stored { .. } => {}
        other => panic!("{other:?}"),
    }
    h.wait_idle().await;
    // the page looks fresh after the backward step (generation time is wall clock), so the
    // retry comes from an on-demand call here; what matters is that it is allowed at once
    let outcome = h
        .engine
        .regenerate("/t/step", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Failed {
            kind: FailureKind::Error,
            ..
        }
    ));
}

#[tokio::test]
async fn a_never_generated_page_backs_off_on_the_monotonic_clock() {
    let h = harness().await;
    let s = script("neverup", Mode::Fail);
    assert_eq!(h.get("/t/neverup").await.1, "503");
    h.clock.step_wall_ms(-3_600_000);
    match h.engine.request("/t/neverup").await {
        Served::Unavailable { retry_after } => {
            assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_running_generation() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness_with(
        Arc::new(FsStore::new(dir.path().join("site"))),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await;
    let s = script("inflight", Mode::Page("v1"));
    h.get("/t/inflight").await;
    s.set(Mode::Page("v2"));
    s.delay(Duration::from_millis(300));
    h.clock.advance_ms(10_000);
    assert_eq!(h.get("/t/inflight").await.0, Some(CacheStatus::Stale));
    assert_eq!(h.engine.running_generations(), 1);
    assert!(
        h.engine.shutdown(Duration::from_secs(5)).await,
        "finished within the deadline"
    );
    assert_eq!(h.engine.running_generations(), 0);
    let html = std::fs::read_to_string(dir.path().join("site/t/inflight/index.html")).unwrap();
    assert!(
        html.contains("v2"),
        "the generation completed and was written whole"
    );
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline() {
    let h = harness().await;
    let s = script("stuck", Mode::Page("v1"));
    h.get("/t/stuck").await;
    s.set(Mode::Hang);
    h.clock.advance_ms(10_000);
    h.get("/t/stuck").await;
    assert!(!h.engine.shutdown(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn a_full_scheduler_leaves_stale_pages_stale_without_blocking() {
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let options = EngineOptions {
        max_regenerations: 1,
        ..EngineOptions::default()
    };
    let engine = Engine::builder(routes, Arc::new(MemoryStore::default()))
        .clock(clock.clone())
        .options(options)
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    let h = Harness { engine, clock };
    let busy = script("busy", Mode::Page("b1"));
    let other = script("waiting", Mode::Page("w1"));
    h.get("/t/busy").await;
    h.get("/t/waiting").await;
    busy.set(Mode::Page("b2"));
    busy.delay(Duration::from_millis(500));
    other.set(Mode::Page("w2"));
    h.clock.advance_ms(10_000);
    assert_eq!(h.get("/t/busy").await.0, Some(CacheStatus::Stale)); // takes the only slot
    let (cache, body) = h.get("/t/waiting").await; // no slot: answered at once, still stale
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert!(body.contains("w1"));
    h.wait_idle().await;
    assert_eq!(other.calls(), 1, "not started while the scheduler was full");
    h.get("/t/waiting").await; // a later request tries again
    let (_, body) = h.eventually_contains("/t/waiting", "w2").await;
    assert!(body.contains("w2"));
}

#[tokio::test]
async fn tag_revalidation_regenerates_encoded_keys_as_they_are() {
    let h = harness().await;
    // `/t/sale%2520now` is the page whose decoded key is `/t/sale%20now`
    let s = script("sale%20now", Mode::Page("v1"));
    let (cache, _) = h.get("/t/sale%2520now").await;
    assert_eq!(cache, Some(CacheStatus::Miss));
    s.set(Mode::Page("v2"));
    let request = crate::RevalidateRequest {
        paths: vec![],
        tags: vec!["case:sale%20now".into(), "case:sale%20now".into()],
    };
    let results = crate::revalidate::revalidate(&h.engine, &request).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].path, "/t/sale%20now");
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::Regenerated);
    assert!(h.get("/t/sale%2520now").await.1.contains("v2"));
    assert_eq!(s.calls(), 2);
}

fn files_under(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_random_slugs_leave_disk_and_memory_as_they_were() {
    fn not_found_load(
        _: crate::context::LoadContext,
    ) -> BoxFuture<'static, crate::Result<Generated>> {
        Box::pin(async { Ok(Generated::NotFound) })
    }
    fn real_load(_: crate::context::LoadContext) -> BoxFuture<'static, crate::Result<Generated>> {
        Box::pin(async {
            Ok(Generated::Page(RenderedBody {
                body: "<p>real</p>".into(),
                ..Default::default()
            }))
        })
    }
    static RANDOM: PageDef = PageDef {
        id: "tests::random",
        path: "/r/:slug",
        revalidate: Revalidate::After(60),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &["posts"],
        load: not_found_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydrate_export: "isr_hydrate_test",
    };
    static REAL: PageDef = PageDef {
        id: "tests::real",
        path: "/real",
        revalidate: Revalidate::After(60),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &["posts"],
        load: real_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydrate_export: "isr_hydrate_test",
    };
    let dir = tempfile::tempdir().unwrap();
    let routes = Routes::new(vec![&RANDOM, &REAL]).unwrap();
    let engine = Engine::builder(routes, Arc::new(FsStore::new(dir.path().join("site"))))
        .clock(Arc::new(ManualClock::new(START_MS)))
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    assert!(matches!(
        engine.request("/real").await,
        Served::Stored {
            cache: CacheStatus::Miss,
            ..
        }
    ));
    let files_before = files_under(dir.path());
    let workers = (0..4u64).map(|worker| {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(worker);
            for _ in 0..25_000 {
                let slug: String = (0..16).map(|_| rng.alphanumeric()).collect();
                match engine.request(&format!("/r/{slug}")).await {
                    Served::Stored { page, .. } if page.meta.kind == PageKind::NotFound => {}
                    other => panic!("{slug}: {other:?}"),
                }
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.unwrap();
    }
    assert_eq!(
        files_under(dir.path()),
        files_before,
        "no file for an unknown path"
    );
    assert_eq!(engine.page_count(), 1);
    assert!(engine.remembered_non_pages() <= NEGATIVE_CAPACITY + NEGATIVE_CAPACITY / 10);
    assert_eq!(
        engine.keys_with_tag("posts").len(),
        1,
        "the tag index holds only real pages"
    );
    assert!(matches!(
        engine.request("/real").await,
        Served::Stored {
            cache: CacheStatus::Hit,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_cache_accounting_holds_under_concurrent_requests_and_regenerations() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness_with(
        Arc::new(FsStore::new(dir.path().join("site"))),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await;
    let budget = 32 * 1024;
    h.engine.set_hot_cache_budget(budget);
    let names: Vec<String> = (0..60).map(|i| format!("conc{i}")).collect();
    for name in &names {
        script(
            name,
            Mode::Page("a page body that is a few hundred bytes long once rendered"),
        );
    }
    let engine = h.engine.clone();
    let workers = (0..8).map(|worker| {
        let engine = engine.clone();
        let names = names.clone();
        tokio::spawn(async move {
            for round in 0..30 {
                let name = &names[(worker * 7 + round * 13) % names.len()];
                if round % 5 == 0 {
                    engine
                        .regenerate(&format!("/t/{name}"), Trigger::OnDemand)
                        .await;
                } else {
                    let served = engine.request(&format!("/t/{name}")).await;
                    assert!(matches!(served, Served::Stored { .. }), "{served:?}");
                }
                assert!(engine.hot_cache_bytes() <= budget);
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.unwrap();
    }
    h.wait_idle().await;
    assert!(h.engine.hot_cache_bytes() <= budget);
    assert!(h.engine.hot_cache_bytes() > 0, "pages are resident");
    for name in &names {
        let (_, body) = h.get(&format!("/t/{name}")).await;
        assert!(body.contains("a page body"), "{name}: {body}");
    }
}

/// A store test double whose start-up read pauses: the first row comes at once, every later
/// row only when the test releases it (a real index cannot be paused half-way on demand).
#[derive(Clone)]
struct SlowLoadStore {
    inner: MemoryStore,
    released: Arc<tokio::sync::Semaphore>,
}

impl Default for SlowLoadStore {
    fn default() -> Self {
        SlowLoadStore {
            inner: MemoryStore::default(),
            released: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

impl SlowLoadStore {
    /// Stores a page of `/listed/<case>` carrying `tags`, as a build would have.
    async fn stored(&self, case: &str, text: &str, tags: &[&str]) {
        let routes = Routes::new(vec![&ONLY_LISTED]).unwrap();
        let (_, key) = routes.page_of_key(&format!("/listed/{case}")).unwrap();
        let body = Bytes::from(format!("<p>{text}</p>"));
        let meta = PageMeta {
            key: key.to_string(),
            route: ONLY_LISTED.path.into(),
            generated_at_ms: START_MS,
            kind: PageKind::Page {
                etag: Etag::of(&body),
                bytes: body.len() as u64,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        self.inner
            .put(&key, meta, Some(Variants::compress(body)))
            .await
            .unwrap();
    }
}

impl PageStore for SlowLoadStore {
    fn load(&self) -> StoreFuture<Vec<PageMeta>> {
        self.inner.load()
    }
    fn load_batches(&self) -> futures::stream::BoxStream<'static, std::io::Result<Vec<PageMeta>>> {
        let inner = self.inner.clone();
        let released = self.released.clone();
        Box::pin(
            futures::stream::once(async move {
                let mut rows = inner.load().await.unwrap();
                rows.sort_by(|a, b| a.key.cmp(&b.key));
                futures::stream::iter(rows.into_iter().enumerate())
            })
            .flatten()
            .then(move |(i, row)| {
                let released = released.clone();
                async move {
                    if i > 0 {
                        released.acquire().await.unwrap().forget();
                    }
                    Ok(vec![row])
                }
            }),
        )
    }
    fn meta(&self, key: &PageKey) -> StoreFuture<Option<PageMeta>> {
        self.inner.meta(key)
    }
    fn body(&self, key: &PageKey) -> StoreFuture<Option<Variants>> {
        self.inner.body(key)
    }
    fn put(&self, key: &PageKey, meta: PageMeta, body: Option<Variants>) -> StoreFuture<()> {
        self.inner.put(key, meta, body)
    }
    fn remove(&self, key: &PageKey) -> StoreFuture<()> {
        self.inner.remove(key)
    }
    fn keys_with_tag(&self, tag: &str) -> StoreFuture<Vec<String>> {
        self.inner.keys_with_tag(tag)
    }
}

async fn serving_while_loading(store: &SlowLoadStore) -> Harness {
    let clock = Arc::new(ManualClock::new(START_MS));
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let options = EngineOptions {
        serve_while_loading: true,
        ..EngineOptions::default()
    };
    let engine = Engine::builder(routes, Arc::new(store.clone()))
        .clock(clock.clone())
        .options(options)
        .documents(Arc::new(DocumentShell::default()))
        .open()
        .await
        .unwrap();
    Harness { engine, clock }
}

#[tokio::test]
async fn pages_not_loaded_yet_are_served_from_the_store_and_never_overwritten_by_the_load() {
    let store = SlowLoadStore::default();
    for case in ["bg-a", "bg-b", "bg-c"] {
        store.stored(case, &format!("{case} built"), &[]).await;
    }
    let h = serving_while_loading(&store).await;
    assert!(!h.engine.is_loaded());
    assert_eq!(
        h.engine.page_count(),
        1,
        "only the first row is read before opening"
    );

    // `/listed/…` answers 404 for pages it does not know: these are found in the store.
    assert_eq!(
        h.get("/listed/bg-c").await,
        (Some(CacheStatus::Hit), "<p>bg-c built</p>".into())
    );
    assert_eq!(h.get("/listed/bg-none").await, (None, "404".into()));

    // A page regenerated while its old row is still to come keeps the new version.
    let b = script("bg-b", Mode::Page("bg-b regenerated"));
    let outcome = h.engine.regenerate("/listed/bg-b", Trigger::OnDemand).await;
    assert!(
        matches!(outcome, Some(Outcome::Generated(_))),
        "{outcome:?}"
    );
    store.released.add_permits(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.engine.is_loaded() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(h.engine.is_loaded(), "the table filled");
    assert_eq!(h.engine.page_count(), 3);
    let (cache, body) = h.get("/listed/bg-b").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("bg-b regenerated"), "{body}");
    assert_eq!(b.calls(), 1);
    assert!(h.get("/listed/bg-a").await.1.contains("bg-a built"));
}

#[tokio::test]
async fn tag_revalidation_while_loading_covers_pages_not_loaded_yet() {
    let store = SlowLoadStore::default();
    let scripts: Vec<_> = ["tl-a", "tl-b", "tl-c"]
        .iter()
        .map(|case| script(case, Mode::Page("after the edit")))
        .collect();
    for case in ["tl-a", "tl-b", "tl-c"] {
        store.stored(case, "before the edit", &["edited"]).await;
    }
    let h = serving_while_loading(&store).await;
    assert!(!h.engine.is_loaded());
    let request = crate::RevalidateRequest {
        paths: vec![],
        tags: vec!["edited".into()],
    };
    let results = crate::revalidate::revalidate(&h.engine, &request).await;
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r.outcome == crate::RevalidationOutcome::Regenerated));
    assert!(scripts.iter().all(|s| s.calls() == 1));
    assert!(!h.engine.is_loaded(), "answered before the table filled");
    for case in ["tl-a", "tl-b", "tl-c"] {
        assert!(h
            .get(&format!("/listed/{case}"))
            .await
            .1
            .contains("after the edit"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_work_finishes_when_the_caller_goes_away() {
    let h = harness().await;
    let s = script("abandoned", Mode::Page("v1"));
    h.get("/t/abandoned").await;
    s.set(Mode::Page("v2"));
    s.delay(Duration::from_millis(300));
    let engine = h.engine.clone();
    // The webhook's handler future, dropped as hyper drops it when the CMS disconnects.
    let caller = tokio::spawn(async move {
        let request = crate::RevalidateRequest {
            paths: vec!["/t/abandoned".into()],
            tags: vec![],
        };
        crate::revalidate::start(&engine, &request, usize::MAX).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.engine.running_generations() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        h.engine.running_generations(),
        1,
        "the regeneration started"
    );
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    let (cache, body) = h.eventually_contains("/t/abandoned", "v2").await;
    assert!(body.contains("v2"), "the regeneration went on: {body}");
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert_eq!(s.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "redis")]
async fn unknown_paths_ask_redis_once_and_a_page_committed_elsewhere_is_found() {
    let redis = isr_tests::redis::Redis::start();
    let hmget_calls = || {
        let stats = redis.command("INFO commandstats").unwrap();
        stats
            .split("cmdstat_hmget:calls=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let tier = |prefix: &str| {
        crate::shared::RedisTier::connect(crate::shared::SharedOptions::new(&redis.url(), prefix))
            .unwrap()
    };
    let h = shared_harness(tier("neg")).await;
    let before = hmget_calls();
    for _ in 0..20 {
        assert!(matches!(
            h.engine.request("/listed/nobody").await,
            Served::NotFound | Served::Stored { .. }
        ));
    }
    assert_eq!(
        hmget_calls() - before,
        1,
        "one Redis lookup for 20 requests of an unknown path"
    );
    assert!(h.engine.remembered_non_pages() >= 1);

    // Another instance commits a page of the same route: this one serves it on first request.
    let other = shared_harness(tier("neg")).await;
    let s = script("elsewhere", Mode::Page("made by the other instance"));
    let made = other
        .engine
        .regenerate("/listed/elsewhere", Trigger::OnDemand)
        .await;
    assert!(matches!(made, Some(Outcome::Generated(_))));
    assert_eq!(s.calls(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = h.get("/listed/elsewhere").await;
        if body.contains("made by the other instance") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never pulled: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.calls(), 1, "pulled, not regenerated");

    // A path remembered as unknown here, then created on the other instance: its event makes
    // this instance pull it (the remembered not-found does not hide it for its minute).
    assert!(matches!(
        h.engine.request("/listed/later").await,
        Served::NotFound | Served::Stored { .. }
    ));
    let later = script("later", Mode::Page("created later"));
    assert!(matches!(
        other
            .engine
            .regenerate("/listed/later", Trigger::OnDemand)
            .await,
        Some(Outcome::Generated(_))
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = h.get("/listed/later").await;
        if body.contains("created later") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new page stayed hidden: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(later.calls(), 1);
}

/// The CMS retry storm: 56 calls of `{"tags": [...]}` at once used to queue one loader run per
/// call per page (56 × the tag's pages). Merged, every page runs at most twice for them: once
/// for the calls that found it queued, once more for those that arrived while it ran.
#[tokio::test]
async fn concurrent_tag_revalidations_are_merged_per_page() {
    let h = harness().await;
    let pages: Vec<Arc<Script>> = (0..20)
        .map(|i| script(&format!("storm{i}"), Mode::Page("v1")))
        .collect();
    for i in 0..20 {
        h.get(&format!("/t/storm{i}")).await;
    }
    h.wait_idle().await;
    for page in &pages {
        page.delay(Duration::from_millis(20));
    }
    let request = crate::RevalidateRequest {
        paths: vec![],
        tags: vec!["t".into()],
    };
    let calls: Vec<_> = (0..56)
        .map(|_| {
            let engine = h.engine.clone();
            let request = request.clone();
            tokio::spawn(async move { crate::revalidate::revalidate(&engine, &request).await })
        })
        .collect();
    for call in calls {
        let results = call.await.unwrap();
        assert_eq!(results.len(), 20, "every call reports every page");
        assert!(results
            .iter()
            .all(|r| r.outcome == crate::RevalidationOutcome::Regenerated));
    }
    let runs: usize = pages.iter().map(|p| p.calls() - 1).sum();
    assert!(
        (20..=40).contains(&runs),
        "56 calls over 20 pages ran {runs} loaders (unmerged: 1,120)"
    );
    assert_eq!(h.engine.on_demand.len(), 0);
}

/// During an outage, random URLs (their loaders fail) fill the not-found memory; the failing
/// view lists only the paths the site named itself, and counts the rest.
#[tokio::test]
async fn anonymous_failing_paths_are_one_number_not_rows() {
    let h = harness().await;
    let _outage: Vec<Arc<Script>> = (0..300)
        .map(|i| script(&format!("made-up-{i}"), Mode::Fail))
        .collect();
    for i in 0..300 {
        assert_eq!(h.get(&format!("/t/made-up-{i}")).await.1, "503");
    }
    let named = script("named-but-failing", Mode::Fail);
    let outcome = h
        .engine
        .regenerate("/t/named-but-failing", Trigger::OnDemand)
        .await;
    assert!(matches!(outcome, Some(Outcome::Failed { .. })));
    assert_eq!(named.calls(), 1);
    h.wait_idle().await;

    let summary = h.engine.summary();
    assert_eq!(
        summary.unknown_failing, 300,
        "requested paths are one number"
    );
    assert_eq!(summary.failing_total, 1);
    let listed: Vec<&str> = summary.failing.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(listed, ["/t/named-but-failing"]);
    let missing_state: usize = summary
        .routes
        .iter()
        .map(|r| r.states.get("missing").copied().unwrap_or(0))
        .sum();
    assert_eq!(missing_state, 1);
    let list = h.engine.list_pages(&PageQuery {
        state: Some(PageState::Missing),
        limit: 500,
        ..PageQuery::default()
    });
    assert_eq!(list.matched, 1, "{:?}", list.pages);
    // A path first requested, then revalidated by the site, becomes known.
    h.engine.regenerate("/t/made-up-7", Trigger::OnDemand).await;
    let summary = h.engine.summary();
    assert_eq!((summary.failing_total, summary.unknown_failing), (2, 299));
}

/// `revalidate_path` took the first result with `.remove(0)`: when the work was lost (here its
/// runtime is gone, as at shutdown) there was none, and it panicked.
#[test]
fn revalidating_a_path_whose_work_is_lost_answers_an_error_instead_of_panicking() {
    let opened_on = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = opened_on.block_on(harness());
    drop(opened_on); // the engine's background runtime shuts down
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = caller.block_on(crate::revalidate::revalidate_one(&h.engine, "/t/lost"));
    assert_eq!(result.path, "/t/lost");
    assert_eq!(result.outcome, crate::RevalidationOutcome::Error);
    assert!(result.error.unwrap().contains("cancelled"));
}

/// The real file store held up mid-write (another connection holds the SQLite index's write
/// lock, so the page's files are written and its row waits): the generation times out (1 s)
/// while the write goes on. When the lock is released the write lands, and it is accounted:
/// the page table and the hot cache serve the new version, as the disk holds it. (Before,
/// files and row landed after `Failed { Timeout }` while memory kept the old version until a
/// restart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_to_the_real_store_lands_and_is_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let h = harness_with(
        Arc::new(FsStore::new(&site)),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await;
    let s = script("heldwrite", Mode::Page("v1"));
    assert!(h.get("/t/heldwrite").await.1.contains("v1"));
    s.set(Mode::Page("v2"));

    let index = crate::store::meta_dir_of(&site).join("index.sqlite");
    let lock = rusqlite::Connection::open(&index).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let outcome = h
        .engine
        .regenerate("/t/heldwrite", Trigger::OnDemand)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Failed {
                kind: FailureKind::Timeout,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(
        h.get("/t/heldwrite").await.1.contains("v1"),
        "not landed yet"
    );
    lock.execute_batch("COMMIT;").unwrap();

    let (_, body) = h.eventually_contains("/t/heldwrite", "v2").await;
    assert!(
        body.contains("v2"),
        "memory follows the write that landed: {body}"
    );
    let stored = FsStore::new(&site)
        .load()
        .await
        .unwrap()
        .into_iter()
        .find(|meta| meta.key == "/t/heldwrite")
        .unwrap();
    let served = h.engine.table.snapshot("/t/heldwrite").unwrap();
    assert_eq!(
        stored.generated_at_ms, served.generated_at_ms,
        "disk and memory hold the same version"
    );
    assert_eq!(s.calls(), 2);
}

fn slow_listed_load(
    cx: crate::context::LoadContext,
) -> BoxFuture<'static, crate::Result<Generated>> {
    let n = cx.params().get("n").map(str::to_owned);
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Generated::Page(RenderedBody {
            body: format!("<p>{}</p>", n?),
            ..Default::default()
        }))
    })
}

fn two_hundred_pages(
    _: crate::context::LoadContext,
) -> BoxFuture<'static, crate::Result<Vec<Params>>> {
    Box::pin(async {
        Ok((0..200)
            .map(|n| Params::new().with("n", n.to_string()))
            .collect())
    })
}

/// A background rebuild aborted at shutdown used to drop the rows it had buffered (its writes
/// defer durability to a final sync that never ran): files on disk, no rows for them. Now the
/// interrupted build still ends the deferral and syncs, and shutdown waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_build_still_writes_and_syncs_what_it_built() {
    static LISTED: PageDef = PageDef {
        id: "tests::listed_slow",
        path: "/slow-listed/:n",
        revalidate: Revalidate::After(3600),
        timeout_secs: Some(5),
        fallback: Fallback::NotFound,
        tags: &[],
        load: slow_listed_load,
        paths: Some(two_hundred_pages),
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydrate_export: "isr_hydrate_test",
    };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let engine = Engine::builder(
        Routes::new(vec![&LISTED]).unwrap(),
        Arc::new(FsStore::new(&site)),
    )
    .clock(Arc::new(ManualClock::new(START_MS)))
    .documents(Arc::new(DocumentShell::default()))
    .open()
    .await
    .unwrap();
    let options = crate::build::BuildOptions {
        jobs: 2,
        keep_going: false,
        progress: false,
    };
    let build = tokio::spawn({
        let engine = engine.clone();
        async move { crate::build::build(&engine, options).await.map(|_| ()) }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.page_count() < 10 {
        assert!(Instant::now() < deadline, "the build made no pages");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    build.abort();
    assert!(build.await.unwrap_err().is_cancelled());
    assert!(engine.shutdown(Duration::from_secs(10)).await);

    let built = engine.page_count();
    assert!(built < 200, "aborted half-way: {built}");
    let index =
        rusqlite::Connection::open(crate::store::meta_dir_of(&site).join("index.sqlite")).unwrap();
    let rows: i64 = index
        .query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        rows as usize, built,
        "every page the build made has its row"
    );
}

/// Two apps in one process: each one's `Revalidator` regenerates its own pages (the global
/// `revalidate_path` reaches only the first app started).
#[tokio::test]
async fn each_app_revalidates_its_own_pages_through_its_handle() {
    let (first, second) = (harness().await, harness().await);
    let s = script("two-apps", Mode::Page("v1"));
    first.get("/t/two-apps").await;
    second.get("/t/two-apps").await;
    assert_eq!(s.calls(), 2);
    s.set(Mode::Page("v2"));
    let result = crate::Revalidator::of(&second.engine)
        .path("/t/two-apps")
        .await
        .unwrap();
    assert_eq!(result.outcome, crate::RevalidationOutcome::Regenerated);
    assert!(second.get("/t/two-apps").await.1.contains("v2"));
    assert!(
        first.get("/t/two-apps").await.1.contains("v1"),
        "not the other app's"
    );
    let tagged = crate::Revalidator::of(&first.engine)
        .tag("case:two-apps")
        .await
        .unwrap();
    assert_eq!(tagged.len(), 1);
    assert!(first.get("/t/two-apps").await.1.contains("v2"));
    let gone = {
        let third = harness().await;
        crate::Revalidator::of(&third.engine)
    };
    assert_eq!(
        gone.path("/t/two-apps").await.unwrap_err(),
        crate::NotRunning
    );
}
