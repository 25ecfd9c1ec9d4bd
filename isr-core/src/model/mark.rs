//! [`Mark`]: what an on-demand invalidation left on a stored version instead of regenerating
//! it (modes `stale` and `expire`).

use serde::{Deserialize, Serialize};

/// How a marked version is served until it is regenerated.
///
/// ```
/// assert_eq!(isr::store::MarkMode::Stale.as_str(), "stale");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkMode {
    /// Served stale: the next request gets it at once and starts its regeneration.
    Stale,
    /// Expired: the next request waits for the new version.
    Expire,
}

impl MarkMode {
    /// The name in the API, logs and `cache-status`.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkMode::Stale => "stale",
            MarkMode::Expire => "expire",
        }
    }
}

/// An invalidation's mark on a stored version: persisted with it, cleared by a generation of
/// the page that started after `at_ms`.
///
/// ```
/// let mark = isr::store::Mark::new(isr::store::MarkMode::Expire, 1_700_000_000_000, "tag posts");
/// assert_eq!(mark.cause, "tag posts");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    /// How the version is served until regenerated.
    pub mode: MarkMode,
    /// When the invalidation was made (ms since the Unix epoch): a generation that started
    /// before it does not clear it (its loader may have read the old data).
    pub at_ms: u64,
    /// What named the page: `tag <tag>` or `path <path>` (shown in `cache-status`).
    pub cause: String,
}

impl Mark {
    /// A mark of `mode` made at `at_ms` because of `cause`.
    pub fn new(mode: MarkMode, at_ms: u64, cause: impl Into<String>) -> Self {
        Mark {
            mode,
            at_ms,
            cause: cause.into(),
        }
    }
}
