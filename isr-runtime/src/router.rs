//! leptos_router context for page views, without client-side routing.
//!
//! Every page view runs inside a leptos_router `<Router>`, so `<A>`, `use_location`, `use_url`,
//! `use_params_map` and `use_params` work in views as in any leptos app. On the server the
//! location is the page's own path and the params are its route's; in the browser the location
//! is the window's and the params are read back from the page (`#__isr_params`), so hydration
//! sees what the server rendered.
//!
//! Each page is a static document with its own props, so navigating never renders another page
//! in the browser: when the router takes a link click (or a `use_navigate` call) to another path
//! or query string, the browser loads that URL from the server, as it does for a plain link. A
//! link to a `#fragment` of the same page stays in the page. There are no `<Routes>`: which page
//! answers a path is isr's business (the server's router), not the view's.
//!
//! A view rendered at a query string (`/blog?tag=rust`) is rendered on the server without it (the
//! stored page is the same for every query): read `use_query_map` only in code that runs after
//! hydration (an effect or an event handler), as with any statically generated page.

use leptos::prelude::*;
use leptos_router::components::Router;
use leptos_router::params::ParamsMap;

/// The id of the `<script type="application/json">` element that holds a dynamic page's route
/// params (`[["slug","hello"]]`), for its view's `use_params_map` in the browser.
pub const PARAMS_ELEMENT_ID: &str = "__isr_params";

/// `view()` inside the app's layouts for `url_path` ([`layout`](mod@crate::layout)), inside a `<Router>`
/// whose matched params are `params`.
pub(crate) fn with_router<F, V>(
    params: Vec<(String, String)>,
    url_path: &str,
    view: F,
) -> impl IntoView
where
    F: FnOnce() -> V + Send + 'static,
    V: IntoView + 'static,
{
    let mut map = ParamsMap::new();
    for (name, value) in params {
        map.insert(name, value);
    }
    let url_path = url_path.to_owned();
    view! {
        <Router>
            {
                // What leptos_router's `use_params_map` reads (a matched `<Route>` provides it).
                provide_context(ArcMemo::new(move |_| map.clone()));
                #[cfg(feature = "hydrate")]
                load_other_pages_from_the_server();
                crate::layout::wrap(&url_path, view)
            }
        </Router>
    }
}

/// Turns the router's navigations to another path or query string into browser page loads.
#[cfg(feature = "hydrate")]
fn load_other_pages_from_the_server() {
    let url = leptos_router::hooks::use_url();
    let here = url.with_untracked(|url| (url.path().to_owned(), url.search().to_owned()));
    Effect::new(move |_| {
        url.with(|url| {
            if url.path() != here.0 || url.search() != here.1 {
                let mut target = url.path().to_owned();
                if !url.search().is_empty() {
                    target.push('?');
                    target.push_str(url.search());
                }
                target.push_str(url.hash());
                if let Some(window) = web_sys::window() {
                    let _ = window.location().set_href(&target);
                }
            }
        })
    });
}
