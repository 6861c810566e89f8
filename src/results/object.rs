//! The object format (RESULTS.md "Directory layout", "Object plaintext"):
//! file names, the fixed header and the trailer of each object's plaintext,
//! the results MAC, and the rule for the paths objects record.
//!
//! An object is an age file whose plaintext is
//! `header (72) || data || path || path_len u32 || mode u32 || data_len u64 || mac (32) || "HPCS-END"`,
//! the MAC being HMAC-SHA256 under the results key of the archive the job
//! mounted, over everything before it. The recipients' public keys are no
//! secret, so age alone would let anyone forge a result; the MAC lets only a
//! holder of the archive key (the job, or the user) write one. Pure layout:
//! no I/O here.

use std::path::{Component, Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::keys::SubKey;

/// The results MAC.
pub(super) type HmacSha256 = Hmac<Sha256>;

/// First bytes of every object's plaintext.
pub const OBJECT_MAGIC: &[u8; 16] = b"hpcs-results/v1\n";
/// Last bytes of a complete object's plaintext.
const END_MAGIC: &[u8; 8] = b"HPCS-END";
/// magic, run id, sequence number, archive id.
pub(super) const HEADER_LEN: usize = 16 + 16 + 8 + 32;
/// path_len, mode, data_len, mac, end magic.
pub(super) const TAIL_FIXED: usize = 4 + 4 + 8 + 32 + 8;
/// Longest path an object records (Linux PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// File name suffix of a finished object.
pub const OBJECT_SUFFIX: &str = ".age";
/// File name suffix of an object still being written (or cut short).
pub const PARTIAL_SUFFIX: &str = ".age.partial";
/// File name prefix of a run's manifest (`manifest-<run>.age`).
pub const MANIFEST_PREFIX: &str = "manifest-";
/// File name suffix of a finished Crypt4GH object (RESULTS.md "Crypt4GH
/// results"): a plain Crypt4GH file of the result's bytes.
pub const C4GH_SUFFIX: &str = ".c4gh";
/// File name suffix of a Crypt4GH object still being written.
pub const C4GH_PARTIAL_SUFFIX: &str = ".c4gh.partial";
/// File name suffix of the receipt of a Crypt4GH object: its header and
/// trailer, Crypt4GH-encrypted to the same recipients.
pub const RECEIPT_SUFFIX: &str = ".hpcs-receipt";
/// File name suffix of the manifest of a Crypt4GH run (`manifest-<run>.hpcs-manifest`).
pub const C4GH_MANIFEST_SUFFIX: &str = ".hpcs-manifest";

/// A fresh results MAC keyed with an archive's results key.
pub(super) fn new_mac(key: &SubKey) -> Result<HmacSha256, hmac::digest::InvalidLength> {
    <HmacSha256 as Mac>::new_from_slice(key.expose())
}

/// The fixed header that starts every object's plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ObjectHeader {
    /// Run that writes the object.
    pub run: [u8; 16],
    /// Order within the run.
    pub seq: u64,
    /// Id of the archive whose results key authenticates the object.
    pub archive_id: [u8; 32],
}

impl ObjectHeader {
    /// `magic || run || seq u64 || archive_id`.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..16].copy_from_slice(OBJECT_MAGIC);
        b[16..32].copy_from_slice(&self.run);
        b[32..40].copy_from_slice(&self.seq.to_be_bytes());
        b[40..72].copy_from_slice(&self.archive_id);
        b
    }

    /// The header in `b`, or `None` without the object magic.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Option<ObjectHeader> {
        if &b[..16] != OBJECT_MAGIC {
            return None;
        }
        Some(ObjectHeader {
            run: b[16..32].try_into().expect("16 bytes"),
            seq: u64::from_be_bytes(b[32..40].try_into().expect("8 bytes")),
            archive_id: b[40..72].try_into().expect("32 bytes"),
        })
    }
}

/// The trailer closing an object of `len` data bytes: `path || path_len ||
/// mode || data_len`, then the tag of `mac` (which has seen the header and
/// the data) over all that, then the end magic.
pub(super) fn trailer(path: &[u8], mode: u32, len: u64, mut mac: HmacSha256) -> Vec<u8> {
    let mut tail = Vec::with_capacity(path.len() + TAIL_FIXED);
    tail.extend_from_slice(path);
    tail.extend_from_slice(&(path.len() as u32).to_be_bytes());
    tail.extend_from_slice(&mode.to_be_bytes());
    tail.extend_from_slice(&len.to_be_bytes());
    mac.update(&tail);
    tail.extend_from_slice(&mac.finalize().into_bytes());
    tail.extend_from_slice(END_MAGIC);
    tail
}

/// The fixed fields of a trailer, read from the end of a plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Trailer {
    /// Bytes of the path just before the fixed fields.
    pub path_len: usize,
    /// Permission bits.
    pub mode: u32,
    /// Data bytes the object claims.
    pub size: u64,
}

impl Trailer {
    /// Reads the trailer at the end of `end` (the last bytes of a
    /// plaintext, at least the whole trailer if there is one): `None` if
    /// there is no end magic or the path would not fit.
    pub fn parse(end: &[u8]) -> Option<Trailer> {
        let p = end.len();
        if p < TAIL_FIXED || &end[p - 8..] != END_MAGIC {
            return None;
        }
        let num = |at: usize, len: usize| -> u64 {
            end[at..at + len]
                .iter()
                .fold(0u64, |a, &b| (a << 8) | u64::from(b))
        };
        let path_len = num(p - TAIL_FIXED, 4) as usize;
        let t = Trailer {
            path_len,
            mode: num(p - TAIL_FIXED + 4, 4) as u32,
            size: num(p - TAIL_FIXED + 8, 8),
        };
        (path_len <= MAX_PATH && path_len + TAIL_FIXED <= p).then_some(t)
    }
}

/// Where the MAC sits in a plaintext ending at `end` (it covers all before).
pub(super) fn mac_range(end: usize) -> std::ops::Range<usize> {
    end - 40..end - 8
}

/// Checks that a recorded path is relative and stays inside the output
/// directory; returns it as a path.
pub fn safe_relative(path: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    if path.is_empty() || path.contains(&0) {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_magic() {
        let h = ObjectHeader {
            run: [1; 16],
            seq: 0x0102_0304_0506_0708,
            archive_id: [2; 32],
        };
        let b = h.to_bytes();
        assert_eq!(&b[32..40], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(ObjectHeader::parse(&b), Some(h));
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(ObjectHeader::parse(&bad), None);
    }

    #[test]
    fn trailer_round_trip_and_limits() {
        let mac = new_mac(&SubKey::from_bytes([3; 32])).unwrap();
        let mut plain = b"data".to_vec();
        plain.extend(trailer(b"a/b", 0o640, 4, mac));
        let t = Trailer::parse(&plain).unwrap();
        assert_eq!((t.path_len, t.mode, t.size), (3, 0o640, 4));
        // Cut short, the end magic is gone.
        assert_eq!(Trailer::parse(&plain[..plain.len() - 1]), None);
        // A path longer than the plaintext holds is refused.
        let at = plain.len() - TAIL_FIXED;
        plain[at..at + 4].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(Trailer::parse(&plain[4..]), None);
        plain[at..at + 4].copy_from_slice(&(MAX_PATH as u32 + 1).to_be_bytes());
        assert_eq!(Trailer::parse(&plain), None);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_relative(b"a/b").is_some());
        for p in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"", b"a\0b"] {
            assert!(safe_relative(p).is_none(), "{p:?}");
        }
    }
}
