//! The ISR state machine: freshness, single-flight generation, background regeneration,
//! backoff, timeouts, panic capture, and the hot in-memory cache in front of the store.
//!
//! ```text
//! request → route → cached?  fresh → HIT
//!                            stale → STALE (served now) + regenerate in the background
//!                   missing, blocking fallback (or static page) → generate once, share → MISS
//!                   missing, 404 fallback → 404
//! ```
//! Rules: a request never waits on the regeneration of a page that exists; at most one
//! generation per page runs at a time; a failed generation never replaces a good page.

use crate::backoff;
use crate::clock::Clock;
use crate::hot_cache::{HotCache, DEFAULT_BUDGET_BYTES};
use crate::metrics;
use crate::page::{Fallback, Generated, PageDef, Params, Revalidate};
use crate::render::{self, DocumentShell};
use crate::route::{Resolved, Routes};
use crate::store::{PageKind, PageMeta, PageStore};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a remembered "not found" is trusted before it is checked again, at most.
pub const NOT_FOUND_RECHECK: Duration = Duration::from_secs(60);

/// How a response relates to the cache (the `x-isr-cache` header).
///
/// ```
/// assert_eq!(isr::CacheStatus::Stale.as_str(), "STALE");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from cache, fresh.
    Hit,
    /// Served from cache, past its window; a regeneration was started.
    Stale,
    /// Generated for this request.
    Miss,
}

impl CacheStatus {
    /// The header value.
    ///
    /// ```
    /// assert_eq!(isr::CacheStatus::Hit.as_str(), "HIT");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Stale => "STALE",
            CacheStatus::Miss => "MISS",
        }
    }

    fn metric_label(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Miss => "miss",
        }
    }
}

/// What started a generation (the `trigger` label of the regeneration metric).
///
/// ```
/// assert_eq!(isr::Trigger::OnDemand.as_str(), "on_demand");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The pre-render of `build`.
    Build,
    /// A request found the page stale.
    Stale,
    /// A request found no page (fallback blocking).
    Miss,
    /// `POST /_isr/revalidate` or `isr::revalidate_*`.
    OnDemand,
}

impl Trigger {
    /// The metric label.
    ///
    /// ```
    /// assert_eq!(isr::Trigger::Miss.as_str(), "miss");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Build => "build",
            Trigger::Stale => "stale",
            Trigger::Miss => "miss",
            Trigger::OnDemand => "on_demand",
        }
    }
}

/// A generated page held in memory.
///
/// ```
/// # fn demo(page: &isr::CachedPage) {
/// if let Some(html) = &page.html { println!("{} bytes, etag {}", html.len(), page.etag()); }
/// # }
/// ```
#[derive(Debug)]
pub struct CachedPage {
    /// Its metadata, as stored.
    pub meta: PageMeta,
    /// The HTML (for pages; `None` for not-found and redirects, or before it is read from disk).
    pub html: Option<Bytes>,
}

impl CachedPage {
    /// The strong etag of the HTML (empty for non-pages).
    ///
    /// ```
    /// # fn demo(page: &isr::CachedPage) { assert!(page.etag().is_empty() || page.etag().starts_with('"')); }
    /// ```
    pub fn etag(&self) -> &str {
        match &self.meta.kind {
            PageKind::Page { etag, .. } => etag,
            _ => "",
        }
    }
}

/// How a generation failed.
///
/// ```
/// assert_eq!(isr::FailureKind::Timeout.as_str(), "timeout");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The loader returned an error (or the page could not be stored).
    Error,
    /// The loader or the view panicked.
    Panic,
    /// The loader ran past its timeout.
    Timeout,
}

impl FailureKind {
    /// The metric label.
    ///
    /// ```
    /// assert_eq!(isr::FailureKind::Panic.as_str(), "panic");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
        }
    }
}

/// The result of one generation.
///
/// ```
/// # fn demo(outcome: isr::Outcome) {
/// match outcome {
///     isr::Outcome::Generated(page) => println!("now {:?}", page.meta.kind),
///     isr::Outcome::Failed { kind, message } => eprintln!("{}: {message}", kind.as_str()),
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Stored and swapped in (a page, a not-found or a redirect).
    Generated(Arc<CachedPage>),
    /// Nothing changed; the old page (if any) is still served.
    Failed { kind: FailureKind, message: String },
}

/// The engine's answer to a page request; the server turns it into HTTP.
#[derive(Debug)]
pub enum Served {
    /// A stored outcome: an HTML page, a remembered not-found, or a redirect.
    Stored {
        page: Arc<CachedPage>,
        cache: CacheStatus,
        revalidate: Revalidate,
    },
    /// The path has a trailing slash: redirect (308) to this canonical path.
    Canonical(String),
    /// No page route matches the path.
    NoRoute,
    /// A dynamic page that does not exist (fallback "404").
    NotFound,
    /// A page that was never generated could not be generated now: 503, retry after this.
    Unavailable { retry_after: Duration },
}

#[derive(Default)]
struct PageState {
    current: Option<Arc<CachedPage>>,
    /// Consecutive failed generations.
    failures: u32,
    /// No new attempt (other than on-demand) before this time, in ms since the epoch.
    retry_at_ms: u64,
}

type SharedGeneration = Shared<BoxFuture<'static, Outcome>>;

/// The ISR engine: one per app.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::sync::Arc;
/// let routes = isr::Routes::new(isr::pages().collect()).unwrap();
/// let store = Arc::new(isr::store::FsStore::new("target/site/blog"));
/// let engine = isr::Engine::open(routes, store, Arc::new(isr::clock::SystemClock)).await?;
/// let served = engine.request("/blog").await;
/// # let _ = served; Ok(()) }
/// ```
pub struct Engine {
    routes: Routes,
    store: Arc<dyn PageStore>,
    clock: Arc<dyn Clock>,
    pages: RwLock<HashMap<String, PageState>>,
    inflight: Mutex<HashMap<String, SharedGeneration>>,
    shell: RwLock<Arc<DocumentShell>>,
    hot: HotCache,
}

impl Engine {
    /// Opens the engine over what `store` holds (nothing is generated here).
    ///
    /// ```no_run
    /// # async fn demo(routes: isr::Routes) -> std::io::Result<()> {
    /// use std::sync::Arc;
    /// let engine = isr::Engine::open(routes, Arc::new(isr::store::MemoryStore::default()),
    ///     Arc::new(isr::clock::SystemClock)).await?;
    /// assert_eq!(engine.page_count(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn open(
        routes: Routes,
        store: Arc<dyn PageStore>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Arc<Engine>> {
        let index = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.load_index())
                .await
                .map_err(std::io::Error::other)??
        };
        let mut pages = HashMap::with_capacity(index.len());
        for meta in index {
            let known_route = matches!(
                routes.resolve(&meta.key),
                Resolved::Page { def, .. } if def.path == meta.route
            );
            if !known_route {
                tracing::info!(key = %meta.key, route = %meta.route, "stored page has no route any more; ignored");
                continue;
            }
            let page = CachedPage { meta, html: None };
            pages.insert(
                page.meta.key.clone(),
                PageState {
                    current: Some(Arc::new(page)),
                    ..PageState::default()
                },
            );
        }
        Ok(Arc::new(Engine {
            routes,
            store,
            clock,
            pages: RwLock::new(pages),
            inflight: Mutex::new(HashMap::new()),
            shell: RwLock::new(Arc::new(DocumentShell::default())),
            hot: HotCache::new(DEFAULT_BUDGET_BYTES),
        }))
    }

    /// Sets what every page generated from now on gets besides its body (client bundle, …).
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) {
    /// engine.set_shell(isr::render::DocumentShell::default());
    /// # }
    /// ```
    pub fn set_shell(&self, shell: DocumentShell) {
        *self.shell.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(shell);
    }

    /// The current document shell.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) {
    /// let hydrates = engine.shell().client.is_some();
    /// # let _ = hydrates; }
    /// ```
    pub fn shell(&self) -> Arc<DocumentShell> {
        self.shell.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The app's routes.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) {
    /// let pages = engine.routes().defs().len();
    /// # let _ = pages; }
    /// ```
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// How many pages (incl. remembered not-founds and redirects) the engine knows.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) { println!("{} pages", engine.page_count()); }
    /// ```
    pub fn page_count(&self) -> usize {
        self.read_pages().len()
    }

    /// Answers a request for the raw (percent-encoded) `path`, without its query string.
    ///
    /// ```no_run
    /// # async fn demo(engine: std::sync::Arc<isr::Engine>) {
    /// match engine.request("/blog/hello").await {
    ///     isr::Served::Stored { cache, .. } => println!("{}", cache.as_str()),
    ///     other => println!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub async fn request(self: &Arc<Self>, path: &str) -> Served {
        let (def, key, params) = match self.routes.resolve(path) {
            Resolved::Page { def, key, params } => (def, key, params),
            Resolved::Canonical(location) => return Served::Canonical(location),
            Resolved::NotFound => {
                metrics::request("not_found");
                return Served::NoRoute;
            }
        };
        let served = self.serve_page(def, key, params).await;
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
        key: String,
        params: Params,
    ) -> Served {
        let now = self.clock.now_ms();
        let (current, retry_at_ms) = {
            let pages = self.read_pages();
            match pages.get(&key) {
                Some(state) => (state.current.clone(), state.retry_at_ms),
                None => (None, 0),
            }
        };
        if let Some(page) = current {
            if let Some(page) = self.with_html(&key, page).await {
                let cache = if self.is_fresh(&page, def, now) {
                    CacheStatus::Hit
                } else {
                    if now >= retry_at_ms {
                        // Fire and forget: the task owns the generation; this request returns now.
                        drop(self.start_generation(&key, def, params, Trigger::Stale));
                    }
                    CacheStatus::Stale
                };
                return Served::Stored {
                    page,
                    cache,
                    revalidate: def.revalidate,
                };
            }
        }
        if def.is_dynamic() && def.fallback == Fallback::NotFound {
            return Served::NotFound;
        }
        if now < retry_at_ms {
            return Served::Unavailable {
                retry_after: Duration::from_millis(retry_at_ms - now),
            };
        }
        match self
            .start_generation(&key, def, params, Trigger::Miss)
            .await
        {
            Outcome::Generated(page) => Served::Stored {
                page,
                cache: CacheStatus::Miss,
                revalidate: def.revalidate,
            },
            Outcome::Failed { .. } => {
                let retry_at_ms = self.read_pages().get(&key).map_or(0, |s| s.retry_at_ms);
                Served::Unavailable {
                    retry_after: Duration::from_millis(
                        retry_at_ms.saturating_sub(self.clock.now_ms()),
                    )
                    .max(Duration::from_secs(1)),
                }
            }
        }
    }

    /// Regenerates the page at `key` now, bypassing freshness and backoff, and waits for it.
    /// A generation already running is awaited first (its data may predate the caller's change).
    ///
    /// ```no_run
    /// # async fn demo(engine: std::sync::Arc<isr::Engine>) {
    /// let outcome = engine.regenerate("/blog/hello", isr::Trigger::OnDemand).await;
    /// # let _ = outcome; }
    /// ```
    pub async fn regenerate(self: &Arc<Self>, path: &str, trigger: Trigger) -> Option<Outcome> {
        let Resolved::Page { def, key, params } = self.routes.resolve(path) else {
            return None;
        };
        let running = self.lock_inflight().get(&key).cloned();
        if let Some(running) = running {
            running.await;
        }
        Some(self.start_generation(&key, def, params, trigger).await)
    }

    /// Generates a page enumerated by the build.
    pub(crate) async fn generate(
        self: &Arc<Self>,
        def: &'static PageDef,
        key: String,
        params: Params,
    ) -> Outcome {
        self.start_generation(&key, def, params, Trigger::Build)
            .await
    }

    /// Keys of the pages that carry `tag` now.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) { for key in engine.keys_with_tag("posts") { println!("{key}"); } }
    /// ```
    pub fn keys_with_tag(&self, tag: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .read_pages()
            .iter()
            .filter(|(_, state)| {
                state
                    .current
                    .as_ref()
                    .is_some_and(|page| page.meta.tags.iter().any(|t| t == tag))
            })
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// The persistent tier.
    pub(crate) fn store(&self) -> &Arc<dyn PageStore> {
        &self.store
    }

    /// Forgets every page whose key is not in `keep` (after a build: pages no longer listed).
    pub(crate) async fn retain(&self, keep: &HashSet<String>) -> std::io::Result<usize> {
        let removed: Vec<String> = {
            let mut pages = self.write_pages();
            let removed: Vec<String> = pages
                .keys()
                .filter(|k| !keep.contains(*k))
                .cloned()
                .collect();
            for key in &removed {
                if let Some(html) = pages
                    .remove(key)
                    .and_then(|state| state.current)
                    .and_then(|page| page.html.clone())
                {
                    self.hot.released(html.len() as u64);
                }
            }
            removed
        };
        let store = self.store.clone();
        let count = removed.len();
        tokio::task::spawn_blocking(move || {
            for key in &removed {
                store.remove(key)?;
            }
            store.sync()
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(count)
    }

    fn is_fresh(&self, page: &CachedPage, def: &PageDef, now_ms: u64) -> bool {
        // An unknown generation time (0) is always stale.
        if page.meta.generated_at_ms == 0 {
            return false;
        }
        match effective_revalidate(&page.meta.kind, def.revalidate) {
            Revalidate::Never => true,
            // Stale when age ≥ window.
            Revalidate::After(s) => now_ms.saturating_sub(page.meta.generated_at_ms) < s * 1000,
        }
    }

    /// Makes sure a page's HTML is in memory, reading it from the store on first use.
    /// `None` when the HTML vanished from disk (the page is then forgotten and regenerated).
    async fn with_html(&self, key: &str, page: Arc<CachedPage>) -> Option<Arc<CachedPage>> {
        if !page.meta.kind.is_page() || page.html.is_some() {
            return Some(page);
        }
        let store = self.store.clone();
        let owned_key = key.to_string();
        let read = tokio::task::spawn_blocking(move || store.read_html(&owned_key)).await;
        let mut meta = page.meta.clone();
        let html = match read {
            Ok(Ok(Some(html))) => html,
            other => {
                tracing::warn!(path = key, result = ?other.map(|r| r.map(|h| h.map(|h| h.len()))), "stored page HTML is unreadable; regenerating");
                let mut pages = self.write_pages();
                if let Some(state) = pages.get_mut(key) {
                    if state
                        .current
                        .as_ref()
                        .is_some_and(|c| Arc::ptr_eq(c, &page))
                    {
                        state.current = None;
                    }
                }
                return None;
            }
        };
        let etag = etag_of(&html);
        if let PageKind::Page {
            etag: stored,
            bytes,
        } = &mut meta.kind
        {
            if *stored != etag {
                // The metadata describes other bytes (e.g. a crash between the two renames):
                // serve the whole page on disk, but treat it as stale so it is regenerated.
                tracing::warn!(
                    path = key,
                    "page metadata does not match its HTML; serving it as stale"
                );
                *stored = etag;
                *bytes = html.len() as u64;
                meta.generated_at_ms = 0;
            }
        }
        let resident = html.len() as u64;
        let loaded = Arc::new(CachedPage {
            meta,
            html: Some(Bytes::from(html)),
        });
        let mut pages = self.write_pages();
        let state = pages.entry(key.to_string()).or_default();
        match &state.current {
            Some(current) if Arc::ptr_eq(current, &page) => {
                state.current = Some(loaded.clone());
                drop(pages);
                self.hot.admit(key, resident, 0);
                self.evict_over_budget();
                Some(loaded)
            }
            // Another generation landed meanwhile: serve it when it is in memory; otherwise
            // serve what was just read (disk always holds the latest write) without keeping it.
            Some(current) if current.html.is_some() => Some(current.clone()),
            _ => Some(loaded),
        }
    }

    /// Drops the HTML of the pages that became resident longest ago until the resident bytes
    /// fit the hot-cache budget; their next request reads them from the store again.
    fn evict_over_budget(&self) {
        // Each round drains a batch from the queue, so this ends when the queue is empty.
        loop {
            let victims = self.hot.victims();
            if victims.is_empty() {
                return;
            }
            self.evict(victims);
        }
    }

    fn evict(&self, victims: Vec<String>) {
        let mut pages = self.write_pages();
        for key in victims {
            let Some(state) = pages.get_mut(&key) else {
                continue;
            };
            let Some(page) = &state.current else {
                continue;
            };
            if let Some(html) = &page.html {
                let bytes = html.len() as u64;
                state.current = Some(Arc::new(CachedPage {
                    meta: page.meta.clone(),
                    html: None,
                }));
                self.hot.released(bytes);
            }
        }
    }

    /// Sets the byte budget of page HTML kept in memory.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) {
    /// engine.set_hot_cache_budget(64 * 1024 * 1024);
    /// # }
    /// ```
    pub fn set_hot_cache_budget(&self, bytes: u64) {
        self.hot.set_budget(bytes);
        self.evict_over_budget();
    }

    /// Bytes of page HTML held in memory now.
    ///
    /// ```
    /// # fn demo(engine: &isr::Engine) { assert!(engine.hot_cache_bytes() <= 1 << 40); }
    /// ```
    pub fn hot_cache_bytes(&self) -> u64 {
        self.hot.resident()
    }

    /// Joins the running generation of `key`, or starts one in its own task.
    fn start_generation(
        self: &Arc<Self>,
        key: &str,
        def: &'static PageDef,
        params: Params,
        trigger: Trigger,
    ) -> SharedGeneration {
        let mut inflight = self.lock_inflight();
        if let Some(running) = inflight.get(key) {
            return running.clone();
        }
        if let Some(outcome) = self.made_unnecessary(key, def, trigger) {
            return futures::future::ready(outcome).boxed().shared();
        }
        let engine = self.clone();
        let owned_key = key.to_string();
        let task =
            tokio::spawn(
                async move { engine.run_generation(owned_key, def, params, trigger).await },
            );
        let generation = async move {
            task.await.unwrap_or_else(|join_error| Outcome::Failed {
                kind: FailureKind::Panic,
                message: format!("generation task failed: {join_error}"),
            })
        }
        .boxed()
        .shared();
        inflight.insert(key.to_string(), generation.clone());
        generation
    }

    /// Re-checks, under the in-flight lock, why a request wanted a generation: between its look
    /// at the page and now, another generation may have finished (the page now exists, or is
    /// fresh again). Then that result is the answer and nothing new starts.
    fn made_unnecessary(&self, key: &str, def: &PageDef, trigger: Trigger) -> Option<Outcome> {
        if !matches!(trigger, Trigger::Stale | Trigger::Miss) {
            return None;
        }
        let pages = self.read_pages();
        let state = pages.get(key)?;
        let now = self.clock.now_ms();
        let page = state
            .current
            .as_ref()
            .filter(|p| !p.meta.kind.is_page() || p.html.is_some());
        match (trigger, page) {
            (Trigger::Miss, Some(page)) => Some(Outcome::Generated(page.clone())),
            (Trigger::Stale, Some(page)) if self.is_fresh(page, def, now) => {
                Some(Outcome::Generated(page.clone()))
            }
            (_, _) if now < state.retry_at_ms => Some(Outcome::Failed {
                kind: FailureKind::Error,
                message: "backing off after a failed generation".into(),
            }),
            _ => None,
        }
    }

    async fn run_generation(
        self: Arc<Self>,
        key: String,
        def: &'static PageDef,
        params: Params,
        trigger: Trigger,
    ) -> Outcome {
        // Whatever happens below, the next request may start a new generation.
        let _inflight = InflightGuard {
            engine: &self,
            key: &key,
        };
        let started = Instant::now();
        let loaded = tokio::time::timeout(
            def.timeout(),
            AssertUnwindSafe((def.load)(params.clone())).catch_unwind(),
        )
        .await;
        let result = match loaded {
            Err(_) => Err((
                FailureKind::Timeout,
                format!("loader timed out after {} s", def.timeout().as_secs()),
            )),
            Ok(Err(panic)) => Err((
                FailureKind::Panic,
                format!("loader panicked: {}", panic_message(&*panic)),
            )),
            Ok(Ok(Err(error))) => Err((FailureKind::Error, format!("{error:#}"))),
            Ok(Ok(Ok(generated))) => self.persist(&key, def, params, generated).await,
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(page) => {
                let label = match page.meta.kind {
                    PageKind::NotFound => "not_found",
                    _ => "ok",
                };
                if trigger != Trigger::Build {
                    metrics::regeneration(def.path, label, trigger.as_str(), seconds);
                }
                tracing::debug!(path = %key, route = def.path, trigger = trigger.as_str(), outcome = label, seconds, "generated");
                let mut pages = self.write_pages();
                let state = pages.entry(key.clone()).or_default();
                let replaced = state
                    .current
                    .as_ref()
                    .and_then(|c| c.html.as_ref())
                    .map_or(0, |h| h.len() as u64);
                state.current = Some(page.clone());
                state.failures = 0;
                state.retry_at_ms = 0;
                drop(pages);
                let added = page.html.as_ref().map_or(0, |h| h.len() as u64);
                self.hot.admit(&key, added, replaced);
                self.evict_over_budget();
                Outcome::Generated(page)
            }
            Err((kind, message)) => {
                if trigger != Trigger::Build {
                    metrics::regeneration(def.path, kind.as_str(), trigger.as_str(), seconds);
                }
                let retry_in = {
                    let mut pages = self.write_pages();
                    let state = pages.entry(key.clone()).or_default();
                    state.failures = state.failures.saturating_add(1);
                    let delay = backoff::delay_after(state.failures, fastrand::f64());
                    state.retry_at_ms = self.clock.now_ms() + delay.as_millis() as u64;
                    if state.current.is_none() {
                        // keep the map free of entries for pages that never existed
                        if trigger == Trigger::Build {
                            pages.remove(&key);
                        }
                    }
                    delay
                };
                tracing::warn!(
                    path = %key,
                    route = def.path,
                    trigger = trigger.as_str(),
                    failure = kind.as_str(),
                    error = %message,
                    retry_in_ms = retry_in.as_millis() as u64,
                    "page generation failed; the previous version (if any) stays in place"
                );
                Outcome::Failed { kind, message }
            }
        }
    }

    /// Renders the document, writes it to the store and returns the new in-memory page.
    async fn persist(
        &self,
        key: &str,
        def: &'static PageDef,
        params: Params,
        generated: Generated,
    ) -> Result<Arc<CachedPage>, (FailureKind, String)> {
        let mut tags: Vec<String> = def.tags.iter().map(|t| t.to_string()).collect();
        let (kind, html) = match generated {
            Generated::Page(body) => {
                for tag in &body.tags {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
                let html = Bytes::from(render::document(
                    &body,
                    key,
                    def.hydrate_export,
                    &self.shell(),
                ));
                let kind = PageKind::Page {
                    etag: etag_of(&html),
                    bytes: html.len() as u64,
                };
                (kind, Some(html))
            }
            Generated::NotFound => (PageKind::NotFound, None),
            Generated::Redirect {
                location,
                permanent,
            } => (
                PageKind::Redirect {
                    location,
                    permanent,
                },
                None,
            ),
        };
        let meta = PageMeta {
            key: key.to_string(),
            route: def.path.to_string(),
            params,
            generated_at_ms: self.clock.now_ms().max(1),
            kind,
            tags,
        };
        let store = self.store.clone();
        let (meta_for_store, html_for_store) = (meta.clone(), html.clone());
        tokio::task::spawn_blocking(move || {
            store.write(&meta_for_store, html_for_store.as_deref())
        })
        .await
        .map_err(|e| (FailureKind::Panic, format!("store task failed: {e}")))?
        .map_err(|e| (FailureKind::Error, format!("could not store the page: {e}")))?;
        Ok(Arc::new(CachedPage { meta, html }))
    }

    fn read_pages(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, PageState>> {
        self.pages.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_pages(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, PageState>> {
        self.pages.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_inflight(&self) -> std::sync::MutexGuard<'_, HashMap<String, SharedGeneration>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct InflightGuard<'a> {
    engine: &'a Engine,
    key: &'a str,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.engine.lock_inflight().remove(self.key);
    }
}

/// How long a stored outcome stays fresh: the page's `revalidate`, except that a remembered
/// not-found is checked again after at most [`NOT_FOUND_RECHECK`].
///
/// ```
/// use isr::{Revalidate, store::PageKind, engine::effective_revalidate};
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::After(300)), Revalidate::After(60));
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::After(5)), Revalidate::After(5));
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::Never), Revalidate::After(60));
/// ```
pub fn effective_revalidate(kind: &PageKind, revalidate: Revalidate) -> Revalidate {
    let recheck = NOT_FOUND_RECHECK.as_secs();
    match (kind, revalidate) {
        (PageKind::NotFound, Revalidate::After(s)) => Revalidate::After(s.min(recheck)),
        (PageKind::NotFound, Revalidate::Never) => Revalidate::After(recheck),
        (_, revalidate) => revalidate,
    }
}

/// The strong etag of some bytes: a quoted hex prefix of their SHA-256.
///
/// ```
/// let etag = isr::engine::etag_of(b"hello");
/// assert_eq!(etag.len(), 34);
/// assert_eq!(etag, isr::engine::etag_of(b"hello"));
/// assert_ne!(etag, isr::engine::etag_of(b"hello!"));
/// ```
pub fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut etag = String::with_capacity(34);
    etag.push('"');
    for b in &digest[..16] {
        etag.push_str(&format!("{b:02x}"));
    }
    etag.push('"');
    etag
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
