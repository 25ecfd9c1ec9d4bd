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

#[page(path = "/blog", revalidate = 60, view = show, hydrate = "partial")]
pub async fn list() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

#[page(path = "/blog/feed.xml", revalidate = 60, hydrate = "islands")]
pub async fn feed() -> isr::Result<Load<String>> {
    Ok(Load::props(String::new()))
}

#[page(path = "/about", revalidate = 60, view = show, hydrate = islands)]
pub async fn about() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

fn main() {}
