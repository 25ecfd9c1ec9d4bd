//! `#[page]` as an app uses it, with the runtime's `ssr` feature on (so the loaders and their
//! argument extraction are compiled and type-checked): `pass/` cases must compile and run,
//! `fail/` cases must fail with the snapshot's errors at the offending spans (attribute mistakes
//! and type mistakes alike: the types are only checked with `ssr` on, so the cases live here
//! rather than in `isr-macros`).
//! Refresh the snapshots with `TRYBUILD=overwrite cargo test -p isr --features ssr --test macros`.

#[cfg(feature = "ssr")]
#[test]
fn page_attribute_in_apps() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/macros/pass/*.rs");
    cases.compile_fail("tests/macros/fail/*.rs");
}
