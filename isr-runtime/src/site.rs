//! The site's public address: what absolute links (feeds, sitemaps) start with.

use std::fmt;
use std::sync::Arc;

/// The public origin of the site, `scheme://host[:port]` without a trailing slash: from
/// `--public-url` / `ISR_PUBLIC_URL`, else `http://<--addr>`. Every app's state holds one, so
/// a loader takes it as `State<isr::SiteUrl>`.
///
/// ```
/// let site = isr::SiteUrl::parse("https://blog.example.com/").unwrap();
/// assert_eq!(site.as_str(), "https://blog.example.com");
/// assert_eq!(site.join("/blog/hello"), "https://blog.example.com/blog/hello");
/// assert!(isr::SiteUrl::parse("blog.example.com").is_err());
/// assert!(isr::SiteUrl::parse("https://example.com/blog").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteUrl(Arc<str>);

impl SiteUrl {
    /// Checks `text` is an `http`/`https` origin (no path, query or fragment).
    ///
    /// # Errors
    /// A message quoting `text` when it is not a URL, or not an origin: another scheme, no
    /// host, a path other than `/`, a query or a fragment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('/');
        let uri: axum::http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
        let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
        if !scheme_ok || uri.authority().is_none() || !path_ok || text.contains('#') {
            return Err(format!(
                "{text:?} is not an origin: expected http(s)://host[:port], e.g. https://blog.example.com"
            ));
        }
        Ok(SiteUrl(Arc::from(text)))
    }

    /// The origin, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute URL of `path` (which starts with `/`; percent-encode it first if needed,
    /// e.g. with [`crate::PageKey::to_url_path`]).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
