//! On-demand revalidation by path and by tag: the logic behind `POST /_isr/revalidate` and
//! [`revalidate_path`] / [`revalidate_tag`].

use crate::engine::{Change, ChangedPage, Engine, Outcome, PurgeKind};
use crate::route::{PageKey, Resolved};
use crate::store::{Mark, MarkMode, PageKind};
use futures::FutureExt;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// How many pages one on-demand request regenerates at the same time.
const CONCURRENCY: usize = 8;

/// The JSON body of `POST /_isr/revalidate`.
///
/// ```
/// let req: isr::RevalidateRequest = serde_json::from_str(r#"{"tags":["posts"]}"#).unwrap();
/// assert_eq!(req.tags, vec!["posts".to_string()]);
/// assert!(req.paths.is_empty());
/// assert_eq!(req.mode, isr::revalidate::InvalidationMode::Auto);
/// let req: isr::RevalidateRequest = serde_json::from_str(r#"{"paths":["/a"],"mode":"expire"}"#).unwrap();
/// assert_eq!(req.mode, isr::revalidate::InvalidationMode::Expire);
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RevalidateRequest {
    /// Page paths to regenerate, e.g. `/blog/hello`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags whose pages to regenerate.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What happens to the pages named (default [`InvalidationMode::Auto`]).
    #[serde(default)]
    pub mode: InvalidationMode,
    /// How the CDNs drop their copies (default [`PurgeKind::Soft`]: marked stale, served
    /// while they refetch). Mode `expire` and pages that no longer exist are always purged
    /// hard.
    #[serde(default)]
    pub purge: PurgeKind,
    /// When to answer: once isr has the new versions (default), or once the CDN in front
    /// serves them too ([`Wait::Edge`], the server's `--cdn-url`).
    #[serde(default)]
    pub wait: Wait,
    /// With [`Wait::Edge`]: the longest wait for the edge, in seconds (default
    /// [`EDGE_WAIT_DEFAULT_SECONDS`], at most [`EDGE_WAIT_MAX_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
}

/// What an on-demand revalidation's answer waits for.
///
/// ```
/// let req: isr::RevalidateRequest = serde_json::from_str(r#"{"tags":["posts"],"wait":"edge"}"#).unwrap();
/// assert_eq!(req.wait, isr::revalidate::Wait::Edge);
/// assert_eq!(isr::RevalidateRequest::default().wait, isr::revalidate::Wait::Origin);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// isr serves the new versions (every regeneration done, every mark made).
    #[default]
    Origin,
    /// A GET through the CDN serves the new version of every regenerated page (its `ETag`),
    /// or the deadline passed: the answer says how long each page took and which did not
    /// make it.
    Edge,
}

/// The wait for the edge unless the request says otherwise.
pub const EDGE_WAIT_DEFAULT_SECONDS: u64 = 30;

/// The longest wait for the edge a request may ask for.
pub const EDGE_WAIT_MAX_SECONDS: u64 = 300;

impl RevalidateRequest {
    /// The edge deadline of this request (with [`Wait::Edge`]).
    ///
    /// ```
    /// let req = isr::RevalidateRequest { wait_seconds: Some(9_999), ..Default::default() };
    /// assert_eq!(req.edge_deadline().as_secs(), isr::revalidate::EDGE_WAIT_MAX_SECONDS);
    /// ```
    pub fn edge_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.wait_seconds
                .unwrap_or(EDGE_WAIT_DEFAULT_SECONDS)
                .min(EDGE_WAIT_MAX_SECONDS),
        )
    }
}

impl RevalidateRequest {
    /// How the CDNs drop the pages this request reaches that still exist.
    fn purge_kind(&self) -> PurgeKind {
        match self.mode {
            InvalidationMode::Expire => PurgeKind::Hard,
            _ => self.purge,
        }
    }
}

/// What an invalidation does to the stored pages it names.
///
/// ```
/// use isr::revalidate::InvalidationMode;
/// assert_eq!(InvalidationMode::parse("stale"), Some(InvalidationMode::Stale));
/// assert_eq!(InvalidationMode::default().as_str(), "auto");
/// assert_eq!(InvalidationMode::parse("later"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationMode {
    /// Regenerate every page now and answer when done (a tag of 100,000 pages runs 100,000
    /// loaders).
    Regenerate,
    /// Mark the pages stale: no loader runs now; the next request of each gets the old page
    /// at once and starts its regeneration.
    Stale,
    /// Mark the pages expired: the next request of each waits for the new version
    /// (read-your-own-writes after a CMS save); the CDN is purged of them.
    Expire,
    /// Regenerate now the pages requested lately ([`EngineOptions::recent_requests`](crate::engine::EngineOptions::recent_requests),
    /// 10 minutes by default) and pages never stored (a new page named by its path); mark
    /// the others stale.
    #[default]
    Auto,
}

impl InvalidationMode {
    /// Every mode, as named in the API.
    pub const ALL: [InvalidationMode; 4] = [
        InvalidationMode::Auto,
        InvalidationMode::Regenerate,
        InvalidationMode::Stale,
        InvalidationMode::Expire,
    ];

    /// The name in the API, the CLI and the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationMode::Regenerate => "regenerate",
            InvalidationMode::Stale => "stale",
            InvalidationMode::Expire => "expire",
            InvalidationMode::Auto => "auto",
        }
    }

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

/// What happened to one page.
///
/// ```
/// let r = isr::RevalidationResult { path: "/x".into(), outcome: isr::RevalidationOutcome::NoRoute, error: None, purged: None, shared: None };
/// assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"path":"/x","outcome":"no_route"}"#);
/// let r = isr::RevalidationResult { outcome: isr::RevalidationOutcome::Regenerated, purged: Some(true), ..r };
/// assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"path":"/x","outcome":"regenerated","purged":true}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevalidationResult {
    /// The page path.
    pub path: String,
    /// What happened.
    pub outcome: RevalidationOutcome,
    /// Why it failed (for `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With CDN purging on (`--cdn-purge`), whether every purge endpoint confirmed the purge of
    /// this page before the answer (`false`: the first attempt failed; it is retried in the
    /// background). Absent without CDN purging, and when the page was not regenerated (an
    /// error or no route: the CDN keeps the page isr keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<bool>,
    /// With the shared tier (`--redis`), whether the new version reached Redis, so the other
    /// instances serve it too (`false`: Redis was unreachable; it is written back when Redis
    /// answers again). Absent without the shared tier, and when the page was not regenerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

/// The outcome of revalidating one page.
///
/// ```
/// assert_eq!(serde_json::to_string(&isr::RevalidationOutcome::NotFound).unwrap(), "\"not_found\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevalidationOutcome {
    /// A new version is in place (a page or a redirect).
    Regenerated,
    /// Marked stale: the next request gets the old version and starts the regeneration.
    MarkedStale,
    /// Marked expired: the next request waits for the new version.
    MarkedExpired,
    /// Not stored, so nothing to mark (mode `stale` or `expire`): its next request generates
    /// it.
    NotStored,
    /// The loader says the page does not exist: it answers 404 now.
    NotFound,
    /// The loader failed; the old page stays.
    Error,
    /// No page route matches the path.
    NoRoute,
}

/// A request that would wait for more pages than this (regenerations, and with a CDN the
/// purges of pages marked by their path, plus one for the tags) is answered `202 Accepted` at
/// once and finishes in the background.
pub const MAX_AWAITED_PAGES: usize = 1_000;

/// What an on-demand request got.
///
/// ```
/// let done = isr::revalidate::Revalidation::Accepted { accepted: 5_000 };
/// assert!(matches!(done, isr::revalidate::Revalidation::Accepted { accepted: 5_000 }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revalidation {
    /// Every page was regenerated before answering: one result per page, in request order.
    Done(Vec<RevalidationResult>),
    /// More than [`MAX_AWAITED_PAGES`] pages: this many are being regenerated in the background.
    Accepted {
        /// Number of targets: the requested paths (routed or not) plus the tags' pages.
        accepted: usize,
    },
}

/// One page to revalidate: a requested path (routed like a request) or a key of the tag index
/// (already decoded: never decoded again), with what named it (`path /x`, `tag posts`).
enum Target {
    Key(PageKey, String, Reach),
    NoRoute(String),
}

/// How a revalidation reached a page, which says how the CDNs are told: a page named by its
/// path is purged on its own as soon as it is done; the pages of the tags are purged together,
/// by the tags, once all of them are done.
#[derive(Clone, Debug)]
enum Reach {
    Path,
    /// With the tags the page carried when it was reached, when the page table knew them.
    Tag(Option<Vec<String>>),
}

/// What happens to one target.
enum Action {
    Regenerate(PageKey, Reach),
    /// Marked (`Some`: the key was stored and is marked now) or not stored (`None`), with
    /// the store's error when the mark could not be persisted.
    Marked(PageKey, Option<MarkMode>, Option<String>, Reach),
    NoRoute(String),
}

/// The pages `request` names, each once: paths first, then the pages carrying each tag now.
/// Runs on the blocking pool (a tag may name 100,000 pages).
async fn targets(engine: &Arc<Engine>, request: &RevalidateRequest) -> Vec<Target> {
    // While the page table still fills at start-up, the store's tag index names the pages not
    // loaded yet.
    let mut stored: HashMap<String, Vec<PageKey>> = HashMap::new();
    if !engine.is_loaded() {
        for tag in &request.tags {
            if stored.contains_key(tag) {
                continue;
            }
            let keys = engine.stored_keys_with_tag(tag).await.unwrap_or_else(|error| {
                tracing::warn!(%tag, %error, "could not read the store's tag index; revalidating the pages loaded so far");
                Vec::new()
            });
            stored.insert(tag.clone(), keys);
        }
    }
    // With the shared tier, Redis's tag sets name the pages other instances committed.
    for tag in &request.tags {
        match engine.shared_keys_with_tag(tag).await {
            Ok(keys) => stored.entry(tag.clone()).or_default().extend(keys),
            Err(error) => {
                tracing::warn!(%tag, %error, "could not read Redis's tag index; revalidating the pages this instance knows")
            }
        }
    }
    let engine = engine.clone();
    let request = request.clone();
    tokio::task::spawn_blocking(move || {
        let mut seen: HashSet<PageKey> = HashSet::new();
        let mut targets = Vec::new();
        for path in &request.paths {
            let path = path.split('#').next().unwrap_or_default();
            let page_path = path.split('?').next().unwrap_or_default();
            let canonical = if page_path.len() > 1 {
                page_path.trim_end_matches('/')
            } else {
                page_path
            };
            // Any spelling of a variant (`?page=02`, `?page=1` for the default) names the page
            // a request for it would be sent to.
            let resolved = engine.routes().resolve_url(path);
            match resolved {
                Resolved::Page { key, def, .. } => {
                    // A page's path names its variants too (`/blog` → `/blog?page=2`, …: those
                    // this instance holds; tags reach every instance's), a variant's only
                    // itself.
                    let variants = if key.query().is_none() && def.query.has_variants() {
                        engine.table.variants_of(key.path())
                    } else {
                        Vec::new()
                    };
                    for key in std::iter::once(key).chain(variants) {
                        if seen.insert(key.clone()) {
                            targets.push(Target::Key(
                                key,
                                format!("path {canonical}"),
                                Reach::Path,
                            ));
                        }
                    }
                }
                _ => targets.push(Target::NoRoute(canonical.to_string())),
            }
        }
        let mut seen_tags: HashSet<&str> = HashSet::new();
        for tag in request.tags.iter().filter(|t| seen_tags.insert(t.as_str())) {
            let from_store = stored.remove(tag.as_str()).unwrap_or_default();
            for key in engine.keys_with_tag(tag).into_iter().chain(from_store) {
                if seen.insert(key.clone()) {
                    let tags = engine.table.tags(key.as_str());
                    let tags = (!tags.is_empty()).then_some(tags);
                    targets.push(Target::Key(key, format!("tag {tag}"), Reach::Tag(tags)));
                }
            }
        }
        targets
    })
    .await
    .unwrap_or_default()
}

/// Regenerates every page named by `request` (paths, then the pages carrying each tag), each
/// once, at most `CONCURRENCY` at a time, and reports each once, in request order. The work
/// runs as tracked background work: it finishes even when the caller stops waiting.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// let req = isr::RevalidateRequest { paths: vec!["/blog/hello".into(), "/nowhere".into()], ..Default::default() };
/// let results = isr::revalidate::revalidate(&engine, &req).await;
/// assert_eq!(results[0].outcome, isr::RevalidationOutcome::Regenerated);
/// assert_eq!(results[1].outcome, isr::RevalidationOutcome::NoRoute);
/// # }
/// ```
pub async fn revalidate(
    engine: &Arc<Engine>,
    request: &RevalidateRequest,
) -> Vec<RevalidationResult> {
    match start(engine, request, usize::MAX).await {
        Revalidation::Done(results) => results,
        Revalidation::Accepted { .. } => Vec::new(),
    }
}

/// Like [`revalidate`], but answers [`Revalidation::Accepted`] without waiting when the request
/// would wait for more than `max_awaited` pages: regenerations, with a CDN the purge of each
/// page marked by its path, and one purge for all the pages of the tags (the webhook uses
/// [`MAX_AWAITED_PAGES`]). Marks are made before it answers, however many.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// engine.request("/blog/a").await;
/// engine.request("/blog/b").await;
/// let req = isr::RevalidateRequest {
///     tags: vec!["example".into()],
///     mode: isr::revalidate::InvalidationMode::Regenerate,
///     ..Default::default()
/// };
/// // Two pages, at most one awaited: the work goes on in the background.
/// let answer = isr::revalidate::start(&engine, &req, 1).await;
/// assert!(matches!(answer, isr::revalidate::Revalidation::Accepted { .. }), "{answer:?}");
/// // At most 1,000: both are awaited and answered.
/// let answer = isr::revalidate::start(&engine, &req, isr::revalidate::MAX_AWAITED_PAGES).await;
/// let isr::revalidate::Revalidation::Done(results) = answer else { panic!() };
/// assert_eq!(results.len(), 2);
/// # }
/// ```
pub async fn start(
    engine: &Arc<Engine>,
    request: &RevalidateRequest,
    max_awaited: usize,
) -> Revalidation {
    let targets = targets(engine, request).await;
    let count = targets.len();
    let actions = decide(engine, targets, request.mode).await;
    // What the answer would wait for: regenerations, the CDN purges of marks named by their
    // path, and one purge for all the pages of the tags.
    let purges = engine.announces_changes();
    let awaited = actions
        .iter()
        .filter(|action| match action {
            Action::Regenerate(..) => true,
            Action::Marked(_, Some(_), _, Reach::Path) => purges,
            _ => false,
        })
        .count()
        + usize::from(purges && !request.tags.is_empty());
    // Every page to regenerate is queued for this request now, as it arrives (merged with the
    // other requests for it: see `engine::on_demand`); the runs start at most CONCURRENCY at
    // a time. Marked pages are answered as they are (an `expire` mark once its purge went).
    let queued: Vec<_> = actions
        .into_iter()
        .map(|action| match action {
            Action::Regenerate(key, reach) => {
                let run = engine.regenerate_on_demand(&key);
                Queued::Run(key, run.boxed(), reach)
            }
            Action::Marked(key, mode, error, reach) => Queued::Marked(key, mode, error, reach),
            Action::NoRoute(path) => Queued::NoRoute(path),
        })
        .collect();
    let worker = engine.clone();
    let purge = request.purge_kind();
    let tags = unique(&request.tags);
    let work = engine.spawn_tracked(async move {
        let done = futures::stream::iter(queued)
            .map(|queued| {
                let engine = worker.clone();
                async move { finish(&engine, queued, purge).await }
            })
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        purge_tagged(&worker, done, tags, purge).await
    });
    if awaited > max_awaited {
        tracing::info!(
            pages = count,
            awaited,
            "on-demand revalidation accepted; regenerating in the background"
        );
        return Revalidation::Accepted { accepted: count };
    }
    Revalidation::Done(work.await.unwrap_or_default())
}

/// A target's work, queued in request order.
enum Queued {
    Run(
        PageKey,
        futures::future::BoxFuture<'static, Option<Outcome>>,
        Reach,
    ),
    Marked(PageKey, Option<MarkMode>, Option<String>, Reach),
    NoRoute(String),
}

/// One target's result, and the page the tags' purge still has to reach (a page reached by a
/// tag that changed: regenerated, now not found, or marked).
type Done = (RevalidationResult, Option<ChangedPage>);

/// Runs one target's work. A page reached by its path is purged now (the answer waits for
/// the first delivery); a page reached by a tag is left to [`purge_tagged`].
async fn finish(engine: &Arc<Engine>, queued: Queued, purge: PurgeKind) -> Done {
    match queued {
        Queued::NoRoute(path) => (result_for(path, None), None),
        Queued::Marked(key, mode, error, reach) => match reach {
            Reach::Path => (marked_result(engine, key, mode, error, purge).await, None),
            Reach::Tag(tags) => {
                let changed = mode.map(|_| ChangedPage {
                    key: key.clone(),
                    tags,
                });
                (marked(key, mode, error, None), changed)
            }
        },
        Queued::Run(key, run, reach) => {
            let outcome = run.await;
            let gone = match &outcome {
                Some(Outcome::Generated(page)) => Some(PurgeKind::for_kind(&page.meta.kind)),
                _ => None,
            };
            let shared = match &outcome {
                Some(Outcome::Generated(_)) if engine.has_shared_tier() => {
                    Some(!engine.is_pending_write_back(&key))
                }
                _ => None,
            };
            let (purged, changed) = match (gone, reach) {
                (None, _) => (None, None),
                // The new version is in place: now the CDN may fetch it.
                (Some(kind), Reach::Path) => {
                    let kind = kind.max(purge);
                    match engine.announce_change(&key, kind) {
                        Some(delivered) => (Some(delivered.await), None),
                        None => (None, None),
                    }
                }
                (Some(_), Reach::Tag(tags)) => (
                    None,
                    Some(ChangedPage {
                        key: key.clone(),
                        tags,
                    }),
                ),
            };
            let result = RevalidationResult {
                purged,
                shared,
                ..result_for(key.to_string(), outcome)
            };
            (result, changed)
        }
    }
}

/// Purges the pages the tags reached, together: one change naming the tags (a CDN with tags
/// purges each tag once; one without purges the pages' paths), and the pages now not found
/// hard, by their paths. Fills in `purged` of those results once the first delivery went.
async fn purge_tagged(
    engine: &Arc<Engine>,
    done: Vec<Done>,
    tags: Vec<String>,
    purge: PurgeKind,
) -> Vec<RevalidationResult> {
    let changed: Vec<ChangedPage> = done.iter().filter_map(|(_, c)| c.clone()).collect();
    if changed.is_empty() {
        return done.into_iter().map(|(result, _)| result).collect();
    }
    let gone: Vec<ChangedPage> = done
        .iter()
        .filter(|(result, c)| c.is_some() && result.outcome == RevalidationOutcome::NotFound)
        .filter_map(|(_, c)| c.clone())
        .collect();
    let tag_change = engine.announce(Change {
        pages: changed,
        tags,
        purge,
    });
    let gone_change = (!gone.is_empty())
        .then(|| {
            engine.announce(Change {
                pages: gone,
                tags: Vec::new(),
                purge: PurgeKind::Hard,
            })
        })
        .flatten();
    let delivered = match tag_change {
        None => None,
        Some(delivered) => {
            let gone = async {
                match gone_change {
                    Some(gone) => gone.await,
                    None => true,
                }
            };
            let (tags_went, gone_went) = futures::join!(delivered, gone);
            Some(tags_went && gone_went)
        }
    };
    done.into_iter()
        .map(|(mut result, changed)| {
            let reports_purge = matches!(
                result.outcome,
                RevalidationOutcome::Regenerated
                    | RevalidationOutcome::NotFound
                    | RevalidationOutcome::MarkedExpired
            );
            if changed.is_some() && reports_purge {
                result.purged = delivered;
            }
            result
        })
        .collect()
}

/// `tags` without repeats, in order.
fn unique(tags: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    tags.iter()
        .filter(|tag| seen.insert(tag.as_str()))
        .cloned()
        .collect()
}

/// What `mode` does to each target: regenerations, and marks made now (in the page table, the
/// store and the shared tier, all in one batch), in request order.
async fn decide(engine: &Arc<Engine>, targets: Vec<Target>, mode: InvalidationMode) -> Vec<Action> {
    let now_ms = engine.now_ms();
    let mut actions = Vec::with_capacity(targets.len());
    let mut to_mark: Vec<(PageKey, Mark)> = Vec::new();
    for target in targets {
        let (key, cause, reach) = match target {
            Target::NoRoute(path) => {
                actions.push(Action::NoRoute(path));
                continue;
            }
            Target::Key(key, cause, reach) => (key, cause, reach),
        };
        // While the page table still loads, a page it lacks may be stored all the same.
        let stored = engine.is_stored(&key) || !engine.is_loaded();
        let mark = match mode {
            InvalidationMode::Regenerate => None,
            InvalidationMode::Stale => Some(MarkMode::Stale),
            InvalidationMode::Expire => Some(MarkMode::Expire),
            InvalidationMode::Auto if !stored || engine.recently_requested(&key) => None,
            InvalidationMode::Auto => Some(MarkMode::Stale),
        };
        match mark {
            None => actions.push(Action::Regenerate(key, reach)),
            Some(mark) => {
                to_mark.push((key.clone(), Mark::new(mark, now_ms, cause)));
                actions.push(Action::Marked(key, Some(mark), None, reach));
            }
        }
    }
    if to_mark.is_empty() {
        return actions;
    }
    let (marked, error) = engine.mark_pages(to_mark).await;
    let marked: HashSet<PageKey> = marked.into_iter().collect();
    for action in &mut actions {
        if let Action::Marked(key, mode, failed, _) = action {
            if marked.contains(key) {
                failed.clone_from(&error);
            } else {
                // Not stored (or no longer): nothing was marked.
                *mode = None;
            }
        }
    }
    actions
}

/// The result of a marked page. Its mark is announced like a change (the CDN purges it, so
/// that its next request reaches isr and gets what the mark says), and answered once that
/// first delivery went (so a large invalidation fills the purge queue no faster than it
/// drains; `purged` says so for an `expire` mark, whose next request must see the new
/// version).
async fn marked_result(
    engine: &Arc<Engine>,
    key: PageKey,
    mode: Option<MarkMode>,
    error: Option<String>,
    purge: PurgeKind,
) -> RevalidationResult {
    // An `expire` mark is purged hard (`purge` says so): its next request must reach isr.
    let announced = mode.and_then(|_| engine.announce_change(&key, purge));
    let purged = match announced {
        Some(delivered) => Some(delivered.await),
        None => None,
    };
    marked(key, mode, error, purged)
}

/// The result of a marked page, with `purged` reported for an `expire` mark only.
fn marked(
    key: PageKey,
    mode: Option<MarkMode>,
    error: Option<String>,
    purged: Option<bool>,
) -> RevalidationResult {
    let (outcome, purged) = match mode {
        None => (RevalidationOutcome::NotStored, None),
        Some(MarkMode::Stale) => (RevalidationOutcome::MarkedStale, None),
        Some(MarkMode::Expire) => (RevalidationOutcome::MarkedExpired, purged),
    };
    RevalidationResult {
        path: key.to_string(),
        outcome,
        error,
        purged,
        shared: None,
    }
}

/// How many results have each outcome: what an answer says per mode (`regenerated`,
/// `marked_stale`, `marked_expired`, …), outcomes with no page left out.
///
/// ```
/// use isr::{RevalidationOutcome, RevalidationResult};
/// let result = |outcome| RevalidationResult { path: "/x".into(), outcome, error: None, purged: None, shared: None };
/// let counts = isr::revalidate::counts(&[result(RevalidationOutcome::Regenerated), result(RevalidationOutcome::MarkedStale), result(RevalidationOutcome::MarkedStale)]);
/// assert_eq!(serde_json::to_string(&counts).unwrap(), r#"{"regenerated":1,"marked_stale":2}"#);
/// ```
pub fn counts(
    results: &[RevalidationResult],
) -> std::collections::BTreeMap<RevalidationOutcome, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for result in results {
        *counts.entry(result.outcome).or_default() += 1;
    }
    counts
}

fn result_for(path: String, outcome: Option<Outcome>) -> RevalidationResult {
    let (outcome, error) = match outcome {
        None => (RevalidationOutcome::NoRoute, None),
        Some(Outcome::Generated(page)) => match page.meta.kind {
            PageKind::NotFound => (RevalidationOutcome::NotFound, None),
            _ => (RevalidationOutcome::Regenerated, None),
        },
        // The message names the step (`loader: …`, `could not store the page: …`) and the
        // cause, each once; the path is the result's own field.
        Some(Outcome::Failed { message, .. }) => (RevalidationOutcome::Error, Some(message)),
    };
    RevalidationResult {
        path,
        outcome,
        error,
        purged: None,
        shared: None,
    }
}

/// In-process revalidation of one app's pages: a handle bound to its engine, for apps that
/// change data themselves (an admin API, a loader that learns of a change). Every app gets its
/// own: two apps in one process each revalidate their own pages.
///
/// Where to get it: `App` registers it as state (`State(revalidator): State<isr::Revalidator>`
/// in a loader or `#[paths]` function), adds it to the requests of the app's own routes
/// (`Extension(revalidator): Extension<isr::Revalidator>` in an axum handler), and
/// `App::embed` hands it out (`isr::embed::Embedded::revalidator`). It holds its engine
/// weakly: once the app is gone every call answers [`NotRunning`].
///
/// Not run as a test: it is an axum handler of a running app (the engine tests run the handle
/// itself, two apps in one process).
///
/// ```no_run
/// // An axum handler of the app's own routes, after it changed product 42.
/// use isr::axum::Extension;
/// async fn price_changed(Extension(isr): Extension<isr::Revalidator>) {
///     let result = isr.path("/products/42").await.expect("the app is running");
///     assert_ne!(result.outcome, isr::RevalidationOutcome::NoRoute);
///     isr.tag("catalogue").await.expect("the app is running");
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Revalidator {
    engine: std::sync::Weak<Engine>,
}

impl Revalidator {
    /// The handle of `engine`'s app.
    pub fn of(engine: &Arc<Engine>) -> Self {
        Revalidator {
            engine: Arc::downgrade(engine),
        }
    }

    /// The handle of the engine `engine` points to (made while it is built).
    pub(crate) fn bound_to(engine: std::sync::Weak<Engine>) -> Self {
        Revalidator { engine }
    }

    /// A handle bound to no app: every call answers [`NotRunning`] (what an app's start-up
    /// checks see before its engine exists).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let unbound = isr::Revalidator::unbound();
    /// assert_eq!(unbound.path("/blog").await.unwrap_err(), isr::NotRunning);
    /// # }
    /// ```
    pub fn unbound() -> Self {
        Revalidator {
            engine: std::sync::Weak::new(),
        }
    }

    fn engine(&self) -> Result<Arc<Engine>, NotRunning> {
        self.engine.upgrade().ok_or(NotRunning)
    }

    /// Regenerates the page at `path` now and waits for it.
    ///
    /// # Errors
    /// [`NotRunning`] when the app is gone.
    pub async fn path(&self, path: &str) -> Result<RevalidationResult, NotRunning> {
        Ok(revalidate_one(&self.engine()?, path).await)
    }

    /// Regenerates every page that carries `tag` now and waits for them.
    ///
    /// # Errors
    /// [`NotRunning`] when the app is gone.
    pub async fn tag(&self, tag: &str) -> Result<Vec<RevalidationResult>, NotRunning> {
        let request = RevalidateRequest {
            paths: Vec::new(),
            tags: vec![tag.to_string()],
            mode: InvalidationMode::Regenerate,
            purge: PurgeKind::Soft,
            wait: Default::default(),
            wait_seconds: None,
        };
        Ok(revalidate(&self.engine()?, &request).await)
    }

    /// Invalidates the pages `request` names (paths and tags) in its mode (`auto` unless it
    /// says otherwise: see [`InvalidationMode`]), as the webhook does, and waits for the pages
    /// it regenerates.
    ///
    /// # Errors
    /// [`NotRunning`] when the app is gone.
    pub async fn request(
        &self,
        request: &RevalidateRequest,
    ) -> Result<Vec<RevalidationResult>, NotRunning> {
        Ok(revalidate(&self.engine()?, request).await)
    }
}

static RUNNING: OnceLock<Arc<Engine>> = OnceLock::new();

/// Makes `engine` the target of [`revalidate_path`] and [`revalidate_tag`] (done by
/// `App::run`; the first call wins). Not for new code: prefer each app's [`Revalidator`].
#[doc(hidden)]
pub fn set_running(engine: Arc<Engine>) {
    let _ = RUNNING.set(engine);
}

/// The error of the in-process API when no ISR app is running in this process.
///
/// ```
/// assert!(isr::NotRunning.to_string().contains("not running"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRunning;

impl std::fmt::Display for NotRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the ISR engine is not running in this process (start the app with isr::App)")
    }
}

impl std::error::Error for NotRunning {}

/// Regenerates the page at `path` now and waits for it, in the first app started in this
/// process. Prefer the app's own [`Revalidator`], which targets its app whatever else runs in
/// the process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), isr::NotRunning> {
/// // Before an app runs in this process:
/// assert_eq!(isr::revalidate_path("/blog/hello").await.unwrap_err(), isr::NotRunning);
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// # isr::revalidate::set_running(engine); // what `App::run` does
/// let result = isr::revalidate_path("/blog/hello").await?;
/// assert_eq!(result.outcome, isr::RevalidationOutcome::Regenerated);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`NotRunning`] when no app has started in this process. A failed generation is not an
/// error: it is the result's outcome.
pub async fn revalidate_path(path: &str) -> Result<RevalidationResult, NotRunning> {
    Revalidator::of(RUNNING.get().ok_or(NotRunning)?)
        .path(path)
        .await
}

/// [`revalidate_path`] on `engine`: one result, whatever happens to the work.
pub(crate) async fn revalidate_one(engine: &Arc<Engine>, path: &str) -> RevalidationResult {
    let request = RevalidateRequest {
        paths: vec![path.to_string()],
        tags: Vec::new(),
        mode: InvalidationMode::Regenerate,
        purge: PurgeKind::Soft,
        wait: Default::default(),
        wait_seconds: None,
    };
    let result = revalidate(engine, &request).await.into_iter().next();
    // One path is never "accepted" for later; no result only when the work itself was lost
    // (the runtime shutting down under it): say so instead of panicking.
    result.unwrap_or_else(|| RevalidationResult {
        path: path.to_string(),
        outcome: RevalidationOutcome::Error,
        error: Some("the revalidation was cancelled (the app is shutting down)".into()),
        purged: None,
        shared: None,
    })
}

/// Regenerates every page that carries `tag` now and waits for them, in the first app started
/// in this process. Prefer the app's own [`Revalidator`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), isr::NotRunning> {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// # engine.request("/blog/hello").await;
/// # isr::revalidate::set_running(engine); // what `App::run` does
/// let results = isr::revalidate_tag("example").await?;
/// assert_eq!(results.len(), 1);
/// assert_eq!(results[0].path, "/blog/hello");
/// assert!(isr::revalidate_tag("products").await?.is_empty());
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`NotRunning`] when no app has started in this process. Failed generations are not
/// errors: they are the results' outcomes.
pub async fn revalidate_tag(tag: &str) -> Result<Vec<RevalidationResult>, NotRunning> {
    Revalidator::of(RUNNING.get().ok_or(NotRunning)?)
        .tag(tag)
        .await
}
