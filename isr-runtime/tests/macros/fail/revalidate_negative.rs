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

#[page(path = "/x", revalidate = -5, view = show)]
pub async fn x() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

fn main() {}
