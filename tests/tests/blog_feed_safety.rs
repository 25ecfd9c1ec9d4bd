//! What a post's content cannot do to the blog, against the real binary over loopback:
//! characters XML forbids never reach `/blog/feed.xml`, a slug that needs percent-encoding
//! gives a feed link that leads to the post, and errors about a post name its file relative to
//! the content folder, never by the server's absolute path.

use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE};
use serde_json::json;

/// The origin the feed's links start with (`--public-url`).
const ORIGIN: &str = "https://blog.example.com";

/// Characters of `text` outside XML 1.0's `Char` production (`#x9 | #xA | #xD |
/// [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`): a document holding one is not
/// well-formed. (`rss::Channel::read_from` does not check raw characters, so the test does.)
fn forbidden_xml_chars(text: &str) -> Vec<char> {
    let allowed = |c: &char| {
        matches!(c, '\t' | '\n' | '\r')
            || matches!(c, '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    };
    text.chars().filter(|c| !allowed(c)).collect()
}

/// The feed, checked well-formed (no forbidden character) and parsed by a real RSS reader.
async fn read_feed(server: &BlogServer) -> rss::Channel {
    let feed = server.get("/blog/feed.xml").await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert_eq!(
        forbidden_xml_chars(&feed.body),
        [] as [char; 0],
        "the feed holds characters XML 1.0 forbids: {:?}",
        feed.body
    );
    rss::Channel::read_from(feed.body.as_bytes()).expect("valid RSS 2.0")
}

/// The feed's item titled `title`.
fn item_titled<'a>(channel: &'a rss::Channel, title: &str) -> &'a rss::Item {
    channel
        .items()
        .iter()
        .find(|item| item.title() == Some(title))
        .unwrap_or_else(|| {
            let titles: Vec<_> = channel.items().iter().map(|i| i.title()).collect();
            panic!("no item titled {title:?} in the feed: {titles:?}")
        })
}

#[tokio::test]
async fn characters_xml_forbids_are_removed_from_the_feed() {
    let fx = Fixture::new();
    // YAML escapes put ESC, NUL, BEL, BS, VT, FF, U+FFFE and U+FFFF into the title and tags;
    // the Markdown body holds ESC, BEL and U+FFFF as they are.
    fx.write_post(
        "terminal-colours",
        "---\n\
         title: \"Red \\e[31malert\\e[0m \\0\\a\\b\\v\\f\\uFFFE\\uFFFF done\"\n\
         date: 2030-01-01\n\
         tags: [\"ansi\\e[0m\", \"bell\\a\"]\n\
         ---\n\
         Body \u{1b}[31m red \u{7}\u{ffff} end\n",
    );
    let server = BlogServer::start(&fx, &["--public-url", ORIGIN], &[]);

    let channel = read_feed(&server).await;
    let item = item_titled(&channel, "Red [31malert[0m  done");
    let tags: Vec<&str> = item.categories().iter().map(|c| c.name()).collect();
    assert_eq!(tags, ["ansi[0m", "bell"]);
    let description = item.description().expect("a description");
    assert!(description.contains("Body [31m red  end"), "{description}");
    assert_eq!(
        item.link(),
        Some(format!("{ORIGIN}/blog/terminal-colours").as_str())
    );
}

#[tokio::test]
async fn feed_links_are_percent_encoded_and_lead_to_the_post() {
    let fx = Fixture::new();
    // (file name, title, the link's path)
    let posts = [
        ("a b#c", "Spaces and a hash", "/blog/a%20b%23c"),
        ("été", "Accents", "/blog/%C3%A9t%C3%A9"),
        ("50%&more", "Percent and ampersand", "/blog/50%25&more"),
    ];
    for (slug, title, _) in posts {
        fx.write_post(
            slug,
            &isr_tests::post_markdown(title, "2030-01-01", "Encoded."),
        );
    }
    let server = BlogServer::start(&fx, &["--public-url", ORIGIN], &[]);

    let channel = read_feed(&server).await;
    let sitemap = server.get("/sitemap.xml").await;
    assert_eq!(sitemap.status, 200, "{}", sitemap.body);
    for (slug, title, path) in posts {
        let item = item_titled(&channel, title);
        let link = format!("{ORIGIN}{path}");
        assert_eq!(item.link(), Some(link.as_str()), "{slug:?}");
        assert_eq!(item.guid().map(|g| g.value()), Some(link.as_str()));
        // The URL isr itself gives the post.
        assert!(
            sitemap
                .body
                .contains(&format!("<loc>{}</loc>", link.replace('&', "&amp;"))),
            "{link} is not in the sitemap:\n{}",
            sitemap.body
        );
        // The server decodes the link's path back to the post.
        let page = server.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains(title), "{path}: {}", page.body);
    }
}

#[tokio::test]
async fn errors_name_post_files_relative_to_the_content_folder() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let absolute = fx
        .path()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string();

    // A post that does not parse, and a post file that cannot be read (a folder).
    fx.write_post("broken", "no front matter here\n");
    std::fs::create_dir(fx.post_file("unreadable")).expect("create a folder named like a post");
    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/broken", "/blog/unreadable"] }))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let results = resp.json()["results"].clone();
    let error_of = |path: &str| -> String {
        let result = results
            .as_array()
            .and_then(|all| all.iter().find(|r| r["path"] == path))
            .unwrap_or_else(|| panic!("no result for {path}: {results}"));
        assert_eq!(result["outcome"], "error", "{result}");
        result["error"].as_str().expect("an error text").to_string()
    };
    let broken = error_of("/blog/broken");
    assert!(
        broken.contains(": broken.md: front matter missing"),
        "{broken}"
    );
    let unreadable = error_of("/blog/unreadable");
    assert!(
        unreadable.contains(": cannot read unreadable.md: "),
        "{unreadable}"
    );

    // The content folder gone: named as the setting, not as a path.
    fx.hide_content();
    let resp = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/what-is-isr"] }))
        .await;
    fx.restore_content();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let missing = resp.json()["results"][0]["error"]
        .as_str()
        .expect("an error text")
        .to_string();
    assert!(
        missing.ends_with("the content folder (BLOG_CONTENT_DIR) is missing"),
        "{missing}"
    );

    for error in [&broken, &unreadable, &missing] {
        assert!(!error.contains(&absolute), "{error} names {absolute}");
    }
    // The log lines of these failures do not name the path either.
    let logged = poll_until("the failures' log lines", POLL_DEADLINE, || {
        let stderr = server.stderr_text();
        let lines: Vec<String> = stderr
            .lines()
            .filter(|line| {
                line.contains("broken.md")
                    || line.contains("unreadable.md")
                    || line.contains("content folder")
            })
            .map(str::to_string)
            .collect();
        let all_three = ["broken.md", "unreadable.md", "content folder"]
            .iter()
            .all(|word| lines.iter().any(|line| line.contains(word)));
        std::future::ready(all_three.then_some(lines))
    })
    .await;
    for line in logged {
        assert!(!line.contains(&absolute), "{line}");
    }
}
