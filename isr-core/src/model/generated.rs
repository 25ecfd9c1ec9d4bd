//! What a loader produced once its view is rendered: the data the engine stores. Plain data
//! between the page definitions (`page`), which name it in their loader type, and the renderer
//! (`render`), which makes it: neither of the two depends on the other for it.

/// A rendered page before it is wrapped into a document.
///
/// ```
/// let body = isr::RenderedBody { body: "<p>hi</p>".into(), ..Default::default() };
/// let hydration = isr::Hydration::Full { export: "isr_hydrate__shello" };
/// let html = isr::render::document(&body, "/hello", hydration, &Default::default());
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// assert!(html.contains("<title>/hello</title>"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderedBody {
    /// The component's HTML.
    pub body: String,
    /// `<meta>`, `<link>`, `<style>`… registered with `leptos_meta` while rendering (the
    /// title apart: it is text).
    pub head: String,
    /// The text of `leptos_meta`'s `<Title>`, unescaped: the document escapes it (without one
    /// the document's title is the page's path).
    pub title: Option<String>,
    /// Attributes set with `leptos_meta::Html`, with a leading space.
    pub html_attrs: String,
    /// Attributes set with `leptos_meta::Body`, with a leading space.
    pub body_attrs: String,
    /// The props as JSON, embedded in the page for hydration.
    pub props_json: String,
    /// A dynamic page's route params as JSON pairs (`[["slug","hello"]]`), embedded for the
    /// view's `use_params_map` in the browser; empty for a static page.
    pub params_json: String,
    /// Tags the loader added for this generation.
    pub tags: Vec<String>,
    /// When this version stops being valid (`Load::valid_until`), in milliseconds since the
    /// Unix epoch.
    pub valid_until_ms: Option<u64>,
}

/// A loader's outcome with the props already rendered: what the engine stores.
///
/// ```
/// let gone = isr::__private::Generated::NotFound;
/// # let _ = gone;
/// ```
#[derive(Clone, Debug)]
pub enum Generated {
    /// The rendered page.
    Page(RenderedBody),
    /// A file route's body, served as it is with the route's content type.
    Body {
        /// The body exactly as the loader returned it (uncompressed).
        bytes: bytes::Bytes,
        /// Tags the loader added for this generation.
        tags: Vec<String>,
        /// When this version stops being valid, in milliseconds since the Unix epoch.
        valid_until_ms: Option<u64>,
    },
    /// See [`Load::NotFound`](crate::page::Load::NotFound).
    NotFound,
    /// See [`Load::NotYet`](crate::page::Load::NotYet): a 404 until this time, in
    /// milliseconds since the Unix epoch.
    NotYet {
        /// When the page may exist.
        until_ms: u64,
    },
    /// See [`Load::Redirect`](crate::page::Load::Redirect).
    Redirect {
        /// The target, as the loader gave it.
        location: String,
        /// `true`: 308, `false`: 307.
        permanent: bool,
    },
}

/// `time` in whole milliseconds since the Unix epoch (0 before it, saturating far after it).
///
/// ```
/// let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
/// assert_eq!(isr_core::model::unix_ms(at), 1_500);
/// assert_eq!(isr_core::model::unix_ms(std::time::UNIX_EPOCH - std::time::Duration::from_secs(1)), 0);
/// ```
pub fn unix_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
