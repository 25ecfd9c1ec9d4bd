//! The ISR state machine: freshness, single-flight generation, background regeneration,
//! scheduling, backoff, timeouts, panic capture, and the hot cache in front of the store.
//!
//! ```text
//! request → route → page table?  fresh → HIT
//!                                stale → STALE (served now) + regenerate in the background
//!                                body unreadable → 503 for this request (page kept)
//!                                body missing / disagrees with the index → as a miss
//!                   not stored:  remembered not-found → 404 · backing off → 503
//!                                blocking fallback (or static page) → generate once, share → MISS
//!                                404 fallback → 404
//! ```
//! Rules: a request never waits on the regeneration of a page that exists; at most one
//! generation per page runs at a time; a failed generation never replaces a good page; a page is
//! dropped only by its loader (not found), never by an I/O error; paths that never existed are
//! never written to disk and are remembered only in bounded memory.
//!
//! With the shared tier (`--redis`), the single-flight and the commit span every instance: a
//! generation takes the page's lease first, and a commit with an older fencing token never
//! replaces a newer page (see `shared`).
//!
//! Seams: [`freshness`] (pure functions), `table` (page table + tag index), `negative` (bounded
//! memory of non-pages), `scheduler` (slots), `generation` (lease → loader → render → commit
//! under one timeout), `shared` (the shared tier: coordination, pulls, events, re-checks,
//! write-backs), [`inspect`] and `runs` (what the operator sees), [`outcome`] (public answer
//! types).

mod builder;
mod changes;
mod document;
pub mod freshness;
mod generation;
pub mod inspect;
mod loading;
mod negative;
mod on_demand;
pub mod outcome;
pub mod revalidate;
mod runs;
mod scheduler;
mod shared;
mod table;
pub mod tier;
mod uncached;

pub use builder::EngineBuilder;
pub use changes::{Change, ChangedPage, PageChanges, PurgeKind};
pub use document::{BodyOnly, DocumentWriter};
pub use freshness::{
    effective_revalidate, is_expired, is_fresh, valid_until_reached, MIN_VALIDITY,
    NOT_FOUND_RECHECK,
};
pub use inspect::{PageList, PageQuery, PageState, PageStatus, Summary, MAX_LIST_LIMIT};
pub use negative::NEGATIVE_CAPACITY;
pub use outcome::{CacheStatus, CachedPage, FailureKind, Outcome, Served, Trigger, Why};
pub use runs::{LastRun, RUNS_KEPT};
pub use scheduler::default_max_regenerations;
pub use shared::CATCH_UP_WAIT;
pub use tier::SharedTier;
pub use uncached::{Audience, Uncached};

use crate::clock::Clock;
use crate::context::{AppState, LoadContext};
use crate::encoding::{Encoding, Variants};
use crate::hot_cache::{HotCache, DEFAULT_BUDGET_BYTES};
use crate::metrics;
use crate::page::{Fallback, PageDef, Params};
use crate::route::{PageKey, Resolved, Routes};
use crate::store::{CommitStamp, Etag, Mark, MarkMode, PageKind, PageStore};
use futures::future::{BoxFuture, Shared};
use futures::StreamExt;
use loading::LoadState;
use negative::{NegativeMemory, Remembered};
use scheduler::Scheduler;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table::{PageTable, Snapshot};
use tokio_util::task::TaskTracker;

/// How long a request that waits for a page may queue for a generation slot.
pub const MAX_SLOT_WAIT: Duration = Duration::from_secs(10);

/// Retry-After of a request whose page could not be read this time.
const READ_ERROR_RETRY: Duration = Duration::from_secs(1);

/// Limits of an engine.
///
/// ```
/// let options = isr::engine::EngineOptions { max_regenerations: 2, ..Default::default() };
/// assert_eq!(options.max_regenerations, 2);
/// assert_eq!(options.not_found_capacity, isr::engine::NEGATIVE_CAPACITY);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Generations running at once after the build (misses, stale, on-demand).
    pub max_regenerations: usize,
    /// Bytes of page bodies kept in memory.
    pub hot_cache_bytes: u64,
    /// Paths that are not pages (not found, failing) remembered at most.
    pub not_found_capacity: usize,
    /// Return from [`EngineBuilder::open`] after the first batch of stored pages and fill the
    /// page table while requests are served (a request for a page not loaded yet looks its
    /// key up in the store). Off: the table is complete when the engine opens.
    pub serve_while_loading: bool,
    /// An invalidation of mode `auto` regenerates at once the pages requested within this
    /// long (and resident in the hot cache), and marks the others stale.
    pub recent_requests: Duration,
}

/// [`EngineOptions::recent_requests`] by default: ten minutes.
pub const DEFAULT_RECENT_REQUESTS: Duration = Duration::from_secs(600);

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_regenerations: default_max_regenerations(),
            hot_cache_bytes: DEFAULT_BUDGET_BYTES,
            not_found_capacity: NEGATIVE_CAPACITY,
            serve_while_loading: false,
            recent_requests: DEFAULT_RECENT_REQUESTS,
        }
    }
}

type SharedGeneration = Shared<BoxFuture<'static, Outcome>>;

/// The ISR engine: one per app.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let routes = isr::__private::example_routes(&["/blog"]);
/// use std::sync::Arc;
/// let site = tempfile::tempdir()?;
/// let store = Arc::new(isr::store::FsStore::new(site.path()));
/// let engine = isr::Engine::builder(routes, store).open().await?;
/// let served = engine.request("/blog").await;
/// assert!(matches!(served, isr::Served::Stored { cache: isr::CacheStatus::Miss, .. }));
/// # Ok(()) }
/// ```
pub struct Engine {
    routes: Routes,
    store: Arc<dyn PageStore>,
    clock: Arc<dyn Clock>,
    table: PageTable,
    negative: NegativeMemory,
    inflight: Mutex<HashMap<PageKey, SharedGeneration>>,
    scheduler: Scheduler,
    /// Writes the document of each rendered page.
    documents: Arc<dyn DocumentWriter>,
    /// What loaders and `paths` functions extract with `State<T>` (with this engine's
    /// [`Revalidator`](crate::Revalidator)).
    state: Arc<AppState>,
    hot: HotCache,
    tasks: TaskTracker,
    /// The runtime background work runs on (generations, on-demand revalidations, pulls from
    /// the shared tier): the one the engine was opened on, whichever runtime a request that
    /// starts the work is served on (see `server::threads`).
    background: tokio::runtime::Handle,
    /// Whether the page table holds every stored page yet (see [`loading`]).
    loading: LoadState,
    /// Told when a page's content changed (a CDN purger), if any.
    changes: Option<Arc<dyn PageChanges>>,
    /// The shared tier, once joined (see [`shared`]).
    shared: shared::SharedState,
    /// The last run of recently generated pages (bounded; see [`runs`]).
    runs: runs::RunLog,
    /// Whether requests are being served (then a build's changes are announced too).
    serving: std::sync::atomic::AtomicBool,
    /// On-demand regenerations, merged per page (see [`on_demand`]).
    on_demand: Arc<on_demand::OnDemandRuns<Option<Outcome>>>,
    /// See [`EngineOptions::recent_requests`].
    recent_requests: Duration,
}

impl Engine {
    /// An engine over the pages `routes` names and what `store` holds, configured by the
    /// [`EngineBuilder`]'s methods; nothing is generated until asked.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// use std::sync::Arc;
    /// let engine = isr::Engine::builder(routes, Arc::new(isr::store::MemoryStore::default()))
    ///     .options(isr::EngineOptions { max_regenerations: 2, ..Default::default() })
    ///     .open()
    ///     .await?;
    /// assert_eq!(engine.page_count(), 0);
    /// # Ok(()) }
    /// ```
    pub fn builder(routes: Routes, store: Arc<dyn PageStore>) -> EngineBuilder {
        EngineBuilder::new(routes, store)
    }

    /// Opens the engine `builder` describes. Stored pages whose route no longer exists are
    /// ignored; stray temporary files are swept in the background.
    async fn open(builder: EngineBuilder) -> std::io::Result<Arc<Engine>> {
        let EngineBuilder {
            routes,
            store,
            clock,
            options,
            documents,
            mut state,
            changes,
            shared,
        } = builder;
        // Filling the table overlaps reading the store (batches through a channel).
        let started = std::time::Instant::now();
        store.set_file_keys(&routes.file_keys());
        let table = PageTable::new(routes.defs());
        let mut batches = store.load_batches();
        let loading = if options.serve_while_loading {
            // The first batch is read now, so a store that cannot be read at all fails the
            // start; the rest fills the table while requests are served.
            if let Some(first) = batches.next().await {
                let rows: Vec<_> = first?
                    .into_iter()
                    .filter_map(|meta| loading::routed_row(&routes, meta))
                    .collect();
                table.fill(&rows);
            }
            LoadState::loading()
        } else {
            loading::load_all(&table, &routes, batches).await?;
            batches = Box::pin(futures::stream::empty());
            LoadState::complete()
        };
        let sweep = store.sweep();
        tokio::spawn(async move {
            match sweep.await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed temporary files left by a crash"),
                Err(error) => tracing::warn!(%error, "could not sweep temporary files"),
            }
        });
        let scheduler = Scheduler::new(
            options.max_regenerations,
            routes.defs().iter().map(|d| d.path),
            MAX_SLOT_WAIT,
        );
        let engine = Arc::new_cyclic(|engine| {
            // Loaders and `#[paths]` functions may revalidate pages of their own app.
            state.insert(crate::Revalidator::bound_to(engine.clone()));
            Engine {
                routes,
                store,
                clock,
                table,
                negative: NegativeMemory::new(options.not_found_capacity),
                inflight: Mutex::new(HashMap::new()),
                scheduler,
                documents,
                state: Arc::new(state),
                hot: HotCache::new(options.hot_cache_bytes),
                tasks: TaskTracker::new(),
                background: tokio::runtime::Handle::current(),
                loading,
                changes,
                on_demand: on_demand::OnDemandRuns::new(),
                shared: shared::SharedState::default(),
                runs: runs::RunLog::new(),
                serving: std::sync::atomic::AtomicBool::new(false),
                recent_requests: options.recent_requests,
            }
        });
        if let Some(tier) = shared {
            engine.join_shared(tier);
        }
        if !engine.loading.is_complete() {
            loading::fill_in_background(&engine, batches, started);
        }
        Ok(engine)
    }

    /// Marks the engine as serving requests: from now on a build (a background rebuild)
    /// announces the pages it changes, as regenerations do.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// engine.mark_serving();
    /// # }
    /// ```
    pub fn mark_serving(&self) {
        self.serving
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether changes are announced to a listener (a CDN purger).
    pub(crate) fn announces_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// Announces `change`; `None` when nobody listens. The future says whether the first
    /// delivery succeeded.
    pub(crate) fn announce(&self, change: Change) -> Option<BoxFuture<'static, bool>> {
        self.changes.as_ref().map(|changes| changes.changed(change))
    }

    /// Announces that the page `key` changed (soft) or is gone (hard).
    pub(crate) fn announce_change(
        &self,
        key: &PageKey,
        purge: PurgeKind,
    ) -> Option<BoxFuture<'static, bool>> {
        self.announce(Change::page(key.clone(), purge))
    }

    /// The 32 hex digits of the etag of the version of `key` the page table holds, when it is
    /// a page (what a CDN serving it sends in its `ETag`, quoted, with a suffix per encoding).
    pub fn etag_hex(&self, key: &PageKey) -> Option<String> {
        match self.table.snapshot(key.as_str())?.kind {
            crate::model::PageKind::Page { etag, .. } => {
                Some(String::from_utf8_lossy(&etag.hex()).into_owned())
            }
            _ => None,
        }
    }

    /// Changes whenever a page is committed or removed: what a document made from the page
    /// table (the sitemap) is valid for.
    pub fn table_stamp(&self) -> (u64, usize) {
        self.table.stamp()
    }

    /// Every HTML page held now (file routes apart; variants only of routes with
    /// `sitemap_variants`), sorted by key, with its generation time
    /// (ms since the epoch), and the [`table_stamp`](Self::table_stamp) it was read at: what
    /// `/sitemap.xml` lists.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// assert!(engine.html_pages().0.is_empty());
    /// engine.request("/blog/hello").await;
    /// let (pages, stamp) = engine.html_pages();
    /// assert_eq!(pages[0].0.as_str(), "/blog/hello");
    /// assert_eq!(stamp, engine.table_stamp());
    /// # }
    /// ```
    pub fn html_pages(&self) -> (Vec<(PageKey, u64)>, (u64, usize)) {
        self.table.html_pages()
    }

    /// The values the app registered (`State<T>`), for code that runs outside loaders (server
    /// functions).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/x"])).await;
    /// assert!(engine.state().get::<u64>().is_none());
    /// # }
    /// ```
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The context one generation of a page with `params` runs with.
    pub fn load_context(&self, params: Params) -> LoadContext {
        LoadContext::new(params, self.state.clone())
    }

    /// The app's routes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// assert_eq!(engine.routes().defs().len(), 1);
    /// assert!(engine.routes().def("/blog/:slug").is_some());
    /// # }
    /// ```
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// How many stored pages (incl. tombstones and redirects) the engine knows (while the table
    /// fills at start-up, those loaded so far: see [`Engine::is_loaded`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// assert_eq!(engine.page_count(), 0);
    /// engine.request("/blog/hello").await;
    /// assert_eq!(engine.page_count(), 1);
    /// # }
    /// ```
    pub fn page_count(&self) -> usize {
        self.table.len()
    }

    /// How many paths that are not stored pages are remembered (bounded by
    /// [`EngineOptions::not_found_capacity`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog"])).await;
    /// assert_eq!(engine.remembered_non_pages(), 0);
    /// engine.request("/nothing-here").await; // no route: a 404 with nothing remembered
    /// assert!(engine.remembered_non_pages() <= isr::engine::NEGATIVE_CAPACITY);
    /// # }
    /// ```
    pub fn remembered_non_pages(&self) -> usize {
        self.negative.len()
    }

    /// Answers a request for the raw (percent-encoded) `path`, without its query string.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// // A blocking-fallback page: generated on its first request (MISS), then a HIT.
    /// let cache = |served| match served {
    ///     isr::Served::Stored { cache, .. } => cache,
    ///     other => panic!("{other:?}"),
    /// };
    /// assert_eq!(cache(engine.request("/blog/hello").await), isr::CacheStatus::Miss);
    /// assert_eq!(cache(engine.request("/blog/hello").await), isr::CacheStatus::Hit);
    /// assert!(matches!(engine.request("/nowhere").await, isr::Served::NoRoute));
    /// # }
    /// ```
    pub async fn request(self: &Arc<Self>, path: &str) -> Served {
        self.request_wanting(path, None).await
    }

    /// [`request`](Self::request) for a client that prefers `encoding` (the best it accepts,
    /// were every encoding stored): a page read back from the store for it may hold only the
    /// HTML and that encoding, which is all its answer needs (one or two files read, not
    /// three). `None` reads every stored encoding.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// use isr::encoding::Encoding;
    /// let isr::Served::Stored { page, .. } = engine.request_wanting("/blog/hello", Some(Encoding::Brotli)).await else { panic!() };
    /// assert!(page.html().is_some());
    /// # }
    /// ```
    pub async fn request_wanting(
        self: &Arc<Self>,
        path: &str,
        encoding: Option<Encoding>,
    ) -> Served {
        self.request_with_query(path, None, encoding).await
    }

    /// [`request_wanting`](Self::request_wanting) with the request's query string (without
    /// `?`): for a route with `query = [...]`, its listed parameters name a variant
    /// ([`Routes::resolve_request`]); every other parameter is ignored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes_with_query(&["/blog"], &["page"])).await;
    /// let isr::Served::Stored { page, .. } = engine.request_with_query("/blog", Some("page=2&utm_source=x"), None).await else { panic!() };
    /// assert_eq!(page.meta.key, "/blog?page=2");
    /// # }
    /// ```
    pub async fn request_with_query(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        encoding: Option<Encoding>,
    ) -> Served {
        let (def, key, params) = match self.routes.resolve_request(path, query) {
            Resolved::Page { def, key, params } => (def, key, params),
            Resolved::Canonical(location) => return Served::Canonical(location),
            Resolved::NotFound => {
                metrics::request("not_found");
                return Served::NoRoute;
            }
        };
        let served = self.serve_page(def, key, params, encoding).await;
        metrics::request(match &served {
            Served::Stored { cache, page, .. } if page.meta.kind != PageKind::NotFound => {
                cache.metric_label()
            }
            Served::Unavailable { .. } => "unavailable",
            _ => "not_found",
        });
        served
    }

    async fn serve_page(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: PageKey,
        params: Params,
        encoding: Option<Encoding>,
    ) -> Served {
        let mono = self.clock.monotonic_ms();
        if let Err(error) = self.look_up_while_loading(&key).await {
            tracing::warn!(path = %key, %error, "could not look the page up in the store; answering 503 this time");
            return Served::Unavailable {
                retry_after: READ_ERROR_RETRY,
            };
        }
        self.catch_up(&key, def).await;
        if let Some(snapshot) = self.table.snapshot(key.as_str()) {
            match self.resident_or_read(&key, snapshot, encoding).await {
                Ok(Some((page, snapshot))) => {
                    let now = self.clock.now_ms();
                    let marked = snapshot.mark.clone();
                    let marked_expire = marked.as_ref().is_some_and(|m| m.mode == MarkMode::Expire);
                    if marked_expire
                        || is_expired(
                            &snapshot.kind,
                            snapshot.generated_at_ms,
                            snapshot.valid_until_ms,
                            def,
                            now,
                        )
                    {
                        return self
                            .serve_expired(def, key, params, page, snapshot.retry_at_ms)
                            .await;
                    }
                    let fresh =
                        is_fresh(&snapshot.kind, snapshot.generated_at_ms, def.window(), now);
                    let (cache, why) = match marked {
                        None if fresh => (CacheStatus::Hit, Why::WithinWindow),
                        _ => {
                            if mono >= snapshot.retry_at_ms {
                                self.regenerate_in_background(&key, def, params);
                            }
                            let why = marked.map_or(Why::WindowPassed, Why::Invalidated);
                            (CacheStatus::Stale, why)
                        }
                    };
                    return self.stored(page, cache, why, def);
                }
                Ok(None) => {
                    // No usable body for a stored page: a miss (whatever the fallback), so the
                    // page is regenerated instead of dropped (inside its backoff: 503).
                    return self.generate_for_request(def, key, params, false).await;
                }
                Err(error) => {
                    tracing::warn!(path = %key, %error, "could not read the stored page; answering 503 this time, the page is kept");
                    return Served::Unavailable {
                        retry_after: READ_ERROR_RETRY,
                    };
                }
            }
        }
        match self.negative.get(key.as_str(), mono) {
            // Trusted until its recheck on the monotonic clock, and never past the wall-clock
            // time a `Load::not_yet` named.
            Some(Remembered::NotFound {
                generated_at_ms,
                valid_until_ms,
                ..
            }) if !valid_until_reached(valid_until_ms, self.clock.now_ms()) => {
                let page = Arc::new(not_found_page(&key, def, generated_at_ms, valid_until_ms));
                return self.stored(page, CacheStatus::Hit, Why::WithinWindow, def);
            }
            Some(Remembered::Failing { retry_at_ms, .. }) if mono < retry_at_ms => {
                return Served::Unavailable {
                    retry_after: Duration::from_millis(retry_at_ms - mono),
                }
            }
            _ => {}
        }
        if !(def.accepts)(&params) {
            // Typed params that do not parse name no page: no generation is scheduled.
            return Served::NotFound;
        }
        if key.query().is_some() && !self.may_store_variant(def, &key) {
            return Served::NotFound;
        }
        if def.is_dynamic() && def.fallback == Fallback::NotFound && key.query().is_none() {
            // Another instance may have committed it (a new page it learnt of first).
            if let Some(page) = self.pull_unknown(&key, def).await {
                let now = self.clock.now_ms();
                let generated_at_ms = page.meta.generated_at_ms;
                if is_expired(
                    &page.meta.kind,
                    generated_at_ms,
                    page.meta.valid_until_ms,
                    def,
                    now,
                ) {
                    // Another instance's version, past its `expire`: never served as current.
                    return self.serve_expired(def, key, params, page, 0).await;
                }
                return self.stored(page, CacheStatus::Miss, Why::Generated, def);
            }
            return Served::NotFound;
        }
        self.generate_for_request(def, key, params, true).await
    }

    /// Whether a new variant of a page may be generated and stored: its page exists (for a
    /// route whose pages are only those `paths` lists) and fewer than the route's
    /// `max_variants` of it are stored. Past the limit the variant is a 404, logged (at most
    /// once a minute per process).
    fn may_store_variant(&self, def: &'static PageDef, key: &PageKey) -> bool {
        if def.is_dynamic()
            && def.fallback == Fallback::NotFound
            && !self.table.contains(key.path())
        {
            return false;
        }
        let stored = self.table.variant_count(key.path());
        if stored < def.query.max_variants {
            return true;
        }
        static PAST_MAX: crate::log_limit::LogLimiter =
            crate::log_limit::LogLimiter::new(Duration::from_secs(60));
        if let Some(suppressed) = PAST_MAX.allow() {
            tracing::warn!(path = %key, page = key.path(), stored, max_variants = def.query.max_variants, suppressed, "a new variant of a page that has max_variants stored answers 404 (raise `max_variants` on its route if it should exist)");
        }
        false
    }

    /// A request for a page past its `expire` or its loader's `valid_until`, or marked
    /// `expire` by an invalidation: it waits for the page's regeneration (joining the one
    /// running, if any), bounded by the loader's timeout and the wait for a free generation
    /// slot, and gets the new version. When that fails, or the page is backing off from
    /// failures, the old page is served within its `stale_if_error` (marked
    /// [`CacheStatus::StaleIfError`]; a page expired only by a mark is within its policy, so
    /// it is served so too), else `503` with `retry-after`: never a page older than its policy
    /// allows.
    async fn serve_expired(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: PageKey,
        params: Params,
        old: Arc<CachedPage>,
        retry_at_ms: u64,
    ) -> Served {
        let mut failure = FailureKind::Error;
        // What made the old version expired: its loader's time, the route's ceiling, or an
        // invalidation's mark.
        let by_policy = is_expired(
            &old.meta.kind,
            old.meta.generated_at_ms,
            old.meta.valid_until_ms,
            def,
            self.clock.now_ms(),
        );
        let why = if valid_until_reached(old.meta.valid_until_ms, self.clock.now_ms()) {
            Why::ValidUntil
        } else if by_policy {
            Why::Expired
        } else {
            match self.table.mark_of(key.as_str()) {
                Some(mark) => Why::Invalidated(mark),
                None => Why::Expired,
            }
        };
        if self.clock.monotonic_ms() >= retry_at_ms {
            // Twice at most: what a request joins may be a pull from Redis rather than a loader
            // run (`catch_up`), which brings no version or an expired one; then the loader
            // runs (a failed loader run leaves the page backing off, so a second start ends
            // at once).
            for _ in 0..2 {
                let slot = StartSlot::Wait {
                    unknown_route: None,
                };
                match self
                    .start(&key, def, params.clone(), Trigger::Expired, slot)
                    .await
                {
                    // A version within its policy and not marked `expire` (one that started before
                    // the mark keeps it: then the loader runs again).
                    Outcome::Generated(page)
                        if !is_expired(
                            &page.meta.kind,
                            page.meta.generated_at_ms,
                            page.meta.valid_until_ms,
                            def,
                            self.clock.now_ms(),
                        ) && !self.marked_expire(&key, &page) =>
                    {
                        metrics::expired_request(def.path, "regenerated");
                        return self.stored(page, CacheStatus::Expired, why, def);
                    }
                    Outcome::Generated(_) => {}
                    Outcome::Failed { kind, .. } => failure = kind,
                }
            }
        }
        // The age now, after the wait: the old page's limit is counted to this answer.
        let age_ms = self.clock.now_ms().saturating_sub(old.meta.generated_at_ms);
        let limit_ms = def
            .cache
            .expire_secs()
            .zip(def.cache.stale_if_error_secs())
            .map(|(expire, grace)| expire.saturating_add(grace).saturating_mul(1000));
        // A version its loader said is no longer valid is never served under stale-if-error;
        // one expired only by a mark is within its policy.
        let invalid = valid_until_reached(old.meta.valid_until_ms, self.clock.now_ms());
        let within = !by_policy || limit_ms.is_some_and(|limit| age_ms < limit);
        if !invalid && within {
            metrics::expired_request(def.path, "stale_if_error");
            return self.stored(old, CacheStatus::StaleIfError, Why::StaleIfError, def);
        }
        metrics::expired_request(def.path, "unavailable");
        Served::Unavailable {
            retry_after: self.retry_after(&key, failure),
        }
    }

    /// Whether `page` (a version a request got) is still marked `expire` in the table: a
    /// generation that started before the mark keeps it.
    fn marked_expire(&self, key: &PageKey, page: &CachedPage) -> bool {
        self.table.snapshot(key.as_str()).is_some_and(|snapshot| {
            snapshot.version == page.version
                && snapshot
                    .mark
                    .is_some_and(|mark| mark.mode == MarkMode::Expire)
        })
    }

    /// How long a client should wait before asking again for a page whose generation just
    /// failed with `kind` (its backoff; at least a second).
    fn retry_after(&self, key: &PageKey, kind: FailureKind) -> Duration {
        let mono = self.clock.monotonic_ms();
        let retry_at_ms = match (kind, self.table.snapshot(key.as_str())) {
            (FailureKind::Busy, _) => 0,
            (_, Some(snapshot)) => snapshot.retry_at_ms,
            (_, None) => match self.negative.get(key.as_str(), mono) {
                Some(Remembered::Failing { retry_at_ms, .. }) => retry_at_ms,
                _ => 0,
            },
        };
        Duration::from_millis(retry_at_ms.saturating_sub(mono)).max(Duration::from_secs(1))
    }

    /// The answer for a stored outcome, with its age on the engine's clock.
    fn stored(&self, page: Arc<CachedPage>, cache: CacheStatus, why: Why, def: &PageDef) -> Served {
        page.served_at(self.clock.monotonic_ms());
        let age_ms = self
            .clock
            .now_ms()
            .saturating_sub(page.meta.generated_at_ms);
        Served::Stored {
            page,
            cache,
            why,
            policy: def.cache,
            content_type: def.response_type(),
            age: Duration::from_millis(age_ms),
        }
    }

    /// A request waits for a generation of a page it has nothing to serve for.
    async fn generate_for_request(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: PageKey,
        params: Params,
        unknown: bool,
    ) -> Served {
        let unknown_route = unknown.then_some(def.path);
        match self
            .start(
                &key,
                def,
                params,
                Trigger::Miss,
                StartSlot::Wait { unknown_route },
            )
            .await
        {
            Outcome::Generated(page) => self.stored(page, CacheStatus::Miss, Why::Generated, def),
            Outcome::Failed { kind, .. } => Served::Unavailable {
                retry_after: self.retry_after(&key, kind),
            },
        }
    }

    /// The page's servable version: resident, or read from the store and checked against the
    /// index (see [`check_body`]). `Ok(None)`: the store has no body, or one that disagrees.
    async fn resident_or_read(
        &self,
        key: &PageKey,
        mut snapshot: Snapshot,
        encoding: Option<Encoding>,
    ) -> std::io::Result<Option<(Arc<CachedPage>, Snapshot)>> {
        // Two rounds: a commit may land between the snapshot and the read.
        for _ in 0..2 {
            // Read for `encoding` alone, unless a copy of this version read for another one is
            // resident: then in full, so that clients of different encodings do not take turns
            // replacing each other's copy.
            let mut only = encoding;
            if let Some(page) = self.hot.get(key.as_str()) {
                if page.version == snapshot.version {
                    if page.covers(encoding) {
                        return Ok(Some((page, snapshot)));
                    }
                    only = None;
                }
            }
            let (etag, bytes) = match snapshot.kind {
                PageKind::Page { etag, bytes } => (etag, bytes),
                _ => {
                    let (tags, current) = self.table.tags_at(key.as_str(), snapshot.version);
                    let page = CachedPage::new(snapshot.meta(key, tags), None, snapshot.version);
                    let page = Arc::new(page);
                    self.keep_resident(key, &page, current);
                    return Ok(Some((page, snapshot)));
                }
            };
            let stored = self
                .store
                .committed_body(key, CommitStamp::new(snapshot.generated_at_ms, etag), only)
                .await?;
            let partial = stored.as_ref().is_some_and(|s| s.partial);
            let checked = match stored {
                // The very files the row's commit wrote: only their length is checked.
                Some(stored)
                    if stored.committed && stored.variants.identity.len() as u64 == bytes =>
                {
                    Ok(stored.variants)
                }
                stored => {
                    self.check_read(stored.map(|s| s.variants), etag, bytes)
                        .await?
                }
            };
            let problem = match checked {
                Ok(body) => {
                    let (tags, current) = self.table.tags_at(key.as_str(), snapshot.version);
                    let meta = snapshot.meta(key, tags);
                    let mut page = CachedPage::new(meta, Some(body), snapshot.version);
                    page.partial = partial;
                    let page = Arc::new(page);
                    self.keep_resident(key, &page, current);
                    return Ok(Some((page, snapshot)));
                }
                Err(problem) => problem,
            };
            match self.table.snapshot(key.as_str()) {
                Some(newer) if newer.version != snapshot.version => snapshot = newer,
                _ => {
                    tracing::warn!(
                        path = %key,
                        %problem,
                        "stored body disagrees with the index; regenerating it"
                    );
                    return Ok(None);
                }
            }
        }
        Ok(None)
    }

    /// [`check_body`] of a body read from the store: on this thread for small pages (tens of
    /// microseconds: less than handing it to another thread and back), on the blocking pool for
    /// large ones.
    async fn check_read(
        &self,
        body: Option<Variants>,
        etag: Etag,
        bytes: u64,
    ) -> std::io::Result<Result<Variants, String>> {
        if bytes <= INLINE_CHECK_BYTES {
            return Ok(check_body(body, etag, bytes));
        }
        tokio::task::spawn_blocking(move || check_body(body, etag, bytes))
            .await
            .map_err(std::io::Error::other)
    }

    /// While the page table is still filling, adds `key`'s stored row to it (if the store has
    /// one and the table does not yet), so the page is served as stored, not as unknown.
    async fn look_up_while_loading(&self, key: &PageKey) -> std::io::Result<()> {
        if self.loading.is_complete() || self.table.contains(key.as_str()) {
            return Ok(());
        }
        if let Some(meta) = self.store.meta(key).await? {
            if let Some(row) = loading::routed_row(&self.routes, meta) {
                self.table.fill(std::slice::from_ref(&row));
            }
        }
        Ok(())
    }

    /// Whether the page table holds every stored page (false while it fills in the background
    /// after [`EngineOptions::serve_while_loading`], or after that load failed).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// // Opened without `serve_while_loading`: the table is complete at once.
    /// assert!(engine.is_loaded());
    /// # }
    /// ```
    pub fn is_loaded(&self) -> bool {
        self.loading.is_complete()
    }

    /// Makes `page` resident if `current`: the table still described its version when its
    /// tags were taken ([`PageTable::tags_at`]). A commit landing after that only makes the
    /// copy unused (a copy is served only while its version is the table's).
    fn keep_resident(&self, key: &PageKey, page: &Arc<CachedPage>, current: bool) {
        if current {
            self.make_resident(key, page.clone());
        }
    }

    /// Makes `page` the resident copy of `key`, carrying over when a request last got the
    /// page (a new version of a page requested a minute ago was requested a minute ago: what
    /// an invalidation of mode `auto` reads).
    pub(crate) fn make_resident(&self, key: &PageKey, page: Arc<CachedPage>) {
        if let Some(old) = self.hot.peek(key.as_str()) {
            page.served_like(&old);
        }
        self.hot.insert(key.clone(), page);
    }

    /// Starts a stale regeneration if a scheduler slot is free now; otherwise the page stays
    /// stale and a later request tries again.
    fn regenerate_in_background(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        params: Params,
    ) {
        if self.lock_inflight().contains_key(key.as_str()) {
            return;
        }
        match self.scheduler.try_slot() {
            Some(slot) => drop(self.start(key, def, params, Trigger::Stale, StartSlot::Held(slot))),
            None => {
                tracing::debug!(path = %key, "scheduler full: stale page left for a later request")
            }
        }
    }

    /// Regenerates the page at raw path `path` now, bypassing freshness and backoff, and waits
    /// for it. A generation already running is awaited first (its data may predate the
    /// caller's change). `path` may hold a query (`/blog?page=2`): a route's listed parameters
    /// name a variant, in any spelling. `None` when no page route matches.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// let outcome = engine.regenerate("/blog/hello", isr::Trigger::OnDemand).await;
    /// assert!(matches!(outcome, Some(isr::Outcome::Generated(_))));
    /// assert!(engine.regenerate("/nowhere", isr::Trigger::OnDemand).await.is_none());
    /// # }
    /// ```
    pub async fn regenerate(self: &Arc<Self>, path: &str, trigger: Trigger) -> Option<Outcome> {
        let Resolved::Page { def, key, params } = self.routes.resolve_url(path) else {
            return None;
        };
        Some(self.regenerate_resolved(def, key, params, trigger).await)
    }

    /// Like [`Engine::regenerate`] for a decoded key (from the tag index): never decoded again.
    pub async fn regenerate_key(
        self: &Arc<Self>,
        key: &PageKey,
        trigger: Trigger,
    ) -> Option<Outcome> {
        let (def, key, params) = self.routes.resolve_key(key.as_str())?;
        Some(self.regenerate_resolved(def, key, params, trigger).await)
    }

    async fn regenerate_resolved(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: PageKey,
        params: Params,
        trigger: Trigger,
    ) -> Outcome {
        let running = self.lock_inflight().get(key.as_str()).cloned();
        if let Some(running) = running {
            running.await;
        }
        if let Err(error) = self.look_up_while_loading(&key).await {
            tracing::warn!(path = %key, %error, "could not look the page up in the store before regenerating it");
        }
        let unknown = (!self.table.contains(key.as_str())).then_some(def.path);
        let slot = StartSlot::Wait {
            unknown_route: unknown,
        };
        self.start(&key, def, params, trigger, slot).await
    }

    /// The wall clock, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whether `key` is a stored page (in the page table).
    pub(crate) fn is_stored(&self, key: &PageKey) -> bool {
        self.table.contains(key.as_str())
    }

    /// Whether a request was answered with the current version of `key` within
    /// [`EngineOptions::recent_requests`] (read from its resident copy: a page the hot cache
    /// no longer holds counts as not requested).
    pub(crate) fn recently_requested(&self, key: &PageKey) -> bool {
        let since = self
            .clock
            .monotonic_ms()
            .saturating_sub(self.recent_requests.as_millis() as u64);
        let Some(version) = self.table.version(key.as_str()) else {
            return false;
        };
        self.hot
            .peek(key.as_str())
            .is_some_and(|page| page.version == version && page.served_since(since))
    }

    /// Marks pages (an invalidation of mode `stale` or `expire`): in the page table at once
    /// (the next request sees it), durably in the store (a restart never brings the version
    /// back unmarked), then through the shared tier, if any, on the pages it holds, for every
    /// instance. Returns the pages marked (here, or in the shared tier for the other
    /// instances) and, when persisting failed, why (the marks then hold in memory only).
    pub(crate) async fn mark_pages(
        self: &Arc<Self>,
        marks: Vec<(PageKey, Mark)>,
    ) -> (Vec<PageKey>, Option<String>) {
        let (mut marked, error) = self.mark_local(&marks, false).await;
        if let Some(tier) = self.shared_tier() {
            match tier.publish_marks(&marks).await {
                Ok(shared) => {
                    let here: HashSet<PageKey> = marked.iter().cloned().collect();
                    marked.extend(
                        shared
                            .iter()
                            .filter_map(|key| Some(self.routes.page_of_key(key)?.1))
                            .filter(|key| !here.contains(key)),
                    );
                }
                Err(error) => {
                    tracing::warn!(pages = marks.len(), %error, "could not publish invalidation marks through Redis; the other instances serve these pages until their window passes")
                }
            }
        }
        (marked, error)
    }

    /// Marks the stored pages named here: in the page table (while it still fills, a page not
    /// loaded yet is marked when its row arrives), then durably in the store (see
    /// [`Engine::mark_pages`]; `only_older`: see `PageTable::mark`). Returns the keys marked
    /// and the store's error, if any.
    pub(crate) async fn mark_local(
        self: &Arc<Self>,
        marks: &[(PageKey, Mark)],
        only_older: bool,
    ) -> (Vec<PageKey>, Option<String>) {
        let loading = !self.is_loaded();
        let held = self.table.mark(marks, only_older, loading);
        let mut keys: Vec<PageKey> = held.iter().map(|(key, _)| key.clone()).collect();
        // As the table holds them (an earlier `expire` is not weakened); while the table still
        // loads, the store marks the rows not loaded yet too (a restart keeps them).
        let mut persisted: Vec<(PageKey, Option<Mark>)> = held
            .into_iter()
            .map(|(key, mark)| (key, Some(Mark::clone(&mark))))
            .collect();
        if !only_older && loading {
            for (key, mark) in marks {
                if !self.table.contains(key.as_str()) {
                    persisted.push((key.clone(), Some(mark.clone())));
                    keys.push(key.clone());
                }
            }
        }
        if persisted.is_empty() {
            return (keys, None);
        }
        let count = persisted.len();
        let error = match self.store.set_marks(persisted).await {
            Ok(()) => None,
            Err(error) => {
                tracing::warn!(pages = count, %error, "could not persist invalidation marks; they hold until a restart");
                Some(format!(
                    "the mark could not be persisted (it holds until a restart): {error}"
                ))
            }
        };
        (keys, error)
    }

    /// Regenerates `key` for on-demand revalidation, merged with the other on-demand requests
    /// for it (see [`on_demand`]): joins its queued run, or queues one run after the one that
    /// is running. `None`: no route has the key.
    pub(crate) fn regenerate_on_demand(
        self: &Arc<Self>,
        key: &PageKey,
    ) -> impl std::future::Future<Output = Option<Outcome>> + Send + 'static {
        let engine = self.clone();
        let page = key.clone();
        self.on_demand.join(key, move || {
            Box::pin(async move { engine.regenerate_key(&page, Trigger::OnDemand).await })
        })
    }

    /// Generates a page enumerated by a build now (no scheduler slot: the build bounds its
    /// own concurrency) and commits it; what `isr::build::build` runs for every page.
    pub async fn generate(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: PageKey,
        params: Params,
    ) -> Outcome {
        self.start(&key, def, params, Trigger::Build, StartSlot::Unlimited)
            .await
    }

    /// Keys of the pages that carry `tag` now, sorted (from the tag index).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// engine.request("/blog/hello").await;
    /// // The example route's pages carry the tag `example`.
    /// let keys = engine.keys_with_tag("example");
    /// assert_eq!(keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["/blog/hello"]);
    /// assert!(engine.keys_with_tag("posts").is_empty());
    /// # }
    /// ```
    pub fn keys_with_tag(&self, tag: &str) -> Vec<PageKey> {
        self.table.keys_with_tag(tag)
    }

    /// Keys the store's own tag index lists for `tag` (routed; rows of removed routes left
    /// out): what tag revalidation adds while the page table is not complete.
    pub(crate) async fn stored_keys_with_tag(&self, tag: &str) -> std::io::Result<Vec<PageKey>> {
        let keys = self.store.keys_with_tag(tag).await?;
        Ok(keys
            .iter()
            .filter_map(|key| self.routes.page_of_key(key).map(|(_, key)| key))
            .collect())
    }

    /// The persistent tier.
    pub fn store(&self) -> &Arc<dyn PageStore> {
        &self.store
    }

    /// Forgets every page whose key is not in `keep` (after a build: pages no longer listed);
    /// with the shared tier, also in Redis, as a tombstone every instance applies (see
    /// `remove_shared`).
    ///
    /// # Errors
    /// The store's error when a removal fails (pages removed before it stay removed).
    pub async fn retain(&self, keep: &HashSet<PageKey>) -> std::io::Result<usize> {
        let removed: Vec<PageKey> = self
            .table
            .keys()
            .into_iter()
            .filter(|k| !keep.contains(k))
            .collect();
        for key in &removed {
            let route = self.table.snapshot(key.as_str()).map(|s| s.def.path);
            self.table.remove(key.as_str());
            self.hot.remove(key.as_str());
            self.store.remove(key).await?;
            // The other instances (and Redis) must not keep serving it.
            if let Some(route) = route {
                self.remove_shared(key, route).await;
            }
        }
        self.store.sync().await?;
        Ok(removed.len())
    }

    /// Sets the byte budget of page bodies kept in memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// engine.request("/blog/hello").await;
    /// assert!(engine.hot_cache_bytes() > 0);
    /// engine.set_hot_cache_budget(1); // no page fits: nothing stays in memory
    /// assert_eq!(engine.hot_cache_bytes(), 0);
    /// // ... and the page is still served, read from the store.
    /// assert!(matches!(engine.request("/blog/hello").await, isr::Served::Stored { .. }));
    /// # }
    /// ```
    pub fn set_hot_cache_budget(&self, bytes: u64) {
        self.hot.set_budget(bytes);
    }

    /// Bytes of page bodies (plus a fixed overhead per page) held in memory now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// assert_eq!(engine.hot_cache_bytes(), 0);
    /// engine.request("/blog/hello").await; // generated, and kept in memory
    /// assert!(engine.hot_cache_bytes() > 0);
    /// # }
    /// ```
    pub fn hot_cache_bytes(&self) -> u64 {
        self.hot.resident()
    }

    /// Generations running now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// assert_eq!(engine.running_generations(), 0);
    /// engine.request("/blog/hello").await; // a generation that has finished
    /// assert_eq!(engine.running_generations(), 0);
    /// # }
    /// ```
    pub fn running_generations(&self) -> usize {
        self.lock_inflight().len()
    }

    /// Stops starting generations and waits up to `deadline` for the running ones (and
    /// background on-demand work) to finish. Returns whether everything finished. A
    /// generation cut off by the deadline leaves the old page on disk (writes are atomic).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// engine.regenerate("/blog/hello", isr::Trigger::OnDemand).await;
    /// // Nothing is running any more: shutdown finishes before its deadline.
    /// assert!(engine.shutdown(std::time::Duration::from_secs(10)).await);
    /// # }
    /// ```
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
    }

    /// Runs `work` as tracked background work: it goes on when the caller stops waiting (a
    /// client that disconnects), and [`Engine::shutdown`] waits for it.
    pub fn spawn_tracked<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn_on(work, &self.background)
    }

    /// Runs `work` on the background runtime, untracked (shutdown does not wait for it).
    pub(crate) fn spawn_background<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.spawn(work)
    }

    pub(crate) fn lock_inflight(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<PageKey, SharedGeneration>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Pages up to this size (HTML bytes) are checked after a disk read on the thread that serves
/// the request (hash + decompressing the variants of a 10 KB page: ~25 µs); larger ones on the
/// blocking pool.
const INLINE_CHECK_BYTES: u64 = 32 * 1024;

/// `body` if it is what the index row says: the HTML's length, then its hash, then every
/// compressed variant decompresses to exactly the HTML. Otherwise what is wrong.
fn check_body(body: Option<Variants>, etag: Etag, bytes: u64) -> Result<Variants, String> {
    let body = body.ok_or_else(|| "no HTML stored".to_string())?;
    let found = body.identity.len() as u64;
    if found != bytes {
        return Err(format!("HTML of {found} bytes, the index says {bytes}"));
    }
    if Etag::of(&body.identity) != etag {
        return Err("HTML hash differs from the index".into());
    }
    body.verified().map_err(|encoding| {
        format!(
            "{} variant does not decompress to the HTML",
            encoding.token()
        )
    })
}

/// The page a remembered not-found of a never-stored path is served as (`valid_until_ms`: a
/// [`Load::NotYet`](crate::page::Load::NotYet)'s time).
fn not_found_page(
    key: &PageKey,
    def: &'static PageDef,
    generated_at_ms: u64,
    valid_until_ms: Option<u64>,
) -> CachedPage {
    CachedPage::new(
        crate::store::PageMeta {
            key: key.to_string(),
            route: def.path.to_string(),
            generated_at_ms,
            generation: 0,
            kind: PageKind::NotFound,
            tags: Vec::new(),
            valid_until_ms,
            mark: None,
        },
        None,
        0,
    )
}

/// How a generation gets its scheduler slot.
enum StartSlot {
    /// Already taken (stale regenerations take one only when free).
    Held(scheduler::Slot),
    /// Wait for one inside the generation; for a path that is not a stored page, also one of
    /// its route's slots.
    Wait { unknown_route: Option<&'static str> },
    /// None needed (the build).
    Unlimited,
}

/// The strong etag of some bytes (the `ETag` header value).
///
/// ```
/// let etag = isr::engine::etag_of(b"hello");
/// assert_eq!(etag.len(), 34);
/// assert_eq!(etag, isr::engine::etag_of(b"hello"));
/// assert_ne!(etag, isr::engine::etag_of(b"hello!"));
/// ```
pub fn etag_of(bytes: &[u8]) -> String {
    Etag::of(bytes).to_string()
}

#[cfg(test)]
mod tests;
