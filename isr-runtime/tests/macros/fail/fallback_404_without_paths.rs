use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

/// The view: a function of the loader's props.
pub fn show(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

// Nothing pre-rendered (no `paths`) and nothing rendered on request: every page a 404.
#[page(path = "/blog/:slug", revalidate = 60, view = show, fallback = "404")]
pub async fn x(params: Params) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: params.get("slug")?.to_string() }))
}

fn main() {}
