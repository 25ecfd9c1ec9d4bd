//! Unpredictable values from the operating system's random source (`getrandom`): what an
//! attacker must not guess (session ids, the nonces that delimit rendered head content).
//! `fastrand` stays for jitter and sampling, where predictability does no harm.

/// A random `u64`.
pub(crate) fn u64() -> u64 {
    u64::from_le_bytes(bytes::<8>())
}

/// `N` random bytes. Panics only when the OS has no random source at all, which no platform
/// isr runs on lacks (a server without one cannot keep any secret).
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source is available");
    out
}

/// `N` random bytes as lowercase hex (`2 × N` characters).
pub(crate) fn hex<const N: usize>() -> String {
    to_hex(&bytes::<N>())
}

/// `bytes` as lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_differ_and_hex_has_twice_the_bytes() {
        assert_ne!(super::u64(), super::u64());
        let id = super::hex::<16>();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(id, super::hex::<16>());
    }
}
