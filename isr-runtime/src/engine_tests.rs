//! Tests of the engine over the real file store, SQLite index, builds and Redis (the engine's
//! own state-machine tests, over memory and test stores, are in `isr-core`).

use crate::clock::ManualClock;
use crate::encoding::Variants;
use crate::engine::{CacheStatus, Engine, Served, Trigger, NEGATIVE_CAPACITY};
use crate::page::{CacheProfile, Fallback, Generated, PageDef, Params, Revalidate};
use crate::render::DocumentShell;
use crate::route::Routes;
use crate::store::{FsStore, PageKind, PageStore};
use crate::RenderedBody;
use bytes::Bytes;
use futures::future::BoxFuture;
use isr_core::testing::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A harness that joined the shared tier `tier`.
#[cfg(feature = "redis")]
async fn shared_harness(tier: Arc<crate::shared::RedisTier>) -> Harness {
    shared_harness_at(tier, START_MS).await
}

/// A harness that joined the shared tier `tier`, its wall clock starting at `now_ms`.
#[cfg(feature = "redis")]
async fn shared_harness_at(tier: Arc<crate::shared::RedisTier>, now_ms: u64) -> Harness {
    let routes = Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap();
    let builder =
        Engine::builder(routes, Arc::new(crate::store::MemoryStore::default())).shared(tier);
    harness_of(builder, Arc::new(ManualClock::new(now_ms))).await
}

/// Two instances whose clocks differ by 30 s. Which version is newer is Redis's counter, and a
/// pulled page's age is measured by Redis's own clock, so each instance keeps it fresh for
/// exactly its window. (Before, the generation was the committer's wall clock: on the instance
/// 30 s ahead the page pulled from the one behind was 30 s old at once, stale and regenerated;
/// on the instance behind, a page from the one ahead stayed fresh 30 s too long.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "redis")]
async fn instances_whose_clocks_differ_by_30_s_agree_on_age_and_freshness() {
    use crate::shared::{RedisTier, SharedOptions};
    let redis = isr_tests::redis::Redis::start();
    let tier = || RedisTier::connect(SharedOptions::new(&redis.url(), "skew")).unwrap();
    let behind = shared_harness_at(tier(), START_MS).await;
    let ahead = shared_harness_at(tier(), START_MS + 30_000).await;
    let s = script("skew", Mode::Page("v1"));

    // The instance behind generates the page; the one ahead pulls it, 0 s old (not 30 s).
    assert_eq!(behind.get("/t/skew").await.0, Some(CacheStatus::Miss));
    let Served::Stored { age, page, .. } = ahead.engine.request("/t/skew").await else {
        panic!("the page is served")
    };
    assert!(age < Duration::from_secs(5), "age {age:?}");
    assert_eq!(page.meta.generation, 1);
    // Fresh there for its 10 s window: a HIT, and the loader ran once in all.
    assert_eq!(ahead.get("/t/skew").await.0, Some(CacheStatus::Hit));
    assert_eq!(s.calls(), 1);

    // The instance ahead regenerates it; the one behind learns of it (event) and pulls it...
    s.set(Mode::Page("v2"));
    ahead
        .engine
        .regenerate("/t/skew", Trigger::OnDemand)
        .await
        .unwrap();
    let (_, body) = behind.eventually_contains("/t/skew", "v2").await;
    assert!(body.contains("v2"), "{body}");
    assert_eq!(s.calls(), 2);
    // ... as 0 s old on its own clock: 11 s later (window 10 s) it is stale there, not
    // fresh for 30 s more.
    behind.clock.advance_ms(11_000);
    assert_eq!(behind.get("/t/skew").await.0, Some(CacheStatus::Stale));
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
    assert!(html_only.is_partial() && !html_only.html().unwrap().is_empty());
    assert!(html_only.representation(Encoding::Brotli).is_none());
    assert!(Arc::ptr_eq(
        &html_only,
        &page(want(Some(Encoding::Identity)).await)
    ));
    // A brotli request finds no brotli in it: the page is read again, in full this time.
    let full = page(want(Some(Encoding::Brotli)).await);
    assert!(!full.is_partial() && !Arc::ptr_eq(&html_only, &full));
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
            assert!(page.is_partial() && page.representation(Encoding::Brotli).is_some());
            assert!(page.representation(Encoding::Gzip).is_none());
        }
        other => panic!("{other:?}"),
    }
    let h = harness_with(store(), clock.clone()).await;
    match h.engine.request("/t/partial").await {
        Served::Stored { page, .. } => {
            assert!(!page.is_partial() && page.representation(Encoding::Gzip).is_some())
        }
        other => panic!("{other:?}"),
    }
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
        cache: CacheProfile::of(Revalidate::After(60)),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &["posts"],
        load: not_found_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydration: crate::Hydration::Full {
            export: "isr_hydrate_test",
        },
        query: crate::QuerySpec::NONE,
    };
    static REAL: PageDef = PageDef {
        id: "tests::real",
        path: "/real",
        cache: CacheProfile::of(Revalidate::After(60)),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &["posts"],
        load: real_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydration: crate::Hydration::Full {
            export: "isr_hydrate_test",
        },
        query: crate::QuerySpec::NONE,
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
    let files_before = isr_tests::files_under(dir.path());
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
        isr_tests::files_under(dir.path()),
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
    assert!(matches!(made, Some(crate::engine::Outcome::Generated(_))));
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
        Some(crate::engine::Outcome::Generated(_))
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
    assert_timed_out(&outcome);
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
    let Served::Stored { page: served, .. } = h.engine.request("/t/heldwrite").await else {
        panic!("the page is served")
    };
    assert_eq!(
        stored.generated_at_ms, served.meta.generated_at_ms,
        "disk and memory hold the same version"
    );
    assert_eq!(s.calls(), 2);
}

/// A background rebuild aborted at shutdown used to drop the rows it had buffered (its writes
/// defer durability to a final sync that never ran): files on disk, no rows for them. Now the
/// interrupted build still ends the deferral and syncs, and shutdown waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_build_still_writes_and_syncs_what_it_built() {
    static LISTED: PageDef = PageDef {
        id: "tests::listed_slow",
        path: "/slow-listed/:n",
        cache: CacheProfile::of(Revalidate::After(3600)),
        timeout_secs: Some(5),
        fallback: Fallback::NotFound,
        tags: &[],
        load: slow_listed_load,
        paths: Some(two_hundred_pages),
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydration: crate::Hydration::Full {
            export: "isr_hydrate_test",
        },
        query: crate::QuerySpec::NONE,
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
        tag_budget: None,
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
