//! `/blog/feed.xml`: the published posts as an RSS 2.0 channel (built with the `rss` crate).

use crate::content::Post;

/// Posts in the feed, newest first.
pub const FEED_POSTS: usize = 20;

/// The RSS 2.0 document of `posts` (newest first, at most [`FEED_POSTS`]), links absolute under
/// the site's origin (`isr::SiteUrl::as_str`, no trailing slash).
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
            let link = format!("{origin}/blog/{}", post.slug);
            rss::Item {
                title: Some(post.title.clone()),
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
                        name: tag.clone(),
                        domain: None,
                    })
                    .collect(),
                description: Some(post.html.clone()),
                ..Default::default()
            }
        })
        .collect();
    let channel = rss::Channel {
        title: "The ISR blog".into(),
        link: format!("{origin}/blog"),
        description: "Posts on Incremental Static Regeneration with leptos and axum.".into(),
        language: Some("en".into()),
        last_build_date: posts.first().and_then(|p| rfc2822(&p.date)),
        items,
        ..Default::default()
    };
    channel.to_string()
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
