//! Code generation: the loader (server only), its argument extraction and its `isr::PageDef`
//! registration; the page's hydration export (browser only).

use crate::validate::{hydrate_export_name, CacheSpec, Fallback, Output, PageSpec};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

/// Expands a validated page into the loader plus its registration.
///
/// Everything that runs loaders is compiled only with the app's `ssr` feature (leptos
/// convention), so a `hydrate` build never sees server-only code.
pub(crate) fn expand(spec: &PageSpec) -> TokenStream {
    let loader = &spec.loader;
    let loader_ident = &loader.sig.ident;
    let loader_name = loader_ident.to_string();
    let path = &spec.path;
    let erased_loader = format_ident!("__isr_load_{}", loader_ident);
    let erased_paths = format_ident!("__isr_paths_{}", loader_ident);
    let accepts = format_ident!("__isr_accepts_{}", loader_ident);
    let canonical_query = format_ident!("__isr_canonical_query_{}", loader_ident);
    let check = format_ident!("__isr_check_{}", loader_ident);
    let arg_names: Vec<_> = (0..spec.args.len())
        .map(|i| format_ident!("__isr_arg{}", i))
        .collect();
    // Each extraction carries the span of its argument's type, so a type that is not an
    // extractor is reported at that argument.
    let extractions = spec.args.iter().zip(&arg_names).map(|(arg, name)| {
        let ty = &arg.ty;
        quote_spanned! {ty.span()=>
            let #name = match <#ty as ::isr::__private::FromContext>::from_context(&cx) {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(rejection) => return rejection.into_generated(),
            };
        }
    });
    let arg_types: Vec<_> = spec.args.iter().map(|arg| &arg.ty).collect();
    let cache = cache_profile(&spec.cache);
    let timeout = match spec.timeout {
        Some(seconds) => quote!(::core::option::Option::Some(#seconds)),
        None => quote!(::core::option::Option::None),
    };
    let fallback = match spec.fallback {
        Fallback::Blocking => quote!(::isr::Fallback::Blocking),
        Fallback::NotFound => quote!(::isr::Fallback::NotFound),
    };
    let tags = &spec.tags;
    let query_spec = {
        let names = &spec.query.names;
        let max_variants = match spec.query.max_variants {
            Some(n) => {
                let n = n as usize;
                quote!(#n)
            }
            None => quote!(::isr::DEFAULT_MAX_VARIANTS),
        };
        let in_sitemap = spec.query.in_sitemap;
        quote! {
            ::isr::QuerySpec {
                names: &[#(#names),*],
                max_variants: #max_variants,
                in_sitemap: #in_sitemap,
                canonical: #canonical_query,
            }
        }
    };
    let export_name = hydrate_export_name(&spec.path);
    let (render, content_type, hydration, hydrate) = match &spec.output {
        Output::View {
            view,
            props,
            islands,
        } => {
            // The view call carries the span of `view = ...`, so a view that does not take the
            // loader's props is reported at the attribute argument.
            let render_view = quote_spanned! {view.span()=>
                |props: #props| (#view)(props)
            };
            let (hydration, browser_code) = if *islands {
                // No export of its own, so none of the view's code is in the bundle (its
                // `#[island]`s export themselves). The client build still type-checks the view
                // and counts it as used (it renders on the server only).
                let view_check = format_ident!("__isr_islands_view_{}", loader_ident);
                (
                    quote!(::isr::Hydration::Islands),
                    quote! {
                        #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
                        #[allow(dead_code, non_snake_case)]
                        fn #view_check() {
                            let _ = #render_view;
                        }
                    },
                )
            } else {
                let hydrate_fn = format_ident!("{}", export_name);
                let export = quote! {
                    /// Hydrates this page in the browser: called by the page's own module script.
                    #[::isr::__private::wasm_bindgen::prelude::wasm_bindgen(
                        wasm_bindgen = ::isr::__private::wasm_bindgen,
                        js_name = #export_name
                    )]
                    #[doc(hidden)]
                    #[allow(non_snake_case)]
                    pub fn #hydrate_fn() {
                        ::isr::__private::hydrate_page::<#props, _, _>(#render_view);
                    }
                };
                (
                    quote!(::isr::Hydration::Full { export: #export_name }),
                    // Only a client build (no `ssr`) can be an islands-only bundle.
                    quote! {
                        #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
                        ::isr::__isr_full_hydration! { page #path { #export } }
                        #[cfg(all(feature = "hydrate", feature = "ssr"))]
                        #export
                    },
                )
            };
            (
                quote!(::isr::__private::render_load(load, &cx, #hydration, #render_view).await),
                quote!(::core::option::Option::None),
                hydration,
                browser_code,
            )
        }
        // A body is served as it is: no document, nothing to hydrate.
        Output::Body { content_type } => (
            quote!(::isr::__private::render_body(load)),
            quote!(::core::option::Option::Some(#content_type)),
            quote!(::isr::Hydration::Islands),
            quote!(),
        ),
    };
    let (paths_fn, paths_field, paths_check) = match &spec.paths {
        Some(paths) => (
            quote! {
                fn #erased_paths(cx: ::isr::__private::LoadContext) -> ::isr::__private::BoxFuture<::isr::Result<::std::vec::Vec<::isr::Params>>> {
                    ::isr::__private::call_paths(#paths, cx)
                }
            },
            quote!(::core::option::Option::Some(#erased_paths)),
            quote! {
                errors.extend(
                    ::isr::__private::check_paths(#paths, check)
                        .into_iter()
                        .map(|e| ::std::format!("`paths = {}`: {e}", ::core::stringify!(#paths))),
                );
            },
        ),
        None => (quote!(), quote!(::core::option::Option::None), quote!()),
    };
    quote! {
        #[cfg(feature = "ssr")]
        #loader

        #[cfg(feature = "ssr")]
        const _: () = {
            fn #erased_loader(cx: ::isr::__private::LoadContext) -> ::isr::__private::BoxFuture<::isr::Result<::isr::__private::Generated>> {
                ::std::boxed::Box::pin(async move {
                    #(#extractions)*
                    let load = #loader_ident(#(#arg_names),*).await?;
                    #render
                })
            }
            fn #accepts(params: &::isr::Params) -> bool {
                let _ = params;
                true #(&& <#arg_types as ::isr::__private::FromContext>::accepts(params))*
            }
            fn #canonical_query(query: ::isr::Params) -> ::core::option::Option<::isr::Params> {
                #(let query = <#arg_types as ::isr::__private::FromContext>::canonical_query(query)?;)*
                ::core::option::Option::Some(query)
            }
            fn #check(check: &::isr::__private::Check<'_>) -> ::std::vec::Vec<::std::string::String> {
                #[allow(unused_mut)]
                let mut errors = ::std::vec::Vec::new();
                #(
                    if let ::core::result::Result::Err(e) = <#arg_types as ::isr::__private::FromContext>::check(check) {
                        errors.push(::std::format!("loader `{}`: {e}", #loader_name));
                    }
                )*
                #paths_check
                errors
            }
            #paths_fn
            ::isr::__private::inventory::submit! {
                ::isr::PageDef {
                    id: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#loader_ident)),
                    path: #path,
                    cache: #cache,
                    timeout_secs: #timeout,
                    fallback: #fallback,
                    tags: &[#(#tags),*],
                    load: #erased_loader,
                    paths: #paths_field,
                    accepts: #accepts,
                    check: #check,
                    content_type: #content_type,
                    hydration: #hydration,
                    query: #query_spec,
                }
            }
        };

        #hydrate
    }
}

/// `#[paths]`: the function exists only with the app's `ssr` feature, like loaders.
pub(crate) fn expand_paths(function: &syn::ItemFn) -> TokenStream {
    quote! {
        #[cfg(feature = "ssr")]
        #function
    }
}

/// The page's `isr::CacheProfile`: the app's profile expression, or the builder calls of the separate arguments (already
/// checked, so the builders' own checks pass).
fn cache_profile(cache: &CacheSpec) -> TokenStream {
    match cache {
        // As written, in the registration's static: evaluated when compiling (a profile that
        // breaks a builder's rule is a compile error), a value of another type reported at it.
        CacheSpec::Profile(profile) => quote_spanned! {profile.span()=> #profile },
        CacheSpec::Seconds {
            revalidate,
            expire,
            stale_if_error,
            browser,
        } => {
            let mut profile = match revalidate {
                Some(seconds) => quote!(::isr::CacheProfile::revalidate(#seconds)),
                None => quote!(::isr::CacheProfile::on_demand()),
            };
            if let Some(seconds) = expire {
                profile.extend(quote!(.expire(#seconds)));
            }
            if let Some(seconds) = stale_if_error {
                profile.extend(quote!(.stale_if_error(#seconds)));
            }
            if *browser > 0 {
                profile.extend(quote!(.browser(#browser)));
            }
            profile
        }
    }
}
