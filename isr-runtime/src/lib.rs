//! # isr — Incremental Static Regeneration for leptos + axum
//!
//! Declare pages with [`page`](macro@page) on an async data loader; [`App::run`] pre-renders every page to
//! static HTML (`build`), then serves it (`serve`). A request that finds a page older than its
//! `revalidate` window gets the old page at once while the page is regenerated in the background;
//! the next request gets the new one. Pages can also be revalidated on demand by path or tag
//! (`POST /_isr/revalidate`, [`revalidate_path`], [`revalidate_tag`]). A failed regeneration
//! (error, panic, timeout) keeps the old page.
//!
//! Not run as a test: the program serves until it is stopped, and `#[page]` registers the page
//! only in an app built with its own `ssr` feature (`cargo new`, then the `[features]` of
//! `examples/blog/Cargo.toml`).
//!
//! ```no_run
//! use isr::prelude::*;
//! use leptos::prelude::*;
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! pub struct HelloProps { name: String }
//!
//! #[page(path = "/hello/:name", revalidate = 60, view = hello_page, fallback = "blocking")]
//! async fn hello(Path(props): Path<HelloProps>) -> isr::Result<Load<HelloProps>> {
//!     Ok(Load::props(props))
//! }
//!
//! fn hello_page(props: HelloProps) -> impl IntoView {
//!     view! { <h1>"Hello, " {props.name}</h1> }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     isr::App::new("hello").run()
//! }
//! ```
//!
//! What a page's policy means to browsers and CDNs, as the server sends it (runs as a test):
//!
//! ```
//! use isr::CacheProfile;
//! // `#[page(path = "/prices", revalidate = 60, expire = 600, view = ..)]`
//! let prices = CacheProfile::revalidate(60).expire(600);
//! // Browsers ask every time (a 304 while unchanged); shared caches keep it 60 s.
//! assert_eq!(isr::server::cache_control(prices), "max-age=0, must-revalidate, s-maxage=60");
//! // CDNs may serve it stale while they refetch, but never past `expire`.
//! assert_eq!(isr::server::cdn_cache_control(prices), "max-age=60, stale-while-revalidate=540");
//! ```
//!
//! The book (`book/` in the repository) is the guide: getting started, pages, freshness,
//! revalidation on demand, deploying and operating.
//!
//! Modules follow the lifecycle, data flowing one way: [`server`] → [`route`] → [`engine`] →
//! ([`store`], [`render`], page loaders). [`build`] drives the engine at build time;
//! [`revalidate`] drives it on demand; [`cli`] wires everything into [`App`].

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

/// Declares an ISR page on its async data loader.
///
/// Arguments: `path = "/blog/:slug"` (required), `revalidate = <seconds> | false` (required
/// unless `cache`), `expire = <seconds>` (a ceiling on a served page's age, greater than
/// `revalidate`: an older page is never served as current, the request waits for its
/// regeneration), `stale_if_error = <seconds>` (with `expire`: how long past it the old page may
/// still be served, marked, while regenerating fails; otherwise `503`), `browser = <seconds>`
/// (how long browsers may reuse the page without asking; default 0), `cache = PROFILE` (a
/// [`CacheProfile`] constant instead of those four),
/// `view = post_page` (required for HTML pages: a function `fn(Props) -> impl IntoView`, or a
/// closure such as `|post| view! { <Post post /> }`), `hydrate = "islands" | "full"` (how the
/// page comes alive in the browser, default "full": see below), `paths = async_fn` (pages to pre-render for
/// a dynamic path), `fallback = "blocking" | "404"` (what a never-generated dynamic path gets;
/// default "404"), `tags = ["..."]`, `timeout = <seconds>` (loader time limit, default 30),
/// `content_type = "..."` (for a route that ends in a file name; guessed from the extension).
///
/// The loader is an `async fn` whose arguments are extractors ([`Params`], [`Path<T>`],
/// [`State<T>`]) and which returns `isr::Result<Load<Props>>`; a route that ends in a file name
/// (`/blog/feed.xml`) has no view and returns its body (`Load<String>` or bytes). The loader and
/// the registration exist only with the app's `ssr` feature.
///
/// **Hydration.** By default the whole view hydrates: the page embeds its props and route
/// params, and the client bundle holds the view's code (the page's own export). With
/// `hydrate = "islands"` only the view's leptos `#[island]` components hydrate (the app enables
/// leptos's `islands` feature): the page embeds no props, the bundle holds only the islands'
/// code, each island hydrates from the props leptos writes into its `<leptos-island>` element,
/// and a page without an island loads no script at all. Islands have no router: a link inside
/// one is a plain `<a>` (outside them, `<A>` works as everywhere).
///
/// Compiled, not run: a page is registered only in an app built with its `ssr` feature.
///
/// ```no_run
/// # use isr::prelude::*;
/// # use leptos::prelude::*;
/// # #[derive(Clone, Serialize, Deserialize)]
/// # pub struct ListProps { titles: Vec<String> }
/// # #[derive(Clone)]
/// # pub struct Db;
/// # impl Db { async fn list(&self) -> isr::Result<ListProps> { Ok(ListProps { titles: vec![] }) } }
/// # fn post_list(props: ListProps) -> impl IntoView { view! { <p>{props.titles.len()}</p> } }
/// #[page(path = "/blog", revalidate = 60, view = post_list, tags = ["posts"])]
/// async fn blog(State(db): State<Db>) -> isr::Result<Load<ListProps>> {
///     Ok(Load::props(db.list().await?))
/// }
/// # fn main() {}
/// ```
pub use isr_macros::page;

/// Marks a page's `paths` function: it exists only with the app's `ssr` feature, like loaders.
/// It takes `State<T>` extractors and returns the params of every page to pre-render, as
/// [`Params`] or as the struct the loader takes in `Path<T>`.
///
/// Compiled, not run: it exists only in an app built with its `ssr` feature.
///
/// ```no_run
/// # use isr::prelude::*;
/// # #[derive(Clone, Serialize, Deserialize)]
/// # pub struct PostParams { slug: String }
/// # #[derive(Clone)]
/// # pub struct Db;
/// # impl Db { async fn slugs(&self) -> isr::Result<Vec<PostParams>> { Ok(vec![]) } }
/// #[paths]
/// async fn all_posts(State(db): State<Db>) -> isr::Result<Vec<PostParams>> { db.slugs().await }
/// # fn main() {}
/// ```
pub use isr_macros::paths;

/// Declares a layout: a plain function that takes the page (`children: Children`) and returns
/// the frame around it, for every HTML page of the app or, with `prefix = "/blog"`, for the
/// pages at `/blog` and under it (and the app's 404 and 503 pages there). Layouts nest from the
/// shortest prefix (outside) to the longest; see [`mod@layout`] for the rules.
///
/// Compiled, not run: a layout is registered only in an app built with its `ssr` or `hydrate`
/// feature (not in an islands-only client bundle, isr's `islands` feature: there layouts render
/// on the server only).
///
/// ```no_run
/// use leptos::prelude::*;
///
/// #[isr::layout]
/// fn site_layout(children: Children) -> impl IntoView {
///     view! { <header>"My site"</header> <main>{children()}</main> }
/// }
///
/// #[isr::layout(prefix = "/blog")]
/// fn blog_layout(children: Children) -> impl IntoView {
///     view! { <nav><a href="/blog">"All posts"</a></nav> {children()} }
/// }
/// # fn main() {}
/// ```
pub use isr_macros::layout;

/// The content-hashed URL of a file of the crate's `assets/` folder, as a `&'static str`:
/// `isr::asset!("style.css")` is `"/assets/style-1a2b3c4d5e6f.css"`. A file that is missing
/// is a compile error at its name; an edit to it rebuilds the crate with the new hash. The server
/// serves it there, cached forever (see [`mod@assets`]).
///
/// Shown as text: the name must be a file of the calling crate's `assets/` folder, which this
/// crate has not (the examples' layouts use it: `examples/blog/src/pages.rs`).
///
/// ```text
/// use leptos::prelude::*;
/// use leptos_meta::Stylesheet;
///
/// #[isr::layout]
/// fn site_layout(children: Children) -> impl IntoView {
///     view! { <Stylesheet href=isr::asset!("style.css") /> {children()} }
/// }
/// ```
pub use isr_macros::asset;

/// The id of the `<script type="application/json">` element that holds a page's props.
pub const PROPS_ELEMENT_ID: &str = "__isr_props";

#[cfg(feature = "ssr")]
pub mod assets;
#[cfg(feature = "ssr")]
pub mod build;
#[cfg(feature = "ssr")]
pub mod cdn;
#[cfg(all(feature = "ssr", feature = "cli"))]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod client;
#[cfg(feature = "ssr")]
pub mod csp;
#[cfg(feature = "ssr")]
pub mod dashboard;
#[cfg(all(feature = "ssr", feature = "cli"))]
pub mod embed;
#[cfg(all(test, feature = "ssr"))]
mod engine_tests;
#[cfg(feature = "hydrate")]
pub mod hydrate;
#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod layout;
#[cfg(all(feature = "ssr", feature = "cli"))]
pub mod log_fields;
#[cfg(feature = "ssr")]
pub mod malloc_arenas;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod preview;
#[cfg(feature = "ssr")]
pub mod public;
#[cfg(feature = "ssr")]
mod random;
#[cfg(all(feature = "ssr", feature = "cli"))]
mod remote;
#[cfg(feature = "ssr")]
pub mod render;
#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod router;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "redis")]
pub mod shared;
#[cfg(feature = "ssr")]
pub mod site;
#[cfg(feature = "ssr")]
pub mod sitemap;
#[cfg(feature = "ssr")]
pub mod store;

#[cfg(feature = "ssr")]
use isr_core::page;
/// The engine and the page model, from `isr-core` (nothing in them knows about HTTP).
#[cfg(feature = "ssr")]
pub use isr_core::{backoff, clock, context, encoding, engine, hot_cache, revalidate, route};

/// Re-exported so that apps add routes with the version isr uses.
#[cfg(feature = "ssr")]
pub use axum;
/// Re-exported so that apps add subcommands with the version isr uses.
#[cfg(all(feature = "ssr", feature = "cli"))]
pub use clap;
#[cfg(all(feature = "ssr", feature = "cli"))]
pub use cli::App;

#[cfg(feature = "ssr")]
pub use {
    build::{BuildError, BuildOptions, BuildReport},
    csp::ContentSecurityPolicy,
    isr_core::{
        context::{AppState, FromContext, LoadContext, Path, Preview, Query, Rejection, State},
        engine::{
            CacheStatus, CachedPage, Engine, EngineBuilder, EngineOptions, FailureKind, Outcome,
            Served, Trigger,
        },
        page::{
            pages, CacheProfile, Fallback, Load, PageDef, Params, QuerySpec, Revalidate,
            DEFAULT_MAX_VARIANTS, DEFAULT_TIMEOUT_SECS, HTML_CONTENT_TYPE,
        },
        revalidate::{
            revalidate_path, revalidate_tag, NotRunning, RevalidateRequest, RevalidationOutcome,
            RevalidationResult, Revalidator,
        },
        route::{PageKey, Resolved, RouteError, Routes},
        Hydration, RenderedBody,
    },
    render::Shell,
    server::server_fns::{server_state, set_server_fn_status},
    site::SiteUrl,
};

#[cfg(feature = "ssr")]
pub(crate) use isr_core::cpus;

#[cfg(feature = "ssr")]
pub use isr_core::{error, Context, Error, Result};

/// What a page module needs: `use isr::prelude::*;`.
///
/// ```
/// use isr::prelude::*;
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Props { title: String }
/// ```
pub mod prelude {
    pub use crate::{layout, page, paths};
    #[cfg(feature = "ssr")]
    pub use crate::{Load, Params, Path, Preview, Query, State};
    pub use serde::{Deserialize, Serialize};
}

/// What a client bundle keeps of a fully hydrated page (its export) and of a layout (its
/// registration): everything, unless isr's `islands` feature makes it an islands-only bundle.
/// Used by the code `#[page]` and `#[layout]` generate; not a public API.
#[cfg(not(feature = "islands"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __isr_full_hydration {
    (page $path:literal { $($item:tt)* }) => { $($item)* };
    (layout { $($item:tt)* }) => { $($item)* };
}

/// What a client bundle keeps of a fully hydrated page (its export) and of a layout (its
/// registration): in an islands-only bundle (isr's `islands` feature), no layout, and a page
/// that would hydrate in full is a compile error. Used by the code `#[page]` and `#[layout]`
/// generate; not a public API.
#[cfg(feature = "islands")]
#[doc(hidden)]
#[macro_export]
macro_rules! __isr_full_hydration {
    (page $path:literal { $($item:tt)* }) => {
        ::core::compile_error!(::core::concat!(
            "page `", $path, "` hydrates in full, but isr's `islands` feature (an islands-only ",
            "client bundle) is on: add `hydrate = \"islands\"` to its #[page], or turn the feature off"
        ));
    };
    (layout { $($item:tt)* }) => {};
}

/// Items used by the code `#[page]` generates. Not a public API.
#[doc(hidden)]
#[cfg(feature = "ssr")]
pub mod __private {
    pub use crate::assets::AssetDef;
    pub use crate::context::{call_paths, check_paths, Check, FromContext, LoadContext, Rejection};
    pub use crate::layout::{erase as erase_layout, LayoutDef};
    pub use crate::page::{accept_all, keep_query, nothing_to_check, Generated};
    pub use crate::render::{render_body, render_load};
    pub use inventory;
    pub use leptos::prelude::{AnyView, Children};
    #[cfg(feature = "hydrate")]
    pub use {crate::hydrate::hydrate_page, wasm_bindgen};

    /// A boxed, sendable future of a loader.
    pub type BoxFuture<T> = futures::future::BoxFuture<'static, T>;

    /// A page at `path` whose loader renders `<p>page</p>` (revalidate 60, fallback
    /// `blocking`, no expire), for the documentation's examples.
    pub fn example_def(path: &'static str) -> crate::PageDef {
        fn load(_: LoadContext) -> BoxFuture<crate::Result<Generated>> {
            Box::pin(async {
                Ok(Generated::Page(crate::RenderedBody {
                    body: "<p>page</p>".into(),
                    ..Default::default()
                }))
            })
        }
        crate::PageDef {
            id: path,
            path,
            cache: crate::CacheProfile::of(crate::Revalidate::After(60)),
            timeout_secs: None,
            fallback: crate::Fallback::Blocking,
            tags: &["example"],
            load,
            paths: None,
            accepts: accept_all,
            check: nothing_to_check,
            content_type: None,
            hydration: crate::Hydration::Full {
                export: "isr_hydrate_example",
            },
            query: crate::QuerySpec::NONE,
        }
    }

    /// Routes of [`example_def`] pages, for the documentation's examples: they need routes (a
    /// `PageKey` comes only from the router) and engines without an app.
    pub fn example_routes(paths: &[&'static str]) -> crate::Routes {
        let defs = paths
            .iter()
            .map(|path| &*Box::leak(Box::new(example_def(path))))
            .collect();
        crate::Routes::new(defs).expect("valid example routes")
    }

    /// Like [`example_routes`], each route listing `query` (its variants' parameters, read
    /// as they are given).
    pub fn example_routes_with_query(
        paths: &[&'static str],
        query: &'static [&'static str],
    ) -> crate::Routes {
        let defs = paths
            .iter()
            .map(|path| {
                &*Box::leak(Box::new(crate::PageDef {
                    query: crate::QuerySpec {
                        names: query,
                        ..crate::QuerySpec::NONE
                    },
                    ..example_def(path)
                }))
            })
            .collect();
        crate::Routes::new(defs).expect("valid example routes")
    }

    /// An engine over `routes` with an in-memory store, the system clock and isr's HTML
    /// documents, for the
    /// documentation's examples.
    pub async fn example_engine(routes: crate::Routes) -> std::sync::Arc<crate::Engine> {
        crate::Engine::builder(
            routes,
            std::sync::Arc::new(crate::store::MemoryStore::default()),
        )
        .documents(std::sync::Arc::new(crate::render::DocumentShell::default()))
        .open()
        .await
        .expect("an in-memory engine opens")
    }
}

/// Items used by the browser code `#[page]` generates. Not a public API.
#[doc(hidden)]
#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
pub mod __private {
    pub use crate::hydrate::hydrate_page;
    pub use crate::layout::{erase as erase_layout, LayoutDef};
    pub use inventory;
    pub use leptos::prelude::{AnyView, Children};
    pub use wasm_bindgen;
}
