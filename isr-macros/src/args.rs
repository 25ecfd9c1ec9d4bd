//! Parsing of the `#[page(...)]` arguments into spanned values; no semantic checks here.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// The keys `#[page]` understands, in the order the documentation lists them.
pub const KNOWN_KEYS: &[&str] = &[
    "path",
    "revalidate",
    "view",
    "paths",
    "fallback",
    "tags",
    "timeout",
];

/// A value with the tokens it came from, so that errors can cover all of them (`-5`, not `-`).
#[derive(Clone)]
pub struct WithSpan<T> {
    pub value: T,
    pub tokens: TokenStream,
}

impl<T> WithSpan<T> {
    /// An error pointing at this value's tokens.
    pub fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, message)
    }

    /// The same tokens with another value.
    pub fn map<U>(&self, value: U) -> WithSpan<U> {
        WithSpan {
            value,
            tokens: self.tokens.clone(),
        }
    }
}

/// `revalidate = <seconds>` or `revalidate = false`, before validation.
#[derive(Clone)]
pub enum RawRevalidate {
    Seconds(i128),
    Never,
}

/// The raw arguments of one `#[page(...)]`; each is `None` when absent.
#[derive(Default)]
pub struct PageArgs {
    pub path: Option<WithSpan<String>>,
    pub revalidate: Option<WithSpan<RawRevalidate>>,
    pub view: Option<syn::Path>,
    pub paths: Option<syn::Path>,
    pub fallback: Option<WithSpan<String>>,
    pub tags: Option<Vec<LitStr>>,
    pub timeout: Option<WithSpan<i128>>,
}

impl PageArgs {
    /// Parses `key = value, ...`, rejecting unknown and duplicate keys at their span.
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = PageArgs::default();
        let mut seen: Vec<String> = Vec::new();
        for meta in metas {
            let Meta::NameValue(nv) = meta else {
                return Err(syn::Error::new(
                    meta.span(),
                    "expected `key = value`, e.g. `path = \"/blog\"`",
                ));
            };
            let key = nv
                .path
                .get_ident()
                .map(|ident| ident.to_string())
                .unwrap_or_default();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(syn::Error::new(
                    nv.path.span(),
                    format!(
                        "unknown `#[page]` argument `{}`; expected one of: {}",
                        nv.path.to_token_stream(),
                        KNOWN_KEYS.join(", ")
                    ),
                ));
            }
            if seen.contains(&key) {
                return Err(syn::Error::new(
                    nv.path.span(),
                    format!("duplicate `#[page]` argument `{key}`"),
                ));
            }
            seen.push(key.clone());
            let value = nv.value;
            match key.as_str() {
                "path" => args.path = Some(string(&value, "path", "\"/blog/:slug\"")?),
                "fallback" => {
                    args.fallback = Some(string(&value, "fallback", "\"blocking\" or \"404\"")?)
                }
                "revalidate" => args.revalidate = Some(revalidate(&value)?),
                "timeout" => args.timeout = Some(integer(&value, "timeout")?),
                "view" => args.view = Some(path(&value, "view", "a component, e.g. `PostView`")?),
                "paths" => {
                    args.paths = Some(path(&value, "paths", "an async fn, e.g. `all_slugs`")?)
                }
                "tags" => args.tags = Some(tags(&value)?),
                _ => unreachable!("checked against KNOWN_KEYS"),
            }
        }
        Ok(args)
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

fn tags(value: &Expr) -> syn::Result<Vec<LitStr>> {
    let Expr::Array(array) = value else {
        return Err(syn::Error::new(
            value.span(),
            "`tags` expects a list of string literals, e.g. `tags = [\"posts\"]`",
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
                "a tag must be a string literal, e.g. `\"posts\"`",
            )),
        })
        .collect()
}
