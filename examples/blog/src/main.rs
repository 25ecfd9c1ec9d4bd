//! A Markdown blog served with Incremental Static Regeneration.
//!
//! Posts are Markdown files with YAML front matter in `BLOG_CONTENT_DIR` (default: this
//! example's `content/` folder). `/blog` lists them (revalidate 60 s), `/blog/:slug` shows one
//! (revalidate 5 s, rendered on first request when the file is new).
//!
//! ```text
//! cargo run -p blog                 # build, then serve at http://127.0.0.1:3000/blog
//! cargo run -p blog -- build        # pre-render only
//! cargo run -p blog -- serve        # serve what is on disk
//! ```

#[cfg(feature = "ssr")]
mod content;
mod pages;

#[cfg(feature = "ssr")]
fn main() -> std::process::ExitCode {
    isr::App::new("blog").site_root("target/site/blog").run()
}

#[cfg(not(feature = "ssr"))]
fn main() {
    eprintln!("the blog server needs the `ssr` feature");
}
