//! Dev mode (`<app> dev`, and `cargo run` of a debug build): every page request runs its
//! loader and renders it, so an edit to the data shows on the next reload. Nothing is stored,
//! cached or built ahead: answers carry `cache-control: no-store`, pages carry a visible marker,
//! and a loader that fails (error, panic, timeout) shows its route and message in the page
//! (status 500) instead of keeping an old page. The client bundle appears in the documents as
//! soon as its background build is done ([`DevPages::set_client`]).

use super::{
    html_response, method_not_allowed, plain_status, redirect, typed_response, StatusPages,
    StatusPagesAt,
};
use crate::client::ClientBundle;
use crate::engine::Engine;
use crate::render::{escape_text, DocumentShell};
use crate::route::Resolved;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::FutureExt;
use isr_core::Generated;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

/// The marker every dev page carries: a badge drawn by CSS (`body::after`), so it adds no
/// element that hydration would have to match.
pub const MARKER_STYLE: &str = "<style>body::after{content:\"isr dev \\2014  every request renders\";position:fixed;right:.5rem;bottom:.5rem;font:12px/1.6 system-ui,sans-serif;background:#b54708;color:#fff;padding:.1rem .5rem;border-radius:.3rem;z-index:2147483647;pointer-events:none}</style>";

/// What `x-isr-cache` says on a dev answer.
const DEV_CACHE: &str = "DEV";

/// The pages of an app in dev mode.
pub struct DevPages {
    engine: Arc<Engine>,
    shell: RwLock<DocumentShell>,
    status_pages: StatusPages,
}

impl DevPages {
    /// Pages of `engine`'s routes, written with `shell` (its client bundle, if any, so far).
    pub fn new(engine: Arc<Engine>, shell: DocumentShell, status_pages: StatusPages) -> Self {
        DevPages {
            engine,
            shell: RwLock::new(shell),
            status_pages,
        }
    }

    /// Documents rendered from now on load `bundle` (its background build finished).
    pub fn set_client(&self, bundle: ClientBundle) {
        let mut shell = self.shell.write().unwrap_or_else(|e| e.into_inner());
        shell.client = Some(bundle);
    }

    fn shell(&self) -> DocumentShell {
        self.shell.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for DevPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPages").finish_non_exhaustive()
    }
}

/// The router's fallback in dev mode: the page at the request's path, rendered now.
pub(super) async fn dev_endpoint(dev: Arc<DevPages>, request: Request) -> Response {
    // Only the method and the path: the request's body is not `Sync`, so no reference to the
    // request may live across an await.
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let query = request.uri().query().map(str::to_owned);
    drop(request);
    let mut response = respond(&dev, &method, &path, query.as_deref()).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(super::ISR_CACHE, HeaderValue::from_static(DEV_CACHE));
    response
}

async fn respond(dev: &DevPages, method: &Method, path: &str, query: Option<&str>) -> Response {
    let status_pages = StatusPagesAt {
        pages: &dev.status_pages,
        path,
    };
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    let (def, key, params) = match dev.engine.routes().resolve(path) {
        Resolved::Page { def, key, params } => (def, key, params),
        Resolved::Canonical(location) => {
            let location = match query {
                Some(query) => format!("{location}?{query}"),
                None => location,
            };
            return redirect(&location, true, status_pages);
        }
        Resolved::NotFound => return not_found(dev, path),
    };
    let url_path = key.to_url_path();
    let context = dev.engine.load_context(params).at(url_path.clone());
    let run = AssertUnwindSafe((def.load)(context)).catch_unwind();
    let failure = match tokio::time::timeout(def.timeout(), run).await {
        Ok(Ok(Ok(generated))) => {
            return match generated {
                Generated::Page(body) => {
                    let html =
                        crate::render::document(&body, &url_path, def.hydration, &dev.shell());
                    html_response(StatusCode::OK, Body::from(with_marker_html(html)))
                }
                Generated::Body { bytes, .. } => {
                    typed_response(StatusCode::OK, Body::from(bytes), def.response_type())
                }
                Generated::NotFound | Generated::NotYet { .. } => not_found(dev, path),
                Generated::Redirect {
                    location,
                    permanent,
                } => redirect(&location, permanent, status_pages),
            }
        }
        Ok(Ok(Err(error))) => format!("{error:#}"),
        Ok(Err(panic)) => format!("panicked: {}", panic_message(&*panic)),
        Err(_) => format!("timed out after {} s", def.timeout().as_secs()),
    };
    tracing::error!(path = %url_path, route = def.path, error = %failure, "dev: the loader failed");
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Body::from(error_document(def.path, &url_path, &failure, &dev.shell())),
    )
}

/// The app's 404 page for `path` (or isr's), with the marker.
fn not_found(dev: &DevPages, path: &str) -> Response {
    match &dev.status_pages.not_found {
        Some(document) => {
            let html = String::from_utf8_lossy(document.at(path)).into_owned();
            html_response(StatusCode::NOT_FOUND, Body::from(with_marker_html(html)))
        }
        None => plain_status(
            StatusCode::NOT_FOUND,
            "Not found",
            "This page could not be found.",
        ),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

fn with_marker_html(html: String) -> String {
    match html.find("</head>") {
        Some(at) => {
            let mut marked = String::with_capacity(html.len() + MARKER_STYLE.len());
            marked.push_str(&html[..at]);
            marked.push_str(MARKER_STYLE);
            marked.push_str(&html[at..]);
            marked
        }
        None => html,
    }
}

/// The page a failed loader gets in dev mode: its route, its path and the error, escaped, with
/// the live-reload script so that the fix reloads it.
fn error_document(route: &str, url_path: &str, error: &str, shell: &DocumentShell) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Loader failed: {path}</title>{marker}<style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem;color:#222}}pre{{background:#fff4ed;border-left:4px solid #b54708;padding:1rem;white-space:pre-wrap}}</style>{reload}</head><body><h1>The loader of <code>{route}</code> failed</h1><p>Path <code>{path}</code>. In production the last good page would be served and the page retried later; in dev mode every request runs the loader again: fix the cause and reload.</p><pre class=\"isr-error\">{error}</pre></body></html>",
        route = escape_text(route),
        path = escape_text(url_path),
        error = escape_text(error),
        marker = MARKER_STYLE,
        reload = shell.extra_head,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_goes_at_the_end_of_the_head() {
        let html =
            with_marker_html("<html><head><title>x</title></head><body></body></html>".into());
        assert!(
            html.contains(&format!("<title>x</title>{MARKER_STYLE}</head>")),
            "{html}"
        );
        assert_eq!(with_marker_html("plain".into()), "plain");
    }

    #[test]
    fn the_error_page_escapes_what_the_loader_said() {
        let html = error_document(
            "/blog/:slug",
            "/blog/x",
            "<script>alert(1)</script>",
            &DocumentShell::default(),
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("<code>/blog/:slug</code>"));
    }
}
