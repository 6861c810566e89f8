//! Shared pieces of the fuzz targets: the golden vectors' keys, a header
//! fix-up that lets the fuzzer reach past the MAC, and a reference decrypt
//! of the archive format written from FORMAT.md on its own primitives
//! (RustCrypto `hkdf`, `hmac`, `aes-gcm` 0.10, `chacha20poly1305` 0.10),
//! not on hpcs's `src/crypto`.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub mod targets;

/// The golden vectors' directory (tests/vectors of the main tree).
pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");

/// The vectors that open with tests/vectors/identity.txt.
const KEYED: &[&str] = &[
    "format_empty-dir.hpcs",
    "format_single-file.hpcs",
    "format_tree-aes.hpcs",
    "format_tree-chacha.hpcs",
    "reference_c4gh.hpcs",
];

/// The data keys of the golden vectors (unwrapped once with their identity).
pub fn golden_keys() -> &'static [[u8; 32]] {
    static KEYS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ids = golden_identities();
        KEYED
            .iter()
            .map(|name| {
                let bytes = std::fs::read(std::path::Path::new(VECTORS).join(name))
                    .expect("golden vector reads");
                let sealed =
                    hpcs::crypto::SealedArchive::open(bytes).expect("golden vector parses");
                *hpcs::keys::unwrap_age(&sealed.header().stanzas, ids)
                    .expect("golden vector unwraps")
                    .expose()
            })
            .collect()
    })
}

/// Loads the golden identity from a private copy of
/// tests/vectors/identity.txt (`load_identities` refuses a file others can
/// read, as the committed one is).
pub(crate) fn load_golden_identities() -> hpcs::keys::Identities {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read(std::path::Path::new(VECTORS).join("identity.txt"))
        .expect("tests/vectors/identity.txt reads");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let copy = dir.path().join("identity.txt");
    std::fs::write(&copy, text).expect("the private copy writes");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    hpcs::keys::load_identities(&copy).expect("the golden identity loads")
}

/// The golden identities (for the stanza and results targets), loaded once
/// per thread.
pub fn golden_identities() -> &'static hpcs::keys::Identities {
    thread_local! {
        static IDS: &'static hpcs::keys::Identities = Box::leak(Box::new(load_golden_identities()));
    }
    IDS.with(|ids| *ids)
}

/// The results keys of the results target: the golden age identity, no
/// Crypt4GH key.
pub fn golden_result_keys() -> &'static hpcs::results::ResultKeys {
    thread_local! {
        static KEYS: &'static hpcs::results::ResultKeys = Box::leak(Box::new(hpcs::results::ResultKeys {
            age: load_golden_identities(),
            c4gh: None,
        }));
    }
    KEYS.with(|k| *k)
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The golden identity's public key (tests/vectors/identity.txt's comment).
pub const GOLDEN_RECIPIENT: &str = "age15hylwejx9r3d5chslnfkrqje50czyft7nlh833f0e4ge79ahuqqshacgvm";

pub const MAGIC: [u8; 8] = *b"\x89HPCS\r\n\x1a";
const MAC_LEN: usize = 32;
const TAG_LEN: usize = 16;
const FIXED_LEN: usize = 106;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// FORMAT.md "Keys": `HKDF-Expand(HKDF-Extract(archive_id, data_key),
/// label || suite_id as u16 big-endian, 32)`.
pub fn subkey(data_key: &[u8; 32], archive_id: &[u8], suite: u16, label: &str) -> [u8; 32] {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(archive_id), data_key);
    let mut info = label.as_bytes().to_vec();
    info.extend_from_slice(&suite.to_be_bytes());
    let mut out = [0u8; 32];
    hk.expand(&info, &mut out).unwrap();
    out
}

fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// Rewrites the key check and the MAC of the header at the start of
/// `bytes` so that they hold for a golden key (the one whose key check it
/// already carries, else the first): the fuzzer can then change any other
/// header field and still reach the streams. Does nothing if the header
/// length field does not fit in `bytes`.
pub fn fix_header(bytes: &mut [u8]) {
    if bytes.len() < FIXED_LEN + MAC_LEN {
        return;
    }
    let hl = le32(bytes, 20) as usize;
    if !(FIXED_LEN + MAC_LEN..=bytes.len()).contains(&hl) {
        return;
    }
    let suite = le16(bytes, 10);
    let id: [u8; 32] = bytes[24..56].try_into().unwrap();
    let keys = golden_keys();
    let key = keys
        .iter()
        .find(|k| subkey(k, &id, suite, "hpcs/v1 key-check")[..] == bytes[72..104])
        .unwrap_or(&keys[0]);
    let check = subkey(key, &id, suite, "hpcs/v1 key-check");
    bytes[72..104].copy_from_slice(&check);
    let mac_key = subkey(key, &id, suite, "hpcs/v1 header-mac");
    let mac = hmac(&mac_key, &bytes[..hl - MAC_LEN]);
    bytes[hl - MAC_LEN..hl].copy_from_slice(&mac);
}

/// The golden key whose key check the header in `bytes` carries, if any.
pub fn key_for(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.len() < FIXED_LEN {
        return None;
    }
    let suite = le16(bytes, 10);
    golden_keys()
        .iter()
        .find(|k| subkey(k, &bytes[24..56], suite, "hpcs/v1 key-check")[..] == bytes[72..104])
        .copied()
}

/// A stream's shape (FORMAT.md "Chunks").
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub len: u64,
    pub chunk: u64,
}

impl Stream {
    /// `n = max(1, ceil(len / chunk_size))`.
    pub fn count(&self) -> u64 {
        self.len.div_ceil(self.chunk).max(1)
    }
    /// `len + 16·n`, or `None` on overflow.
    pub fn stored(&self) -> Option<u64> {
        self.len
            .checked_add(self.count().checked_mul(TAG_LEN as u64)?)
    }
    /// Plaintext bytes of chunk `i`.
    pub fn plain_len(&self, i: u64) -> usize {
        if i + 1 == self.count() {
            (self.len - i * self.chunk) as usize
        } else {
            self.chunk as usize
        }
    }
}

/// What the reference makes of an archive under one key.
#[derive(Debug)]
pub enum Verdict {
    /// Rejected before any chunk (structure, key check, MAC, length).
    Rejected(&'static str),
    /// Header and length good; index chunks all authentic (`index_ok`),
    /// the final data chunk authentic (`last_ok`), and the plaintext of each data chunk that authenticates (first
    /// `max_chunks` chunks only).
    Opened {
        index_ok: bool,
        last_ok: bool,
        data: Stream,
        chunks: Vec<Option<Vec<u8>>>,
    },
}

/// Opens one chunk: nonce = `i` as u64 big-endian, `00 00 00`, then `01`
/// if final; no associated data.
pub fn open_chunk(
    suite: u16,
    key: &[u8; 32],
    i: u64,
    last: bool,
    stored: &[u8],
) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, KeyInit};
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&i.to_be_bytes());
    nonce[11] = u8::from(last);
    match suite {
        1 => aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), stored)
            .ok(),
        2 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
            .unwrap()
            .decrypt(chacha20poly1305::Nonce::from_slice(&nonce), stored)
            .ok(),
        _ => None,
    }
}

/// The reference reading of `bytes` with `data_key`, from FORMAT.md alone.
pub fn reference(bytes: &[u8], data_key: &[u8; 32], max_chunks: u64) -> Verdict {
    use Verdict::Rejected;
    if bytes.len() < 24 || bytes[..8] != MAGIC {
        return Rejected("magic");
    }
    if le16(bytes, 8) != 1 {
        return Rejected("version");
    }
    let hl = le32(bytes, 20) as usize;
    if !(FIXED_LEN + MAC_LEN..=1 << 20).contains(&hl) || hl > bytes.len() {
        return Rejected("header length");
    }
    let suite = le16(bytes, 10);
    // Required features: only bit 1 (external Crypt4GH files) is known.
    if le32(bytes, 12) & !2 != 0 {
        return Rejected("features");
    }
    if suite != 1 && suite != 2 {
        return Rejected("suite");
    }
    let cs = le32(bytes, 16);
    if !cs.is_power_of_two() || !(4096..=16 << 20).contains(&cs) {
        return Rejected("chunk size");
    }
    // Stanzas must fill the header exactly.
    let mut at = FIXED_LEN;
    for _ in 0..le16(bytes, 104) {
        if at + 6 > hl - MAC_LEN {
            return Rejected("stanza");
        }
        let n = le32(bytes, at + 2) as usize;
        at += 6;
        if n > hl - MAC_LEN - at {
            return Rejected("stanza");
        }
        at += n;
    }
    if at != hl - MAC_LEN {
        return Rejected("stanzas fill");
    }
    let id = &bytes[24..56];
    let data = Stream {
        len: le64(bytes, 56),
        chunk: cs.into(),
    };
    let index = Stream {
        len: le64(bytes, 64),
        chunk: cs.into(),
    };
    let (Some(ds), Some(is)) = (data.stored(), index.stored()) else {
        return Rejected("lengths overflow");
    };
    let Some(total) = ds.checked_add(is).and_then(|t| t.checked_add(hl as u64)) else {
        return Rejected("lengths overflow");
    };
    if subkey(data_key, id, suite, "hpcs/v1 key-check")[..] != bytes[72..104] {
        return Rejected("key check");
    }
    let mac_key = subkey(data_key, id, suite, "hpcs/v1 header-mac");
    if hmac(&mac_key, &bytes[..hl - MAC_LEN])[..] != bytes[hl - MAC_LEN..hl] {
        return Rejected("mac");
    }
    if total != bytes.len() as u64 {
        return Rejected("file length");
    }
    let stride = data.chunk + TAG_LEN as u64;
    let open = |s: &Stream, base: u64, key: &[u8; 32], i: u64| {
        let off = (base + i * stride) as usize;
        let n = s.plain_len(i) + TAG_LEN;
        open_chunk(suite, key, i, i + 1 == s.count(), &bytes[off..off + n])
    };
    let ikey = subkey(data_key, id, suite, "hpcs/v1 index");
    let ibase = hl as u64 + ds;
    let index_ok = (0..index.count()).all(|i| open(&index, ibase, &ikey, i).is_some());
    let dkey = subkey(data_key, id, suite, "hpcs/v1 data");
    let last_ok = open(&data, hl as u64, &dkey, data.count() - 1).is_some();
    let chunks = (0..data.count().min(max_chunks))
        .map(|i| open(&data, hl as u64, &dkey, i))
        .collect();
    Verdict::Opened {
        index_ok,
        last_ok,
        data,
        chunks,
    }
}
