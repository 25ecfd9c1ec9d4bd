// A destructured `Path(T { field })` must name the route's params.
use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

#[derive(Deserialize, Serialize)]
pub struct ById {
    id: u32,
}

fn view_of(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/items/:slug", revalidate = 60, view = view_of, fallback = "blocking")]
pub async fn item(Path(ById { id }): Path<ById>) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: id.to_string() }))
}

fn main() {}
