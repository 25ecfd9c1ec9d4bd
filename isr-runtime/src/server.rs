//! HTTP: the axum router that serves pages, `/_isr/revalidate` and `/_isr/metrics`.
//!
//! Nothing below this module knows about HTTP; this module knows nothing about how pages are
//! generated.

use crate::encoding::Encoding;
use crate::engine::{CacheStatus, CachedPage, Engine, Served, Why};
use crate::render::status_document;
use crate::revalidate::{RevalidateRequest, Revalidation, MAX_AWAITED_PAGES};
use crate::store::PageKind;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use cache_headers::PageHeaders;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::Duration;

pub mod admin;
pub mod auth;
pub mod auth_limit;
pub(crate) mod cache_headers;
pub mod dashboard;
pub mod dev;
pub mod listener;
#[cfg(feature = "metrics")]
mod metrics_route;
mod negotiate;
pub mod origin;
pub mod preview;
pub mod server_fns;
pub mod session;
pub mod sitemap;
pub mod threads;
mod uncached;
use auth::{bearer_matches, Auth, Caller, Endpoint};
pub use cache_headers::{
    age, cache_control, cache_status, cache_tag, cdn_cache_control, not_found_cache_control,
    not_found_cdn_cache_control, surrogate_key, version_profile,
};
pub use listener::ConnectionLimits;
pub use negotiate::preferred_encoding;

/// Largest accepted body of `POST /_isr/revalidate`.
pub const REVALIDATE_BODY_LIMIT: usize = 64 * 1024;

/// How long caches may keep serving a stale page while they revalidate it (RFC 5861).
pub const STALE_WHILE_REVALIDATE_SECS: u64 = 31_536_000;

/// The response header that tells how a page response relates to the ISR cache.
pub const CACHE_STATUS_HEADER: &str = "x-isr-cache";

// Header names as constants: made at compile time, not parsed again on every response.
const ISR_CACHE: HeaderName = HeaderName::from_static(CACHE_STATUS_HEADER);
const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
const EDGE_CACHE_TAG: HeaderName = HeaderName::from_static("edge-cache-tag");
const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    auth: Arc<Auth>,
    #[cfg(feature = "metrics")]
    metrics: Option<Arc<metrics_route::MetricsText>>,
    tag_headers: crate::cdn::TagHeaders,
    status_pages: StatusPages,
    /// The shell of the dashboard's document (the app's head and policy; no client bundle).
    shell: Arc<crate::render::DocumentShell>,
    /// The app's `public/` files, looked up before the pages.
    public: Arc<crate::public::PublicFiles>,
    /// Signs and checks preview links and cookies; `None`: previews are off.
    preview: Option<Arc<crate::preview::PreviewKey>>,
    /// Preview renders that may run now ([`preview::MAX_PREVIEW_RENDERS`]).
    preview_renders: Arc<tokio::sync::Semaphore>,
    /// Asks the CDN whether it serves new versions (`"wait": "edge"`); `None`: no `--cdn-url`.
    edge: Option<Arc<crate::cdn::EdgeCheck>>,
}

/// The app's own documents for `404` and `503` answers (rendered at start, in its layouts);
/// `None` answers with isr's plain ones.
///
/// ```
/// let pages = isr::server::StatusPages::default();
/// assert!(pages.not_found.is_none() && pages.unavailable.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatusPages {
    /// The HTML of every `404`.
    pub not_found: Option<StatusDocument>,
    /// The HTML of every `503` (a page that cannot be generated right now).
    pub unavailable: Option<StatusDocument>,
}

/// One status page, rendered once for the whole app and once more for each layout prefix
/// ([`layout`](mod@crate::layout)): a request gets the rendering of the longest prefix that covers its path.
///
/// ```
/// use isr::server::StatusDocument;
/// let page = StatusDocument::new("<p>lost</p>".into()).under("/blog", "<p>lost in the blog</p>".into());
/// assert_eq!(page.at("/blog/x"), "<p>lost in the blog</p>");
/// assert_eq!(page.at("/blogroll"), "<p>lost</p>");
/// ```
#[derive(Clone, Debug)]
pub struct StatusDocument {
    /// The app-wide rendering.
    everywhere: Bytes,
    /// `(prefix, rendering)`, one per layout prefix other than `/`.
    under: Vec<(&'static str, Bytes)>,
}

impl StatusDocument {
    /// The document for every path.
    pub fn new(html: Bytes) -> Self {
        StatusDocument {
            everywhere: html,
            under: Vec::new(),
        }
    }

    /// With `html` for the paths `prefix` covers.
    pub fn under(mut self, prefix: &'static str, html: Bytes) -> Self {
        self.under.push((prefix, html));
        self
    }

    /// The rendering a request at `url_path` gets.
    pub fn at(&self, url_path: &str) -> &Bytes {
        // No allocation: a flood of 404s reads it on every answer.
        crate::layout::longest_prefix(self.under.iter().map(|(prefix, _)| *prefix), url_path)
            .and_then(|prefix| self.under.iter().find(|(p, _)| *p == prefix))
            .map_or(&self.everywhere, |(_, html)| html)
    }
}

/// What the router serves besides pages.
///
/// ```
/// let options = isr::server::ServerOptions { revalidate_secret: Some("s3cret".into()), ..Default::default() };
/// assert!(options.assets.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Enables `POST /_isr/revalidate` with `Authorization: Bearer <secret>`.
    pub revalidate_secret: Option<String>,
    /// The client bundle folder served at `/pkg` (`<site-root>/pkg`).
    pub assets: Option<std::path::PathBuf>,
    /// Whether `/pkg` files are content-hashed and may be cached forever.
    pub immutable_assets: bool,
    /// The app's hashed assets served at `/assets` (`<site-root>/assets`, see
    /// [`crate::assets`]), cached forever.
    pub static_assets: Option<std::path::PathBuf>,
    /// The app's `public/` files, each at its own path (see [`crate::public`]).
    pub public: crate::public::PublicFiles,
    /// Dev mode: every page request renders ([`dev`]); `None` serves the engine's pages.
    pub dev: Option<Arc<dev::DevPages>>,
    /// When set, `GET /_isr/metrics` needs `Authorization: Bearer <token>` (else `401`);
    /// when unset it needs the admin token, and it is open only when neither is set.
    pub metrics_token: Option<String>,
    /// Which purge-key headers pages carry besides `surrogate-key` (`cache-tag` for
    /// Cloudflare, `edge-cache-tag` for Akamai), within which [`crate::cdn::TagBudget`].
    pub tag_headers: crate::cdn::TagHeaders,
    /// Enables the operator API (`/_isr/api/…`, see [`admin`]) for `Authorization: Bearer
    /// <token>`; without it the API answers `404`.
    pub admin_token: Option<String>,
    /// Serve `/sitemap.xml` and `/robots.txt` (unless the app has pages at those paths).
    pub sitemap: bool,
    /// The origin of the sitemap's links; `None`: the origin each request was sent to.
    pub public_url: Option<crate::site::SiteUrl>,
    /// Where the CDN in front serves the site: a revalidation with `"wait": "edge"` answers
    /// once GETs there serve the new versions ([`crate::cdn::edge`]); `None`: such a
    /// request is refused (400).
    pub cdn_url: Option<crate::site::SiteUrl>,
    /// The app's `404` and `503` documents.
    pub status_pages: StatusPages,
    /// The shell of isr's own pages (the dashboard): the app's head and content security
    /// policy (its client bundle is not used there).
    pub shell: crate::render::DocumentShell,
    /// Serves `GET /_isr/metrics` from this recorder's handle ([`crate::metrics::install`]);
    /// `None`: no metrics route (404).
    #[cfg(feature = "metrics")]
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (see
    /// [`origin`]); nobody's by default.
    pub trusted_proxies: origin::TrustedProxies,
    /// Failed authentications one client address may make per
    /// [`FAILURE_WINDOW`](auth_limit::FAILURE_WINDOW) before it gets `429` (0: the default,
    /// [`auth_limit::MAX_FAILURES`]).
    pub max_auth_failures: u32,
    /// Enables editors' previews ([`preview`]): links signed with this key open a preview
    /// cookie; `None`: every preview route is `404` and the cookie is ignored.
    pub preview: Option<crate::preview::PreviewKey>,
}

/// The ISR router: pages (as the fallback), `/pkg/*` (client bundle), `POST /_isr/revalidate`
/// (only with a secret), `GET /_isr/metrics` and the operator routes, every request's `Host`
/// checked ([`origin::HostCheckLayer`]). To serve routes of the app's own beside it, merge them
/// into [`unchecked_router`] and add the layer once, as `App` does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// use tower::ServiceExt;
/// let options = isr::server::ServerOptions { revalidate_secret: Some("0123456789abcdef".into()), ..Default::default() };
/// let app = isr::server::router(engine, options);
/// let get = |uri: &str| {
///     let request = isr::axum::http::Request::get(uri).header("host", "127.0.0.1:3000");
///     request.body(isr::axum::body::Body::empty()).unwrap()
/// };
/// let page = app.clone().oneshot(get("/blog/hello")).await.unwrap();
/// assert_eq!(page.status(), 200);
/// assert_eq!(page.headers()["x-isr-cache"], "MISS");
/// assert_eq!(app.clone().oneshot(get("/blog/hello")).await.unwrap().headers()["x-isr-cache"], "HIT");
/// assert_eq!(app.oneshot(get("/nowhere")).await.unwrap().status(), 404);
/// # }
/// ```
pub fn router(engine: Arc<Engine>, options: ServerOptions) -> Router {
    unchecked_router(engine, options).layer(origin::HostCheckLayer)
}

/// [`router`] without the `Host` check: add [`origin::HostCheckLayer`] after merging other
/// routes into it.
pub fn unchecked_router(engine: Arc<Engine>, options: ServerOptions) -> Router {
    let sitemaps = options.sitemap.then(|| {
        sitemap::routes(
            engine.clone(),
            options.public_url.clone(),
            options.trusted_proxies.clone(),
            &options.public,
        )
    });
    let admin_token: Option<Arc<str>> = options.admin_token.map(Arc::from);
    let auth = Auth {
        revalidate_secret: options.revalidate_secret.map(Arc::from),
        #[cfg(feature = "metrics")]
        metrics_token: options
            .metrics_token
            .map(Arc::from)
            .or_else(|| admin_token.clone()),
        admin_token,
        sessions: session::Sessions::new(session::SESSION_LIFETIME),
        failures: auth_limit::AuthFailures::with_limits(
            match options.max_auth_failures {
                0 => auth_limit::MAX_FAILURES,
                n => n,
            },
            auth_limit::FAILURE_WINDOW,
        ),
        trusted: options.trusted_proxies,
        public_origin: options.public_url.as_ref().map(|u| u.as_str().to_owned()),
    };
    let state = AppState {
        engine,
        auth: Arc::new(auth),
        #[cfg(feature = "metrics")]
        metrics: options
            .metrics
            .map(|handle| Arc::new(metrics_route::MetricsText::new(handle))),
        tag_headers: options.tag_headers,
        status_pages: options.status_pages,
        shell: Arc::new(options.shell),
        public: Arc::new(options.public),
        preview: options.preview.map(Arc::new),
        preview_renders: Arc::new(tokio::sync::Semaphore::new(preview::MAX_PREVIEW_RENDERS)),
        edge: options
            .cdn_url
            .map(|url| Arc::new(crate::cdn::EdgeCheck::new(url))),
    };
    crate::metrics::register_auth_failures();
    let operator = Router::new().route("/_isr/revalidate", any(revalidate_endpoint));
    // Always an answer of isr's own, never the page fallback (a page route could match it):
    // the metrics, or 404 without a recorder's handle (or without the `metrics` feature).
    #[cfg(feature = "metrics")]
    let operator = operator.route(
        "/_isr/metrics",
        axum::routing::get(metrics_route::metrics_endpoint),
    );
    #[cfg(not(feature = "metrics"))]
    let operator = operator.route(
        "/_isr/metrics",
        axum::routing::get(|| async { StatusCode::NOT_FOUND }),
    );
    let operator = operator
        .merge(admin::routes())
        .merge(dashboard::routes())
        .merge(preview::routes(state.preview.is_some()))
        .layer(axum::middleware::map_response(operator_headers));
    let mut router = Router::new().merge(operator).merge(server_fns::routes());
    if let Some(assets) = options.assets {
        let cache = if options.immutable_assets {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        router = router.merge(static_files("/pkg", assets, cache));
    }
    if let Some(assets) = options.static_assets {
        router = router.merge(static_files(
            crate::assets::URL_PREFIX,
            assets,
            crate::assets::CACHE_CONTROL,
        ));
    }
    if let Some(sitemaps) = sitemaps {
        router = router.merge(sitemaps);
    }
    match options.dev {
        Some(dev) => {
            let (public, preview_key) = (state.public.clone(), state.preview.clone());
            router
                .fallback(move |request: Request| {
                    let (dev, public) = (dev.clone(), public.clone());
                    let audience =
                        if preview::is_previewing(preview_key.as_deref(), request.headers()) {
                            crate::engine::Audience::Editor
                        } else {
                            crate::engine::Audience::Developer
                        };
                    async move {
                        match public.serve(request).await {
                            Ok(file) => file,
                            Err(request) => dev::dev_endpoint(dev, request, audience).await,
                        }
                    }
                })
                .with_state(state)
        }
        None => router.fallback(page_endpoint).with_state(state),
    }
}

/// `dir` served at `prefix` (with its `.br`/`.gz` variants), `cache_control` on what is found;
/// any other answer (a 404 for a file of another build, during a rolling deploy) is `no-store`,
/// so that no cache keeps it for the year a found file may be kept.
fn static_files(
    prefix: &str,
    dir: std::path::PathBuf,
    cache_control: &'static str,
) -> Router<AppState> {
    Router::new()
        .nest_service(
            prefix,
            tower_http::services::ServeDir::new(dir)
                .precompressed_br()
                .precompressed_gzip(),
        )
        .layer(axum::middleware::map_response_with_state(
            cache_control,
            static_cache_control,
        ))
}

async fn static_cache_control(
    State(cache_control): State<&'static str>,
    mut response: Response,
) -> Response {
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let value = if found { cache_control } else { "no-store" };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

/// What every answer under `/_isr/` carries (unless its handler set its own): never stored by
/// any cache, never framed, no type sniffing, no referrer to other sites (`same-origin`:
/// `no-referrer` would make browsers send `Origin: null` on the forms' POSTs), and a strict
/// Content-Security-Policy with `frame-ancestors 'none'` (the dashboard sets its own with the
/// hashes of its scripts).
async fn operator_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(policy) = HeaderValue::from_str(&operator_policy(&[])) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
    response
}

/// The Content-Security-Policy of isr's own pages: [`crate::ContentSecurityPolicy::strict`],
/// never framed, with `script_hashes` allowed.
///
/// ```
/// let policy = isr::server::operator_policy(&[]);
/// assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self' 'wasm-unsafe-eval'"), "{policy}");
/// ```
pub fn operator_policy(script_hashes: &[String]) -> String {
    crate::ContentSecurityPolicy::strict()
        .directive("frame-ancestors", "'none'")
        .render(script_hashes)
}

async fn page_endpoint(State(state): State<AppState>, request: Request) -> Response {
    let request = match state.public.serve(request).await {
        Ok(file) => return file,
        Err(request) => request,
    };
    if preview::is_previewing(state.preview.as_deref(), request.headers()) {
        return preview::preview_page(state.clone(), request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return method_not_allowed();
    }
    // What the client would get were every encoding stored: a page read from disk for it
    // needs only the HTML and that one.
    let wanted = preferred_encoding(request.headers(), |_| true);
    let served = state
        .engine
        .request_with_query(request.uri().path(), request.uri().query(), Some(wanted))
        .await;
    page_response(
        served,
        wanted,
        request.headers(),
        state.tag_headers,
        StatusPagesAt {
            pages: &state.status_pages,
            path: request.uri().path(),
        },
    )
}

/// Turns the engine's answer into an HTTP response.
fn page_response(
    served: Served,
    wanted: Encoding,
    request_headers: &HeaderMap,
    tag_headers: crate::cdn::TagHeaders,
    status_pages: StatusPagesAt<'_>,
) -> Response {
    match served {
        Served::Stored {
            page,
            cache,
            why,
            policy,
            content_type,
            age,
        } => {
            let profile = cache_headers::version_profile(&page.meta, policy);
            let window = profile.window();
            // A version served stale because an invalidation marked it is stale downstream
            // too: its `age` is at least its window, so a cache keeps it only to serve stale.
            let age = match &why {
                Why::Invalidated(_) if cache == CacheStatus::Stale => {
                    age.max(cache_headers::shared_lifetime(profile))
                }
                _ => age,
            };
            let prebuilt = PageHeaders::of(&page, profile, tag_headers.budget);
            let mut response = match &page.meta.kind {
                PageKind::Page { .. } => {
                    page_body_response(&page, &prebuilt, wanted, request_headers, content_type)
                }
                PageKind::NotFound => not_found(status_pages),
                PageKind::Redirect {
                    location,
                    permanent,
                } => redirect(location, *permanent, status_pages),
            };
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, prebuilt.cache_control.clone());
            headers.insert(CDN_CACHE_CONTROL, prebuilt.cdn_cache_control.clone());
            headers.insert(header::AGE, cache_headers::age(age));
            headers.insert(SURROGATE_KEY, prebuilt.surrogate_key.clone());
            if tag_headers.cache_tag {
                headers.insert(CACHE_TAG, prebuilt.cache_tag.clone());
            }
            if tag_headers.edge_cache_tag {
                headers.insert(EDGE_CACHE_TAG, prebuilt.cache_tag.clone());
            }
            headers.insert(
                CACHE_STATUS,
                cache_status(cache, &why, window, age, page.is_stored()),
            );
            headers.insert(ISR_CACHE, HeaderValue::from_static(cache.as_str()));
            response
        }
        // The location keeps the request's query (see `Routes::resolve_request`).
        Served::Canonical(location) => redirect(&location, true, status_pages),
        Served::NoRoute | Served::NotFound => {
            let mut response = not_found(status_pages);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Served::Unavailable { retry_after } => unavailable(retry_after, status_pages),
    }
}

/// The body of an HTML page in the encoding the request prefers (or `304` when its etag
/// matches), with its `etag`, `content-encoding` and `vary`. `wanted` is the client's first
/// choice were every encoding stored ([`preferred_encoding`] of all): when the page has it, it
/// is also the first choice among what the page has, so `accept-encoding` is weighed again only
/// for a page that lacks it.
fn page_body_response(
    page: &CachedPage,
    prebuilt: &PageHeaders,
    wanted: Encoding,
    request_headers: &HeaderMap,
    content_type: &'static str,
) -> Response {
    let wanted = if page.representation(wanted).is_some() {
        wanted
    } else {
        preferred_encoding(request_headers, |e| page.representation(e).is_some())
    };
    let (encoding, bytes, etag) = match page.representation(wanted) {
        Some((bytes, etag)) => (wanted, bytes.clone(), etag),
        None => match page.representation(Encoding::Identity) {
            Some((bytes, etag)) => (Encoding::Identity, bytes.clone(), etag),
            None => (Encoding::Identity, Bytes::new(), ""),
        },
    };
    let mut response = if if_none_match(request_headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        typed_response(StatusCode::OK, Body::from(bytes), content_type)
    };
    let headers = response.headers_mut();
    if let Some(etag) = prebuilt.etag(encoding) {
        headers.insert(header::ETAG, etag.clone());
    }
    if encoding != Encoding::Identity {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110 requires for it).
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|candidate| candidate.trim())
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

fn html_response(status: StatusCode, body: Body) -> Response {
    typed_response(status, body, crate::page::HTML_CONTENT_TYPE)
}

/// Headers a page response carries at most (content type, encoding, vary, etag, cache-control,
/// age, surrogate-key, cache-tag, cache-status, x-isr-cache, and a few the layers add): the
/// map is allocated once at that size instead of growing while they are inserted.
const PAGE_RESPONSE_HEADERS: usize = 16;

fn typed_response(status: StatusCode, body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(PAGE_RESPONSE_HEADERS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `405` for a page request that is neither GET nor HEAD, with `Allow`.
fn method_not_allowed() -> Response {
    let mut response = plain_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "Pages answer GET and HEAD.",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

fn plain_status(status: StatusCode, title: &str, message: &str) -> Response {
    html_response(
        status,
        Body::from(status_document(status.as_u16(), title, message)),
    )
}

/// The app's status pages as a request at `path` gets them.
#[derive(Clone, Copy)]
struct StatusPagesAt<'a> {
    pages: &'a StatusPages,
    path: &'a str,
}

fn not_found(pages: StatusPagesAt<'_>) -> Response {
    match &pages.pages.not_found {
        Some(document) => html_response(
            StatusCode::NOT_FOUND,
            Body::from(document.at(pages.path).clone()),
        ),
        None => plain_status(
            StatusCode::NOT_FOUND,
            "Not found",
            "This page could not be found.",
        ),
    }
}

fn unavailable(retry_after: Duration, pages: StatusPagesAt<'_>) -> Response {
    let mut response = match &pages.pages.unavailable {
        Some(document) => html_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Body::from(document.at(pages.path).clone()),
        ),
        None => plain_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            "This page cannot be generated right now. Please try again shortly.",
        ),
    };
    let seconds = retry_after.as_millis().div_ceil(1000).max(1);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        headers.insert(header::RETRY_AFTER, value);
    }
    response
}

fn redirect(location: &str, permanent: bool, pages: StatusPagesAt<'_>) -> Response {
    let status = if permanent {
        StatusCode::PERMANENT_REDIRECT
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    match HeaderValue::from_str(location) {
        Ok(value) => (status, [(header::LOCATION, value)]).into_response(),
        Err(_) => not_found(pages),
    }
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// `POST /_isr/revalidate`: checks the token (401), then the size (413), then the JSON (400).
async fn revalidate_endpoint(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    let Some(secret) = state.auth.revalidate_secret.as_deref() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "on-demand revalidation is off: set ISR_REVALIDATE_SECRET to enable it",
        );
    };
    if request.method() != Method::POST {
        let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if let Some(refusal) = state.auth.refuse_if_blocked(&client) {
        return refusal;
    }
    if !bearer_matches(request.headers(), secret) {
        let guessed = auth::presents_token(request.headers());
        state.auth.failed(Endpoint::Revalidate, &client, guessed);
        return unauthorized();
    }
    revalidate_request(&state, request).await
}

fn unauthorized() -> Response {
    let mut response = json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The body of an authorised revalidation request: checks the size (413), then the JSON
/// (400), then revalidates (200 with the results, or 202 over [`MAX_AWAITED_PAGES`]).
async fn revalidate_request(state: &AppState, request: Request) -> Response {
    let engine = &state.engine;
    // Before the body is read: a client that sent `Expect: 100-continue` gets the 413 instead
    // of `100 Continue` (hyper sends that only when the body is first read).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > REVALIDATE_BODY_LIMIT as u64) {
        return too_large();
    }
    let body = match read_limited(request.into_body()).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parsed: RevalidateRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid JSON body (expected {{\"paths\": [..], \"tags\": [..], \"mode\": \"auto|regenerate|stale|expire\"}}): {error}"
                ),
            )
        }
    };
    let edge = match (parsed.wait, &state.edge) {
        (crate::revalidate::Wait::Origin, _) => None,
        (crate::revalidate::Wait::Edge, Some(edge)) => Some(edge),
        (crate::revalidate::Wait::Edge, None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "\"wait\": \"edge\" needs the CDN's address: --cdn-url / ISR_CDN_URL",
            )
        }
    };
    match crate::revalidate::start(engine, &parsed, MAX_AWAITED_PAGES).await {
        Revalidation::Done(results) => {
            let counts = crate::revalidate::counts(&results);
            let Some(edge) = edge else {
                return axum::Json(serde_json::json!({ "results": results, "counts": counts }))
                    .into_response();
            };
            let report = edge_report(engine, edge, &results, parsed.edge_deadline()).await;
            axum::Json(serde_json::json!({ "results": results, "counts": counts, "edge": report }))
                .into_response()
        }
        Revalidation::Accepted { accepted } => {
            let mut answer = serde_json::json!({ "accepted": accepted });
            if edge.is_some() {
                answer["edge"] = "not waited: the pages are revalidated in the background".into();
            }
            (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
        }
    }
}

/// Waits until the CDN serves the new version of every page `results` regenerated (the etag
/// the origin now has for it), or `deadline`.
async fn edge_report(
    engine: &Arc<Engine>,
    edge: &crate::cdn::EdgeCheck,
    results: &[crate::RevalidationResult],
    deadline: Duration,
) -> crate::cdn::EdgeReport {
    let pages: Vec<(String, String)> = results
        .iter()
        .filter(|r| r.outcome == crate::RevalidationOutcome::Regenerated)
        .filter_map(|r| {
            let (_, key, _) = engine.routes().resolve_key(&r.path)?;
            Some((key.to_url_path(), engine.etag_hex(&key)?))
        })
        .collect();
    let mut report = edge.wait(pages, deadline).await;
    report.not_checked = results.len() - report.live.len() - report.missed.len();
    report
}

async fn read_limited(body: Body) -> Result<Bytes, Response> {
    match Limited::new(body, REVALIDATE_BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) if is_body_timeout(&*error) => Err(json_error(
            StatusCode::REQUEST_TIMEOUT,
            "the body stopped arriving (--body-timeout / ISR_BODY_TIMEOUT)",
        )),
        Err(error) => Err(json_error(
            StatusCode::BAD_REQUEST,
            format!("could not read the body: {error}"),
        )),
    }
}

fn too_large() -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than {REVALIDATE_BODY_LIMIT} bytes"),
    )
}

/// Whether `error` or one of its sources is the body timeout of [`listener`].
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

/// The token of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
///
/// ```
/// use isr::axum::http::{header, HeaderMap, HeaderValue};
/// let mut headers = HeaderMap::new();
/// assert_eq!(isr::server::bearer_token(&headers), None);
/// for value in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "] {
///     headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
///     assert_eq!(isr::server::bearer_token(&headers), Some("s3cret"));
/// }
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic czNjcmV0"));
/// assert_eq!(isr::server::bearer_token(&headers), None);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Adds the access log to `router`: one line per request (tower-http's `TraceLayer`, target
/// `isr::access`, level info) with method, path, status, cache state (`x-isr-cache`, `-`
/// for other responses) and latency in ms. `App` adds it; `RUST_LOG=info,isr::access=off`
/// turns it off.
///
/// ```text
/// INFO request{method=GET path=/blog}: isr::access: status=200 cache=HIT ms=0.21
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
/// use tower::ServiceExt;
/// let app = isr::server::router(engine, Default::default());
/// let app = isr::server::with_access_log(app);
/// let get = |uri: &str| {
///     let request = isr::axum::http::Request::get(uri).header("host", "127.0.0.1:3000");
///     request.body(isr::axum::body::Body::empty()).unwrap()
/// };
/// // The layer logs and passes the answer through unchanged.
/// assert_eq!(app.oneshot(get("/blog/hello")).await.unwrap().status(), 200);
/// # }
/// ```
pub fn with_access_log(router: Router) -> Router {
    use tower_http::trace::TraceLayer;
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(|request: &Request| {
                tracing::info_span!(
                    target: "isr::access",
                    "request",
                    method = %request.method(),
                    path = %request.uri().path()
                )
            })
            .on_request(())
            .on_response(
                |response: &Response, latency: Duration, _span: &tracing::Span| {
                    // Nothing is looked up for a log line that is filtered out.
                    if !tracing::enabled!(target: "isr::access", tracing::Level::INFO) {
                        return;
                    }
                    let cache = response
                        .headers()
                        .get(ISR_CACHE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info!(
                        target: "isr::access",
                        status = response.status().as_u16(),
                        cache = %cache,
                        ms = (latency.as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
                    );
                },
            )
            .on_body_chunk(())
            .on_eos(())
            .on_failure(()),
    )
}

/// Serves `app` on `listener` within `limits` until SIGINT or SIGTERM, then shuts down
/// gracefully: stops accepting, lets in-flight requests finish, and returns once every
/// connection is closed (see [`listener::serve_until`], which takes any shutdown future).
///
/// Not run as a test: it serves until the process gets SIGINT or SIGTERM.
///
/// ```no_run
/// # async fn demo(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// isr::server::serve(listener, app, isr::server::ConnectionLimits::default()).await
/// # }
/// ```
///
/// # Errors
/// Those of [`listener::serve_until`]: none today (accept and connection errors are logged
/// and handled in the loop).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    listener::serve_until(listener, app, limits, shutdown_signal()).await
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    // No SIGTERM elsewhere: Ctrl-C (Windows' console close included) stops the server.
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, "\"a\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"a\""),
        );
        assert!(if_none_match(&headers, "\"a\""));
        assert!(!if_none_match(&headers, "\"b\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"b\""));
    }
}
