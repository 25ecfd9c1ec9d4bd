//! The names of everything isr keeps in Redis, under one prefix.
//!
//! ```text
//! <prefix>:page:<key>   hash   gen, fence, etag, meta (JSON), origin, identity, gzip, br,
//!                              mark (an invalidation's mark, JSON, until a regeneration)
//! <prefix>:lease:<key>  string fencing token of the instance regenerating the page (PX ttl)
//! <prefix>:tag:<tag>    set    keys of the pages that carry the tag
//! <prefix>:fence        string the last fencing token handed out (INCR)
//! <prefix>:events       stream one entry per commit: k (key), g (generation), o (origin);
//!                              one per batch of invalidation marks: marks (JSON [[key, mark]…]), o
//! <prefix>:epoch        string random id written when the data set is new (lost data = new id)
//! ```
//!
//! Page keys are canonical decoded paths; they are used as they are (Redis keys are binary
//! safe), so two keys never collide.

/// The key names of one site (one prefix).
///
/// ```
/// let keys = isr::shared::RedisKeys::new("blog");
/// assert_eq!(keys.page("/blog/hello"), "blog:page:/blog/hello");
/// assert_eq!(keys.tag_prefix(), "blog:tag:");
/// ```
#[derive(Clone, Debug)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    /// Key names under `prefix` (`<prefix>:…`).
    pub fn new(prefix: &str) -> Self {
        RedisKeys {
            prefix: prefix.to_string(),
        }
    }

    /// The hash holding one page.
    pub fn page(&self, key: &str) -> String {
        format!("{}:page:{key}", self.prefix)
    }

    /// The lease of one page.
    pub fn lease(&self, key: &str) -> String {
        format!("{}:lease:{key}", self.prefix)
    }

    /// What every tag set's name starts with (the commit script appends the tag).
    pub fn tag_prefix(&self) -> String {
        format!("{}:tag:", self.prefix)
    }

    /// The set of keys carrying `tag`.
    pub fn tag(&self, tag: &str) -> String {
        format!("{}:tag:{tag}", self.prefix)
    }

    /// The fencing token counter.
    pub fn fence(&self) -> String {
        format!("{}:fence", self.prefix)
    }

    /// The event stream.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// The data set's epoch.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
}
