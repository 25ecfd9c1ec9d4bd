//! Purging the CDNs in front of isr when pages change: by tag and surrogate key where a CDN
//! has them (one purge for a tag of 10,000 pages), by path where it has not; soft (marked
//! stale, served while the CDN refetches) unless a page is gone or a hard purge was asked.
//!
//! Each configured CDN has its own [`Adapter`] (the request shape of its API) and its own
//! queue (see [`queue`]: batched, deduplicated, within the CDN's limits, one request at a
//! time, retried with backoff, paused on `429`). [`CdnPurger`] hands every change to each of
//! them and is what the engine is told changes ([`PageChanges`]).
//!
//! Adapters: [`varnish`] (xkey, `--cdn-purge`), and with the `cdn-apis` feature Fastly,
//! Cloudflare, Akamai and CloudFront.

#[cfg(feature = "cdn-apis")]
pub mod akamai;
#[cfg(feature = "cdn-apis")]
mod api;
#[cfg(feature = "cdn-apis")]
pub mod cloudflare;
#[cfg(feature = "cdn-apis")]
pub mod cloudfront;
pub mod edge;
#[cfg(feature = "cdn-apis")]
pub mod fastly;
pub mod journal;
mod keys;
pub mod queue;
mod transport;
pub mod varnish;

#[cfg(feature = "cdn-apis")]
pub use api::{ApiBase, Secret};
pub use edge::{EdgeCheck, EdgeReport};
pub use journal::{PurgeJournal, SqliteJournal};
pub use keys::{
    page_keys, path_key, purge_keys, purge_paths, tag_key, EdgeKey, TagBudget, TagHeaders,
};
pub use queue::{QUEUE_CAPACITY, RETRY_DELAYS};
pub use transport::REQUEST_TIMEOUT;
pub use varnish::{PurgeTargets, Varnish};

use crate::engine::{Change, PageChanges, PurgeKind};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the first attempt of a change's purges (what the webhook's `purged`
/// waits for): a long queue or a paused CDN answers `false`, and the purges go on.
pub const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(20);

/// What a CDN purges by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeBy {
    /// Surrogate keys / cache tags: the tags and URL paths of [`page_keys`].
    Key,
    /// URL paths only.
    Path,
}

/// What one CDN's API accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Keys or paths.
    pub by: PurgeBy,
    /// Whether it can mark stale (else every purge is hard).
    pub soft: bool,
    /// Keys (or paths) in one request at most.
    pub items_per_request: usize,
    /// Bytes of one request's keys at most, each key counted with
    /// [`item_overhead`](Self::item_overhead) bytes around it.
    pub bytes_per_request: usize,
    /// Bytes a request spends on each key besides the key (a separator, JSON quotes, XML
    /// elements).
    pub item_overhead: usize,
    /// What one object may carry.
    pub budget: TagBudget,
}

/// One request to a CDN's API: keys (or paths, per [`Limits::by`]) purged one way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Soft or hard (always hard where [`Limits::soft`] is false).
    pub kind: PurgeKind,
    /// The keys, each as [`Adapter::item`] wrote it.
    pub items: Vec<String>,
}

/// Why a request did not go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again: no answer, `5xx`, or `429` (with how long the CDN asked to wait).
    Retry {
        /// What happened, for the log.
        error: String,
        /// The wait the CDN asked for (`retry-after`, or its own rate-limit header).
        after: Option<Duration>,
    },
    /// The CDN refused the request itself (`4xx` but `429`): trying again cannot help.
    Refused(String),
}

impl SendError {
    /// The error an HTTP status means (`what` names the request for the log).
    pub fn from_status(
        status: axum::http::StatusCode,
        after: Option<Duration>,
        what: String,
    ) -> SendError {
        if status.as_u16() == 429 {
            SendError::Retry {
                error: format!("{what}: {status}"),
                after: Some(after.unwrap_or(Duration::from_secs(5))),
            }
        } else if status.is_client_error() {
            SendError::Refused(format!("{what}: {status}"))
        } else {
            SendError::Retry {
                error: format!("{what}: {status}"),
                after: None,
            }
        }
    }
}

/// One CDN's purge API.
pub trait Adapter: std::fmt::Debug + Send + Sync + 'static {
    /// The `cdn` label of `isr_cdn_purges_total` (`varnish`, `fastly`, …).
    fn name(&self) -> &'static str;
    /// What its API accepts.
    fn limits(&self) -> Limits;
    /// How `key` is written in a request (a CloudFront tag is `#tag`, say).
    fn item(&self, key: &EdgeKey) -> String {
        key.key().to_owned()
    }
    /// Sends one request.
    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Purges changed pages at every configured CDN (see the module docs). Install it with
/// [`EngineBuilder::page_changes`](crate::EngineBuilder::page_changes); `App` does for the
/// CDN flags.
pub struct CdnPurger {
    queues: Vec<queue::Queue>,
    /// The strictest budget of the queues' CDNs: the one pages' headers are made within.
    budget: TagBudget,
}

impl CdnPurger {
    /// Starts one queue per adapter (on the current tokio runtime), each writing what it
    /// has not purged yet to `journal` (and first sending what the journal says was left).
    pub fn start(
        adapters: Vec<Arc<dyn Adapter>>,
        journal: Option<Arc<dyn PurgeJournal>>,
    ) -> Arc<CdnPurger> {
        let journal = queue::Journal(journal);
        let queues: Vec<queue::Queue> = adapters
            .into_iter()
            .map(|adapter| queue::Queue::start(adapter, journal.clone()))
            .collect();
        let budget = tag_headers(queues.iter().map(|q| (q.name, q.limits)), false).budget;
        Arc::new(CdnPurger { queues, budget })
    }
}

/// Routes some of whose stored pages carry more tags than `budget` lets their headers hold,
/// sorted, with one warning logged per route: purges of the tags left out still reach those
/// pages, by their paths, but a tag purge no longer covers them in one request. The build
/// calls it when CDNs are configured ([`crate::BuildOptions::tag_budget`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// engine.request("/blog/a").await; // tagged `example`
/// let budget = isr::cdn::TagBudget { tags_per_object: 1, ..isr::cdn::TagBudget::DEFAULT };
/// assert_eq!(isr::cdn::warn_tag_overflow(&engine, budget), ["/blog/:slug"]);
/// assert!(isr::cdn::warn_tag_overflow(&engine, isr::cdn::TagBudget::DEFAULT).is_empty());
/// # }
/// ```
pub fn warn_tag_overflow(engine: &crate::Engine, budget: TagBudget) -> Vec<&'static str> {
    let mut overflowed: std::collections::BTreeMap<&'static str, (usize, String)> =
        std::collections::BTreeMap::new();
    let mut query = crate::engine::PageQuery {
        limit: crate::engine::MAX_LIST_LIMIT,
        ..crate::engine::PageQuery::default()
    };
    loop {
        let list = engine.list_pages(&query);
        for page in &list.pages {
            if page_keys(&page.tags, &page.key, budget).1 {
                let entry = overflowed
                    .entry(page.route)
                    .or_insert_with(|| (0, page.path.clone()));
                entry.0 += 1;
            }
        }
        match list.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    for (route, (pages, example)) in &overflowed {
        tracing::warn!(
            route,
            pages,
            example = %example,
            max_keys = budget.tags_per_object,
            max_header_bytes = budget.header_bytes,
            "pages of this route carry more tags than the CDNs take: the tags past the budget are left out of their headers (purges of those tags reach these pages by their paths)"
        );
    }
    overflowed.into_keys().collect()
}

/// The headers pages carry for CDNs (`name`, `limits`): `cache-tag` for Cloudflare and
/// CloudFront by tag (or when asked), `edge-cache-tag` for Akamai, within the strictest budget.
pub fn tag_headers(
    cdns: impl Iterator<Item = (&'static str, Limits)>,
    cache_tag: bool,
) -> TagHeaders {
    let mut headers = TagHeaders {
        cache_tag,
        ..TagHeaders::default()
    };
    for (name, limits) in cdns {
        headers.budget = headers.budget.min(limits.budget);
        match name {
            "cloudflare" => headers.cache_tag = true,
            "cloudfront" if limits.by == PurgeBy::Key => headers.cache_tag = true,
            "akamai" => headers.edge_cache_tag = true,
            _ => {}
        }
    }
    headers
}

impl PageChanges for CdnPurger {
    fn changed(&self, change: Change) -> BoxFuture<'static, bool> {
        let by_key: Vec<EdgeKey> = purge_keys(&change, self.budget);
        let by_path: Vec<String> = purge_paths(&change);
        let count = |q: &queue::Queue| match q.limits.by {
            PurgeBy::Key => by_key.len(),
            PurgeBy::Path => by_path.len(),
        };
        let (waiter, told) = queue::Waiter::new(self.queues.iter().map(count).sum());
        let told = tokio::time::timeout(FIRST_ATTEMPT_WAIT, told);
        for queue in &self.queues {
            let items = match queue.limits.by {
                PurgeBy::Key => by_key.iter().map(|k| queue.adapter.item(k)).collect(),
                PurgeBy::Path => by_path.clone(),
            };
            queue.push(queue::Job {
                items,
                kind: change.purge,
                waiter: waiter.clone(),
            });
        }
        Box::pin(async move { matches!(told.await, Ok(Ok(true))) })
    }
}
