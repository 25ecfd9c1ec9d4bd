//! The blog's pages: props, loaders (server only) and views (server and browser).

use isr::prelude::*;
use leptos::prelude::*;
use leptos_meta::Title;

/// One entry of the post list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostSummary {
    pub slug: String,
    pub title: String,
    pub date: String,
}

/// Props of `/blog`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListProps {
    pub posts: Vec<PostSummary>,
}

/// Props of `/blog/:slug`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostProps {
    pub slug: String,
    pub title: String,
    pub date: String,
    pub tags: Vec<String>,
    /// The Markdown body, rendered to HTML on the server.
    pub html: String,
}

#[page(path = "/blog", revalidate = 60, view = PostList, tags = ["posts"])]
async fn blog_index() -> isr::Result<Load<ListProps>> {
    let posts = crate::content::published_posts()
        .await?
        .into_iter()
        .map(|p| PostSummary {
            slug: p.slug,
            title: p.title,
            date: p.date,
        })
        .collect();
    Ok(Load::props(ListProps { posts }))
}

#[page(
    path = "/blog/:slug",
    revalidate = 5,
    view = PostView,
    paths = all_post_params,
    fallback = "blocking",
    tags = ["posts"]
)]
async fn post(params: Params) -> isr::Result<Load<PostProps>> {
    let slug = params.get("slug")?;
    match crate::content::read_post(slug).await? {
        Some(post) if !post.draft => Ok(Load::props(PostProps {
            slug: post.slug,
            title: post.title,
            date: post.date,
            tags: post.tags,
            html: post.html,
        })
        .tag(format!("post:{slug}"))),
        _ => Ok(Load::NotFound),
    }
}

#[cfg(feature = "ssr")]
async fn all_post_params() -> isr::Result<Vec<Params>> {
    Ok(crate::content::all_slugs()
        .await?
        .into_iter()
        .map(|slug| Params::new().with("slug", slug))
        .collect())
}

/// The page frame shared by every page.
#[component]
fn Frame(children: Children) -> impl IntoView {
    view! {
        <header class="site">
            <a href="/blog">"The ISR blog"</a>
        </header>
        <main>{children()}</main>
        <footer class="site">"Statically generated, regenerated incrementally."</footer>
    }
}

/// `/blog`: every published post, newest first.
#[component]
pub fn PostList(props: ListProps) -> impl IntoView {
    let count = props.posts.len();
    view! {
        <Title text="Blog" />
        <Frame>
            <h1>"Blog"</h1>
            <p class="count">{format!("{count} posts")}</p>
            <ul class="posts">
                {props
                    .posts
                    .into_iter()
                    .map(|post| {
                        view! {
                            <li data-slug=post.slug.clone()>
                                <a href=format!("/blog/{}", post.slug)>{post.title}</a>
                                " "
                                <time datetime=post.date.clone()>{post.date.clone()}</time>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </Frame>
    }
}

/// `/blog/:slug`: one post.
#[component]
pub fn PostView(props: PostProps) -> impl IntoView {
    view! {
        <Title text=props.title.clone() />
        <Frame>
            <article>
                <h1>{props.title}</h1>
                <p class="meta">
                    <time datetime=props.date.clone()>{props.date.clone()}</time>
                    {props
                        .tags
                        .into_iter()
                        .map(|tag| view! { " " <span class="tag">{format!("#{tag}")}</span> })
                        .collect_view()}
                </p>
                <div class="body" inner_html=props.html></div>
            </article>
            <p><a href="/blog">"← All posts"</a></p>
        </Frame>
    }
}
