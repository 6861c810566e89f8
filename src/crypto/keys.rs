//! Key material: the archive's data key and the keys derived from it.
//!
//! FORMAT.md "Keys": `prk = HKDF-Extract(salt = archive_id, ikm = data_key)`,
//! then one `HKDF-Expand(prk, label || suite_id_be16, 32)` per purpose:
//! `hpcs/v1 key-check`, `hpcs/v1 header-mac`, `hpcs/v1 data`, `hpcs/v1 index`,
//! `hpcs/v1 notes`.
//! Every key type here wipes itself on drop and has no `Debug`, so a key can
//! not end up in a log line by accident.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::suite::Suite;

/// Length of every key in the format.
pub const KEY_LEN: usize = 32;

/// The per-archive data key: 32 random bytes, wrapped in the key stanzas.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh random data key from the operating system's CSPRNG.
    pub fn generate() -> std::io::Result<DataKey> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(std::io::Error::other)?;
        let key = DataKey(k);
        k.zeroize();
        Ok(key)
    }

    /// Takes ownership of raw key bytes (from a key stanza or Vault).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(bytes)
    }

    /// Parses a key from a slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(arr))
    }

    /// The raw key, for wrapping it to a recipient or storing it in Vault.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Derives the archive's sub-keys for `archive_id` and `suite`.
    pub fn derive(&self, archive_id: &[u8; 32], suite: Suite) -> DerivedKeys {
        let hk = Hkdf::<Sha256>::new(Some(archive_id), &self.0);
        let expand = |label: &[u8]| {
            let mut info = Vec::with_capacity(label.len() + 2);
            info.extend_from_slice(label);
            info.extend_from_slice(&suite.id().to_be_bytes());
            let mut out = [0u8; KEY_LEN];
            hk.expand(&info, &mut out)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            SubKey(out)
        };
        DerivedKeys {
            key_check: expand(b"hpcs/v1 key-check"),
            header_mac: expand(b"hpcs/v1 header-mac"),
            data: expand(b"hpcs/v1 data"),
            index: expand(b"hpcs/v1 index"),
            notes: expand(b"hpcs/v1 notes"),
            results: expand(b"hpcs/v1 results-mac"),
        }
    }
}

/// One derived 32-byte key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SubKey([u8; KEY_LEN]);

impl SubKey {
    /// Builds a sub-key from raw bytes (tests and vectors).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SubKey {
        SubKey(bytes)
    }

    /// The raw bytes, for handing to a cipher or MAC.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// All keys derived from one data key for one archive.
pub struct DerivedKeys {
    /// Published in the header: a commitment to the data key.
    pub key_check: SubKey,
    /// HMAC-SHA256 key over the header.
    pub header_mac: SubKey,
    /// AEAD key of the data stream.
    pub data: SubKey,
    /// AEAD key of the index stream.
    pub index: SubKey,
    /// AEAD key of sealed stanzas (random nonces).
    pub notes: SubKey,
    /// HMAC key authenticating a job's encrypted results as written by a
    /// holder of this archive's key (`crate::results`).
    pub results: SubKey,
}

/// Compares two byte strings in constant time (for MACs and key checks).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from short-circuiting the loop.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_separates_purposes_archives_and_suites() {
        let k = DataKey::from_bytes([7; 32]);
        let a = k.derive(&[1; 32], Suite::Aes256Gcm);
        let b = k.derive(&[2; 32], Suite::Aes256Gcm);
        let c = k.derive(&[1; 32], Suite::ChaCha20Poly1305);
        let all = [
            a.key_check.expose(),
            a.header_mac.expose(),
            a.data.expose(),
            a.index.expose(),
            b.data.expose(),
            c.data.expose(),
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j], "keys {i} and {j} collide");
            }
        }
        // Deterministic.
        assert_eq!(
            k.derive(&[1; 32], Suite::Aes256Gcm).data.expose(),
            a.data.expose()
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
