//! The archive header: fixed fields, key stanzas, and the header MAC.
//!
//! FORMAT.md "Header". All integers little-endian. Layout:
//!
//! ```text
//! off  len  field
//!   0    8  magic 89 48 50 43 53 0D 0A 1A ("\x89HPCS\r\n\x1a")
//!   8    2  version (1)
//!  10    2  suite (1 AES-256-GCM, 2 ChaCha20-Poly1305)
//!  12    4  required features (v1: must be 0; readers refuse unknown bits)
//!  16    4  chunk size (power of two, 4 KiB ..= 16 MiB)
//!  20    4  header length in bytes, including the MAC
//!  24   32  archive id (random per archive; HKDF salt)
//!  56    8  data stream plaintext length
//!  64    8  index stream plaintext length
//!  72   32  key check (HKDF label "hpcs/v1 key-check")
//! 104    2  stanza count
//! 106    …  stanzas: type u16, body length u32, body
//! end-32 32 HMAC-SHA256(header-mac key, every preceding header byte)
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::aead::Suite;
use super::keys::{ct_eq, DataKey, DerivedKeys};
use super::le::Le;
use super::offsets::{valid_chunk_size, Geometry};
use super::Error;
use crate::util::hex;

/// The 8 magic bytes every archive starts with.
pub const MAGIC: [u8; 8] = *b"\x89HPCS\r\n\x1a";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Feature bits this version understands (none: v1 has no optional features).
pub const KNOWN_FEATURES: u32 = 0;
/// Bytes of the fixed part before the stanzas.
pub const FIXED_LEN: usize = 106;
/// Bytes of the header MAC.
pub const MAC_LEN: usize = 32;
/// Largest header a reader accepts (guards allocation on hostile input).
pub const MAX_HEADER_LEN: u32 = 1 << 20;
/// Bytes a reader needs to learn the header length.
pub const PREFIX_LEN: usize = 24;

/// Stanza type: the data key encrypted as an age file to one or more recipients.
pub const STANZA_AGE: u16 = 1;
/// Stanza type: a reference to the data key in Vault (see FORMAT.md).
pub const STANZA_VAULT: u16 = 2;

/// One key stanza: an opaque, typed blob that lets some party recover the
/// data key. The crypto layer does not interpret bodies; `src/keys` does.
#[derive(Clone, PartialEq, Eq)]
pub struct Stanza {
    /// Stanza type (`STANZA_AGE`, `STANZA_VAULT`, or a future one).
    pub kind: u16,
    /// Type-specific body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Stanza {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies are wrapped keys; print only their size.
        f.debug_struct("Stanza")
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Everything the header says, parsed and checked for consistency but not yet
/// authenticated (that needs the key: [`Header::authenticate`]).
#[derive(Clone, Debug)]
pub struct Header {
    /// Cipher suite of both streams.
    pub suite: Suite,
    /// Chunk size of both streams.
    pub chunk_size: u32,
    /// Random per-archive id; HKDF salt, and the id Vault pins.
    pub archive_id: [u8; 32],
    /// Plaintext bytes of the data stream.
    pub data_len: u64,
    /// Plaintext bytes of the index stream.
    pub index_len: u64,
    /// Commitment to the data key.
    pub key_check: [u8; 32],
    /// Key stanzas, in order.
    pub stanzas: Vec<Stanza>,
    /// Total header length (where the data stream starts).
    pub header_len: u32,
    /// The MAC as stored.
    mac: [u8; MAC_LEN],
    /// The bytes the MAC covers, as read.
    signed: Vec<u8>,
}

impl Header {
    /// Builds and MACs a new header.
    pub fn seal(
        key: &DataKey,
        suite: Suite,
        chunk_size: u32,
        archive_id: [u8; 32],
        data_len: u64,
        index_len: u64,
        stanzas: Vec<Stanza>,
    ) -> Result<Header, Error> {
        if !valid_chunk_size(chunk_size) {
            return Err(Error::MalformedHeader("invalid chunk size"));
        }
        let keys = key.derive(&archive_id, suite);
        let mut h = Header {
            suite,
            chunk_size,
            archive_id,
            data_len,
            index_len,
            key_check: *keys.key_check.expose(),
            stanzas,
            header_len: 0,
            mac: [0; MAC_LEN],
            signed: Vec::new(),
        };
        let len = FIXED_LEN + h.stanzas.iter().map(|s| 6 + s.body.len()).sum::<usize>() + MAC_LEN;
        if len > MAX_HEADER_LEN as usize || h.stanzas.len() > u16::MAX as usize {
            return Err(Error::MalformedHeader("too many or too large key stanzas"));
        }
        h.header_len = len as u32;
        h.signed = h.encode_signed();
        h.mac = mac(&keys, &h.signed);
        Ok(h)
    }

    /// Rebuilds the header with other stanzas (rewrap); needs the data key.
    pub fn with_stanzas(&self, key: &DataKey, stanzas: Vec<Stanza>) -> Result<Header, Error> {
        Header::seal(
            key,
            self.suite,
            self.chunk_size,
            self.archive_id,
            self.data_len,
            self.index_len,
            stanzas,
        )
    }

    fn encode_signed(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.header_len as usize);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.suite.id().to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.chunk_size.to_le_bytes());
        b.extend_from_slice(&self.header_len.to_le_bytes());
        b.extend_from_slice(&self.archive_id);
        b.extend_from_slice(&self.data_len.to_le_bytes());
        b.extend_from_slice(&self.index_len.to_le_bytes());
        b.extend_from_slice(&self.key_check);
        b.extend_from_slice(&(self.stanzas.len() as u16).to_le_bytes());
        for s in &self.stanzas {
            b.extend_from_slice(&s.kind.to_le_bytes());
            b.extend_from_slice(&(s.body.len() as u32).to_le_bytes());
            b.extend_from_slice(&s.body);
        }
        b
    }

    /// The complete header bytes as written to the archive.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.signed.clone();
        b.extend_from_slice(&self.mac);
        b
    }

    /// Reads the fixed prefix: checks magic, version, and returns the header
    /// length. `prefix` must hold at least [`PREFIX_LEN`] bytes.
    pub fn parse_prefix(prefix: &[u8]) -> Result<u32, Error> {
        if prefix.len() < PREFIX_LEN || prefix[..8] != MAGIC {
            return Err(Error::NotAnArchive);
        }
        let version = u16::from_le_bytes([prefix[8], prefix[9]]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let len = u32::from_le_bytes(prefix[20..24].try_into().expect("4 bytes"));
        if (len as usize) < FIXED_LEN + MAC_LEN || len > MAX_HEADER_LEN {
            return Err(Error::MalformedHeader("header length out of range"));
        }
        Ok(len)
    }

    /// Parses a complete header (`bytes.len()` = the header length from
    /// [`Header::parse_prefix`]). Checks structure, not authenticity.
    pub fn parse(bytes: &[u8]) -> Result<Header, Error> {
        let header_len = Header::parse_prefix(bytes)?;
        if bytes.len() != header_len as usize {
            return Err(Error::MalformedHeader("header length mismatch"));
        }
        let mut r = Le::new(bytes, 10, || Error::MalformedHeader("header ends early"));
        let suite_id = r.u16()?;
        let features = r.u32()?;
        if features & !KNOWN_FEATURES != 0 {
            return Err(Error::UnsupportedFeatures(features & !KNOWN_FEATURES));
        }
        let suite = Suite::from_id(suite_id).ok_or(Error::UnknownSuite(suite_id))?;
        let chunk_size = r.u32()?;
        if !valid_chunk_size(chunk_size) {
            return Err(Error::MalformedHeader("invalid chunk size"));
        }
        let _len = r.u32()?;
        let archive_id: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        let data_len = r.u64()?;
        let index_len = r.u64()?;
        let key_check: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        let count = r.u16()?;
        let mut stanzas = Vec::with_capacity(count.into());
        for _ in 0..count {
            let kind = r.u16()?;
            let n = r.u32()? as usize;
            if n > bytes.len().saturating_sub(r.pos() + MAC_LEN) {
                return Err(Error::MalformedHeader("stanza runs past the header"));
            }
            stanzas.push(Stanza {
                kind,
                body: r.take(n)?.to_vec(),
            });
        }
        if r.pos() != bytes.len() - MAC_LEN {
            return Err(Error::MalformedHeader("stanzas do not fill the header"));
        }
        let mac: [u8; MAC_LEN] = bytes[r.pos()..].try_into().expect("32 bytes");
        let h = Header {
            suite,
            chunk_size,
            archive_id,
            data_len,
            index_len,
            key_check,
            stanzas,
            header_len,
            mac,
            signed: bytes[..r.pos()].to_vec(),
        };
        // Reject lengths whose layout would overflow before anything uses them.
        h.data_geometry()
            .ciphertext_len()
            .and_then(|d| h.index_geometry().ciphertext_len()?.checked_add(d))
            .and_then(|t| t.checked_add(header_len.into()))
            .ok_or(Error::MalformedHeader("stream lengths overflow"))?;
        Ok(h)
    }

    /// Checks `key` against the key check, then the MAC, and returns the
    /// derived keys. `WrongKey` means the key does not belong to this header;
    /// `HeaderTampered` means it does but the header bytes were changed.
    pub fn authenticate(&self, key: &DataKey) -> Result<DerivedKeys, Error> {
        let keys = key.derive(&self.archive_id, self.suite);
        if !ct_eq(keys.key_check.expose(), &self.key_check) {
            return Err(Error::WrongKey);
        }
        if !ct_eq(&mac(&keys, &self.signed), &self.mac) {
            return Err(Error::HeaderTampered);
        }
        Ok(keys)
    }

    /// Shape of the data stream.
    pub fn data_geometry(&self) -> Geometry {
        Geometry::new(self.chunk_size, self.data_len)
    }

    /// Shape of the index stream.
    pub fn index_geometry(&self) -> Geometry {
        Geometry::new(self.chunk_size, self.index_len)
    }

    /// Offset of the data stream in the archive.
    pub fn data_offset(&self) -> u64 {
        self.header_len.into()
    }

    /// Offset of the index stream in the archive.
    pub fn index_offset(&self) -> u64 {
        self.data_offset()
            + self
                .data_geometry()
                .ciphertext_len()
                .unwrap_or(u64::MAX / 2)
    }

    /// Exact length of a well-formed archive with this header.
    pub fn archive_len(&self) -> u64 {
        self.index_offset() + self.index_geometry().ciphertext_len().unwrap_or(0)
    }

    /// This archive's pin (FORMAT.md "Archive pin"): kept by `rewrap`,
    /// different for any other archive.
    pub fn pin(&self) -> super::Pin {
        super::Pin::compute(&self.archive_id, &self.key_check)
    }

    /// The archive id in lower-case hex.
    pub fn archive_id_hex(&self) -> String {
        hex(&self.archive_id)
    }
}

fn mac(keys: &DerivedKeys, signed: &[u8]) -> [u8; MAC_LEN] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(keys.header_mac.expose())
        .expect("HMAC takes any key length");
    m.update(signed);
    m.finalize().into_bytes().into()
}

/// Stanza type: the recipient list, sealed under the notes key (FORMAT.md).
pub const STANZA_RECIPIENTS: u16 = 3;

/// Seals `plaintext` as a stanza body only holders of the data key can read:
/// `nonce (12, random) || ciphertext || tag` under the notes key.
pub fn seal_note(
    key: &DataKey,
    archive_id: &[u8; 32],
    suite: Suite,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let keys = key.derive(archive_id, suite);
    let cipher = super::aead::ChunkCipher::new(suite, super::aead::Backend::default(), &keys.notes);
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    let mut body = Vec::with_capacity(12 + plaintext.len() + super::aead::TAG_LEN);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(plaintext);
    body.resize(12 + plaintext.len() + super::aead::TAG_LEN, 0);
    cipher.seal_with(nonce, &mut body[12..]);
    Ok(body)
}

/// Opens a body made by [`seal_note`]; `None` if it does not authenticate.
pub fn open_note(
    key: &DataKey,
    archive_id: &[u8; 32],
    suite: Suite,
    body: &[u8],
) -> Option<Vec<u8>> {
    if body.len() < 12 + super::aead::TAG_LEN {
        return None;
    }
    let keys = key.derive(archive_id, suite);
    let cipher = super::aead::ChunkCipher::new(suite, super::aead::Backend::default(), &keys.notes);
    let nonce: [u8; 12] = body[..12].try_into().ok()?;
    let mut buf = body[12..].to_vec();
    cipher.open_with(nonce, &mut buf).ok()?;
    buf.truncate(buf.len() - super::aead::TAG_LEN);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &DataKey) -> Header {
        Header::seal(
            key,
            Suite::Aes256Gcm,
            65536,
            [9; 32],
            5000,
            200,
            vec![Stanza {
                kind: STANZA_AGE,
                body: vec![1, 2, 3],
            }],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_layout() {
        let key = DataKey::from_bytes([1; 32]);
        let h = sample(&key);
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), FIXED_LEN + 6 + 3 + MAC_LEN);
        assert_eq!(Header::parse_prefix(&bytes).unwrap() as usize, bytes.len());
        let p = Header::parse(&bytes).unwrap();
        assert_eq!(p.data_len, 5000);
        assert_eq!(p.stanzas, h.stanzas);
        p.authenticate(&key).unwrap();
        assert!(matches!(
            p.authenticate(&DataKey::from_bytes([2; 32])),
            Err(Error::WrongKey)
        ));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let key = DataKey::from_bytes([1; 32]);
        let bytes = sample(&key).to_bytes();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let ok = Header::parse(&b).and_then(|h| h.authenticate(&key)).is_ok();
                assert!(!ok, "flip of bit {bit:#x} in byte {i} accepted");
            }
        }
    }
}
