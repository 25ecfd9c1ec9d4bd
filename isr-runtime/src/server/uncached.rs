//! Answers rendered for one request and kept nowhere ([`Engine::render_uncached`]): every page
//! in dev mode ([`super::dev`]) and an editor's preview ([`super::preview`]). Each HTML answer
//! carries its mode's mark (the dev badge, the preview banner); a loader that fails (error,
//! panic, timeout) shows its route and message in the page (status 500): there is no old page
//! to fall back on, and the person looking is the one who can fix it.

use super::{
    html_response, method_not_allowed, plain_status, redirect, typed_response, StatusPages,
    StatusPagesAt,
};
use crate::engine::{Audience, DocumentWriter, Engine, Uncached};
use crate::render::escape_text;
use crate::route::Resolved;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;

/// How one mode renders and marks its answers.
pub(super) struct Mode<'a> {
    pub(super) engine: &'a Engine,
    /// The document writer (the shell with the client bundle); `None`: the engine's.
    pub(super) documents: Option<&'a dyn DocumentWriter>,
    pub(super) audience: Audience,
    pub(super) status_pages: &'a StatusPages,
    /// Adds the mode's mark to an HTML document served at a URL path.
    pub(super) mark: fn(String, &str) -> String,
    /// What the page of a failed loader says after the error.
    pub(super) failure_note: &'static str,
    /// Extra `<head>` of the failure page (dev's live-reload script).
    pub(super) extra_head: &'a str,
    /// The log line of a failed loader.
    pub(super) failure_log: &'static str,
}

/// The answer to `request` rendered now in `mode`.
pub(super) async fn respond(mode: &Mode<'_>, request: Request) -> Response {
    // Only the method, the path and the query: the request's body is not `Sync`, so no
    // reference to the request may live across an await.
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let query = request.uri().query().map(str::to_owned);
    drop(request);
    let (path, query) = (path.as_str(), query.as_deref());
    let status_pages = StatusPagesAt {
        pages: mode.status_pages,
        path,
    };
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    let (def, key, params) = match mode.engine.routes().resolve_request(path, query) {
        Resolved::Page { def, key, params } => (def, key, params),
        Resolved::Canonical(location) => return redirect(&location, true, status_pages),
        Resolved::NotFound => return not_found(mode, path),
    };
    // The page's URL, a variant's query included (where the preview's exit link returns).
    let url_path = key.to_url_path();
    let rendered = mode
        .engine
        .render_uncached(def, &key, params, mode.audience, mode.documents)
        .await;
    match rendered {
        Uncached::Document(html) => {
            html_response(StatusCode::OK, Body::from((mode.mark)(html, &url_path)))
        }
        Uncached::Body(bytes) => {
            typed_response(StatusCode::OK, Body::from(bytes), def.response_type())
        }
        Uncached::NotFound => not_found(mode, path),
        Uncached::Redirect {
            location,
            permanent,
        } => redirect(&location, permanent, status_pages),
        Uncached::Failed(failure) => {
            tracing::error!(path = %url_path, route = def.path, error = %failure, "{}", mode.failure_log);
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Body::from((mode.mark)(
                    error_document(def.path, &url_path, &failure, mode),
                    &url_path,
                )),
            )
        }
    }
}

/// The app's 404 page for `path` (or isr's), with the mode's mark.
fn not_found(mode: &Mode<'_>, path: &str) -> Response {
    match &mode.status_pages.not_found {
        Some(document) => {
            let html = String::from_utf8_lossy(document.at(path)).into_owned();
            html_response(StatusCode::NOT_FOUND, Body::from((mode.mark)(html, path)))
        }
        None => plain_status(
            StatusCode::NOT_FOUND,
            "Not found",
            "This page could not be found.",
        ),
    }
}

/// The page a failed loader gets: its route, its path and the error, escaped, then the mode's
/// note.
fn error_document(route: &str, url_path: &str, error: &str, mode: &Mode<'_>) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Loader failed: {path}</title><style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem;color:#222}}pre{{background:#fff4ed;border-left:4px solid #b54708;padding:1rem;white-space:pre-wrap}}</style>{head}</head><body><h1>The loader of <code>{route}</code> failed</h1><p>Path <code>{path}</code>. {note}</p><pre class=\"isr-error\">{error}</pre></body></html>",
        route = escape_text(route),
        path = escape_text(url_path),
        error = escape_text(error),
        note = mode.failure_note,
        head = mode.extra_head,
    )
}

/// `addition` inserted at byte `at` of `html` (a tag's position found by the caller: `</head>`
/// or the last `</body>`); the document as it is when there is no such place.
pub(super) fn insert_at(html: String, at: Option<usize>, addition: &str) -> String {
    match at {
        Some(at) => {
            let mut marked = String::with_capacity(html.len() + addition.len());
            marked.push_str(&html[..at]);
            marked.push_str(addition);
            marked.push_str(&html[at..]);
            marked
        }
        None => html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_addition_goes_where_it_is_told() {
        let page = "<html><head></head><body><p>x</p></body></html>".to_owned();
        let at = page.rfind("</body>");
        let html = insert_at(page, at, "<aside>m</aside>");
        assert!(
            html.ends_with("<p>x</p><aside>m</aside></body></html>"),
            "{html}"
        );
        assert_eq!(insert_at("plain".into(), None, "m"), "plain");
    }

    #[tokio::test]
    async fn the_error_page_escapes_what_the_loader_said() {
        let engine = crate::__private::example_engine(crate::__private::example_routes(&[])).await;
        let mode = Mode {
            engine: &engine,
            documents: None,
            audience: Audience::Developer,
            status_pages: &StatusPages::default(),
            mark: |html, _| html,
            failure_note: "Fix it.",
            extra_head: "",
            failure_log: "failed",
        };
        let html = error_document("/blog/:slug", "/blog/x", "<script>alert(1)</script>", &mode);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("<code>/blog/:slug</code>") && html.contains("Fix it."));
    }
}
