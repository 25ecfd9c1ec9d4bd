//! The blog server.
//!
//! ```text
//! cargo run -p blog                 # build, then serve at http://127.0.0.1:3000/blog
//! cargo run -p blog -- build        # pre-render only
//! cargo run -p blog -- serve        # serve what is on disk
//! ```

fn main() -> std::process::ExitCode {
    blog::app().run()
}
