//! `GET /sitemap.xml`, `/sitemap/<n>.xml` (parts of a large sitemap) and `/robots.txt`, unless
//! the app serves its own at those paths.

use crate::engine::Engine;
use crate::site::SiteUrl;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// How long clients and CDNs may keep the sitemap and robots.txt.
const CACHE_CONTROL: &str = "public, max-age=60";

#[derive(Clone)]
struct Sitemaps {
    engine: Arc<Engine>,
    public_url: Option<SiteUrl>,
}

/// The routes, for the paths the app has no page of its own at.
pub fn routes<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    public_url: Option<SiteUrl>,
) -> Router<S> {
    let own_sitemap = engine.routes().def("/sitemap.xml").is_some();
    let own_robots = engine.routes().def("/robots.txt").is_some();
    let state = Sitemaps { engine, public_url };
    let mut router = Router::new();
    if !own_sitemap {
        router = router
            .route("/sitemap.xml", get(sitemap_root))
            .route("/sitemap/{part}", get(sitemap_part));
    }
    if !own_robots {
        router = router.route("/robots.txt", get(robots));
    }
    router.with_state(state)
}

impl Sitemaps {
    /// `--public-url`, else the origin the request was sent to (`Host`, and
    /// `X-Forwarded-Proto` from a TLS-terminating proxy).
    fn site(&self, headers: &HeaderMap) -> SiteUrl {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
            .unwrap_or("localhost");
        let scheme = match headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
        {
            Some(p) if p.trim().eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        SiteUrl::parse(&format!("{scheme}://{host}"))
            .unwrap_or_else(|_| SiteUrl::parse("http://localhost").expect("a valid origin"))
    }
}

async fn sitemap_root(State(maps): State<Sitemaps>, headers: HeaderMap) -> Response {
    let site = maps.site(&headers);
    let engine = maps.engine.clone();
    // Sorting and writing up to a million lines is CPU work: off the async workers.
    match tokio::task::spawn_blocking(move || engine.sitemap().root(&site)).await {
        Ok(xml) => xml_response(xml),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sitemap_part(
    State(maps): State<Sitemaps>,
    Path(part): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(n) = part
        .strip_suffix(".xml")
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let site = maps.site(&headers);
    let engine = maps.engine.clone();
    match tokio::task::spawn_blocking(move || engine.sitemap().part(n, &site)).await {
        Ok(Some(xml)) => xml_response(xml),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn robots(State(maps): State<Sitemaps>, headers: HeaderMap) -> Response {
    let body = crate::sitemap::robots(&maps.site(&headers));
    typed(body, "text/plain; charset=utf-8")
}

fn xml_response(xml: String) -> Response {
    typed(xml, "application/xml; charset=utf-8")
}

fn typed(body: String, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}
