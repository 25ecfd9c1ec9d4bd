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
#[cfg(feature = "cdn-apis")]
pub mod fastly;
pub mod journal;
mod keys;
pub mod queue;
mod transport;
pub mod varnish;

#[cfg(feature = "cdn-apis")]
pub use api::{ApiBase, Secret};
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
}

impl CdnPurger {
    /// Starts one queue per adapter (on the current tokio runtime), each writing what it
    /// has not purged yet to `journal` (and first sending what the journal says was left).
    pub fn start(
        adapters: Vec<Arc<dyn Adapter>>,
        journal: Option<Arc<dyn PurgeJournal>>,
    ) -> Arc<CdnPurger> {
        let journal = queue::Journal(journal);
        Arc::new(CdnPurger {
            queues: adapters
                .into_iter()
                .map(|adapter| queue::Queue::start(adapter, journal.clone()))
                .collect(),
        })
    }

    /// The headers pages carry for these CDNs, within the strictest of their budgets.
    pub fn tag_headers(&self, cache_tag: bool) -> TagHeaders {
        self::tag_headers(self.queues.iter().map(|q| (q.name, q.limits)), cache_tag)
    }
}

/// The headers pages carry for CDNs (`name`, `limits`): `cache-tag` for Cloudflare and
/// CloudFront (or when asked), `edge-cache-tag` for Akamai, within the strictest budget.
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
            "cloudflare" | "cloudfront" => headers.cache_tag = true,
            "akamai" => headers.edge_cache_tag = true,
            _ => {}
        }
    }
    headers
}

impl PageChanges for CdnPurger {
    fn changed(&self, change: Change) -> BoxFuture<'static, bool> {
        let budget = self
            .queues
            .iter()
            .fold(TagBudget::DEFAULT, |b, q| b.min(q.limits.budget));
        let by_key: Vec<EdgeKey> = purge_keys(&change, budget);
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
