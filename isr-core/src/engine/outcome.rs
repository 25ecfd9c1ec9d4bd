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

/// Why a stored answer is what it is: the `detail` of its `cache-status` header.
///
/// ```
/// use isr::engine::Why;
/// use isr::store::{Mark, MarkMode};
/// assert_eq!(Why::WindowPassed.detail().as_deref(), Some("window-passed"));
/// assert_eq!(Why::Generated.detail(), None);
/// let mark = Mark::new(MarkMode::Stale, 1, "tag posts");
/// let why = Why::Invalidated(std::sync::Arc::new(mark));
/// assert_eq!(why.detail().as_deref(), Some("\"invalidated (stale): tag posts\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// A hit within the page's window (a page never stale by time is always within it).
    WithinWindow,
    /// Served stale: its window passed (a regeneration was started).
    WindowPassed,
    /// Waited for: the stored version was past its `expire`.
    Expired,
    /// Waited for: the stored version was past the time its loader said it stops being
    /// valid (`Load::valid_until`, `Load::not_yet`).
    ValidUntil,
    /// The old version, past its `expire`, served within `stale_if_error` while regenerating
    /// fails.
    StaleIfError,
    /// Generated for this request (or pulled from another instance): nothing was stored.
    Generated,
    /// Served stale, or waited for: an on-demand invalidation marked the version (its mode,
    /// and the tag or path that named it).
    Invalidated(Arc<crate::store::Mark>),
}

impl Why {
    /// The `detail` of `cache-status` (RFC 9211): a token, or for an invalidation a string
    /// naming its mode and cause (`"invalidated (stale): tag posts"`; a byte a header cannot
    /// hold percent-encoded); `None` for a generated answer, which `fwd=miss` says all about.
    pub fn detail(&self) -> Option<std::borrow::Cow<'static, str>> {
        Some(std::borrow::Cow::Borrowed(match self {
            Why::WithinWindow => "within-window",
            Why::WindowPassed => "window-passed",
            Why::Expired => "expired",
            Why::ValidUntil => "valid-until",
            Why::StaleIfError => "stale-if-error",
            Why::Generated => return None,
            Why::Invalidated(mark) => {
                let text = format!("invalidated ({}): {}", mark.mode.as_str(), mark.cause);
                return Some(std::borrow::Cow::Owned(sf_string(&text)));
            }
        }))
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
        /// Why: the window, an `expire`, a `valid_until`… (`cache-status`'s `detail`).
        why: Why,
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

/// `text` as a structured-field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped,
/// `%` and every byte outside printable ASCII percent-encoded (a string holds nothing else),
/// at most [`MAX_DETAIL_BYTES`] of `text` (a tag may be long; a header should not be).
fn sf_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len().min(MAX_DETAIL_BYTES) + 5);
    quoted.push('"');
    for byte in text.bytes().take(MAX_DETAIL_BYTES) {
        match byte {
            b'"' | b'\\' => {
                quoted.push('\\');
                quoted.push(byte as char);
            }
            b'%' => quoted.push_str("%25"),
            0x20..=0x7e => quoted.push(byte as char),
            _ => quoted.push_str(&format!("%{byte:02X}")),
        }
    }
    if text.len() > MAX_DETAIL_BYTES {
        quoted.push_str("...");
    }
    quoted.push('"');
    quoted
}

/// The most bytes of a cause `cache-status` names.
const MAX_DETAIL_BYTES: usize = 200;
