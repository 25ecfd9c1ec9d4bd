//! Compile-fail tests of `#[page]`: each case's error must point at the offending token.
//! Refresh the snapshots with `TRYBUILD=overwrite cargo test -p isr-macros` and review them.

#[test]
fn page_attribute_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
