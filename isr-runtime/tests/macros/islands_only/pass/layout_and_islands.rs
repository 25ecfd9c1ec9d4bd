//! An islands-only client bundle (the app's `hydrate` build with isr's `islands` feature): an
//! islands page and a layout compile, and the layout is not registered in the bundle; a page
//! naming a server-only cache profile compiles.

use isr::prelude::*;
use leptos::prelude::*;

#[layout]
fn site(children: Children) -> impl IntoView {
    view! { <div class="site">{children()}</div> }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

#[island]
fn Counter(start: u32) -> impl IntoView {
    let count = RwSignal::new(start);
    view! { <button on:click=move |_| count.update(|n| *n += 1)>{count}</button> }
}

fn show(props: Props) -> impl IntoView {
    view! { <h1>{props.title}</h1> <Counter start=1 /> }
}

#[page(path = "/islands", revalidate = 60, view = show, hydrate = "islands")]
async fn islands() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "Islands".into() }))
}

/// A cache profile is server API: defined under `ssr`, named by a page that the client bundle
/// also compiles (the profile is only used by the server's registration).
#[cfg(feature = "ssr")]
const LISTS: isr::CacheProfile = isr::CacheProfile::revalidate(60).expire(600);

#[page(path = "/lists", cache = LISTS, view = show, hydrate = "islands")]
async fn lists() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "Lists".into() }))
}

fn main() {
    assert!(isr::layout::prefixes().is_empty(), "{:?}", isr::layout::prefixes());
}
