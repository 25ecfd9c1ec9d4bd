//! The browser half: hydrate a page from the props embedded in its HTML.
//!
//! `#[page]` generates one `#[wasm_bindgen]` export per page that calls [`hydrate_page`] with
//! the page's view; the page's HTML imports the app's bundle and calls its own export. Props
//! are read once from the page, never fetched again.

use crate::PROPS_ELEMENT_ID;
use serde::de::DeserializeOwned;

/// Reads the props embedded in the page and hydrates `<body>` with `view(props)`.
///
/// ```ignore
/// // what `#[page(view = PostView, ..)]` generates for the browser:
/// isr::__private::hydrate_page::<PostProps, _, _>(|props| view! { <PostView props=props /> });
/// ```
pub fn hydrate_page<P, F, V>(view: F)
where
    P: DeserializeOwned + 'static,
    F: FnOnce(P) -> V + 'static,
    V: leptos::prelude::IntoView + 'static,
{
    console_error_panic_hook::set_once();
    let props = match read_props::<P>() {
        Ok(props) => props,
        Err(message) => {
            leptos::logging::error!("isr: cannot hydrate this page: {message}");
            return;
        }
    };
    leptos::mount::hydrate_body(move || {
        leptos_meta::provide_meta_context();
        view(props)
    });
}

fn read_props<P: DeserializeOwned>() -> Result<P, String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let element = document
        .get_element_by_id(PROPS_ELEMENT_ID)
        .ok_or_else(|| format!("no #{PROPS_ELEMENT_ID} element in the page"))?;
    let json = element.text_content().unwrap_or_default();
    serde_json::from_str(&json).map_err(|e| format!("props do not match the page's type: {e}"))
}
