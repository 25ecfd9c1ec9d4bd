//! A page's bytes in every content encoding isr serves: identity, gzip and brotli.
//!
//! Pages are compressed once, when they are generated, never per request. Levels: gzip 9 (at
//! page sizes it costs about what level 6 costs, ~0.1 ms for 4 KB) and brotli quality 5
//! (within ~12 % of quality 11's size at ~1/25 of its time: quality 11 takes ~10 ms for a 4 KB
//! page, which a 100,000-page build cannot afford). `bench/run` reports sizes and times.
//!
//! The identity bytes are the truth (the page's etag is their hash); a compressed variant read
//! back from a store is trusted only after it decompresses to exactly those bytes
//! ([`Variants::verified`]).

use bytes::Bytes;
use std::io::{Read, Write};

/// gzip level of generated pages.
pub const GZIP_LEVEL: u32 = 9;

/// brotli quality of generated pages (0–11).
pub const BROTLI_QUALITY: u32 = 5;

/// brotli window (log2 of bytes), the format's default.
const BROTLI_WINDOW: u32 = 22;

/// Largest decompressed size [`Variants::verified`] accepts before it stops reading (a
/// variant of a page can never be larger than the page).
const MAX_EXPANSION_SLACK: u64 = 1;

/// A content encoding of a page body.
///
/// ```
/// use isr::encoding::Encoding;
/// assert_eq!(Encoding::Brotli.token(), "br");
/// assert_eq!(Encoding::Gzip.file_suffix(), ".gz");
/// assert_eq!(Encoding::Identity.file_suffix(), "");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The bytes as rendered.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// brotli (RFC 7932).
    Brotli,
}

/// Whether responses of `content_type` are worth compressing (text, XML, JSON, JavaScript, SVG).
///
/// ```
/// use isr::encoding::compressible;
/// assert!(compressible("text/html; charset=utf-8") && compressible("application/rss+xml"));
/// assert!(compressible("application/json") && compressible("image/svg+xml"));
/// assert!(!compressible("image/png") && !compressible("application/octet-stream"));
/// ```
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/manifest+json"
        )
}

impl Encoding {
    /// Every encoding, in order of preference when a client accepts several equally.
    pub const PREFERENCE: [Encoding; 3] = [Encoding::Brotli, Encoding::Gzip, Encoding::Identity];

    /// Every encoding, in the order of [`Encoding::index`].
    pub const ALL: [Encoding; 3] = [Encoding::Identity, Encoding::Gzip, Encoding::Brotli];

    /// This encoding's position in [`Encoding::ALL`] (for per-encoding arrays).
    ///
    /// ```
    /// use isr::encoding::Encoding;
    /// assert!(Encoding::ALL.iter().enumerate().all(|(i, e)| e.index() == i));
    /// ```
    pub fn index(self) -> usize {
        match self {
            Encoding::Identity => 0,
            Encoding::Gzip => 1,
            Encoding::Brotli => 2,
        }
    }

    /// The `content-encoding` / `accept-encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }

    /// What the static export appends to `index.html` for this encoding (the names nginx's
    /// `gzip_static` and `brotli_static` look for).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }

    /// What the strong etag of this encoding appends to the identity hash inside the quotes
    /// (each encoding is its own representation: RFC 9110 §8.8.3).
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => "-gz",
            Encoding::Brotli => "-br",
        }
    }
}

/// One page's bytes: the rendered HTML and, when present, its gzip and brotli variants.
///
/// ```
/// use isr::encoding::{Encoding, Variants};
/// let html = bytes::Bytes::from("<p>hello hello hello hello</p>".repeat(20));
/// let page = Variants::compress(html.clone());
/// assert_eq!(page.get(Encoding::Identity), Some(&html));
/// assert!(page.get(Encoding::Brotli).unwrap().len() < html.len());
/// assert!(page.clone().verified().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variants {
    /// The HTML as rendered.
    pub identity: Bytes,
    /// gzip of `identity`, if stored.
    pub gzip: Option<Bytes>,
    /// brotli of `identity`, if stored.
    pub brotli: Option<Bytes>,
}

impl Variants {
    /// Only the identity bytes (a store written before variants existed, or a test).
    ///
    /// ```
    /// let page = isr::encoding::Variants::identity_only(bytes::Bytes::from_static(b"x"));
    /// assert!(page.gzip.is_none() && page.brotli.is_none());
    /// ```
    pub fn identity_only(identity: Bytes) -> Variants {
        Variants {
            identity,
            gzip: None,
            brotli: None,
        }
    }

    /// Compresses `identity` with gzip and brotli (CPU work: call it off the async workers).
    pub fn compress(identity: Bytes) -> Variants {
        let gzip = gzip(&identity);
        let brotli = brotli(&identity);
        Variants {
            identity,
            gzip: Some(Bytes::from(gzip)),
            brotli: Some(Bytes::from(brotli)),
        }
    }

    /// The bytes of `encoding`, if stored.
    pub fn get(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Identity => Some(&self.identity),
            Encoding::Gzip => self.gzip.as_ref(),
            Encoding::Brotli => self.brotli.as_ref(),
        }
    }

    /// Bytes held in all encodings together.
    ///
    /// ```
    /// let page = isr::encoding::Variants::identity_only(bytes::Bytes::from_static(b"abc"));
    /// assert_eq!(page.total_len(), 3);
    /// ```
    pub fn total_len(&self) -> u64 {
        Encoding::PREFERENCE
            .iter()
            .filter_map(|e| self.get(*e))
            .map(|b| b.len() as u64)
            .sum()
    }

    /// `self`, if every stored variant decompresses to exactly the identity bytes; otherwise
    /// the encoding that does not (CPU work: call it off the async workers).
    ///
    /// # Errors
    /// The first encoding (gzip, then brotli) whose bytes fail to decompress, decompress to
    /// other bytes, or expand past the identity length plus a small slack.
    pub fn verified(self) -> Result<Variants, Encoding> {
        let limit = self.identity.len() as u64 + MAX_EXPANSION_SLACK;
        if let Some(gzip) = &self.gzip {
            let decoded = read_limited(flate2::read::GzDecoder::new(&gzip[..]), limit);
            if decoded.as_deref() != Some(&self.identity[..]) {
                return Err(Encoding::Gzip);
            }
        }
        if let Some(brotli) = &self.brotli {
            let decoded = read_limited(brotli::Decompressor::new(&brotli[..], 4096), limit);
            if decoded.as_deref() != Some(&self.identity[..]) {
                return Err(Encoding::Brotli);
            }
        }
        Ok(self)
    }
}

fn read_limited(reader: impl Read, limit: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit).read_to_end(&mut out).ok()?;
    Some(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    {
        let mut encoder =
            brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
        encoder.write_all(data).expect("brotli into memory");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Bytes {
        Bytes::from("<!DOCTYPE html><p>an isr page, repeated</p>\n".repeat(100))
    }

    #[test]
    fn variants_decompress_to_the_page_and_are_smaller() {
        let page = Variants::compress(page());
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            let bytes = page.get(encoding).unwrap();
            assert!(bytes.len() * 4 < page.identity.len(), "{encoding:?}");
        }
        assert_eq!(page.clone().verified(), Ok(page));
    }

    #[test]
    fn a_variant_of_other_bytes_or_a_truncated_one_is_rejected() {
        let mut page = Variants::compress(page());
        let other = Variants::compress(Bytes::from_static(b"<p>another page</p>"));
        page.brotli = other.brotli;
        assert_eq!(page.clone().verified(), Err(Encoding::Brotli));

        let mut page = Variants::compress(page.identity);
        let gzip = page.gzip.take().unwrap();
        page.gzip = Some(gzip.slice(..gzip.len() - 9));
        assert_eq!(page.verified(), Err(Encoding::Gzip));
    }

    #[test]
    fn a_variant_that_expands_past_the_page_is_rejected_without_reading_it_all() {
        let small = Bytes::from_static(b"<p>small</p>");
        let huge = Variants::compress(Bytes::from(vec![b'a'; 10 << 20]));
        let page = Variants {
            identity: small,
            gzip: huge.gzip,
            brotli: None,
        };
        assert_eq!(page.verified(), Err(Encoding::Gzip));
    }
}
