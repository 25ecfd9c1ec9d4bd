//! The page the README shows ("A page in 20 lines"), compiled here: `tests/tests/book.rs`
//! checks that the README's Rust block is this file's `page` anchor, line for line. Not
//! formatted by rustfmt (`lib.rs` skips it): the README keeps it short.

use isr::prelude::*;
use leptos::prelude::*;

/// The app's database (a stand-in: the page below only needs these two calls).
#[derive(Clone)]
pub struct Db;

impl Db {
    pub fn open() -> Db { Db }
    pub async fn post(&self, slug: &str) -> isr::Result<Option<Post>> {
        Ok((slug == "hello").then(|| Post { title: "Hello".into(), html: "<p>Hi.</p>".into() }))
    }
    pub async fn slugs(&self) -> isr::Result<Vec<PostParams>> { Ok(vec![PostParams { slug: "hello".into() }]) }
}

// ANCHOR: page
#[derive(Clone, Serialize, Deserialize)]
pub struct Post { title: String, html: String }

#[derive(Clone, Serialize, Deserialize)]
pub struct PostParams { slug: String }

#[page(path = "/blog/:slug", revalidate = 60, view = post_page, paths = all_posts,
       fallback = "blocking", tags = ["posts"])]
async fn post(Path(PostParams { slug }): Path<PostParams>, State(db): State<Db>) -> isr::Result<Load<Post>> {
    match db.post(&slug).await? {             // Err(..) → regeneration failed, old page kept
        Some(p) => Ok(Load::props(p).tag(format!("post:{slug}"))),
        None => Ok(Load::NotFound),           // → 404 from now on
    }
}

#[paths]
async fn all_posts(State(db): State<Db>) -> isr::Result<Vec<PostParams>> { db.slugs().await }

fn post_page(post: Post) -> impl IntoView {
    view! { <h1>{post.title}</h1> <article inner_html=post.html /> }
}

pub fn main() -> std::process::ExitCode { isr::App::new("blog").state(Db::open()).run() }
// ANCHOR_END: page
