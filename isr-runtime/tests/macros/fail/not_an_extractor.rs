// A loader argument must be an extractor (`Params`, `Path<T>`, `State<T>`).
use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn view_of(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/x/:slug", revalidate = 60, view = view_of, fallback = "blocking")]
pub async fn x(slug: String) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: slug }))
}

fn main() {}
