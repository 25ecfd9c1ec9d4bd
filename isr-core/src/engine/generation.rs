//! One generation of one page: single-flight start, scheduler slot, then loader → render →
//! store write → commit to the page table and hot cache, all under the page's timeout, with
//! any panic caught. Failures back off (monotonic clock) and never replace the old page.

use super::negative::Remembered;
use super::scheduler::Slot;
use super::shared::{Coordination, LoaderRun, Superseded};
use super::tier::Lease;
use super::{
    CachedPage, Engine, FailureKind, Outcome, PurgeKind, StartSlot, Trigger, NOT_FOUND_RECHECK,
};
use crate::backoff;
use crate::encoding::Variants;
use crate::metrics;
use crate::page::{Generated, PageDef, Params};
use crate::route::PageKey;
use crate::store::{Etag, Mark, MarkMode, PageKind, PageMeta};
use bytes::Bytes;
use futures::future::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Failure = (FailureKind, String);

/// How long a request waited for a slot before giving up (the run time of a `busy` outcome).
const MAX_SLOT_WAIT_SECS: f64 = super::MAX_SLOT_WAIT.as_secs_f64();

impl Engine {
    /// Joins the running generation of `key`, or starts one in its own tracked task.
    pub(super) fn start(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        params: Params,
        trigger: Trigger,
        slot: StartSlot,
    ) -> super::SharedGeneration {
        let mut inflight = self.lock_inflight();
        if let Some(running) = inflight.get(key.as_str()) {
            return running.clone();
        }
        if let Some(outcome) = self.made_unnecessary(key, def, trigger) {
            return futures::future::ready(outcome).boxed().shared();
        }
        let engine = self.clone();
        let owned_key = key.clone();
        let task = self.spawn_tracked(async move {
            // Whatever happens below, the next request may start a new generation.
            let _inflight = InflightGuard {
                engine: &engine,
                key: &owned_key,
            };
            let slot = match slot {
                StartSlot::Held(slot) => slot,
                StartSlot::Unlimited => Slot::unlimited(),
                StartSlot::Wait { unknown_route } => match engine.scheduler.slot(unknown_route).await {
                    Some(slot) => slot,
                    None => {
                        tracing::warn!(path = %owned_key, route = def.path, "no generation slot free in time; answering 503");
                        engine.record_run(&owned_key, FailureKind::Busy.as_str(), Some("no generation slot free in time".into()), trigger, MAX_SLOT_WAIT_SECS);
                        return Outcome::Failed {
                            kind: FailureKind::Busy,
                            message: "too many generations running".into(),
                        };
                    }
                },
            };
            let outcome = engine.run(&owned_key, def, params, trigger).await;
            drop(slot);
            outcome
        });
        let generation = shared_outcome(task, "generation");
        inflight.insert(key.clone(), generation.clone());
        generation
    }

    /// Re-checks, under the in-flight lock, why a request wanted a generation: between its look
    /// at the page and now, another generation may have finished (the page now exists, or is
    /// fresh again). Then that result is the answer and nothing new starts.
    fn made_unnecessary(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        trigger: Trigger,
    ) -> Option<Outcome> {
        if !matches!(trigger, Trigger::Stale | Trigger::Expired | Trigger::Miss) {
            return None;
        }
        let mono = self.clock.monotonic_ms();
        let Some(snapshot) = self.table.snapshot(key.as_str()) else {
            return match self.negative.get(key.as_str(), mono) {
                Some(Remembered::NotFound {
                    generated_at_ms,
                    valid_until_ms,
                    ..
                }) if !super::valid_until_reached(valid_until_ms, self.clock.now_ms()) => {
                    Some(Outcome::Generated(Arc::new(super::not_found_page(
                        key,
                        def,
                        generated_at_ms,
                        valid_until_ms,
                    ))))
                }
                Some(Remembered::Failing { retry_at_ms, .. }) if mono < retry_at_ms => {
                    Some(backing_off())
                }
                _ => None,
            };
        };
        let resident = self
            .hot
            .get(key.as_str())
            .filter(|page| page.version == snapshot.version);
        let fresh = super::is_fresh(
            &snapshot.kind,
            snapshot.generated_at_ms,
            def.window(),
            self.clock.now_ms(),
        );
        // Past `expire` only a version within it answers (a page that never goes stale by time
        // is "fresh" however old it is).
        let expired = super::is_expired(
            &snapshot.kind,
            snapshot.generated_at_ms,
            snapshot.valid_until_ms,
            def,
            self.clock.now_ms(),
        );
        // A marked version is what the request wants replaced, whatever its age.
        let marked = snapshot.mark.as_ref().map(|mark| mark.mode);
        match (trigger, resident) {
            (Trigger::Miss, Some(page)) => Some(Outcome::Generated(page)),
            (Trigger::Stale, Some(page)) if fresh && marked.is_none() => {
                Some(Outcome::Generated(page))
            }
            (Trigger::Expired, Some(page)) if !expired && marked != Some(MarkMode::Expire) => {
                Some(Outcome::Generated(page))
            }
            _ if mono < snapshot.retry_at_ms => Some(backing_off()),
            _ => None,
        }
    }

    /// Runs one generation under the page's timeout and records its outcome.
    async fn run(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        params: Params,
        trigger: Trigger,
    ) -> Outcome {
        let started = Instant::now();
        let attempt =
            AssertUnwindSafe(self.generate_and_commit(key, def, params, trigger)).catch_unwind();
        let result = match tokio::time::timeout(def.timeout(), attempt).await {
            Err(_) => Err((
                FailureKind::Timeout,
                format!(
                    "generation (loader, render and store write) timed out after {} s",
                    def.timeout().as_secs()
                ),
            )),
            Ok(Err(panic)) => Err((
                FailureKind::Panic,
                format!("panicked: {}", panic_message(&*panic)),
            )),
            Ok(Ok(result)) => result,
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(Made::Pulled(page)) => {
                // Recorded by the pull, with the instance it came from.
                tracing::debug!(path = %key, route = def.path, trigger = trigger.as_str(), "another instance's version is in place");
                Outcome::Generated(page)
            }
            Ok(Made::Generated(page)) => {
                let label = match page.meta.kind {
                    PageKind::NotFound => "not_found",
                    _ => "ok",
                };
                if trigger != Trigger::Build {
                    metrics::regeneration(def.path, label, trigger.as_str(), seconds);
                }
                tracing::debug!(path = %key, route = def.path, trigger = trigger.as_str(), outcome = label, seconds, "generated");
                self.record_run(key, label, None, trigger, seconds);
                Outcome::Generated(page)
            }
            Err((kind, message)) => {
                if trigger != Trigger::Build {
                    metrics::regeneration(def.path, kind.as_str(), trigger.as_str(), seconds);
                }
                let retry_in = self.record_failure(key, trigger);
                self.record_run(key, kind.as_str(), Some(message.clone()), trigger, seconds);
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

    /// Remembers how `key`'s generation ended (for the operator API).
    fn record_run(
        &self,
        key: &PageKey,
        outcome: &'static str,
        error: Option<String>,
        trigger: Trigger,
        seconds: f64,
    ) {
        let instance = self.shared_tier().map(|tier| tier.instance());
        let run = super::LastRun::new(outcome, error, self.clock.now_ms(), trigger, seconds);
        self.runs.record(key, run.by(instance));
    }

    /// Backs `key` off after a failure; returns the delay.
    fn record_failure(&self, key: &PageKey, trigger: Trigger) -> Duration {
        let mono = self.clock.monotonic_ms();
        let jitter = fastrand::f64();
        let mut delay = Duration::ZERO;
        let retry_at = |failures: u32| {
            delay = backoff::delay_after(failures, jitter);
            mono + delay.as_millis() as u64
        };
        if self.table.record_failure(key.as_str(), retry_at).is_none() {
            let (failures, known) = self.negative.failures(key.as_str());
            let failures = failures.saturating_add(1);
            delay = backoff::delay_after(failures, jitter);
            self.negative.insert(
                key.clone(),
                Remembered::Failing {
                    failures,
                    retry_at_ms: mono + delay.as_millis() as u64,
                    // A request names any path it likes; the build and on-demand work name
                    // the site's own.
                    known: known || trigger != Trigger::Miss,
                },
            );
        }
        delay
    }

    /// Lease (with the shared tier) → loader → render → Redis → store → page table and hot
    /// cache.
    async fn generate_and_commit(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        params: Params,
        trigger: Trigger,
    ) -> Result<Made, Failure> {
        let lease = match self.shared_tier().cloned() {
            None => None,
            Some(tier) => match self.coordinate(&tier, key, def, trigger).await {
                Coordination::Pulled(page) => return Ok(Made::Pulled(page)),
                Coordination::Lead(lease) => Some(lease),
                Coordination::Alone => None,
            },
        };
        // A mark made after this (an invalidation while the loader runs) outlives the version.
        let started_at_ms = self.clock.now_ms();
        let context = self
            .load_context(params)
            .with_query(key.query_params())
            .at(crate::model::key::url_path(key.path()));
        let generated = (def.load)(context)
            .await
            .map_err(|error| (FailureKind::Error, format!("loader: {error}")))?;
        let mut tags: Vec<String> = def.tags.iter().map(|t| t.to_string()).collect();
        let (kind, html, valid_until_ms) = match generated {
            Generated::Page(body) => {
                for tag in &body.tags {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
                let valid_until_ms = body.valid_until_ms;
                let html = Bytes::from(self.documents.write(&body, key.as_str(), def.hydration));
                // Hashing and compressing are CPU work: off the async workers.
                let (etag, variants) = tokio::task::spawn_blocking(move || {
                    (Etag::of(&html), Variants::compress(html))
                })
                .await
                .map_err(|e| (FailureKind::Panic, format!("compressing the page: {e}")))?;
                let kind = PageKind::Page {
                    etag,
                    bytes: variants.identity.len() as u64,
                };
                (kind, Some(variants), valid_until_ms)
            }
            Generated::Body {
                bytes,
                tags: added,
                valid_until_ms,
            } => {
                for tag in added {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                let compress = crate::encoding::compressible(def.response_type());
                let (etag, variants) = tokio::task::spawn_blocking(move || {
                    let variants = if compress {
                        Variants::compress(bytes)
                    } else {
                        Variants::identity_only(bytes)
                    };
                    (Etag::of(&variants.identity), variants)
                })
                .await
                .map_err(|e| (FailureKind::Panic, format!("compressing the body: {e}")))?;
                let kind = PageKind::Page {
                    etag,
                    bytes: variants.identity.len() as u64,
                };
                (kind, Some(variants), valid_until_ms)
            }
            Generated::NotFound => (PageKind::NotFound, None, None),
            Generated::NotYet { until_ms } => (PageKind::NotFound, None, Some(until_ms)),
            Generated::Redirect {
                location,
                permanent,
            } => (
                PageKind::Redirect {
                    location,
                    permanent,
                },
                None,
                None,
            ),
        };
        // A version's time only grows (a clock set back must not make a page look older than
        // the version it replaces); which version is newer is the shared generation's job.
        let generated_at_ms = self.clock.now_ms().max(
            self.table
                .snapshot(key.as_str())
                .map_or(0, |previous| previous.generated_at_ms + 1),
        );
        // A time at or before the generation's end counts as `MIN_VALIDITY` after it: expired
        // soon, never regenerated in a loop.
        let valid_until_ms = valid_until_ms.map(|at| {
            at.max(generated_at_ms.saturating_add(super::MIN_VALIDITY.as_millis() as u64))
        });
        let listed = trigger == Trigger::Build;
        let stored = self.table.contains(key.as_str());
        let variant = key.query().is_some();
        // A new variant past its page's `max_variants` (other variants were committed while
        // its loader ran): not stored, a 404 like one asked for after them.
        let new_variant = variant && !stored && kind != PageKind::NotFound;
        let reservation = new_variant
            .then(|| VariantPlace::take(self, key.path(), def.query.max_variants))
            .flatten();
        let over_budget = new_variant && reservation.is_none();
        if over_budget || (kind == PageKind::NotFound && !listed && (!stored || variant)) {
            if variant && stored {
                // A variant its loader no longer finds is forgotten, like a path that never
                // existed: its place under `max_variants` is free again.
                self.forget_variant(key, def).await;
            }
            // A path that never existed: remembered in bounded memory, never written to disk.
            // (A path the app's own `paths` listed is stored: the app bounds that list.)
            // Trusted until its recheck, or until the time the page may exist if sooner.
            let recheck = super::effective_revalidate(&kind, def.window())
                .seconds()
                .map_or(NOT_FOUND_RECHECK, Duration::from_secs)
                .min(Duration::from_millis(
                    valid_until_ms.map_or(u64::MAX, |at| at.saturating_sub(generated_at_ms)),
                ));
            self.negative.insert(
                key.clone(),
                Remembered::NotFound {
                    until_ms: self.clock.monotonic_ms() + recheck.as_millis() as u64,
                    generated_at_ms,
                    valid_until_ms,
                },
            );
            return Ok(Made::Generated(Arc::new(super::not_found_page(
                key,
                def,
                generated_at_ms,
                valid_until_ms,
            ))));
        }
        let meta = PageMeta {
            key: key.to_string(),
            route: def.path.to_string(),
            generated_at_ms,
            // The shared version it replaces: the shared tier gives it the next one; a
            // write-back (the tier was down) is taken only if the tier still holds this one.
            generation: self.table.generation(key.as_str()),
            kind,
            tags,
            valid_until_ms,
            mark: None,
        };
        // The commit (Redis, store, page table, hot cache) is a task of its own: once it has
        // started writing it always finishes and is accounted, even when the generation's
        // timeout fires meanwhile (the store's blocking write cannot be cancelled; before,
        // files and row landed after `Failed { Timeout }` while memory kept the old version).
        let engine = self.clone();
        let page = key.clone();
        self.spawn_tracked(async move {
            let produced = Produced {
                meta,
                html,
                started_at_ms,
            };
            let committed = engine
                .commit_generated(&page, def, lease, produced, trigger)
                .await;
            // The new variant is in the table now (or failed): its place is counted there.
            drop(reservation);
            committed
        })
        .await
        .unwrap_or_else(|join_error| {
            Err((
                FailureKind::Panic,
                format!("committing the page: {join_error}"),
            ))
        })
    }

    /// Drops a stored variant everywhere: page table, memory, store, the shared tier, and the
    /// CDN (told it changed). A store error is logged: the row is gone from memory, and the
    /// next build prunes it.
    async fn forget_variant(self: &Arc<Self>, key: &PageKey, def: &'static PageDef) {
        self.table.remove(key.as_str());
        self.hot.remove(key.as_str());
        if let Err(error) = self.store.remove(key).await {
            tracing::warn!(path = %key, %error, "could not remove a variant that is no longer found from the store");
        }
        self.remove_shared(key, def.path).await;
        // Queued; its confirmation is not awaited (as for a regeneration's change). Gone: hard.
        drop(self.announce_change(key, PurgeKind::Hard));
    }

    /// Redis → store → page table and hot cache, for a generated page.
    async fn commit_generated(
        self: &Arc<Self>,
        key: &PageKey,
        def: &'static PageDef,
        lease: Option<Lease>,
        produced: Produced,
        trigger: Trigger,
    ) -> Result<Made, Failure> {
        let Produced {
            meta,
            html,
            started_at_ms,
        } = produced;
        let meta = match self
            .commit_shared(
                key,
                def,
                lease,
                meta,
                html.as_ref(),
                LoaderRun {
                    trigger,
                    started_at_ms,
                },
            )
            .await
        {
            Ok(meta) => meta,
            // Fenced: another instance's newer version is in place.
            Err(Superseded::By(newer)) => return Ok(Made::Pulled(newer)),
            Err(Superseded::Kept) => return self.current(key).await.map(Made::Pulled),
            Err(Superseded::Unreadable(error)) => {
                return Err((
                    FailureKind::StoreError,
                    format!("a newer version is in Redis but could not be read: {error}"),
                ))
            }
        };
        // A mark made after the loader started stays on the new version (this instance's, or
        // one Redis kept): written with its row.
        let mut meta = meta;
        let local = self.table.mark_made_after(key.as_str(), started_at_ms);
        meta.mark = local.or(meta.mark.take());
        // A build's writes may defer their durability to its final sync; every other
        // generation's write (a request's, during a background rebuild too) is durable now.
        let stored = if trigger == Trigger::Build {
            self.store.put_deferred(key, meta.clone(), html.clone())
        } else {
            self.store.put(key, meta.clone(), html.clone())
        };
        stored.await.map_err(|e| {
            (
                FailureKind::StoreError,
                format!("could not store the page: {e}"),
            )
        })?;
        let before = self.table.snapshot(key.as_str()).map(|s| s.kind);
        let tags_before = self.table.tags(key.as_str());
        let (version, kept_mark) = self.table.commit_generation(key, def, &meta, started_at_ms);
        if let Some(mark) = kept_mark.filter(|kept| meta.mark.as_ref() != Some(&**kept)) {
            // Marked while the row was being written: the new version keeps it, on disk too.
            meta.mark = Some(Mark::clone(&mark));
            if let Err(error) = self
                .store
                .set_marks(vec![(key.clone(), meta.mark.clone())])
                .await
            {
                tracing::warn!(path = %key, %error, "could not persist the invalidation mark of the new version; it holds until a restart");
            }
        }
        self.negative.remove(key.as_str());
        // On-demand revalidation announces its pages itself (and waits for the news to go
        // out); a build announces only while requests are served (a background rebuild).
        let announced = matches!(trigger, Trigger::Stale | Trigger::Expired | Trigger::Miss)
            || (trigger == Trigger::Build && self.is_serving());
        // Other bytes, or the same bytes under other tags (the CDN indexed the old ones).
        let tag_set = |tags: &[String]| -> std::collections::BTreeSet<String> {
            tags.iter().cloned().collect()
        };
        let changed =
            before.as_ref() != Some(&meta.kind) || tag_set(&tags_before) != tag_set(&meta.tags);
        if announced && changed {
            drop(self.announce_change(key, PurgeKind::for_kind(&meta.kind)));
        }
        let page = Arc::new(CachedPage::new(meta, html, version));
        self.make_resident(key, page.clone());
        self.caught_up(key);
        Ok(Made::Generated(page))
    }
}

impl Engine {
    /// The version the page table holds of `key` (after a fenced commit found it newer).
    async fn current(&self, key: &PageKey) -> Result<Arc<CachedPage>, Failure> {
        let unreadable = |why: String| (FailureKind::StoreError, why);
        let snapshot = self
            .table
            .snapshot(key.as_str())
            .ok_or_else(|| unreadable("the newer version left the page table".into()))?;
        match self.resident_or_read(key, snapshot, None).await {
            Ok(Some((page, _))) => Ok(page),
            Ok(None) => Err(unreadable("the newer version's body is missing".into())),
            Err(error) => Err(unreadable(format!("reading the newer version: {error}"))),
        }
    }
}

/// Where a generation's page came from.
enum Made {
    /// This instance ran the loader.
    Generated(Arc<CachedPage>),
    /// Another instance's commit (pulled from the shared tier): no loader ran here.
    Pulled(Arc<CachedPage>),
}

/// The outcome of `task` (a generation or a pull), for every request that joins it; a task
/// that panicked outside its own catch is a failed generation.
pub(super) fn shared_outcome(
    task: tokio::task::JoinHandle<Outcome>,
    what: &'static str,
) -> super::SharedGeneration {
    async move {
        task.await.unwrap_or_else(|join_error| Outcome::Failed {
            kind: FailureKind::Panic,
            message: format!("{what} task failed: {join_error}"),
        })
    }
    .boxed()
    .shared()
}

fn backing_off() -> Outcome {
    Outcome::Failed {
        kind: FailureKind::Error,
        message: "backing off after a failed generation".into(),
    }
}

pub(super) struct InflightGuard<'a> {
    pub engine: &'a Engine,
    pub key: &'a PageKey,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.engine.lock_inflight().remove(self.key.as_str());
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// A place under a page's `max_variants` taken for a new variant while it is committed
/// ([`PageTable::reserve_variant`](super::table::PageTable)); given back when dropped.
struct VariantPlace {
    engine: Arc<Engine>,
    path: String,
}

impl VariantPlace {
    fn take(engine: &Arc<Engine>, path: &str, max: usize) -> Option<Self> {
        engine
            .table
            .reserve_variant(path, max)
            .then(|| VariantPlace {
                engine: engine.clone(),
                path: path.to_owned(),
            })
    }
}

impl Drop for VariantPlace {
    fn drop(&mut self) {
        self.engine.table.release_variant(&self.path);
    }
}

/// What one loader run produced, to commit.
struct Produced {
    meta: PageMeta,
    html: Option<Variants>,
    /// When the loader started (wall clock): a mark made after it stays on the version.
    started_at_ms: u64,
}
