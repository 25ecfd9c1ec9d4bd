//! In an islands-only client bundle a page left to hydrate in full is a compile error naming it.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn show(props: Props) -> impl IntoView {
    view! { <h1>{props.title}</h1> }
}

#[page(path = "/full", revalidate = 60, view = show)]
async fn full() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "Full".into() }))
}

fn main() {}
