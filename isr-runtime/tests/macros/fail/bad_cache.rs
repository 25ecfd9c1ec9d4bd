use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn show(props: Props) -> impl IntoView {
    view! { <p>{props.title}</p> }
}

const PRICES: isr::CacheProfile = isr::CacheProfile::revalidate(60).expire(600);
const WRONG: isr::CacheProfile = isr::CacheProfile::revalidate(60).expire(30);

#[page(path = "/a", cache = PRICES, revalidate = 60, browser = 5, view = show)]
pub async fn both() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "a".into() }))
}

#[page(path = "/b", cache = 60, view = show)]
pub async fn not_a_profile() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "b".into() }))
}

#[page(path = "/c", revalidate = 60, browser = -1, view = show)]
pub async fn negative_browser() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "c".into() }))
}

#[page(path = "/d", cache = WRONG, view = show)]
pub async fn breaks_a_rule() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "d".into() }))
}

const NOT_A_PROFILE: u64 = 60;

#[page(path = "/e", cache = NOT_A_PROFILE, view = show)]
pub async fn wrong_type() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "e".into() }))
}

fn main() {}
