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

#[page(path = "/blog/:1slug", revalidate = 60, view = show, fallback = "blocking")]
pub async fn x(params: Params) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: params.get("slug")?.to_string() }))
}

fn main() {}
