//! Code generation: the loader (server only) and its `isr::PageDef` registration.

use crate::validate::{hydrate_export_name, Fallback, PageSpec};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

/// Expands a validated page into the loader plus its registration.
///
/// Everything that runs loaders is compiled only with the app's `ssr` feature (leptos
/// convention), so a `hydrate` build never sees server-only code.
pub fn expand(spec: &PageSpec) -> TokenStream {
    let loader = &spec.loader;
    let loader_ident = &loader.sig.ident;
    let path = &spec.path;
    let view = &spec.view;
    let erased_loader = format_ident!("__isr_load_{}", loader_ident);
    let erased_paths = format_ident!("__isr_paths_{}", loader_ident);
    let call_loader = if spec.loader_takes_params {
        quote!(#loader_ident(params).await)
    } else {
        quote!({
            let _ = params;
            #loader_ident().await
        })
    };
    let revalidate = match spec.revalidate {
        Some(seconds) => quote!(::isr::Revalidate::After(#seconds)),
        None => quote!(::isr::Revalidate::Never),
    };
    let timeout = match spec.timeout {
        Some(seconds) => quote!(::core::option::Option::Some(#seconds)),
        None => quote!(::core::option::Option::None),
    };
    let fallback = match spec.fallback {
        Fallback::Blocking => quote!(::isr::Fallback::Blocking),
        Fallback::NotFound => quote!(::isr::Fallback::NotFound),
    };
    let tags = &spec.tags;
    let props = &spec.props;
    let export_name = hydrate_export_name(&spec.path);
    let hydrate_fn = format_ident!("{}", export_name);
    // The view call carries the span of `view = ...`, so a component that does not take
    // `props` is reported at the attribute argument.
    let render_view = quote_spanned! {view.span()=>
        |props| ::leptos::prelude::view! { <#view props=props /> }
    };
    let (paths_fn, paths_field) = match &spec.paths {
        Some(paths) => (
            quote! {
                fn #erased_paths() -> ::isr::__private::BoxFuture<::isr::Result<::std::vec::Vec<::isr::Params>>> {
                    ::std::boxed::Box::pin(#paths())
                }
            },
            quote!(::core::option::Option::Some(#erased_paths)),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };
    quote! {
        #[cfg(feature = "ssr")]
        #loader

        #[cfg(feature = "ssr")]
        const _: () = {
            fn #erased_loader(params: ::isr::Params) -> ::isr::__private::BoxFuture<::isr::Result<::isr::__private::Generated>> {
                ::std::boxed::Box::pin(async move {
                    let load = #call_loader?;
                    ::isr::__private::render_load(load, #render_view).await
                })
            }
            #paths_fn
            ::isr::__private::inventory::submit! {
                ::isr::PageDef {
                    id: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#loader_ident)),
                    path: #path,
                    revalidate: #revalidate,
                    timeout_secs: #timeout,
                    fallback: #fallback,
                    tags: &[#(#tags),*],
                    load: #erased_loader,
                    paths: #paths_field,
                    hydrate_export: #export_name,
                }
            }
        };

        /// Hydrates this page in the browser: called by the page's own module script.
        #[cfg(feature = "hydrate")]
        #[::isr::__private::wasm_bindgen::prelude::wasm_bindgen(
            wasm_bindgen = ::isr::__private::wasm_bindgen,
            js_name = #export_name
        )]
        #[doc(hidden)]
        #[allow(non_snake_case)]
        pub fn #hydrate_fn() {
            ::isr::__private::hydrate_page::<#props, _, _>(#render_view);
        }
    }
}
