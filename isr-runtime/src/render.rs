//! Rendering: a leptos view with its props → page body (+ `<head>` tags from `leptos_meta`),
//! and a rendered body → the full HTML document that is stored and served.

use crate::page::Load;
use crate::page::Params;
use futures::StreamExt;
pub use isr_core::RenderedBody;
use isr_core::{Generated, Hydration};
use leptos::prelude::{provide_context, IntoView, Owner, RenderHtml};
use leptos_meta::ServerMetaContext;
use serde::Serialize;

use crate::client::ClientBundle;
use crate::csp::inline_script_hashes;
use crate::PROPS_ELEMENT_ID;

/// What every page document gets besides its own body: the client bundle to hydrate with, and
/// extra `<head>` HTML (cargo-leptos's live-reload script under `cargo leptos watch`).
///
/// ```
/// let shell = isr::render::DocumentShell::default();
/// assert!(shell.client.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentShell {
    /// The bundle pages load to hydrate; `None` serves them without hydration.
    pub client: Option<ClientBundle>,
    /// Raw HTML appended to every `<head>` (the live-reload script).
    pub extra_head: String,
    /// What the app sets on every document.
    pub app: Shell,
}

impl crate::engine::DocumentWriter for DocumentShell {
    fn write(&self, body: &RenderedBody, url_path: &str, hydration: Hydration) -> String {
        document(body, url_path, hydration, self)
    }
}

/// What an app sets on every document it serves ([`crate::App::shell`]): the `<html lang>`
/// (when a page sets none with `leptos_meta::Html`), `<head>` elements, `<body>` attributes.
///
/// ```
/// let shell = isr::Shell::new()
///     .lang("de")
///     .head(r#"<link rel="icon" href="/favicon.svg">"#)
///     .body_attr("class", "site");
/// let body = isr::RenderedBody { body: "<p>x</p>".into(), ..Default::default() };
/// let shell = isr::render::DocumentShell { app: shell, ..Default::default() };
/// let html = isr::render::document(&body, "/x", isr::Hydration::Full { export: "isr_hydrate__sx" }, &shell);
/// assert!(html.starts_with(r#"<!DOCTYPE html><html lang="de">"#));
/// assert!(html.contains(r#"<link rel="icon" href="/favicon.svg">"#) && !html.contains("data:,"));
/// assert!(html.contains(r#"<body class="site"><p>x</p>"#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shell {
    lang: Option<String>,
    head: String,
    body_attrs: String,
    csp: Option<crate::csp::ContentSecurityPolicy>,
}

impl Shell {
    /// isr's defaults: `lang="en"`, no extra head elements, a blank favicon.
    pub fn new() -> Self {
        Self::default()
    }

    /// The documents' language (`<html lang>`), unless a page sets its own.
    pub fn lang(mut self, lang: impl Into<String>) -> Self {
        self.lang = Some(lang.into());
        self
    }

    /// Raw HTML appended to every `<head>` (icons, fonts, analytics). With a `rel="icon"`
    /// link, isr's blank favicon is left out.
    pub fn head(mut self, html: impl AsRef<str>) -> Self {
        self.head.push_str(html.as_ref());
        self
    }

    /// Every document carries `policy` (see [`crate::csp`]): its scripts are the client bundle
    /// and, by hash, the inline scripts isr and this shell write; nothing else runs.
    ///
    /// ```
    /// let shell = isr::Shell::new().content_security_policy(isr::ContentSecurityPolicy::strict());
    /// let shell = isr::render::DocumentShell { app: shell, ..Default::default() };
    /// let html = isr::render::document(&Default::default(), "/x", isr::Hydration::Full { export: "e" }, &shell);
    /// assert!(html.contains(r#"<meta http-equiv="content-security-policy" content="default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "#), "{html}");
    /// ```
    pub fn content_security_policy(mut self, policy: crate::csp::ContentSecurityPolicy) -> Self {
        self.csp = Some(policy);
        self
    }

    /// The policy set with [`Shell::content_security_policy`].
    pub fn policy(&self) -> Option<&crate::csp::ContentSecurityPolicy> {
        self.csp.as_ref()
    }

    /// An attribute on every `<body>` (its value escaped).
    pub fn body_attr(mut self, name: &str, value: &str) -> Self {
        self.body_attrs
            .push_str(&format!(" {name}=\"{}\"", escape_text(value)));
        self
    }
}

/// Renders a loader's outcome: used by the code `#[page]` generates.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> isr::Result<()> {
/// use leptos::prelude::*;
/// let load = isr::Load::props("world".to_string());
/// let cx = isr::LoadContext::new(isr::Params::new(), Default::default()).at("/hello");
/// let full = isr::Hydration::Full { export: "isr_hydrate__shello" };
/// let generated = isr::__private::render_load(load, &cx, full, |name: String| view! { <p>"Hello " {name}</p> }).await?;
/// assert!(matches!(generated, isr::__private::Generated::Page(ref b) if b.body.contains("world") && b.props_json == r#""world""#));
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the props do not serialize to JSON (a `Serialize` impl that fails, a map with
/// non-string keys); nothing else fails.
pub async fn render_load<P, F, V>(
    load: Load<P>,
    cx: &crate::LoadContext,
    hydration: Hydration,
    view: F,
) -> crate::Result<Generated>
where
    P: Serialize + Send + 'static,
    F: FnOnce(P) -> V + Send + 'static,
    V: IntoView + 'static,
{
    Ok(match load {
        Load::Props {
            props,
            tags,
            valid_until,
        } => {
            let route = PageRoute {
                url_path: cx.url_path().to_owned(),
                params: cx.params().clone(),
            };
            let mut body = render_page_for(props, &route, hydration, view).await?;
            body.tags = tags;
            body.valid_until_ms = valid_until.map(isr_core::model::unix_ms);
            Generated::Page(body)
        }
        Load::NotFound => Generated::NotFound,
        Load::NotYet { until } => Generated::NotYet {
            until_ms: isr_core::model::unix_ms(until),
        },
        Load::Redirect {
            location,
            permanent,
        } => Generated::Redirect {
            location,
            permanent,
        },
    })
}

/// The body of a file route (`/blog/feed.xml`): what its loader returns besides `Load`.
///
/// ```
/// use isr::render::IntoBody;
/// assert_eq!(String::from("<rss/>").into_body(), "<rss/>".as_bytes());
/// assert_eq!(b"bytes".to_vec().into_body(), "bytes".as_bytes());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the body of a file route",
    note = "a file route's loader returns `Load<String>`, `Load<&'static str>`, `Load<Vec<u8>>` or `Load<bytes::Bytes>`"
)]
pub trait IntoBody {
    /// The bytes to serve.
    fn into_body(self) -> bytes::Bytes;
}

impl IntoBody for String {
    fn into_body(self) -> bytes::Bytes {
        self.into()
    }
}

impl IntoBody for &'static str {
    fn into_body(self) -> bytes::Bytes {
        bytes::Bytes::from_static(self.as_bytes())
    }
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> bytes::Bytes {
        self.into()
    }
}

impl IntoBody for bytes::Bytes {
    fn into_body(self) -> bytes::Bytes {
        self
    }
}

/// A file route's outcome: used by the code `#[page]` generates.
///
/// ```
/// let load = isr::Load::props(String::from("User-agent: *")).tag("robots");
/// let generated = isr::__private::render_body(load).unwrap();
/// assert!(matches!(generated, isr::__private::Generated::Body { ref bytes, ref tags, valid_until_ms: None }
///     if bytes.as_ref() == b"User-agent: *" && tags == &["robots"]));
/// ```
///
/// # Errors
/// Never: the `Result` is the signature the generated loader code expects.
pub fn render_body<B: IntoBody>(load: Load<B>) -> crate::Result<Generated> {
    Ok(match load {
        Load::Props {
            props,
            tags,
            valid_until,
        } => Generated::Body {
            bytes: props.into_body(),
            tags,
            valid_until_ms: valid_until.map(isr_core::model::unix_ms),
        },
        Load::NotFound => Generated::NotFound,
        Load::NotYet { until } => Generated::NotYet {
            until_ms: isr_core::model::unix_ms(until),
        },
        Load::Redirect {
            location,
            permanent,
        } => Generated::Redirect {
            location,
            permanent,
        },
    })
}

/// Where a page view is rendered: the URL path its leptos_router context reports
/// (`use_location`) and its route's params (`use_params_map`); see [`crate::router`].
///
/// ```
/// let route = isr::render::PageRoute::at("/blog/hello").param("slug", "hello");
/// assert_eq!(route.params.get("slug").unwrap(), "hello");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRoute {
    /// The page's URL path (percent-encoded, as a browser's `location.pathname`).
    pub url_path: String,
    /// The route's params.
    pub params: Params,
}

impl PageRoute {
    /// A page at this URL path, without params.
    pub fn at(url_path: impl Into<String>) -> Self {
        PageRoute {
            url_path: url_path.into(),
            params: Params::new(),
        }
    }

    /// With one more route param.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.insert(name, value);
        self
    }
}

/// Renders a page view at `route`: `view(props)` inside a leptos_router `<Router>` (so `<A>`,
/// `use_location` and `use_params_map` work in it), with the route's params kept for the
/// browser to hydrate with the same context.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> isr::Result<()> {
/// use leptos::prelude::*;
/// use leptos_router::{components::A, hooks::use_params_map};
/// let route = isr::render::PageRoute::at("/blog/hello").param("slug", "hello");
/// let body = isr::render::render_page((), &route, |()| {
///     let slug = use_params_map().get_untracked().get("slug").unwrap_or_default();
///     view! { <A href="/blog/hello">{slug}</A> <A href="/blog">"Up"</A> <A href="/blog" exact=true>"All"</A> }
/// }).await?;
/// assert!(body.body.contains(r#"<a href="/blog/hello" aria-current="page">hello</a>"#), "{}", body.body);
/// // A link to a parent path is current too, unless it is `exact`.
/// assert!(body.body.contains(r#"<a href="/blog" aria-current="page">Up</a>"#), "{}", body.body);
/// assert!(body.body.contains(r#"<a href="/blog">All</a>"#), "{}", body.body);
/// assert_eq!(body.params_json, r#"[["slug","hello"]]"#);
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the props do not serialize to JSON (a `Serialize` impl that fails, a map with
/// non-string keys); nothing else fails.
pub async fn render_page<P, F, V>(
    props: P,
    route: &PageRoute,
    view: F,
) -> crate::Result<RenderedBody>
where
    P: Serialize + Send + 'static,
    F: FnOnce(P) -> V + Send + 'static,
    V: IntoView + 'static,
{
    render_page_in(props, route, RenderMode::Full, view).await
}

/// [`render_page`] for a page that hydrates as `hydration` says: an islands page is rendered
/// in leptos's islands mode (only its `#[island]`s carry hydration data, each its own props)
/// and keeps neither its props nor its params for the browser.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> isr::Result<()> {
/// use leptos::prelude::*;
/// let route = isr::render::PageRoute::at("/blog/hello").param("slug", "hello");
/// let body = isr::render::render_page_for("secret draft notes", &route, isr::Hydration::Islands, |notes: &str| {
///     view! { <p>{notes.len()}</p> }
/// }).await?;
/// assert_eq!(body.body, "<p>18</p>");
/// assert!(body.props_json.is_empty() && body.params_json.is_empty());
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`render_page`]; an islands page never fails.
pub async fn render_page_for<P, F, V>(
    props: P,
    route: &PageRoute,
    hydration: Hydration,
    view: F,
) -> crate::Result<RenderedBody>
where
    P: Serialize + Send + 'static,
    F: FnOnce(P) -> V + Send + 'static,
    V: IntoView + 'static,
{
    render_page_in(props, route, RenderMode::of(hydration), view).await
}

/// How a view is rendered: for full hydration (its props and route params kept as JSON, no
/// shared context) or in leptos's islands mode (neither kept; a shared context that is not
/// hydrating, which each `#[island]` switches on for its own subtree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RenderMode {
    Full,
    Islands,
}

impl RenderMode {
    fn of(hydration: Hydration) -> RenderMode {
        match hydration {
            Hydration::Full { .. } => RenderMode::Full,
            Hydration::Islands => RenderMode::Islands,
        }
    }
}

/// [`render_page`] / [`render_page_for`] in `mode`.
async fn render_page_in<P, F, V>(
    props: P,
    route: &PageRoute,
    mode: RenderMode,
    view: F,
) -> crate::Result<RenderedBody>
where
    P: Serialize + Send + 'static,
    F: FnOnce(P) -> V + Send + 'static,
    V: IntoView + 'static,
{
    let params: Vec<(String, String)> = route
        .params
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let params_json = if params.is_empty() || mode == RenderMode::Islands {
        String::new()
    } else {
        serde_json::to_string(&params)?
    };
    let url_path = route.url_path.clone();
    let mut body = render_with(props, mode, move |props| {
        routed_html(&url_path, &url_path, params, move || view(props))
    })
    .await?;
    body.params_json = params_json;
    Ok(body)
}

/// The HTML of `view()` at `url_path` inside the layouts that cover `layout_path` and a
/// `<Router>` with `params` (inside the render's owner).
fn routed_html<F, V>(
    url_path: &str,
    layout_path: &str,
    params: Vec<(String, String)>,
    view: F,
) -> String
where
    F: FnOnce() -> V + Send + 'static,
    V: IntoView + 'static,
{
    provide_context(leptos_router::location::RequestUrl::new(url_path));
    crate::router::with_router(params, layout_path, view).to_html()
}

/// Renders `view(props)` to HTML inside a fresh reactive owner, collecting `leptos_meta` tags
/// (without a router: isr's own dashboard).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> isr::Result<()> {
/// use leptos::prelude::*;
/// let body = isr::render::render_view(3u32, |n| view! { <b>{n}</b> }).await?;
/// assert!(body.body.contains("<b>3</b>"));
/// assert_eq!(body.props_json, "3");
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the props do not serialize to JSON (a `Serialize` impl that fails, a map with
/// non-string keys); nothing else fails.
pub async fn render_view<P, F, V>(props: P, view: F) -> crate::Result<RenderedBody>
where
    P: Serialize + Send,
    F: FnOnce(P) -> V + Send,
    V: RenderHtml,
{
    render_with(props, RenderMode::Full, |props| view(props).to_html()).await
}

/// Renders with a fresh reactive owner in `mode` (see [`RenderMode`]) and collects the head.
async fn render_with<P, F>(props: P, mode: RenderMode, render: F) -> crate::Result<RenderedBody>
where
    P: Serialize + Send,
    F: FnOnce(P) -> String + Send,
{
    // leptos_meta waits a tick of the leptos executor; make sure one exists (idempotent).
    let _ = any_spawner::Executor::init_tokio();
    let props_json = if mode == RenderMode::Full {
        serde_json::to_string(&props)?
    } else {
        String::new()
    };
    let (meta_context, meta_output) = ServerMetaContext::new();
    let boundary = HeadBoundary::new();
    let body = {
        let owner = match mode {
            RenderMode::Full => Owner::new(),
            RenderMode::Islands => Owner::new_root(Some(std::sync::Arc::new(
                hydration_context::SsrSharedContext::new_islands(),
            ))),
        };
        owner.with(|| {
            leptos_meta::provide_meta_context();
            provide_context(meta_context);
            let body = render(props);
            boundary.register();
            body
        })
    };
    let shell = futures::stream::iter([boundary.shell()]);
    let filled: String = meta_output
        .inject_meta_context(shell)
        .await
        .collect::<Vec<_>>()
        .await
        .concat();
    let head = boundary.split(&filled);
    Ok(RenderedBody {
        body,
        title: head.title,
        head: head.elements,
        html_attrs: head.html_attrs,
        body_attrs: head.body_attrs,
        props_json,
        params_json: String::new(),
        tags: Vec::new(),
        valid_until_ms: None,
    })
}

/// Tells apart what `leptos_meta` collected while a view rendered, without reading any of it as
/// markup.
///
/// `leptos_meta` writes the `<title>` text into the head unescaped, and puts `Body` attributes
/// at the first `<body` it finds, which may be inside that title: read back as markup, a page
/// titled `x</title><script>…` would run script. So isr lets `leptos_meta` fill a shell whose
/// every boundary carries a random nonce (the page's data cannot contain it), with `<body>`
/// before the head content, and registers a `<meta>` marker after the view so that the title,
/// which `leptos_meta` always writes last, is exactly what follows that marker. The title is
/// kept as text and escaped when the document is written ([`document`]).
struct HeadBoundary {
    nonce: String,
}

/// The parts of the head [`HeadBoundary::split`] found.
#[derive(Debug, Default, PartialEq, Eq)]
struct CollectedHead {
    /// The `<title>` text, unescaped.
    title: Option<String>,
    /// The other head elements (`<meta>`, `<link>`, `<style>`…), as `leptos_meta` wrote them.
    elements: String,
    html_attrs: String,
    body_attrs: String,
}

impl HeadBoundary {
    fn new() -> Self {
        HeadBoundary {
            nonce: format!("isr{:016x}", crate::random::u64()),
        }
    }

    /// Registers the end marker of the view's head elements (called inside the view's owner,
    /// after the view).
    fn register(&self) {
        use leptos::prelude::*;
        let _ = view! { <leptos_meta::Meta name="isr-head-end" content=self.nonce.clone() /> }
            .to_html();
    }

    /// What `leptos_meta` fills in: `<html>` and `<body>` first, then the head.
    fn shell(&self) -> String {
        let n = &self.nonce;
        format!("<html {n}><body {n}></body><head><!--HEAD--><!--{n}--></head>")
    }

    /// The parts of `filled` (the shell after `leptos_meta`); nothing when it is not that shell.
    fn split(&self, filled: &str) -> CollectedHead {
        let n = &self.nonce;
        let html_end = format!(" {n}><body");
        let body_end = format!(" {n}></body><head><!--HEAD-->");
        let marker = format!("<meta name=\"isr-head-end\" content=\"{n}\">");
        let head_end = format!("<!--{n}--></head>");
        let parts = (|| {
            let rest = filled.strip_prefix("<html")?;
            let (html_attrs, rest) = rest.split_once(&html_end)?;
            let (body_attrs, head) = rest.split_once(&body_end)?;
            let head = head.strip_suffix(&head_end)?;
            let (elements, title) = head.split_once(&marker)?;
            let title = title
                .strip_prefix("<title>")
                .and_then(|t| t.strip_suffix("</title>"))
                .map(str::to_owned);
            Some(CollectedHead {
                title,
                elements: elements.to_owned(),
                html_attrs: html_attrs.to_owned(),
                body_attrs: body_attrs.to_owned(),
            })
        })();
        parts.unwrap_or_default()
    }
}

/// Wraps a rendered body into the full HTML document for the page at `path`. The body holds
/// only the view (what hydration walks); props and scripts go into `<head>`.
///
/// ```
/// use isr::render::{document, DocumentShell};
/// use isr::client::ClientBundle;
/// let body = isr::RenderedBody { body: "<main>x</main>".into(), props_json: "{}".into(), ..Default::default() };
/// let full = isr::Hydration::Full { export: "isr_hydrate__sblog" };
/// let plain = document(&body, "/blog", full, &DocumentShell::default());
/// assert!(plain.contains("<body><main>x</main></body>"));
/// assert!(plain.contains(r#"<script type="application/json" id="__isr_props">{}</script>"#));
/// assert!(!plain.contains("type=\"module\""));
/// let shell = DocumentShell {
///     client: Some(ClientBundle { js: "/pkg/a-1.js".into(), wasm: "/pkg/a-1_bg.wasm".into(), immutable: true }),
///     ..Default::default()
/// };
/// let hydrating = document(&body, "/blog", full, &shell);
/// assert!(hydrating.contains("isr_hydrate__sblog()"));
/// // An islands page: no props, and no script at all without an island.
/// let islands = document(&body, "/blog", isr::Hydration::Islands, &shell);
/// assert!(!islands.contains("__isr_props") && !islands.contains("<script"));
/// let body = isr::RenderedBody {
///     body: r#"<leptos-island data-component="Like_1"><button>0</button></leptos-island>"#.into(),
///     ..Default::default()
/// };
/// let islands = document(&body, "/blog", isr::Hydration::Islands, &shell);
/// assert!(islands.contains(r#"<link rel="modulepreload" href="/pkg/a-1.js">"#));
/// assert!(islands.contains("isr_hydrate_islands()") && !islands.contains("__isr_props"));
/// ```
pub fn document(
    body: &RenderedBody,
    path: &str,
    hydration: Hydration,
    shell: &DocumentShell,
) -> String {
    document_with_scripts(body, path, hydration, shell).html
}

/// A document and the hashes of the inline scripts isr and the app wrote into it (what a
/// Content-Security-Policy header for it allows; see [`crate::csp`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The whole HTML document.
    pub html: String,
    /// `'sha256-…'` of each inline script isr or the app's shell wrote (never of page data).
    pub script_hashes: Vec<String>,
}

/// [`document`], with the hashes of its own inline scripts. With the shell's
/// [`Shell::content_security_policy`], the document carries that policy (with these hashes)
/// as its first `<head>` element after the charset.
///
/// ```
/// use isr::render::{document_with_scripts, DocumentShell};
/// use isr::client::ClientBundle;
/// let body = isr::RenderedBody { body: "<main>x</main>".into(), ..Default::default() };
/// let shell = DocumentShell {
///     client: Some(ClientBundle { js: "/pkg/a-1.js".into(), wasm: "/pkg/a-1_bg.wasm".into(), immutable: true }),
///     app: isr::Shell::new().content_security_policy(isr::ContentSecurityPolicy::strict()),
///     ..Default::default()
/// };
/// let doc = document_with_scripts(&body, "/blog", isr::Hydration::Full { export: "isr_hydrate__sblog" }, &shell);
/// assert_eq!(doc.script_hashes.len(), 1, "the hydration call");
/// let meta = format!("<meta http-equiv=\"content-security-policy\" content=\"default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {}", doc.script_hashes[0]);
/// assert!(doc.html.contains(&meta), "{}", doc.html);
/// ```
pub fn document_with_scripts(
    body: &RenderedBody,
    path: &str,
    hydration: Hydration,
    shell: &DocumentShell,
) -> Document {
    let embeds_props = hydration.embeds_props();
    let scripts = shell
        .client
        .as_ref()
        .and_then(|client| hydration_scripts(client, hydration, &body.body));
    let mut script_hashes = inline_script_hashes(&shell.app.head);
    if let Some((_, call)) = &scripts {
        script_hashes.push(crate::csp::script_hash(call));
    }
    script_hashes.extend(inline_script_hashes(&shell.extra_head));

    let mut html = String::with_capacity(body.body.len() + body.props_json.len() + 512);
    html.push_str("<!DOCTYPE html><html");
    if !body.html_attrs.contains("lang=") {
        html.push_str(" lang=\"");
        html.push_str(&escape_text(shell.app.lang.as_deref().unwrap_or("en")));
        html.push('"');
    }
    html.push_str(&body.html_attrs);
    html.push_str("><head><meta charset=\"utf-8\">");
    if let Some(policy) = &shell.app.csp {
        html.push_str("<meta http-equiv=\"content-security-policy\" content=\"");
        // Quoted with `"`: the policy's own `'self'` quotes stay as they are.
        html.push_str(
            &policy
                .render(&script_hashes)
                .replace('&', "&amp;")
                .replace('"', "&quot;"),
        );
        html.push_str("\">");
    }
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if !shell.app.head.contains("rel=\"icon\"") && !body.head.contains("rel=\"icon\"") {
        html.push_str("<link rel=\"icon\" href=\"data:,\">");
    }
    html.push_str(&shell.app.head);
    // leptos_meta hydrates the tags that follow this marker, in order (as `<MetaTags/>` does);
    // the title is text, escaped here whatever the page's data holds.
    html.push_str("<!--HEAD-->");
    html.push_str(&body.head);
    html.push_str("<title>");
    html.push_str(&escape_text(body.title.as_deref().unwrap_or(path)));
    html.push_str("</title>");
    if embeds_props {
        push_json_script(&mut html, PROPS_ELEMENT_ID, &body.props_json);
        if !body.params_json.is_empty() {
            push_json_script(
                &mut html,
                crate::router::PARAMS_ELEMENT_ID,
                &body.params_json,
            );
        }
    }
    if let Some((preload, call)) = &scripts {
        html.push_str(preload);
        html.push_str("<script type=\"module\">");
        html.push_str(call);
        html.push_str("</script>");
    }
    html.push_str(&shell.extra_head);
    html.push_str("</head><body");
    html.push_str(&shell.app.body_attrs);
    html.push_str(&body.body_attrs);
    html.push('>');
    html.push_str(&body.body);
    html.push_str("</body></html>");
    Document {
        html,
        script_hashes,
    }
}

/// `<script type="application/json" id="{id}">{json}</script>`, the JSON escaped for it.
fn push_json_script(html: &mut String, id: &str, json: &str) {
    html.push_str("<script type=\"application/json\" id=\"");
    html.push_str(id);
    html.push_str("\">");
    html.push_str(&escape_json_for_script(json));
    html.push_str("</script>");
}

/// The link that preloads the bundle's JS module, and the module script (its content) that
/// hydrates the page once the bundle is initialised: for a fully hydrated page, a call of its
/// own export; for an islands page with islands, [`ISLANDS_SCRIPT`]; nothing for an islands
/// page without one. The wasm is not preloaded: fetched at high priority it competes with the
/// page's own content on slow links (Lighthouse's largest-contentful-paint went from 100 to
/// 94-97 with it), while the module asks for it a moment later anyway.
fn hydration_scripts(
    client: &ClientBundle,
    hydration: Hydration,
    body: &str,
) -> Option<(String, String)> {
    let js = escape_text(&client.js);
    let preload = format!("<link rel=\"modulepreload\" href=\"{js}\">");
    let js_url = escape_json_for_script(&serde_json::to_string(&client.js).unwrap_or_default());
    let wasm_url = escape_json_for_script(&serde_json::to_string(&client.wasm).unwrap_or_default());
    let call = match hydration {
        Hydration::Full { export } => format!(
            "import init, {{ {export} }} from {js_url}; init({{ module_or_path: {wasm_url} }}).then(() => {export}());"
        ),
        Hydration::Islands if body.contains(ISLAND_TAG) => format!(
            "import init, * as bundle from {js_url}; await init({{ module_or_path: {wasm_url} }}); bundle.{ISLANDS_EXPORT}(); {ISLANDS_SCRIPT}"
        ),
        Hydration::Islands => return None,
    };
    Some((preload, call))
}

/// How leptos marks an island in server-rendered HTML (its element's opening).
const ISLAND_TAG: &str = "<leptos-island";

/// The bundle export that starts leptos's islands mode (`leptos::mount::hydrate_islands`);
/// defined in `crate::hydrate`.
pub const ISLANDS_EXPORT: &str = "isr_hydrate_islands";

/// Hydrates every `<leptos-island>` of the page with its export of `bundle` (named by the
/// element's `data-component`), in document order, each awaited (a lazy island's export is
/// async). An island's `<leptos-children>` carry a callback that restores the island's reactive
/// owner, which runs before each island nested in them hydrates: what leptos's own islands
/// script does (`leptos/src/hydration/island_script.js`), without its idle wait and islands
/// router, as an inline module script whose hash is the same on every page. Only an island's
/// export can be called: its name ends in `_<digits>` (leptos's hash), which no other export of
/// a bundle does (`default`, `initSync`, isr's and the pages' own), so markup that found its
/// way into a page (a post's raw HTML) cannot call anything else.
pub const ISLANDS_SCRIPT: &str = "const owners = []; \
const walk = async (node) => { for (const el of node.children) { \
if (el.localName === 'leptos-island') { \
const name = el.dataset.component ?? ''; \
const hydrate = /^[A-Za-z][A-Za-z0-9_]*_[0-9]+$/.test(name) ? bundle[name] : undefined; \
if (typeof hydrate === 'function') { owners.at(-1)?.(); await hydrate(el); } \
else console.warn(`isr: the client bundle has no island ${name}`); \
await walk(el); \
} else if (el.localName === 'leptos-children') { owners.push(el.$$on_hydrate); await walk(el); owners.pop(); } \
else await walk(el); } }; \
await walk(document.body);";

/// cargo-leptos's live-reload script when running under `cargo leptos watch` (which sets
/// `LEPTOS_WATCH` and the reload port), else nothing.
///
/// ```
/// if std::env::var_os("LEPTOS_WATCH").is_none() {
///     assert_eq!(isr::render::live_reload_script(), "");
/// }
/// ```
pub fn live_reload_script() -> String {
    if std::env::var_os("LEPTOS_WATCH").is_none() {
        return String::new();
    }
    let Ok(conf) = leptos::config::get_configuration(None) else {
        return String::new();
    };
    let options = conf.leptos_options;
    Owner::new().with(|| {
        use leptos::prelude::*;
        view! { <leptos::hydration::AutoReload options=options /> }.to_html()
    })
}

/// The document of an app's status page (`404`, `503`): its view rendered with the app's shell,
/// inside the layouts that cover `layout_path` (see [`crate::server::StatusDocument`]), as an
/// islands page: no props, and the islands in it (a layout's, say) hydrate with the shell's
/// client bundle. Its view's `use_location` reports `url_path`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> isr::Result<()> {
/// use leptos::prelude::*;
/// let shell = isr::render::DocumentShell::default();
/// use leptos_router::components::A;
/// let view = || view! { <h1>"Lost"</h1> <A href="/blog">"Blog"</A> };
/// let html = isr::render::status_page(view, "Not found", "/404", "/", &shell).await?;
/// assert!(html.contains(r#"<h1>Lost</h1><a href="/blog">Blog</a>"#) && !html.contains("__isr_props"));
/// assert!(html.contains("<title>Not found</title>"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// Never in practice: rendering fails only when the props do not serialize, and a status
/// page's props are `()`.
pub async fn status_page<F, V>(
    view: F,
    title: &str,
    url_path: &str,
    layout_path: &str,
    shell: &DocumentShell,
) -> crate::Result<String>
where
    F: FnOnce() -> V + Send + 'static,
    V: IntoView + 'static,
{
    let url_path = url_path.to_owned();
    let layout_path = layout_path.to_owned();
    let body = render_with((), RenderMode::Islands, move |()| {
        routed_html(&url_path, &layout_path, Vec::new(), view)
    })
    .await?;
    Ok(document(&body, title, Hydration::Islands, shell))
}

/// A plain, self-contained HTML page for status responses (404, 503).
///
/// ```
/// let html = isr::render::status_document(404, "Not found", "No page here.");
/// assert!(html.contains("<h1>404 Not found</h1>"));
/// ```
pub fn status_document(status: u16, title: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{status} {title}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}</style></head><body><h1>{status} {title}</h1><p>{message}</p></body></html>",
        title = escape_text(title),
        message = escape_text(message),
    )
}

/// Escapes text for an HTML text node or attribute value.
///
/// ```
/// assert_eq!(isr::render::escape_text("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
/// ```
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes JSON safe inside `<script>`: no `</script>`, `<!--` or `&` can appear in the output.
fn escape_json_for_script(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fully hydrated page's hydration, for the documents these tests write.
    const FULL: Hydration = Hydration::Full { export: "e" };

    /// A shell with a client bundle and the strict policy.
    fn hydrating_shell() -> DocumentShell {
        DocumentShell {
            client: Some(ClientBundle {
                js: "/pkg/app-1.js".into(),
                wasm: "/pkg/app-1_bg.wasm".into(),
                immutable: true,
            }),
            app: Shell::new().content_security_policy(crate::ContentSecurityPolicy::strict()),
            ..Default::default()
        }
    }

    /// An island of a layout: a menu that opens, around server-rendered links.
    #[leptos::island]
    fn Menu(children: leptos::prelude::Children) -> impl IntoView {
        use leptos::prelude::*;
        let open = RwSignal::new(false);
        view! {
            <button on:click=move |_| open.update(|o| *o = !*o)>"Menu"</button>
            <nav class:open=open>{children()}</nav>
        }
    }

    #[tokio::test]
    async fn an_islands_page_carries_no_props_and_only_the_islands_script() {
        use leptos::prelude::*;
        let route = PageRoute::at("/blog/x").param("slug", "x");
        let body = render_page_for(
            "the post's body",
            &route,
            Hydration::Islands,
            |text: &str| {
                view! { <Menu><a href="/blog">"Blog"</a></Menu> <article>{text}</article> }
            },
        )
        .await
        .unwrap();
        assert!(
            body.body.contains("<leptos-island data-component=\"Menu_"),
            "{}",
            body.body
        );
        let doc = document_with_scripts(&body, "/blog/x", Hydration::Islands, &hydrating_shell());
        assert!(
            !doc.html.contains(PROPS_ELEMENT_ID)
                && !doc.html.contains(crate::router::PARAMS_ELEMENT_ID)
        );
        assert!(doc
            .html
            .contains(r#"<link rel="modulepreload" href="/pkg/app-1.js">"#));
        let script = format!(
            "import init, * as bundle from \"/pkg/app-1.js\"; await init({{ module_or_path: \"/pkg/app-1_bg.wasm\" }}); bundle.{ISLANDS_EXPORT}(); {ISLANDS_SCRIPT}"
        );
        assert!(
            doc.html
                .contains(&format!("<script type=\"module\">{script}</script>")),
            "{}",
            doc.html
        );
        // The strict policy allows exactly that script.
        assert_eq!(doc.script_hashes, [crate::csp::script_hash(&script)]);
        assert!(doc.html.contains(&doc.script_hashes[0]));
    }

    #[tokio::test]
    async fn a_status_page_hydrates_only_when_it_has_an_island() {
        use leptos::prelude::*;
        let shell = hydrating_shell();
        let plain = status_page(|| view! { <h1>"Lost"</h1> }, "Not found", "/x", "/", &shell)
            .await
            .unwrap();
        assert!(
            !plain.contains("<script") && !plain.contains("modulepreload"),
            "{plain}"
        );
        // Rendered in islands mode: an island with children (which needs leptos's shared
        // context) renders, and its page loads the bundle to hydrate it.
        let with_menu = status_page(
            || view! { <Menu><a href="/">"Home"</a></Menu> <h1>"Lost"</h1> },
            "Not found",
            "/x",
            "/",
            &shell,
        )
        .await
        .unwrap();
        assert!(
            with_menu.contains("<leptos-children><a href=\"/\">Home</a></leptos-children>"),
            "{with_menu}"
        );
        assert!(
            with_menu.contains(&format!("bundle.{ISLANDS_EXPORT}()")),
            "{with_menu}"
        );
        assert!(!with_menu.contains(PROPS_ELEMENT_ID));
    }

    #[test]
    fn props_json_cannot_close_the_script_element() {
        let body = RenderedBody {
            props_json: serde_json::to_string("</script><script>alert(1)</script>").unwrap(),
            ..Default::default()
        };
        let html = document(&body, "/x", FULL, &DocumentShell::default());
        assert_eq!(html.matches("</script>").count(), 1);
        let start = html.find("id=\"__isr_props\">").unwrap() + "id=\"__isr_props\">".len();
        let json = &html[start..html.rfind("</script>").unwrap()];
        let back: String = serde_json::from_str(json).unwrap();
        assert_eq!(back, "</script><script>alert(1)</script>");
    }

    #[test]
    fn default_title_is_escaped_path() {
        let html = document(
            &RenderedBody::default(),
            "/a<b",
            FULL,
            &DocumentShell::default(),
        );
        assert!(html.contains("<title>/a&lt;b</title>"));
    }

    #[tokio::test]
    async fn leptos_meta_title_goes_into_head() {
        use leptos::prelude::*;
        use leptos_meta::Title;
        let body = render_view("Hello".to_string(), |t: String| {
            view! { <Title text=t.clone() /> <h1>{t}</h1> }
        })
        .await
        .unwrap();
        assert_eq!(body.title.as_deref(), Some("Hello"), "head: {}", body.head);
        assert!(!body.head.contains("<title>"), "{}", body.head);
        let html = super::document(&body, "/x", FULL, &DocumentShell::default());
        assert_eq!(html.matches("<title>").count(), 1);
        assert!(html.contains("<h1>Hello</h1>"));
    }

    /// The attacks of a post title read back as markup: script after a closed `<title>`, and
    /// an attribute on the real `<body>` through a `<body` inside the title.
    #[tokio::test]
    async fn a_title_is_text_whatever_it_holds() {
        use leptos::prelude::*;
        use leptos_meta::{Body, Html, Meta, Title};
        for title in [
            "x</title><script>alert(document.cookie)</script>",
            "y <body onload=alert(2)>",
            "<!--HEAD--></head><body onload=alert(3)>",
        ] {
            let body = render_view(title.to_string(), |t: String| {
                view! {
                    <Title text=t.clone() />
                    <Meta name="description" content=t.clone() />
                    <Html attr:lang="de" />
                    <Body attr:class=t.clone() />
                    <h1>{t}</h1>
                }
            })
            .await
            .unwrap();
            assert_eq!(body.title.as_deref(), Some(title));
            let html = super::document(&body, "/x", FULL, &DocumentShell::default());
            assert_eq!(html.matches("<script").count(), 1, "only the props: {html}");
            assert_eq!(html.matches("<body").count(), 1, "{html}");
            assert_eq!(html.matches("<title>").count(), 1, "{html}");
            assert!(
                html.contains(&format!("<title>{}</title>", escape_text(title))),
                "{html}"
            );
            assert!(
                html.starts_with("<!DOCTYPE html><html lang=\"de\">"),
                "{html}"
            );
            let body_tag = &html[html.find("<body").unwrap()..];
            let body_tag = &body_tag[..body_tag.find('>').unwrap()];
            assert_eq!(
                body_tag,
                format!("<body class=\"{}\"", escape_text(title)),
                "the attribute the view set, nothing else"
            );
            assert!(
                body.head.contains("<meta name=\"description\""),
                "{}",
                body.head
            );
            assert!(!body.head.contains("isr-head-end"), "{}", body.head);
        }
    }

    #[tokio::test]
    async fn a_view_without_head_elements_gets_the_path_as_title() {
        use leptos::prelude::*;
        let body = render_view((), |()| view! { <p>"plain"</p> })
            .await
            .unwrap();
        assert_eq!(body.title, None);
        assert_eq!(body.head, "");
        assert_eq!(
            (body.html_attrs.as_str(), body.body_attrs.as_str()),
            ("", "")
        );
        let html = super::document(&body, "/plain", FULL, &DocumentShell::default());
        assert!(html.contains("<title>/plain</title>"), "{html}");
    }
}
