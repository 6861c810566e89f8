//! External Crypt4GH files: FORMAT.md "External Crypt4GH files" (required
//! feature bit 1).
//!
//! A *reference archive* lists files whose bytes stay in Crypt4GH (`.c4gh`)
//! files elsewhere on the filesystem. Each such index entry (kind 5) carries
//! an [`External`] record: where the `.c4gh` file lives, its exact length,
//! the length and SHA-256 of its Crypt4GH header, the data keys and edit list
//! that header held for its reader, and where the file's *segment tag table*
//! starts in the archive's data stream. The table holds one 16-byte tag per
//! Crypt4GH segment, in order:
//!
//! ```text
//! tag_i = AEAD-Seal(key   = HKDF(…, "hpcs/v1 c4gh-segments"),
//!                   nonce = ordinal u32 BE ‖ i u64 BE,
//!                   plaintext = empty,
//!                   aad   = segment i as stored: nonce(12) ‖ ciphertext ‖ MAC(16)).tag
//! ```
//!
//! under the archive's suite (GMAC for AES-256-GCM, Poly1305 for
//! ChaCha20-Poly1305), `ordinal` being the entry's place among the kind-5
//! entries in index order. A segment therefore authenticates only as itself,
//! at its own index, of its own file, of its own archive, and only a holder
//! of the archive's data key can make a tag: knowing the file's Crypt4GH data
//! key (every recipient of the file does) is not enough. Crypt4GH's own
//! segment MAC is under that shared key and binds no position.
//!
//! This module owns the record's bytes and the tag; it knows nothing of the
//! Crypt4GH header format (`crate::crypt4gh`) or of where files are opened.

use std::ops::Range;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aead::{Backend, ChunkCipher, Suite, TAG_LEN};
use super::keys::{ct_eq, SubKey};
use super::le::Le;
use super::Error;

/// Required feature bit: the index may hold entries of kind 5 whose bytes
/// are external Crypt4GH files, and the data stream holds their tag tables.
pub const FEATURE_EXTERNAL_C4GH: u32 = 1 << 1;
/// Plaintext bytes of a full Crypt4GH segment.
pub const SEGMENT_PLAIN: u64 = 65536;
/// Bytes a Crypt4GH segment adds to its plaintext (nonce 12, MAC 16).
pub const SEGMENT_OVERHEAD: u64 = 28;
/// Bytes of a full stored Crypt4GH segment.
pub const SEGMENT_STORED: u64 = SEGMENT_PLAIN + SEGMENT_OVERHEAD;
/// Bytes of one entry of a segment tag table.
pub const SEGMENT_TAG_LEN: usize = TAG_LEN;
/// Longest location (Linux PATH_MAX).
pub const MAX_LOCATION: usize = 4096;
/// Most data keys one record may hold.
pub const MAX_KEYS: usize = 16;
/// Most lengths an edit list may hold (as the Crypt4GH codec accepts).
pub const MAX_EDIT_LENGTHS: usize = 8192;
/// Longest Crypt4GH header a record may describe (as the codec accepts).
pub const MAX_C4GH_HEADER: u32 = 4 << 20;
/// Smallest Crypt4GH header (magic, version, packet count, one packet).
pub const MIN_C4GH_HEADER: u32 = 16 + 8;

const LOCATION_RELATIVE: u8 = 1;
const LOCATION_ABSOLUTE: u8 = 2;

/// Where an external file lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// Relative to the directory that holds the archive file.
    Relative(Vec<u8>),
    /// An absolute path.
    Absolute(Vec<u8>),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A path names the data: never in Debug output.
        f.write_str(match self {
            Location::Relative(_) => "Location::Relative(<hidden>)",
            Location::Absolute(_) => "Location::Absolute(<hidden>)",
        })
    }
}

impl Location {
    /// The path bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Location::Relative(b) | Location::Absolute(b) => b,
        }
    }

    fn check(&self) -> Result<(), &'static str> {
        let b = self.bytes();
        if b.is_empty() || b.len() > MAX_LOCATION || b.contains(&0) {
            return Err("external file location empty, too long or with NUL");
        }
        match (self, b[0] == b'/') {
            (Location::Relative(_), true) => Err("relative location starts with /"),
            (Location::Absolute(_), false) => Err("absolute location does not start with /"),
            _ => Ok(()),
        }
    }
}

/// One Crypt4GH data key (ChaCha20-Poly1305, Crypt4GH data method 0). Wiped
/// on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ExternalKey([u8; 32]);

impl std::fmt::Debug for ExternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalKey(<redacted>)")
    }
}

impl ExternalKey {
    /// A key from its bytes.
    pub fn from_bytes(b: [u8; 32]) -> ExternalKey {
        ExternalKey(b)
    }

    /// The raw key.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The record of one external file (the body of an index entry of kind 5
/// after its visible size). `Debug` shows no path, key or edit list.
#[derive(Clone, PartialEq, Eq)]
pub struct External {
    location: Location,
    c4gh_len: u64,
    header_len: u32,
    header_sha256: [u8; 32],
    keys: Vec<ExternalKey>,
    edit_list: Option<Vec<u64>>,
    tags_offset: u64,
    segments: u64,
    raw_len: u64,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("location", &self.location)
            .field("segments", &self.segments)
            .field("keys", &self.keys.len())
            .field("edit_list", &self.edit_list.is_some())
            .finish_non_exhaustive()
    }
}

/// Segments and raw plaintext bytes of a Crypt4GH file of `c4gh_len` bytes
/// whose header is `header_len` bytes; `None` when the data after the header
/// is not a whole number of segments.
pub fn segment_layout(header_len: u64, c4gh_len: u64) -> Option<(u64, u64)> {
    let body = c4gh_len.checked_sub(header_len)?;
    let (full, rem) = (body / SEGMENT_STORED, body % SEGMENT_STORED);
    match rem {
        0 => Some((full, full * SEGMENT_PLAIN)),
        r if r <= SEGMENT_OVERHEAD => None,
        r => Some((full + 1, full * SEGMENT_PLAIN + r - SEGMENT_OVERHEAD)),
    }
}

impl External {
    /// A checked record. `tags_offset` is where its tag table starts in the
    /// data stream (the writer's layout sets it; see [`External::with_tags_offset`]).
    pub fn new(
        location: Location,
        c4gh_len: u64,
        header_len: u32,
        header_sha256: [u8; 32],
        keys: Vec<ExternalKey>,
        edit_list: Option<Vec<u64>>,
        tags_offset: u64,
    ) -> Result<External, &'static str> {
        location.check()?;
        if !(MIN_C4GH_HEADER..=MAX_C4GH_HEADER).contains(&header_len) {
            return Err("Crypt4GH header length out of range");
        }
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err("external file needs 1 to 16 data keys");
        }
        if edit_list
            .as_ref()
            .is_some_and(|e| e.len() > MAX_EDIT_LENGTHS)
        {
            return Err("edit list longer than 8192 lengths");
        }
        let (segments, raw_len) = segment_layout(header_len.into(), c4gh_len)
            .ok_or("Crypt4GH file length is not a header plus whole segments")?;
        segments
            .checked_mul(SEGMENT_TAG_LEN as u64)
            .and_then(|t| t.checked_add(tags_offset))
            .ok_or("segment tag table overflows")?;
        Ok(External {
            location,
            c4gh_len,
            header_len,
            header_sha256,
            keys,
            edit_list,
            tags_offset,
            segments,
            raw_len,
        })
    }

    /// The same record with its tag table at `offset`.
    pub fn with_tags_offset(mut self, offset: u64) -> External {
        self.tags_offset = offset;
        self
    }

    /// Where the file lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Exact length of the `.c4gh` file.
    pub fn c4gh_len(&self) -> u64 {
        self.c4gh_len
    }

    /// Bytes of its Crypt4GH header.
    pub fn header_len(&self) -> u32 {
        self.header_len
    }

    /// SHA-256 of its Crypt4GH header bytes.
    pub fn header_sha256(&self) -> &[u8; 32] {
        &self.header_sha256
    }

    /// The data keys, in the order a reader tries them.
    pub fn keys(&self) -> &[ExternalKey] {
        &self.keys
    }

    /// The edit list, if the header had one.
    pub fn edit_list(&self) -> Option<&[u64]> {
        self.edit_list.as_deref()
    }

    /// Offset of the tag table in the data stream.
    pub fn tags_offset(&self) -> u64 {
        self.tags_offset
    }

    /// Number of segments (and of tags).
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Bytes of the tag table.
    pub fn tags_len(&self) -> u64 {
        self.segments * SEGMENT_TAG_LEN as u64
    }

    /// Plaintext bytes of all segments (before the edit list).
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }

    /// File offsets of segment `i` as stored (`i < segments()`).
    pub fn segment_range(&self, i: u64) -> Range<u64> {
        let start = u64::from(self.header_len) + i * SEGMENT_STORED;
        let plain = self
            .raw_len
            .saturating_sub(i.saturating_mul(SEGMENT_PLAIN))
            .min(SEGMENT_PLAIN);
        start..start + plain + SEGMENT_OVERHEAD
    }

    /// Appends the record's bytes (FORMAT.md) to an index being written.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tags_offset.to_le_bytes());
        let (kind, loc) = match &self.location {
            Location::Relative(b) => (LOCATION_RELATIVE, b),
            Location::Absolute(b) => (LOCATION_ABSOLUTE, b),
        };
        out.push(kind);
        out.extend_from_slice(&(loc.len() as u16).to_le_bytes());
        out.extend_from_slice(loc);
        out.extend_from_slice(&self.c4gh_len.to_le_bytes());
        out.extend_from_slice(&self.header_len.to_le_bytes());
        out.extend_from_slice(&self.header_sha256);
        out.push(self.keys.len() as u8);
        for k in &self.keys {
            out.extend_from_slice(k.expose());
        }
        match &self.edit_list {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                out.extend_from_slice(&(e.len() as u16).to_le_bytes());
                for l in e {
                    out.extend_from_slice(&l.to_le_bytes());
                }
            }
        }
    }

    /// Reads a record written by [`External::encode`].
    pub(crate) fn parse(r: &mut Le<'_>) -> Result<External, Error> {
        let bad = |why: &str| Error::IndexInvalid(why.to_string());
        let tags_offset = r.u64()?;
        let kind = r.u8()?;
        let n = r.u16()? as usize;
        let loc = r.take(n)?.to_vec();
        let location = match kind {
            LOCATION_RELATIVE => Location::Relative(loc),
            LOCATION_ABSOLUTE => Location::Absolute(loc),
            _ => return Err(bad("unknown external location kind")),
        };
        let c4gh_len = r.u64()?;
        let header_len = r.u32()?;
        let header_sha256: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        let nkeys = r.u8()? as usize;
        if nkeys > MAX_KEYS {
            return Err(bad("external file needs 1 to 16 data keys"));
        }
        let mut keys = Vec::with_capacity(nkeys);
        for _ in 0..nkeys {
            keys.push(ExternalKey(r.take(32)?.try_into().expect("32 bytes")));
        }
        let edit_list = match r.u8()? {
            0 => None,
            1 => {
                let n = r.u16()? as usize;
                if n > MAX_EDIT_LENGTHS {
                    return Err(bad("edit list longer than 8192 lengths"));
                }
                let mut e = Vec::with_capacity(n);
                for _ in 0..n {
                    e.push(r.u64()?);
                }
                Some(e)
            }
            _ => return Err(bad("edit list flag is neither 0 nor 1")),
        };
        External::new(
            location,
            c4gh_len,
            header_len,
            header_sha256,
            keys,
            edit_list,
            tags_offset,
        )
        .map_err(bad)
    }
}

/// Makes and checks segment tags (one per archive, keyed by its
/// `hpcs/v1 c4gh-segments` sub-key).
pub struct SegmentTagger {
    cipher: ChunkCipher,
}

impl SegmentTagger {
    /// The tagger of an archive with this suite and sub-key.
    pub fn new(suite: Suite, backend: Backend, key: &SubKey) -> SegmentTagger {
        SegmentTagger {
            cipher: ChunkCipher::new(suite, backend, key),
        }
    }

    /// The tag of segment `segment` of the external file `ordinal`, whose
    /// stored bytes (nonce ‖ ciphertext ‖ MAC) are `stored`.
    pub fn tag(&self, ordinal: u32, segment: u64, stored: &[u8]) -> [u8; SEGMENT_TAG_LEN] {
        self.cipher.tag_of(nonce(ordinal, segment), stored)
    }

    /// True when `stored` has the tag `expected` at that place (constant time).
    pub fn verify(&self, ordinal: u32, segment: u64, stored: &[u8], expected: &[u8]) -> bool {
        ct_eq(&self.tag(ordinal, segment, stored), expected)
    }
}

fn nonce(ordinal: u32, segment: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&ordinal.to_be_bytes());
    n[4..].copy_from_slice(&segment.to_be_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(edit: Option<Vec<u64>>) -> External {
        External::new(
            Location::Relative(b"data/s1.bam.c4gh".to_vec()),
            124 + 2 * SEGMENT_STORED + 29,
            124,
            [5; 32],
            vec![
                ExternalKey::from_bytes([1; 32]),
                ExternalKey::from_bytes([2; 32]),
            ],
            edit,
            4096,
        )
        .unwrap()
    }

    #[test]
    fn layout_table() {
        // (header, file length) -> (segments, raw bytes)
        let ok = [
            (100, 100, (0, 0)),
            (100, 129, (1, 1)),
            (100, 100 + SEGMENT_STORED, (1, SEGMENT_PLAIN)),
            (100, 100 + SEGMENT_STORED + 29, (2, SEGMENT_PLAIN + 1)),
        ];
        for (h, l, want) in ok {
            assert_eq!(segment_layout(h, l), Some(want), "{h} {l}");
        }
        for (h, l) in [(100, 101), (100, 128), (100, 99), (0, SEGMENT_STORED + 28)] {
            assert_eq!(segment_layout(h, l), None, "{h} {l}");
        }
        let r = record(None);
        assert_eq!(
            (r.segments(), r.raw_len(), r.tags_len()),
            (3, 2 * SEGMENT_PLAIN + 1, 48)
        );
        assert_eq!(r.segment_range(0), 124..124 + SEGMENT_STORED);
        assert_eq!(r.segment_range(2).end, r.c4gh_len());
        assert_eq!(r.segment_range(2).end - r.segment_range(2).start, 29);
    }

    #[test]
    fn encode_parse_round_trip_and_checks() {
        for edit in [None, Some(vec![]), Some(vec![3, 70_000, 1])] {
            let r = record(edit);
            let mut b = Vec::new();
            r.encode(&mut b);
            let mut le = Le::new(&b, 0, || Error::BadRequest);
            assert_eq!(External::parse(&mut le).unwrap(), r);
            assert_eq!(le.pos(), b.len());
            // every cut is an error, never a panic
            for cut in 0..b.len() {
                let mut le = Le::new(&b[..cut], 0, || Error::BadRequest);
                assert!(External::parse(&mut le).is_err(), "cut {cut}");
            }
        }
        let bad = |loc, len, hl, keys: usize| {
            External::new(
                loc,
                len,
                hl,
                [0; 32],
                vec![ExternalKey::from_bytes([1; 32]); keys],
                None,
                0,
            )
        };
        let rel = |b: &[u8]| Location::Relative(b.to_vec());
        assert!(bad(rel(b""), 100, 100, 1).is_err());
        assert!(bad(rel(b"/abs"), 100, 100, 1).is_err());
        assert!(bad(Location::Absolute(b"rel".to_vec()), 100, 100, 1).is_err());
        assert!(bad(rel(b"a\0b"), 100, 100, 1).is_err());
        assert!(bad(rel(&[b'x'; MAX_LOCATION + 1]), 100, 100, 1).is_err());
        assert!(bad(rel(b"f"), 100, 100, 0).is_err());
        assert!(bad(rel(b"f"), 100, 100, MAX_KEYS + 1).is_err());
        assert!(bad(rel(b"f"), 101, 100, 1).is_err());
        assert!(bad(rel(b"f"), 100, 10, 1).is_err());
        assert!(bad(rel(b"f"), 100, 100, 1).is_ok());
        let dbg = format!("{:?}", record(Some(vec![7, 7])));
        assert!(!dbg.contains("s1.bam") && !dbg.contains("[1, 1"), "{dbg}");
    }

    #[test]
    fn tags_bind_content_place_and_key() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            for &backend in Backend::all() {
                let t = SegmentTagger::new(suite, backend, &SubKey::from_bytes([3; 32]));
                let seg: Vec<u8> = (0..SEGMENT_STORED as usize).map(|i| i as u8).collect();
                let tag = t.tag(2, 7, &seg);
                assert!(t.verify(2, 7, &seg, &tag));
                assert!(!t.verify(2, 8, &seg, &tag), "another segment index");
                assert!(!t.verify(3, 7, &seg, &tag), "another file");
                let mut flipped = seg.clone();
                flipped[40_000] ^= 1;
                assert!(!t.verify(2, 7, &flipped, &tag), "changed bytes");
                assert!(!t.verify(2, 7, &seg[..seg.len() - 1], &tag), "cut short");
                let other = SegmentTagger::new(suite, backend, &SubKey::from_bytes([4; 32]));
                assert!(!other.verify(2, 7, &seg, &tag), "another archive");
            }
        }
    }

    /// The backends give the same tags (the format does not depend on one).
    #[cfg(all(feature = "aws-lc", feature = "rustcrypto"))]
    #[test]
    fn backends_agree() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let k = SubKey::from_bytes([9; 32]);
            let a = SegmentTagger::new(suite, Backend::AwsLc, &k);
            let b = SegmentTagger::new(suite, Backend::RustCrypto, &k);
            for len in [29, 1000, SEGMENT_STORED as usize] {
                let seg = vec![0x5a; len];
                assert_eq!(a.tag(1, 2, &seg), b.tag(1, 2, &seg), "{suite:?} {len}");
            }
        }
    }
}
