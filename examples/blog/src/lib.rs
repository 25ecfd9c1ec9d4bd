//! A Markdown blog served with Incremental Static Regeneration.
//!
//! Posts are Markdown files with YAML front matter in `BLOG_CONTENT_DIR` (default: this
//! example's `content/` folder). `/blog` lists them (revalidate 60 s), `/blog/:slug` shows one
//! (revalidate 5 s, rendered on first request when the file is new). The same crate is the
//! server (`ssr`: loaders + the `blog` binary) and the browser bundle (`hydrate`: the islands of
//! its views, and nothing else: `isr/islands`).

#[cfg(feature = "ssr")]
pub mod content;
#[cfg(feature = "ssr")]
pub mod feed;
#[cfg(feature = "ssr")]
pub mod likes;
pub mod pages;

/// The blog app: its pages (registered by `#[page]`) and client bundle. Its site root is isr's
/// default: `target/site/blog` under `cargo run`, from any folder.
///
/// ```no_run
/// std::process::exit(match blog::app().run() { c if c == std::process::ExitCode::SUCCESS => 0, _ => 1 });
/// ```
// ANCHOR: app
#[cfg(feature = "ssr")]
pub fn app() -> isr::App {
    isr::App::new("blog")
        .client(isr::client_crate!())
        // Scripts only from /pkg and isr's own hydration call: data never runs as script. The
        // icon is `public/favicon.svg`, served under its own name.
        .shell(
            isr::Shell::new()
                .head(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#)
                .content_security_policy(isr::ContentSecurityPolicy::strict()),
        )
        .state(content::Content::from_env())
        // The like button's counts, for its server functions (`pages::like_post`).
        .state_with(|_| likes::Likes::from_env().map_err(|e| format!("{e:#}")))
        .not_found_page(pages::not_found_page)
}
// ANCHOR_END: app
