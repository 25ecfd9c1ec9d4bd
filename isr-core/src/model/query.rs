//! The query string of a page variant: the parameters a route lists in `query = [...]` name
//! their own page (`/blog?page=2`); every other parameter (`utm_*`, `fbclid`, anything not
//! listed) is dropped before routing and never reaches a loader or makes a page.
//!
//! One page has one key. The canonical text of a query is its listed parameters, by name in
//! byte order, each `name=value` with the value percent-encoded (everything but ASCII letters,
//! digits and `-._~`), joined with `&`. From a request: `+` is a space and `%XX` is decoded as
//! in a form; **a repeated parameter counts once, with its first value**; an empty value is
//! no value; a name or value that is not UTF-8 is dropped. Then the loader's `Query<T>` reads
//! the values back into `T` and writes them out again (`page=02` is `page=2`), dropping what
//! equals `T`'s default (`page=1` when the field defaults to 1): see
//! [`QuerySpec::canonical`](crate::page::QuerySpec).
//!
//! ```
//! use isr_core::model::query;
//! let wanted = ["page", "tag"];
//! let given = query::listed(Some("utm_source=x&tag=rust+news&page=2&page=3&tag=other"), &wanted);
//! assert_eq!(given, isr::Params::new().with("tag", "rust news").with("page", "2"));
//! assert_eq!(query::encode(&given), "page=2&tag=rust%20news");
//! let sorted = isr::Params::new().with("page", "2").with("tag", "rust news");
//! assert_eq!(query::decode("page=2&tag=rust%20news"), Some(sorted));
//! assert_eq!(query::decode("tag=rust%20news&page=2"), None, "not in order: not canonical");
//! ```

use crate::model::Params;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The longest canonical query of a key, in bytes: with its `?` and every `%` escaped again it
/// is still a valid file name (255 bytes) on every platform. A longer one names no page (404).
pub const MAX_QUERY_BYTES: usize = 120;

/// What a canonical value keeps as it is (RFC 3986's unreserved characters).
const VALUE_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The parameters of `raw` (a request's query, without `?`) whose names are in `wanted`, in
/// the order they first appear, decoded: the first value of a repeated parameter, no empty
/// values, nothing that is not UTF-8.
pub fn listed(raw: Option<&str>, wanted: &[&str]) -> Params {
    let mut found = Params::new();
    let Some(raw) = raw else {
        return found;
    };
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(name), Some(value)) = (form_decode(name), form_decode(value)) else {
            continue;
        };
        if value.is_empty() || !wanted.contains(&name.as_str()) || found.get(&name).is_ok() {
            continue;
        }
        found.insert(name, value);
    }
    found
}

/// `text` decoded as a form field: `+` is a space, `%XX` a byte; `None` when not UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The canonical text of `params` (names sorted, values percent-encoded, empty values left
/// out); `""` when there are none.
pub fn encode(params: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (name, value) in pairs {
        if !text.is_empty() {
            text.push('&');
        }
        text.push_str(name);
        text.push('=');
        text.extend(utf8_percent_encode(value, VALUE_ESCAPES));
    }
    text
}

/// The parameters of a canonical query text (a key's part after `?`); `None` when the text is
/// not canonical (what [`encode`] would write for what it holds), empty, or too long.
pub fn decode(text: &str) -> Option<Params> {
    if text.is_empty() || text.len() > MAX_QUERY_BYTES {
        return None;
    }
    let mut params = Params::new();
    for pair in text.split('&') {
        let (name, value) = pair.split_once('=')?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok || value.is_empty() || params.get(name).is_ok() {
            return None;
        }
        params.insert(
            name,
            percent_decode_str(value).decode_utf8().ok()?.into_owned(),
        );
    }
    (encode(&params) == text).then_some(params)
}

/// Whether `text` is a canonical query ([`decode`] reads it).
pub fn is_canonical(text: &str) -> bool {
    decode(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_query_has_one_text() {
        let wanted = ["page", "tag"];
        let spellings = [
            "page=2&tag=a%20b",
            "tag=a+b&page=2",
            "tag=a%20b&page=2&page=9",
            "fbclid=x&page=2&utm_source=y&tag=a+b",
            "page=2&tag=a%20b&tag=",
            "page=2&tag=a%20b&other",
        ];
        for raw in spellings {
            assert_eq!(
                encode(&listed(Some(raw), &wanted)),
                "page=2&tag=a%20b",
                "{raw}"
            );
        }
        assert_eq!(encode(&listed(Some("utm_source=x"), &wanted)), "");
        assert_eq!(encode(&listed(None, &wanted)), "");
        assert_eq!(encode(&listed(Some("page=%FF"), &wanted)), "", "not UTF-8");
    }

    #[test]
    fn only_canonical_texts_decode() {
        for good in ["page=2", "page=2&tag=a%20b", "tag=%C3%A9t%C3%A9"] {
            assert!(is_canonical(good), "{good}");
        }
        for bad in [
            "",
            "page",
            "page=",
            "tag=a&page=2",
            "page=2&page=3",
            "page=a+b",
            "page=a%2fb",
            "pa%20ge=2",
            "page=%FF",
            &format!("tag={}", "x".repeat(MAX_QUERY_BYTES)),
        ] {
            assert!(!is_canonical(bad), "{bad}");
        }
    }
}
