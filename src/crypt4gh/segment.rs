//! Data keys and the AEAD of one segment.
//!
//! A segment is `nonce(12) ‖ ChaCha20-Poly1305(plaintext) ‖ MAC(16)` with no
//! associated data, under one of the data keys the header carries. A reader
//! does not know which key encrypted which segment, so, as the spec and the
//! reference do, [`DataKeys::open_segment`] tries each key in header order
//! until one authenticates. Nothing binds a segment to its position: that
//! is the caller's business (docs/crypt4gh.md).

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::keys::cipher;
use super::{Error, CIPHER_SEGMENT_SIZE, MAC_LEN, NONCE_LEN, SEGMENT_OVERHEAD, SEGMENT_SIZE};
use crate::crypto::aead::ChunkCipher;
use crate::crypto::keys::SubKey;

/// A 32-byte ChaCha20-Poly1305 data key (data-encryption method 0). Wiped
/// on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> std::io::Result<DataKey> {
        let mut k = DataKey([0; 32]);
        getrandom::fill(&mut k.0).map_err(std::io::Error::other)?;
        Ok(k)
    }

    /// A data key from its bytes (from a header, or stored elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// The raw key.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> ChunkCipher {
        cipher(&SubKey::from_bytes(self.0))
    }
}

/// The data keys of one file, each with its prepared cipher.
pub struct DataKeys {
    keys: Vec<(DataKey, ChunkCipher)>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKeys({} keys, <redacted>)", self.keys.len())
    }
}

impl DataKeys {
    /// The keys, in the order they are tried.
    pub fn new(keys: Vec<DataKey>) -> DataKeys {
        DataKeys {
            keys: keys
                .into_iter()
                .map(|k| {
                    let c = k.cipher();
                    (k, c)
                })
                .collect(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in header order.
    pub fn keys(&self) -> impl Iterator<Item = &DataKey> {
        self.keys.iter().map(|(k, _)| k)
    }

    /// Authenticates and decrypts segment `index` in place: `seg` is its
    /// `nonce ‖ ciphertext ‖ MAC` (29..=65 564 bytes). Returns the plaintext,
    /// a sub-slice of `seg`. On failure `seg` holds no plaintext. `index`
    /// only names the segment in the error.
    pub fn open_segment<'a>(&self, index: u64, seg: &'a mut [u8]) -> Result<&'a mut [u8], Error> {
        if !(SEGMENT_OVERHEAD < seg.len() && seg.len() <= CIPHER_SEGMENT_SIZE) {
            return Err(Error::BadSegmentLength {
                index,
                len: seg.len(),
            });
        }
        let (nonce, body) = seg.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().expect("split at NONCE_LEN");
        // A failed open wipes the buffer: keep the ciphertext for the next key.
        let backup = (self.keys.len() > 1).then(|| body.to_vec());
        for (i, (_, c)) in self.keys.iter().enumerate() {
            if i > 0 {
                body.copy_from_slice(backup.as_deref().expect("kept for several keys"));
            }
            if c.open_with(nonce, body).is_ok() {
                let n = body.len() - MAC_LEN;
                return Ok(&mut body[..n]);
            }
        }
        Err(Error::SegmentAuth(index))
    }

    /// Encrypts `plain` (1..=65 536 bytes) as one segment under the first
    /// key with a fresh random nonce, appending `nonce ‖ ciphertext ‖ MAC`
    /// to `out`.
    ///
    /// # Panics
    /// If there is no key or `plain` is empty or longer than a segment
    /// (caller bugs, never input-driven).
    pub fn seal_segment(&self, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        assert!(
            !plain.is_empty() && plain.len() <= SEGMENT_SIZE,
            "a segment holds 1..=65536 bytes"
        );
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        out.resize(start + plain.len() + MAC_LEN, 0);
        self.keys[0].1.seal_with(nonce, &mut out[start..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> DataKeys {
        DataKeys::new((1..=n).map(|i| DataKey::from_bytes([i; 32])).collect())
    }

    #[test]
    fn seal_then_open() {
        let k = keys(1);
        for len in [1, 2, SEGMENT_SIZE - 1, SEGMENT_SIZE] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut seg = Vec::new();
            k.seal_segment(&plain, &mut seg).unwrap();
            assert_eq!(seg.len(), len + SEGMENT_OVERHEAD);
            assert_ne!(&seg[NONCE_LEN..NONCE_LEN + len], &plain[..]);
            assert_eq!(k.open_segment(0, &mut seg).unwrap(), &plain[..]);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let k = keys(1);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        k.seal_segment(b"same", &mut a).unwrap();
        k.seal_segment(b"same", &mut b).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn every_key_is_tried_in_turn() {
        let all = keys(3);
        for which in 1..=3u8 {
            let one = DataKeys::new(vec![DataKey::from_bytes([which; 32])]);
            let mut seg = Vec::new();
            one.seal_segment(b"hello", &mut seg).unwrap();
            assert_eq!(all.open_segment(7, &mut seg).unwrap(), b"hello");
        }
        let stranger = DataKeys::new(vec![DataKey::from_bytes([9; 32])]);
        let mut seg = Vec::new();
        stranger.seal_segment(b"hello", &mut seg).unwrap();
        assert!(matches!(
            all.open_segment(7, &mut seg),
            Err(Error::SegmentAuth(7))
        ));
        assert!(!seg.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn tampering_and_bad_lengths_fail() {
        let k = keys(2);
        let mut seg = Vec::new();
        k.seal_segment(&[5; 100], &mut seg).unwrap();
        for i in [0, NONCE_LEN, seg.len() - 1] {
            let mut t = seg.clone();
            t[i] ^= 1;
            assert!(
                matches!(k.open_segment(3, &mut t), Err(Error::SegmentAuth(3))),
                "byte {i}"
            );
        }
        for len in [0, SEGMENT_OVERHEAD, CIPHER_SEGMENT_SIZE + 1] {
            let mut b = vec![0u8; len];
            assert!(matches!(
                k.open_segment(4, &mut b),
                Err(Error::BadSegmentLength { index: 4, len: l }) if l == len
            ));
        }
        assert_eq!(format!("{k:?}"), "DataKeys(2 keys, <redacted>)");
        assert_eq!(
            format!("{:?}", DataKey::from_bytes([3; 32])),
            "DataKey(<redacted>)"
        );
    }
}
