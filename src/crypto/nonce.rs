//! The chunk nonce: a chunk's index and whether it is the last of its stream.
//!
//! FORMAT.md "Chunks": nonce = 8-byte big-endian chunk index, three zero bytes,
//! one flag byte (0x01 on the final chunk of the stream, 0x00 otherwise).
//! Keys are unique per archive and per stream (HKDF over the archive id), so a
//! (key, nonce) pair never repeats and a chunk only authenticates at its own
//! index, in its own stream, of its own archive, with its own finality.

/// Nonce of one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkNonce {
    index: u64,
    last: bool,
}

impl ChunkNonce {
    /// The nonce of chunk `index`, `last` when it ends the stream.
    pub fn new(index: u64, last: bool) -> ChunkNonce {
        ChunkNonce { index, last }
    }

    /// The 12 bytes given to the AEAD.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.index.to_be_bytes());
        n[11] = u8::from(self.last);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(ChunkNonce::new(0, false).to_bytes(), [0; 12]);
        assert_eq!(
            ChunkNonce::new(0x0102030405060708, true).to_bytes(),
            [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1]
        );
        assert_ne!(
            ChunkNonce::new(5, true).to_bytes(),
            ChunkNonce::new(5, false).to_bytes()
        );
    }
}
