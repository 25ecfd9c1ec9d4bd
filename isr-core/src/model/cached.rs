//! [`CachedPage`]: one stored version of a page as the tiers hold and serve it.

use super::encoding::{Encoding, Variants};
use super::etag::RepresentationEtags;
use super::meta::{PageKind, PageMeta};
use bytes::Bytes;

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
    /// When a request was last answered with this version: seconds on the engine's monotonic
    /// clock, plus one (0: never). What an invalidation of mode `auto` reads.
    last_served_s: std::sync::atomic::AtomicU32,
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
            last_served_s: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Records that a request was answered with this version at `monotonic_ms` (a relaxed
    /// store, and only when the second changed: cheap on the hot path).
    pub(crate) fn served_at(&self, monotonic_ms: u64) {
        let second = u32::try_from(monotonic_ms / 1000 + 1).unwrap_or(u32::MAX);
        if self
            .last_served_s
            .load(std::sync::atomic::Ordering::Relaxed)
            != second
        {
            self.last_served_s
                .store(second, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Takes `other`'s last request time when it is later (the copy this one replaces).
    pub(crate) fn served_like(&self, other: &CachedPage) {
        let theirs = other
            .last_served_s
            .load(std::sync::atomic::Ordering::Relaxed);
        self.last_served_s
            .fetch_max(theirs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a request was answered with this version at or after `monotonic_ms`.
    pub(crate) fn served_since(&self, monotonic_ms: u64) -> bool {
        let last = self
            .last_served_s
            .load(std::sync::atomic::Ordering::Relaxed);
        last > 0 && u64::from(last - 1) >= monotonic_ms / 1000
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
