use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

#[component]
pub fn View(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/x", revalidate = -5, view = View)]
pub async fn x() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

fn main() {}
