// The view takes the loader's props: the mismatch is reported at `view = ...`.
use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

#[component]
pub fn Card(title: String) -> impl IntoView {
    view! { <p>{title}</p> }
}

#[page(path = "/x", revalidate = 60, view = Card)]
pub async fn x() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

fn main() {}
