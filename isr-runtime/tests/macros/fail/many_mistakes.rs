// Every mistake of one attribute is reported at once, each at its own token.
use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn view_of(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/x", revalidate = 0, view = view_of, colour = "red", tags = [""], timeout = -1)]
pub async fn x() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

fn main() {}
