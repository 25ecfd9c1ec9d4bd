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

/// An islands-only client bundle: isr built with `hydrate` and `islands`, without `ssr` (as
/// an app's `hydrate` build sees it; run by `scripts/test.sh` with
/// `--no-default-features --features hydrate,islands`). A page left to hydrate in full is a
/// compile error naming it; an islands page and a layout compile, and no layout is registered.
#[cfg(all(feature = "hydrate", feature = "islands", not(feature = "ssr")))]
#[test]
fn islands_only_client_bundles() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/macros/islands_only/pass/*.rs");
    cases.compile_fail("tests/macros/islands_only/fail/*.rs");
}
