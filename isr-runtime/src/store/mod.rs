//! Persistence of generated pages: the [`PageStore`] trait and what it stores (from
//! `isr-core`), and the file store that `App` serves from.
//!
//! [`FsStore`] reads a page's files on the calling thread when the kernel holds them, which
//! never waits for the disk (see `cached_read`); everything else runs on tokio's blocking pool.

pub use isr_core::store::*;

#[cfg(target_os = "linux")]
mod cached_read;
mod fs;
mod index;

pub use fs::{file_name_of, meta_dir_of, FsStore, LEGACY_META_DIR, META_DIR_SUFFIX};
