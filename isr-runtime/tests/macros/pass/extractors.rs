//! Every kind of loader argument, typed params from `paths`, both kinds of view, a file route,
//! and the start-up checks seeing them all.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone)]
pub struct Db {
    name: &'static str,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Post {
    title: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct PostParams {
    year: u16,
    slug: String,
}

#[page(path = "/blog/:year/:slug", revalidate = 60, view = post_page, paths = all_posts)]
async fn post(
    Path(PostParams { year, slug }): Path<PostParams>,
    State(db): State<Db>,
) -> isr::Result<Load<Post>> {
    Ok(Load::props(Post { title: format!("{slug} ({year}) from {}", db.name) }))
}

#[paths]
async fn all_posts(State(_db): State<Db>) -> isr::Result<Vec<PostParams>> {
    Ok(vec![PostParams { year: 2026, slug: "hello".into() }])
}

fn post_page(post: Post) -> impl IntoView {
    view! { <h1>{post.title}</h1> }
}

#[component]
fn Card(post: Post) -> impl IntoView {
    view! { <p>{post.title}</p> }
}

#[page(path = "/raw/:slug", revalidate = false, view = |post| view! { <Card post /> }, fallback = "blocking")]
async fn raw(params: Params) -> isr::Result<Load<Post>> {
    Ok(Load::props(Post { title: params.get("slug")?.to_string() }))
}

#[page(path = "/robots.txt", revalidate = 3600)]
async fn robots() -> isr::Result<Load<&'static str>> {
    Ok(Load::props("User-agent: *\n"))
}

fn main() {
    let defs: Vec<_> = isr::pages().collect();
    assert_eq!(defs.len(), 3);
    let robots = defs.iter().find(|d| d.path == "/robots.txt").unwrap();
    assert_eq!(robots.content_type, Some("text/plain; charset=utf-8"));
    // Without `Db` registered, the start-up check names it (for the loader and for `paths`).
    let problems = isr::cli::check_pages(&defs, &Default::default()).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.contains("Db>` is not registered")), "{problems:?}");
    let mut state = isr::AppState::default();
    state.insert(Db { name: "db" });
    isr::cli::check_pages(&defs, &state).unwrap();
    let post = defs.iter().find(|d| d.path == "/blog/:year/:slug").unwrap();
    assert!((post.accepts)(&isr::Params::new().with("year", "2026").with("slug", "a")));
    assert!(!(post.accepts)(&isr::Params::new().with("year", "twenty").with("slug", "a")));
    // The generated loader extracts its arguments and renders the view.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let params = isr::Params::new().with("year", "2026").with("slug", "hello");
    let cx = isr::LoadContext::new(params, std::sync::Arc::new(state));
    match runtime.block_on((post.load)(cx)).unwrap() {
        isr::__private::Generated::Page(body) => {
            assert!(body.body.contains("hello (2026) from db"), "{}", body.body)
        }
        other => panic!("{other:?}"),
    }
    let listed = runtime.block_on((post.paths.unwrap())(isr::LoadContext::new(
        isr::Params::new(),
        std::sync::Arc::new({
            let mut state = isr::AppState::default();
            state.insert(Db { name: "db" });
            state
        }),
    )));
    assert_eq!(listed.unwrap(), vec![isr::Params::new().with("year", "2026").with("slug", "hello")]);
    let body = runtime.block_on((robots.load)(isr::LoadContext::new(isr::Params::new(), Default::default())));
    assert!(matches!(body.unwrap(), isr::__private::Generated::Body { bytes, .. } if bytes.as_ref() == b"User-agent: *\n"));
}
