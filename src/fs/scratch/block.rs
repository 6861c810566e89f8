//! The scratch block format (docs/mount.md, "Scratch block format"): pure
//! arithmetic and crypto, no I/O, table-tested.
//!
//! A scratch file is cut into blocks of [`BLOCK`] plaintext bytes. Each
//! block that holds data is stored in one *slot* of the backing file:
//! `ciphertext (4096) || tag (16)` = [`STORED`] bytes at `slot × 4112`,
//! AES-256-GCM under the mount's key with the nonce
//! `00 00 00 00 || version (u64, big-endian)`. The version comes from one
//! counter of the mount that only goes up, so no nonce is ever used twice
//! under the key; the daemon remembers, in memory, which slot and which
//! version each block of each file has now ([`super::map`]). A block is
//! opened only with the version it must have, so anything else in its slot
//! fails authentication: another block's ciphertext (moved or swapped),
//! an older version of the same block (rolled back), flipped bits, or
//! missing bytes (truncated). Version 0 is never sealed: it marks a block
//! that reads as zeros without touching the disk (a hole, or space
//! reserved by `fallocate`).

use std::ops::Range;

use zeroize::Zeroize;

use crate::crypto::aead::{Backend, ChunkCipher, OpenError, Suite, TAG_LEN};
use crate::crypto::keys::SubKey;

/// Plaintext bytes per block.
pub const BLOCK: usize = 4096;

/// Bytes of one stored block (ciphertext and tag), the slot stride.
pub const STORED: usize = BLOCK + TAG_LEN;

/// Largest scratch file: 2^32 - 2 blocks (slot numbers are `u32`).
pub const MAX_FILE: u64 = (u32::MAX as u64 - 1) * BLOCK as u64;

/// The nonce of the block sealed as `version` (never 0).
pub fn nonce(version: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&version.to_be_bytes());
    n
}

/// Byte offset of `slot` in the backing file.
pub fn slot_offset(slot: u32) -> u64 {
    u64::from(slot) * STORED as u64
}

/// Blocks holding bytes `off..off + len` (empty for `len == 0`).
pub fn blocks(off: u64, len: u64) -> Range<u64> {
    if len == 0 {
        return off / BLOCK as u64..off / BLOCK as u64;
    }
    off / BLOCK as u64..(off + len).div_ceil(BLOCK as u64)
}

/// The part of block `b` that bytes `off..off + len` cover, as a range
/// within the block.
pub fn within(b: u64, off: u64, len: u64) -> Range<usize> {
    let start = b * BLOCK as u64;
    let lo = off.saturating_sub(start).min(BLOCK as u64);
    let hi = (off + len).saturating_sub(start).min(BLOCK as u64);
    lo as usize..hi.max(lo) as usize
}

/// The mount's block cipher: AES-256-GCM under a key generated for this
/// mount (never stored, never logged, dropped at unmount).
pub struct BlockCipher {
    cipher: ChunkCipher,
}

impl BlockCipher {
    /// A cipher under a fresh random key.
    pub fn generate() -> std::io::Result<BlockCipher> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
        let key = SubKey::from_bytes(raw);
        raw.zeroize();
        Ok(BlockCipher::with_key(&key))
    }

    /// A cipher under `key` (tests).
    pub fn with_key(key: &SubKey) -> BlockCipher {
        BlockCipher {
            cipher: ChunkCipher::new(Suite::Aes256Gcm, Backend::default(), key),
        }
    }

    /// Seals one block of plaintext as `version` into `out` ([`STORED`]
    /// bytes), leaving the plaintext where it is.
    pub fn seal(&self, version: u64, plaintext: &[u8], out: &mut [u8]) {
        debug_assert!(version != 0, "version 0 is never sealed");
        debug_assert_eq!(plaintext.len(), BLOCK);
        self.cipher.seal_into(nonce(version), plaintext, out);
    }

    /// Opens a stored block that must be `version` into `out` ([`BLOCK`]
    /// bytes); on failure `out` is wiped.
    pub fn open(&self, version: u64, stored: &[u8], out: &mut [u8]) -> Result<(), OpenError> {
        if version == 0 || stored.len() != STORED {
            // Wiped here too: `out` may hold another block's plaintext.
            out.zeroize();
            return Err(OpenError);
        }
        self.cipher.open_into_raw(nonce(version), stored, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layout() {
        for (v, want) in [
            (1u64, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            (0x0102_0304_0506_0708, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            (
                u64::MAX,
                [0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255],
            ),
        ] {
            assert_eq!(nonce(v), want, "version {v}");
        }
    }

    #[test]
    fn offsets_and_ranges() {
        assert_eq!(STORED, 4112);
        for (slot, off) in [
            (0u32, 0u64),
            (1, 4112),
            (1000, 4_112_000),
            (u32::MAX, 4112 * 4_294_967_295),
        ] {
            assert_eq!(slot_offset(slot), off);
        }
        // (off, len) -> blocks
        for (off, len, want) in [
            (0u64, 0u64, 0..0u64),
            (0, 1, 0..1),
            (0, 4096, 0..1),
            (0, 4097, 0..2),
            (4095, 2, 0..2),
            (4096, 4096, 1..2),
            (10_000, 0, 2..2),
            (8191, 1, 1..2),
            (8192, 1 << 20, 2..258),
        ] {
            assert_eq!(blocks(off, len), want, "{off} +{len}");
        }
        // (block, off, len) -> range inside the block
        for (b, off, len, want) in [
            (0u64, 0u64, 4096u64, 0..4096usize),
            (0, 100, 10, 100..110),
            (0, 4000, 200, 4000..4096),
            (1, 4000, 200, 0..104),
            (1, 0, 1 << 20, 0..4096),
            (2, 0, 4096, 0..0),
            (0, 5000, 10, 4096..4096),
        ] {
            assert_eq!(within(b, off, len), want, "block {b} of {off} +{len}");
        }
    }

    /// Only the version a block was sealed as opens it: another version (an
    /// older copy, another block's ciphertext) or a changed or shortened
    /// block fails.
    #[test]
    fn blocks_open_only_as_their_version() {
        let c = BlockCipher::with_key(&SubKey::from_bytes([5; 32]));
        let pt: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
        let mut v7 = vec![0u8; STORED];
        c.seal(7, &pt, &mut v7);
        let mut v8 = vec![0u8; STORED];
        c.seal(8, &pt, &mut v8);
        assert_ne!(v7, v8, "the same plaintext seals differently per version");
        assert!(!v7.windows(16).any(|w| pt.windows(16).any(|p| p == w)));
        let mut out = vec![0u8; BLOCK];
        c.open(7, &v7, &mut out).unwrap();
        assert_eq!(out, pt);
        let mut flipped = v7.clone();
        flipped[4100] ^= 0x80;
        let cases: [(&str, u64, &[u8]); 5] = [
            ("rolled back", 8, &v7),
            ("newer", 7, &v8),
            ("hole version", 0, &v7),
            ("flipped", 7, &flipped),
            ("truncated", 7, &v7[..STORED - 1]),
        ];
        for (what, version, stored) in cases {
            // Every failure wipes `out`, also the ones refused before any
            // decryption (version 0, wrong length; found by fuzzing:
            // fuzz/corpus/scratch_block/wrong-length-not-wiped).
            out.copy_from_slice(&pt);
            assert_eq!(c.open(version, stored, &mut out), Err(OpenError), "{what}");
            assert!(out.iter().all(|&b| b == 0), "{what}: output wiped");
        }
        let other = BlockCipher::with_key(&SubKey::from_bytes([6; 32]));
        assert_eq!(
            other.open(7, &v7, &mut out),
            Err(OpenError),
            "another mount's key"
        );
        let a = BlockCipher::generate().unwrap();
        let b = BlockCipher::generate().unwrap();
        let mut sa = vec![0u8; STORED];
        a.seal(1, &pt, &mut sa);
        assert_eq!(
            b.open(1, &sa, &mut out),
            Err(OpenError),
            "keys are per mount"
        );
    }
}
