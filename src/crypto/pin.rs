//! Archive pins: a short printable name for one archive that only a holder
//! of its data key can satisfy.
//!
//! FORMAT.md "Archive pin": `pin = SHA-256("hpcs/v1 archive-pin" ||
//! archive_id || key_check)[..16]`, printed as `hpcspin1-` followed by the 16
//! bytes in lowercase RFC 4648 base32 without padding (26 characters, the
//! last one carrying 3 bits and two zero bits). Pure function of two header
//! fields: `rewrap` (same id, same key) keeps the pin; a new pack of the same
//! tree, an older version, or an archive by someone else has another one.
//!
//! The pin alone is public and proves nothing: anybody can copy an archive id
//! and key check into a header of their own. A reader that expects a pin
//! therefore also needs the key check to hold for the key it unlocks with
//! (`SealedArchive::unlock` checks it), and reports a key that does not match
//! a pinned header as a pin failure, not as a plain wrong key.

use sha2::{Digest, Sha256};

use super::keys::ct_eq;

/// Every pin starts with this (names the scheme and its version).
pub const PREFIX: &str = "hpcspin1-";
/// Bytes of SHA-256 output kept: 128 bits.
pub const PIN_BYTES: usize = 16;
/// Characters of base32 after the prefix.
pub const PIN_CHARS: usize = 26;
const LABEL: &[u8] = b"hpcs/v1 archive-pin";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// An archive pin (see the module doc). `Display` gives the printable form.
#[derive(Clone, Copy, Debug)]
pub struct Pin([u8; PIN_BYTES]);

impl Pin {
    /// The pin of the archive with this id and key check.
    pub fn compute(archive_id: &[u8; 32], key_check: &[u8; 32]) -> Pin {
        let mut h = Sha256::new();
        h.update(LABEL);
        h.update(archive_id);
        h.update(key_check);
        let d = h.finalize();
        let mut p = [0u8; PIN_BYTES];
        p.copy_from_slice(&d[..PIN_BYTES]);
        Pin(p)
    }

    /// Parses a printed pin (case-insensitive, surrounding spaces ignored).
    /// `None` unless it is exactly the prefix and 26 canonical base32 characters.
    pub fn parse(s: &str) -> Option<Pin> {
        let s = s.trim().to_ascii_lowercase();
        let body = s.strip_prefix(PREFIX)?;
        if body.len() != PIN_CHARS {
            return None;
        }
        let mut acc: u32 = 0;
        let mut bits = 0;
        let mut out = [0u8; PIN_BYTES];
        let mut n = 0;
        for c in body.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out[n] = (acc >> bits) as u8;
                n += 1;
                acc &= (1 << bits) - 1;
            }
        }
        // 26 characters carry 130 bits: the last 2 must be zero (one
        // spelling per pin).
        (n == PIN_BYTES && acc == 0).then_some(Pin(out))
    }

    /// Whether two pins are equal (constant time; pins are not secret, but
    /// this costs nothing).
    pub fn matches(&self, other: &Pin) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::with_capacity(PREFIX.len() + PIN_CHARS);
        s.push_str(PREFIX);
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &b in &self.0 {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                s.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
            acc &= (1 << bits) - 1;
        }
        if bits > 0 {
            s.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value_and_round_trip() {
        let p = Pin::compute(&[1; 32], &[2; 32]);
        let s = p.to_string();
        assert_eq!(s.len(), PREFIX.len() + PIN_CHARS);
        assert!(s.starts_with(PREFIX));
        // The definition, spelled out independently of `compute`.
        let mut h = Sha256::new();
        h.update(b"hpcs/v1 archive-pin");
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        let d = h.finalize();
        assert_eq!(&p.0[..], &d[..16]);
        let back = Pin::parse(&s).unwrap();
        assert!(back.matches(&p));
        assert!(Pin::parse(&format!("  {}\n", s.to_uppercase()))
            .unwrap()
            .matches(&p));
    }

    #[test]
    fn base32_of_known_bytes() {
        // RFC 4648 test vector "foobar" padded to 16 bytes with zeros.
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(b"foobar");
        let s = Pin(b).to_string();
        assert_eq!(&s[PREFIX.len()..PREFIX.len() + 10], "mzxw6ytboi");
        assert_eq!(s, "hpcspin1-mzxw6ytboiaaaaaaaaaaaaaaaa");
    }

    #[test]
    fn every_input_bit_matters() {
        let base = Pin::compute(&[0; 32], &[0; 32]);
        let mut id = [0; 32];
        id[31] = 1;
        let mut kc = [0; 32];
        kc[0] = 0x80;
        assert!(!Pin::compute(&id, &[0; 32]).matches(&base));
        assert!(!Pin::compute(&[0; 32], &kc).matches(&base));
        // Fields are not interchangeable.
        assert!(!Pin::compute(&[0; 32], &id).matches(&Pin::compute(&id, &[0; 32])));
    }

    #[test]
    fn malformed_pins_are_refused() {
        let good = Pin::compute(&[3; 32], &[4; 32]).to_string();
        let body = &good[PREFIX.len()..];
        for bad in [
            String::new(),
            body.to_string(),
            format!("hpcspin2-{body}"),
            good[..good.len() - 1].to_string(),
            format!("{good}a"),
            format!("{PREFIX}{}1", &body[..25]),
            format!("{PREFIX}{}=", &body[..25]),
        ] {
            assert!(Pin::parse(&bad).is_none(), "{bad:?}");
        }
        // A non-canonical last character (low bits set) is refused.
        let last = body.as_bytes()[25];
        let idx = ALPHABET.iter().position(|&a| a == last).unwrap();
        let other = ALPHABET[idx ^ 1] as char;
        assert!(Pin::parse(&format!("{PREFIX}{}{other}", &body[..25])).is_none());
    }
}
