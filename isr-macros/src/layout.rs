//! `#[layout]` / `#[layout(prefix = "/blog")]`: parse the attribute, validate it and the
//! function, expand to the function plus its `isr::__private::LayoutDef` registration.

use crate::args::Errors;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// A validated layout: its function and the prefix it covers.
pub(crate) struct LayoutSpec {
    function: syn::ItemFn,
    prefix: String,
}

/// Parses `prefix = "/blog"` (or nothing: the whole app).
fn parse_prefix(tokens: TokenStream, errors: &mut Errors) -> Option<LitStr> {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(metas) => metas,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let mut prefix = None;
    for meta in metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("prefix") => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) if prefix.is_none() => prefix = Some(lit),
                Expr::Lit(ExprLit {
                    lit: Lit::Str(_), ..
                }) => errors.push(syn::Error::new(
                    nv.path.span(),
                    "duplicate `#[layout]` argument `prefix`",
                )),
                other => errors.push(syn::Error::new(
                    other.span(),
                    "`prefix` is a string, e.g. `prefix = \"/blog\"`",
                )),
            },
            other => errors.push(syn::Error::new(
                other.span(),
                "`#[layout]` takes only `prefix = \"/path\"` (none: the whole app)",
            )),
        }
    }
    prefix
}

/// What is wrong with `prefix` as a layout prefix, if anything.
fn prefix_problem(prefix: &str) -> Option<&'static str> {
    if !prefix.starts_with('/') {
        Some("a layout prefix starts with `/`, e.g. \"/blog\"")
    } else if prefix.len() > 1 && prefix.ends_with('/') {
        Some("a layout prefix has no trailing `/` (\"/blog\" covers \"/blog\" and everything under it)")
    } else if prefix.contains("//") {
        Some("a layout prefix has no empty segment (`//`)")
    } else if prefix
        .split('/')
        .any(|segment| segment.starts_with(':') || segment.starts_with('*'))
    {
        Some("a layout prefix is a fixed path: it cannot hold a `:param` or `*rest` segment")
    } else if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.' | '_' | '~'))
    {
        // Pages are matched by their URL path as sent (percent-encoded): a prefix of other
        // characters would never match one.
        Some("a layout prefix uses only ASCII letters, digits, `/`, `-`, `.`, `_` and `~`")
    } else {
        None
    }
}

impl LayoutSpec {
    /// Checks the attribute and the function; every problem goes to `errors`, at its span.
    pub(crate) fn new(
        attr: TokenStream,
        function: syn::ItemFn,
        errors: &mut Errors,
    ) -> Option<Self> {
        let prefix = parse_prefix(attr, errors);
        let prefix_value = match &prefix {
            Some(lit) => {
                let value = lit.value();
                if let Some(problem) = prefix_problem(&value) {
                    errors.push(syn::Error::new(lit.span(), problem));
                }
                value
            }
            None => "/".to_owned(),
        };
        let sig = &function.sig;
        if let Some(asyncness) = sig.asyncness {
            errors.push(syn::Error::new(
                asyncness.span(),
                "a layout renders synchronously: remove `async` (load data in the page's loader)",
            ));
        }
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new(
                sig.generics.span(),
                "a layout cannot be generic",
            ));
        }
        if sig.inputs.len() != 1 {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a layout takes one argument, the page inside it: `fn site_layout(children: Children) -> impl IntoView`",
            ));
        }
        (!errors.any()).then_some(LayoutSpec {
            function,
            prefix: prefix_value,
        })
    }

    /// The function, unchanged, and its registration (in the app's `ssr` and `hydrate` builds:
    /// the server renders pages in it and the browser hydrates fully hydrated pages in it; an
    /// islands-only bundle, isr's `islands` feature, leaves it out).
    pub(crate) fn expand(&self) -> TokenStream {
        let function = &self.function;
        let ident = &function.sig.ident;
        let erased = format_ident!("__isr_layout_{}", ident);
        let prefix = &self.prefix;
        // The call carries the argument's span: a function that does not take `Children` is
        // reported there.
        let call = match function.sig.inputs.first() {
            Some(input) => quote_spanned!(input.span()=> #ident(children)),
            None => quote!(#ident(children)),
        };
        let registration = quote! {
            const _: () = {
                fn #erased(children: ::isr::__private::Children) -> ::isr::__private::AnyView {
                    ::isr::__private::erase_layout(#call)
                }
                ::isr::__private::inventory::submit! {
                    ::isr::__private::LayoutDef {
                        prefix: #prefix,
                        name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                        render: #erased,
                    }
                }
            };
        };
        quote! {
            // Unused in an islands-only client bundle, which leaves layouts out.
            #[cfg_attr(all(feature = "hydrate", not(feature = "ssr")), allow(dead_code))]
            #function

            #[cfg(feature = "ssr")]
            #registration

            #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
            ::isr::__isr_full_hydration! { layout { #registration } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_problem;

    #[test]
    fn prefixes_are_fixed_absolute_paths() {
        for good in ["/", "/blog", "/blog/archive", "/shop-2"] {
            assert_eq!(prefix_problem(good), None, "{good}");
        }
        for bad in [
            "blog",
            "/blog/",
            "//x",
            "/blog/:slug",
            "/files/*rest",
            "/a b",
            "/a?b",
            "/%20",
        ] {
            assert!(prefix_problem(bad).is_some(), "{bad}");
        }
    }
}
