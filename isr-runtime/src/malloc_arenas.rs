//! How many malloc arenas the process may use (glibc on Linux only; other allocators and
//! platforms are left alone).
//!
//! glibc gives threads arenas of their own, up to 8 per core, and memory freed into one arena
//! is reused only by the threads of that arena. A server that reads evicted pages back on its
//! serving threads and on the blocking pool, and frees them wherever the hot cache evicts them,
//! spreads its page buffers over up to 16 arenas on 2 cores: measured (100,000 pages,
//! `--hot-cache-mb 64`, a random walk at 54–67k req/s) a peak RSS of 135–146 MB with glibc's
//! default, 116–127 MB with one arena per core, 107 MB with one, for the same req/s. [`limit`] caps the
//! arenas at one per core before the runtime starts its threads, unless the operator chose
//! with glibc's own `MALLOC_ARENA_MAX`.

use std::ffi::OsStr;

/// The arena cap for `cpus` cores, or `None` when `MALLOC_ARENA_MAX` (here `configured`) is
/// set: glibc has applied the operator's choice, which stands.
///
/// ```
/// # use isr::malloc_arenas::cap_for;
/// assert_eq!(cap_for(None, 2), Some(2));
/// assert_eq!(cap_for(None, 0), Some(1));
/// assert_eq!(cap_for(Some("8".as_ref()), 2), None);
/// ```
pub fn cap_for(configured: Option<&OsStr>, cpus: usize) -> Option<i32> {
    match configured {
        Some(_) => None,
        None => Some(i32::try_from(cpus.max(1)).unwrap_or(i32::MAX)),
    }
}

/// Caps glibc's malloc arenas at one per core (see the module docs); returns the cap set, or
/// `None` when nothing was changed (`MALLOC_ARENA_MAX` set, another libc, `mallopt` refused).
/// Arenas made before the call stay; threads started after it share the capped ones. The CLI
/// (`App::run`) calls it before it starts the runtime; [`App::embed`](crate::App::embed) does
/// not (the embedding app owns its process: call this before starting your runtime to get the
/// same).
pub fn limit() -> Option<i32> {
    let cap = cap_for(
        std::env::var_os("MALLOC_ARENA_MAX").as_deref(),
        crate::cpus(),
    )?;
    set_arena_max(cap).then_some(cap)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // glibc's mallopt has no safe wrapper: the one FFI call of the crate.
fn set_arena_max(cap: i32) -> bool {
    // SAFETY: mallopt takes two plain ints (no pointers, nothing borrowed) and only stores the
    // parameter (`cap` is at least 1: see `cap_for`); it takes glibc's own locks and may be
    // called from any thread at any time.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, cap) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_cap: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_setting_stands_and_otherwise_one_arena_per_core() {
        assert_eq!(cap_for(Some("1".as_ref()), 64), None);
        assert_eq!(cap_for(None, 64), Some(64));
        assert_eq!(cap_for(None, usize::MAX), Some(i32::MAX));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_cap() {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            assert_eq!(limit(), Some(i32::try_from(crate::cpus()).unwrap()));
        } else {
            assert_eq!(limit(), None);
        }
    }
}
