//! The `#[page]` attribute of the [isr](https://docs.rs/isr) framework.
//!
//! Apps use it through `isr::page`; see that crate for the full guide. The attribute goes on the
//! async data loader of a page and registers the page at compile time:
//!
//! ```ignore
//! #[page(path = "/blog/:slug", revalidate = 5, view = PostView, paths = all_slugs,
//!        fallback = "blocking", tags = ["posts"])]
//! async fn post(params: Params) -> isr::Result<Load<PostProps>> { /* ... */ }
//! ```
//!
//! The crate follows the parse → validate → expand shape of `serde_derive`: [`args`] turns the
//! attribute tokens into spanned arguments, [`validate`] checks them against the loader and builds
//! a [`validate::PageSpec`], and [`expand`] writes the generated code.

mod args;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// Declares an ISR page: see `isr::page` for the documentation.
#[proc_macro_attribute]
pub fn page(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemFn);
    let result = args::PageArgs::parse(attr.into())
        .and_then(|args| validate::PageSpec::new(args, item.clone()))
        .map(|spec| expand::expand(&spec));
    match result {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            // Keep the loader in the output so that one mistake in the attribute does not cascade
            // into "cannot find function" errors at every use of it.
            let errors = err.to_compile_error();
            quote::quote!(#errors #[allow(dead_code)] #item).into()
        }
    }
}
