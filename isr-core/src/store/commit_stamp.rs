//! The modification time a store gives every file of a page it commits, so that a file read
//! back tells by its `mtime` alone whether it is the file committed with the row.
//!
//! The time is the row's generation time (to the millisecond: a static file server's
//! `Last-Modified` is the page's generation time) with the sub-millisecond nanoseconds taken
//! from the page's etag. A file whose `mtime` is this exact value was written by a commit of a
//! row with that generation time and (up to 20 bits of) that etag: the engine serves it without
//! hashing and decompressing it. Any other file is checked by its content as before:
//! - a crash between renaming the variants and the HTML leaves files of the next generation
//!   (another time, another etag) beside the row of the previous one;
//! - a file edited by hand has the time of the edit (and a new `ctime`, which cannot be set);
//! - a site written before this stamp existed, or on a file system that keeps coarser times,
//!   has other times: it is checked by content on every read, as it always was.
//!
//! A site copied with its times (`cp -a`, `rsync -a`) keeps them, and its files are the files
//! committed: it is served without the check too.

use super::Etag;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies a commit of a page: the generation time and the etag of its row.
///
/// ```
/// use isr::store::{CommitStamp, Etag};
/// let stamp = CommitStamp::new(1_700_000_000_123, Etag::of(b"<p>a</p>"));
/// let time = stamp.file_time();
/// let since = time.duration_since(std::time::UNIX_EPOCH).unwrap();
/// // The millisecond is the generation time's; only the nanoseconds below it carry the etag.
/// assert_eq!(since.as_millis(), 1_700_000_000_123);
/// assert_ne!(stamp.file_time(), CommitStamp::new(1_700_000_000_123, Etag::of(b"<p>b</p>")).file_time());
/// assert_ne!(stamp.file_time(), CommitStamp::new(1_700_000_000_124, Etag::of(b"<p>a</p>")).file_time());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitStamp {
    generated_at_ms: u64,
    etag: Etag,
}

impl CommitStamp {
    /// The stamp of a row generated at `generated_at_ms` (ms since the Unix epoch) with `etag`.
    pub fn new(generated_at_ms: u64, etag: Etag) -> Self {
        CommitStamp {
            generated_at_ms,
            etag,
        }
    }

    /// The modification time every file of this commit gets.
    pub fn file_time(&self) -> SystemTime {
        let bytes = self.etag.as_bytes();
        let low = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let sub_ms_nanos = u64::from(low % 1_000_000);
        UNIX_EPOCH
            + Duration::from_millis(self.generated_at_ms)
            + Duration::from_nanos(sub_ms_nanos)
    }

    /// Whether a file with modification time `modified` is one this commit wrote.
    ///
    /// ```
    /// use isr::store::{CommitStamp, Etag};
    /// let stamp = CommitStamp::new(5, Etag::of(b"x"));
    /// assert!(stamp.wrote(stamp.file_time()));
    /// assert!(!stamp.wrote(std::time::SystemTime::now()));
    /// ```
    pub fn wrote(&self, modified: SystemTime) -> bool {
        modified == self.file_time()
    }
}
