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

#[page(path = "/a", revalidate = 60, view = show, query = ["page", "page", "a b"], max_variants = 0)]
pub async fn a() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "a".into() }))
}

#[page(path = "/b", revalidate = 60, view = show, max_variants = 5, sitemap_variants = true)]
pub async fn b() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "b".into() }))
}

#[page(path = "/c", revalidate = 60, view = show, query = [])]
pub async fn c() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "c".into() }))
}

#[page(path = "/feed.xml", revalidate = 60, query = ["tag"], sitemap_variants = "yes")]
pub async fn feed() -> isr::Result<Load<String>> {
    Ok(Load::props(String::new()))
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Page {
    page: u32,
}

#[page(path = "/d", revalidate = 60, view = show, query = ["page"])]
pub async fn d(Query(_a): Query<Page>, Query(_b): Query<Page>) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "d".into() }))
}

fn main() {}
