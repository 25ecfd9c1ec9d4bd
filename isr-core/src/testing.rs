//! Scaffolding for tests of the engine (feature `test-util`, which `isr` enables for its own
//! tests): loaders driven by a per-page script, a manual clock, and a harness that asks for a
//! page and reports its cache status and body. Not a public API.

#![allow(missing_docs)]

use crate::clock::ManualClock;
use crate::engine::{CacheStatus, DocumentWriter, Engine, FailureKind, Outcome, Served};
use crate::page::{CacheProfile, Fallback, Generated, PageDef, Revalidate};
use crate::route::Routes;
use crate::store::{MemoryStore, PageKind, PageStore};
use crate::RenderedBody;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A document around the body, enough for tests to tell a document from a body.
pub struct TestDocuments;

impl DocumentWriter for TestDocuments {
    fn write(
        &self,
        body: &RenderedBody,
        url_path: &str,
        _hydration: crate::model::Hydration,
    ) -> String {
        format!(
            "<!DOCTYPE html><html><head><title>{url_path}</title></head><body>{}</body></html>",
            body.body
        )
    }
}

/// What a scripted loader does on its next call.
#[derive(Clone)]
pub enum Mode {
    Page(&'static str),
    /// A page valid until this wall-clock time (ms since the Unix epoch).
    PageUntil(&'static str, u64),
    /// A 404 until this wall-clock time (ms since the Unix epoch).
    NotYet(u64),
    Fail,
    Panic,
    NotFound,
    Hang,
}

pub struct Script {
    calls: AtomicUsize,
    mode: Mutex<Mode>,
    delay: Mutex<Duration>,
}

pub fn scripts() -> &'static Mutex<HashMap<String, Arc<Script>>> {
    static SCRIPTS: OnceLock<Mutex<HashMap<String, Arc<Script>>>> = OnceLock::new();
    SCRIPTS.get_or_init(Default::default)
}

/// A loader script for the page `/t/<case>` (each test uses its own case name).
pub fn script(case: &str, mode: Mode) -> Arc<Script> {
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
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    pub fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

pub fn scripted_load(
    cx: crate::context::LoadContext,
) -> BoxFuture<'static, crate::Result<Generated>> {
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
            Mode::PageUntil(text, until_ms) => Ok(Generated::Page(RenderedBody {
                body: format!("<p>{text}</p>"),
                tags: vec![format!("case:{case}")],
                valid_until_ms: Some(until_ms),
                ..Default::default()
            })),
            Mode::NotYet(until_ms) => Ok(Generated::NotYet { until_ms }),
            Mode::Fail => Err(crate::Error::msg("data source down")),
            Mode::Panic => panic!("loader bug"),
            Mode::NotFound => Ok(Generated::NotFound),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!()
            }
        }
    })
}

pub static BLOCKING: PageDef = PageDef {
    id: "tests::blocking",
    path: "/t/:case",
    cache: CacheProfile::of(Revalidate::After(10)),
    timeout_secs: Some(1),
    fallback: Fallback::Blocking,
    tags: &["t"],
    load: scripted_load,
    paths: None,
    accepts: crate::page::accept_all,
    check: crate::page::nothing_to_check,
    content_type: None,
    hydration: crate::model::Hydration::Full {
        export: "isr_hydrate_test",
    },
    query: crate::page::QuerySpec::NONE,
};

pub static ONLY_LISTED: PageDef = PageDef {
    id: "tests::only_listed",
    path: "/listed/:case",
    fallback: Fallback::NotFound,
    tags: &[],
    ..BLOCKING
};

/// Scripted pages with a ceiling: revalidate 10 s, expire 30 s, stale-if-error 60 s more.
pub static EXPIRING: PageDef = PageDef {
    id: "tests::expiring",
    path: "/e/:case",
    cache: CacheProfile::revalidate(10).expire(30).stale_if_error(60),
    tags: &[],
    hydration: crate::model::Hydration::Islands,
    query: crate::page::QuerySpec::NONE,
    ..BLOCKING
};

/// [`EXPIRING`] without `stale_if_error`.
pub static EXPIRING_STRICT: PageDef = PageDef {
    id: "tests::expiring_strict",
    path: "/strict/:case",
    cache: CacheProfile::revalidate(10).expire(30),
    ..EXPIRING
};

pub const START_MS: u64 = 1_700_000_000_000;

pub struct Harness {
    pub engine: Arc<Engine>,
    pub clock: Arc<ManualClock>,
}

pub async fn harness_with(store: Arc<dyn PageStore>, clock: Arc<ManualClock>) -> Harness {
    harness_of(
        Engine::builder(Routes::new(vec![&BLOCKING, &ONLY_LISTED]).unwrap(), store),
        clock,
    )
    .await
}

/// A harness over `builder` with the test routes' documents and `clock`.
pub async fn harness_of(builder: crate::EngineBuilder, clock: Arc<ManualClock>) -> Harness {
    let engine = builder
        .clock(clock.clone())
        .documents(Arc::new(TestDocuments))
        .open()
        .await
        .unwrap();
    Harness { engine, clock }
}

pub async fn harness() -> Harness {
    harness_with(
        Arc::new(MemoryStore::default()),
        Arc::new(ManualClock::new(START_MS)),
    )
    .await
}

impl Harness {
    pub async fn get(&self, path: &str) -> (Option<CacheStatus>, String) {
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
    pub async fn eventually_contains(
        &self,
        path: &str,
        text: &str,
    ) -> (Option<CacheStatus>, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.get(path).await;
            if got.1.contains(text) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Regenerates `path` on demand; its outcome and how long that took on tokio's clock
    /// (paused in the tests that time out, so a slow machine does not stretch it).
    pub async fn timed_regeneration(&self, path: &str) -> (Outcome, Duration) {
        let started = tokio::time::Instant::now();
        let outcome = self
            .engine
            .regenerate(path, crate::engine::Trigger::OnDemand)
            .await
            .expect("a routed path");
        (outcome, started.elapsed())
    }

    pub async fn wait_idle(&self) {
        self.wait_idle_within(Duration::from_secs(5)).await;
    }

    pub async fn wait_idle_within(&self, limit: Duration) {
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

/// Asserts that `outcome` is a generation that failed on its time limit.
pub fn assert_timed_out(outcome: &Outcome) {
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
}
