//! Pure arithmetic of a chunked stream: plaintext ↔ ciphertext offsets.
//!
//! FORMAT.md "Chunks": a stream of `len` plaintext bytes is cut into chunks of
//! `chunk_size` bytes (the last one shorter, or empty when `len == 0`); chunk
//! `i` is stored at `i * (chunk_size + 16)` from the start of the stream as
//! `ciphertext || tag`. No I/O here; everything is table-tested.

use super::aead::TAG_LEN;

/// Smallest chunk size an archive may declare (4 KiB).
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// Largest chunk size an archive may declare (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Default chunk size (64 KiB): see FORMAT.md "Chunk size" for the measurement.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;

/// True when `size` is a chunk size v1 allows (a power of two in range).
pub fn valid_chunk_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size)
}

/// Shape of one stream: its chunk size and plaintext length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    chunk_size: u64,
    len: u64,
}

impl Geometry {
    /// A stream of `len` plaintext bytes in chunks of `chunk_size` (> 0).
    pub fn new(chunk_size: u32, len: u64) -> Geometry {
        assert!(chunk_size > 0, "chunk size is validated before use");
        Geometry {
            chunk_size: u64::from(chunk_size),
            len,
        }
    }

    /// Plaintext bytes in the stream.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty stream (which still has one, empty, final chunk).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Number of chunks: at least one (an empty stream is one empty final chunk).
    pub fn chunk_count(&self) -> u64 {
        self.len.div_ceil(self.chunk_size).max(1)
    }

    /// Bytes the stream occupies in the archive; `None` on overflow.
    pub fn ciphertext_len(&self) -> Option<u64> {
        self.chunk_count()
            .checked_mul(TAG_LEN as u64)?
            .checked_add(self.len)
    }

    /// Plaintext offset where chunk `i` starts.
    pub fn chunk_plain_start(&self, i: u64) -> u64 {
        i * self.chunk_size
    }

    /// Plaintext bytes in chunk `i` (`i < chunk_count()`).
    pub fn chunk_plain_len(&self, i: u64) -> usize {
        let start = i * self.chunk_size;
        (self.len.saturating_sub(start)).min(self.chunk_size) as usize
    }

    /// Offset of chunk `i` from the start of the stream's ciphertext.
    pub fn chunk_cipher_offset(&self, i: u64) -> u64 {
        i * (self.chunk_size + TAG_LEN as u64)
    }

    /// True when chunk `i` is the final one.
    pub fn is_last(&self, i: u64) -> bool {
        i + 1 == self.chunk_count()
    }

    /// Chunk range `first..end` covering plaintext `[offset, offset + n)`,
    /// clipped to the stream; empty when nothing of it lies in the stream.
    pub fn chunks_for(&self, offset: u64, n: u64) -> std::ops::Range<u64> {
        let end = offset.saturating_add(n).min(self.len);
        if offset >= end {
            return 0..0;
        }
        (offset / self.chunk_size)..end.div_ceil(self.chunk_size)
    }

    /// Ciphertext bytes of chunks `first..end`, stored contiguously.
    pub fn cipher_span(&self, chunks: std::ops::Range<u64>) -> u64 {
        if chunks.is_empty() {
            return 0;
        }
        let last = chunks.end - 1;
        self.chunk_cipher_offset(last) + self.chunk_plain_len(last) as u64 + TAG_LEN as u64
            - self.chunk_cipher_offset(chunks.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lengths() {
        // (chunk, len, count, ciphertext_len, last chunk plain len)
        let table: &[(u32, u64, u64, u64, usize)] = &[
            (4096, 0, 1, 16, 0),
            (4096, 1, 1, 17, 1),
            (4096, 4095, 1, 4111, 4095),
            (4096, 4096, 1, 4112, 4096),
            (4096, 4097, 2, 4129, 1),
            (4096, 5000, 2, 5032, 904),
            (65536, 65536 * 3, 3, 65536 * 3 + 48, 65536),
            (65536, 65536 * 3 + 7, 4, 65536 * 3 + 7 + 64, 7),
        ];
        for &(cs, len, count, ct, last) in table {
            let g = Geometry::new(cs, len);
            assert_eq!(g.chunk_count(), count, "{cs} {len}");
            assert_eq!(g.ciphertext_len(), Some(ct), "{cs} {len}");
            assert_eq!(g.chunk_plain_len(count - 1), last, "{cs} {len}");
            assert!(g.is_last(count - 1));
            assert!(count == 1 || !g.is_last(count - 2));
            assert_eq!(g.cipher_span(0..count), ct);
        }
    }

    #[test]
    fn ranges() {
        let g = Geometry::new(4096, 10000);
        // (offset, n, expected chunks)
        let table: &[(u64, u64, std::ops::Range<u64>)] = &[
            (0, 0, 0..0),
            (0, 1, 0..1),
            (4095, 1, 0..1),
            (4095, 2, 0..2),
            (4096, 4096, 1..2),
            (4096, 4097, 1..3),
            (9999, 100, 2..3),
            (10000, 1, 0..0),
            (20000, 5, 0..0),
            (0, u64::MAX, 0..3),
        ];
        for (off, n, want) in table {
            assert_eq!(g.chunks_for(*off, *n), *want, "offset {off} n {n}");
        }
        assert_eq!(g.chunk_cipher_offset(2), 2 * 4112);
        assert_eq!(g.cipher_span(1..3), 4112 + (10000 - 8192) as u64 + 16);
    }

    #[test]
    fn chunk_size_rules() {
        assert!(valid_chunk_size(4096));
        assert!(valid_chunk_size(DEFAULT_CHUNK_SIZE));
        assert!(valid_chunk_size(16 << 20));
        assert!(!valid_chunk_size(2048));
        assert!(!valid_chunk_size(32 << 20));
        assert!(!valid_chunk_size(65535));
        assert!(!valid_chunk_size(0));
    }
}
