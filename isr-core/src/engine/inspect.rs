//! What an operator sees of the engine: every page's state (fresh, stale, regenerating,
//! backing off, not found, missing), its last run, a filtered and paginated listing, and a
//! summary per route. Read-only: nothing here changes a page.
//!
//! Listing cost: one pass over the page table under its read lock (cloning only the matching
//! keys), then one snapshot per returned page; pages are ordered by key, and the cursor is the
//! last key returned, so a page regenerated between two calls never moves in the order.

use super::runs::LastRun;
use super::table::Snapshot;
use super::Engine;
use crate::page::{PageDef, Revalidate};
use crate::route::PageKey;
use crate::store::PageKind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Pages one listing returns at most.
pub const MAX_LIST_LIMIT: usize = 500;
/// Failing pages a summary lists at most.
pub const SUMMARY_FAILING: usize = 100;

/// Where a page stands now.
///
/// ```
/// use isr::engine::PageState;
/// assert_eq!(PageState::parse("backing_off"), Some(PageState::BackingOff));
/// assert_eq!(PageState::BackingOff.as_str(), "backing_off");
/// assert_eq!(PageState::parse("nope"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    /// Within its window.
    Fresh,
    /// Past its window (served as STALE; the next request regenerates it).
    Stale,
    /// Past its `expire` or its loader's `valid_until`: the next request waits for the new
    /// version.
    Expired,
    /// A generation of it is running now.
    Regenerating,
    /// Its last generations failed; no new attempt before `next_regeneration_ms`.
    BackingOff,
    /// Its loader said it does not exist (answered 404).
    NotFound,
    /// Never stored, named by the site (its build's `paths`, on-demand revalidation), and
    /// its generations fail (answered 503). Paths only requests named are not listed (see
    /// [`Summary::unknown_failing`]).
    Missing,
}

impl PageState {
    /// Every state, in display order.
    pub const ALL: [PageState; 7] = [
        PageState::Fresh,
        PageState::Stale,
        PageState::Expired,
        PageState::Regenerating,
        PageState::BackingOff,
        PageState::NotFound,
        PageState::Missing,
    ];

    /// The name used in the API, the CLI and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PageState::Fresh => "fresh",
            PageState::Stale => "stale",
            PageState::Expired => "expired",
            PageState::Regenerating => "regenerating",
            PageState::BackingOff => "backing_off",
            PageState::NotFound => "not_found",
            PageState::Missing => "missing",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<PageState> {
        PageState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Bytes of a page in each stored encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedBytes {
    /// The uncompressed body.
    pub identity: u64,
    /// The gzip variant; `None` when none is stored (a body type that is not compressed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip: Option<u64>,
    /// The brotli variant; `None` when none is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub br: Option<u64>,
}

/// Everything known about one page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PageStatus {
    /// The URL path (percent-encoded where needed).
    pub path: String,
    /// The page's key (its decoded path).
    pub key: String,
    /// Its route pattern.
    pub route: &'static str,
    /// `page`, `not_found`, `redirect`, or `none` (never stored).
    pub kind: &'static str,
    /// Where it stands now.
    pub state: PageState,
    /// When its stored version was generated (ms since the Unix epoch, on this instance's
    /// clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at_ms: Option<u64>,
    /// Its version in the shared tier (`--redis`): a counter raised by one per commit of the
    /// page; `None` when never committed there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Seconds since its stored version was generated (wall clock, rounded down); `None`
    /// when never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
    /// Its window (`None`: never revalidated by time).
    pub revalidate_s: Option<u64>,
    /// Its route's `expire` (the ceiling on a served version's age).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_s: Option<u64>,
    /// Its route's `stale_if_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_if_error_s: Option<u64>,
    /// The time its loader said the stored version stops being valid (ms since the Unix
    /// epoch; `Load::valid_until`, `Load::not_yet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<u64>,
    /// When the stored version expires (ms since the Unix epoch): the sooner of its `expire`
    /// and its `valid_until`; from then on a request waits for the new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// An on-demand invalidation's mark on the stored version (`stale` or `expire`, when, and
    /// the tag or path that named it), until a regeneration replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<crate::store::Mark>,
    /// Backing off: the earliest time (ms since the Unix epoch) a new attempt may start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_regeneration_ms: Option<u64>,
    /// Failed generations in a row.
    pub failures: u32,
    /// Its last generation, when still remembered (see [`crate::engine::RUNS_KEPT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<LastRun>,
    /// The tags it carries: the route's plus its loader's (only the route's when never
    /// stored).
    pub tags: Vec<String>,
    /// The quoted `ETag` of its HTML; `None` unless it is a stored page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The HTML's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes per stored encoding (a single page's details only: it reads the body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encodings: Option<EncodedBytes>,
    /// A redirect's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A listing's filters (all optional) and position.
///
/// ```
/// let query = isr::engine::PageQuery { state: Some(isr::engine::PageState::Stale), ..Default::default() };
/// assert_eq!(query.limit, 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    /// Only pages of this route pattern.
    pub route: Option<String>,
    /// Only pages in this state.
    pub state: Option<PageState>,
    /// Only pages carrying this tag.
    pub tag: Option<String>,
    /// Only pages whose key contains this text.
    pub text: Option<String>,
    /// Only pages after this key (the previous listing's `next`).
    pub after: Option<String>,
    /// Pages to return: 1 to [`MAX_LIST_LIMIT`] (0 or more is clamped).
    pub limit: usize,
}

/// One listing.
#[derive(Clone, Debug, Serialize)]
pub struct PageList {
    /// At most the query's limit, in key order.
    pub pages: Vec<PageStatus>,
    /// Pass as `after` for the next pages; `None` on the last.
    pub next: Option<String>,
    /// Pages after `after` that match the filters (this listing's and the following ones).
    pub matched: usize,
}

/// One route's pages by state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteSummary {
    /// The route pattern.
    pub route: &'static str,
    /// Its stored pages (pages, tombstones, redirects).
    pub pages: usize,
    /// Pages per state name ([`PageState::as_str`]), missing pages included; states with no
    /// page are absent.
    pub states: BTreeMap<&'static str, usize>,
    /// HTML bytes of its stored pages.
    pub bytes: u64,
    /// Its window in seconds (`None`: on demand only).
    pub revalidate_s: Option<u64>,
    /// Its `expire`, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_s: Option<u64>,
    /// Its `stale_if_error`, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_if_error_s: Option<u64>,
    /// How long browsers may reuse its pages, in seconds.
    pub browser_s: u64,
}

/// The whole site at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Stored pages (pages, tombstones, redirects).
    pub pages: usize,
    /// One per route of the app, in pattern order (routes with no page included).
    pub routes: Vec<RouteSummary>,
    /// Failing pages (backing off, or missing), most failures first, at most
    /// [`SUMMARY_FAILING`].
    pub failing: Vec<PageStatus>,
    /// How many pages are failing (all of them, not only those listed).
    pub failing_total: usize,
    /// Paths only requests named (never stored, never listed by the site) whose generation is
    /// failing: counted here, never listed (at most the not-found memory's capacity), so that
    /// random URLs during an outage do not bury the site's own failing pages.
    pub unknown_failing: usize,
    /// Age of the oldest stale page.
    pub oldest_stale_s: Option<u64>,
    /// Whether the page table holds every stored page yet.
    pub loaded: bool,
}

impl Summary {
    /// Sets the page-state gauges ([`crate::metrics::PAGES`] and the failing/stale gauges) to
    /// this summary (at most once a second, when `/_isr/metrics` is scraped).
    pub fn publish_gauges(&self) {
        use crate::metrics::{OLDEST_STALE_SECONDS, PAGES, PAGES_FAILING, UNKNOWN_PATHS_FAILING};
        for route in &self.routes {
            for state in PageState::ALL {
                let count = route.states.get(state.as_str()).copied().unwrap_or(0);
                metrics::gauge!(PAGES, "route" => route.route, "state" => state.as_str())
                    .set(count as f64);
            }
        }
        metrics::gauge!(PAGES_FAILING).set(self.failing_total as f64);
        metrics::gauge!(UNKNOWN_PATHS_FAILING).set(self.unknown_failing as f64);
        metrics::gauge!(OLDEST_STALE_SECONDS).set(self.oldest_stale_s.unwrap_or(0) as f64);
    }
}

impl Engine {
    /// The state of `key`'s page now: stored, or failing without a stored version.
    pub fn page_status(&self, key: &PageKey) -> Option<PageStatus> {
        let (def, _) = self.routes.page_of_key(key.as_str())?;
        match self.table.snapshot(key.as_str()) {
            Some(snapshot) => Some(self.status_of(key, &snapshot)),
            None => self
                .negative
                .failing()
                .0
                .into_iter()
                .find(|(k, _, _)| k == key)
                .map(|(k, failures, retry_at)| self.missing_status(&k, def, failures, retry_at)),
        }
    }

    /// Like [`Engine::page_status`], with the bytes of every stored encoding (reads the body
    /// when it is not in memory).
    pub async fn page_details(&self, key: &PageKey) -> Option<PageStatus> {
        let mut status = self.page_status(key)?;
        if status.kind == "page" {
            // A resident copy read for one encoding does not know the others' sizes.
            let body = match self.hot.get(key.as_str()).filter(|page| page.covers(None)) {
                Some(page) => page.body.clone(),
                None => self.store.body(key).await.ok().flatten(),
            };
            status.encodings = body.map(|body| EncodedBytes {
                identity: body.identity.len() as u64,
                gzip: body.gzip.map(|b| b.len() as u64),
                br: body.brotli.map(|b| b.len() as u64),
            });
        }
        Some(status)
    }

    /// Pages matching `query`, in key order, from `query.after` on.
    pub fn list_pages(&self, query: &PageQuery) -> PageList {
        let limit = query.limit.clamp(1, MAX_LIST_LIMIT);
        let tagged: Option<HashSet<PageKey>> = query
            .tag
            .as_deref()
            .map(|tag| self.table.keys_with_tag(tag).into_iter().collect());
        let wanted = |key: &str, def: &'static PageDef| {
            query.route.as_deref().is_none_or(|r| def.path == r)
                && query.text.as_deref().is_none_or(|t| key.contains(t))
                && tagged.as_ref().is_none_or(|set| set.contains(key))
        };
        // Full statuses only for the pages returned; the rest only count.
        let clocks = self.clocks();
        let mut statuses: Vec<PageStatus> = Vec::new();
        let mut matched = 0usize;
        if query.state != Some(PageState::Missing) {
            for key in self.table.keys_where(query.after.as_deref(), wanted) {
                let Some(snapshot) = self.table.snapshot(key.as_str()) else {
                    continue;
                };
                if query
                    .state
                    .is_none_or(|s| s == self.state_of(&key, &snapshot, &clocks))
                {
                    matched += 1;
                    if statuses.len() < limit {
                        statuses.push(self.status_of(&key, &snapshot));
                    }
                }
            }
        }
        if query.state.is_none_or(|s| s == PageState::Missing) && query.tag.is_none() {
            let mut missing: Vec<PageStatus> = Vec::new();
            for (key, failures, retry_at) in self.negative.failing().0 {
                let Some((def, _)) = self.routes.page_of_key(key.as_str()) else {
                    continue;
                };
                let after = query.after.as_deref().is_none_or(|a| key.as_str() > a);
                if after && wanted(key.as_str(), def) {
                    missing.push(self.missing_status(&key, def, failures, retry_at));
                }
            }
            if !missing.is_empty() {
                // At most the negative memory's capacity: merged into the key order.
                matched += missing.len();
                statuses.extend(missing);
                statuses.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        statuses.truncate(limit);
        let next = (matched > limit)
            .then(|| statuses.last().map(|s| s.key.clone()))
            .flatten();
        PageList {
            pages: statuses,
            next,
            matched,
        }
    }

    /// Pages per route and state, the failing pages, the oldest stale age.
    pub fn summary(&self) -> Summary {
        let mut routes: BTreeMap<&'static str, RouteSummary> = self
            .routes
            .defs()
            .iter()
            .map(|def| {
                let summary = RouteSummary {
                    route: def.path,
                    revalidate_s: window_of(def),
                    expire_s: def.cache.expire_secs(),
                    stale_if_error_s: def.cache.stale_if_error_secs(),
                    browser_s: def.cache.browser_secs(),
                    ..RouteSummary::default()
                };
                (def.path, summary)
            })
            .collect();
        let clocks = self.clocks();
        let mut failing_keys: Vec<(u32, PageKey)> = Vec::new();
        let mut oldest_stale_s: Option<u64> = None;
        // Every key, in no particular order: the routes are counted in a map and the
        // failing pages sorted on their own.
        for key in self.table.keys() {
            let Some(snapshot) = self.table.snapshot(key.as_str()) else {
                continue;
            };
            let state = self.state_of(&key, &snapshot, &clocks);
            let route = routes.entry(snapshot.def.path).or_default();
            route.route = snapshot.def.path;
            route.pages += 1;
            *route.states.entry(state.as_str()).or_default() += 1;
            if let PageKind::Page { bytes, .. } = snapshot.kind {
                route.bytes += bytes;
            }
            if matches!(state, PageState::Stale | PageState::Expired) {
                let age = clocks.now_ms.saturating_sub(snapshot.generated_at_ms) / 1000;
                oldest_stale_s = oldest_stale_s.max(Some(age));
            }
            if snapshot.failures > 0 {
                failing_keys.push((snapshot.failures, key));
            }
        }
        // Full statuses only for the failing pages listed.
        failing_keys.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut failing_total = failing_keys.len();
        let mut failing: Vec<PageStatus> = failing_keys
            .iter()
            .take(SUMMARY_FAILING)
            .filter_map(|(_, key)| {
                let snapshot = self.table.snapshot(key.as_str())?;
                Some(self.status_of(key, &snapshot))
            })
            .collect();
        let (known_failing, unknown_failing) = self.negative.failing();
        for (key, failures, retry_at) in known_failing {
            if let Some((def, _)) = self.routes.page_of_key(key.as_str()) {
                let status = self.missing_status(&key, def, failures, retry_at);
                *routes
                    .entry(def.path)
                    .or_default()
                    .states
                    .entry(status.state.as_str())
                    .or_default() += 1;
                failing_total += 1;
                failing.push(status);
            }
        }
        failing.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.key.cmp(&b.key)));
        failing.truncate(SUMMARY_FAILING);
        Summary {
            pages: self.table.len(),
            routes: routes.into_values().collect(),
            failing,
            failing_total,
            unknown_failing,
            oldest_stale_s,
            loaded: self.is_loaded(),
        }
    }

    /// Both clocks and the pages being generated, read once for a pass over many pages.
    fn clocks(&self) -> Clocks {
        Clocks {
            now_ms: self.clock.now_ms(),
            mono_ms: self.clock.monotonic_ms(),
            running: self.lock_inflight().keys().cloned().collect(),
        }
    }

    /// A stored page's state (see [`PageState`]).
    fn state_of(&self, key: &PageKey, snapshot: &Snapshot, clocks: &Clocks) -> PageState {
        if clocks.running.contains(key) {
            PageState::Regenerating
        } else if clocks.mono_ms < snapshot.retry_at_ms {
            PageState::BackingOff
        } else if snapshot
            .mark
            .as_ref()
            .is_some_and(|mark| mark.mode == crate::store::MarkMode::Expire)
            || super::is_expired(
                &snapshot.kind,
                snapshot.generated_at_ms,
                snapshot.valid_until_ms,
                snapshot.def,
                clocks.now_ms,
            )
        {
            PageState::Expired
        } else if snapshot.kind == PageKind::NotFound {
            PageState::NotFound
        } else if snapshot.mark.is_none()
            && super::is_fresh(
                &snapshot.kind,
                snapshot.generated_at_ms,
                snapshot.def.window(),
                clocks.now_ms,
            )
        {
            PageState::Fresh
        } else {
            PageState::Stale
        }
    }

    fn status_of(&self, key: &PageKey, snapshot: &Snapshot) -> PageStatus {
        let mut clocks = Clocks {
            now_ms: self.clock.now_ms(),
            mono_ms: self.clock.monotonic_ms(),
            running: HashSet::new(),
        };
        if self.lock_inflight().contains_key(key.as_str()) {
            clocks.running.insert(key.clone());
        }
        let (now, mono) = (clocks.now_ms, clocks.mono_ms);
        let state = self.state_of(key, snapshot, &clocks);
        let backing_off = mono < snapshot.retry_at_ms;
        let (kind, etag, bytes, location) = match &snapshot.kind {
            PageKind::Page { etag, bytes } => ("page", Some(etag.to_string()), Some(*bytes), None),
            PageKind::NotFound => ("not_found", None, None, None),
            PageKind::Redirect { location, .. } => ("redirect", None, None, Some(location.clone())),
        };
        PageStatus {
            path: key.to_url_path(),
            key: key.to_string(),
            route: snapshot.def.path,
            kind,
            state,
            generated_at_ms: Some(snapshot.generated_at_ms),
            generation: (snapshot.generation > 0).then_some(snapshot.generation),
            age_s: Some(now.saturating_sub(snapshot.generated_at_ms) / 1000),
            revalidate_s: window_of(snapshot.def),
            expire_s: snapshot.def.cache.expire_secs(),
            stale_if_error_s: snapshot.def.cache.stale_if_error_secs(),
            valid_until_ms: snapshot.valid_until_ms,
            expires_at_ms: expires_at(snapshot),
            mark: snapshot.mark.as_deref().cloned(),
            next_regeneration_ms: backing_off.then(|| now + (snapshot.retry_at_ms - mono)),
            failures: snapshot.failures,
            last: self.runs.last(key.as_str()),
            tags: self.table.tags(key.as_str()),
            etag,
            bytes,
            encodings: None,
            location,
        }
    }

    fn missing_status(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        failures: u32,
        retry_at_ms: u64,
    ) -> PageStatus {
        let now = self.clock.now_ms();
        let mono = self.clock.monotonic_ms();
        let state = if self.lock_inflight().contains_key(key.as_str()) {
            PageState::Regenerating
        } else {
            PageState::Missing
        };
        PageStatus {
            path: key.to_url_path(),
            key: key.to_string(),
            route: def.path,
            kind: "none",
            state,
            generated_at_ms: None,
            generation: None,
            age_s: None,
            revalidate_s: window_of(def),
            expire_s: def.cache.expire_secs(),
            stale_if_error_s: def.cache.stale_if_error_secs(),
            valid_until_ms: None,
            expires_at_ms: None,
            mark: None,
            next_regeneration_ms: (mono < retry_at_ms).then(|| now + (retry_at_ms - mono)),
            failures,
            last: self.runs.last(key.as_str()),
            tags: def.tags.iter().map(|t| t.to_string()).collect(),
            etag: None,
            bytes: None,
            encodings: None,
            location: None,
        }
    }
}

/// What a pass over many pages reads once.
struct Clocks {
    now_ms: u64,
    mono_ms: u64,
    running: HashSet<PageKey>,
}

/// When a stored version expires: the sooner of its route's `expire` (not for a not-found,
/// which is rechecked anyway) and its loader's `valid_until`.
fn expires_at(snapshot: &Snapshot) -> Option<u64> {
    let by_expire = snapshot
        .def
        .cache
        .expire_secs()
        .filter(|_| snapshot.kind != PageKind::NotFound)
        .map(|expire| {
            snapshot
                .generated_at_ms
                .saturating_add(expire.saturating_mul(1000))
        });
    match (by_expire, snapshot.valid_until_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn window_of(def: &PageDef) -> Option<u64> {
    match def.window() {
        Revalidate::After(seconds) => Some(seconds),
        Revalidate::Never => None,
    }
}
