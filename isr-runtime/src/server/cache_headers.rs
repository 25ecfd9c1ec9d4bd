//! The caching headers of a page response: `cache-control`, `age` and `cache-status`.
//!
//! They tell a downstream shared cache (a CDN, Varnish) exactly what isr knows: a page is fresh
//! for its `revalidate` window counted from the end of its generation, so the response carries
//! its `age` (RFC 9111 §5.1) and the downstream cache keeps it for `s-maxage − age` more, not a
//! whole window more; a page served stale arrives already stale. `cache-status` (RFC 9211)
//! says how isr answered. Why no `public`: a response to a request without `Authorization` is
//! storable by shared caches anyway (RFC 9111 §3), so `public` would add nothing but bytes.
//! Browsers see no `max-age` and no `last-modified`, so they revalidate every time (with the
//! `etag`: a cheap `304`).

use crate::encoding::Encoding;
use crate::engine::{CacheStatus, CachedPage};
use crate::page::Revalidate;
use crate::server::STALE_WHILE_REVALIDATE_SECS;
use crate::store::PageKind;
use axum::http::HeaderValue;
use std::time::Duration;

/// The header values of one stored page version that are the same for every request: built
/// on its first response and kept with the page (in [`CachedPage`]), so that a cached answer
/// clones them (a reference count each) instead of formatting and checking them again.
#[derive(Clone, Debug)]
pub(crate) struct PageHeaders {
    /// The window these were built for (`cache_control` depends on it).
    window: Revalidate,
    pub cache_control: HeaderValue,
    pub surrogate_key: HeaderValue,
    pub cache_tag: HeaderValue,
    /// `ETag` per encoding (identity, gzip, br), where stored.
    etags: [Option<HeaderValue>; 3],
}

impl PageHeaders {
    /// The page's headers for `window` (its route's effective revalidate window), built once
    /// per page version.
    pub(crate) fn of(page: &CachedPage, window: Revalidate) -> std::borrow::Cow<'_, PageHeaders> {
        match page.memo(|page| PageHeaders::build(page, window)) {
            Some(built) if built.window == window => std::borrow::Cow::Borrowed(built),
            // The same page served under another window (not done by isr's own router), or a
            // memo an embedder put there first.
            _ => std::borrow::Cow::Owned(PageHeaders::build(page, window)),
        }
    }

    fn build(page: &CachedPage, window: Revalidate) -> PageHeaders {
        let not_found = matches!(page.meta.kind, PageKind::NotFound);
        // Slices of the page's own etag buffer: a reference count each, no copy.
        let etags = Encoding::ALL.map(|encoding| {
            page.representation(encoding)?;
            HeaderValue::from_maybe_shared(page.etags().shared(encoding)?).ok()
        });
        let (surrogate_key, cache_tag) = purge_key_headers(&page.meta.tags, &page.meta.key);
        PageHeaders {
            window,
            cache_control: shared_cache_control(not_found, window),
            surrogate_key,
            cache_tag,
            etags,
        }
    }

    /// The `ETag` of the page's bytes in `encoding`.
    pub(crate) fn etag(&self, encoding: Encoding) -> Option<&HeaderValue> {
        self.etags[encoding.index()].as_ref()
    }
}

/// `cache-control` of a stored page or redirect whose window is `revalidate`:
/// `s-maxage=<window>, stale-while-revalidate=<a year>` (RFC 5861).
///
/// ```
/// let v = isr::server::cache_control(isr::Revalidate::After(60));
/// assert_eq!(v, "s-maxage=60, stale-while-revalidate=31536000");
/// assert_eq!(isr::server::cache_control(isr::Revalidate::Never), "s-maxage=31536000, stale-while-revalidate=31536000");
/// ```
pub fn cache_control(revalidate: Revalidate) -> HeaderValue {
    let max_age = revalidate.seconds().unwrap_or(STALE_WHILE_REVALIDATE_SECS);
    header_value(format!(
        "s-maxage={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECS}"
    ))
}

/// [`cache_control`] (or [`not_found_cache_control`]) of `window`, formatted once per serving
/// thread and window and then cloned (a reference count): a site has a few windows, one per
/// route, and a page read back from the store would otherwise format its own. Bounded: a
/// thread keeps [`MEMO_WINDOWS`] of them; any further window is formatted each time.
fn shared_cache_control(not_found: bool, window: Revalidate) -> HeaderValue {
    thread_local! {
        static MEMO: std::cell::RefCell<Vec<(bool, Revalidate, HeaderValue)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMO.with_borrow_mut(|memo| {
        if let Some((.., value)) = memo
            .iter()
            .find(|(n, w, _)| (*n, *w) == (not_found, window))
        {
            return value.clone();
        }
        let value = if not_found {
            not_found_cache_control(window)
        } else {
            cache_control(window)
        };
        if memo.len() < MEMO_WINDOWS {
            memo.push((not_found, window, value.clone()));
        }
        value
    })
}

/// How many `cache-control` values a serving thread keeps (see [`shared_cache_control`]).
const MEMO_WINDOWS: usize = 32;

/// `cache-control` of a loader's not-found (`recheck`: its effective window): kept downstream
/// only until isr would check it again, never served stale, so that a page created later is
/// not hidden behind an old 404.
///
/// ```
/// let v = isr::server::not_found_cache_control(isr::Revalidate::After(5));
/// assert_eq!(v, "s-maxage=5");
/// ```
pub fn not_found_cache_control(recheck: Revalidate) -> HeaderValue {
    let max_age = recheck.seconds().unwrap_or(0);
    header_value(format!("s-maxage={max_age}"))
}

/// `age`: whole seconds since the generation finished (RFC 9111 §5.1), rounded up, so that a
/// downstream cache's `s-maxage − age` never reaches past isr's own window.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(isr::server::age(Duration::from_millis(2_001)), "3");
/// assert_eq!(isr::server::age(Duration::from_secs(2)), "2");
/// assert_eq!(isr::server::age(Duration::ZERO), "0");
/// ```
pub fn age(age: Duration) -> HeaderValue {
    HeaderValue::from(whole_seconds(age))
}

fn whole_seconds(age: Duration) -> u64 {
    age.as_millis().div_ceil(1000).min(u128::from(u64::MAX)) as u64
}

/// `cache-status` (RFC 9211) of an answer: `isr; hit; ttl=3`, `isr; fwd=stale; ttl=-2`,
/// `isr; fwd=miss; stored; ttl=60`. `ttl` is the window left (negative once stale), absent for
/// pages that never expire; `stored` says a generated outcome was kept (a path that never
/// existed is remembered in memory only).
///
/// ```
/// use std::time::Duration;
/// use isr::{CacheStatus, Revalidate};
/// let hit = isr::server::cache_status(CacheStatus::Hit, Revalidate::After(5), Duration::from_secs(2), true);
/// assert_eq!(hit, "isr; hit; ttl=3");
/// let stale = isr::server::cache_status(CacheStatus::Stale, Revalidate::After(5), Duration::from_secs(7), true);
/// assert_eq!(stale, "isr; fwd=stale; ttl=-2");
/// let miss = isr::server::cache_status(CacheStatus::Miss, Revalidate::After(60), Duration::ZERO, true);
/// assert_eq!(miss, "isr; fwd=miss; stored; ttl=60");
/// let never = isr::server::cache_status(CacheStatus::Hit, Revalidate::Never, Duration::from_secs(9), true);
/// assert_eq!(never, "isr; hit");
/// let longest = isr::server::cache_status(CacheStatus::Miss, Revalidate::After(0), Duration::MAX, true);
/// assert_eq!(longest, "isr; fwd=miss; stored; ttl=-18446744073709551615");
/// ```
pub fn cache_status(
    cache: CacheStatus,
    window: Revalidate,
    age: Duration,
    stored: bool,
) -> HeaderValue {
    // Formatted on the stack: this runs for every page response. 48 bytes hold the longest
    // value (`isr; fwd=miss; stored; ttl=`, 27 bytes, and a ttl within ±u64::MAX, 21 at most).
    let mut value = StackText::<48>::new();
    value.push(match cache {
        CacheStatus::Hit => "isr; hit",
        CacheStatus::Stale => "isr; fwd=stale",
        CacheStatus::Miss => "isr; fwd=miss",
    });
    if cache == CacheStatus::Miss && stored {
        value.push("; stored");
    }
    if let Some(window) = window.seconds() {
        let ttl = i128::from(window) - i128::from(whole_seconds(age));
        value.push("; ttl=");
        value.push(itoa::Buffer::new().format(ttl));
    }
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("isr"))
}

/// Text of at most `N` bytes built without allocating (what does not fit is dropped).
struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        StackText {
            bytes: [0; N],
            len: 0,
        }
    }

    fn push(&mut self, text: &str) {
        let end = (self.len + text.len()).min(N);
        self.bytes[self.len..end].copy_from_slice(&text.as_bytes()[..end - self.len]);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `surrogate-key`: the page's tags and its URL path, space-separated (the Fastly convention;
/// a CDN that purges by tag uses it). A space, comma, `%` or non-ASCII byte inside a tag is
/// percent-encoded, so every tag stays one token.
///
/// ```
/// let tags = vec!["posts".to_string(), "post:hello world".to_string()];
/// let v = isr::server::surrogate_key(&tags, "/blog/hello world");
/// assert_eq!(v, "posts post:hello%20world /blog/hello%20world");
/// ```
pub fn surrogate_key(tags: &[String], key: &str) -> HeaderValue {
    purge_keys(tags, key, ' ')
}

/// `cache-tag`: the same keys as [`surrogate_key`], comma-separated (the Cloudflare
/// convention).
///
/// ```
/// let v = isr::server::cache_tag(&["posts".to_string()], "/blog/a");
/// assert_eq!(v, "posts,/blog/a");
/// ```
pub fn cache_tag(tags: &[String], key: &str) -> HeaderValue {
    purge_keys(tags, key, ',')
}

/// The page's tags (escaped) and its URL path, joined by `separator`.
fn purge_keys(tags: &[String], key: &str, separator: char) -> HeaderValue {
    let mut value = String::new();
    push_purge_keys(&mut value, tags, &crate::route::url_path(key), separator);
    header_value(value)
}

/// [`surrogate_key`] and [`cache_tag`] of one page, formatted into one buffer (the keys joined
/// by spaces, then by commas) that both header values share.
fn purge_key_headers(tags: &[String], key: &str) -> (HeaderValue, HeaderValue) {
    let url_path = crate::route::url_path(key);
    let mut text = String::with_capacity(
        2 * (url_path.len() + tags.iter().map(|t| t.len() + 1).sum::<usize>()),
    );
    push_purge_keys(&mut text, tags, &url_path, ' ');
    push_purge_keys(&mut text, tags, &url_path, ',');
    let text = bytes::Bytes::from(text);
    let half = text.len() / 2;
    (
        header_value(text.slice(..half)),
        header_value(text.slice(half..)),
    )
}

/// Appends the tags (escaped), each followed by `separator`, then `url_path`.
fn push_purge_keys(text: &mut String, tags: &[String], url_path: &str, separator: char) {
    for tag in tags {
        text.extend(percent_encoding::utf8_percent_encode(tag, TAG_ESCAPES));
        text.push(separator);
    }
    text.push_str(url_path);
}

/// Bytes a surrogate key cannot hold as they are.
const TAG_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b',')
    .add(b'%')
    .add(b'"');

/// `value` as a header value, taking its bytes as they are (no copy); `no-store` if it holds
/// bytes a header cannot.
fn header_value(value: impl Into<bytes::Bytes>) -> HeaderValue {
    HeaderValue::from_maybe_shared(value.into())
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_keys_formatted_together_equal_each_alone() {
        for (tags, key) in [
            (vec![], "/"),
            (vec!["posts".to_string()], "/blog/a"),
            (
                vec!["posts".into(), "post:hello world".into(), "100%,x\"".into()],
                "/blog/café au lait",
            ),
        ] {
            let (surrogate, tag) = purge_key_headers(&tags, key);
            assert_eq!(surrogate, surrogate_key(&tags, key));
            assert_eq!(tag, cache_tag(&tags, key));
        }
    }

    #[test]
    fn cache_control_is_the_same_value_from_the_memo_and_past_its_bound() {
        for round in 0..2 {
            for seconds in 0..(MEMO_WINDOWS as u64 + 8) {
                let window = Revalidate::After(seconds);
                assert_eq!(
                    shared_cache_control(false, window),
                    cache_control(window),
                    "{round}"
                );
                assert_eq!(
                    shared_cache_control(true, window),
                    not_found_cache_control(window)
                );
            }
        }
        assert_eq!(
            shared_cache_control(false, Revalidate::Never),
            cache_control(Revalidate::Never)
        );
    }
}
