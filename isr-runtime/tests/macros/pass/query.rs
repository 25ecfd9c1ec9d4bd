//! `query = [...]`: the listed parameters name variants, read by `Query<T>` (defaults left out
//! of the key), bounded by `max_variants`, in the sitemap with `sitemap_variants`; the
//! start-up checks refuse a `Query<T>` field the route does not list.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct List {
    text: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default = "first")]
    page: u32,
    tag: Option<String>,
}

fn first() -> u32 {
    1
}

#[page(
    path = "/blog",
    revalidate = 60,
    view = list_page,
    query = ["page", "tag"],
    max_variants = 500,
    sitemap_variants = true
)]
async fn list(Query(q): Query<ListQuery>) -> isr::Result<Load<List>> {
    Ok(Load::props(List { text: format!("page {} tag {:?}", q.page, q.tag) }))
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Sort {
    sort: String,
}

#[page(path = "/products", revalidate = 60, view = list_page, query = ["sort"])]
async fn products(Query(sort): Query<Sort>, _params: Params) -> isr::Result<Load<List>> {
    Ok(Load::props(List { text: sort.sort }))
}

fn list_page(list: List) -> impl IntoView {
    view! { <p>{list.text}</p> }
}

fn main() {
    let defs: Vec<_> = isr::pages().collect();
    let list = defs.iter().find(|d| d.path == "/blog").unwrap();
    assert_eq!(list.query.names, ["page", "tag"]);
    assert_eq!(list.query.max_variants, 500);
    assert!(list.query.in_sitemap);
    let canonical = |query: isr::Params| (list.query.canonical)(query);
    assert_eq!(canonical(isr::Params::new().with("page", "1")), Some(isr::Params::new()));
    assert_eq!(canonical(isr::Params::new().with("page", "07")), Some(isr::Params::new().with("page", "7")));
    assert_eq!(canonical(isr::Params::new().with("page", "x")), None);
    let products = defs.iter().find(|d| d.path == "/products").unwrap();
    assert_eq!(products.query.max_variants, isr::DEFAULT_MAX_VARIANTS);
    assert!(!products.query.in_sitemap);
    // `Sort` has no default: without `?sort=` the page itself names nothing.
    assert_eq!((products.query.canonical)(isr::Params::new()), None);
    let routes = isr::Routes::new(defs.clone()).unwrap();
    match routes.resolve_request("/blog", Some("tag=rust&page=2&utm_source=x")) {
        isr::Resolved::Page { key, .. } => assert_eq!(key.as_str(), "/blog?page=2&tag=rust"),
        other => panic!("{other:?}"),
    }
    isr::cli::check_pages(&defs, &Default::default()).unwrap();
    // A field the route does not list, or a route that lists none, is reported at start.
    #[derive(Serialize, Deserialize)]
    struct Wrong {
        order: String,
    }
    let state = isr::AppState::default();
    let check = |query| isr::context::Check { route: "/products", params: &[], query, state: &state, in_paths: false };
    use isr::FromContext;
    let error = isr::Query::<Wrong>::check(&check(&["sort"])).unwrap_err();
    assert!(error.contains("field `order`") && error.contains("it lists: sort"), "{error}");
    let error = isr::Query::<Sort>::check(&check(&[])).unwrap_err();
    assert!(error.contains("lists no parameters"), "{error}");
    // The generated loader reads the variant's query.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cx = isr::LoadContext::new(isr::Params::new(), Default::default())
        .with_query(isr::Params::new().with("page", "3"));
    match runtime.block_on((list.load)(cx)).unwrap() {
        isr::__private::Generated::Page(body) => {
            assert!(body.body.contains("page 3 tag None"), "{}", body.body)
        }
        other => panic!("{other:?}"),
    }
}
