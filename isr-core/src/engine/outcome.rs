//! The engine's public answers: how a response relates to the cache, what a generation did,
//! and what a request gets.

use crate::encoding::{Encoding, Variants};
use crate::page::Revalidate;
use crate::store::{PageKind, PageMeta, RepresentationEtags};
use bytes::Bytes;
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

    pub(crate) fn metric_label(self) -> &'static str {
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

/// A generated page as served: its metadata and, for HTML pages, its bytes in every encoding.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// # let isr::Served::Stored { page, .. } = engine.request("/blog/hello").await else { panic!() };
/// use isr::encoding::Encoding;
/// assert!(String::from_utf8_lossy(page.html().unwrap()).contains("<p>page</p>"));
/// let (br, etag) = page.representation(Encoding::Brotli).expect("every page is stored compressed");
/// assert!(etag.ends_with("-br\"") && !br.is_empty());
/// # }
/// ```
#[derive(Debug)]
pub struct CachedPage {
    /// Its metadata, as stored.
    pub meta: PageMeta,
    /// The bytes (pages only; `None` for not-found and redirects).
    pub body: Option<Variants>,
    /// The `ETag` value of each encoding, formatted once (empty for non-pages).
    pub(crate) etags: RepresentationEtags,
    /// Which commit of the page table this is (a resident copy is served only while the table
    /// still describes this commit).
    pub(crate) version: u64,
    /// What a serving layer derived from this version once (its response headers): see
    /// [`CachedPage::memo`].
    memo: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    /// Whether `body` holds only some of the stored encodings (the HTML and the one a request
    /// wanted, read back from the store for it); a request that wants another is read again.
    pub(crate) partial: bool,
}

impl CachedPage {
    pub(crate) fn new(meta: PageMeta, body: Option<Variants>, version: u64) -> Self {
        let etags = match (&meta.kind, &body) {
            (PageKind::Page { etag, .. }, Some(_)) => RepresentationEtags::of(*etag),
            _ => RepresentationEtags::default(),
        };
        CachedPage {
            meta,
            body,
            etags,
            version,
            memo: std::sync::OnceLock::new(),
            partial: false,
        }
    }

    /// Whether this copy can answer a request that wants `encoding` (`None`: one that needs
    /// every stored encoding): always, unless it is [`partial`](Self::partial) and lacks it.
    pub(crate) fn covers(&self, encoding: Option<Encoding>) -> bool {
        !self.partial || encoding.is_some_and(|e| self.representation(e).is_some())
    }

    /// A value derived from this page version, made by `init` on first use and kept with the
    /// version (so it is dropped with it): how the HTTP layer keeps a page's response headers
    /// formatted once, without the engine knowing about HTTP. One slot per version; `None` when
    /// it already holds a value of another type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// # let isr::Served::Stored { page, .. } = engine.request("/blog/hello").await else { panic!() };
    /// let len = page.memo(|page| page.html().map_or(0, |html| html.len()));
    /// assert!(*len.unwrap() > 0);
    /// // Made once: a second `init` is not called.
    /// assert_eq!(page.memo::<usize>(|_| unreachable!()), len);
    /// assert!(page.memo(|_| "another type").is_none());
    /// # }
    /// ```
    pub fn memo<T: std::any::Any + Send + Sync>(
        &self,
        init: impl FnOnce(&CachedPage) -> T,
    ) -> Option<&T> {
        self.memo
            .get_or_init(|| Box::new(init(self)))
            .downcast_ref::<T>()
    }

    /// Whether [`body`](Self::body) holds only some of the stored encodings (the HTML and the
    /// one a request wanted, read back from the store for it).
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Whether this version is stored (in the page table and the store); a not-found
    /// remembered only in memory is not.
    pub fn is_stored(&self) -> bool {
        self.version != 0
    }

    /// The `ETag` value of each stored encoding, formatted once (empty for non-pages).
    pub fn etags(&self) -> &RepresentationEtags {
        &self.etags
    }

    /// The HTML as rendered (pages only).
    pub fn html(&self) -> Option<&Bytes> {
        self.body.as_ref().map(|b| &b.identity)
    }

    /// The strong etag of the HTML (empty for non-pages).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// # let isr::Served::Stored { page, .. } = engine.request("/blog/hello").await else { panic!() };
    /// assert!(page.etag().starts_with('"') && page.etag().ends_with('"'));
    /// # }
    /// ```
    pub fn etag(&self) -> &str {
        self.etags.get(Encoding::Identity)
    }

    /// The bytes of `encoding` and their strong etag, if that encoding is stored.
    pub fn representation(&self, encoding: Encoding) -> Option<(&Bytes, &str)> {
        let bytes = self.body.as_ref()?.get(encoding)?;
        Some((bytes, self.etags.get(encoding)))
    }

    /// Bytes held in all encodings.
    pub fn body_bytes(&self) -> u64 {
        self.body.as_ref().map_or(0, Variants::total_len)
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
        /// The page's route's window (see `effective_revalidate` for not-found pages).
        revalidate: Revalidate,
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
