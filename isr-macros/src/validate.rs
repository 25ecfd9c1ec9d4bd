//! Semantic checks of the parsed arguments against the loader; errors point at the culprit.

use crate::args::{PageArgs, RawRevalidate, WithSpan};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr};

/// The longest `revalidate`/`timeout` accepted: one year, in seconds.
const MAX_SECONDS: i128 = 365 * 24 * 3600;

/// What happens on a request for a dynamic path that was not pre-rendered.
#[derive(Clone, Copy)]
pub enum Fallback {
    /// Render it in the request; concurrent requests share the render.
    Blocking,
    /// Answer 404: only the pages `paths` listed exist.
    NotFound,
}

/// A validated page declaration, ready for [`crate::expand`].
pub struct PageSpec {
    pub loader: ItemFn,
    pub path: String,
    /// `None` means `revalidate = false`: on-demand revalidation only.
    pub revalidate: Option<u64>,
    pub timeout: Option<u64>,
    pub view: syn::Path,
    pub paths: Option<syn::Path>,
    pub fallback: Fallback,
    pub tags: Vec<LitStr>,
    /// Whether the loader takes the route `Params` as its one argument.
    pub loader_takes_params: bool,
    /// `P` of the loader's `Load<P>`: the props the view takes (also in the browser).
    pub props: syn::Type,
}

impl PageSpec {
    /// Checks `args` against each other and against the `loader` they annotate.
    pub fn new(args: PageArgs, loader: ItemFn) -> syn::Result<Self> {
        if loader.sig.asyncness.is_none() {
            return Err(syn::Error::new(
                loader.sig.fn_token.span(),
                "#[page] goes on an `async fn` data loader: add `async`",
            ));
        }
        let loader_takes_params = match loader.sig.inputs.len() {
            0 => false,
            1 => true,
            _ => {
                return Err(syn::Error::new(
                    loader.sig.inputs.span(),
                    "a page loader takes no arguments or one `isr::Params`",
                ))
            }
        };
        let props = props_type(&loader)?;
        let Some(path) = args.path else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `path = \"/...\"` in #[page(...)]",
            ));
        };
        let params = check_path(&path)?;
        let Some(view) = args.view else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `view = Component` in #[page(...)]: the leptos component that renders the props",
            ));
        };
        let revalidate =
            match args.revalidate {
                None => return Err(syn::Error::new(
                    Span::call_site(),
                    "missing `revalidate = <seconds>` (or `revalidate = false`) in #[page(...)]",
                )),
                Some(WithSpan {
                    value: RawRevalidate::Never,
                    ..
                }) => None,
                Some(
                    ref raw @ WithSpan {
                        value: RawRevalidate::Seconds(n),
                        ..
                    },
                ) => Some(positive_seconds(&raw.map(n), "revalidate")?),
            };
        let timeout = args
            .timeout
            .map(|t| positive_seconds(&t, "timeout"))
            .transpose()?;
        let fallback = match args.fallback.as_ref().map(|f| f.value.as_str()) {
            None | Some("404") => Fallback::NotFound,
            Some("blocking") => Fallback::Blocking,
            Some(other) => {
                let fallback = args.fallback.as_ref().expect("matched a value");
                return Err(fallback.error(format!(
                    "unknown fallback \"{other}\": expected \"blocking\" or \"404\""
                )));
            }
        };
        if !params.is_empty() && args.paths.is_none() && args.fallback.is_none() {
            return Err(path.error(
                format!(
                    "dynamic path `{}` needs `paths = fn` (pages to pre-render) or `fallback = \"blocking\"` (render on first request)",
                    path.value
                ),
            ));
        }
        if params.is_empty() {
            if let Some(paths) = &args.paths {
                return Err(syn::Error::new(
                    paths.span(),
                    "`paths` is for dynamic paths such as \"/blog/:slug\"; this path has no `:param`",
                ));
            }
        }
        let tags = args.tags.unwrap_or_default();
        for tag in &tags {
            if tag.value().trim().is_empty() {
                return Err(syn::Error::new(tag.span(), "a tag must not be empty"));
            }
        }
        Ok(PageSpec {
            loader,
            path: path.value,
            revalidate,
            timeout,
            view,
            paths: args.paths,
            fallback,
            tags,
            loader_takes_params,
            props,
        })
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

/// Checks the route pattern and returns its `:param` names.
fn check_path(path: &WithSpan<String>) -> syn::Result<Vec<String>> {
    let err = |msg: String| path.error(msg);
    let p = &path.value;
    if !p.starts_with('/') {
        return Err(err(format!("page path must start with `/`: \"/{p}\"")));
    }
    if p == "/" {
        return Ok(Vec::new());
    }
    if p.ends_with('/') {
        return Err(err(format!(
            "page path must not end with `/`: \"{}\"",
            p.trim_end_matches('/')
        )));
    }
    let mut params: Vec<String> = Vec::new();
    for segment in p[1..].split('/') {
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
            .find(|c| !(c.is_ascii_alphanumeric() || "-_~".contains(*c)))
        {
            return Err(err(format!(
                "page path segment `{segment}` has `{bad}`: use letters, digits, `-`, `_`, `~` or a `:param`"
            )));
        }
    }
    Ok(params)
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
pub fn hydrate_export_name(path: &str) -> String {
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
