//! Who may use the protected routes, and what a failed attempt costs.
//!
//! | route | credential |
//! |---|---|
//! | `POST /_isr/revalidate` | `Authorization: Bearer <ISR_REVALIDATE_SECRET>` |
//! | `/_isr/api/…` | `Bearer <ISR_ADMIN_TOKEN>`, or a dashboard session (changes: from the dashboard itself) |
//! | `GET /_isr/metrics` | `Bearer <ISR_METRICS_TOKEN>`, else `Bearer <ISR_ADMIN_TOKEN>`; open when neither is set |
//! | `POST /_isr/login` | the admin token, once: then a session ([`super::session`]) |
//! | `/_isr/` forms | a session, from the dashboard itself |
//! | `GET /_isr/preview` | a link signed with `ISR_PREVIEW_SECRET` ([`crate::preview`]) |
//!
//! Every failed attempt is counted (`isr_auth_failures_total{endpoint}`) and logged (client
//! address and route, never what was sent; at most one line per 10 s). One that presented a
//! token (a wrong `Authorization`, a wrong login) is also charged to the client address
//! ([`super::auth_limit`]): past the limit, that address gets `429` with `Retry-After` on every
//! protected route. A request that presented none (no header, or only a session cookie that
//! has ended, as an open dashboard tab polls after a restart) guesses nothing, so it is not
//! charged: it cannot lock its operator out. Tokens are compared in constant time.

use super::auth_limit::AuthFailures;
use super::origin::{ClientOrigin, TrustedProxies};
use super::session::Sessions;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The shortest token or secret isr accepts (`ISR_ADMIN_TOKEN`, `ISR_REVALIDATE_SECRET`,
/// `ISR_METRICS_TOKEN`): checked at start.
pub const MIN_SECRET_LEN: usize = 16;

/// Checks a token or secret from `variable` is long enough.
///
/// ```
/// use isr::server::auth::check_secret;
/// assert!(check_secret("ISR_ADMIN_TOKEN", "0123456789abcdef").is_ok());
/// let error = check_secret("ISR_ADMIN_TOKEN", "short").unwrap_err();
/// assert!(error.starts_with("ISR_ADMIN_TOKEN is too short"), "{error}");
/// ```
///
/// # Errors
/// A message naming `variable` when `secret` has fewer than [`MIN_SECRET_LEN`] characters
/// (Unicode scalar values, not bytes).
pub fn check_secret(variable: &str, secret: &str) -> Result<(), String> {
    let length = secret.chars().count();
    if length < MIN_SECRET_LEN {
        return Err(format!(
            "{variable} is too short ({length} characters): use at least {MIN_SECRET_LEN}, e.g. the output of `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// The protected routes, as counted and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /_isr/revalidate`.
    Revalidate,
    /// `/_isr/api/…`.
    Api,
    /// `GET /_isr/metrics`.
    Metrics,
    /// `POST /_isr/login`.
    Login,
    /// The dashboard's forms (`/_isr/actions/…`, `/_isr/logout`).
    Dashboard,
    /// `GET /_isr/preview` (a preview link's signature).
    Preview,
}

impl Endpoint {
    /// The `endpoint` label of `isr_auth_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Revalidate => "revalidate",
            Endpoint::Api => "api",
            Endpoint::Metrics => "metrics",
            Endpoint::Login => "login",
            Endpoint::Dashboard => "dashboard",
            Endpoint::Preview => "preview",
        }
    }
}

/// The credentials and the state of the protected routes (one per router).
pub(crate) struct Auth {
    pub(crate) revalidate_secret: Option<Arc<str>>,
    pub(crate) admin_token: Option<Arc<str>>,
    /// `ISR_METRICS_TOKEN`, else the admin token; `None`: metrics are open.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_token: Option<Arc<str>>,
    pub(crate) sessions: Sessions,
    pub(crate) failures: AuthFailures,
    pub(crate) trusted: TrustedProxies,
    /// `--public-url`'s origin (`https://…`), which the dashboard's `Origin` check expects.
    pub(crate) public_origin: Option<String>,
}

impl Auth {
    /// Whether the session cookie of a login answering `client` gets `Secure`: the site is
    /// public over https, or a trusted proxy says the client used https.
    pub(crate) fn secure_cookies(&self, client: &ClientOrigin) -> bool {
        client.https
            || self
                .public_origin
                .as_deref()
                .is_some_and(|o| o.starts_with("https://"))
    }

    /// How long `client`'s address must wait when it has failed too often.
    pub(crate) fn blocked(&self, client: &ClientOrigin) -> Option<Duration> {
        self.failures.blocked(client.ip?)
    }

    /// `429` with `Retry-After` when `client`'s address has failed too often.
    pub(crate) fn refuse_if_blocked(&self, client: &ClientOrigin) -> Option<Response> {
        let wait = self.blocked(client)?;
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "too many failed authentications from this address; try again later"
            })),
        )
            .into_response();
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        Some(response)
    }

    /// Counts and logs one failed authentication at `endpoint`, and charges it to the client
    /// address when it presented a token (`guessed`).
    pub(crate) fn failed(&self, endpoint: Endpoint, client: &ClientOrigin, guessed: bool) {
        static LOG: super::listener::LogLimiter =
            super::listener::LogLimiter::new(Duration::from_secs(10));
        crate::metrics::auth_failure(endpoint.as_str());
        if endpoint == Endpoint::Revalidate {
            crate::metrics::revalidate_auth_failure();
        }
        let blocked = guessed && client.ip.is_some_and(|ip| self.failures.failed(ip));
        if let Some(suppressed) = LOG.allow() {
            let client_ip = client.ip.map(|ip| ip.to_string()).unwrap_or_default();
            tracing::warn!(
                endpoint = endpoint.as_str(),
                client = %client_ip,
                token_presented = guessed,
                blocked,
                suppressed,
                "authentication failed (missing or wrong credentials; counted in {})",
                crate::metrics::AUTH_FAILURES_TOTAL
            );
        }
    }

    /// The open session a request's cookie names, if any.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<String> {
        session_cookies(headers)
            .find(|id| self.sessions.is_open(id))
            .map(str::to_owned)
    }

    /// Whether a state-changing request comes from the dashboard itself: the
    /// `x-isr-dashboard` header (which a cross-site page cannot send without a CORS preflight
    /// that isr never answers), or an `Origin` equal to this site's origin, scheme included
    /// (`--public-url`'s, else the request's own: its `Host`, and https when a trusted proxy
    /// says so).
    pub(crate) fn comes_from_the_dashboard(
        &self,
        headers: &HeaderMap,
        client: &ClientOrigin,
    ) -> bool {
        if headers.contains_key("x-isr-dashboard") {
            return true;
        }
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/');
        let expected = self.public_origin.clone().or_else(|| client.origin());
        expected.is_some_and(|expected| origin.eq_ignore_ascii_case(&expected))
    }
}

/// Whether a state-changing request may come from a page of another site (a cross-site form
/// or script, the CSRF case): the browser says so (`Sec-Fetch-Site` other than `same-origin` or
/// `none`; a browser's `same-origin` is believed, which also holds behind a proxy that rewrites
/// `Host` or ends TLS), or, from a browser that sends no `Sec-Fetch-Site`, its `Origin` is not
/// this site's (`--public-url`'s, else the request's own). A request with neither header is not
/// a browser's cross-site one (browsers send `Origin` with every POST). What Next.js checks for
/// its server actions.
pub(crate) fn cross_site(
    headers: &HeaderMap,
    client: &ClientOrigin,
    public_origin: Option<&str>,
) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match fetch_site {
        Some("same-origin" | "none") => return false,
        Some(_) => return true,
        // An older browser: judged by its `Origin`.
        None => {}
    }
    let mut origins = headers.get_all(header::ORIGIN).iter().peekable();
    if origins.peek().is_none() {
        return false;
    }
    let expected = public_origin.map(str::to_owned).or_else(|| client.origin());
    // Every `Origin` sent must be this site's (a request may not smuggle a second one).
    !origins.all(|origin| {
        let origin = origin.to_str().unwrap_or("").trim().trim_end_matches('/');
        expected
            .as_deref()
            .is_some_and(|expected| origin.eq_ignore_ascii_case(expected))
    })
}

/// The values of every `isr_session` cookie of a request.
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    cookie_values(headers, super::dashboard::SESSION_COOKIE)
}

/// The values of every cookie named `name` that a request sent.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
}

/// Whether the request presented any `Authorization` (a guess, when it is wrong).
pub(crate) fn presents_token(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// Whether `headers` carry `Authorization: Bearer <expected>` (compared in constant time).
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    super::bearer_token(headers)
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(expected.as_bytes())))
}

/// The request's [`ClientOrigin`], read with the router's trusted proxies.
pub(crate) struct Caller(pub(crate) ClientOrigin);

impl FromRequestParts<super::AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(ClientOrigin::of_request(
            &parts.headers,
            &parts.uri,
            &parts.extensions,
            &state.auth.trusted,
        )))
    }
}
