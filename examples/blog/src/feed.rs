//! `/blog/feed.xml`: the published posts as an RSS 2.0 channel (built with the `rss` crate).

use crate::content::Post;

/// Posts in the feed, newest first.
pub const FEED_POSTS: usize = 20;

/// The RSS 2.0 document of `posts` (newest first, at most [`FEED_POSTS`]), links absolute under
/// the site's origin (`isr::SiteUrl::as_str`, no trailing slash).
///
/// Every text is [`xml_chars_only`], so the document is well-formed XML whatever the posts hold,
/// and a post's link is `origin` + [`post_url_path`]: a valid URL, the one the sitemap lists.
///
/// ```
/// let post = blog::content::parse_post("hello", "---\ntitle: Hello\ndate: 2026-12-01\n---\nHi").unwrap();
/// let xml = blog::feed::rss("https://blog.example.com", &[post]);
/// let channel = rss::Channel::read_from(xml.as_bytes()).unwrap();
/// assert_eq!(channel.items()[0].link(), Some("https://blog.example.com/blog/hello"));
/// assert_eq!(channel.items()[0].pub_date(), Some("Tue, 01 Dec 2026 00:00:00 +0000"));
/// ```
pub fn rss(origin: &str, posts: &[Post]) -> String {
    let items = posts
        .iter()
        .take(FEED_POSTS)
        .map(|post| {
            let link = xml_chars_only(&format!("{origin}{}", post_url_path(&post.slug)));
            rss::Item {
                title: Some(xml_chars_only(&post.title)),
                link: Some(link.clone()),
                guid: Some(rss::Guid {
                    value: link,
                    permalink: true,
                }),
                pub_date: rfc2822(&post.date),
                categories: post
                    .tags
                    .iter()
                    .map(|tag| rss::Category {
                        name: xml_chars_only(tag),
                        domain: None,
                    })
                    .collect(),
                description: Some(xml_chars_only(&post.html)),
                ..Default::default()
            }
        })
        .collect();
    let channel = rss::Channel {
        title: "The ISR blog".into(),
        link: xml_chars_only(&format!("{origin}/blog")),
        description: "Posts on Incremental Static Regeneration with leptos and axum.".into(),
        language: Some("en".into()),
        last_build_date: posts.first().and_then(|p| rfc2822(&p.date)),
        items,
        ..Default::default()
    };
    channel.to_string()
}

/// `text` without the characters XML 1.0 does not allow anywhere in a document, not even
/// escaped: the C0 controls other than tab, line feed and carriage return, and U+FFFE, U+FFFF
/// (`Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`; a Rust
/// string holds no lone surrogate). Every other character is kept as it is.
///
/// ```
/// use blog::feed::xml_chars_only;
/// assert_eq!(xml_chars_only("\u{1b}[31mred\u{1b}[0m\u{0}\u{7}\u{fffe}\u{ffff}"), "[31mred[0m");
/// let allowed = "tab\tline\r\n\u{7f}\u{85}é\u{fffd}\u{10000}";
/// assert_eq!(xml_chars_only(allowed), allowed);
/// ```
pub fn xml_chars_only(text: &str) -> String {
    text.chars().filter(|&c| is_xml_char(c)).collect()
}

/// Whether XML 1.0 allows `c` (its `Char` production).
fn is_xml_char(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
    )
}

/// The URL path of the post `slug` (`/blog/<slug>`), the slug percent-encoded as one path
/// segment ([`isr::route::url_segment`]): the server decodes it back to that slug, and it is
/// the URL the sitemap lists for the post.
///
/// ```
/// assert_eq!(blog::feed::post_url_path("hello-world"), "/blog/hello-world");
/// assert_eq!(blog::feed::post_url_path("a b#c?d/e%"), "/blog/a%20b%23c%3Fd%2Fe%25");
/// assert_eq!(blog::feed::post_url_path("été"), "/blog/%C3%A9t%C3%A9");
/// ```
pub fn post_url_path(slug: &str) -> String {
    format!("/blog/{}", isr::route::url_segment(slug))
}

/// `YYYY-MM-DD` → the RFC 2822 date RSS uses (midnight UTC); `None` if it is not a date.
///
/// ```
/// assert_eq!(blog::feed::rfc2822("2024-02-29").as_deref(), Some("Thu, 29 Feb 2024 00:00:00 +0000"));
/// assert_eq!(blog::feed::rfc2822("yesterday"), None);
/// ```
pub fn rfc2822(date: &str) -> Option<String> {
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    Some(format!(
        "{}, {day:02} {} {year:04} 00:00:00 +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::parse_post;

    /// Characters of `text` that XML 1.0 forbids.
    fn forbidden_chars(text: &str) -> Vec<char> {
        text.chars().filter(|&c| !is_xml_char(c)).collect()
    }

    #[test]
    fn the_feed_is_well_formed_whatever_the_posts_hold() {
        let text = "---\ntitle: \"Red \\e[31malert\\e[0m \\0\\a\\b\\v\\f\\uFFFE\\uFFFF done\"\n\
                    date: 2026-12-01\ntags: [\"ansi\\e[0m\", \"bell\\a\"]\n---\n\
                    Body \u{1b}[31m red \u{7}\u{ffff} end\n";
        let post = parse_post("a b", text).unwrap();
        assert!(!forbidden_chars(&post.title).is_empty(), "{:?}", post.title);
        let xml = rss("https://blog.example.com", &[post]);
        assert_eq!(forbidden_chars(&xml), [] as [char; 0], "{xml:?}");
        let channel = rss::Channel::read_from(xml.as_bytes()).unwrap();
        let item = &channel.items()[0];
        assert_eq!(item.title(), Some("Red [31malert[0m  done"));
        let tags: Vec<&str> = item.categories().iter().map(|c| c.name()).collect();
        assert_eq!(tags, ["ansi[0m", "bell"]);
        assert!(item.description().unwrap().contains("Body [31m red  end"));
        assert_eq!(item.link(), Some("https://blog.example.com/blog/a%20b"));
        assert_eq!(item.guid().map(|g| g.value()), item.link());
    }

    #[test]
    fn forbidden_chars_are_exactly_those_outside_the_xml_char_production() {
        let forbidden: Vec<u32> = (0..=0x10_ffff)
            .filter_map(char::from_u32)
            .filter(|&c| !is_xml_char(c))
            .map(u32::from)
            .collect();
        let expected: Vec<u32> = (0..0x20)
            .filter(|c| ![0x9, 0xa, 0xd].contains(c))
            .chain([0xfffe, 0xffff])
            .collect();
        assert_eq!(forbidden, expected);
    }

    /// The feed's links are the URLs isr itself gives the posts (sitemap, CDN purges): routing
    /// one gives the post's key back, and that key's URL path is the link's path again.
    #[test]
    fn post_links_are_the_urls_isr_routes_to_the_post() {
        let routes = isr::Routes::new(isr::pages().collect()).unwrap();
        let ascii = (0x20u8..0x7f)
            .map(char::from)
            .filter(|&c| c != '/' && c != '\\' && c != '?')
            .map(|c| format!("x{c}y"));
        let others = [
            "hello",
            "a b#c",
            "été",
            "100%",
            "sale%20now",
            "日本語",
            "a+b=c",
        ];
        for slug in others.into_iter().map(String::from).chain(ascii) {
            let path = post_url_path(&slug);
            let isr::Resolved::Page { def, key, .. } = routes.resolve(&path) else {
                panic!("{path} does not route to a page");
            };
            assert_eq!(def.path, "/blog/:slug", "{path}");
            assert_eq!(key.as_str(), format!("/blog/{slug}"), "{path}");
            assert_eq!(key.to_url_path(), path, "{slug:?}");
        }
        // A `?` would start a query: no post is at such a path.
        assert!(matches!(
            routes.resolve(&post_url_path("why?")),
            isr::Resolved::NotFound
        ));
    }
}
