//! `hydrate = "islands"`: the page renders in leptos's islands mode (its `#[island]` carries
//! its own props, its children stay server-only HTML), keeps no props for the browser, and is
//! registered as an islands page; a page without the argument hydrates in full.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
    secret_notes: String,
}

#[island]
fn Counter(start: u32, children: Children) -> impl IntoView {
    let count = RwSignal::new(start);
    view! {
        <button on:click=move |_| count.update(|n| *n += 1)>{count}</button>
        {children()}
    }
}

fn show(props: Props) -> impl IntoView {
    view! {
        <h1>{props.title}</h1>
        <Counter start=3><p>"server only: " {props.secret_notes.len()}</p></Counter>
    }
}

#[page(path = "/islands", revalidate = 60, view = show, hydrate = "islands")]
async fn islands() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "Islands".into(), secret_notes: "draft".into() }))
}

#[page(path = "/full", revalidate = 60, view = |p: Props| view! { <h1>{p.title}</h1> })]
async fn full() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "Full".into(), secret_notes: "draft".into() }))
}

fn render(path: &str) -> isr::RenderedBody {
    let def = isr::pages().find(|d| d.path == path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cx = isr::LoadContext::new(isr::Params::new(), Default::default()).at(path);
    match runtime.block_on((def.load)(cx)).unwrap() {
        isr::__private::Generated::Page(body) => body,
        other => panic!("{other:?}"),
    }
}

fn main() {
    let def = |path: &str| isr::pages().find(|d| d.path == path).unwrap();
    assert_eq!(def("/islands").hydration, isr::Hydration::Islands);
    assert_eq!(def("/full").hydration, isr::Hydration::Full { export: "isr_hydrate__sfull" });

    let body = render("/islands");
    assert!(body.props_json.is_empty(), "no props for the browser: {}", body.props_json);
    let html = &body.body;
    assert!(html.starts_with("<h1>Islands</h1><leptos-island data-component=\"Counter_"), "{html}");
    assert!(html.contains(r#"data-props="{&quot;start&quot;:3}""#), "{html}");
    assert!(html.contains("<leptos-children><p>server only: <!>5</p></leptos-children>"), "{html}");
    assert!(!html.contains("draft"), "{html}");

    let full = render("/full");
    assert_eq!(full.props_json, r#"{"title":"Full","secret_notes":"draft"}"#);
}
