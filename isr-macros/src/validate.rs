//! Semantic checks of the parsed arguments against the loader; errors point at the culprit.

use crate::args::{Errors, PageArgs, RawRevalidate, WithSpan};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr};

/// The longest `revalidate`/`timeout` accepted: one year, in seconds.
const MAX_SECONDS: i128 = 365 * 24 * 3600;

/// What happens on a request for a dynamic path that was not pre-rendered.
#[derive(Clone, Copy)]
pub(crate) enum Fallback {
    /// Render it in the request; concurrent requests share the render.
    Blocking,
    /// Answer 404: only the pages `paths` listed exist.
    NotFound,
}

/// What the route renders.
pub(crate) enum Output {
    /// An HTML document: `view(props)`, hydrated in the browser as a whole, or (`islands`)
    /// only its leptos `#[island]`s.
    View {
        view: Box<syn::Expr>,
        props: Box<syn::Type>,
        islands: bool,
    },
    /// The loader's body as it is (`/blog/feed.xml`), with this content type.
    Body { content_type: String },
}

/// How the page is kept: what becomes its `isr::CacheProfile`.
pub(crate) enum CacheSpec {
    /// `cache = PROFILE`: the app's own profile expression (checked where it is used: its type,
    /// and its builders' rules when the constant is evaluated).
    Profile(Box<syn::Expr>),
    /// The separate arguments, checked here.
    Seconds {
        /// `None` means `revalidate = false`: on-demand revalidation only.
        revalidate: Option<u64>,
        /// The hard ceiling on a served page's age, in seconds; `None`: no ceiling.
        expire: Option<u64>,
        /// How long past `expire` the old page may still be served while regenerating fails.
        stale_if_error: Option<u64>,
        /// How long browsers may reuse the page without asking (0: they ask every time).
        browser: u64,
    },
}

/// One argument of the loader: its type is an `isr::FromContext` extractor.
pub(crate) struct LoaderArg {
    pub ty: syn::Type,
}

/// A validated page declaration, ready for [`crate::expand`].
pub(crate) struct PageSpec {
    pub loader: ItemFn,
    pub path: String,
    pub cache: CacheSpec,
    pub timeout: Option<u64>,
    pub output: Output,
    pub paths: Option<syn::Path>,
    pub fallback: Fallback,
    pub tags: Vec<LitStr>,
    /// The query parameters that name variants (`query = [...]`); empty: none.
    pub query: QuerySpec,
    /// The loader's arguments, extracted in order before it runs.
    pub args: Vec<LoaderArg>,
}

/// `query`, `max_variants` and `sitemap_variants`, checked.
pub(crate) struct QuerySpec {
    pub names: Vec<String>,
    /// `None`: isr's default.
    pub max_variants: Option<u64>,
    pub in_sitemap: bool,
}

impl PageSpec {
    /// Checks `args` against each other and against the `loader` they annotate. Every mistake
    /// found is reported (into `errors`), each at its own span; `None` if there was any.
    pub(crate) fn new(args: PageArgs, loader: ItemFn, errors: &mut Errors) -> Option<Self> {
        if loader.sig.asyncness.is_none() {
            errors.push(syn::Error::new(
                loader.sig.fn_token.span(),
                "#[page] goes on an `async fn` data loader: add `async`",
            ));
        }
        let path = match &args.path {
            Some(path) => Some(path),
            None => {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "missing `path = \"/...\"` in #[page(...)]",
                ));
                None
            }
        };
        let route = path.and_then(|p| check_path(p).map_err(|e| errors.push(e)).ok());
        let params: &[String] = route.as_ref().map_or(&[], |r| &r.params);
        let loader_args = loader_args(&loader, params, route.is_some(), errors);
        let cache = cache_spec(&args, errors);
        let timeout = match &args.timeout {
            None => Some(None),
            Some(t) => positive_seconds(t, "timeout")
                .map_err(|e| errors.push(e))
                .ok()
                .map(Some),
        };
        let fallback = match args.fallback.as_ref().map(|f| f.value.as_str()) {
            None | Some("404") => Fallback::NotFound,
            Some("blocking") => Fallback::Blocking,
            Some(other) => {
                let fallback = args.fallback.as_ref().expect("matched a value");
                errors.push(fallback.error(format!(
                    "unknown fallback \"{other}\": expected \"blocking\" or \"404\""
                )));
                Fallback::NotFound
            }
        };
        if let (Some(path), Some(route)) = (path, &route) {
            if !route.params.is_empty() && args.paths.is_none() {
                match &args.fallback {
                    None => errors.push(path.error(format!(
                        "dynamic path `{}` needs `paths = fn` (pages to pre-render) or `fallback = \"blocking\"` (render on first request)",
                        path.value
                    ))),
                    // Nothing pre-rendered and nothing rendered on request: every page a 404.
                    Some(fallback) if fallback.value == "404" => errors.push(fallback.error(format!(
                        "`fallback = \"404\"` without `paths` makes every page of `{}` a 404: add `paths = fn` (pages to pre-render) or use `fallback = \"blocking\"`",
                        path.value
                    ))),
                    Some(_) => {}
                }
            }
            if route.params.is_empty() {
                if let Some(paths) = &args.paths {
                    errors.push(syn::Error::new(
                        paths.span(),
                        "`paths` is for dynamic paths such as \"/blog/:slug\"; this path has no `:param`",
                    ));
                }
            }
        }
        let output = output(&args, &loader, route.as_ref(), errors);
        let tags = args.tags.clone().unwrap_or_default();
        for tag in &tags {
            if tag.value().trim().is_empty() {
                errors.push(syn::Error::new(tag.span(), "a tag must not be empty"));
            }
        }
        let query = query_spec(&args, output.as_ref(), errors);
        if errors.any() {
            return None;
        }
        Some(PageSpec {
            loader,
            path: args.path.expect("checked").value,
            cache: cache.expect("checked"),
            timeout: timeout.expect("checked"),
            output: output.expect("checked"),
            paths: args.paths,
            fallback,
            tags,
            query,
            args: loader_args,
        })
    }
}

/// `query = ["page", "tag"]` (names of letters, digits, `_` and `-`, each once),
/// `max_variants = N` (≥ 1) and `sitemap_variants = true`, the last two only with `query`;
/// not on a route that serves a body (its variants would be files under its file).
fn query_spec(args: &PageArgs, output: Option<&Output>, errors: &mut Errors) -> QuerySpec {
    let mut names: Vec<String> = Vec::new();
    if let Some(query) = &args.query {
        if query.value.is_empty() {
            errors.push(query.error("`query` lists the parameters that name pages, e.g. `query = [\"page\", \"tag\"]`; leave it out for none"));
        }
        for name in &query.value {
            let text = name.value();
            let valid = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                errors.push(syn::Error::new(
                    name.span(),
                    format!("query parameter {text:?} must be letters, digits, `_` or `-`"),
                ));
            } else if names.contains(&text) {
                errors.push(syn::Error::new(
                    name.span(),
                    format!("query parameter `{text}` is listed twice"),
                ));
            } else {
                names.push(text);
            }
        }
        if let Some(Output::Body { .. }) = output {
            errors.push(query.error("`query` is for HTML pages: a route that serves a file (`content_type`) has no variants"));
        }
    }
    let max_variants = match &args.max_variants {
        None => None,
        Some(n) if args.query.is_none() => {
            errors.push(n.error("`max_variants` limits the variants of `query = [...]`, which this page does not list"));
            None
        }
        Some(n) => match u64::try_from(n.value) {
            Ok(value) if value >= 1 => Some(value),
            _ => {
                errors.push(n.error("`max_variants` is a whole number ≥ 1"));
                None
            }
        },
    };
    let in_sitemap = match &args.sitemap_variants {
        Some(flag) if args.query.is_none() => {
            errors.push(flag.error("`sitemap_variants` lists the variants of `query = [...]`, which this page does not list"));
            false
        }
        Some(flag) => flag.value,
        None => false,
    };
    QuerySpec {
        names,
        max_variants,
        in_sitemap,
    }
}

/// What the route renders: a view of the props, or (a route ending in a file name) a body.
fn output(
    args: &PageArgs,
    loader: &ItemFn,
    route: Option<&Route>,
    errors: &mut Errors,
) -> Option<Output> {
    // A wrong path is reported already: what it would render cannot be told.
    let file = route?.file.as_ref();
    match (file, &args.view) {
        (Some(file), Some(view)) => {
            errors.push(syn::Error::new(
                view.span(),
                format!("`{file}` is a file route: its loader returns the body (`Load<String>` or bytes), there is no `view`"),
            ));
            None
        }
        (Some(file), None) => {
            if let Some(hydrate) = &args.hydrate {
                errors.push(hydrate.error(format!(
                    "`{file}` is a file route: it has no view to hydrate, remove `hydrate`"
                )));
            }
            let content_type = match &args.content_type {
                Some(ct) if ct.value.trim().is_empty() || !ct.value.contains('/') => {
                    errors.push(ct.error(
                        "`content_type` expects a media type, e.g. \"application/rss+xml\"",
                    ));
                    return None;
                }
                Some(ct) => ct.value.clone(),
                None => match content_type_of(file) {
                    Some(ct) => ct.to_string(),
                    None => {
                        errors.push(args.path.as_ref().expect("a route").error(format!(
                            "no known content type for `{file}`: add `content_type = \"...\"`"
                        )));
                        return None;
                    }
                },
            };
            body_type(loader).map_err(|e| errors.push(e)).ok()?;
            Some(Output::Body { content_type })
        }
        (None, view) => {
            if let Some(ct) = &args.content_type {
                errors.push(ct.error(
                    "`content_type` is for routes that end in a file name (`/blog/feed.xml`); pages are HTML",
                ));
            }
            let props = props_type(loader).map_err(|e| errors.push(e)).ok();
            let Some(view) = view else {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "missing `view = ...` in #[page(...)]: a function of the props (`view = post_page`) or a closure (`view = |post| view! { <Post post /> }`)",
                ));
                return None;
            };
            let islands = match args.hydrate.as_ref().map(|h| h.value.as_str()) {
                None | Some("full") => false,
                Some("islands") => true,
                Some(other) => {
                    errors.push(args.hydrate.as_ref().expect("matched a value").error(format!(
                        "unknown hydrate \"{other}\": expected \"islands\" (only the view's `#[island]`s hydrate) or \"full\" (the whole view, the default)"
                    )));
                    return None;
                }
            };
            Some(Output::View {
                view: Box::new(view.clone()),
                props: Box::new(props?),
                islands,
            })
        }
    }
}

/// The content type a file route gets from its extension.
fn content_type_of(file: &str) -> Option<&'static str> {
    let extension = file.rsplit('.').next()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "xml" => "application/xml; charset=utf-8",
        "rss" => "application/rss+xml; charset=utf-8",
        "atom" => "application/atom+xml; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// Checks the loader's arguments: no `self`, and the fields of a destructured `Path(T { .. })`
/// must be parameters of the route (a compile-time check where the pattern shows them).
fn loader_args(
    loader: &ItemFn,
    params: &[String],
    route_known: bool,
    errors: &mut Errors,
) -> Vec<LoaderArg> {
    let mut args = Vec::new();
    let mut query_args = 0;
    for input in &loader.sig.inputs {
        match input {
            syn::FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                receiver.span(),
                "a page loader is a free `async fn`, not a method",
            )),
            syn::FnArg::Typed(typed) => {
                if route_known {
                    check_path_pattern(&typed.pat, params, errors);
                }
                // One reading of the query: each `Query<T>` writes the variant's key back
                // from what it reads, so a second one would see only the first one's fields.
                if last_segment_is(&typed.ty, "Query") {
                    query_args += 1;
                    if query_args == 2 {
                        errors.push(syn::Error::new(
                            typed.ty.span(),
                            "a loader takes one `Query<T>`: put every listed parameter in its `T`",
                        ));
                    }
                }
                args.push(LoaderArg {
                    ty: (*typed.ty).clone(),
                });
            }
        }
    }
    args
}

/// Whether `ty` is a path type whose last segment is `name` (`Query<T>`, `isr::Query<T>`).
fn last_segment_is(ty: &syn::Type, name: &str) -> bool {
    matches!(ty, syn::Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == name))
}

/// `Path(PostParams { slug, .. })`: every named field must be a `:param` of the route.
fn check_path_pattern(pat: &syn::Pat, params: &[String], errors: &mut Errors) {
    let syn::Pat::TupleStruct(tuple) = pat else {
        return;
    };
    let is_path = tuple
        .path
        .segments
        .last()
        .is_some_and(|s| s.ident == "Path");
    if !is_path || tuple.elems.len() != 1 {
        return;
    }
    let Some(syn::Pat::Struct(fields)) = tuple.elems.first() else {
        return;
    };
    for field in &fields.fields {
        if let syn::Member::Named(name) = &field.member {
            let name = name.to_string();
            if !params.contains(&name) {
                let known = if params.is_empty() {
                    "this route has no `:param` segments".to_string()
                } else {
                    format!(
                        "its params: {}",
                        params
                            .iter()
                            .map(|p| format!(":{p}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                errors.push(syn::Error::new(
                    field.member.span(),
                    format!("`{name}` is not a parameter of the route ({known})"),
                ));
            }
        }
    }
}

fn positive_seconds(seconds: &WithSpan<i128>, key: &str) -> syn::Result<u64> {
    let n = seconds.value;
    if n <= 0 {
        let hint = if key == "revalidate" {
            "; use `revalidate = false` for on-demand revalidation only"
        } else {
            ""
        };
        return Err(seconds.error(format!("`{key}` must be at least 1 second{hint}")));
    }
    if n > MAX_SECONDS {
        return Err(seconds.error(format!(
            "`{key}` must be at most {MAX_SECONDS} seconds (one year)"
        )));
    }
    Ok(n as u64)
}

/// The page's caching: a named profile (`cache = PRICES`), or the profile the separate
/// arguments make (`revalidate` required, `expire` > `revalidate`, `stale_if_error` only with
/// `expire`). Both at once is an error at each separate argument.
fn cache_spec(args: &PageArgs, errors: &mut Errors) -> Option<CacheSpec> {
    if let Some(profile) = &args.cache {
        let separate = [
            ("revalidate", args.revalidate.as_ref().map(|r| &r.tokens)),
            ("expire", args.expire.as_ref().map(|e| &e.tokens)),
            (
                "stale_if_error",
                args.stale_if_error.as_ref().map(|s| &s.tokens),
            ),
            ("browser", args.browser.as_ref().map(|b| &b.tokens)),
        ];
        let mut clash = false;
        for (key, tokens) in separate {
            if let Some(tokens) = tokens {
                clash = true;
                errors.push(syn::Error::new_spanned(
                    tokens,
                    format!("`{key}` and `cache` on one page: the profile already says how the page is kept; remove `{key}` or `cache`"),
                ));
            }
        }
        return (!clash).then(|| CacheSpec::Profile(Box::new(profile.clone())));
    }
    let revalidate = match &args.revalidate {
        None => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `revalidate = <seconds>` (or `revalidate = false`) in #[page(...)]",
            ));
            None
        }
        Some(WithSpan {
            value: RawRevalidate::Never,
            ..
        }) => Some(None),
        Some(
            raw @ WithSpan {
                value: RawRevalidate::Seconds(n),
                ..
            },
        ) => positive_seconds(&raw.map(*n), "revalidate")
            .map_err(|e| errors.push(e))
            .ok()
            .map(Some),
    };
    let expire = args.expire.as_ref().and_then(|e| {
        let seconds = positive_seconds(e, "expire").map_err(|e| errors.push(e)).ok()?;
        if let Some(Some(revalidate)) = revalidate {
            if seconds <= revalidate {
                errors.push(e.error(format!(
                    "`expire = {seconds}` must be greater than `revalidate = {revalidate}`: between the two a page is served at once and regenerated in the background, past `expire` a request waits for the new version"
                )));
                return None;
            }
        }
        Some(seconds)
    });
    let stale_if_error = args.stale_if_error.as_ref().and_then(|s| {
        let seconds = positive_seconds(s, "stale_if_error")
            .map_err(|e| errors.push(e))
            .ok()?;
        if args.expire.is_none() {
            errors.push(s.error(
                "`stale_if_error` extends `expire` (how long past it a page may still be served while its regeneration fails): add `expire = <seconds>`",
            ));
            return None;
        }
        Some(seconds)
    });
    let browser = match &args.browser {
        None => Some(0),
        Some(b) if b.value == 0 => Some(0),
        Some(b) if b.value < 0 => {
            errors.push(b.error(
                "`browser` is how long browsers may reuse the page: 0 (they ask every time) or more seconds",
            ));
            None
        }
        Some(b) => positive_seconds(b, "browser")
            .map_err(|e| errors.push(e))
            .ok(),
    };
    Some(CacheSpec::Seconds {
        revalidate: revalidate?,
        expire,
        stale_if_error,
        browser: browser?,
    })
}

/// A checked route pattern.
pub(crate) struct Route {
    /// Its `:param` names.
    pub params: Vec<String>,
    /// The last segment, when it is a file name (`feed.xml`).
    pub file: Option<String>,
}

/// Checks the route pattern and returns its `:param` names and file name.
fn check_path(path: &WithSpan<String>) -> syn::Result<Route> {
    let err = |msg: String| path.error(msg);
    let p = &path.value;
    if !p.starts_with('/') {
        return Err(err(format!("page path must start with `/`: \"/{p}\"")));
    }
    if p == "/" {
        return Ok(Route {
            params: Vec::new(),
            file: None,
        });
    }
    if p.ends_with('/') {
        return Err(err(format!(
            "page path must not end with `/`: \"{}\"",
            p.trim_end_matches('/')
        )));
    }
    let mut params: Vec<String> = Vec::new();
    let segments: Vec<&str> = p[1..].split('/').collect();
    let mut file = None;
    for (i, segment) in segments.iter().copied().enumerate() {
        let last = i + 1 == segments.len();
        if segment.is_empty() {
            return Err(err("page path has an empty segment (`//`)".into()));
        }
        if let Some(name) = segment.strip_prefix(':') {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(err(format!(
                    "`:{name}` is not a valid parameter: use `:` and a name such as `:slug`"
                )));
            }
            if params.iter().any(|n| n == name) {
                return Err(err(format!("parameter `:{name}` appears twice")));
            }
            params.push(name.to_string());
        } else if segment == "." || segment == ".." || segment.starts_with('.') {
            return Err(err(format!(
                "page path segment `{segment}` must not start with `.`"
            )));
        } else if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_~.".contains(*c)))
        {
            return Err(err(format!(
                "page path segment `{segment}` has `{bad}`: use letters, digits, `-`, `_`, `~` or a `:param` (and `.` in a file name at the end)"
            )));
        } else if segment.contains('.') {
            if !last {
                return Err(err(format!(
                    "`{segment}` looks like a file name: only the last segment of a path can be one"
                )));
            }
            if segment == "index.html" {
                return Err(err(
                    "`index.html` is the file of every page: use the folder's path".into(),
                ));
            }
            file = Some(segment.to_string());
        }
    }
    if file.is_some() && !params.is_empty() {
        return Err(err(format!(
            "a route that ends in a file name must be static: `{p}` has `:{}`",
            params[0]
        )));
    }
    Ok(Route { params, file })
}

/// Checks that a file route's loader returns `isr::Result<Load<Body>>`.
fn body_type(loader: &ItemFn) -> syn::Result<syn::Type> {
    props_type(loader).map_err(|e| {
        syn::Error::new(
            e.span(),
            "a file route's loader returns `isr::Result<Load<Body>>` with a `String`, `&'static str`, `Vec<u8>` or `bytes::Bytes` body",
        )
    })
}

/// Finds `P` in the loader's return type `isr::Result<Load<P>>` (any path ending in `Load<P>`).
fn props_type(loader: &ItemFn) -> syn::Result<syn::Type> {
    fn find(ty: &syn::Type) -> Option<syn::Type> {
        let syn::Type::Path(path) = ty else {
            return None;
        };
        let last = path.path.segments.last()?;
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        let mut types = args.args.iter().filter_map(|arg| match arg {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        });
        if last.ident == "Load" {
            return types.next().cloned();
        }
        types.find_map(find)
    }
    let error = |span: proc_macro2::Span| {
        syn::Error::new(
            span,
            "a page loader returns `isr::Result<Load<Props>>`, e.g. `async fn post(params: Params) -> isr::Result<Load<PostProps>>`",
        )
    };
    match &loader.sig.output {
        syn::ReturnType::Default => Err(error(loader.sig.paren_token.span.close())),
        syn::ReturnType::Type(_, ty) => find(ty).ok_or_else(|| error(ty.span())),
    }
}

/// The name of the page's hydration export in the client bundle, derived from its unique path:
/// `/blog/:slug` → `isr_hydrate__sblog_s_cslug` (letters and digits kept, other characters
/// escaped, so two paths never share a name).
pub(crate) fn hydrate_export_name(path: &str) -> String {
    let mut name = String::from("isr_hydrate_");
    for c in path.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => name.push(c),
            '_' => name.push_str("_u"),
            '/' => name.push_str("_s"),
            ':' => name.push_str("_c"),
            '-' => name.push_str("_d"),
            '~' => name.push_str("_t"),
            other => name.push_str(&format!("_x{:x}", other as u32)),
        }
    }
    name
}
