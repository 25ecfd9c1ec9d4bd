//! The HTTP client the purgers send with: `http://` always (Varnish on the same network, and
//! the stand-ins of the tests), `https://` with the `cdn-apis` feature (rustls with the Mozilla
//! roots of `webpki-roots`, so a static binary needs no system certificates).

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Longest wait for one answer (connecting included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of an answer's body read at most (an API's JSON answer; the rest is ignored).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[cfg(feature = "cdn-apis")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "cdn-apis"))]
type Connector = HttpConnector;

/// A pooled client; cheap to clone.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    #[cfg_attr(not(feature = "cdn-apis"), allow(dead_code))]
    pub body: Bytes,
}

impl Transport {
    pub(crate) fn new() -> Transport {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(REQUEST_TIMEOUT));
        #[cfg(feature = "cdn-apis")]
        let http = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        Transport {
            client: Client::builder(TokioExecutor::new()).build(http),
        }
    }

    /// Sends `request` and reads the answer (at most 64 KiB of its body), within
    /// [`REQUEST_TIMEOUT`].
    ///
    /// # Errors
    /// A message naming the URL when nothing came back in time or the connection failed.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let target = format!(
            "{} {}://{}{}",
            request.method(),
            request.uri().scheme_str().unwrap_or("http"),
            request.uri().authority().map_or("", |a| a.as_str()),
            request.uri().path()
        );
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{target}: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("{target}: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

/// How long an answer asks to wait: `retry-after` (seconds, or an HTTP date), else Fastly's
/// `fastly-ratelimit-reset` (epoch seconds), else Akamai's
/// `x-ratelimit-seconds-to-refresh-limit`; at most an hour.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let until = |at: std::time::SystemTime| {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    };
    let wait = if let Some(value) = text("retry-after") {
        match value.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => until(httpdate::parse_http_date(value).ok()?),
        }
    } else if let Some(reset) = text("fastly-ratelimit-reset") {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(reset.parse().ok()?);
        until(at)
    } else {
        Duration::from_secs(text("x-ratelimit-seconds-to-refresh-limit")?.parse().ok()?)
    };
    Some(wait.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_an_answer_asks_for() {
        let headers = |pairs: &[(&'static str, String)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7".into())])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "999999".into())])),
            Some(Duration::from_secs(3600))
        );
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(soon);
        let wait = retry_after(&headers(&[("retry-after", date)])).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let reset = soon
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let wait = retry_after(&headers(&[("fastly-ratelimit-reset", reset)])).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            retry_after(&headers(&[(
                "x-ratelimit-seconds-to-refresh-limit",
                "3".into()
            )])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "soon".into())])),
            None
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
