//! `/sitemap.xml` and `/robots.txt`, served for every app (opt out with `App::without_sitemap`):
//! the sitemap lists every HTML page the engine holds, with `lastmod` = its generation time,
//! so it follows pages as they appear, change and disappear.
//!
//! Up to [`URLS_PER_FILE`] pages, `/sitemap.xml` is one `<urlset>`; beyond that it is a
//! `<sitemapindex>` of `/sitemap/1.xml`, `/sitemap/2.xml`, … (the protocol's limit per file).

use crate::render::escape_text as escape;
use crate::route::url_path;
use crate::site::SiteUrl;
use crate::PageKey;

/// URLs in one sitemap file (the sitemaps.org limit).
pub const URLS_PER_FILE: usize = 50_000;

/// The pages of one sitemap: keys in order with their generation time (ms since the epoch).
///
/// ```
/// let sitemap = isr::sitemap::Sitemap::default();
/// let site = isr::SiteUrl::parse("https://example.com").unwrap();
/// assert!(sitemap.root(&site).contains("<urlset"));
/// assert!(sitemap.part(1, &site).is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sitemap {
    pages: Vec<(PageKey, u64)>,
}

impl Sitemap {
    /// A sitemap of these pages (sorted by key).
    pub fn new(pages: Vec<(PageKey, u64)>) -> Self {
        Sitemap { pages }
    }

    /// How many pages it lists.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether it lists no page.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// `/sitemap.xml`: the `<urlset>`, or the `<sitemapindex>` of the parts when there are more
    /// than [`URLS_PER_FILE`] pages.
    pub fn root(&self, site: &SiteUrl) -> String {
        if self.pages.len() <= URLS_PER_FILE {
            return urlset(&self.pages, site);
        }
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
        );
        for (i, chunk) in self.pages.chunks(URLS_PER_FILE).enumerate() {
            let newest = chunk.iter().map(|(_, ms)| *ms).max().unwrap_or(0);
            xml.push_str(&format!(
                "<sitemap><loc>{}</loc><lastmod>{}</lastmod></sitemap>\n",
                escape(&site.join(&format!("/sitemap/{}.xml", i + 1))),
                w3c_datetime(newest)
            ));
        }
        xml.push_str("</sitemapindex>\n");
        xml
    }

    /// `/sitemap/<n>.xml` (1-based), when the root is an index and it has part `n`.
    pub fn part(&self, n: usize, site: &SiteUrl) -> Option<String> {
        if self.pages.len() <= URLS_PER_FILE || n == 0 {
            return None;
        }
        self.pages
            .chunks(URLS_PER_FILE)
            .nth(n - 1)
            .map(|chunk| urlset(chunk, site))
    }
}

fn urlset(pages: &[(PageKey, u64)], site: &SiteUrl) -> String {
    let mut xml = String::with_capacity(120 + pages.len() * 100);
    xml.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    for (key, generated_at_ms) in pages {
        xml.push_str("<url><loc>");
        xml.push_str(&escape(&site.join(&url_path(key.as_str()))));
        xml.push_str("</loc><lastmod>");
        xml.push_str(&w3c_datetime(*generated_at_ms));
        xml.push_str("</lastmod></url>\n");
    }
    xml.push_str("</urlset>\n");
    xml
}

/// `robots.txt` allowing everything and pointing at the sitemap.
///
/// ```
/// let site = isr::SiteUrl::parse("https://example.com").unwrap();
/// assert_eq!(isr::sitemap::robots(&site), "User-agent: *\nAllow: /\n\nSitemap: https://example.com/sitemap.xml\n");
/// ```
pub fn robots(site: &SiteUrl) -> String {
    format!(
        "User-agent: *\nAllow: /\n\nSitemap: {}\n",
        site.join("/sitemap.xml")
    )
}

/// A wall time as a W3C datetime (`2026-12-02T03:15:52Z`).
///
/// ```
/// assert_eq!(isr::sitemap::w3c_datetime(1_796_181_352_133), "2026-12-02T03:15:52Z");
/// ```
pub fn w3c_datetime(ms: u64) -> String {
    format!("{}Z", crate::dashboard::utc(ms).replacen(' ', "T", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::test_key;

    #[test]
    fn more_pages_than_one_file_holds_make_an_index_of_parts() {
        let site = SiteUrl::parse("https://example.com").unwrap();
        let pages: Vec<_> = (0..URLS_PER_FILE + 1)
            .map(|i| (test_key(&format!("/p/{i:06}")), i as u64 * 1000))
            .collect();
        let sitemap = Sitemap::new(pages);
        let root = sitemap.root(&site);
        assert!(root.contains("<sitemapindex"), "{}", &root[..200]);
        assert_eq!(root.matches("<sitemap>").count(), 2);
        assert!(root.contains("https://example.com/sitemap/2.xml"));
        let second = sitemap.part(2, &site).unwrap();
        assert_eq!(second.matches("<url>").count(), 1);
        assert!(second.contains("https://example.com/p/050000"));
        assert!(sitemap.part(3, &site).is_none());
    }

    #[test]
    fn locations_are_percent_encoded_then_xml_escaped() {
        let site = SiteUrl::parse("http://127.0.0.1:3000").unwrap();
        let sitemap = Sitemap::new(vec![(test_key("/blog/fish & chips"), 0)]);
        let xml = sitemap.root(&site);
        assert!(
            xml.contains("<loc>http://127.0.0.1:3000/blog/fish%20&amp;%20chips</loc>"),
            "{xml}"
        );
        assert!(xml.contains("<lastmod>1970-01-01T00:00:00Z</lastmod>"));
    }
}
