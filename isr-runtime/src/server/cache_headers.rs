//! The caching headers of a page response: `cache-control`, `cdn-cache-control`, `age` and
//! `cache-status`.
//!
//! They tell each cache exactly what isr knows, all derived from the page's
//! [`CacheProfile`]: a page is fresh for its `revalidate` window counted from the end of its
//! generation, so the response carries its `age` (RFC 9111 §5.1) and a downstream cache keeps
//! it for `max-age − age` more, not a whole window more; a page served stale arrives already
//! stale. `cache-control` tells browsers what they may do (`max-age=<browser>`, by default `0,
//! must-revalidate`: they revalidate every time with the `etag`, a cheap `304`) and holds
//! `s-maxage` for shared caches that read only it; `cdn-cache-control` (RFC 9213) carries the
//! CDN's directives (`stale-while-revalidate`, `stale-if-error`). No lifetime reaches past the
//! page's `expire` (+ `stale_if_error`) or its loader's `valid_until`. `cache-status` (RFC
//! 9211) says how isr answered and why. Why no `public`: a response to a request without
//! `Authorization` is storable by shared caches anyway (RFC 9111 §3).

use crate::cdn::TagBudget;
use crate::encoding::Encoding;
use crate::engine::{CacheStatus, CachedPage, Why};
use crate::page::{CacheProfile, Revalidate};
use crate::server::STALE_WHILE_REVALIDATE_SECS;
use crate::store::PageKind;
use axum::http::HeaderValue;
use std::time::Duration;

/// The header values of one stored page version that are the same for every request: built
/// on its first response and kept with the page (in [`CachedPage`]), so that a cached answer
/// clones them (a reference count each) instead of formatting and checking them again.
#[derive(Clone, Debug)]
pub(crate) struct PageHeaders {
    /// The profile these were built for (`cache_control` depends on it).
    profile: CacheProfile,
    /// The tag budget these were built for (`surrogate_key` and `cache_tag` depend on it).
    budget: TagBudget,
    pub cache_control: HeaderValue,
    pub cdn_cache_control: HeaderValue,
    pub surrogate_key: HeaderValue,
    pub cache_tag: HeaderValue,
    /// `ETag` per encoding (identity, gzip, br), where stored.
    etags: [Option<HeaderValue>; 3],
}

impl PageHeaders {
    /// The page's headers for `profile` (its route's, with the effective revalidate window),
    /// built once per page version.
    pub(crate) fn of(
        page: &CachedPage,
        profile: CacheProfile,
        budget: TagBudget,
    ) -> std::borrow::Cow<'_, PageHeaders> {
        match page.memo(|page| PageHeaders::build(page, profile, budget)) {
            Some(built) if built.profile == profile && built.budget == budget => {
                std::borrow::Cow::Borrowed(built)
            }
            // The same page served under another profile (not done by isr's own router), or a
            // memo an embedder put there first.
            _ => std::borrow::Cow::Owned(PageHeaders::build(page, profile, budget)),
        }
    }

    fn build(page: &CachedPage, profile: CacheProfile, budget: TagBudget) -> PageHeaders {
        let not_found = matches!(page.meta.kind, PageKind::NotFound);
        // Slices of the page's own etag buffer: a reference count each, no copy.
        let etags = Encoding::ALL.map(|encoding| {
            page.representation(encoding)?;
            HeaderValue::from_maybe_shared(page.etags().shared(encoding)?).ok()
        });
        let (surrogate_key, cache_tag) = purge_key_headers(&page.meta.tags, &page.meta.key, budget);
        // A version with its own `valid_until` has a profile of its own: formatted for it
        // alone, not kept in the per-thread memo of the routes' profiles.
        let (cache_control, cdn_cache_control) = if page.meta.valid_until_ms.is_some() {
            cache_controls(not_found, profile)
        } else {
            shared_cache_controls(not_found, profile)
        };
        PageHeaders {
            profile,
            budget,
            cache_control,
            cdn_cache_control,
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

/// The profile one stored version is served under: its route's `profile` with the effective
/// window of its kind (a not-found is rechecked within a minute), and no lifetime past the time
/// its loader said it stops being valid (`valid_until`, counted from its generation).
///
/// ```
/// use isr::{store::{PageKind, PageMeta}, CacheProfile, Revalidate};
/// let mut meta = PageMeta {
///     key: "/sale".into(), route: "/sale".into(), generated_at_ms: 10_000, generation: 0,
///     kind: PageKind::Page { etag: isr::store::Etag::of(b""), bytes: 0 }, tags: vec![],
///     valid_until_ms: None, mark: None,
/// };
/// let route = CacheProfile::revalidate(60);
/// assert_eq!(isr::server::version_profile(&meta, route), route);
/// meta.valid_until_ms = Some(40_500);
/// let until = isr::server::version_profile(&meta, route);
/// assert_eq!((until.window(), until.expire_secs()), (Revalidate::After(30), Some(30)));
/// ```
pub fn version_profile(meta: &crate::store::PageMeta, profile: CacheProfile) -> CacheProfile {
    let window = crate::engine::effective_revalidate(&meta.kind, profile.window());
    let profile = profile.with_window(window);
    match meta.valid_until_ms {
        Some(at) => profile.valid_for(at.saturating_sub(meta.generated_at_ms) / 1000),
        None => profile,
    }
}

/// `cache-control` of a stored page or redirect under `profile`: what browsers may do, and
/// `s-maxage` for shared caches that read only this header. Browsers get `max-age=<browser>`
/// (`max-age=0, must-revalidate` by default: they ask every time, and an unchanged page costs a
/// `304`; `must-revalidate` also whenever the page has an `expire`); shared caches keep the page for its window (`s-maxage`, the `expire` itself with
/// `revalidate = false`, a year for a page that never goes stale by time) and then ask again,
/// since `s-maxage` forbids them to serve it stale (RFC 9111 §5.2.2.10). The directives that
/// let a CDN serve it stale are in [`cdn_cache_control`]. Neither lifetime reaches past
/// `expire`.
///
/// ```
/// use isr::CacheProfile;
/// let v = isr::server::cache_control(CacheProfile::revalidate(60));
/// assert_eq!(v, "max-age=0, must-revalidate, s-maxage=60");
/// let price = CacheProfile::revalidate(60).expire(600).stale_if_error(3600).browser(10);
/// assert_eq!(isr::server::cache_control(price), "max-age=10, must-revalidate, s-maxage=60");
/// let too_long = CacheProfile::revalidate(60).expire(600).browser(900);
/// assert_eq!(isr::server::cache_control(too_long), "max-age=600, must-revalidate, s-maxage=60");
/// let reused = CacheProfile::revalidate(60).browser(30);
/// assert_eq!(isr::server::cache_control(reused), "max-age=30, s-maxage=60");
/// let on_demand = CacheProfile::on_demand().expire(600);
/// assert_eq!(isr::server::cache_control(on_demand), "max-age=0, must-revalidate, s-maxage=600");
/// assert_eq!(isr::server::cache_control(CacheProfile::on_demand()), "max-age=0, must-revalidate, s-maxage=31536000");
/// ```
pub fn cache_control(profile: CacheProfile) -> HeaderValue {
    let browser = profile
        .browser_secs()
        .min(profile.expire_secs().unwrap_or(u64::MAX));
    let shared = shared_max_age(profile);
    // With a ceiling, a browser never reuses its copy once stale (offline, say: RFC 9111
    // §4.2.4 would let it).
    header_value(if browser == 0 || profile.expire_secs().is_some() {
        format!("max-age={browser}, must-revalidate, s-maxage={shared}")
    } else {
        format!("max-age={browser}, s-maxage={shared}")
    })
}

/// `cdn-cache-control` (RFC 9213) of a stored page or redirect under `profile`: the directives
/// for CDNs (which prefer it to `cache-control`, and do not pass it on to browsers). `max-age`
/// is the window, as `s-maxage`; `stale-while-revalidate` lets the CDN serve the old page
/// while it fetches the new one, as isr does: a year without an `expire`, the rest up to
/// `expire` with one (left out when nothing is left); `stale-if-error`, counted from the end
/// of `max-age` (RFC 5861), reaches to `expire + stale_if_error`, as isr's own. With the
/// response's `age`, no directive lets a CDN keep the page past `expire` (+
/// `stale_if_error`).
///
/// ```
/// use isr::CacheProfile;
/// let v = isr::server::cdn_cache_control(CacheProfile::revalidate(60));
/// assert_eq!(v, "max-age=60, stale-while-revalidate=31536000");
/// let price = CacheProfile::revalidate(60).expire(600).stale_if_error(3600);
/// assert_eq!(isr::server::cdn_cache_control(price), "max-age=60, stale-while-revalidate=540, stale-if-error=4140");
/// let strict = CacheProfile::revalidate(60).expire(600);
/// assert_eq!(isr::server::cdn_cache_control(strict), "max-age=60, stale-while-revalidate=540");
/// let on_demand = CacheProfile::on_demand().expire(600);
/// assert_eq!(isr::server::cdn_cache_control(on_demand), "max-age=600");
/// ```
pub fn cdn_cache_control(profile: CacheProfile) -> HeaderValue {
    let max_age = shared_max_age(profile);
    let Some(expire) = profile.expire_secs() else {
        return header_value(format!(
            "max-age={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECS}"
        ));
    };
    let mut value = format!("max-age={max_age}");
    if expire > max_age {
        value.push_str(&format!(", stale-while-revalidate={}", expire - max_age));
    }
    if let Some(grace) = profile.stale_if_error_secs() {
        let past_max_age = (expire - max_age).saturating_add(grace);
        value.push_str(&format!(", stale-if-error={past_max_age}"));
    }
    header_value(value)
}

/// How long a shared cache keeps a page of `profile` before it is stale (`s-maxage`).
pub(crate) fn shared_lifetime(profile: CacheProfile) -> Duration {
    Duration::from_secs(shared_max_age(profile))
}

/// How long a shared cache keeps a page before asking again: its window, capped at `expire`
/// (the `expire` itself, or a year, for a page that never goes stale by time), and at a year.
fn shared_max_age(profile: CacheProfile) -> u64 {
    let expire = profile.expire_secs();
    profile
        .window()
        .seconds()
        .or(expire)
        .unwrap_or(STALE_WHILE_REVALIDATE_SECS)
        .min(expire.unwrap_or(u64::MAX))
        .min(STALE_WHILE_REVALIDATE_SECS)
}

/// [`cache_control`] and [`cdn_cache_control`] (or their not-found forms) of `profile`,
/// formatted once per serving thread and profile and then cloned (a reference count each): a
/// site has a few profiles, one per route, and a page read back from the store would otherwise
/// format its own. Bounded: a thread keeps [`MEMO_PROFILES`] of them; any further one is
/// formatted each time.
fn shared_cache_controls(not_found: bool, profile: CacheProfile) -> (HeaderValue, HeaderValue) {
    type Memo = Vec<(bool, CacheProfile, (HeaderValue, HeaderValue))>;
    thread_local! {
        static MEMO: std::cell::RefCell<Memo> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMO.with_borrow_mut(|memo| {
        if let Some((.., values)) = memo
            .iter()
            .find(|(n, p, _)| (*n, *p) == (not_found, profile))
        {
            return values.clone();
        }
        let values = cache_controls(not_found, profile);
        if memo.len() < MEMO_PROFILES {
            memo.push((not_found, profile, values.clone()));
        }
        values
    })
}

/// [`cache_control`] and [`cdn_cache_control`] of `profile`, or their not-found forms.
fn cache_controls(not_found: bool, profile: CacheProfile) -> (HeaderValue, HeaderValue) {
    if not_found {
        (
            not_found_cache_control(profile.window()),
            not_found_cdn_cache_control(profile.window()),
        )
    } else {
        (cache_control(profile), cdn_cache_control(profile))
    }
}

/// How many profiles' header values a serving thread keeps (see [`shared_cache_controls`]).
const MEMO_PROFILES: usize = 32;

/// `cache-control` of a loader's not-found (`recheck`: its effective window): browsers ask
/// every time; shared caches keep it only until isr would check it again, never stale, so that
/// a page created later is not hidden behind an old 404.
///
/// ```
/// let v = isr::server::not_found_cache_control(isr::Revalidate::After(5));
/// assert_eq!(v, "max-age=0, must-revalidate, s-maxage=5");
/// ```
pub fn not_found_cache_control(recheck: Revalidate) -> HeaderValue {
    let max_age = recheck.seconds().unwrap_or(0);
    header_value(format!("max-age=0, must-revalidate, s-maxage={max_age}"))
}

/// `cdn-cache-control` of a loader's not-found: the recheck window, nothing stale.
///
/// ```
/// let v = isr::server::not_found_cdn_cache_control(isr::Revalidate::After(5));
/// assert_eq!(v, "max-age=5");
/// ```
pub fn not_found_cdn_cache_control(recheck: Revalidate) -> HeaderValue {
    let max_age = recheck.seconds().unwrap_or(0);
    header_value(format!("max-age={max_age}"))
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

/// `cache-status` (RFC 9211) of an answer: `isr; hit; detail=within-window; ttl=3`, `isr;
/// fwd=stale; detail=window-passed; ttl=-2`, `isr; fwd=miss; stored; ttl=60`. `ttl` is the
/// window left (negative once stale), absent for pages that never expire; `stored` says a
/// generated outcome was kept (a path that never existed is remembered in memory only);
/// `detail` names why ([`Why`]): within the window, window passed, `expired` or `valid-until`
/// (the request waited for the new version), `stale-if-error` (regenerating an expired page
/// failed).
///
/// ```
/// use std::time::Duration;
/// use isr::{CacheStatus, Revalidate, engine::Why};
/// let hit = isr::server::cache_status(CacheStatus::Hit, &Why::WithinWindow, Revalidate::After(5), Duration::from_secs(2), true);
/// assert_eq!(hit, "isr; hit; detail=within-window; ttl=3");
/// let stale = isr::server::cache_status(CacheStatus::Stale, &Why::WindowPassed, Revalidate::After(5), Duration::from_secs(7), true);
/// assert_eq!(stale, "isr; fwd=stale; detail=window-passed; ttl=-2");
/// let miss = isr::server::cache_status(CacheStatus::Miss, &Why::Generated, Revalidate::After(60), Duration::ZERO, true);
/// assert_eq!(miss, "isr; fwd=miss; stored; ttl=60");
/// let never = isr::server::cache_status(CacheStatus::Hit, &Why::WithinWindow, Revalidate::Never, Duration::from_secs(9), true);
/// assert_eq!(never, "isr; hit; detail=within-window");
/// let expired = isr::server::cache_status(CacheStatus::Expired, &Why::Expired, Revalidate::After(60), Duration::ZERO, true);
/// assert_eq!(expired, "isr; fwd=miss; detail=expired; stored; ttl=60");
/// let until = isr::server::cache_status(CacheStatus::Expired, &Why::ValidUntil, Revalidate::After(60), Duration::ZERO, true);
/// assert_eq!(until, "isr; fwd=miss; detail=valid-until; stored; ttl=60");
/// let kept = isr::server::cache_status(CacheStatus::StaleIfError, &Why::StaleIfError, Revalidate::After(60), Duration::from_secs(760), true);
/// assert_eq!(kept, "isr; fwd=stale; detail=stale-if-error; ttl=-700");
/// let longest = isr::server::cache_status(CacheStatus::StaleIfError, &Why::StaleIfError, Revalidate::After(0), Duration::MAX, true);
/// assert_eq!(longest, "isr; fwd=stale; detail=stale-if-error; ttl=-18446744073709551615");
/// let mark = isr::store::Mark::new(isr::store::MarkMode::Stale, 1, "tag \"posts\" ünï");
/// let marked = isr::server::cache_status(CacheStatus::Stale, &Why::Invalidated(std::sync::Arc::new(mark)), Revalidate::After(60), Duration::from_secs(2), true);
/// assert_eq!(marked, r#"isr; fwd=stale; detail="invalidated (stale): tag \"posts\" %C3%BCn%C3%AF"; ttl=58"#);
/// ```
pub fn cache_status(
    cache: CacheStatus,
    why: &Why,
    window: Revalidate,
    age: Duration,
    stored: bool,
) -> HeaderValue {
    if let Why::Invalidated(_) = why {
        // Names a tag or path of any length: formatted on the heap (rare: only until the
        // marked page is regenerated).
        let mut value = Vec::new();
        push_cache_status(&mut value, cache, why, window, age, stored);
        return HeaderValue::from_bytes(&value).unwrap_or_else(|_| HeaderValue::from_static("isr"));
    }
    // Formatted on the stack: this runs for every page response. 80 bytes hold the longest
    // value (`isr; fwd=stale; detail=stale-if-error; ttl=`, 43 bytes, and a ttl within
    // ±u64::MAX, 21 at most).
    let mut value = StackText::<80>::new();
    push_cache_status(&mut value, cache, why, window, age, stored);
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("isr"))
}

/// Where [`cache_status`] is written: a stack buffer, or a `Vec` for a long value.
trait Text {
    fn push(&mut self, text: &str);
}

impl Text for Vec<u8> {
    fn push(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

impl<const N: usize> Text for StackText<N> {
    fn push(&mut self, text: &str) {
        StackText::push(self, text);
    }
}

fn push_cache_status(
    value: &mut impl Text,
    cache: CacheStatus,
    why: &Why,
    window: Revalidate,
    age: Duration,
    stored: bool,
) {
    value.push(match cache {
        CacheStatus::Hit => "isr; hit",
        CacheStatus::Stale | CacheStatus::StaleIfError => "isr; fwd=stale",
        CacheStatus::Miss | CacheStatus::Expired => "isr; fwd=miss",
    });
    if let Some(detail) = why.detail() {
        value.push("; detail=");
        value.push(&detail);
    }
    if matches!(cache, CacheStatus::Miss | CacheStatus::Expired) && stored {
        value.push("; stored");
    }
    if let Some(window) = window.seconds() {
        let ttl = i128::from(window) - i128::from(whole_seconds(age));
        value.push("; ttl=");
        value.push(itoa::Buffer::new().format(ttl));
    }
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
/// a CDN that purges by tag uses it), within [`TagBudget::DEFAULT`] (see [`crate::cdn::page_keys`]).
/// A space, comma, `%` or non-ASCII byte inside a tag is percent-encoded, so every tag stays
/// one token.
///
/// ```
/// let tags = vec!["posts".to_string(), "post:hello world".to_string()];
/// let v = isr::server::surrogate_key(&tags, "/blog/hello world");
/// assert_eq!(v, "posts post%3Ahello%20world /blog/hello%20world");
/// ```
pub fn surrogate_key(tags: &[String], key: &str) -> HeaderValue {
    purge_key_headers(tags, key, TagBudget::DEFAULT).0
}

/// `cache-tag` (and Akamai's `edge-cache-tag`): the same keys as [`surrogate_key`],
/// comma-separated (the Cloudflare convention).
///
/// ```
/// let v = isr::server::cache_tag(&["posts".to_string()], "/blog/a");
/// assert_eq!(v, "posts,/blog/a");
/// ```
pub fn cache_tag(tags: &[String], key: &str) -> HeaderValue {
    purge_key_headers(tags, key, TagBudget::DEFAULT).1
}

/// [`surrogate_key`] and [`cache_tag`] of one page within `budget`, formatted into one buffer
/// (the keys joined by spaces, then by commas) that both header values share.
fn purge_key_headers(tags: &[String], key: &str, budget: TagBudget) -> (HeaderValue, HeaderValue) {
    let (keys, _) = crate::cdn::page_keys(tags, key, budget);
    let joined: usize = keys.iter().map(|k| k.len() + 1).sum();
    let mut text = String::with_capacity(2 * joined);
    for separator in [' ', ','] {
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                text.push(separator);
            }
            text.push_str(key);
        }
    }
    let text = bytes::Bytes::from(text);
    let half = text.len() / 2;
    (
        header_value(text.slice(..half)),
        header_value(text.slice(half..)),
    )
}

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
    fn purge_key_headers_escape_tags_and_keep_the_path_within_the_budget() {
        let tags: Vec<String> = vec!["posts".into(), "post:hello world".into(), "100%,x\"".into()];
        let (surrogate, tag) = purge_key_headers(&tags, "/blog/café au lait", TagBudget::DEFAULT);
        assert_eq!(
            surrogate,
            "posts post%3Ahello%20world 100%25%2Cx%22 /blog/caf%C3%A9%20au%20lait"
        );
        assert_eq!(
            tag,
            "posts,post%3Ahello%20world,100%25%2Cx%22,/blog/caf%C3%A9%20au%20lait"
        );
        let (surrogate, tag) = purge_key_headers(&[], "/", TagBudget::DEFAULT);
        assert_eq!(
            (surrogate.to_str().unwrap(), tag.to_str().unwrap()),
            ("/", "/")
        );
        // 300 tags of 40 bytes: within 8,000 bytes and 128 keys, the path last.
        let many: Vec<String> = (0..300).map(|i| format!("{i:0>40}")).collect();
        let (surrogate, _) = purge_key_headers(&many, "/p", TagBudget::DEFAULT);
        let keys: Vec<&str> = surrogate.to_str().unwrap().split(' ').collect();
        assert_eq!(keys.len(), 128);
        assert_eq!(keys.last(), Some(&"/p"));
        assert!(surrogate.len() <= TagBudget::DEFAULT.header_bytes);
    }

    #[test]
    fn cache_controls_are_the_same_values_from_the_memo_and_past_its_bound() {
        for round in 0..2 {
            for seconds in 1..(MEMO_PROFILES as u64 + 8) {
                let window = Revalidate::After(seconds);
                let profile = CacheProfile::revalidate(seconds);
                assert_eq!(
                    shared_cache_controls(false, profile),
                    (cache_control(profile), cdn_cache_control(profile)),
                    "{round}"
                );
                assert_eq!(
                    shared_cache_controls(true, profile),
                    (
                        not_found_cache_control(window),
                        not_found_cdn_cache_control(window)
                    )
                );
                let expiring = profile.expire(seconds + 1).stale_if_error(7).browser(3);
                assert_eq!(
                    shared_cache_controls(false, expiring),
                    (cache_control(expiring), cdn_cache_control(expiring))
                );
            }
        }
    }

    #[test]
    fn no_lifetime_reaches_past_expire_and_stale_if_error() {
        for window in [1, 59, 60, 599] {
            for grace in [None, Some(1), Some(3600)] {
                for browser in [0, 30, 600, 10_000] {
                    let mut profile = CacheProfile::revalidate(window)
                        .expire(600)
                        .browser(browser);
                    if let Some(grace) = grace {
                        profile = profile.stale_if_error(grace);
                    }
                    let directives = |v: HeaderValue| -> Vec<(String, u64)> {
                        v.to_str()
                            .unwrap()
                            .split(", ")
                            .filter_map(|d| d.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
                            .collect()
                    };
                    let cc = directives(cache_control(profile));
                    assert!(cc.iter().all(|(_, v)| *v <= 600), "{cc:?}");
                    let cdn = directives(cdn_cache_control(profile));
                    let get = |k: &str| cdn.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
                    let max_age = get("max-age").unwrap();
                    let swr = get("stale-while-revalidate").unwrap_or(0);
                    assert_eq!(max_age + swr, 600, "{cdn:?}");
                    let sie = get("stale-if-error");
                    assert_eq!(sie.map(|s| max_age + s), grace.map(|g| 600 + g), "{cdn:?}");
                }
            }
        }
    }
}
