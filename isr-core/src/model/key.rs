//! [`PageKey`]: the canonical, decoded path of one page (with the canonical query of a variant),
//! and the rules of its segments.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The longest path segment accepted, in bytes (a file name limit on common file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The file name of every page in the static export (`<key>/index.html`).
pub const PAGE_FILE: &str = "index.html";

/// The canonical, decoded path of one page (`/blog/hello`): the cache key of every tier. A
/// variant of a route with `query = [...]` adds `?` and its canonical query
/// (`/blog?page=2&tag=rust`, see [`query`](crate::model::query)); no path segment holds a `?`,
/// so the first `?` always starts the query.
///
/// Only the router makes one ([`Routes::resolve`](crate::route::Routes::resolve), [`Routes::resolve_key`](crate::route::Routes::resolve_key), [`Routes::key_for`](crate::route::Routes::key_for)),
/// so a `PageKey` always names a path whose every segment passed [`segment_is_acceptable`]: it
/// maps to exactly one folder under the site root and can never leave it. Cloning is a
/// reference-count increment (the text is shared by the page table, the tag index and the caches).
///
/// ```
/// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
/// let isr::Resolved::Page { key, .. } = routes.resolve("/blog/h%C3%A9llo") else { panic!() };
/// assert_eq!(key.as_str(), "/blog/héllo");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageKey(Arc<str>);

impl PageKey {
    /// Only for paths whose segments were checked (the router's own constructors).
    pub(crate) fn checked(path: &str) -> Self {
        PageKey(Arc::from(path))
    }

    /// The decoded path.
    ///
    /// ```
    /// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// let isr::Resolved::Page { key, .. } = routes.resolve("/blog/hello") else { panic!() };
    /// assert_eq!(key.as_str(), "/blog/hello");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments (none for `/`).
    ///
    /// ```
    /// # let routes = isr::__private::example_routes(&["/", "/blog/:slug"]);
    /// # let key = |path| match routes.resolve(path) { isr::Resolved::Page { key, .. } => key, _ => panic!() };
    /// assert_eq!(key("/blog/hello").segments().collect::<Vec<_>>(), ["blog", "hello"]);
    /// assert_eq!(key("/").segments().count(), 0);
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').filter(|s| !s.is_empty())
    }

    /// The decoded path, without a variant's query.
    ///
    /// ```
    /// # let routes = isr::__private::example_routes_with_query(&["/blog"], &["page"]);
    /// # let key = |path, query| match routes.resolve_request(path, query) { isr::Resolved::Page { key, .. } => key, _ => panic!() };
    /// assert_eq!(key("/blog", Some("page=2")).path(), "/blog");
    /// assert_eq!(key("/blog", Some("page=2")).query(), Some("page=2"));
    /// assert_eq!(key("/blog", None).query(), None);
    /// ```
    pub fn path(&self) -> &str {
        self.0.split_once('?').map_or(&self.0, |(path, _)| path)
    }

    /// A variant's canonical query (after `?`); `None` for the page itself.
    pub fn query(&self) -> Option<&str> {
        self.0.split_once('?').map(|(_, query)| query)
    }

    /// The params of a variant's query (empty for the page itself).
    pub fn query_params(&self) -> crate::model::Params {
        self.query()
            .and_then(crate::model::query::decode)
            .unwrap_or_default()
    }

    /// The path as a URL path: each segment percent-encoded where RFC 3986 requires it, so
    /// that routing it gives this key back (what a CDN is told to purge): the key
    /// `/blog/sale%20now` (requested as `/blog/sale%2520now`) is `/blog/sale%2520now` again.
    pub fn to_url_path(&self) -> String {
        url_path(self.as_str())
    }
}

/// [`PageKey::to_url_path`] of a key's text (a stored key).
///
/// ```
/// assert_eq!(isr::route::url_path("/"), "/");
/// assert_eq!(isr::route::url_path("/blog/hello"), "/blog/hello");
/// ```
pub fn url_path(key: &str) -> String {
    let (key, query) = match key.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (key, None),
    };
    let mut path = String::with_capacity(key.len() + 8);
    for segment in key.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(&url_segment(segment));
    }
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = query {
        // Canonical: already percent-encoded.
        path.push('?');
        path.push_str(query);
    }
    path
}

/// One path segment (a slug, say: `/` included) percent-encoded as isr encodes page paths, so
/// that `/blog/` + it routes to the page whose param is `text`: the link a feed or an email
/// should carry for the page the sitemap lists.
///
/// ```
/// assert_eq!(isr::route::url_segment("hello-world"), "hello-world");
/// assert_eq!(isr::route::url_segment("a b#c?d/e%"), "a%20b%23c%3Fd%2Fe%25");
/// assert_eq!(isr::route::url_segment("été"), "%C3%A9t%C3%A9");
/// ```
pub fn url_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT_ESCAPES).to_string()
}

/// Bytes a path segment cannot hold as they are (everything but RFC 3986 `pchar`: unreserved,
/// sub-delims, `:` and `@`).
const SEGMENT_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

impl Borrow<str> for PageKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A key for unit tests of the tiers below the router (the path must be canonical): only with
/// the `test-util` feature, which `isr` enables for its own tests (a key is otherwise made only
/// by the router).
///
/// # Panics
/// When `path` is not a canonical key.
#[cfg(any(test, feature = "test-util"))]
pub fn test_key(path: &str) -> PageKey {
    assert!(is_canonical_key(path), "{path:?} is not a canonical key");
    PageKey::checked(path)
}

/// Whether `key` is a decoded path the router could have made: `/`, or `/`-separated
/// acceptable segments.
pub(crate) fn is_canonical_key(key: &str) -> bool {
    let (path, query) = match key.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (key, None),
    };
    let path_ok =
        path == "/" || (path.starts_with('/') && path[1..].split('/').all(segment_is_acceptable));
    path_ok && query.is_none_or(crate::model::query::is_canonical)
}

/// Whether a decoded segment can safely name a directory under the site root. Besides
/// traversal and odd characters, this rules out [`PAGE_FILE`] (a page's folder can never be
/// another page's file) and `?` (a key's first `?` starts a variant's query, and a variant's
/// folder, `%3F<query>`, can never be a page's).
///
/// ```
/// use isr::route::segment_is_acceptable as ok;
/// assert!(ok("hello-world") && ok("café"));
/// assert!(!ok("..") && !ok(".isr") && !ok("a/b") && !ok("a\\b") && !ok("a\0b") && !ok(""));
/// assert!(!ok("index.html") && !ok("what?"));
/// ```
pub fn segment_is_acceptable(segment: &str) -> bool {
    !segment.is_empty()
        && segment != PAGE_FILE
        && segment.len() <= MAX_SEGMENT_BYTES
        && !segment.starts_with('.')
        && !segment
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '?' || c.is_control())
}
