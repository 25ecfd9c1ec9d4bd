//! The `#[page]`, `#[paths]` and `#[layout]` attributes and the `asset!` macro of the
//! [isr](https://docs.rs/isr) framework.
//!
//! Apps use it through `isr::page`; see that crate for the full guide. The attribute goes on the
//! async data loader of a page and registers the page at compile time:
//!
//! ```text
//! #[page(path = "/blog/:slug", revalidate = 5, view = post_page, paths = all_slugs,
//!        fallback = "blocking", tags = ["posts"])]
//! async fn post(Path(p): Path<PostParams>, State(db): State<Db>) -> isr::Result<Load<Post>> { .. }
//! ```
//!
//! (Shown as text: this crate cannot name `isr` in its own tests; `isr::page` has the
//! examples that compile.)
//!
//! The crate follows the parse → validate → expand shape of `serde_derive`: `args` turns the
//! attribute tokens into spanned arguments, `validate` checks them against the loader and builds
//! a `validate::PageSpec`, and `expand` writes the generated code. Every mistake found is
//! collected (`args::Errors`) and reported at once, each at its own span.

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

mod args;
mod asset;
mod expand;
mod layout;
mod validate;

use proc_macro::TokenStream;
use syn::spanned::Spanned;

/// Declares an ISR page: see `isr::page` for the documentation.
#[proc_macro_attribute]
pub fn page(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemFn);
    let mut errors = args::Errors::default();
    let args = args::PageArgs::parse(attr.into(), &mut errors);
    let spec = validate::PageSpec::new(args, item.clone(), &mut errors);
    match (spec, errors.finish()) {
        (Some(spec), Ok(())) => expand::expand(&spec).into(),
        (_, result) => {
            // Keep the loader in the output so that one mistake in the attribute does not cascade
            // into "cannot find function" errors at every use of it.
            let errors = result.err().map(|e| e.to_compile_error());
            quote::quote!(#errors #[allow(dead_code)] #item).into()
        }
    }
}

/// Marks a page's `paths` function: see `isr::paths`.
#[proc_macro_attribute]
pub fn paths(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as syn::ItemFn);
    let mut errors = args::Errors::default();
    if !proc_macro2::TokenStream::from(attr).is_empty() {
        errors.push(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[paths] takes no arguments",
        ));
    }
    if function.sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            function.sig.fn_token.span(),
            "#[paths] goes on an `async fn` that lists the params of every page: add `async`",
        ));
    }
    match errors.finish() {
        Ok(()) => expand::expand_paths(&function).into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote::quote!(#error #[allow(dead_code)] #function).into()
        }
    }
}

/// Declares a layout: see `isr::layout`.
#[proc_macro_attribute]
pub fn layout(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as syn::ItemFn);
    let mut errors = args::Errors::default();
    let spec = layout::LayoutSpec::new(attr.into(), function.clone(), &mut errors);
    match (spec, errors.finish()) {
        (Some(spec), Ok(())) => spec.expand().into(),
        (_, result) => {
            let errors = result.err().map(|e| e.to_compile_error());
            quote::quote!(#errors #[allow(dead_code)] #function).into()
        }
    }
}

/// The content-hashed URL of a file of the crate's `assets/` folder: see `isr::asset!`.
#[proc_macro]
pub fn asset(input: TokenStream) -> TokenStream {
    let name = syn::parse_macro_input!(input as syn::LitStr);
    match asset::AssetSpec::new(&name) {
        Ok(spec) => spec.expand().into(),
        Err(error) => error.to_compile_error().into(),
    }
}
