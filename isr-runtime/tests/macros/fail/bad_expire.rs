use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn show(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

#[page(path = "/a", revalidate = 60, expire = 60, view = show)]
pub async fn not_after_revalidate() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "a".into() }))
}

#[page(path = "/b", revalidate = 60, stale_if_error = 600, view = show)]
pub async fn grace_without_expire() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "b".into() }))
}

#[page(path = "/c", revalidate = false, expire = 0, view = show)]
pub async fn zero() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "c".into() }))
}

fn main() {}
