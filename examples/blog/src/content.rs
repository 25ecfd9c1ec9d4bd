//! The blog's data source: Markdown files with YAML front matter in one folder.
//!
//! Every failure to read the folder or to parse a post is an error (the data source is "down"),
//! never a not-found: ISR then keeps serving the old page.
//!
//! Errors name a post by its file name in the folder ([`post_file_name`]) and the folder as "the
//! content folder", never by an absolute path: they are logged and answered to the revalidation
//! webhook, and the server's file system layout is none of a caller's business.

use crate::pages::TocEntry;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Env var naming the content folder.
pub const CONTENT_DIR_ENV: &str = "BLOG_CONTENT_DIR";

/// A parsed post.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub slug: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub tags: Vec<String>,
    pub draft: bool,
    /// From when the post is public (`publish_at`, RFC 3339); `None`: at once.
    pub publish_at: Option<SystemTime>,
    /// The body rendered to HTML (headings carry `id`s).
    pub html: String,
    /// The headings, for a table of contents.
    pub toc: Vec<TocEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    date: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    draft: bool,
    /// `2026-12-24T09:00:00Z`: the post is a 404 and missing from the list, feed and sitemap
    /// until then.
    #[serde(default)]
    publish_at: Option<String>,
}

impl Post {
    /// Whether the public site shows the post at `now`: not a draft, and its `publish_at` (if
    /// any) has come.
    pub fn is_public_at(&self, now: SystemTime) -> bool {
        !self.draft && self.publish_at.is_none_or(|at| at <= now)
    }
}

/// The posts public at a moment, newest first, and when the next scheduled one goes public:
/// until then the list is what it is (its page is valid until that time).
#[derive(Debug, Default)]
pub struct Publication {
    pub posts: Vec<Post>,
    pub next_at: Option<SystemTime>,
}

/// The blog's posts: a folder of Markdown files. Registered as app state
/// (`App::state(Content::from_env())`), so loaders take it as `State<Content>`.
///
/// ```
/// let content = blog::content::Content::at("/srv/posts");
/// assert_eq!(content.dir(), std::path::Path::new("/srv/posts"));
/// ```
#[derive(Clone, Debug)]
pub struct Content {
    dir: Arc<PathBuf>,
}

impl Content {
    /// The folder `BLOG_CONTENT_DIR` names, else this example's own `content/` (found whatever
    /// the working directory is).
    pub fn from_env() -> Self {
        Content::at(
            std::env::var_os(CONTENT_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content")),
        )
    }

    /// The posts in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Content {
            dir: Arc::new(dir.into()),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Slugs of every `*.md` file (drafts and unparsable posts included: their loader decides;
    /// a file name with a `?` is skipped and logged: no URL path can hold one).
    pub async fn all_slugs(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_slugs(&dir)).await?
    }

    /// One post, `None` when no file has that slug. Drafts are returned with `draft: true`.
    pub async fn read_post(&self, slug: &str) -> anyhow::Result<Option<Post>> {
        let dir = self.dir.clone();
        let slug = slug.to_string();
        tokio::task::spawn_blocking(move || read_post_in(&dir, &slug)).await?
    }

    /// Every post public now, newest first (ties by slug); unparsable posts are skipped and
    /// logged.
    pub async fn published_posts(&self) -> anyhow::Result<Vec<Post>> {
        Ok(self.publication(SystemTime::now()).await?.posts)
    }

    /// The posts public at `now`, newest first (ties by slug), and the next `publish_at` after
    /// `now` of a post that is not a draft; unparsable posts are skipped and logged.
    pub async fn publication(&self, now: SystemTime) -> anyhow::Result<Publication> {
        self.posts_seen_by(now, Reader::Public).await
    }

    /// What `reader` sees at `now`: the public posts, or for an editor's preview every post
    /// (drafts and scheduled ones too, with nothing scheduled: a preview is never kept); newest
    /// first (ties by slug), unparsable posts skipped and logged.
    pub async fn posts_seen_by(
        &self,
        now: SystemTime,
        reader: Reader,
    ) -> anyhow::Result<Publication> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut posts = Vec::new();
            let mut next_at: Option<SystemTime> = None;
            for slug in list_slugs(&dir)? {
                match read_post_in(&dir, &slug) {
                    Ok(Some(post)) if reader == Reader::Editor || post.is_public_at(now) => {
                        posts.push(post)
                    }
                    // Not a draft, not public yet: scheduled.
                    Ok(Some(Post {
                        draft: false,
                        publish_at: Some(at),
                        ..
                    })) => next_at = Some(next_at.map_or(at, |next| next.min(at))),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(path = %format!("/blog/{slug}"), error = %format!("{error:#}"), "post skipped in the list")
                    }
                }
            }
            posts.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.slug.cmp(&b.slug)));
            Ok(Publication { posts, next_at })
        })
        .await?
    }
}

/// Who reads the posts: the public, or an editor in a preview (`isr::Preview`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Public posts only.
    Public,
    /// Every post: drafts and scheduled posts too.
    Editor,
}

impl Reader {
    /// The reader of a page rendered with `Preview(preview)`.
    pub fn of_preview(preview: bool) -> Self {
        if preview {
            Reader::Editor
        } else {
            Reader::Public
        }
    }
}

impl Post {
    /// What an editor's preview says of a post the public does not see at `now`: `draft`,
    /// `scheduled`; `None` for a public post.
    pub fn unpublished_at(&self, now: SystemTime) -> Option<&'static str> {
        if self.draft {
            Some("draft")
        } else if !self.is_public_at(now) {
            Some("scheduled")
        } else {
            None
        }
    }
}

fn list_slugs(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the content folder ({CONTENT_DIR_ENV})"))?;
    let mut slugs = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list the content folder ({CONTENT_DIR_ENV})"))?
            .path();
        if path.extension().is_some_and(|e| e == "md") && path.is_file() {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                if stem.contains('?') {
                    // A page path never holds a `?` (it would start a query): no post's URL.
                    tracing::warn!(file = %path.display(), "post skipped: a `?` in its file name cannot be part of its URL; rename the file");
                } else if !stem.is_empty() && !stem.starts_with('.') {
                    slugs.push(stem.to_string());
                }
            }
        }
    }
    slugs.sort();
    Ok(slugs)
}

fn read_post_in(dir: &Path, slug: &str) -> anyhow::Result<Option<Post>> {
    // A missing folder is the data source being down, not a missing post.
    if !dir.is_dir() {
        bail!("the content folder ({CONTENT_DIR_ENV}) is missing");
    }
    let file_name = post_file_name(slug);
    let path = dir.join(&file_name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // No such post: no file, or a slug no file could have (too long for the file system).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidFilename
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {file_name}")),
    };
    parse_post(slug, &text).context(file_name).map(Some)
}

/// The file of the post `slug`, relative to the content folder: what errors name it by.
///
/// ```
/// assert_eq!(blog::content::post_file_name("hello"), "hello.md");
/// ```
pub fn post_file_name(slug: &str) -> String {
    format!("{slug}.md")
}

/// Parses `---\n<yaml>\n---\n<markdown>`.
pub fn parse_post(slug: &str, text: &str) -> anyhow::Result<Post> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        bail!("front matter missing: the file must start with a `---` line");
    };
    let end = rest
        .find("\n---")
        .context("front matter is not closed by a `---` line")?;
    let yaml = &rest[..end];
    let body = rest[end + 4..]
        .trim_start_matches(['-', '\r'])
        .trim_start_matches('\n');
    let front: FrontMatter =
        serde_yaml_ng::from_str(yaml).context("front matter does not parse")?;
    if front.title.trim().is_empty() {
        bail!("front matter: `title` is empty");
    }
    check_date(&front.date)?;
    let publish_at = front
        .publish_at
        .as_deref()
        .map(|at| {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .map(SystemTime::from)
                .with_context(|| {
                    format!("front matter: `publish_at` must be RFC 3339 (2026-12-24T09:00:00Z), got {at:?}")
                })
        })
        .transpose()?;
    let (html, toc) = markdown_to_html(body);
    Ok(Post {
        slug: slug.to_string(),
        title: front.title,
        date: front.date,
        tags: front.tags,
        draft: front.draft,
        publish_at,
        html,
        toc,
    })
}

fn check_date(date: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = date.split('-').collect();
    let valid = parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && (1..=12).contains(&parts[1].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&parts[2].parse::<u32>().unwrap_or(0));
    if !valid {
        bail!("front matter: `date` must be YYYY-MM-DD, got {date:?}");
    }
    Ok(())
}

/// Renders Markdown, giving every heading an `id` (its own `{#id}` or a slug of its text) and
/// listing the headings.
fn markdown_to_html(markdown: &str) -> (String, Vec<TocEntry>) {
    use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut events: Vec<Event> = Parser::new_ext(markdown, options).collect();
    let mut toc: Vec<TocEntry> = Vec::new();
    for start in 0..events.len() {
        let Event::Start(Tag::Heading { level, id, .. }) = &events[start] else {
            continue;
        };
        let (level, explicit_id) = (*level as u8, id.clone());
        let text: String = events[start + 1..]
            .iter()
            .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect();
        let base = explicit_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| slugify(&text));
        let mut anchor = base.clone();
        let mut n = 1;
        while toc.iter().any(|entry| entry.id == anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        if let Event::Start(Tag::Heading { id, .. }) = &mut events[start] {
            *id = Some(anchor.clone().into());
        }
        toc.push(TocEntry {
            level,
            id: anchor,
            text,
        });
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    (out, toc)
}

fn slugify(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "section".into()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_at_schedules_a_post_and_a_bad_one_names_the_field() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_893_488_400);
        let post = parse_post(
            "later",
            "---\ntitle: Later\ndate: 2030-01-01\npublish_at: 2030-01-01T09:00:00Z\n---\nSoon.\n",
        )
        .unwrap();
        assert_eq!(post.publish_at, Some(at));
        assert!(!post.is_public_at(at - std::time::Duration::from_millis(1)));
        assert!(post.is_public_at(at));
        let draft = Post {
            draft: true,
            ..post
        };
        assert!(!draft.is_public_at(at));
        let error = parse_post(
            "bad",
            "---\ntitle: Bad\ndate: 2030-01-01\npublish_at: tomorrow\n---\n",
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("`publish_at` must be RFC 3339"),
            "{error:#}"
        );
    }

    #[tokio::test]
    async fn a_publication_lists_public_posts_and_the_next_scheduled_one() {
        let dir = tempfile::tempdir().unwrap();
        let post = |slug: &str, extra: &str| {
            std::fs::write(
                dir.path().join(format!("{slug}.md")),
                format!("---\ntitle: {slug}\ndate: 2026-01-01\n{extra}---\nText.\n"),
            )
            .unwrap();
        };
        post("now", "");
        post("soon", "publish_at: 2030-01-01T09:00:00Z\n");
        post("later", "publish_at: 2031-01-01T09:00:00Z\n");
        post("hidden", "draft: true\npublish_at: 2029-01-01T09:00:00Z\n");
        let content = Content::at(dir.path());
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let publication = content.publication(now).await.unwrap();
        let slugs: Vec<_> = publication.posts.iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(slugs, ["now"]);
        let soon = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_893_488_400);
        assert_eq!(publication.next_at, Some(soon), "a draft schedules nothing");
        let then = content.publication(soon).await.unwrap();
        assert_eq!(then.posts.len(), 2);
        assert!(then.next_at > Some(soon));
    }

    #[test]
    fn parses_front_matter_and_markdown() {
        let post = parse_post(
            "hello",
            "---\ntitle: Hello\ndate: 2026-01-02\ntags: [a, b]\n---\n# Hi\n\nSome *text*.\n",
        )
        .unwrap();
        assert_eq!(post.title, "Hello");
        assert_eq!(post.date, "2026-01-02");
        assert_eq!(post.tags, ["a", "b"]);
        assert!(!post.draft);
        assert!(post.html.contains("<h1 id=\"hi\">Hi</h1>"), "{}", post.html);
        assert_eq!(
            post.toc,
            [TocEntry {
                level: 1,
                id: "hi".into(),
                text: "Hi".into()
            }]
        );
        assert!(post.html.contains("<em>text</em>"));
    }

    #[test]
    fn rejects_bad_front_matter() {
        for bad in [
            "no front matter",
            "---\ntitle: x\n",
            "---\ntitle: [unclosed\ndate: 2026-01-01\n---\n",
            "---\ntitle: x\ndate: 01/02/2026\n---\n",
            "---\ntitle: x\ndate: 2026-13-01\n---\n",
            "---\ndate: 2026-01-01\n---\n",
            "---\ntitle: x\ndate: 2026-01-01\nextra: 1\n---\n",
        ] {
            assert!(parse_post("s", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_folder_is_an_error_and_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_post_in(dir.path(), "nope").unwrap().is_none());
        assert!(read_post_in(&dir.path().join("gone"), "nope").is_err());
        assert!(list_slugs(&dir.path().join("gone")).is_err());
    }

    #[test]
    fn errors_name_files_relative_to_the_content_folder() {
        let dir = tempfile::tempdir().unwrap();
        let absolute = dir.path().to_str().unwrap();
        std::fs::write(dir.path().join("broken.md"), "no front matter").unwrap();
        std::fs::create_dir(dir.path().join("folder.md")).unwrap();
        fn message<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
            format!("{:#}", result.unwrap_err())
        }

        let broken = message(read_post_in(dir.path(), "broken"));
        assert!(
            broken.starts_with("broken.md: front matter missing"),
            "{broken}"
        );
        let unreadable = message(read_post_in(dir.path(), "folder"));
        assert!(
            unreadable.starts_with("cannot read folder.md: "),
            "{unreadable}"
        );
        let gone = dir.path().join("gone");
        let missing = message(read_post_in(&gone, "hello"));
        assert_eq!(missing, "the content folder (BLOG_CONTENT_DIR) is missing");
        let unlisted = message(list_slugs(&gone));
        assert!(
            unlisted.starts_with("cannot read the content folder (BLOG_CONTENT_DIR): "),
            "{unlisted}"
        );
        for text in [broken, unreadable, missing, unlisted] {
            assert!(!text.contains(absolute), "{text}");
        }
    }
}

#[cfg(test)]
mod toc_tests {
    use super::*;

    #[test]
    fn headings_get_unique_ids() {
        let (html, toc) = markdown_to_html("## Why ISR?\n\n## Why ISR?\n\n### Custom {#mine}\n");
        let ids: Vec<&str> = toc.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["why-isr", "why-isr-2", "mine"]);
        assert!(html.contains("<h2 id=\"why-isr-2\">"));
        assert_eq!(toc[2].level, 3);
    }
}
