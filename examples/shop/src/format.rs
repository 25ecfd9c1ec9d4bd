//! Small pure helpers shared by the server and the browser: money, stock, ids in URLs.

/// Formats a price in cents as dollars, with thousands separators.
///
/// ```
/// assert_eq!(shop::format::price(1299), "$12.99");
/// assert_eq!(shop::format::price(5), "$0.05");
/// assert_eq!(shop::format::price(123_456_789), "$1,234,567.89");
/// ```
pub fn price(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let dollars = (cents / 100).to_string();
    let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
    for (i, digit) in dollars.chars().enumerate() {
        if i > 0 && (dollars.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// The stock line of a product page.
///
/// ```
/// assert_eq!(shop::format::stock(0), "out of stock");
/// assert_eq!(shop::format::stock(1), "1 in stock");
/// assert_eq!(shop::format::stock(42), "42 in stock");
/// ```
pub fn stock(count: i64) -> String {
    if count <= 0 {
        "out of stock".to_string()
    } else {
        format!("{count} in stock")
    }
}

/// Parses a positive integer written the canonical way (`1`, `42`; not `01`, `+1`, `1.0`, `0`),
/// so that every product and catalogue page has exactly one URL.
///
/// ```
/// use shop::format::parse_positive;
/// assert_eq!(parse_positive("42"), Some(42));
/// assert_eq!(parse_positive("042"), None);
/// assert_eq!(parse_positive("+4"), None);
/// assert_eq!(parse_positive("0"), None);
/// assert_eq!(parse_positive("abc"), None);
/// assert_eq!(parse_positive("99999999999999999999"), None);
/// ```
pub fn parse_positive(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && !text.starts_with('0')
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit());
    if !canonical {
        return None;
    }
    text.parse::<i64>().ok().filter(|n| *n > 0)
}

/// The path of catalogue page `n` (page 1 is `/products`).
///
/// ```
/// assert_eq!(shop::format::catalogue_path(1), "/products");
/// assert_eq!(shop::format::catalogue_path(3), "/products/page/3");
/// ```
pub fn catalogue_path(n: i64) -> String {
    if n <= 1 {
        "/products".to_string()
    } else {
        format!("/products/page/{n}")
    }
}

/// The path of a product page.
///
/// ```
/// assert_eq!(shop::format::product_path(7), "/products/7");
/// ```
pub fn product_path(id: i64) -> String {
    format!("/products/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        for (cents, text) in [
            (0, "$0.00"),
            (99, "$0.99"),
            (100, "$1.00"),
            (99_999, "$999.99"),
            (100_000, "$1,000.00"),
            (100_000_000, "$1,000,000.00"),
            (-250, "-$2.50"),
        ] {
            assert_eq!(price(cents), text, "{cents}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(parse_positive("1"), Some(1));
        assert_eq!(parse_positive("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_positive("9223372036854775808"), None);
        for bad in ["", "-1", " 1", "1 ", "1e3", "0x10", "１"] {
            assert_eq!(parse_positive(bad), None, "{bad:?}");
        }
    }
}
