//! What the vendor adapters share: a base URL that tests can point at a stand-in, a secret
//! that is never logged, and one JSON POST.

use super::transport::{retry_after, Answer, Transport};
use super::SendError;
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// A secret from the environment: its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret in `variable`, if set and not empty.
    pub fn from_env(variable: &str) -> Option<Secret> {
        std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret(v.trim().to_owned()))
    }

    /// Wraps `value` (tests, embedders).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself (for the request that needs it; never for a log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An API's base URL: `https://`, or `http://` on a loopback address only (a stand-in or a
/// local proxy: credentials never cross a network in clear); no query.
///
/// ```
/// let base = isr::cdn::ApiBase::parse("https://api.fastly.com").unwrap();
/// assert_eq!(base.join("/service/x/purge"), "https://api.fastly.com/service/x/purge");
/// let base = isr::cdn::ApiBase::parse("http://127.0.0.1:9000/client/v4/").unwrap();
/// assert_eq!(base.join("/zones/z/purge_cache"), "http://127.0.0.1:9000/client/v4/zones/z/purge_cache");
/// assert!(isr::cdn::ApiBase::parse("ftp://x").is_err());
/// assert!(isr::cdn::ApiBase::parse("https://x/?a=1").is_err());
/// assert!(isr::cdn::ApiBase::parse("http://api.fastly.com").is_err());
/// assert!(isr::cdn::ApiBase::parse("http://localhost:9000").is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiBase(String);

impl ApiBase {
    /// Parses `url`.
    ///
    /// # Errors
    /// When it is not an `http(s)://host[:port][/path]` URL without a query.
    pub fn parse(url: &str) -> Result<ApiBase, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
        if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
            return Err(format!("{url:?} is not an https://host[/path] URL"));
        }
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if uri.scheme_str() == Some("http") && !loopback {
            return Err(format!(
                "{url:?}: http:// only on a loopback address (credentials would travel in clear); use https://"
            ));
        }
        Ok(ApiBase(url.trim_end_matches('/').to_owned()))
    }

    /// `path` under the base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The host (and port) of the base.
    pub fn authority(&self) -> String {
        self.0
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default()
    }
}

/// POSTs `body` (`content_type`) to `url` with `headers`, and turns the answer into a
/// [`SendError`] unless it is `2xx`; `what` names the request in errors.
pub(crate) async fn post(
    transport: &Transport,
    url: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    content_type: &'static str,
    body: Vec<u8>,
    what: &str,
) -> Result<Answer, SendError> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .header(axum::http::header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| SendError::Refused(format!("{what}: {e}")))?;
    let answer = transport
        .send(request)
        .await
        .map_err(|error| SendError::Retry { error, after: None })?;
    if answer.status.is_success() {
        return Ok(answer);
    }
    let detail = String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
    Err(SendError::from_status(
        answer.status,
        retry_after(&answer.headers),
        format!("{what} ({detail})"),
    ))
}

/// A header value from a secret (a bad byte is a refused request, never a panic).
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, SendError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SendError::Refused("the credential is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}
