//! The strong validator of a page's bytes, as a fixed-size value.

use super::encoding::Encoding;
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

    /// The 32 lowercase hex digits, without quotes.
    ///
    /// Formatted with a digit table rather than `fmt` (sixteen `{:02x}` calls cost ~1,300
    /// instructions; this runs each time a page is read back from the store).
    ///
    /// ```
    /// let e = isr::store::Etag::from_bytes([0xab; 16]);
    /// assert_eq!(&e.hex(), b"abababababababababababababababab");
    /// ```
    pub fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        hex
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
        let hex = self.hex();
        f.write_str("\"")?;
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)?;
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

/// The strong validator of each encoding of one page (`"<hex>"`, `"<hex>-gz"`, `"<hex>-br"`),
/// formatted once into one shared buffer: a page copy costs one allocation for all three, and
/// its `ETag` header values are slices of the same bytes ([`RepresentationEtags::shared`]), not
/// copies. Empty for outcomes that have no bytes (not-found pages, redirects).
///
/// ```
/// use isr::encoding::Encoding;
/// use isr::store::{Etag, RepresentationEtags};
/// let etag = Etag::from_bytes([0x0f; 16]);
/// let etags = RepresentationEtags::of(etag);
/// assert_eq!(etags.get(Encoding::Identity), etag.to_string());
/// assert_eq!(etags.get(Encoding::Gzip), "\"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f-gz\"");
/// assert_eq!(etags.get(Encoding::Brotli), "\"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f-br\"");
/// assert_eq!(&etags.shared(Encoding::Brotli).unwrap()[..], etags.get(Encoding::Brotli).as_bytes());
/// assert_eq!(RepresentationEtags::default().get(Encoding::Identity), "");
/// assert!(RepresentationEtags::default().shared(Encoding::Gzip).is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RepresentationEtags {
    /// Every encoding's quoted etag, in the order of [`Encoding::ALL`] (empty: none).
    text: bytes::Bytes,
}

impl RepresentationEtags {
    /// The etags of the encodings of a page whose HTML has `etag`.
    pub fn of(etag: Etag) -> Self {
        let hex = etag.hex();
        let mut text = Vec::with_capacity(Self::span(Encoding::Brotli).end);
        for encoding in Encoding::ALL {
            text.push(b'"');
            text.extend_from_slice(&hex);
            text.extend_from_slice(encoding.etag_suffix().as_bytes());
            text.push(b'"');
        }
        RepresentationEtags { text: text.into() }
    }

    /// The quoted etag of `encoding` (empty when there are none).
    pub fn get(&self, encoding: Encoding) -> &str {
        self.text
            .get(Self::span(encoding))
            .and_then(|text| std::str::from_utf8(text).ok())
            .unwrap_or("")
    }

    /// The same text as [`get`](Self::get), sharing this buffer (`None` when there are none).
    pub fn shared(&self, encoding: Encoding) -> Option<bytes::Bytes> {
        let span = Self::span(encoding);
        (span.end <= self.text.len()).then(|| self.text.slice(span))
    }

    /// Where the etag of `encoding` lies in `text`: after those of the encodings before it.
    fn span(encoding: Encoding) -> std::ops::Range<usize> {
        let len = |e: Encoding| QUOTED_LEN + e.etag_suffix().len();
        let start: usize = Encoding::ALL[..encoding.index()]
            .iter()
            .map(|&e| len(e))
            .sum();
        start..start + len(encoding)
    }
}

/// The length of [`Etag`]'s quoted hex form.
const QUOTED_LEN: usize = 34;
