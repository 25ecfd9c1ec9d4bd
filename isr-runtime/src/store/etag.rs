//! The strong validator of a page's bytes, as a fixed-size value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// The first 128 bits of the SHA-256 of a page's bytes: 16 bytes in memory, shown as the quoted
/// hex string an HTTP `ETag` header carries.
///
/// ```
/// use isr::store::Etag;
/// let etag = Etag::of(b"hello");
/// assert_eq!(etag.to_string().len(), 34);
/// assert_eq!(etag, Etag::of(b"hello"));
/// assert_ne!(etag, Etag::of(b"hello!"));
/// assert_eq!(Etag::parse(&etag.to_string()), Some(etag));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Etag([u8; 16]);

impl Etag {
    /// The etag of `bytes`.
    ///
    /// ```
    /// assert!(isr::store::Etag::of(b"").to_string().starts_with('"'));
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut etag = [0; 16];
        etag.copy_from_slice(&digest[..16]);
        Etag(etag)
    }

    /// Parses the quoted hex form (`"0123…"`, 32 hex digits).
    ///
    /// ```
    /// assert!(isr::store::Etag::parse("\"xyz\"").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix('"')?.strip_suffix('"')?;
        if hex.len() != 32 {
            return None;
        }
        let mut etag = [0; 16];
        for (i, byte) in etag.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Etag(etag))
    }

    /// The raw 16 bytes.
    ///
    /// ```
    /// assert_eq!(isr::store::Etag::of(b"a").as_bytes().len(), 16);
    /// ```
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From the raw 16 bytes.
    ///
    /// ```
    /// let e = isr::store::Etag::of(b"a");
    /// assert_eq!(isr::store::Etag::from_bytes(*e.as_bytes()), e);
    /// ```
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Etag(bytes)
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Etag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Etag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Etag::parse(&text).ok_or_else(|| serde::de::Error::custom("not a quoted 32-digit hex etag"))
    }
}
