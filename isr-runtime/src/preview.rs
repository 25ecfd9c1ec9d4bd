//! Editors' previews: signed links, and the cookie a valid link sets.
//!
//! A CMS (or `<app> preview-link`) makes a link with the site's preview secret
//! (`ISR_PREVIEW_SECRET`):
//!
//! ```text
//! GET /_isr/preview?path=/blog/draft&expires=1767225600&sig=<hex HMAC-SHA256(secret, "/blog/draft\n1767225600")>
//! ```
//!
//! `sig` is the lowercase hex HMAC-SHA256, keyed with the secret, of the path, a newline
//! (`\n`) and `expires` (Unix time in seconds, in decimal). The path is the value of `path`
//! after the query's percent-decoding. A valid link that has not expired sets the cookie
//! [`COOKIE`] and redirects to the path; with the cookie every page is rendered for that
//! request only, with `Preview(true)` (see `isr::Preview`), until `expires`.
//!
//! The cookie holds `expires` and an HMAC of it under a key derived from the secret (never the
//! secret itself, so no cookie is a link's signature nor the reverse, whatever a signer signs):
//! it holds no secret, cannot be forged or extended without the secret, and is checked on every
//! request in constant time. A link may not end more than [`MAX_TTL`] after it is opened. A
//! change of the secret ends every preview at once. Nothing here knows about HTTP: the routes are in
//! [`crate::server::preview`].
//!
//! ```
//! use isr::preview::{PreviewKey, Refused};
//! let key = PreviewKey::new("0123456789abcdef0123").unwrap();
//! let now = 1_767_225_000;
//! let sig = key.link_signature("/blog/draft", now + 600);
//! assert_eq!(key.check_link("/blog/draft", now + 600, &sig, now), Ok(()));
//! assert_eq!(key.check_link("/blog/other", now + 600, &sig, now), Err(Refused::Signature));
//! assert_eq!(key.check_link("/blog/draft", now + 600, &sig, now + 600), Err(Refused::Expired));
//! let cookie = key.cookie_value(now + 600);
//! assert!(key.cookie_is_valid(&cookie, now) && !key.cookie_is_valid(&cookie, now + 600));
//! assert!(!key.cookie_is_valid(&format!("{}{}", now + 6000, &cookie[10..]), now), "extended");
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The route of preview links.
pub const LINK_PATH: &str = "/_isr/preview";

/// The route that ends a preview (clears the cookie), then redirects to `?path=` (or `/`).
pub const EXIT_PATH: &str = "/_isr/preview/exit";

/// The cookie a valid link sets: `<expires>.<hex HMAC>`, `HttpOnly`, `SameSite=Lax`, `Path=/`,
/// `Secure` over https, ending at the link's `expires`.
pub const COOKIE: &str = "isr_preview";

/// The longest path a link may name, in bytes.
pub const MAX_PATH_LEN: usize = 2048;

/// The key that signs and checks preview links and cookies (from `ISR_PREVIEW_SECRET`). Its
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct PreviewKey {
    secret: Arc<[u8]>,
    /// HMAC-SHA256(secret, "isr preview cookie key"): what cookies are signed with.
    cookie_key: Arc<[u8]>,
}

impl fmt::Debug for PreviewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreviewKey(..)")
    }
}

/// Why a preview link is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The signature is not the secret's for this path and time (forged, or altered).
    Signature,
    /// The link's `expires` has passed.
    Expired,
}

impl PreviewKey {
    /// The key of `secret` (at least [`MIN_SECRET_LEN`](crate::server::auth::MIN_SECRET_LEN)
    /// characters).
    ///
    /// ```
    /// assert!(isr::preview::PreviewKey::new("short").is_err());
    /// assert!(!format!("{:?}", isr::preview::PreviewKey::new("0123456789abcdef").unwrap()).contains("0123"));
    /// ```
    ///
    /// # Errors
    /// When the secret is too short; the message names `ISR_PREVIEW_SECRET`.
    pub fn new(secret: &str) -> Result<Self, String> {
        crate::server::auth::check_secret("--preview-secret / ISR_PREVIEW_SECRET", secret)?;
        let cookie_key = hmac(secret.as_bytes(), &[b"isr preview cookie key"]);
        Ok(PreviewKey {
            secret: Arc::from(secret.as_bytes()),
            cookie_key: Arc::from(cookie_key.as_slice()),
        })
    }

    fn mac(&self, message: &[&[u8]]) -> String {
        crate::random::to_hex(&hmac(&self.secret, message))
    }

    /// The `sig` of a link to `path` that ends at `expires` (Unix seconds): lowercase hex of
    /// HMAC-SHA256 of `path`, `\n` and `expires` in decimal.
    pub fn link_signature(&self, path: &str, expires: u64) -> String {
        self.mac(&[path.as_bytes(), b"\n", expires.to_string().as_bytes()])
    }

    /// The query of a link to `path` ending at `expires`, percent-encoded: what follows
    /// `/_isr/preview?`.
    ///
    /// ```
    /// let key = isr::preview::PreviewKey::new("0123456789abcdef").unwrap();
    /// let query = key.link_query("/blog/a b", 1_767_225_600);
    /// assert!(query.starts_with("path=%2Fblog%2Fa%20b&expires=1767225600&sig="), "{query}");
    /// ```
    pub fn link_query(&self, path: &str, expires: u64) -> String {
        let sig = self.link_signature(path, expires);
        let path = percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC);
        format!("path={path}&expires={expires}&sig={sig}")
    }

    /// Checks a link's signature (in constant time), then its time: at `now` (Unix seconds)
    /// it must not have expired.
    ///
    /// # Errors
    /// [`Refused::Signature`] for a signature that is not the secret's for `path` and
    /// `expires` (upper-case hex is accepted), and for a `path` that is not
    /// [local](is_local_path) (so no cookie's MAC is ever a link's signature);
    /// [`Refused::Expired`] at or after `expires`.
    pub fn check_link(&self, path: &str, expires: u64, sig: &str, now: u64) -> Result<(), Refused> {
        if !is_local_path(path) {
            return Err(Refused::Signature);
        }
        let expected = self.link_signature(path, expires);
        let given = sig.trim().to_ascii_lowercase();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Refused::Signature);
        }
        if now >= expires {
            return Err(Refused::Expired);
        }
        Ok(())
    }

    /// The cookie's value for a preview that ends at `expires`.
    pub fn cookie_value(&self, expires: u64) -> String {
        format!("{expires}.{}", self.cookie_mac(expires))
    }

    fn cookie_mac(&self, expires: u64) -> String {
        crate::random::to_hex(&hmac(&self.cookie_key, &[expires.to_string().as_bytes()]))
    }

    /// Whether `value` is a cookie this key made and it has not ended at `now` (Unix seconds).
    pub fn cookie_is_valid(&self, value: &str, now: u64) -> bool {
        let Some((expires, mac)) = value.split_once('.') else {
            return false;
        };
        let Some(expires) = canonical_seconds(expires) else {
            return false;
        };
        let expected = self.cookie_mac(expires);
        bool::from(mac.as_bytes().ct_eq(expected.as_bytes())) && now < expires
    }
}

/// Unix time now, in whole seconds: what links' `expires` and cookies are compared with.
pub fn unix_now() -> u64 {
    isr_core::model::unix_ms(std::time::SystemTime::now()) / 1000
}

/// HMAC-SHA256 of the concatenated `message` under `key`.
fn hmac(key: &[u8], message: &[&[u8]]) -> [u8; 32] {
    // A key of any length is valid for HMAC: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in message {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether a link ending at `expires` may be opened at `now`: at most [`MAX_TTL`] ahead (a
/// CMS that wrote milliseconds, or a link meant to last for years, is refused).
///
/// ```
/// use isr::preview::{within_max_ttl, MAX_TTL};
/// assert!(within_max_ttl(1_000 + MAX_TTL.as_secs(), 1_000));
/// assert!(!within_max_ttl(1_001 + MAX_TTL.as_secs(), 1_000));
/// ```
pub fn within_max_ttl(expires: u64, now: u64) -> bool {
    expires.saturating_sub(now) <= MAX_TTL.as_secs()
}

/// A decimal number of seconds as a link or cookie writes it (digits only, no leading zero, at
/// most 20 digits), so one time has one text.
///
/// ```
/// use isr::preview::canonical_seconds;
/// assert_eq!(canonical_seconds("1767225600"), Some(1_767_225_600));
/// assert_eq!(canonical_seconds("0"), Some(0));
/// assert_eq!(canonical_seconds("+1"), None);
/// assert_eq!(canonical_seconds("01"), None);
/// assert_eq!(canonical_seconds(""), None);
/// ```
pub fn canonical_seconds(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Whether `path` may be a preview link's target: a path on this site (one leading `/`, not
/// `//` or `/\`, which browsers read as another host), with an optional query, no fragment,
/// no control characters, at most [`MAX_PATH_LEN`] bytes.
///
/// ```
/// use isr::preview::is_local_path;
/// assert!(is_local_path("/blog/draft") && is_local_path("/blog?page=2") && is_local_path("/"));
/// for outside in ["//evil.example", "/\\evil.example", "https://evil.example", "blog", "", "/a\r\nSet-Cookie: x", "/a#b"] {
///     assert!(!is_local_path(outside), "{outside:?}");
/// }
/// ```
pub fn is_local_path(path: &str) -> bool {
    let mut bytes = path.bytes();
    bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && path.len() <= MAX_PATH_LEN
        && !path.chars().any(|c| c.is_control() || c == '#')
}

/// A `Location` for a local path: what is not allowed in a header value or a URL (spaces,
/// quotes, non-ASCII…) percent-encoded, the rest (`/`, `?`, `&`, `=`, `%`) kept.
///
/// ```
/// assert_eq!(isr::preview::location("/blog/café?x=1 2"), "/blog/caf%C3%A9?x=1%202");
/// ```
pub fn location(path: &str) -> String {
    const UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'<')
        .add(b'>')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'|')
        .add(b'\\')
        .add(b'^');
    percent_encoding::utf8_percent_encode(path, UNSAFE).to_string()
}

/// The longest lifetime of a link: `<app> preview-link --ttl` gives at most this, and a link
/// ending later is refused (`400`).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A link lifetime as `--ttl` takes it: seconds (`90`), or a number with a unit (`90s`,
/// `10m`, `1h`, `2d`), from one second to [`MAX_TTL`]. Written here rather than with a
/// duration crate: four units are all a link's lifetime needs.
///
/// ```
/// use std::time::Duration;
/// use isr::preview::parse_ttl;
/// assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
/// assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
/// assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
/// assert!(parse_ttl("0").is_err() && parse_ttl("1w").is_err() && parse_ttl("31d").is_err() && parse_ttl("").is_err());
/// ```
///
/// # Errors
/// A message naming `--ttl` for anything else.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| (1..=MAX_TTL.as_secs()).contains(s));
    seconds.map(Duration::from_secs).ok_or_else(|| {
        format!(
            "invalid --ttl {text:?}: expected seconds (90) or a number with s, m, h or d (10m, 1h), at most {} days",
            MAX_TTL.as_secs() / 86_400
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented signature, computed from RFC 2104 with `sha2` alone: what a CMS computes.
    fn hmac_by_hand(key: &[u8], message: &[u8]) -> String {
        use sha2::Digest;
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        crate::random::to_hex(&outer)
    }

    #[test]
    fn the_signature_is_the_documented_hmac_of_path_newline_expires() {
        let key = PreviewKey::new("a-preview-secret-of-some-length").unwrap();
        assert_eq!(
            key.link_signature("/blog/draft", 1_767_225_600),
            hmac_by_hand(
                b"a-preview-secret-of-some-length",
                b"/blog/draft\n1767225600"
            )
        );
    }

    #[test]
    fn links_and_cookies_of_one_key_are_refused_by_another() {
        let (a, b) = (
            PreviewKey::new("0123456789abcdef-a").unwrap(),
            PreviewKey::new("0123456789abcdef-b").unwrap(),
        );
        let sig = a.link_signature("/x", 100);
        assert_eq!(b.check_link("/x", 100, &sig, 50), Err(Refused::Signature));
        assert_eq!(a.check_link("/x", 100, &sig.to_uppercase(), 50), Ok(()));
        assert!(!b.cookie_is_valid(&a.cookie_value(100), 50));
        // A link's signature is not a cookie, and a cookie's MAC is no link's signature,
        // whatever path a signer signs.
        assert!(!a.cookie_is_valid(&format!("100.{sig}"), 50));
        let cookie_mac = a.cookie_value(100).split_once('.').unwrap().1.to_owned();
        for path in ["isr-preview-cookie", "", "/"] {
            assert_ne!(a.link_signature(path, 100), cookie_mac);
        }
        assert_ne!(
            hmac_by_hand(b"0123456789abcdef-a", b"100"),
            cookie_mac,
            "not the secret's own HMAC of the time"
        );
    }

    #[test]
    fn a_tampered_or_malformed_cookie_is_not_valid() {
        let key = PreviewKey::new("0123456789abcdef").unwrap();
        let good = key.cookie_value(1000);
        assert!(key.cookie_is_valid(&good, 999));
        for bad in [
            "",
            "1000",
            "1000.",
            "01000.x",
            &good.replacen("1000", "+1000", 1),
            &good[..good.len() - 1],
            &format!("{good}0"),
        ] {
            assert!(!key.cookie_is_valid(bad, 0), "{bad:?}");
        }
    }
}
