//! Small text and time helpers shared by every layer: lower-case hex, the
//! wall clock in seconds, and human sizes ("256M"). Leaf module: imports
//! nothing from the crate, so `crypto` may use it without pointing up.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Bytes of a hex string (either case); `None` for odd length or a non-hex
/// digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Exactly `N` bytes of hex; `None` for any other length or a bad digit.
pub fn unhex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    unhex(s)?.try_into().ok()
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a size such as "256M", "1G", "64K", "64KiB", "0" or "1048576"
/// (binary multiples); `None` if it is not one or overflows.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1u64 << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        't' | 'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let num = num.trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b: Vec<u8> = (0..=255).collect();
        let h = hex(&b);
        assert_eq!(&h[..8], "00010203");
        assert_eq!(unhex(&h).unwrap(), b);
        assert_eq!(unhex(&h.to_uppercase()).unwrap(), b);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex_array::<2>("0a0b"), Some([10, 11]));
        assert_eq!(unhex_array::<2>("0a0b0c"), None);
        assert_eq!(unhex_array::<2>("0a"), None);
    }

    #[test]
    fn sizes() {
        for (s, v) in [
            ("0", Some(0)),
            ("1048576", Some(1 << 20)),
            ("64K", Some(64 << 10)),
            ("64k", Some(64 << 10)),
            ("64KiB", Some(64 << 10)),
            ("256M", Some(256 << 20)),
            ("1G", Some(1 << 30)),
            ("2T", Some(2 << 40)),
            (" 8M ", Some(8 << 20)),
            ("", None),
            ("M", None),
            ("-1", None),
            ("+1", None),
            ("1.5G", None),
            ("99999999999999999999", None),
            ("16777216T", None),
        ] {
            assert_eq!(parse_size(s), v, "{s:?}");
        }
    }
}
