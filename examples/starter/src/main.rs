//! The starter's server: `cargo run -p starter` (a debug build develops: every request renders;
//! `cargo run -p starter -- start`, or a release build, pre-renders every page and serves them
//! with ISR).

// ANCHOR: main
use std::process::ExitCode;

fn main() -> ExitCode {
    starter::app().run()
}
// ANCHOR_END: main
