// File routes: static, no view, a known content type, a body to return.
use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn view_of(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/feed.xml", revalidate = 60, view = view_of)]
pub async fn with_view() -> isr::Result<Load<String>> {
    Ok(Load::props(String::new()))
}

#[page(path = "/:lang/feed.xml", revalidate = 60, fallback = "blocking")]
pub async fn dynamic(params: Params) -> isr::Result<Load<String>> {
    Ok(Load::props(params.get("lang")?.to_string()))
}

#[page(path = "/data.bin", revalidate = 60)]
pub async fn unknown_type() -> isr::Result<Load<Vec<u8>>> {
    Ok(Load::props(vec![1, 2, 3]))
}

#[page(path = "/about", revalidate = 60, view = view_of, content_type = "text/plain")]
pub async fn page_with_type() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "x".into() }))
}

#[page(path = "/numbers.txt", revalidate = 60)]
pub async fn not_a_body() -> isr::Result<Load<u32>> {
    Ok(Load::props(7))
}

fn main() {}
