//! An app-wide layout and a prefix layout: pages render inside the layouts that cover their
//! path, outermost first; file routes get none.

use isr::prelude::*;
use leptos::prelude::*;

#[layout]
fn site(children: Children) -> impl IntoView {
    view! { <div class="site">{children()}</div> }
}

#[isr::layout(prefix = "/blog")]
fn blog(children: Children) -> impl IntoView {
    view! { <section class="blog">{children()}</section> }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    title: String,
}

fn show(props: Props) -> impl IntoView {
    view! { <h1>{props.title}</h1> }
}

#[page(path = "/blog/:slug", revalidate = 60, view = show, fallback = "blocking")]
async fn post(params: Params) -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: params.get("slug")?.to_string() }))
}

#[page(path = "/about", revalidate = 60, view = show)]
async fn about() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { title: "about".into() }))
}

#[page(path = "/blog/feed.xml", revalidate = 60)]
async fn feed() -> isr::Result<Load<&'static str>> {
    Ok(Load::props("<rss/>"))
}

fn body(path: &str, params: isr::Params) -> String {
    let def = isr::pages().find(|d| d.path == path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = if path == "/blog/:slug" { "/blog/hello" } else { path };
    let cx = isr::LoadContext::new(params, Default::default()).at(url);
    match runtime.block_on((def.load)(cx)).unwrap() {
        isr::__private::Generated::Page(body) => body.body,
        isr::__private::Generated::Body { bytes, .. } => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn main() {
    assert_eq!(isr::layout::prefixes(), ["/", "/blog"]);
    isr::layout::check().unwrap();
    let post = body("/blog/:slug", isr::Params::new().with("slug", "hello"));
    assert!(
        post.contains(r#"<div class="site"><section class="blog"><h1>hello</h1></section></div>"#),
        "{post}"
    );
    let about = body("/about", isr::Params::new());
    assert!(about.contains(r#"<div class="site"><h1>about</h1></div>"#), "{about}");
    assert_eq!(body("/blog/feed.xml", isr::Params::new()), "<rss/>");
}
