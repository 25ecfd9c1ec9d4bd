//! Dev mode (`<app> dev`, and `cargo run` of a debug build): every page request runs its
//! loader and renders it, so an edit to the data shows on the next reload. Nothing is stored,
//! cached or built ahead: answers carry `cache-control: no-store`, pages carry a visible marker,
//! and a loader that fails (error, panic, timeout) shows its route and message in the page
//! (status 500) instead of keeping an old page. The client bundle appears in the documents as
//! soon as its background build is done ([`DevPages::set_client`]).

use super::uncached::{self, Mode};
use super::StatusPages;
use crate::client::ClientBundle;
use crate::engine::{Audience, Engine};
use crate::render::DocumentShell;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
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

/// The router's fallback in dev mode: the page at the request's path, rendered now (for an
/// editor's preview when the request carries a valid preview cookie: `audience`).
pub(super) async fn dev_endpoint(
    dev: Arc<DevPages>,
    request: Request,
    audience: Audience,
) -> Response {
    let shell = dev.shell();
    let mode = Mode {
        engine: &dev.engine,
        documents: Some(&shell),
        audience,
        status_pages: &dev.status_pages,
        mark: match audience {
            Audience::Developer => |html, _| with_marker_html(html),
            Audience::Editor => |html, url_path| super::preview::with_banner(with_marker_html(html), url_path),
        },
        failure_note: "In production the last good page would be served and the page retried later; in dev mode every request runs the loader again: fix the cause and reload.",
        extra_head: &shell.extra_head,
        failure_log: "dev: the loader failed",
    };
    let mut response = uncached::respond(&mode, request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(super::ISR_CACHE, HeaderValue::from_static(DEV_CACHE));
    if audience == Audience::Editor {
        super::preview::preview_headers(headers);
    }
    response
}

fn with_marker_html(html: String) -> String {
    let at = html.find("</head>");
    uncached::insert_at(html, at, MARKER_STYLE)
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
}
