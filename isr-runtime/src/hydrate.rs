//! The browser half: hydrate a page from the props embedded in its HTML, or start the islands
//! of an islands page.
//!
//! `#[page]` generates one `#[wasm_bindgen]` export per fully hydrated page that calls
//! [`hydrate_page`] with the page's view; the page's HTML imports the app's bundle and calls its
//! own export. Props are read once from the page, never fetched again. An islands page
//! (`hydrate = "islands"`) calls [`isr_hydrate_islands`] instead, then each island's own export.

use crate::router::PARAMS_ELEMENT_ID;
use crate::PROPS_ELEMENT_ID;
use serde::de::DeserializeOwned;

/// Reads the props (and route params) embedded in the page and hydrates `<body>` with
/// `view(props)` inside the same leptos_router context the server rendered it in
/// ([`crate::router`]).
///
/// What `#[page(view = post_page, ..)]` generates for the browser (shown as text: it exists only
/// in the wasm build, whose documentation tests do not run):
///
/// ```text
/// isr::__private::hydrate_page::<PostProps, _, _>(|props| post_page(props));
/// ```
pub fn hydrate_page<P, F, V>(view: F)
where
    P: DeserializeOwned + Send + 'static,
    F: FnOnce(P) -> V + Send + 'static,
    V: leptos::prelude::IntoView + 'static,
{
    let Some((props, params)) =
        read_or_log(|| read_props::<P>().and_then(|props| Ok((props, read_params()?))))
    else {
        return;
    };
    // The path the server rendered the page at (a page is served only at its own path), for
    // the layouts that cover it.
    let url_path = web_sys::window()
        .and_then(|window| window.location().pathname().ok())
        .unwrap_or_default();
    leptos::mount::hydrate_body(move || {
        leptos_meta::provide_meta_context();
        crate::router::with_router(params, &url_path, move || view(props))
    });
}

/// What the page embeds for hydration, or `None` after logging why it cannot be read (panics
/// are reported to the console from here on).
fn read_or_log<T>(read: impl FnOnce() -> Result<T, String>) -> Option<T> {
    console_error_panic_hook::set_once();
    read()
        .map_err(|message| leptos::logging::error!("isr: cannot hydrate this page: {message}"))
        .ok()
}

fn element_text(id: &str) -> Result<Option<String>, String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    Ok(document
        .get_element_by_id(id)
        .map(|element| element.text_content().unwrap_or_default()))
}

fn read_props<P: DeserializeOwned>() -> Result<P, String> {
    let json = element_text(PROPS_ELEMENT_ID)?
        .ok_or_else(|| format!("no #{PROPS_ELEMENT_ID} element in the page"))?;
    serde_json::from_str(&json).map_err(|e| format!("props do not match the page's type: {e}"))
}

/// The route params a dynamic page was rendered with (none for a static page).
fn read_params() -> Result<Vec<(String, String)>, String> {
    match element_text(PARAMS_ELEMENT_ID)? {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| format!("#{PARAMS_ELEMENT_ID} is not a list of params: {e}")),
    }
}

/// Starts leptos's islands mode in the browser: the module script of a page with
/// `hydrate = "islands"` calls it once the bundle is initialised, then hydrates each
/// `<leptos-island>` with its own export (see `crate::render::ISLANDS_SCRIPT`). The name is
/// `crate::render::ISLANDS_EXPORT`.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn isr_hydrate_islands() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
