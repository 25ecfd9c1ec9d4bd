//! The engine's public answers: how a response relates to the cache, what a generation did,
//! and what a request gets.

pub use crate::model::CachedPage;
use crate::page::CacheProfile;
use std::sync::Arc;
use std::time::Duration;

/// How a response relates to the cache (the `x-isr-cache` header).
///
/// ```
/// assert_eq!(isr::CacheStatus::Stale.as_str(), "STALE");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from cache, fresh.
    Hit,
    /// Served from cache, past its window; a regeneration was started (or is queued for a
    /// later request when the scheduler is full).
    Stale,
    /// Generated for this request.
    Miss,
    /// The stored page was past its `expire`: this request waited for its regeneration (or
    /// joined the one running) and got the new version.
    Expired,
    /// The stored page was past its `expire` and regenerating it failed (or is backing off):
    /// served anyway, within its `stale_if_error`.
    StaleIfError,
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
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::StaleIfError => "STALE-IF-ERROR",
        }
    }

    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Miss => "miss",
            CacheStatus::Expired => "expired",
            CacheStatus::StaleIfError => "stale_if_error",
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
    /// A request found the page past its `expire` and waits for it.
    Expired,
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
            Trigger::Expired => "expired",
            Trigger::OnDemand => "on_demand",
        }
    }
}

/// How a generation failed.
///
/// ```
/// assert_eq!(isr::FailureKind::StoreError.as_str(), "store_error");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The loader returned an error.
    Error,
    /// The loader, the view or the commit panicked.
    Panic,
    /// Loader + render + store write ran past the page's timeout.
    Timeout,
    /// The page could not be stored (disk full, read-only, I/O error).
    StoreError,
    /// The scheduler had no free slot in time (nothing ran; no backoff).
    Busy,
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
            FailureKind::StoreError => "store_error",
            FailureKind::Busy => "busy",
        }
    }
}

/// The result of one generation.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// match engine.regenerate("/blog/hello", isr::Trigger::OnDemand).await.unwrap() {
///     isr::Outcome::Generated(page) => assert!(page.html().is_some()),
///     isr::Outcome::Failed { kind, message } => panic!("{}: {message}", kind.as_str()),
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Stored and swapped in (a page, a not-found or a redirect).
    Generated(Arc<CachedPage>),
    /// Nothing changed; the old page (if any) is still served.
    Failed {
        /// What went wrong (also the metric label).
        kind: FailureKind,
        /// The loader's error, the panic message, or why nothing ran; for logs, not for
        /// visitors.
        message: String,
    },
}

/// The engine's answer to a page request; the server turns it into HTTP.
#[derive(Debug)]
pub enum Served {
    /// A stored outcome: an HTML page, a remembered not-found, or a redirect.
    Stored {
        /// The page, not-found or redirect; a body read back from the store may hold only the
        /// identity bytes and the requested encoding.
        page: Arc<CachedPage>,
        /// Fresh hit, stale hit (a regeneration was started) or generated for this request.
        cache: CacheStatus,
        /// The page's route's cache profile: its window (see `effective_revalidate` for
        /// not-found pages), `expire`, `stale_if_error` and browser lifetime.
        policy: CacheProfile,
        /// The content type of the route's bodies (HTML documents unless a file route).
        content_type: &'static str,
        /// Time since its generation finished (wall clock; zero for one generated just now).
        age: Duration,
    },
    /// The path has a trailing slash: redirect (308) to this canonical path.
    Canonical(String),
    /// No page route matches the path.
    NoRoute,
    /// A dynamic page that does not exist (fallback "404").
    NotFound,
    /// The page cannot be served right now (never generated and its generation failed, or its
    /// stored bytes could not be read): 503, retry after this. The page itself is kept.
    Unavailable {
        /// Time left in the page's failure backoff (at least 1 s when this request's
        /// generation failed; 1 s after a store read error). Sent as `Retry-After`, rounded up
        /// to whole seconds.
        retry_after: Duration,
    },
}
