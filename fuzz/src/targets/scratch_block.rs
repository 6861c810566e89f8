//! Scratch blocks as read back from the backing file (docs/mount.md
//! "Scratch block format"): storage can put any bytes in a slot. The first
//! 8 bytes are the version the daemon expects (little-endian), the rest the
//! slot's bytes. A block opens only if the bytes are exactly what the mount
//! sealed as that version (here: [`plain`] under [`KEY`]), and then gives
//! that plaintext back; otherwise the output is wiped.

use hpcs::crypto::keys::SubKey;
use hpcs::fs::scratch::block::{BlockCipher, BLOCK, STORED};

/// The mount key the seeds were sealed with.
pub const KEY: [u8; 32] = [0x42; 32];

/// The plaintext sealed as `version` in the seeds: byte `i` is
/// `i + version` (mod 256).
pub fn plain(version: u64) -> Vec<u8> {
    (0..BLOCK)
        .map(|i| (i as u64).wrapping_add(version) as u8)
        .collect()
}

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    if input.len() < 8 {
        return;
    }
    let version = u64::from_le_bytes(input[..8].try_into().unwrap());
    let stored = &input[8..];
    let cipher = BlockCipher::with_key(&SubKey::from_bytes(KEY));
    let mut out = vec![0xffu8; BLOCK];
    match cipher.open(version, stored, &mut out) {
        Ok(()) => {
            assert_eq!(out, plain(version), "an opened block is what was sealed");
            let mut sealed = vec![0u8; STORED];
            cipher.seal(version, &plain(version), &mut sealed);
            assert_eq!(stored, &sealed[..], "only the sealed bytes open");
        }
        Err(_) => assert!(out.iter().all(|&b| b == 0), "a block that fails is wiped"),
    }
}
