//! Reads of a stored file that never wait for the disk, so a serving thread can make them
//! itself instead of handing them to the blocking pool and back (two thread switches, most of
//! the cost of reading a small page the kernel already holds).
//!
//! The path is opened with `openat2(RESOLVE_CACHED)`, which fails with `EAGAIN` unless every
//! component of the path is in the kernel's lookup cache, and read with
//! `preadv2(RWF_NOWAIT)`, which fails with `EAGAIN` unless the bytes are in the page cache. The
//! file's metadata is read from the open file (an inode in memory), and closing a file opened
//! read-only does not wait either. Anything that would wait, and any kernel or file system
//! without these flags, comes back as [`io::ErrorKind::WouldBlock`]: the caller reads the file
//! the ordinary way on the blocking pool.

use super::CommitStamp;
use bytes::Bytes;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::{Errno, ReadWriteFlags};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Files larger than this are read on the blocking pool even when cached: copying them would
/// hold up the other connections of the serving thread longer than a hand-off costs.
pub(super) const MAX_INLINE_BYTES: usize = 256 * 1024;

/// The bytes of the file at `path` (`None`: there is none) and whether its modification time is
/// the one `stamp` gives a commit's files, or [`io::ErrorKind::WouldBlock`] when reading it
/// would have to wait for the disk (or cannot be done without waiting here). A name the kernel
/// has not yet looked up, even an absent one, is a would-block the first time.
pub(super) fn read_file_cached(
    path: &Path,
    stamp: Option<CommitStamp>,
) -> io::Result<Option<(Bytes, bool)>> {
    let file = match rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::CACHED,
    ) {
        Ok(file) => file,
        Err(Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(would_block_or(errno)),
    };
    let stat = rustix::fs::fstat(&file)?;
    let len = usize::try_from(stat.st_size).map_err(io::Error::other)?;
    if len > MAX_INLINE_BYTES {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let mut bytes = vec![0u8; len];
    // One read of the length fstat gave: a file cut short or grown since is caught by the
    // caller's check of the length (or the stamp: rewriting a file changes its mtime).
    let read = match rustix::io::preadv2(
        &file,
        &mut [io::IoSliceMut::new(&mut bytes)],
        0,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(read) => read,
        Err(errno) => return Err(would_block_or(errno)),
    };
    if read < len {
        // Part of the file is not in the page cache (or it shrank): the blocking read decides.
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let modified = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(stat.st_mtime).unwrap_or(0),
            u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
        );
    let stamped = stamp.is_some_and(|stamp| stamp.wrote(modified));
    Ok(Some((Bytes::from(bytes), stamped)))
}

/// `errno` as an error for the caller: `WouldBlock` for "would wait" (`EAGAIN`) and for "this
/// kernel, file system or path cannot do it without waiting" (`ENOSYS`, `EINVAL`, `EOPNOTSUPP`,
/// `EXDEV`: the ordinary read will do), the error itself otherwise.
fn would_block_or(errno: Errno) -> io::Error {
    match errno {
        Errno::AGAIN | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP | Errno::XDEV => {
            io::ErrorKind::WouldBlock.into()
        }
        errno => errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cached_file_whole_and_reports_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.html");
        std::fs::write(&path, b"<p>hello</p>").unwrap();
        let generated_at_ms = 1_700_000_000_123;
        let stamp = CommitStamp::new(generated_at_ms, crate::store::Etag::of(b"<p>hello</p>"));
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(stamp.file_time()).unwrap();
        drop(file);
        // Just written: the path and the bytes are in the kernel's caches. (A kernel before
        // 5.12, or a file system without RWF_NOWAIT, makes this a would-block: the ordinary
        // read then serves, but the fast path this test is about is gone.)
        let (bytes, stamped) = read_file_cached(&path, Some(stamp))
            .expect("an inline read of a cached file")
            .expect("the file exists");
        assert_eq!(&bytes[..], b"<p>hello</p>");
        assert!(stamped, "the file bears the commit's stamp");
        let other = CommitStamp::new(generated_at_ms + 1, crate::store::Etag::of(b"<p>hello</p>"));
        let (_, stamped) = read_file_cached(&path, Some(other)).unwrap().unwrap();
        assert!(!stamped, "another commit's stamp does not match");
    }

    #[test]
    fn a_large_file_is_left_to_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.html");
        std::fs::write(&path, vec![b'x'; MAX_INLINE_BYTES + 1]).unwrap();
        let err = read_file_cached(&path, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        std::fs::write(&path, vec![b'x'; MAX_INLINE_BYTES]).unwrap();
        let (bytes, _) = read_file_cached(&path, None).unwrap().unwrap();
        assert_eq!(bytes.len(), MAX_INLINE_BYTES);
    }

    #[test]
    fn a_missing_file_is_none_and_a_folder_is_no_page() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.html");
        // Once a lookup has failed the kernel remembers the name is absent (a negative dentry);
        // before that, finding out may need the disk: a would-block.
        assert!(!absent.exists());
        assert!(matches!(read_file_cached(&absent, None), Ok(None)));
        // A folder opens, but is no page: an error (here a would-block, the folder having no
        // non-blocking reads; the ordinary read then fails with EISDIR).
        assert!(read_file_cached(dir.path(), None).is_err());
    }
}
