//! The engine's side of the shared tier ([`tier`](super::tier)): a generation coordinated with the
//! other instances (lease, wait for the holder, or pull its page), the commit to Redis, other
//! instances' commits applied from the event stream, local pages re-checked after a gap, and
//! write-backs of pages generated while Redis was down.
//!
//! A fresh HIT makes no Redis call, except while this instance knows it may be behind: a page
//! an event announced a newer generation of (the request waits up to
//! [`CATCH_UP_WAIT`] for the pull), or any page committed before a gap in the events that the
//! re-check has not reached yet (one `HGET`, under [`REQUEST_TIMEOUT`]).

use super::generation::{shared_outcome, InflightGuard};
use super::tier::{
    Acquired, Commit, EventSink, Lease, SharedTier, REQUEST_TIMEOUT, TRANSFER_TIMEOUT,
};
use super::{check_body, CachedPage, Engine, FailureKind, Outcome, SharedGeneration, Trigger};
use crate::metrics;
use crate::page::PageDef;
use crate::route::PageKey;
use crate::store::{Mark, PageKind, PageMeta};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long a request for a page known to be behind waits for its pull before it is served
/// from the local tiers.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(1);
/// How often a generation waiting for another instance's lease looks at it again.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Pages whose newer generation is announced but not pulled yet, at most; more start a full
/// re-check instead.
const MAX_BEHIND: usize = 100_000;
/// Keys per pipelined generation check of the re-check.
const RESYNC_CHUNK: usize = 256;
/// Pause of the re-check while Redis does not answer.
const RECHECK_RETRY: Duration = Duration::from_secs(1);
/// Pulls running at once for events and re-checks.
const PULLS_AT_ONCE: usize = 8;

/// How many times a removal tries for the page's lease before it gives up (each try waits for
/// the holder's commit or the end of its lease).
const REMOVE_ATTEMPTS: usize = 3;

/// What the engine tracks about its place in the shared tier.
#[derive(Default)]
pub(super) struct SharedState {
    tier: OnceLock<Arc<dyn SharedTier>>,
    /// Keys with an announced generation newer than the local one.
    behind: Mutex<HashMap<PageKey, u64>>,
    behind_count: AtomicUsize,
    /// A re-check after a gap: entries below this version (committed before the gap) are
    /// checked before they are served as HIT. 0: none running.
    recheck_below: AtomicU64,
    rechecked: Mutex<HashSet<PageKey>>,
    recheck_round: AtomicU64,
    /// Pages committed only locally (Redis was down), to write back.
    pending: Mutex<HashSet<PageKey>>,
    writing_back: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a generated page is not committed: a newer version is stored (the commit was fenced).
pub(super) enum Superseded {
    /// Pulled into the local tiers: serve it.
    By(Arc<CachedPage>),
    /// The page table already holds it.
    Kept,
    /// It could not be pulled (the generation fails; the table's version stays).
    Unreadable(std::io::Error),
}

/// How a generation goes on after asking the other instances.
pub(super) enum Coordination {
    /// This instance holds the lease: run the loader, commit with its token.
    Lead(Lease),
    /// Redis is unreachable: run the loader with local single-flight, write back later.
    Alone,
    /// Another instance's page serves: it is in the local tiers now.
    Pulled(Arc<CachedPage>),
}

impl Engine {
    /// Joins the shared tier (when the engine opens: [`crate::EngineBuilder::shared`]): from
    /// now on generations coordinate through it and other instances' commits are applied.
    pub(super) fn join_shared(self: &Arc<Self>, tier: Arc<dyn SharedTier>) {
        if self.shared.tier.set(tier.clone()).is_ok() {
            let sink: Arc<dyn EventSink> = self.clone();
            tier.follow_events(Arc::downgrade(&sink));
            // Pages committed or marked while this instance was away (once the page table
            // is whole: a table still filling is re-checked when it is).
            if self.is_loaded() {
                self.start_recheck();
            }
        }
    }

    /// Re-checks every local page against the shared tier, if any (see `start_recheck`).
    pub(super) fn recheck_shared(self: &Arc<Self>) {
        if self.shared_tier().is_some() {
            self.start_recheck();
        }
    }

    /// Applies marks another instance made: each page stored here whose version was generated
    /// before its mark gets it (page table and store).
    async fn apply_marks(self: &Arc<Self>, marks: Vec<(String, Mark)>) {
        let marks: Vec<(PageKey, Mark)> = marks
            .into_iter()
            .filter_map(|(key, mark)| Some((self.routes.page_of_key(&key)?.1, mark)))
            .collect();
        self.mark_local(&marks, true).await;
    }

    pub(super) fn shared_tier(&self) -> Option<&Arc<dyn SharedTier>> {
        self.shared.tier.get()
    }

    /// Whether this engine has joined a shared tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// // Opened without `EngineBuilder::shared`.
    /// assert!(!engine.has_shared_tier());
    /// # }
    /// ```
    pub fn has_shared_tier(&self) -> bool {
        self.shared.tier.get().is_some()
    }

    /// Whether `key`'s last commit is only local (Redis was unreachable); it is written back
    /// when Redis answers again.
    pub fn is_pending_write_back(&self, key: &PageKey) -> bool {
        lock(&self.shared.pending).contains(key)
    }

    /// Asks the other instances before running `key`'s loader (see [`Coordination`]).
    /// `OnDemand` and `Build` want new data: they wait for a running holder, then regenerate
    /// themselves; `Stale`, `Expired` and `Miss` use a page another instance committed.
    pub(super) async fn coordinate(
        self: &Arc<Self>,
        tier: &Arc<dyn SharedTier>,
        key: &PageKey,
        def: &'static PageDef,
        trigger: Trigger,
    ) -> Coordination {
        let wants_new_data = matches!(trigger, Trigger::OnDemand | Trigger::Build);
        loop {
            let local = self.table.generation(key.as_str());
            let (lease, stored) = match tier.clone().acquire(key).await {
                Err(error) => {
                    tracing::debug!(path = %key, %error, "no lease (Redis unreachable): generating with local single-flight");
                    return Coordination::Alone;
                }
                Ok(Acquired::Lead {
                    lease,
                    stored_generation,
                }) => (Some(lease), stored_generation),
                Ok(Acquired::Held { stored_generation }) => (None, stored_generation),
            };
            if !wants_new_data && stored > local {
                if let Some(page) = self.pull_usable(key, def, trigger).await {
                    return Coordination::Pulled(page);
                }
            }
            match lease {
                Some(lease) => return Coordination::Lead(lease),
                None => self.wait_for_holder(tier.as_ref(), key, stored).await,
            }
        }
    }

    /// Waits until the lease holder of `key` commits (a generation above `stored`) or its
    /// lease ends (released, or expired with its holder).
    async fn wait_for_holder(&self, tier: &dyn SharedTier, key: &PageKey, stored: u64) {
        loop {
            tokio::time::sleep(WAIT_POLL).await;
            match tier.watch(key).await {
                Ok((generation, held)) if generation <= stored && held => continue,
                _ => return,
            }
        }
    }

    /// Pulls `key`; the page if it answers `trigger` (a miss takes any, a stale or expired
    /// page's regeneration only a fresh one).
    async fn pull_usable(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        trigger: Trigger,
    ) -> Option<Arc<CachedPage>> {
        let page = match self.pull_and_commit(key, def, "request").await {
            Ok(page) => page?,
            Err(error) => {
                tracing::debug!(path = %key, %error, "could not pull the page from Redis");
                return None;
            }
        };
        let now = self.clock.now_ms();
        let fresh = super::is_fresh(
            &page.meta.kind,
            page.meta.generated_at_ms,
            def.window(),
            now,
        );
        // Never a version past its `expire`, whatever asked.
        let expired = super::is_expired(
            &page.meta.kind,
            page.meta.generated_at_ms,
            page.meta.valid_until_ms,
            def,
            now,
        );
        ((trigger == Trigger::Miss || fresh) && !expired).then_some(page)
    }

    /// Copies `key` from Redis into the store, page table and hot cache when Redis holds a
    /// newer generation than the table. `Ok(None)`: Redis holds none, or none newer.
    pub(super) async fn pull_and_commit(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        reason: &'static str,
    ) -> std::io::Result<Option<Arc<CachedPage>>> {
        let Some(tier) = self.shared_tier() else {
            return Ok(None);
        };
        let Some(shared) = tier.pull(key).await? else {
            return Ok(None);
        };
        let mut meta = shared.meta;
        if meta.generation <= self.table.generation(key.as_str()) {
            return Ok(None);
        }
        // Its age as the shared tier measured it, on this instance's clock: another instance's
        // clock (ahead or behind) never stretches or shortens its freshness here.
        if let Some(age) = shared.age {
            meta.generated_at_ms = self.clock.now_ms().saturating_sub(age.as_millis() as u64);
        }
        meta.key = key.to_string();
        meta.route = def.path.to_string();
        // A mark this instance holds stays on a version committed before it was made (the
        // table keeps it the same way), written with the row so that a restart keeps it too.
        let local = self
            .table
            .mark_made_after(key.as_str(), meta.generated_at_ms);
        // Redis's mark (kept by the commit when made after the version's loader started) or
        // this instance's own.
        meta.mark = local.or(meta.mark.take());
        let body = match &meta.kind {
            crate::store::PageKind::Page { etag, bytes } => {
                let (etag, bytes, body) = (*etag, *bytes, shared.body);
                let checked = tokio::task::spawn_blocking(move || check_body(body, etag, bytes))
                    .await
                    .map_err(std::io::Error::other)?;
                Some(checked.map_err(|problem| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the shared page disagrees with its metadata: {problem}"),
                    )
                })?)
            }
            _ => None,
        };
        self.store.put(key, meta.clone(), body.clone()).await?;
        let version = self.table.commit(key, def, &meta);
        // Another instance's version replaced what this one made while Redis was down: nothing
        // of this instance's is left to write back.
        lock(&self.shared.pending).remove(key);
        self.negative.remove(key.as_str());
        let page = Arc::new(CachedPage::new(meta, body, version));
        self.make_resident(key, page.clone());
        self.caught_up(key);
        metrics::shared_pull(reason);
        let run = super::LastRun::pulled(shared.origin, self.clock.now_ms(), reason);
        self.runs.record(key, run);
        Ok(Some(page))
    }

    /// Commits a generated page to Redis; returns the metadata to keep locally (with the
    /// generation Redis gave it), or the page another instance committed meanwhile.
    pub(super) async fn commit_shared(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        lease: Option<Lease>,
        mut meta: PageMeta,
        body: Option<&crate::encoding::Variants>,
        run: LoaderRun,
    ) -> Result<PageMeta, Superseded> {
        let LoaderRun {
            trigger,
            started_at_ms,
        } = run;
        let Some(tier) = self.shared_tier() else {
            return Ok(meta);
        };
        let Some(lease) = lease else {
            lock(&self.shared.pending).insert(key.clone());
            return Ok(meta);
        };
        match tier
            .commit(
                lease.token(),
                &meta,
                body,
                // A build keeps Redis's version of an unchanged page, unless the version says
                // when it stops being valid (that time may have moved: Redis must get it).
                trigger == Trigger::Build && meta.valid_until_ms.is_none(),
                self.age_of(&meta),
                started_at_ms,
            )
            .await
        {
            Ok(Commit::Written { generation, mark }) => {
                lease.released_by_commit();
                lock(&self.shared.pending).remove(key);
                meta.generation = generation;
                // A mark made (anywhere) after this loader started stays on the version.
                meta.mark = mark;
                Ok(meta)
            }
            Ok(Commit::Unchanged { stored_generation }) => {
                lease.released_by_commit();
                lock(&self.shared.pending).remove(key);
                meta.generation = stored_generation;
                Ok(meta)
            }
            Ok(Commit::Rejected { stored_generation }) => {
                drop(lease);
                tracing::warn!(path = %key, stored_generation, "commit refused: another instance committed a newer version while this one's lease had expired; keeping the newer version");
                match self.pull_and_commit(key, def, "fenced").await {
                    Ok(Some(page)) => Err(Superseded::By(page)),
                    // Nothing newer than the table's: this instance has the newer version.
                    Ok(None) => Err(Superseded::Kept),
                    Err(error) => Err(Superseded::Unreadable(error)),
                }
            }
            Err(error) => {
                drop(lease);
                tracing::warn!(path = %key, %error, "could not write the page to Redis; serving it from this instance and writing it back when Redis answers");
                lock(&self.shared.pending).insert(key.clone());
                Ok(meta)
            }
        }
    }

    /// Tells Redis, and through its event stream every other instance, that `key` (of the
    /// route `route`) is no page any more: a build no longer lists it. A tombstone is committed
    /// under the page's lease, newer than what Redis holds, so an instance that then misses the
    /// page (one started later on an empty site root included) pulls the tombstone and answers
    /// 404 without running its loader. Best effort: while Redis is unreachable the removal stays
    /// local (logged); a page Redis never held needs nothing.
    pub(crate) async fn remove_shared(&self, key: &PageKey, route: &str) {
        let Some(tier) = self.shared_tier() else {
            return;
        };
        for _ in 0..REMOVE_ATTEMPTS {
            let (lease, stored_generation) = match tier.clone().acquire(key).await {
                Ok(Acquired::Lead {
                    stored_generation: 0,
                    ..
                }) => return,
                Ok(Acquired::Lead {
                    lease,
                    stored_generation,
                }) => (lease, stored_generation),
                Ok(Acquired::Held { stored_generation }) => {
                    self.wait_for_holder(tier.as_ref(), key, stored_generation)
                        .await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(path = %key, %error, "could not remove the page from Redis (unreachable): other instances keep serving it until they regenerate it");
                    return;
                }
            };
            let tombstone = PageMeta {
                key: key.to_string(),
                route: route.to_owned(),
                generated_at_ms: self.clock.now_ms(),
                generation: stored_generation,
                kind: PageKind::NotFound,
                tags: Vec::new(),
                valid_until_ms: None,
                mark: None,
            };
            match tier
                .commit(
                    lease.token(),
                    &tombstone,
                    None,
                    false,
                    Duration::ZERO,
                    u64::MAX,
                )
                .await
            {
                Ok(Commit::Written { .. } | Commit::Unchanged { .. }) => {
                    lease.released_by_commit();
                    return;
                }
                Ok(Commit::Rejected { .. }) => drop(lease),
                Err(error) => {
                    tracing::warn!(path = %key, %error, "could not remove the page from Redis: other instances keep serving it until they regenerate it");
                    return;
                }
            }
        }
        tracing::warn!(path = %key, "could not remove the page from Redis (its lease stayed taken)");
    }

    /// Starts pulling `key` as its in-flight generation (so a local generation and a pull of
    /// the same page never overlap). `None` when a generation of `key` is already running.
    fn start_pull(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        reason: &'static str,
    ) -> Option<SharedGeneration> {
        let mut inflight = self.lock_inflight();
        if inflight.contains_key(key.as_str()) {
            return None;
        }
        let engine = self.clone();
        let owned_key = key.clone();
        let task = self.spawn_background(async move {
            let _inflight = InflightGuard {
                engine: &engine,
                key: &owned_key,
            };
            match engine.pull_and_commit(&owned_key, def, reason).await {
                Ok(Some(page)) => Outcome::Generated(page),
                Ok(None) => {
                    engine.forget_behind(&owned_key);
                    Outcome::Failed {
                        kind: FailureKind::Error,
                        message: "Redis holds no newer version".into(),
                    }
                }
                Err(error) => {
                    tracing::debug!(path = %owned_key, %error, "could not pull the page from Redis");
                    Outcome::Failed {
                        kind: FailureKind::StoreError,
                        message: error.to_string(),
                    }
                }
            }
        });
        let pull = shared_outcome(task, "pull");
        inflight.insert(key.clone(), pull.clone());
        Some(pull)
    }

    /// For a path this instance has no page for and would answer 404: the page another
    /// instance committed, if any. A path Redis does not hold either is remembered as not
    /// found (bounded memory, [`super::NOT_FOUND_RECHECK`] at most; an event for it clears
    /// that), so a flood of unknown paths costs Redis one lookup per path, not per request.
    pub(super) async fn pull_unknown(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
    ) -> Option<Arc<CachedPage>> {
        self.shared_tier()?;
        let running = self.lock_inflight().get(key.as_str()).cloned();
        let pull = running.or_else(|| self.start_pull(key, def, "request"))?;
        match pull.await {
            Outcome::Generated(page) => Some(page),
            Outcome::Failed {
                kind: FailureKind::Error,
                ..
            } => {
                let now = self.clock.now_ms();
                self.negative.insert(
                    key.clone(),
                    super::negative::Remembered::NotFound {
                        until_ms: self.clock.monotonic_ms()
                            + super::NOT_FOUND_RECHECK.as_millis() as u64,
                        generated_at_ms: now,
                        valid_until_ms: None,
                    },
                );
                None
            }
            // Redis unreachable: nothing is learnt; the next request asks again (the
            // breaker keeps that cheap while Redis is down).
            Outcome::Failed { .. } => None,
        }
    }

    /// Before a stored page is served: if this instance may be behind on it (an announced
    /// newer generation, or a re-check after a gap that has not reached it), catch up first,
    /// within [`CATCH_UP_WAIT`]; on any failure the local version is served.
    pub(super) async fn catch_up(self: &Arc<Self>, key: &PageKey, def: &'static PageDef) {
        let Some(tier) = self.shared_tier() else {
            return;
        };
        let behind = self.shared.behind_count.load(Ordering::Acquire) > 0
            && lock(&self.shared.behind).contains_key(key);
        let recheck_below = self.shared.recheck_below.load(Ordering::Acquire);
        let must_check = !behind
            && recheck_below > 0
            && self
                .table
                .version(key.as_str())
                .is_some_and(|v| v < recheck_below)
            && !lock(&self.shared.rechecked).contains(key);
        if !behind && !must_check {
            return;
        }
        if must_check {
            let newer = match tier
                .generations(std::slice::from_ref(key), REQUEST_TIMEOUT)
                .await
            {
                Ok(found) => found[0].generation > self.table.generation(key.as_str()),
                Err(_) => return,
            };
            lock(&self.shared.rechecked).insert(key.clone());
            if !newer {
                return;
            }
        }
        let running = self.lock_inflight().get(key.as_str()).cloned();
        if let Some(pull) = running.or_else(|| self.start_pull(key, def, "request")) {
            let _ = tokio::time::timeout(CATCH_UP_WAIT, pull).await;
        }
    }

    /// Forgets that `key` is behind (Redis holds nothing newer than the table).
    fn forget_behind(&self, key: &PageKey) {
        if self.shared.behind_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut behind = lock(&self.shared.behind);
        behind.remove(key);
        self.shared
            .behind_count
            .store(behind.len(), Ordering::Release);
    }

    /// Forgets that `key` is behind once the table has the announced generation.
    pub(super) fn caught_up(&self, key: &PageKey) {
        if self.shared.behind_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut behind = lock(&self.shared.behind);
        if let Some(&announced) = behind.get(key) {
            if self.table.generation(key.as_str()) >= announced {
                behind.remove(key);
                self.shared
                    .behind_count
                    .store(behind.len(), Ordering::Release);
            }
        }
    }

    /// Re-checks every local page against Redis in pipelined chunks, pulling the ones Redis
    /// holds a newer generation of. Until it finishes, a request checks its page first.
    fn start_recheck(self: &Arc<Self>) {
        let Some(tier) = self.shared_tier().cloned() else {
            return;
        };
        let round = self.shared.recheck_round.fetch_add(1, Ordering::AcqRel) + 1;
        lock(&self.shared.rechecked).clear();
        self.shared
            .recheck_below
            .store(self.table.next_version(), Ordering::Release);
        let engine = self.clone();
        self.spawn_background(async move {
            let keys = engine.table.keys();
            let total = keys.len();
            let mut pulled = 0usize;
            let mut chunks = keys.chunks(RESYNC_CHUNK);
            let mut next = chunks.next();
            while let Some(chunk) = next {
                if engine.shared.recheck_round.load(Ordering::Acquire) != round {
                    return;
                }
                let generations = match tier.generations(chunk, TRANSFER_TIMEOUT).await {
                    Ok(generations) => generations,
                    Err(error) => {
                        // Until Redis answers, requests check their page themselves (and
                        // are served from the local tiers when that fails).
                        tracing::debug!(%error, "re-check of local pages waits for Redis");
                        tokio::time::sleep(RECHECK_RETRY).await;
                        continue;
                    }
                };
                next = chunks.next();
                // Marks made while events were missed, on the versions held here.
                let marks: Vec<(PageKey, Mark)> = chunk
                    .iter()
                    .zip(&generations)
                    .filter_map(|(key, held)| Some((key.clone(), held.mark.clone()?)))
                    .collect();
                if !marks.is_empty() {
                    engine.mark_local(&marks, true).await;
                }
                let newer: Vec<(&PageKey, &'static PageDef)> = chunk
                    .iter()
                    .zip(generations.iter().map(|held| held.generation))
                    .filter(|(key, generation)| *generation > engine.table.generation(key.as_str()))
                    .filter_map(|(key, _)| {
                        engine
                            .routes
                            .page_of_key(key.as_str())
                            .map(|(def, _)| (key, def))
                    })
                    .collect();
                pulled += newer.len();
                futures::stream::iter(newer)
                    .for_each_concurrent(PULLS_AT_ONCE, |(key, def)| {
                        let engine = engine.clone();
                        async move {
                            if let Some(pull) = engine.start_pull(key, def, "resync") {
                                pull.await;
                            }
                        }
                    })
                    .await;
            }
            if engine.shared.recheck_round.load(Ordering::Acquire) == round {
                engine.shared.recheck_below.store(0, Ordering::Release);
                lock(&engine.shared.rechecked).clear();
                if total > 0 {
                    tracing::info!(
                        pages = total,
                        pulled,
                        "local pages re-checked against Redis"
                    );
                }
            }
        });
    }

    /// Writes back the pages committed only locally while Redis was down; a page Redis holds
    /// a newer generation of is pulled instead.
    fn write_back(self: &Arc<Self>) {
        let Some(tier) = self.shared_tier().cloned() else {
            return;
        };
        if self.shared.writing_back.swap(true, Ordering::AcqRel) {
            return;
        }
        // Keys stay pending until their turn: a pull of a newer version meanwhile takes the key
        // out (`pull_and_commit`), and then nothing of this instance's is written back for it.
        let keys: Vec<PageKey> = lock(&self.shared.pending).iter().cloned().collect();
        let engine = self.clone();
        self.spawn_background(async move {
            for key in keys {
                let Some((def, _)) = engine.routes.page_of_key(key.as_str()) else {
                    lock(&engine.shared.pending).remove(&key);
                    continue;
                };
                // The version to write back, read before the key leaves `pending`: a pull that
                // lands after this has a newer generation, so Redis refuses this stale one.
                let Some(snapshot) = engine.table.snapshot(key.as_str()) else {
                    lock(&engine.shared.pending).remove(&key);
                    continue;
                };
                if !lock(&engine.shared.pending).remove(&key) {
                    continue;
                }
                let meta = snapshot.meta(&key, engine.table.tags(key.as_str()));
                let body = if meta.kind.is_page() {
                    match engine.store.body(&key).await {
                        Ok(body) => body,
                        Err(error) => {
                            tracing::warn!(path = %key, %error, "could not read the page to write it back to Redis");
                            continue;
                        }
                    }
                } else {
                    None
                };
                match tier
                    // Its loader's start is not known: a mark made meanwhile stays.
                    .commit(0, &meta, body.as_ref(), false, engine.age_of(&meta), 0)
                    .await
                {
                    Ok(Commit::Written { generation, .. }) => {
                        // The table follows (the store's row keeps the replaced generation
                        // until the page's next commit: at worst one pull of this same page
                        // after a restart).
                        engine.table.set_generation(key.as_str(), generation);
                        metrics::redis_write_back("written");
                    }
                    Ok(_) => {
                        metrics::redis_write_back("superseded");
                        if let Some(pull) = engine.start_pull(&key, def, "superseded") {
                            pull.await;
                        }
                    }
                    Err(_) => {
                        // Redis went away again: this key and those not reached stay pending.
                        lock(&engine.shared.pending).insert(key);
                        break;
                    }
                }
            }
            engine.shared.writing_back.store(false, Ordering::Release);
        });
    }

    /// How old `meta`'s version is by this instance's clock (what a commit tells the tier).
    fn age_of(&self, meta: &PageMeta) -> Duration {
        Duration::from_millis(self.clock.now_ms().saturating_sub(meta.generated_at_ms))
    }

    /// Keys Redis lists for `tag` (pages any instance committed), routed.
    pub(crate) async fn shared_keys_with_tag(&self, tag: &str) -> std::io::Result<Vec<PageKey>> {
        let Some(tier) = self.shared_tier() else {
            return Ok(Vec::new());
        };
        let keys = tier.keys_with_tag(tag, usize::MAX).await?;
        Ok(keys
            .iter()
            .filter_map(|key| self.routes.page_of_key(key).map(|(_, key)| key))
            .collect())
    }
}

impl EventSink for Engine {
    fn page_changed(self: Arc<Self>, key: &str, generation: u64) {
        let Some((def, key)) = self.routes.page_of_key(key) else {
            return;
        };
        if self.table.generation(key.as_str()) >= generation {
            return;
        }
        {
            let mut behind = lock(&self.shared.behind);
            if behind.len() >= MAX_BEHIND {
                drop(behind);
                self.start_recheck();
                return;
            }
            let known = behind.entry(key.clone()).or_insert(0);
            *known = (*known).max(generation);
            self.shared
                .behind_count
                .store(behind.len(), Ordering::Release);
        }
        // A generation running here ends with a commit or a pull of the newer page; otherwise
        // pull now (its own task), so the next request finds it local.
        let _ = self.start_pull(&key, def, "event");
    }

    fn pages_marked(self: Arc<Self>, marks: Vec<(String, Mark)>) {
        let engine = self.clone();
        self.spawn_background(async move { engine.apply_marks(marks).await });
    }

    fn resync(self: Arc<Self>) {
        self.start_recheck();
    }

    fn reconnected(self: Arc<Self>) {
        self.write_back();
    }
}

/// The loader run a version to commit comes from: what started it, and when (wall clock).
#[derive(Clone, Copy, Debug)]
pub(super) struct LoaderRun {
    pub trigger: Trigger,
    pub started_at_ms: u64,
}
