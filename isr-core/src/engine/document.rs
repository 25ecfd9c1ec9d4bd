//! How a rendered page becomes the document the engine stores: a seam, so that the engine
//! knows nothing about the HTML shell (doctype, head, hydration scripts, CSP), which the
//! rendering layer writes ([`crate::render::DocumentShell`] implements it).

use crate::model::{Hydration, RenderedBody};

/// Writes the stored document of a rendered page. Called once per generation, on the
/// generation's task (not a request's).
///
/// ```
/// use isr::engine::DocumentWriter;
/// let body = isr::RenderedBody { body: "<p>hi</p>".into(), ..Default::default() };
/// let hydration = isr::Hydration::Full { export: "isr_hydrate__shello" };
/// let html = isr::render::DocumentShell::default().write(&body, "/hello", hydration);
/// assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<p>hi</p>"));
/// ```
pub trait DocumentWriter: Send + Sync + 'static {
    /// The document of `body`, rendered for the page at `url_path`, which comes alive in the
    /// browser as `hydration` says.
    fn write(&self, body: &RenderedBody, url_path: &str, hydration: Hydration) -> String;
}

/// The body as rendered, without a document around it: what an engine writes unless it is
/// given a writer (pages that are fragments, tests).
///
/// ```
/// use isr::engine::{BodyOnly, DocumentWriter};
/// let body = isr::RenderedBody { body: "<p>hi</p>".into(), ..Default::default() };
/// assert_eq!(BodyOnly.write(&body, "/hello", isr::Hydration::Islands), "<p>hi</p>");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BodyOnly;

impl DocumentWriter for BodyOnly {
    fn write(&self, body: &RenderedBody, _url_path: &str, _hydration: Hydration) -> String {
        body.body.clone()
    }
}
