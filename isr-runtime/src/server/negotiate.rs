//! Which stored encoding of a page a request gets, from its `accept-encoding` (RFC 9110
//! §12.5.3): the highest q-value among the encodings stored, brotli before gzip on a tie,
//! identity when the client sends no `accept-encoding` or accepts nothing else that is stored.

use crate::encoding::Encoding;
use axum::http::{header, HeaderMap};

/// At most this many codings of one `accept-encoding` are looked at (a client sends a few).
const MAX_CODINGS: usize = 32;

/// The encoding to answer with, among those `stored` says are there (identity always is).
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue, header::ACCEPT_ENCODING};
/// use isr::encoding::Encoding;
/// let all = |_: Encoding| true;
/// let mut headers = HeaderMap::new();
/// assert_eq!(isr::server::preferred_encoding(&headers, all), Encoding::Identity);
/// headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br"));
/// assert_eq!(isr::server::preferred_encoding(&headers, all), Encoding::Brotli);
/// headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br;q=0.5, gzip"));
/// assert_eq!(isr::server::preferred_encoding(&headers, all), Encoding::Gzip);
/// headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("br;q=0, *"));
/// assert_eq!(isr::server::preferred_encoding(&headers, all), Encoding::Gzip);
/// assert_eq!(isr::server::preferred_encoding(&headers, |e| e != Encoding::Gzip), Encoding::Identity);
/// ```
pub fn preferred_encoding(headers: &HeaderMap, stored: impl Fn(Encoding) -> bool) -> Encoding {
    let mut listed = false;
    let mut quality = [None::<f32>; 3]; // brotli, gzip, identity
    let mut any = None::<f32>;
    let values = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for member in values.flat_map(|v| v.split(',')).take(MAX_CODINGS) {
        let mut parts = member.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        if coding.is_empty() {
            continue;
        }
        listed = true;
        let Some(q) = q_value(parts) else {
            continue; // a malformed weight: ignore the member
        };
        let slot = if coding.eq_ignore_ascii_case("br") {
            Some(0)
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            Some(1)
        } else if coding.eq_ignore_ascii_case("identity") {
            Some(2)
        } else {
            None
        };
        match slot {
            Some(i) => quality[i] = Some(quality[i].map_or(q, |old: f32| old.max(q))),
            None if coding == "*" => any = Some(q),
            None => {}
        }
    }
    if !listed {
        return Encoding::Identity;
    }
    // Identity is the answer of last resort: when not named, at the lowest weight.
    let mut best = Encoding::Identity;
    let mut best_q = quality[2].unwrap_or(0.0);
    for (i, encoding) in [Encoding::Brotli, Encoding::Gzip].into_iter().enumerate() {
        let q = quality[i].or(any).unwrap_or(0.0);
        let better = q > best_q || (q == best_q && best == Encoding::Identity);
        if q > 0.0 && better && stored(encoding) {
            best = encoding;
            best_q = q;
        }
    }
    best
}

/// The `q` weight of one coding's parameters (1 when absent); `None` when malformed.
fn q_value<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            let q: f32 = value.trim().parse().ok()?;
            return (0.0..=1.0).contains(&q).then_some(q);
        }
    }
    Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pick(accept: &str) -> Encoding {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        preferred_encoding(&headers, |_| true)
    }

    #[test]
    fn q_values_decide_and_brotli_wins_ties() {
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br"), Encoding::Brotli);
        assert_eq!(pick("gzip, br"), Encoding::Brotli);
        assert_eq!(pick("gzip;q=1.0, br;q=0.9"), Encoding::Gzip);
        assert_eq!(pick("BR;Q=0.7, GZIP;q=0.2"), Encoding::Brotli);
        assert_eq!(pick("x-gzip"), Encoding::Gzip);
        assert_eq!(pick("*"), Encoding::Brotli);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(pick("identity, gzip;q=0.5"), Encoding::Identity);
        assert_eq!(pick("gzip;q=0.5, identity;q=0.1"), Encoding::Gzip);
    }

    #[test]
    fn refused_unknown_or_malformed_codings_fall_back_to_identity() {
        assert_eq!(pick("br;q=0, gzip;q=0"), Encoding::Identity);
        assert_eq!(pick("deflate, compress"), Encoding::Identity);
        assert_eq!(pick("gzip;q=2"), Encoding::Identity);
        assert_eq!(pick("gzip;q=high, br;q=0.1"), Encoding::Brotli);
        assert_eq!(pick(""), Encoding::Identity);
        assert_eq!(pick(" , ;q=1"), Encoding::Identity);
        assert_eq!(pick("*;q=0"), Encoding::Identity);
    }

    #[test]
    fn only_stored_encodings_are_chosen() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        let without_br = preferred_encoding(&headers, |e| e != Encoding::Brotli);
        assert_eq!(without_br, Encoding::Gzip);
        let identity_only = preferred_encoding(&headers, |e| e == Encoding::Identity);
        assert_eq!(identity_only, Encoding::Identity);
    }

    #[test]
    fn a_huge_header_is_read_only_up_to_its_first_codings() {
        let accept = format!("{}br", "unknown, ".repeat(1000));
        assert_eq!(pick(&accept), Encoding::Identity);
    }
}
