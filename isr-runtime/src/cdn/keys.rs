//! The keys a page's answers carry for the CDNs (`surrogate-key`, `cache-tag`,
//! `edge-cache-tag`) and the same keys in purges: one function for both, so that a purge
//! names exactly what the CDN indexed.
//!
//! A page carries its tags (route and loader tags) and its URL path, in that order. Within a
//! [`TagBudget`] (the strictest limits of the CDNs configured): a tag longer than the budget's
//! tag length is replaced by a hash of it (`isr-h-` and 16 hex digits), and tags past the
//! budget's count or header bytes are left out of the headers. The path is always kept, so a
//! purge of a left-out tag still reaches the page: by its path (see [`purge_keys`]).

use crate::engine::{Change, ChangedPage};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// The limits on the keys one page carries.
///
/// ```
/// use isr::cdn::TagBudget;
/// let budget = TagBudget::DEFAULT;
/// assert!(budget.tags_per_object >= 2 && budget.header_bytes >= 1_000);
/// let strict = budget.min(TagBudget { tags_per_object: 3, header_bytes: 20_000, tag_bytes: 64 });
/// assert_eq!(strict.tags_per_object, 3);
/// assert_eq!(strict.header_bytes, budget.header_bytes);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TagBudget {
    /// Keys per object, the path included.
    pub tags_per_object: usize,
    /// Bytes of the header holding them (separators included).
    pub header_bytes: usize,
    /// Bytes of one key; a longer tag is hashed.
    pub tag_bytes: usize,
}

impl TagBudget {
    /// Within every supported CDN's limits: Akamai's 128 tags of at most 128 bytes per object,
    /// and 8,000 header bytes (Varnish's default `http_resp_hdr_len` is 8 KiB; Fastly's and
    /// Cloudflare's limits are 16 KiB).
    pub const DEFAULT: TagBudget = TagBudget {
        tags_per_object: 128,
        header_bytes: 8_000,
        tag_bytes: 128,
    };

    /// The stricter of each limit.
    pub fn min(self, other: TagBudget) -> TagBudget {
        TagBudget {
            tags_per_object: self.tags_per_object.min(other.tags_per_object),
            header_bytes: self.header_bytes.min(other.header_bytes),
            tag_bytes: self.tag_bytes.min(other.tag_bytes),
        }
    }
}

impl Default for TagBudget {
    fn default() -> Self {
        TagBudget::DEFAULT
    }
}

/// A tag as the CDNs see it: every byte but letters, digits and ``!#$'+./^_`|~-`` (the
/// characters Akamai's cache tags allow, the narrowest set of the supported CDNs, besides the
/// `%` of the escapes) percent-encoded, and hashed
/// when that is longer than the budget's tag length.
///
/// ```
/// use isr::cdn::{tag_key, TagBudget};
/// assert_eq!(tag_key("post:hello world", TagBudget::DEFAULT), "post%3Ahello%20world");
/// let long = "x".repeat(300);
/// let hashed = tag_key(&long, TagBudget::DEFAULT);
/// assert!(hashed.starts_with("isr-h-") && hashed.len() == 22, "{hashed}");
/// assert_eq!(hashed, tag_key(&long, TagBudget::DEFAULT));
/// ```
pub fn tag_key(tag: &str, budget: TagBudget) -> Cow<'_, str> {
    let escaped: Cow<'_, str> = percent_encoding::utf8_percent_encode(tag, TAG_ESCAPES).into();
    if escaped.len() <= budget.tag_bytes {
        return escaped;
    }
    Cow::Owned(hashed(tag))
}

/// `isr-h-` and the first 16 hex digits of `text`'s SHA-256.
fn hashed(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hashed = String::with_capacity(22);
    hashed.push_str("isr-h-");
    for byte in &digest[..8] {
        hashed.push_str(&format!("{byte:02x}"));
    }
    hashed
}

/// The keys one page carries: its tags within `budget`, then its URL path (always), and
/// whether a tag was left out.
///
/// ```
/// use isr::cdn::{page_keys, TagBudget};
/// let tags = vec!["posts".to_string(), "post:a".to_string(), "author:b".to_string()];
/// let (keys, overflowed) = page_keys(&tags, "/blog/a", TagBudget::DEFAULT);
/// assert_eq!(keys, ["posts", "post%3Aa", "author%3Ab", "/blog/a"]);
/// assert!(!overflowed);
/// let budget = TagBudget { tags_per_object: 3, ..TagBudget::DEFAULT };
/// let (keys, overflowed) = page_keys(&tags, "/blog/a", budget);
/// assert_eq!(keys, ["posts", "post%3Aa", "/blog/a"]);
/// assert!(overflowed);
/// ```
pub fn page_keys(tags: &[String], key: &str, budget: TagBudget) -> (Vec<String>, bool) {
    let path = bounded_path_key(key, budget);
    let mut used = path.len();
    let mut keys: Vec<String> = Vec::with_capacity(tags.len() + 1);
    let mut overflowed = false;
    for tag in tags {
        let tag = tag_key(tag, budget);
        if keys.iter().any(|kept| *kept == tag) {
            continue;
        }
        // Room for this tag, its separator and the path, which comes last.
        let fits =
            keys.len() + 2 <= budget.tags_per_object && used + tag.len() < budget.header_bytes;
        if !fits {
            overflowed = true;
            continue;
        }
        used += tag.len() + 1;
        keys.push(tag.into_owned());
    }
    keys.push(path);
    (keys, overflowed)
}

/// One key a purge names: a tag (as [`tag_key`] makes it) or a page's URL path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKey {
    /// A tag, as the headers carry it.
    Tag(String),
    /// A page: its key as its headers carry it (see [`page_keys`]) and its URL path, query
    /// included (`/blog?page=2`), for CDNs that invalidate by URL.
    Path {
        /// The key.
        key: String,
        /// The URL path.
        url: String,
    },
}

impl EdgeKey {
    /// The key as the headers carry it.
    pub fn key(&self) -> &str {
        match self {
            EdgeKey::Tag(key) | EdgeKey::Path { key, .. } => key,
        }
    }
}

/// What a CDN that purges by key purges for `change`: each tag once, and the path of every
/// page no purged tag reaches (a page named by its path; a page whose headers left the tag out;
/// a page whose tags are not known), each once, sorted.
///
/// ```
/// use isr::cdn::{purge_keys, EdgeKey, TagBudget};
/// use isr::engine::{Change, PurgeKind};
/// let change = Change { pages: Vec::new(), tags: vec!["posts".into(), "posts".into()], purge: PurgeKind::Soft };
/// let keys = purge_keys(&change, TagBudget::DEFAULT);
/// assert_eq!(keys, [EdgeKey::Tag("posts".into())]);
/// assert_eq!(keys[0].key(), "posts");
/// ```
pub fn purge_keys(change: &Change, budget: TagBudget) -> Vec<EdgeKey> {
    let tags: BTreeSet<String> = change
        .tags
        .iter()
        .map(|tag| tag_key(tag, budget).into_owned())
        .collect();
    let mut paths = BTreeMap::new();
    for page in &change.pages {
        if !reached_by(page, &tags, budget) {
            let key = bounded_path_key(page.key.as_str(), budget);
            paths.insert(key, crate::route::url_path(page.key.as_str()));
        }
    }
    tags.into_iter()
        .map(EdgeKey::Tag)
        .chain(
            paths
                .into_iter()
                .map(|(key, url)| EdgeKey::Path { key, url }),
        )
        .collect()
}

/// Whether a purge of `tags` (as keys) reaches `page`: its headers carried one of them.
fn reached_by(page: &ChangedPage, tags: &BTreeSet<String>, budget: TagBudget) -> bool {
    if tags.is_empty() {
        return false;
    }
    match &page.tags {
        None => false,
        Some(page_tags) => page_keys(page_tags, page.key.as_str(), budget)
            .0
            .iter()
            .any(|key| tags.contains(key)),
    }
}

/// What a CDN that purges by path purges for `change`: every page's URL path, each once,
/// sorted.
pub fn purge_paths(change: &Change) -> Vec<String> {
    let paths: BTreeSet<String> = change
        .pages
        .iter()
        .map(|page| crate::route::url_path(page.key.as_str()))
        .collect();
    paths.into_iter().collect()
}

/// A page's URL path as a key: as [`tag_key`] encodes, except that the path's own escapes
/// (`%XX`) stay as they are.
///
/// ```
/// assert_eq!(isr::cdn::path_key("/blog?page=2"), "/blog%3Fpage%3D2");
/// assert_eq!(isr::cdn::path_key("/v/café"), "/v/caf%C3%A9");
/// ```
pub fn path_key(key: &str) -> String {
    let path = crate::route::url_path(key);
    percent_encoding::utf8_percent_encode(&path, PATH_ESCAPES).to_string()
}

/// [`path_key`], hashed as a long tag is when longer than the budget's key length.
fn bounded_path_key(key: &str, budget: TagBudget) -> String {
    let path = path_key(key);
    if path.len() <= budget.tag_bytes {
        path
    } else {
        hashed(&path)
    }
}

/// Bytes a tag key cannot hold as they are: all but letters, digits and ``!#$'+./^_`|~-``.
const TAG_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'+')
    .remove(b'.')
    .remove(b'/')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~')
    .remove(b'-');

/// [`TAG_ESCAPES`] but `%` (a URL path's escapes stay).
const PATH_ESCAPES: &percent_encoding::AsciiSet = &TAG_ESCAPES.remove(b'%');

/// Which purge-key headers a page's answers carry, within which budget. `surrogate-key`
/// (Fastly, Varnish xkey) is always sent.
///
/// ```
/// let headers = isr::cdn::TagHeaders::default();
/// assert!(!headers.cache_tag && !headers.edge_cache_tag);
/// assert_eq!(headers.budget, isr::cdn::TagBudget::DEFAULT);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagHeaders {
    /// `cache-tag` (Cloudflare): the same keys, comma-separated.
    pub cache_tag: bool,
    /// `edge-cache-tag` (Akamai): the same keys, comma-separated.
    pub edge_cache_tag: bool,
    /// The limits of the CDNs in front.
    pub budget: TagBudget,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PurgeKind;
    use crate::route::test_key;

    fn page(key: &str, tags: Option<&[&str]>) -> ChangedPage {
        ChangedPage {
            key: test_key(key),
            tags: tags.map(|t| t.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_tag_purge_reaches_by_path_the_pages_whose_headers_left_the_tag_out() {
        // Two keys an object: the first tag and the path; `posts` comes second on /b.
        let budget = TagBudget {
            tags_per_object: 2,
            ..TagBudget::DEFAULT
        };
        let change = Change {
            pages: vec![
                page("/a", Some(&["posts"])),
                page("/b", Some(&["featured", "posts"])),
                page("/c", None),
            ],
            tags: vec!["posts".into()],
            purge: PurgeKind::Soft,
        };
        let keys: Vec<String> = purge_keys(&change, budget)
            .iter()
            .map(|k| k.key().to_owned())
            .collect();
        // /a carries `posts`; /b does not (left out); /c's tags are unknown.
        assert_eq!(keys, ["posts", "/b", "/c"]);
        let (header, overflowed) = page_keys(&["featured".into(), "posts".into()], "/b", budget);
        assert_eq!(header, ["featured", "/b"]);
        assert!(overflowed);
    }

    #[test]
    fn long_keys_are_hashed_the_same_in_headers_and_purges() {
        let long = format!("/p/{}", "x".repeat(200));
        let (header, _) = page_keys(&[], &long, TagBudget::DEFAULT);
        assert!(header[0].starts_with("isr-h-"), "{header:?}");
        let change = Change {
            pages: vec![page(&long, Some(&[]))],
            tags: Vec::new(),
            purge: PurgeKind::Hard,
        };
        let purged = purge_keys(&change, TagBudget::DEFAULT);
        assert_eq!(purged[0].key(), header[0]);
        // The URL stays whole for CDNs that invalidate by URL.
        assert!(matches!(&purged[0], EdgeKey::Path { url, .. } if *url == long));
        assert_eq!(purge_paths(&change), [long]);
    }
}
