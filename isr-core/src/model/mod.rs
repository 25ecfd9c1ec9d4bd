//! The page model: the plain data every layer shares (a page's key, params, metadata, its
//! rendered body, its bytes in each encoding and their etags, and a cached version of it). It
//! imports nothing else of this crate, so no layer above it (routing, stores, the engine, the
//! hot cache) can form an import cycle through it.

mod cached;
pub mod encoding;
mod etag;
mod generated;
mod hydration;
pub(crate) mod key;
mod mark;
mod meta;
mod params;
pub mod query;

pub use cached::CachedPage;
pub use etag::{Etag, RepresentationEtags};
pub use generated::{unix_ms, Generated, RenderedBody};
pub use hydration::Hydration;
pub use key::PageKey;
pub use mark::{Mark, MarkMode};
pub use meta::{PageKind, PageMeta};
pub use params::Params;
