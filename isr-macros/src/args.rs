//! Parsing of the `#[page(...)]` arguments into spanned values; no semantic checks here.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// The keys `#[page]` understands, in the order the documentation lists them.
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "path",
    "revalidate",
    "expire",
    "stale_if_error",
    "browser",
    "cache",
    "view",
    "hydrate",
    "paths",
    "fallback",
    "tags",
    "query",
    "max_variants",
    "sitemap_variants",
    "timeout",
    "content_type",
];

/// A value with the tokens it came from, so that errors can cover all of them (`-5`, not `-`).
#[derive(Clone)]
pub(crate) struct WithSpan<T> {
    pub value: T,
    pub tokens: TokenStream,
}

impl<T> WithSpan<T> {
    /// An error pointing at this value's tokens.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, message)
    }

    /// The same tokens with another value.
    pub(crate) fn map<U>(&self, value: U) -> WithSpan<U> {
        WithSpan {
            value,
            tokens: self.tokens.clone(),
        }
    }
}

/// `revalidate = <seconds>` or `revalidate = false`, before validation.
#[derive(Clone)]
pub(crate) enum RawRevalidate {
    Seconds(i128),
    Never,
}

/// The raw arguments of one `#[page(...)]`; each is `None` when absent.
#[derive(Default)]
pub(crate) struct PageArgs {
    pub path: Option<WithSpan<String>>,
    pub revalidate: Option<WithSpan<RawRevalidate>>,
    pub expire: Option<WithSpan<i128>>,
    pub stale_if_error: Option<WithSpan<i128>>,
    pub browser: Option<WithSpan<i128>>,
    /// `cache = PROFILE`: an `isr::CacheProfile` expression, instead of the four above.
    pub cache: Option<Expr>,
    pub view: Option<Expr>,
    pub hydrate: Option<WithSpan<String>>,
    pub paths: Option<syn::Path>,
    pub fallback: Option<WithSpan<String>>,
    pub tags: Option<Vec<LitStr>>,
    /// `query = ["page", "tag"]`: the parameters that name variants.
    pub query: Option<WithSpan<Vec<LitStr>>>,
    pub max_variants: Option<WithSpan<i128>>,
    pub sitemap_variants: Option<WithSpan<bool>>,
    pub timeout: Option<WithSpan<i128>>,
    pub content_type: Option<WithSpan<String>>,
}

impl PageArgs {
    /// Parses `key = value, ...`. Unknown and duplicate keys and malformed values are all
    /// reported (each at its span) into `errors`; what parsed is kept.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = PageArgs::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(metas) => metas,
            Err(error) => {
                errors.push(error);
                return args;
            }
        };
        let mut seen: Vec<String> = Vec::new();
        for meta in metas {
            let Meta::NameValue(nv) = meta else {
                errors.push(syn::Error::new(
                    meta.span(),
                    "expected `key = value`, e.g. `path = \"/blog\"`",
                ));
                continue;
            };
            let key = nv
                .path
                .get_ident()
                .map(|ident| ident.to_string())
                .unwrap_or_default();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                errors.push(syn::Error::new(
                    nv.path.span(),
                    format!(
                        "unknown `#[page]` argument `{}`; expected one of: {}",
                        nv.path.to_token_stream(),
                        KNOWN_KEYS.join(", ")
                    ),
                ));
                continue;
            }
            if seen.contains(&key) {
                errors.push(syn::Error::new(
                    nv.path.span(),
                    format!("duplicate `#[page]` argument `{key}`"),
                ));
                continue;
            }
            seen.push(key.clone());
            let value = nv.value;
            let parsed = match key.as_str() {
                "path" => string(&value, "path", "\"/blog/:slug\"").map(|v| args.path = Some(v)),
                "fallback" => string(&value, "fallback", "\"blocking\" or \"404\"")
                    .map(|v| args.fallback = Some(v)),
                "hydrate" => {
                    string(&value, "hydrate", "\"islands\"").map(|v| args.hydrate = Some(v))
                }
                "content_type" => string(&value, "content_type", "\"application/rss+xml\"")
                    .map(|v| args.content_type = Some(v)),
                "revalidate" => revalidate(&value).map(|v| args.revalidate = Some(v)),
                "timeout" => integer(&value, "timeout").map(|v| args.timeout = Some(v)),
                "expire" => integer(&value, "expire").map(|v| args.expire = Some(v)),
                "stale_if_error" => {
                    integer(&value, "stale_if_error").map(|v| args.stale_if_error = Some(v))
                }
                "browser" => integer(&value, "browser").map(|v| args.browser = Some(v)),
                // Any expression: its type (`isr::CacheProfile`) is checked where it is used.
                "cache" => {
                    args.cache = Some(value.clone());
                    Ok(())
                }
                "view" => view(&value).map(|v| args.view = Some(v)),
                "paths" => path(&value, "paths", "an async fn, e.g. `all_slugs`")
                    .map(|v| args.paths = Some(v)),
                "tags" => tags(&value).map(|v| args.tags = Some(v)),
                "query" => string_list(&value, "query", "query = [\"page\", \"tag\"]").map(|v| {
                    args.query = Some(WithSpan {
                        value: v,
                        tokens: value.to_token_stream(),
                    })
                }),
                "max_variants" => {
                    integer(&value, "max_variants").map(|v| args.max_variants = Some(v))
                }
                "sitemap_variants" => {
                    boolean(&value, "sitemap_variants").map(|v| args.sitemap_variants = Some(v))
                }
                _ => unreachable!("checked against KNOWN_KEYS"),
            };
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        args
    }
}

/// Errors collected while checking one attribute, reported together (serde_derive's `Ctxt`).
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every error pushed, if any.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    /// Whether any error was pushed.
    pub(crate) fn any(&self) -> bool {
        self.0.is_some()
    }
}

/// `view = PostView` (a function of the props) or `view = |props| view! { ... }`.
fn view(value: &Expr) -> syn::Result<Expr> {
    match value {
        Expr::Path(p) if p.qself.is_none() => Ok(value.clone()),
        Expr::Closure(_) => Ok(value.clone()),
        other => Err(syn::Error::new(
            other.span(),
            "`view` expects a function of the props (`view = post_page`) or a closure (`view = |post| view! { <Post post /> }`)",
        )),
    }
}

fn string(value: &Expr, key: &str, example: &str) -> syn::Result<WithSpan<String>> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(WithSpan {
            value: s.value(),
            tokens: s.to_token_stream(),
        }),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` expects a string literal, e.g. `{key} = {example}`"),
        )),
    }
}

fn integer(value: &Expr, key: &str) -> syn::Result<WithSpan<i128>> {
    let (negative, inner) = match value {
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => (true, &**expr),
        other => (false, other),
    };
    match inner {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            let n: i128 = i.base10_parse()?;
            Ok(WithSpan {
                value: if negative { -n } else { n },
                tokens: value.to_token_stream(),
            })
        }
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{key}` expects a whole number of seconds, e.g. `{key} = 60`"),
        )),
    }
}

fn revalidate(value: &Expr) -> syn::Result<WithSpan<RawRevalidate>> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Bool(b), ..
    }) = value
    {
        if b.value {
            return Err(syn::Error::new(
                b.span(),
                "`revalidate = true` has no meaning: use a number of seconds, or `false` for on-demand revalidation only",
            ));
        }
        return Ok(WithSpan {
            value: RawRevalidate::Never,
            tokens: b.to_token_stream(),
        });
    }
    let n = integer(value, "revalidate").map_err(|_| {
        syn::Error::new(
            value.span(),
            "`revalidate` expects seconds (`revalidate = 60`) or `false` (on-demand only)",
        )
    })?;
    Ok(n.map(RawRevalidate::Seconds(n.value)))
}

fn path(value: &Expr, key: &str, what: &str) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` expects {what}"),
        )),
    }
}

fn boolean(value: &Expr, key: &str) -> syn::Result<WithSpan<bool>> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(WithSpan {
            value: b.value,
            tokens: b.to_token_stream(),
        }),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

/// `["a", "b"]`: a list of string literals.
fn string_list(value: &Expr, key: &str, example: &str) -> syn::Result<Vec<LitStr>> {
    let Expr::Array(array) = value else {
        return Err(syn::Error::new(
            value.span(),
            format!("`{key}` expects a list of string literals, e.g. `{example}`"),
        ));
    };
    array
        .elems
        .iter()
        .map(|elem| match elem {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.clone()),
            other => Err(syn::Error::new(
                other.span(),
                format!("each entry of `{key}` is a string literal, e.g. `{example}`"),
            )),
        })
        .collect()
}

fn tags(value: &Expr) -> syn::Result<Vec<LitStr>> {
    string_list(value, "tags", "tags = [\"posts\"]")
}
