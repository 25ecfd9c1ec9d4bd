//! Editors' previews over HTTP (the links and cookies are [`crate::preview`]'s):
//!
//! | route | answer |
//! |---|---|
//! | `GET /_isr/preview?path=&expires=&sig=` | valid: sets the cookie, `307` to `path`; forged or expired: `401`, no cookie; malformed, or ending more than 30 days ahead: `400` |
//! | `GET /_isr/preview/exit[?path=]` | clears the cookie, `307` to `path` (or `/`) |
//! | any page, with a valid cookie | rendered now with `Preview(true)`, kept nowhere; at most [`MAX_PREVIEW_RENDERS`] at once, `503` past them |
//!
//! Without a preview secret every preview route is `404` (whatever the method) and the cookie is
//! ignored. A preview
//! answer is `cache-control: private, no-store` and `x-robots-tag: noindex`, carries a banner
//! with the exit link, and touches nothing the public site is served from (hot cache, disk,
//! Redis, CDN, the page table's traffic and freshness): see
//! [`Engine::render_uncached`](crate::engine::Engine::render_uncached). A forged link is a
//! failed authentication (counted, and charged to the client address, as a wrong token is).

use super::auth::{cookie_values, Caller, Endpoint};
use super::uncached::{self, Mode};
use super::{json_error, AppState};
use crate::engine::Audience;
use crate::preview::{self, unix_now, PreviewKey, Refused};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

/// What `x-isr-cache` says on a preview answer.
const PREVIEW_CACHE: &str = "PREVIEW";

const X_ROBOTS_TAG: HeaderName = HeaderName::from_static("x-robots-tag");

/// Preview renders running at once at most (each runs a loader outside the scheduler): a
/// leaked cookie cannot put more load than this on the data source.
pub const MAX_PREVIEW_RENDERS: usize = 8;

/// The routes of preview links and of its exit (`404` for every method when previews are off).
pub(super) fn routes(previews_on: bool) -> Router<AppState> {
    if !previews_on {
        return Router::new()
            .route(preview::LINK_PATH, any(|| async { StatusCode::NOT_FOUND }))
            .route(preview::EXIT_PATH, any(|| async { StatusCode::NOT_FOUND }));
    }
    Router::new()
        .route(preview::LINK_PATH, get(open_preview))
        .route(preview::EXIT_PATH, get(exit_preview))
}

/// The query of a preview link, as sent (checked by [`open_preview`]).
#[derive(serde::Deserialize)]
struct LinkQuery {
    path: Option<String>,
    expires: Option<String>,
    sig: Option<String>,
}

/// The query of the exit link.
#[derive(serde::Deserialize)]
struct ExitQuery {
    path: Option<String>,
}

async fn open_preview(
    State(state): State<AppState>,
    Caller(client): Caller,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let Some(key) = state.preview.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(refusal) = state.auth.refuse_if_blocked(&client) {
        return refusal;
    }
    let Ok(Query(LinkQuery {
        path: Some(path),
        expires: Some(expires),
        sig: Some(sig),
    })) = query
    else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a preview link has `path`, `expires` and `sig`",
        );
    };
    let Some(expires) = preview::canonical_seconds(&expires) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "`expires` is a Unix time in seconds",
        );
    };
    let now = unix_now();
    if !preview::within_max_ttl(expires, now) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "`expires` is more than 30 days away (is it in milliseconds? it is in seconds)",
        );
    }
    if !preview::is_local_path(&path) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "`path` is a path on this site (it starts with one `/`)",
        );
    }
    match key.check_link(&path, expires, &sig, now) {
        Ok(()) => {}
        Err(Refused::Signature) => {
            state.auth.failed(Endpoint::Preview, &client, true);
            return json_error(StatusCode::UNAUTHORIZED, "this preview link is not valid");
        }
        Err(Refused::Expired) => {
            state.auth.failed(Endpoint::Preview, &client, false);
            return json_error(StatusCode::UNAUTHORIZED, "this preview link has expired");
        }
    }
    let max_age = expires.saturating_sub(now);
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{}",
        preview::COOKIE,
        key.cookie_value(expires),
        if state.auth.secure_cookies(&client) {
            "; Secure"
        } else {
            ""
        }
    );
    tracing::info!(path = %path, expires, "preview opened");
    redirect_setting_cookie(&path, &cookie)
}

/// Routed only when previews are on (see [`routes`]).
async fn exit_preview(query: Result<Query<ExitQuery>, QueryRejection>) -> Response {
    let path = query
        .ok()
        .and_then(|Query(q)| q.path)
        .filter(|path| preview::is_local_path(path))
        .unwrap_or_else(|| "/".to_owned());
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0",
        preview::COOKIE
    );
    redirect_setting_cookie(&path, &cookie)
}

/// `307` to the local `path` with `Set-Cookie: cookie`.
fn redirect_setting_cookie(path: &str, cookie: &str) -> Response {
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&preview::location(path)) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether previews are on (`key`) and a request carries a preview cookie `key` made that has
/// not ended.
pub(super) fn is_previewing(key: Option<&PreviewKey>, headers: &HeaderMap) -> bool {
    let Some(key) = key else {
        return false;
    };
    let now = unix_now();
    cookie_values(headers, preview::COOKIE).any(|value| key.cookie_is_valid(value, now))
}

/// The page at the request's path rendered now for an editor (the router's page fallback,
/// for a request [`is_previewing`]).
pub(super) async fn preview_page(state: AppState, request: Request) -> Response {
    let Ok(_permit) = state.preview_renders.clone().try_acquire_owned() else {
        let mut busy = super::unavailable(
            std::time::Duration::from_secs(1),
            super::StatusPagesAt {
                pages: &state.status_pages,
                path: request.uri().path(),
            },
        );
        preview_headers(busy.headers_mut());
        return busy;
    };
    let mode = Mode {
        engine: &state.engine,
        documents: None,
        audience: Audience::Editor,
        status_pages: &state.status_pages,
        mark: with_banner,
        failure_note: "The public page is not affected (it keeps its last good version). A preview runs the loader on every request: fix the cause and reload.",
        extra_head: "",
        failure_log: "preview: the loader failed",
    };
    let mut response = uncached::respond(&mode, request).await;
    let headers = response.headers_mut();
    headers.insert(super::ISR_CACHE, HeaderValue::from_static(PREVIEW_CACHE));
    preview_headers(headers);
    response
}

/// What every preview answer carries: kept by no cache (browser, proxy or CDN), indexed by
/// no search engine.
pub(super) fn preview_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(X_ROBOTS_TAG, HeaderValue::from_static("noindex"));
    headers.remove(super::CDN_CACHE_CONTROL);
}

/// The banner of a preview document, at the end of its `<body>` (after the content, so that
/// hydration, which starts at the body's first node, never meets it), with the exit link back
/// to `url_path`.
///
/// ```text
/// <aside id="isr-preview" role="status" style="…">Preview: drafts are shown, nothing here is cached <a href="/_isr/preview/exit?path=…" style="…">Exit preview</a></aside>
/// ```
pub(crate) fn with_banner(html: String, url_path: &str) -> String {
    let exit = format!(
        "{}?path={}",
        preview::EXIT_PATH,
        percent_encoding::utf8_percent_encode(url_path, percent_encoding::NON_ALPHANUMERIC)
    );
    let banner = format!(
        "<aside id=\"isr-preview\" role=\"status\" style=\"position:fixed;left:0;right:0;bottom:0;z-index:2147483647;display:flex;gap:1rem;justify-content:center;align-items:center;padding:.4rem 1rem;font:14px/1.5 system-ui,sans-serif;background:#1e40af;color:#fff\">Preview: drafts are shown, nothing here is cached <a href=\"{exit}\" style=\"color:#fff;font-weight:600\">Exit preview</a></aside>",
        exit = crate::render::escape_text(&exit),
    );
    let at = html.rfind("</body>");
    uncached::insert_at(html, at, &banner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::page::{Generated, PageDef};
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tower::ServiceExt;

    const SECRET: &str = "0123456789abcdef-preview";

    /// `/news/:slug` (with `?page=` variants), whose loader writes whether it renders a preview.
    fn news_def() -> &'static PageDef {
        fn load(cx: crate::LoadContext) -> crate::__private::BoxFuture<crate::Result<Generated>> {
            let preview = cx.is_preview();
            let slug = cx.params().get("slug").unwrap_or_default().to_owned();
            Box::pin(async move {
                match slug.as_str() {
                    "missing" => Ok(Generated::NotFound),
                    "broken" => Err(crate::Error::msg("the CMS is down")),
                    _ => Ok(Generated::Page(crate::RenderedBody {
                        body: format!("<p>preview={preview}</p>"),
                        ..Default::default()
                    })),
                }
            })
        }
        Box::leak(Box::new(PageDef {
            load,
            query: crate::QuerySpec {
                names: &["page"],
                ..crate::QuerySpec::NONE
            },
            ..crate::__private::example_def("/news/:slug")
        }))
    }

    async fn engine() -> Arc<Engine> {
        let routes = crate::Routes::new(vec![news_def()]).unwrap();
        crate::__private::example_engine(routes).await
    }

    fn router(engine: &Arc<Engine>, preview: bool, public_url: Option<&str>) -> Router {
        super::super::router(
            engine.clone(),
            super::super::ServerOptions {
                preview: preview.then(|| PreviewKey::new(SECRET).unwrap()),
                public_url: public_url.map(|u| crate::site::SiteUrl::parse(u).unwrap()),
                max_auth_failures: 2,
                ..Default::default()
            },
        )
    }

    async fn get(router: &Router, uri: &str, cookie: Option<&str>) -> Response {
        let mut request = axum::http::Request::get(uri).header("host", "127.0.0.1:3000");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 40000))));
        router.clone().oneshot(request).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn link(path: &str, expires: u64, key: &PreviewKey) -> String {
        format!("/_isr/preview?{}", key.link_query(path, expires))
    }

    #[tokio::test]
    async fn a_valid_link_previews_every_page_and_nothing_is_kept() {
        let engine = engine().await;
        let app = router(&engine, true, None);
        let key = PreviewKey::new(SECRET).unwrap();
        let opened = get(&app, &link("/news/draft", unix_now() + 600, &key), None).await;
        assert_eq!(opened.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(header(&opened, "location"), "/news/draft");
        let cookie = header(&opened, "set-cookie").to_owned();
        assert!(cookie.starts_with("isr_preview="), "{cookie}");
        for attribute in ["; HttpOnly", "; SameSite=Lax", "; Path=/", "; Max-Age="] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        let max_age: u64 = cookie.rsplit("Max-Age=").next().unwrap().parse().unwrap();
        assert!((590..=600).contains(&max_age), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain http: {cookie}");
        let value = cookie.split(';').next().unwrap().to_owned();

        for _ in 0..2 {
            let page = get(&app, "/news/draft", Some(&value)).await;
            assert_eq!(page.status(), StatusCode::OK);
            assert_eq!(header(&page, "cache-control"), "private, no-store");
            assert_eq!(header(&page, "x-robots-tag"), "noindex");
            assert_eq!(header(&page, "x-isr-cache"), "PREVIEW");
            assert_eq!(header(&page, "cdn-cache-control"), "");
            assert_eq!(header(&page, "surrogate-key"), "");
            let html = text(page).await;
            assert!(html.contains("<p>preview=true</p>"), "{html}");
            assert!(
                html.contains("href=\"/_isr/preview/exit?path=%2Fnews%2Fdraft\""),
                "{html}"
            );
        }
        // A variant's exit link returns to it, query included.
        let variant = text(get(&app, "/news/draft?page=2&utm_source=x", Some(&value)).await).await;
        assert!(
            variant.contains("href=\"/_isr/preview/exit?path=%2Fnews%2Fdraft%3Fpage%3D2\""),
            "{variant}"
        );
        assert_eq!(engine.page_count(), 0, "a preview is kept nowhere");
        assert_eq!(engine.remembered_non_pages(), 0);

        let public = get(&app, "/news/draft", None).await;
        assert_eq!(header(&public, "x-isr-cache"), "MISS");
        assert!(text(public).await.contains("<p>preview=false</p>"));
        let again = get(&app, "/news/draft", Some(&value)).await;
        assert_eq!(
            header(&again, "x-isr-cache"),
            "PREVIEW",
            "never the stored page"
        );
        assert!(text(again).await.contains("<p>preview=true</p>"));
        let public = get(&app, "/news/draft", None).await;
        assert_eq!(header(&public, "x-isr-cache"), "HIT");
        assert!(
            text(public).await.contains("<p>preview=false</p>"),
            "never the preview"
        );
    }

    #[tokio::test]
    async fn forged_expired_and_malformed_links_set_no_cookie() {
        let engine = engine().await;
        let app = router(&engine, true, None);
        let key = PreviewKey::new(SECRET).unwrap();
        let other = PreviewKey::new("another-secret-0123456789").unwrap();
        let now = unix_now();
        let tampered = link("/news/draft", now + 600, &key).replace("draft", "other");
        let refused = [
            (link("/news/draft", now - 1, &key), StatusCode::UNAUTHORIZED),
            ("/_isr/preview".to_owned(), StatusCode::BAD_REQUEST),
            (
                "/_isr/preview?path=%2Fx&expires=soon&sig=00".to_owned(),
                StatusCode::BAD_REQUEST,
            ),
            (
                link("//evil.example", now + 600, &key),
                StatusCode::BAD_REQUEST,
            ),
            // The two guesses last: they are charged to the address (the limit here is 2).
            (
                link("/news/draft", now + 600, &other),
                StatusCode::UNAUTHORIZED,
            ),
            (tampered, StatusCode::UNAUTHORIZED),
        ];
        for (uri, status) in refused {
            let answer = get(&app, &uri, None).await;
            assert_eq!(answer.status(), status, "{uri}");
            assert_eq!(header(&answer, "set-cookie"), "", "{uri}");
            assert_eq!(header(&answer, "location"), "", "{uri}");
        }
        // The forged and the tampered link were charged; an expired one is not a guess.
        let blocked = get(&app, &link("/news/draft", now + 600, &key), None).await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        // A cookie of another key, or one that ended, previews nothing.
        for cookie in [other.cookie_value(now + 600), key.cookie_value(now - 1)] {
            let page = get(&app, "/news/x", Some(&format!("isr_preview={cookie}"))).await;
            assert_ne!(header(&page, "x-isr-cache"), "PREVIEW");
            assert!(text(page).await.contains("preview=false"));
        }
    }

    #[tokio::test]
    async fn the_exit_link_clears_the_cookie_and_returns_to_the_page() {
        let engine = engine().await;
        let app = router(&engine, true, Some("https://news.example.com"));
        let exit = get(&app, "/_isr/preview/exit?path=%2Fnews%2Fa", None).await;
        assert_eq!(exit.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(header(&exit, "location"), "/news/a");
        assert_eq!(
            header(&exit, "set-cookie"),
            "isr_preview=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
        let elsewhere = get(&app, "/_isr/preview/exit?path=%2F%2Fevil.example", None).await;
        assert_eq!(header(&elsewhere, "location"), "/");
        let key = PreviewKey::new(SECRET).unwrap();
        let opened = get(&app, &link("/news/a", unix_now() + 60, &key), None).await;
        assert!(
            header(&opened, "set-cookie").ends_with("; Secure"),
            "https site"
        );
    }

    #[tokio::test]
    async fn without_a_secret_previews_are_off() {
        let engine = engine().await;
        let app = router(&engine, false, None);
        let key = PreviewKey::new(SECRET).unwrap();
        let now = unix_now();
        for uri in [
            link("/news/a", now + 60, &key),
            "/_isr/preview/exit".to_owned(),
        ] {
            let answer = get(&app, &uri, None).await;
            assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(header(&answer, "set-cookie"), "");
        }
        let cookie = format!("isr_preview={}", key.cookie_value(now + 60));
        let page = get(&app, "/news/a", Some(&cookie)).await;
        assert_eq!(header(&page, "x-isr-cache"), "MISS");
        assert!(text(page).await.contains("preview=false"));
    }

    #[tokio::test]
    async fn a_preview_that_finds_nothing_or_fails_leaves_the_public_page_alone() {
        let engine = engine().await;
        let app = router(&engine, true, None);
        let key = PreviewKey::new(SECRET).unwrap();
        let cookie = format!("isr_preview={}", key.cookie_value(unix_now() + 60));
        let missing = get(&app, "/news/missing", Some(&cookie)).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&missing, "cache-control"), "private, no-store");
        let broken = get(&app, "/news/broken", Some(&cookie)).await;
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(header(&broken, "cache-control"), "private, no-store");
        let html = text(broken).await;
        assert!(
            html.contains("the CMS is down") && html.contains("id=\"isr-preview\""),
            "{html}"
        );
        // Nothing remembered, nothing backing off: the public requests run the loader.
        assert_eq!(engine.remembered_non_pages(), 0);
        assert_eq!(
            get(&app, "/news/missing", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            engine.remembered_non_pages(),
            1,
            "the public 404 is remembered"
        );
        let public = get(&app, "/news/broken", None).await;
        assert_eq!(
            public.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "its own failure"
        );
    }

    #[tokio::test]
    async fn in_dev_mode_the_cookie_renders_for_the_editor_too() {
        let engine = engine().await;
        let dev = Arc::new(super::super::dev::DevPages::new(
            engine.clone(),
            Default::default(),
            Default::default(),
        ));
        let app = super::super::router(
            engine.clone(),
            super::super::ServerOptions {
                preview: Some(PreviewKey::new(SECRET).unwrap()),
                dev: Some(dev),
                ..Default::default()
            },
        );
        let key = PreviewKey::new(SECRET).unwrap();
        let cookie = format!("isr_preview={}", key.cookie_value(unix_now() + 60));
        let editor = get(&app, "/news/a", Some(&cookie)).await;
        assert_eq!(header(&editor, "x-isr-cache"), "DEV");
        assert_eq!(header(&editor, "cache-control"), "private, no-store");
        assert_eq!(header(&editor, "x-robots-tag"), "noindex");
        let html = text(editor).await;
        assert!(
            html.contains("<p>preview=true</p>") && html.contains("id=\"isr-preview\""),
            "{html}"
        );
        let developer = text(get(&app, "/news/a", None).await).await;
        assert!(developer.contains("<p>preview=false</p>") && !developer.contains("isr-preview"));
    }

    #[tokio::test]
    async fn without_a_secret_every_method_on_the_preview_routes_is_404() {
        let engine = engine().await;
        let app = router(&engine, false, None);
        for method in ["GET", "POST", "DELETE"] {
            for uri in ["/_isr/preview", "/_isr/preview/exit"] {
                let request = axum::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("host", "127.0.0.1:3000")
                    .body(Body::empty())
                    .unwrap();
                let answer = app.clone().oneshot(request).await.unwrap();
                assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{method} {uri}");
            }
        }
    }

    #[test]
    fn the_banner_ends_the_body_and_exits_to_the_page() {
        let html = with_banner(
            "<html><body><main>x</main></body></html>".into(),
            "/blog/a b\"<",
        );
        assert!(
            html.starts_with("<html><body><main>x</main><aside id=\"isr-preview\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/_isr/preview/exit?path=%2Fblog%2Fa%20b%22%3C\""),
            "{html}"
        );
        assert!(html.ends_with("</aside></body></html>"));
    }

    #[test]
    fn only_a_cookie_of_this_key_that_has_not_ended_previews() {
        let key = PreviewKey::new("0123456789abcdef").unwrap();
        let headers = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
            headers
        };
        let valid = key.cookie_value(unix_now() + 60);
        let ended = key.cookie_value(unix_now() - 1);
        assert!(is_previewing(
            Some(&key),
            &headers(&format!("a=1; isr_preview={valid}"))
        ));
        assert!(!is_previewing(
            Some(&key),
            &headers(&format!("isr_preview={ended}"))
        ));
        assert!(!is_previewing(
            Some(&key),
            &headers(&format!("other={valid}"))
        ));
        assert!(
            !is_previewing(None, &headers(&format!("isr_preview={valid}"))),
            "previews off"
        );
        let other = PreviewKey::new("fedcba9876543210").unwrap();
        assert!(!is_previewing(
            Some(&other),
            &headers(&format!("isr_preview={valid}"))
        ));
    }
}
