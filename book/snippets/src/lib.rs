//! Code the book (`book/src`) shows that none of the examples holds, one module per chapter.
//! The book includes it by anchor (`{{#include ../snippets/src/revalidation.rs:name}}`), so
//! every Rust example in the book is compiled and linted by CI (`tests/tests/book.rs` refuses
//! inline Rust in the book).

#[cfg(feature = "ssr")]
#[rustfmt::skip]
pub mod readme;
#[cfg(feature = "ssr")]
pub mod revalidation;
