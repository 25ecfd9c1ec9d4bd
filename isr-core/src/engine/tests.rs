//! State-machine tests of the engine with scripted loaders, a manual clock and in-memory or
//! test stores (the tests over the real file store and Redis are `isr`'s `engine_tests`).

use super::*;
use crate::clock::ManualClock;
use crate::encoding::Variants;
use crate::page::{CacheProfile, Generated, PageDef, Revalidate};
use crate::route::PageKey;
use crate::store::{MarkMode, MemoryStore, PageMeta, StoreFuture};
use crate::testing::*;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

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

// Time is paused: a sleep returns only once every task the engine spawned is idle (tokio
// advances a paused clock only then; `spawn_blocking` work holds it), and every timer due
// within it has fired. So after the hour below, background work on this page would have run.
#[tokio::test(start_paused = true)]
async fn no_traffic_no_work() {
    let h = harness().await;
    let s = script("idle", Mode::Page("v1"));
    h.get("/t/idle").await;
    h.clock.advance_ms(1_000_000);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.calls(), 1);
    assert_eq!(h.engine.running_generations(), 0);
    // Nothing regenerated it behind the scenes: the next request still finds the old page.
    let (cache, body) = h.get("/t/idle").await;
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert!(body.contains("v1"), "{body}");
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

// Time is paused (see `no_traffic_no_work`): the 1 s timeout is measured on tokio's clock,
// which a slow machine does not stretch.
#[tokio::test(start_paused = true)]
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
    let (outcome, elapsed) = h.timed_regeneration("/t/boom").await;
    assert_timed_out(&outcome);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "timeout is 1 s (the loader hangs for an hour): {elapsed:?}"
    );
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
async fn routing_outcomes() {
    let h = harness().await;
    assert_eq!(h.get("/t/x/").await.1, "308 /t/x");
    assert_eq!(h.get("/t/%2e%2e").await.1, "404");
    assert_eq!(h.get("/nothing").await.1, "404");
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
        .documents(Arc::new(TestDocuments))
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
        cache: CacheProfile::of(Revalidate::After(10)),
        timeout_secs: Some(5),
        fallback: Fallback::Blocking,
        tags: &[],
        load: counting_load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydration: crate::model::Hydration::Full {
            export: "isr_hydrate_test",
        },
        query: crate::page::QuerySpec::NONE,
    };
    let routes = Routes::new(vec![&FLOOD]).unwrap();
    let options = EngineOptions {
        max_regenerations: 8,
        ..EngineOptions::default()
    };
    let engine = Engine::builder(routes, Arc::new(MemoryStore::default()))
        .clock(Arc::new(ManualClock::new(START_MS)))
        .options(options)
        .documents(Arc::new(TestDocuments))
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

// Time is paused (see `no_traffic_no_work`): the timeout and the 30 s write are measured on
// tokio's clock, which a slow machine does not stretch.
#[tokio::test(start_paused = true)]
async fn the_timeout_covers_the_store_write() {
    let (h, store) = faulty_harness().await;
    let s = script("slowdisk", Mode::Page("v1"));
    h.get("/t/slowdisk").await;
    s.set(Mode::Page("v2"));
    *store.slow_writes.lock().unwrap() = Duration::from_secs(30);
    let (outcome, elapsed) = h.timed_regeneration("/t/slowdisk").await;
    assert_timed_out(&outcome);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "the page's timeout is 1 s, the write takes 30 s: {elapsed:?}"
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
        .documents(Arc::new(TestDocuments))
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
        mode: crate::revalidate::InvalidationMode::Regenerate,
        purge: Default::default(),
        wait: Default::default(),
        wait_seconds: None,
    };
    let results = crate::revalidate::revalidate(&h.engine, &request).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].path, "/t/sale%20now");
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::Regenerated);
    assert!(h.get("/t/sale%2520now").await.1.contains("v2"));
    assert_eq!(s.calls(), 2);
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
        mode: crate::revalidate::InvalidationMode::Regenerate,
        purge: Default::default(),
        wait: Default::default(),
        wait_seconds: None,
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
            mode: crate::revalidate::InvalidationMode::Regenerate,
            purge: Default::default(),
            wait: Default::default(),
            wait_seconds: None,
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
        mode: crate::revalidate::InvalidationMode::Regenerate,
        purge: Default::default(),
        wait: Default::default(),
        wait_seconds: None,
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
    fn set_marks(&self, marks: Vec<(PageKey, Option<crate::store::Mark>)>) -> StoreFuture<()> {
        self.inner.set_marks(marks)
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
            generation: 0,
            kind: PageKind::Page {
                etag: Etag::of(&body),
                bytes: body.len() as u64,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
            valid_until_ms: None,
            mark: None,
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
    fn set_marks(&self, marks: Vec<(PageKey, Option<crate::store::Mark>)>) -> StoreFuture<()> {
        self.inner.set_marks(marks)
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
        .documents(Arc::new(TestDocuments))
        .open()
        .await
        .unwrap();
    Harness { engine, clock }
}

/// [`EXPIRING`] with `revalidate = false`: never stale by time, expired after 30 s.
static EXPIRING_ON_DEMAND: PageDef = PageDef {
    id: "tests::expiring_on_demand",
    path: "/on-demand/:case",
    cache: CacheProfile::on_demand().expire(30).stale_if_error(60),
    ..EXPIRING
};

/// A harness over the [`EXPIRING`], [`EXPIRING_STRICT`] and [`EXPIRING_ON_DEMAND`] routes.
async fn expiring_harness() -> Harness {
    harness_of(
        Engine::builder(
            Routes::new(vec![&EXPIRING, &EXPIRING_STRICT, &EXPIRING_ON_DEMAND]).unwrap(),
            Arc::new(MemoryStore::default()),
        ),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await
}

#[tokio::test]
async fn between_revalidate_and_expire_the_old_page_comes_at_once() {
    let h = expiring_harness().await;
    let s = script("window", Mode::Page("v1"));
    assert_eq!(h.get("/e/window").await.0, Some(CacheStatus::Miss));
    s.set(Mode::Page("v2"));
    h.clock.advance_ms(29_999);
    let (cache, body) = h.get("/e/window").await;
    assert_eq!(cache, Some(CacheStatus::Stale));
    assert!(body.contains("v1"), "{body}");
    let (cache, body) = h.eventually_contains("/e/window", "v2").await;
    assert_eq!(cache, Some(CacheStatus::Hit), "{body}");
}

#[tokio::test]
async fn past_expire_a_request_waits_for_the_new_page() {
    let h = expiring_harness().await;
    let s = script("ceiling", Mode::Page("v1"));
    h.get("/e/ceiling").await;
    s.set(Mode::Page("v2"));
    h.clock.advance_ms(30_000); // age == expire: expired
    let (cache, body) = h.get("/e/ceiling").await;
    assert_eq!(cache, Some(CacheStatus::Expired));
    assert!(body.contains("v2"), "never the expired page: {body}");
    assert_eq!(s.calls(), 2);
    assert_eq!(h.get("/e/ceiling").await.0, Some(CacheStatus::Hit));
}

#[tokio::test]
async fn from_its_valid_until_a_page_is_expired_and_the_next_request_waits() {
    let h = expiring_harness().await;
    // Valid for 5 s, well within its window (10 s) and expire (30 s).
    let s = script("sale", Mode::PageUntil("sale", START_MS + 5_000));
    assert_eq!(h.get("/e/sale").await.0, Some(CacheStatus::Miss));
    s.set(Mode::Page("full price"));
    h.clock.advance_ms(4_999);
    let (cache, body) = h.get("/e/sale").await;
    assert_eq!(cache, Some(CacheStatus::Hit));
    assert!(body.contains("sale"), "{body}");
    h.clock.advance_ms(1);
    let (cache, body) = h.get("/e/sale").await;
    assert_eq!(
        cache,
        Some(CacheStatus::Expired),
        "never the old page past valid_until"
    );
    assert!(body.contains("full price"), "{body}");
    assert_eq!(h.get("/e/sale").await.0, Some(CacheStatus::Hit));
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn past_valid_until_a_failing_loader_gets_no_stale_if_error() {
    let h = expiring_harness().await;
    // The route allows 60 s of stale-if-error past its expire; valid_until allows none.
    let s = script("ended", Mode::PageUntil("sale", START_MS + 5_000));
    h.get("/e/ended").await;
    s.set(Mode::Fail);
    h.clock.advance_ms(5_000);
    assert_eq!(h.get("/e/ended").await, (None, "503".to_string()));
}

#[tokio::test]
async fn a_not_yet_page_is_404_until_its_time_then_generated() {
    let h = expiring_harness().await;
    let s = script("embargo", Mode::NotYet(START_MS + 3_000));
    assert_eq!(h.get("/e/embargo").await.1, "404");
    s.set(Mode::Page("published"));
    h.clock.advance_ms(2_999);
    assert_eq!(h.get("/e/embargo").await.1, "404", "still remembered");
    assert_eq!(s.calls(), 1);
    h.clock.advance_ms(1);
    let (_, body) = h.get("/e/embargo").await;
    assert!(body.contains("published"), "{body}");
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn a_valid_until_in_the_past_lasts_a_second_never_a_loop() {
    let h = expiring_harness().await;
    let s = script("past", Mode::PageUntil("old news", START_MS - 60_000));
    assert_eq!(h.get("/e/past").await.0, Some(CacheStatus::Miss));
    for _ in 0..5 {
        assert_eq!(h.get("/e/past").await.0, Some(CacheStatus::Hit));
    }
    assert_eq!(s.calls(), 1, "one generation for the burst");
    h.clock.advance_ms(MIN_VALIDITY.as_millis() as u64);
    assert_eq!(h.get("/e/past").await.0, Some(CacheStatus::Expired));
    assert_eq!(s.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_an_expired_page_share_one_regeneration() {
    let h = Arc::new(expiring_harness().await);
    let s = script("crowd", Mode::Page("v1"));
    h.get("/e/crowd").await;
    s.set(Mode::Page("v2"));
    s.delay(Duration::from_millis(200));
    h.clock.advance_ms(31_000);
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.get("/e/crowd").await })
        })
        .collect();
    for request in requests {
        let (cache, body) = request.await.unwrap();
        assert!(body.contains("v2"), "{body}");
        assert!(
            matches!(cache, Some(CacheStatus::Expired | CacheStatus::Hit)),
            "{cache:?}"
        );
    }
    assert_eq!(s.calls(), 2, "one loader run for every waiting request");
}

#[tokio::test]
async fn an_expired_page_that_fails_is_served_within_stale_if_error_then_503() {
    let h = expiring_harness().await;
    let s = script("grace", Mode::Page("v1"));
    h.get("/e/grace").await;
    s.set(Mode::Fail);
    h.clock.advance_ms(30_000);
    let (cache, body) = h.get("/e/grace").await;
    assert_eq!(cache, Some(CacheStatus::StaleIfError));
    assert!(body.contains("v1"), "{body}");
    assert_eq!(s.calls(), 2);
    // Inside the backoff: the old page again, no new loader run.
    let (cache, _) = h.get("/e/grace").await;
    assert_eq!(cache, Some(CacheStatus::StaleIfError));
    assert_eq!(s.calls(), 2, "backing off");
    // Past expire + stale_if_error (30 + 60 s): never the old page.
    h.clock.advance_ms(60_000);
    assert_eq!(h.get("/e/grace").await, (None, "503".into()));
    assert_eq!(s.calls(), 3, "the request tried again first");
    // The data source is back: the next request past the backoff gets the new page.
    s.set(Mode::Page("v2"));
    h.clock.advance_ms(10_000);
    let (cache, body) = h.get("/e/grace").await;
    assert_eq!(cache, Some(CacheStatus::Expired));
    assert!(body.contains("v2"), "{body}");
}

#[tokio::test]
async fn without_stale_if_error_an_expired_page_that_fails_is_503() {
    let h = expiring_harness().await;
    let s = script("strict", Mode::Page("v1"));
    h.get("/strict/strict").await;
    s.set(Mode::Fail);
    h.clock.advance_ms(30_000);
    assert_eq!(h.get("/strict/strict").await, (None, "503".into()));
    match h.engine.request("/strict/strict").await {
        // The first backoff is under a second: rounded up to the one-second floor.
        Served::Unavailable { retry_after } => assert_eq!(retry_after, Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.calls(), 2, "the second request is inside the backoff");
}

#[tokio::test]
async fn a_page_that_is_never_stale_by_time_still_expires() {
    let h = expiring_harness().await;
    let s = script("on-demand", Mode::Page("v1"));
    h.get("/on-demand/on-demand").await;
    s.set(Mode::Page("v2"));
    h.clock.advance_ms(29_999);
    assert_eq!(
        h.get("/on-demand/on-demand").await.0,
        Some(CacheStatus::Hit)
    );
    assert_eq!(s.calls(), 1);
    h.clock.advance_ms(1);
    let (cache, body) = h.get("/on-demand/on-demand").await;
    assert_eq!(cache, Some(CacheStatus::Expired));
    assert!(
        body.contains("v2"),
        "the loader ran, not the resident old page: {body}"
    );
    assert_eq!(s.calls(), 2);
}

/// An invalidation of `mode` naming `paths` and `tags`, answered.
async fn invalidate(
    h: &Harness,
    mode: crate::revalidate::InvalidationMode,
    paths: &[&str],
    tags: &[&str],
) -> Vec<crate::RevalidationResult> {
    let request = crate::RevalidateRequest {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        mode,
        purge: Default::default(),
        wait: Default::default(),
        wait_seconds: None,
    };
    crate::revalidate::revalidate(&h.engine, &request).await
}

/// The `why` of the answer to `path`.
async fn why_of(h: &Harness, path: &str) -> (CacheStatus, Why) {
    match h.engine.request(path).await {
        Served::Stored { cache, why, .. } => (cache, why),
        other => panic!("{path}: {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_mark_runs_no_loader_until_a_request_which_gets_the_old_page() {
    use crate::revalidate::InvalidationMode;
    let h = harness().await;
    let s = script("mark-stale", Mode::Page("v1"));
    h.get("/t/mark-stale").await;
    s.set(Mode::Page("v2"));
    let results = invalidate(&h, InvalidationMode::Stale, &[], &["case:mark-stale"]).await;
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::MarkedStale);
    assert_eq!(s.calls(), 1, "no loader runs for a stale mark");
    // Within its window by time, but marked: the old page at once, the regeneration started.
    let (cache, why) = why_of(&h, "/t/mark-stale").await;
    assert_eq!(cache, CacheStatus::Stale);
    let Why::Invalidated(mark) = why else {
        panic!("{why:?}")
    };
    assert_eq!(
        (mark.mode, mark.cause.as_str()),
        (MarkMode::Stale, "tag case:mark-stale")
    );
    let (cache, body) = h.eventually_contains("/t/mark-stale", "v2").await;
    assert_eq!(cache, Some(CacheStatus::Hit), "{body}");
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn an_expire_mark_makes_the_next_request_wait_for_the_new_version() {
    use crate::revalidate::InvalidationMode;
    let h = harness().await;
    let s = script("mark-expire", Mode::Page("draft"));
    h.get("/t/mark-expire").await;
    s.set(Mode::Page("saved"));
    let results = invalidate(&h, InvalidationMode::Expire, &["/t/mark-expire"], &[]).await;
    assert_eq!(
        results[0].outcome,
        crate::RevalidationOutcome::MarkedExpired
    );
    assert_eq!(s.calls(), 1);
    let (cache, why) = why_of(&h, "/t/mark-expire").await;
    assert_eq!(cache, CacheStatus::Expired);
    assert!(
        matches!(why, Why::Invalidated(ref m) if m.mode == MarkMode::Expire),
        "{why:?}"
    );
    let (_, body) = h.get("/t/mark-expire").await;
    assert!(body.contains("saved"), "read-your-own-writes: {body}");
    assert_eq!(h.get("/t/mark-expire").await.0, Some(CacheStatus::Hit));
    // When the regeneration fails, the old page is kept (it is within its own policy).
    invalidate(&h, InvalidationMode::Expire, &["/t/mark-expire"], &[]).await;
    s.set(Mode::Fail);
    let (cache, body) = h.get("/t/mark-expire").await;
    assert_eq!(cache, Some(CacheStatus::StaleIfError));
    assert!(body.contains("saved"), "{body}");
}

#[tokio::test]
async fn auto_regenerates_what_was_requested_lately_and_marks_the_rest_stale() {
    use crate::revalidate::InvalidationMode;
    let h = harness().await;
    let hot = script("auto-hot", Mode::Page("hot v1"));
    let cold = script("auto-cold", Mode::Page("cold v1"));
    h.get("/t/auto-hot").await;
    h.get("/t/auto-cold").await;
    // Eleven minutes on, only the hot page is requested again (stale: the version that
    // replaces it keeps the page's last request time).
    h.clock.advance_ms(11 * 60 * 1000);
    h.get("/t/auto-hot").await;
    h.wait_idle().await;
    h.clock.advance_ms(1_000);
    hot.set(Mode::Page("hot v2"));
    cold.set(Mode::Page("cold v2"));
    let results = invalidate(&h, InvalidationMode::Auto, &[], &["t"]).await;
    let outcome = |path: &str| results.iter().find(|r| r.path == path).unwrap().outcome;
    assert_eq!(
        outcome("/t/auto-hot"),
        crate::RevalidationOutcome::Regenerated
    );
    assert_eq!(
        outcome("/t/auto-cold"),
        crate::RevalidationOutcome::MarkedStale
    );
    assert_eq!((hot.calls(), cold.calls()), (3, 1));
    // Regenerated just now by the invalidation, and requested before: still recent.
    let results = invalidate(&h, InvalidationMode::Auto, &["/t/auto-hot"], &[]).await;
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::Regenerated);
    assert_eq!(hot.calls(), 4);
    let counts = crate::revalidate::counts(&results);
    assert_eq!(counts[&crate::RevalidationOutcome::Regenerated], 1);
    // A path never stored is generated at once (a new page named by the CMS).
    let fresh = script("auto-new", Mode::Page("new"));
    let results = invalidate(&h, InvalidationMode::Auto, &["/t/auto-new"], &[]).await;
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::Regenerated);
    assert_eq!(fresh.calls(), 1);
}

#[tokio::test]
async fn a_mark_survives_a_restart_and_a_generation_that_started_before_it() {
    use crate::revalidate::InvalidationMode;
    let store = Arc::new(MemoryStore::default());
    let clock = Arc::new(ManualClock::new(START_MS));
    let h = harness_with(store.clone(), clock.clone()).await;
    let s = script("mark-race", Mode::Page("v1"));
    h.get("/t/mark-race").await;
    // A regeneration whose loader read the data before the invalidation: it keeps the mark.
    s.set(Mode::Page("v2"));
    s.delay(Duration::from_millis(200));
    let running = {
        let engine = h.engine.clone();
        tokio::spawn(
            async move { crate::revalidate::revalidate_one(&engine, "/t/mark-race").await },
        )
    };
    while s.calls() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    clock.advance_ms(1);
    invalidate(&h, InvalidationMode::Stale, &["/t/mark-race"], &[]).await;
    assert_eq!(
        running.await.unwrap().outcome,
        crate::RevalidationOutcome::Regenerated
    );
    // Read without a request (which would start the regeneration the mark asks for).
    let key = h.engine.routes().page_of_key("/t/mark-race").unwrap().1;
    let status = h.engine.page_status(&key).unwrap();
    assert_eq!(status.state, PageState::Stale);
    assert_eq!(status.mark.map(|m| m.mode), Some(MarkMode::Stale));
    // Another engine over the same store (a restart) finds the version still marked.
    h.engine.shutdown(Duration::from_secs(5)).await;
    s.delay(Duration::ZERO);
    s.set(Mode::Page("v3"));
    let restarted = harness_with(store, clock).await;
    let (cache, why) = why_of(&restarted, "/t/mark-race").await;
    assert_eq!(cache, CacheStatus::Stale);
    assert!(matches!(why, Why::Invalidated(_)), "{why:?}");
    let (cache, body) = restarted.eventually_contains("/t/mark-race", "v3").await;
    assert_eq!(cache, Some(CacheStatus::Hit), "{body}");
}

#[tokio::test]
async fn a_mark_ends_the_backoff_of_a_failing_page() {
    use crate::revalidate::InvalidationMode;
    let h = harness().await;
    let s = script("mark-backoff", Mode::Page("v1"));
    h.get("/t/mark-backoff").await;
    // Its last regeneration failed: backing off (no new attempt for a while).
    s.set(Mode::Fail);
    h.clock.advance_ms(10_000);
    h.get("/t/mark-backoff").await;
    h.wait_idle().await;
    assert_eq!(s.calls(), 2);
    // The data is fixed and the CMS says so: the next request waits for the new version, the
    // backoff notwithstanding (read-your-own-writes).
    s.set(Mode::Page("v2"));
    invalidate(&h, InvalidationMode::Expire, &["/t/mark-backoff"], &[]).await;
    let (cache, body) = h.get("/t/mark-backoff").await;
    assert_eq!(cache, Some(CacheStatus::Expired));
    assert!(body.contains("v2"), "{body}");
}

/// `/v/:case` with `query = ["page", "tag"]` (at most 3 variants a page): its loader writes the
/// query it got, and `page=999` is past the last page (not found).
fn variant_load(cx: crate::context::LoadContext) -> BoxFuture<'static, crate::Result<Generated>> {
    let case = cx.params().get("case").unwrap_or_default().to_owned();
    let query = crate::model::query::encode(cx.query());
    let calls = {
        let mut counts = VARIANT_CALLS.lock().unwrap();
        let count = counts
            .get_or_insert_with(HashMap::new)
            .entry(case.clone())
            .or_insert(0);
        *count += 1;
        *count
    };
    let gone = VARIANTS_GONE
        .lock()
        .unwrap()
        .contains(&format!("{case}?{query}"));
    Box::pin(async move {
        if query.contains("page=999") || gone {
            return Ok(Generated::NotFound);
        }
        Ok(Generated::Page(crate::RenderedBody {
            body: format!("<p>{case} [{query}] run {calls}</p>"),
            ..Default::default()
        }))
    })
}

/// `case?query` of the variants whose loader says not found from now on.
static VARIANTS_GONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Loader runs of each `/v/:case` (tests run at once: each uses cases of its own).
static VARIANT_CALLS: std::sync::Mutex<Option<HashMap<String, usize>>> =
    std::sync::Mutex::new(None);

fn variant_calls(case: &str) -> usize {
    VARIANT_CALLS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|counts| counts.get(case).copied())
        .unwrap_or(0)
}

static VARIANTS: PageDef = PageDef {
    id: "tests::variants",
    path: "/v/:case",
    tags: &["v"],
    load: variant_load,
    query: crate::page::QuerySpec {
        names: &["page", "tag"],
        max_variants: 3,
        in_sitemap: false,
        canonical: crate::page::keep_query,
    },
    ..BLOCKING
};

async fn variants_harness() -> Harness {
    harness_of(
        Engine::builder(
            Routes::new(vec![&VARIANTS]).unwrap(),
            Arc::new(MemoryStore::default()),
        ),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await
}

/// `path?query` as the engine answers it: its cache status and body (or 404, 308 location).
async fn get_with_query(h: &Harness, path: &str, query: &str) -> (Option<CacheStatus>, String) {
    match h.engine.request_with_query(path, Some(query), None).await {
        Served::Stored { page, cache, .. } => match &page.meta.kind {
            PageKind::Page { .. } => (
                Some(cache),
                String::from_utf8(page.html().unwrap().to_vec()).unwrap(),
            ),
            _ => (Some(cache), "404".into()),
        },
        Served::Canonical(location) => (None, format!("308 {location}")),
        _ => (None, "404".into()),
    }
}

#[tokio::test]
async fn each_variant_is_a_page_of_its_own_and_other_parameters_are_ignored() {
    let h = variants_harness().await;
    let (cache, body) = get_with_query(&h, "/v/a", "page=2&utm_source=x").await;
    assert_eq!(cache, Some(CacheStatus::Miss));
    assert!(body.contains("<p>a [page=2]"), "{body}");
    // Other parameters never make a page nor reach the loader: the same page, a hit.
    let (cache, again) = get_with_query(&h, "/v/a", "fbclid=y&page=2").await;
    assert_eq!((cache, again), (Some(CacheStatus::Hit), body));
    let (cache, plain) = get_with_query(&h, "/v/a", "utm_source=x").await;
    assert_eq!(cache, Some(CacheStatus::Miss));
    assert!(plain.contains("<p>a []"), "{plain}");
    assert_eq!(h.engine.page_count(), 2);
    assert_eq!(h.engine.table.variants_of("/v/a").len(), 1);
    // Spelled otherwise (a repeated or empty parameter): sent to the canonical spelling.
    let (_, moved) = get_with_query(&h, "/v/a", "page=2&page=3&tag=&utm_source=x").await;
    assert_eq!(moved, "308 /v/a?page=2&utm_source=x");
}

#[tokio::test]
async fn variants_are_bounded_and_their_not_found_answers_are_not_stored() {
    let h = variants_harness().await;
    for page in 2..=4 {
        let (cache, _) = get_with_query(&h, "/v/b2", &format!("page={page}")).await;
        assert_eq!(cache, Some(CacheStatus::Miss), "page {page}");
    }
    let runs = variant_calls("b2");
    // `max_variants = 3`: a fourth is a 404, and its loader does not run.
    assert_eq!(
        get_with_query(&h, "/v/b2", "page=5").await,
        (None, "404".into())
    );
    assert_eq!(variant_calls("b2"), runs);
    // Another page's variants have their own budget.
    assert_eq!(
        get_with_query(&h, "/v/c2", "page=5").await.0,
        Some(CacheStatus::Miss)
    );
    // A variant the loader does not find is remembered in memory, never stored.
    let (pages, remembered) = (h.engine.page_count(), h.engine.remembered_non_pages());
    let (_, body) = get_with_query(&h, "/v/c2", "page=999").await;
    assert_eq!(body, "404");
    assert_eq!(h.engine.page_count(), pages);
    assert_eq!(h.engine.remembered_non_pages(), remembered + 1);
    let runs = variant_calls("c2");
    assert_eq!(get_with_query(&h, "/v/c2", "page=999").await.1, "404");
    assert_eq!(variant_calls("c2"), runs, "remembered");
}

#[tokio::test]
async fn a_path_revalidation_reaches_every_variant_and_a_variant_only_itself() {
    let h = variants_harness().await;
    for query in ["", "page=2", "page=3&tag=x"] {
        get_with_query(&h, "/v/a3", query).await;
    }
    get_with_query(&h, "/v/b3", "page=2").await;
    let engine = &h.engine;
    let paths = |request: crate::RevalidateRequest| async move {
        let mut paths: Vec<String> = crate::revalidate::revalidate(engine, &request)
            .await
            .into_iter()
            .map(|r| {
                assert_eq!(r.outcome, crate::RevalidationOutcome::Regenerated, "{r:?}");
                r.path
            })
            .collect();
        paths.sort();
        paths
    };
    let regenerate = crate::revalidate::InvalidationMode::Regenerate;
    let all = paths(crate::RevalidateRequest {
        paths: vec!["/v/a3".into()],
        mode: regenerate,
        ..Default::default()
    })
    .await;
    assert_eq!(all, ["/v/a3", "/v/a3?page=2", "/v/a3?page=3&tag=x"]);
    let one = paths(crate::RevalidateRequest {
        paths: vec!["/v/a3?tag=x&page=3&utm_source=y".into()],
        mode: regenerate,
        ..Default::default()
    })
    .await;
    assert_eq!(one, ["/v/a3?page=3&tag=x"]);
    let tagged = paths(crate::RevalidateRequest {
        tags: vec!["v".into()],
        mode: regenerate,
        ..Default::default()
    })
    .await;
    assert_eq!(
        tagged,
        [
            "/v/a3",
            "/v/a3?page=2",
            "/v/a3?page=3&tag=x",
            "/v/b3?page=2"
        ]
    );
}

#[tokio::test]
async fn a_redirect_to_a_variant_keeps_its_path_encoded() {
    let h = variants_harness().await;
    let (_, moved) = get_with_query(&h, "/v/caf%C3%A9%20x", "page=2&page=3").await;
    assert_eq!(moved, "308 /v/caf%C3%A9%20x?page=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_variants_stay_within_max_variants() {
    let h = variants_harness().await;
    let requests = (2..12).map(|page| {
        let h = &h;
        async move { get_with_query(h, "/v/burst", &format!("page={page}")).await }
    });
    let answers = futures::future::join_all(requests).await;
    let stored = h.engine.table.variant_count("/v/burst");
    assert!(stored <= 3, "{stored} variants stored: {answers:?}");
    let found = answers.iter().filter(|(_, body)| body != "404").count();
    assert_eq!(
        found, stored,
        "every variant answered is stored: {answers:?}"
    );
}

#[tokio::test]
async fn a_variant_that_is_no_longer_found_is_forgotten_and_frees_its_place() {
    let h = variants_harness().await;
    for page in 2..=4 {
        get_with_query(&h, "/v/gone", &format!("page={page}")).await;
    }
    assert_eq!(h.engine.table.variant_count("/v/gone"), 3);
    let pages = h.engine.page_count();
    VARIANTS_GONE.lock().unwrap().push("gone?page=2".into());
    let results = crate::revalidate::revalidate(
        &h.engine,
        &crate::RevalidateRequest {
            paths: vec!["/v/gone?page=2".into()],
            mode: crate::revalidate::InvalidationMode::Regenerate,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(results.len(), 1, "{results:?}");
    // Forgotten (not kept as a stored 404): its place under `max_variants` is free again.
    assert_eq!(h.engine.table.variant_count("/v/gone"), 2);
    assert_eq!(h.engine.page_count(), pages - 1);
    assert_eq!(get_with_query(&h, "/v/gone", "page=2").await.1, "404");
    assert_eq!(
        get_with_query(&h, "/v/gone", "page=5").await.0,
        Some(CacheStatus::Miss),
        "a place is free again"
    );
    // Another spelling of a variant names it in a revalidation too.
    let results = crate::revalidate::revalidate(
        &h.engine,
        &crate::RevalidateRequest {
            paths: vec!["/v/gone?page=5&page=6&utm_source=x".into()],
            mode: crate::revalidate::InvalidationMode::Regenerate,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].path, "/v/gone?page=5");
    assert_eq!(results[0].outcome, crate::RevalidationOutcome::Regenerated);
}
