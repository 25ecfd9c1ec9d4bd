//! Routing: request paths → registered pages, with the canonical cache key of each page.
//!
//! A key is the decoded path (`/blog/hello`); every segment of it has been checked so that it maps
//! to exactly one directory under the site root and can never leave it.

use crate::model::key::is_canonical_key;
#[cfg(any(test, feature = "test-util"))]
pub use crate::model::key::test_key;
pub use crate::model::key::{
    segment_is_acceptable, url_path, url_segment, PageKey, MAX_SEGMENT_BYTES, PAGE_FILE,
};
use crate::page::{PageDef, Params};
use percent_encoding::percent_decode_str;
use std::fmt;

/// All page routes of an app.
///
/// ```
/// // `Routes::new(isr::pages().collect())` in an app; here routes of example pages.
/// let routes = isr::__private::example_routes(&["/blog", "/blog/:slug"]);
/// match routes.resolve("/blog/hello") {
///     isr::Resolved::Page { key, params, .. } => {
///         assert_eq!(key.as_str(), "/blog/hello");
///         assert_eq!(params.get("slug").unwrap(), "hello");
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub struct Routes {
    router: matchit::Router<usize>,
    defs: Vec<&'static PageDef>,
    /// The paths of static file routes (`/blog/feed.xml`): no page of a dynamic route may live
    /// under one (its folder would be that file).
    files: Vec<String>,
}

/// The result of routing one request path.
#[derive(Debug)]
pub enum Resolved {
    /// A page route matched.
    Page {
        /// The matched route.
        def: &'static PageDef,
        /// The page's canonical key: the percent-decoded path.
        key: PageKey,
        /// The `:param` values the path gave, decoded, in route order.
        params: Params,
    },
    /// The page lives at this canonical URL (308): the path without its trailing slash, or
    /// (from [`Routes::resolve_request`]) the query with its listed parameters spelled
    /// canonically; [`Routes::resolve_request`]'s keep the request's other parameters.
    Canonical(String),
    /// No route, or a path that is not acceptable (traversal, control characters, …).
    NotFound,
}

/// Two pages that cannot live side by side.
///
/// ```
/// let err = isr::RouteError("`/a` conflicts".into());
/// assert!(err.to_string().contains("/a"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError(pub String);

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

impl Routes {
    /// Builds the router; fails when two pages claim the same or an ambiguous path.
    ///
    /// ```
    /// let routes = isr::Routes::new(isr::pages().collect()).unwrap();
    /// # let _ = routes;
    /// ```
    ///
    /// # Errors
    /// A [`RouteError`] naming the first page the router refuses: its path is an earlier
    /// page's, is ambiguous with one (params at the same place under other names), or is not
    /// a valid pattern.
    pub fn new(defs: Vec<&'static PageDef>) -> Result<Self, RouteError> {
        let mut router = matchit::Router::new();
        for (index, def) in defs.iter().enumerate() {
            router
                .insert(matchit_pattern(def.path), index)
                .map_err(|e| {
                    RouteError(format!(
                        "page `{}` ({}) cannot be routed: {e}",
                        def.path, def.id
                    ))
                })?;
        }
        let files = defs
            .iter()
            .filter(|d| d.is_file())
            .map(|d| d.path.to_string())
            .collect();
        Ok(Routes {
            router,
            defs,
            files,
        })
    }

    /// The keys of static file routes (`/blog/feed.xml`), stored under their file name.
    ///
    /// ```
    /// let routes = isr::__private::example_routes(&["/blog", "/blog/feed.xml"]);
    /// assert_eq!(routes.file_keys(), ["/blog/feed.xml"]);
    /// ```
    pub fn file_keys(&self) -> Vec<String> {
        self.files.clone()
    }

    /// Whether `key` lies under a file route's path (`/blog/feed.xml/x`).
    fn under_a_file(&self, key: &str) -> bool {
        self.files.iter().any(|file| {
            key.strip_prefix(file.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// The registered pages, in registration order.
    ///
    /// ```
    /// let routes = isr::__private::example_routes(&["/blog", "/blog/:slug"]);
    /// let paths: Vec<&str> = routes.defs().iter().map(|def| def.path).collect();
    /// assert_eq!(paths, ["/blog", "/blog/:slug"]);
    /// ```
    pub fn defs(&self) -> &[&'static PageDef] {
        &self.defs
    }

    /// The page registered for exactly this route pattern.
    ///
    /// ```
    /// let routes = isr::__private::example_routes(&["/blog", "/blog/:slug"]);
    /// assert_eq!(routes.def("/blog/:slug").unwrap().path, "/blog/:slug");
    /// // A pattern, not a path.
    /// assert!(routes.def("/blog/hello").is_none());
    /// ```
    pub fn def(&self, pattern: &str) -> Option<&'static PageDef> {
        self.defs.iter().copied().find(|d| d.path == pattern)
    }

    /// Routes a raw (percent-encoded) request path; the query string must be stripped already.
    ///
    /// ```
    /// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// assert!(matches!(routes.resolve("/blog/%2e%2e/secret"), isr::Resolved::NotFound));
    /// assert!(matches!(routes.resolve("/blog/ok"), isr::Resolved::Page { .. }));
    /// ```
    pub fn resolve(&self, raw_path: &str) -> Resolved {
        // Most request paths are already canonical keys: routed as they are, nothing copied.
        if is_plain_key(raw_path) {
            return self.route_checked(raw_path);
        }
        let Some(segments) = decode_segments(raw_path) else {
            return Resolved::NotFound;
        };
        let key = key_of(&segments);
        if self.router.at(&key).is_err() {
            return Resolved::NotFound;
        }
        if raw_path.len() > 1 && raw_path.ends_with('/') {
            return Resolved::Canonical(raw_path.trim_end_matches('/').to_string());
        }
        self.route_checked(&key)
    }

    /// Routes a request: its raw path as [`Routes::resolve`] does (a canonical path keeps the
    /// request's query), and for a route with
    /// `query = [...]` its listed query parameters (`raw_query`, without `?`), which make the
    /// key of a variant (`/blog?page=2`). Parameters not listed are dropped; the listed ones
    /// are read as [`crate::model::query`] says and canonicalized by the loader's `Query<T>`
    /// ([`QuerySpec::canonical`](crate::page::QuerySpec)): values that do not parse, or a
    /// canonical query longer than [`MAX_QUERY_BYTES`](crate::model::query::MAX_QUERY_BYTES),
    /// name no page.
    ///
    /// ```
    /// let routes = isr::__private::example_routes_with_query(&["/blog", "/about"], &["page"]);
    /// let key = |path, query| match routes.resolve_request(path, query) {
    ///     isr::Resolved::Page { key, .. } => key.as_str().to_owned(),
    ///     other => panic!("{other:?}"),
    /// };
    /// assert_eq!(key("/blog", Some("page=2&utm_source=x")), "/blog?page=2");
    /// assert_eq!(key("/blog", Some("utm_source=x")), "/blog");
    /// assert_eq!(key("/blog", None), "/blog");
    /// // Spelled otherwise: sent to the canonical spelling, other parameters kept.
    /// let moved = |path, query| match routes.resolve_request(path, query) {
    ///     isr::Resolved::Canonical(location) => location,
    ///     other => panic!("{other:?}"),
    /// };
    /// assert_eq!(moved("/blog", Some("page=2&page=3&utm_source=x")), "/blog?page=2&utm_source=x");
    /// assert_eq!(moved("/blog/", Some("page=2")), "/blog?page=2", "the trailing slash first");
    /// ```
    pub fn resolve_request(&self, raw_path: &str, raw_query: Option<&str>) -> Resolved {
        match self.resolve(raw_path) {
            Resolved::Page { def, key, params } if def.query.has_variants() => {
                let listed = crate::model::query::listed(raw_query, def.query.names);
                let Some(canonical) = (def.query.canonical)(listed) else {
                    return Resolved::NotFound;
                };
                // What the loader's `Query<T>` wrote back must be listed parameters (a
                // serialize-only rename would make a key no route reads, and a redirect loop).
                let names_listed = canonical
                    .iter()
                    .all(|(name, _)| def.query.names.contains(&name));
                let text = crate::model::query::encode(&canonical);
                if !names_listed || text.len() > crate::model::query::MAX_QUERY_BYTES {
                    return Resolved::NotFound;
                }
                // The location is a URL: the key's path percent-encoded again.
                let url_path = key.to_url_path();
                if let Some(location) = respelled(&url_path, raw_query, def.query.names, &text) {
                    return Resolved::Canonical(location);
                }
                if text.is_empty() {
                    return Resolved::Page { def, key, params };
                }
                let key = PageKey::checked(&format!("{}?{text}", key.as_str()));
                Resolved::Page { def, key, params }
            }
            Resolved::Canonical(path) => Resolved::Canonical(match raw_query {
                Some(query) => format!("{path}?{query}"),
                None => path,
            }),
            other => other,
        }
    }

    /// Routes a URL's path and query (`/blog?page=02`) to the page a request for it gets: a
    /// canonical location (another spelling of a variant, a trailing slash) is followed once.
    ///
    /// ```
    /// let routes = isr::__private::example_routes_with_query(&["/blog"], &["page"]);
    /// let isr::Resolved::Page { key, .. } = routes.resolve_url("/blog/?page=2&page=3") else { panic!() };
    /// assert_eq!(key.as_str(), "/blog?page=2");
    /// ```
    pub fn resolve_url(&self, url: &str) -> Resolved {
        let split = |url: &str| match url.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (url.to_owned(), None),
        };
        let (path, query) = split(url.split('#').next().unwrap_or_default());
        match self.resolve_request(&path, query.as_deref()) {
            Resolved::Canonical(location) => {
                let (path, query) = split(&location);
                match self.resolve_request(&path, query.as_deref()) {
                    // A second redirect (a trailing slash, then the query's spelling).
                    Resolved::Canonical(location) => {
                        let (path, query) = split(&location);
                        self.resolve_request(&path, query.as_deref())
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Whether `key`'s query (if any) is one its route lists and reads as it is written.
    fn query_is_canonical_for(def: &PageDef, key: &str) -> bool {
        let Some((_, text)) = key.split_once('?') else {
            return true;
        };
        let Some(params) = crate::model::query::decode(text) else {
            return false;
        };
        def.query.has_variants()
            && params
                .iter()
                .all(|(name, _)| def.query.names.contains(&name))
            && (def.query.canonical)(params.clone())
                .is_some_and(|again| crate::model::query::encode(&again) == text)
    }

    /// Routes an already decoded key (from the store, the tag index or an operator): nothing is
    /// percent-decoded again, so `/blog/sale%2520now` stays that page and never becomes
    /// `/blog/sale%20now`. `None` when the text is not a canonical key of a page route.
    ///
    /// ```
    /// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// assert!(routes.resolve_key("/blog/../x").is_none());
    /// assert!(routes.resolve_key("/blog/").is_none());
    /// let (_, key, params) = routes.resolve_key("/blog/x").unwrap();
    /// assert_eq!((key.as_str(), params.get("slug").unwrap()), ("/blog/x", "x"));
    /// ```
    pub fn resolve_key(&self, key: &str) -> Option<(&'static PageDef, PageKey, Params)> {
        if !is_canonical_key(key) {
            return None;
        }
        let path = key.split_once('?').map_or(key, |(path, _)| path);
        match self.route_checked(path) {
            Resolved::Page { def, params, .. } if Self::query_is_canonical_for(def, key) => {
                Some((def, PageKey::checked(key), params))
            }
            _ => None,
        }
    }

    /// Like [`Routes::resolve_key`] without the params (start-up routes every stored key).
    ///
    /// ```
    /// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// assert!(routes.page_of_key("/blog/../x").is_none());
    /// assert_eq!(routes.page_of_key("/blog/x").unwrap().1.as_str(), "/blog/x");
    /// ```
    pub fn page_of_key(&self, key: &str) -> Option<(&'static PageDef, PageKey)> {
        if !is_canonical_key(key) {
            return None;
        }
        let path = key.split_once('?').map_or(key, |(path, _)| path);
        let matched = self.router.at(path).ok()?;
        let def = self.defs[*matched.value];
        if def.is_dynamic() && self.under_a_file(path) {
            return None;
        }
        if !Self::query_is_canonical_for(def, key) {
            return None;
        }
        Some((def, PageKey::checked(key)))
    }

    /// Matches a key whose segments were checked.
    fn route_checked(&self, key: &str) -> Resolved {
        let Ok(matched) = self.router.at(key) else {
            return Resolved::NotFound;
        };
        let def = self.defs[*matched.value];
        if def.is_dynamic() && !self.files.is_empty() && self.under_a_file(key) {
            return Resolved::NotFound;
        }
        let params = matched
            .params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Resolved::Page {
            def,
            key: PageKey::checked(key),
            params,
        }
    }

    /// The key of `def`'s page for `params` (used for pages enumerated by `paths`).
    ///
    /// ```
    /// let routes = isr::__private::example_routes(&["/blog/:slug"]);
    /// let def = routes.def("/blog/:slug").unwrap();
    /// let key = routes.key_for(def, &isr::Params::new().with("slug", "hello")).unwrap();
    /// assert_eq!(key.as_str(), "/blog/hello");
    /// assert!(routes.key_for(def, &isr::Params::new()).is_err(), "a param is missing");
    /// ```
    ///
    /// # Errors
    /// A [`RouteError`] when a `:param` of the route has no value in `params`, when a value is
    /// not an acceptable path segment (see [`segment_is_acceptable`]), or when the resulting
    /// path routes to another page or lies under a file route.
    pub fn key_for(&self, def: &PageDef, params: &Params) -> Result<PageKey, RouteError> {
        let mut key = String::new();
        for segment in def.path.split('/').filter(|s| !s.is_empty()) {
            key.push('/');
            match segment.strip_prefix(':') {
                Some(name) => {
                    let value = params
                        .get(name)
                        .map_err(|e| RouteError(format!("page `{}`: {e}", def.path)))?;
                    if !segment_is_acceptable(value) {
                        return Err(RouteError(format!(
                            "page `{}`: param `{name}` = {value:?} is not a valid path segment",
                            def.path
                        )));
                    }
                    key.push_str(value);
                }
                None => key.push_str(segment),
            }
        }
        if key.is_empty() {
            key.push('/');
        }
        // A param may spell another route's path (`slug = "feed.xml"`): that page is not
        // `def`'s to make.
        let routed_here = self
            .router
            .at(&key)
            .is_ok_and(|m| std::ptr::eq(self.defs[*m.value], def));
        if !routed_here || self.under_a_file(&key) {
            return Err(RouteError(format!(
                "page `{}`: params {params:?} make the path `{key}`, which belongs to another route",
                def.path
            )));
        }
        Ok(PageKey::checked(&key))
    }
}

/// Where a request whose listed query parameters are not spelled as their canonical `text` is
/// sent (`None` when they are): its page's path with `text`, then the parameters the route
/// does not list, as sent (`?page=1&utm_source=x` → `?utm_source=x` when 1 is the default).
/// The listed parameters are compared in name order, so their order alone does not redirect;
/// a value spelled otherwise (`page=02`, `tag=a+b`), repeated, empty or equal to its default
/// does. One page then has one URL, and a cache in front (which sorts the query) one object
/// for it, which a purge of that URL reaches.
fn respelled(path: &str, raw_query: Option<&str>, listed: &[&str], text: &str) -> Option<String> {
    let pairs: Vec<&str> = raw_query
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let is_listed = |pair: &&str| {
        let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
        percent_decode_str(&name.replace('+', " "))
            .decode_utf8()
            .is_ok_and(|name| listed.contains(&name.as_ref()))
    };
    let (mut given, others): (Vec<&str>, Vec<&str>) = pairs.into_iter().partition(is_listed);
    given.sort_by_key(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name));
    if given.join("&") == text {
        return None;
    }
    let query: Vec<&str> = std::iter::once(text)
        .filter(|t| !t.is_empty())
        .chain(others)
        .collect();
    Some(match query.is_empty() {
        true => path.to_owned(),
        false => format!("{path}?{}", query.join("&")),
    })
}

/// `/blog/:slug` → `/blog/{slug}` (matchit syntax).
fn matchit_pattern(path: &str) -> String {
    path.split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => s.replace('{', "{{").replace('}', "}}"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a request path is a canonical key as it stands: nothing to percent-decode (no `%`),
/// and a canonical key otherwise (no trailing slash, every segment acceptable). Anything else
/// takes the decoding path.
fn is_plain_key(raw_path: &str) -> bool {
    // A `?` would be read as a variant's query: a request path never holds one (a caller that
    // passes path and query together gets its path refused, not a page named after both).
    !raw_path.contains(['%', '?']) && is_canonical_key(raw_path)
}

/// Splits and percent-decodes a path; `None` if any segment is unacceptable.
fn decode_segments(raw_path: &str) -> Option<Vec<String>> {
    let rest = raw_path.strip_prefix('/')?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|raw| {
            let decoded = percent_decode_str(raw).decode_utf8().ok()?;
            segment_is_acceptable(&decoded).then(|| decoded.into_owned())
        })
        .collect()
}

fn key_of(segments: &[String]) -> String {
    if segments.is_empty() {
        return "/".into();
    }
    segments.iter().fold(String::new(), |mut key, s| {
        key.push('/');
        key.push_str(s);
        key
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{CacheProfile, Fallback, Generated, Revalidate};
    use futures::future::BoxFuture;

    fn load(_: crate::context::LoadContext) -> BoxFuture<'static, crate::Result<Generated>> {
        Box::pin(async { Ok(Generated::NotFound) })
    }

    fn def(path: &'static str) -> &'static PageDef {
        Box::leak(Box::new(PageDef {
            id: path,
            path,
            cache: CacheProfile::of(Revalidate::After(1)),
            timeout_secs: None,
            fallback: Fallback::Blocking,
            tags: &[],
            load,
            paths: None,
            accepts: crate::page::accept_all,
            check: crate::page::nothing_to_check,
            content_type: None,
            hydration: crate::model::Hydration::Full {
                export: "isr_hydrate_test",
            },
            query: crate::page::QuerySpec::NONE,
        }))
    }

    fn routes() -> Routes {
        Routes::new(vec![def("/"), def("/blog"), def("/blog/:slug")]).unwrap()
    }

    fn key(routes: &Routes, path: &str) -> Option<String> {
        match routes.resolve(path) {
            Resolved::Page { key, .. } => Some(key.to_string()),
            _ => None,
        }
    }

    #[test]
    fn url_paths_of_keys_route_back_to_the_same_keys() {
        let r = routes();
        // A `?` in a segment would read as a variant's query: no page has one.
        assert!(matches!(r.resolve("/blog/a%3Fb"), Resolved::NotFound));
        for (request, url_path) in [
            ("/", "/"),
            ("/blog", "/blog"),
            ("/blog/caf%C3%A9", "/blog/caf%C3%A9"),
            ("/blog/sale%2520now", "/blog/sale%2520now"),
            ("/blog/a%20b%23d", "/blog/a%20b%23d"),
            ("/blog/x:y@z,1;2=3", "/blog/x:y@z,1;2=3"),
        ] {
            let Resolved::Page { key, .. } = r.resolve(request) else {
                panic!("{request} routes");
            };
            assert_eq!(key.to_url_path(), url_path, "{request}");
            let Resolved::Page { key: again, .. } = r.resolve(&key.to_url_path()) else {
                panic!("{url_path} routes");
            };
            assert_eq!(again, key);
        }
    }

    #[test]
    fn static_and_dynamic_paths_resolve_to_decoded_keys() {
        let r = routes();
        assert_eq!(key(&r, "/").as_deref(), Some("/"));
        assert_eq!(key(&r, "/blog").as_deref(), Some("/blog"));
        assert_eq!(key(&r, "/blog/hello").as_deref(), Some("/blog/hello"));
        assert_eq!(key(&r, "/blog/h%65llo").as_deref(), Some("/blog/hello"));
        assert_eq!(key(&r, "/blog/caf%C3%A9").as_deref(), Some("/blog/café"));
        match r.resolve("/blog/x") {
            Resolved::Page { params, def, .. } => {
                assert_eq!(params.get("slug").unwrap(), "x");
                assert_eq!(def.path, "/blog/:slug");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_slash_redirects_to_canonical_path() {
        let r = routes();
        assert!(matches!(r.resolve("/blog/"), Resolved::Canonical(p) if p == "/blog"));
        assert!(matches!(r.resolve("/blog/a/"), Resolved::Canonical(p) if p == "/blog/a"));
        assert!(matches!(r.resolve("/nope/"), Resolved::NotFound));
    }

    #[test]
    fn traversal_and_odd_segments_are_not_found() {
        let r = routes();
        for bad in [
            "/blog/..",
            "/blog/%2e%2e",
            "/blog/%2E%2E/x",
            "/blog/a%2Fb",
            "/blog/a%5Cb",
            "/blog/a%00b",
            "/blog/%0a",
            "/blog/.isr",
            "/.isr",
            "/.isr/pages",
            "/blog//x",
            "//blog",
            "/blog/%ff",
            "blog",
            "/blog/a/b",
            "/blog/index.html",
        ] {
            assert!(matches!(r.resolve(bad), Resolved::NotFound), "{bad}");
        }
        let long = format!("/blog/{}", "a".repeat(256));
        assert!(matches!(r.resolve(&long), Resolved::NotFound));
        let ok = format!("/blog/{}", "a".repeat(255));
        assert!(key(&r, &ok).is_some());
    }

    #[test]
    fn key_for_checks_param_values() {
        let r = routes();
        let post = r.def("/blog/:slug").unwrap();
        assert_eq!(
            r.key_for(post, &Params::new().with("slug", "a"))
                .unwrap()
                .as_str(),
            "/blog/a"
        );
        assert!(r
            .key_for(post, &Params::new().with("slug", "../x"))
            .is_err());
        assert!(r.key_for(post, &Params::new()).is_err());
        assert_eq!(
            r.key_for(r.def("/").unwrap(), &Params::new())
                .unwrap()
                .as_str(),
            "/"
        );
    }

    #[test]
    fn decoded_keys_are_never_decoded_again() {
        let r = routes();
        let (def, page, params) = r.resolve_key("/blog/sale%20now").unwrap();
        assert_eq!(def.path, "/blog/:slug");
        assert_eq!(page.as_str(), "/blog/sale%20now");
        assert_eq!(params.get("slug").unwrap(), "sale%20now");
        // the raw path that names this page encodes the `%`
        assert_eq!(
            key(&r, "/blog/sale%2520now").as_deref(),
            Some("/blog/sale%20now")
        );
        for bad in [
            "",
            "blog",
            "/blog/",
            "/blog//x",
            "/blog/..",
            "/blog/.isr",
            "/nope",
        ] {
            assert!(r.resolve_key(bad).is_none(), "{bad}");
        }
        assert_eq!(r.resolve_key("/").unwrap().1.as_str(), "/");
    }

    #[test]
    fn conflicting_routes_are_rejected() {
        let err = Routes::new(vec![def("/a/:x"), def("/a/:y")]).err().unwrap();
        assert!(err.0.contains("/a/:y"), "{err}");
    }
}
