//! The blog's pages: props, loaders (server only) and views (server and browser).
//!
//! The views are ordinary leptos components, rendered to static HTML by the build and by
//! regenerations. The pages hydrate in leptos's islands mode (`hydrate = "islands"`): only the
//! like button and the list filter are `#[island]`s, so only their code is in the client bundle
//! and only their props are in the page; the rest (the post's body, its folded table of
//! contents, the layout) stays static HTML.

// ANCHOR: imports
#[cfg(feature = "ssr")]
use crate::content::{Content, Reader};
use isr::prelude::*;
use leptos::prelude::*;
use leptos_meta::{Link, Meta, Stylesheet, Title};
use leptos_router::components::A;
// ANCHOR_END: imports

/// One entry of the post list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostSummary {
    pub slug: String,
    pub title: String,
    pub date: String,
    /// In an editor's preview, why the public does not see the post (`draft`, `scheduled`);
    /// never set on the public site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpublished: Option<String>,
}

/// Props of `/blog` and its variants (`/blog?page=2`, `/blog?tag=isr`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListProps {
    /// The posts of this page of the list.
    pub posts: Vec<PostSummary>,
    /// This page's number (from 1) and how many there are.
    pub page: u32,
    pub pages: u32,
    /// The tag the list is narrowed to (`?tag=`), if any.
    pub tag: Option<String>,
}

/// Posts on one page of the list.
pub const POSTS_PER_PAGE: usize = 10;

// ANCHOR: list_query
/// The list's query (`query = ["page", "tag"]`): `?page=` from 1 (the default, so `/blog` and
/// `/blog?page=1` are one page), `?tag=` narrows it to the posts with that tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default = "first_page")]
    pub page: u32,
    pub tag: Option<String>,
}

fn first_page() -> u32 {
    1
}
// ANCHOR_END: list_query

/// The link to one page of the list (the first page without `?page=`).
pub fn list_link(page: u32, tag: Option<&str>) -> String {
    let mut query = Vec::new();
    if page > 1 {
        query.push(format!("page={page}"));
    }
    if let Some(tag) = tag {
        query.push(format!("tag={}", encode(tag)));
    }
    match query.is_empty() {
        true => "/blog".to_owned(),
        false => format!("/blog?{}", query.join("&")),
    }
}

/// `text` percent-encoded as isr writes a canonical query value (all but letters, digits and
/// `-._~`), so a link is the canonical URL (no redirect).
fn encode(text: &str) -> String {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, VALUE).to_string()
}

/// A heading of a post, for its table of contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    /// 1 for `#`, 2 for `##`, …
    pub level: u8,
    /// The heading's `id` (anchor).
    pub id: String,
    pub text: String,
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
    pub toc: Vec<TocEntry>,
    /// In an editor's preview, why the public does not see the post (`draft`, `scheduled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpublished: Option<String>,
}

// ANCHOR: post_params
/// The params of `/blog/:slug`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostParams {
    pub slug: String,
}
// ANCHOR_END: post_params

// ANCHOR: blog_index
/// `/blog`: the public posts, newest first, ten a page (`?page=2`), or those with one tag
/// (`?tag=isr`): each variant is a page of its own, stored and revalidated like `/blog`, and a
/// page number past the last, or a tag no post has, is a 404. Valid until the next scheduled
/// post goes public (`publish_at`): then the next request waits for the list with it, and no
/// cache keeps the old list longer. In an editor's preview, drafts and scheduled posts too,
/// each labelled.
#[page(
    path = "/blog",
    revalidate = 60,
    view = post_list,
    hydrate = "islands",
    tags = ["posts"],
    query = ["page", "tag"],
    max_variants = 200
)]
async fn blog_index(
    State(content): State<Content>,
    Query(ListQuery { page, tag }): Query<ListQuery>,
    Preview(preview): Preview,
) -> isr::Result<Load<ListProps>> {
    let now = std::time::SystemTime::now();
    let publication = content
        .posts_seen_by(now, Reader::of_preview(preview))
        .await?;
    let tagged: Vec<_> = publication
        .posts
        .into_iter()
        .filter(|post| tag.as_ref().is_none_or(|tag| post.tags.contains(tag)))
        .collect();
    let pages = tagged.len().div_ceil(POSTS_PER_PAGE).max(1) as u32;
    if page == 0 || page > pages || (tag.is_some() && tagged.is_empty()) {
        return Ok(Load::NotFound);
    }
    let posts = tagged
        .into_iter()
        .skip((page as usize - 1) * POSTS_PER_PAGE)
        .take(POSTS_PER_PAGE)
        .map(|p| PostSummary {
            unpublished: p.unpublished_at(now).map(str::to_owned),
            slug: p.slug,
            title: p.title,
            date: p.date,
        })
        .collect();
    let list = Load::props(ListProps {
        posts,
        page,
        pages,
        tag,
    });
    Ok(match publication.next_at {
        Some(at) => list.valid_until(at),
        None => list,
    })
}
// ANCHOR_END: blog_index

// ANCHOR: post_loader
#[page(
    path = "/blog/:slug",
    revalidate = 5,
    view = post_page,
    hydrate = "islands",
    paths = all_posts,
    fallback = "blocking",
    tags = ["posts"]
)]
async fn post(
    Path(PostParams { slug }): Path<PostParams>,
    State(content): State<Content>,
    Preview(preview): Preview,
) -> isr::Result<Load<PostProps>> {
    let now = std::time::SystemTime::now();
    match content.read_post(&slug).await? {
        // An editor's preview shows every post, drafts and scheduled ones included.
        Some(post) if preview || post.is_public_at(now) => Ok(Load::props(PostProps {
            unpublished: post.unpublished_at(now).map(str::to_owned),
            slug: post.slug,
            title: post.title,
            date: post.date,
            tags: post.tags,
            html: post.html,
            toc: post.toc,
        })
        .tag(format!("post:{slug}"))),
        // Scheduled: a 404 until it goes public, then generated on the next request.
        Some(crate::content::Post {
            draft: false,
            publish_at: Some(at),
            ..
        }) => Ok(Load::not_yet(at)),
        _ => Ok(Load::NotFound),
    }
}
// ANCHOR_END: post_loader

// ANCHOR: all_posts
#[paths]
async fn all_posts(State(content): State<Content>) -> isr::Result<Vec<PostParams>> {
    Ok(content
        .all_slugs()
        .await?
        .into_iter()
        .map(|slug| PostParams { slug })
        .collect())
}
// ANCHOR_END: all_posts

// ANCHOR: feed
/// `/blog/feed.xml`: the newest posts as RSS 2.0, regenerated with the list (tag `posts`).
#[page(
    path = "/blog/feed.xml",
    revalidate = 60,
    content_type = "application/rss+xml; charset=utf-8",
    tags = ["posts"]
)]
async fn feed(
    State(content): State<Content>,
    State(site): State<isr::SiteUrl>,
) -> isr::Result<Load<String>> {
    let publication = content.publication(std::time::SystemTime::now()).await?;
    let feed = Load::props(crate::feed::rss(site.as_str(), &publication.posts));
    Ok(match publication.next_at {
        Some(at) => feed.valid_until(at),
        None => feed,
    })
}
// ANCHOR_END: feed

// ANCHOR: layouts
/// The frame of every page of the site, its 404 and 503 pages included: isr renders each page
/// inside it, so views are only their content. On the server only: the pages are islands pages
/// and the bundle holds no layout (`isr/islands`).
#[isr::layout]
fn site_layout(children: Children) -> impl IntoView {
    view! {
        <Stylesheet href=isr::asset!("style.css") />
        <header class="site">
            <A href="/blog" exact=true>"The ISR blog"</A>
        </header>
        <main>{children()}</main>
        <footer class="site">"Statically generated, regenerated incrementally."</footer>
    }
}

/// Inside the site's frame, for the pages at `/blog` and under it: the feed, announced to
/// readers and browsers.
#[isr::layout(prefix = "/blog")]
fn blog_layout(children: Children) -> impl IntoView {
    view! {
        <Link rel="alternate" type_="application/rss+xml" title="The ISR blog" href="/blog/feed.xml" />
        {children()}
        <p class="subscribe"><a href="/blog/feed.xml">"Subscribe (RSS)"</a></p>
    }
}
// ANCHOR_END: layouts

/// `/blog`: one page of the published posts, newest first, with a filter box (works once
/// hydrated) and, when there are more, links to the newer and older ones.
pub fn post_list(props: ListProps) -> impl IntoView {
    let (page, pages) = (props.page, props.pages);
    let heading = match &props.tag {
        Some(tag) => format!("Posts tagged #{tag}"),
        None => "Blog".to_owned(),
    };
    let title = match page {
        1 => heading.clone(),
        _ => format!("{heading}, page {page} of {pages}"),
    };
    let newer = (page > 1).then(|| list_link(page - 1, props.tag.as_deref()));
    let older = (page < pages).then(|| list_link(page + 1, props.tag.as_deref()));
    view! {
        <Title text=title />
        <Meta name="description" content="The ISR blog: posts on Incremental Static Regeneration with leptos and axum." />
        <h1>{heading}</h1>
        {props.tag.is_some().then(|| view! { <p><a href="/blog">"All posts"</a></p> })}
        <PostFilter posts=props.posts />
        {(pages > 1).then(|| view! {
            <nav class="pager" aria-label="Pages">
                {newer.map(|href| view! { <a rel="prev" href=href>"← Newer"</a> " " })}
                <span>{format!("Page {page} of {pages}")}</span>
                {older.map(|href| view! { " " <a rel="next" href=href>"Older →"</a> })}
            </nav>
        })}
    }
}

/// The filter box and the posts it matches: an island, hydrated with the post summaries as
/// its props. Its links are plain `<a>`s: islands have no router (each page is a document).
#[island]
fn PostFilter(posts: Vec<PostSummary>) -> impl IntoView {
    let query = RwSignal::new(String::new());
    let total = posts.len();
    let matching = move |post: &PostSummary| {
        let query = query.get();
        query.is_empty() || lowercase(&post.title).contains(lowercase(&query).trim())
    };
    let shown = {
        let posts = posts.clone();
        move || posts.iter().filter(|p| matching(p)).count()
    };
    view! {
        <input
            type="search"
            class="filter"
            placeholder="Filter posts by title"
            aria-label="Filter posts by title"
            prop:value=query
            on:input=move |event| query.set(event_target_value(&event))
        />
        <p class="count">{move || format!("{} of {total} posts", shown())}</p>
        <ul class="posts">
            {move || {
                posts
                    .iter()
                    .filter(|p| matching(p))
                    .map(|post| {
                        let title = post.title.clone();
                        let unpublished = post
                            .unpublished
                            .clone()
                            .map(|label| view! { " " <span class="unpublished">{label}</span> });
                        view! {
                            <li data-slug=post.slug.clone()>
                                <a href=format!("/blog/{}", post.slug)>{title}</a>
                                " "
                                <time datetime=post.date.clone()>{post.date.clone()}</time>
                                {unpublished}
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

// ANCHOR: post_page
/// `/blog/:slug`: one post, with a like button (an island) and a folded table of contents.
pub fn post_page(props: PostProps) -> impl IntoView {
    let description = format!("{}, posted {} on the ISR blog.", props.title, props.date);
    view! {
        <Title text=props.title.clone() />
        <Meta name="description" content=description />
        <article>
            <h1>{props.title}</h1>
            {props.unpublished.map(|label| view! { <p class="unpublished">{format!("Not public: {label}")}</p> })}
            <p class="meta">
                <time datetime=props.date.clone()>{props.date.clone()}</time>
                {props
                    .tags
                    .into_iter()
                    .map(|tag| {
                        let href = list_link(1, Some(&tag));
                        view! { " " <a class="tag" href=href>{format!("#{tag}")}</a> }
                    })
                    .collect_view()}
            </p>
            // A <div>, not a <p>: the browser would close a <p> before the <nav> inside it,
            // and hydration would then find another DOM than the server rendered.
            <div class="actions">
                <LikeButton slug=props.slug.clone() />
                <TableOfContents entries=props.toc />
            </div>
            <div class="body" inner_html=props.html></div>
        </article>
        <p>
            <A href="/blog" exact=true>"← All posts"</A>
        </p>
    }
}
// ANCHOR_END: post_page

/// The blog's 404 page (`App::not_found_page`), rendered inside the layouts of the path asked for.
pub fn not_found_page() -> impl IntoView {
    view! {
        <Title text="Not found — the ISR blog" />
        <h1>"No such page"</h1>
        <p class="not-found">"This page does not exist, or no longer does."</p>
        <p>
            <A href="/blog" exact=true>"← All posts"</A>
        </p>
    }
}

// ANCHOR: server_fns
/// Adds a like to a published post and answers its new count (kept on the server, see
/// `crate::likes`). A server function: the browser calls it at `POST /api/like_post`.
#[server(endpoint = "like_post")]
pub async fn like_post(slug: String) -> Result<u64, ServerFnError> {
    let content: Content = isr::server_state()?;
    let likes: crate::likes::Likes = isr::server_state()?;
    let failed = |error: anyhow::Error| ServerFnError::new(format!("{error:#}"));
    // Only a published post, named exactly as its file: a made-up slug (or another spelling of
    // a real one, `./x`) never reaches the disk or adds an entry.
    let published = content.all_slugs().await.map_err(failed)?.contains(&slug)
        && matches!(content.read_post(&slug).await.map_err(failed)?,
            Some(post) if post.is_public_at(std::time::SystemTime::now()));
    if !published {
        isr::set_server_fn_status(isr::axum::http::StatusCode::NOT_FOUND);
        return Err(ServerFnError::new(format!("no post `{slug}`")));
    }
    likes
        .add(&slug)
        .await
        .map_err(|error| ServerFnError::new(format!("{error:#}")))
}

/// The likes a post has (`POST /api/post_likes`): what the button shows once hydrated (the
/// static page was rendered before most of them).
#[server(endpoint = "post_likes")]
pub async fn post_likes(slug: String) -> Result<u64, ServerFnError> {
    let likes: crate::likes::Likes = isr::server_state()?;
    Ok(likes.get(&slug).await)
}
// ANCHOR_END: server_fns

/// `text` in lower case by the browser's own Unicode rules: Rust's `str::to_lowercase` would add
/// its case tables to the client bundle (7 KB of its 100, brotli). The server never lowercases:
/// the filter box starts empty.
fn lowercase(text: &str) -> String {
    #[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
    return js_sys::JsString::from(text).to_lower_case().into();
    #[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
    text.to_lowercase()
}

// ANCHOR: like_button
/// The like button (an island): once hydrated it shows the post's stored count, and a click
/// adds one on the server (shown at once, then the server's count).
#[island]
fn LikeButton(slug: String) -> impl IntoView {
    let likes = RwSignal::new(0u64);
    // Effects run in the browser only: after hydration, read the stored count.
    let stored = slug.clone();
    Effect::new(move |_| {
        let slug = stored.clone();
        leptos::task::spawn_local(async move {
            if let Ok(count) = post_likes(slug).await {
                likes.update(|n| *n = (*n).max(count));
            }
        });
    });
    let like = Action::new(move |slug: &String| like_post(slug.clone()));
    Effect::new(move |_| {
        if let Some(Ok(count)) = like.value().get() {
            likes.update(|n| *n = (*n).max(count));
        }
    });
    view! {
        <button
            class="like"
            on:click=move |_| {
                likes.update(|n| *n += 1);
                like.dispatch(slug.clone());
            }
        >
            "👍 like " <span class="likes">{move || likes.get()}</span>
        </button>
    }
}
// ANCHOR_END: like_button

/// The post's headings as links, folded: a `<details>` element opens and closes them without
/// any code (an island would add 5 KB to the bundle, brotli, for what the browser does).
#[component]
fn TableOfContents(entries: Vec<TocEntry>) -> impl IntoView {
    (!entries.is_empty()).then(|| {
        view! {
            <details class="toc">
                <summary>"Contents"</summary>
                <nav>
                    <ul>
                        {entries
                            .into_iter()
                            .map(|entry| {
                                view! {
                                    <li class=format!("level-{}", entry.level)>
                                        <a href=format!("#{}", entry.id)>{entry.text}</a>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                </nav>
            </details>
        }
    })
}
