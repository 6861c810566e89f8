//! A keyed chunk stream: seals and opens runs of chunks, in parallel.
//!
//! FORMAT.md "Chunks". A [`StreamKey`] couples a [`ChunkCipher`] with the
//! stream's [`Geometry`], so the nonce of chunk `i` (its index, and whether it
//! is the last chunk) always comes from the geometry, never from the caller.

use rayon::prelude::*;

use super::aead::{Backend, ChunkCipher, Suite, TAG_LEN};
use super::keys::SubKey;
use super::nonce::ChunkNonce;
use super::offsets::Geometry;

/// Which stream of the archive a chunk belongs to (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The file data.
    Data,
    /// The encrypted index.
    Index,
}

/// One stream's key and shape.
pub struct StreamKey {
    cipher: ChunkCipher,
    geom: Geometry,
}

impl StreamKey {
    /// Prepares the stream.
    pub fn new(suite: Suite, backend: Backend, key: &SubKey, geom: Geometry) -> StreamKey {
        StreamKey {
            cipher: ChunkCipher::new(suite, backend, key),
            geom,
        }
    }

    /// The stream's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    /// Seals chunk `i` in place: `buf` is its plaintext followed by `TAG_LEN`
    /// bytes of room for the tag.
    pub fn seal_chunk(&self, i: u64, buf: &mut [u8]) {
        debug_assert_eq!(buf.len(), self.geom.chunk_plain_len(i) + TAG_LEN);
        self.cipher
            .seal(ChunkNonce::new(i, self.geom.is_last(i)), buf);
    }

    /// Opens chunk `i` in place (`buf` = ciphertext || tag, exactly as stored).
    /// Returns `Err(i)` when it fails authentication or has the wrong length.
    pub fn open_chunk(&self, i: u64, buf: &mut [u8]) -> Result<(), u64> {
        if i >= self.geom.chunk_count() || buf.len() != self.geom.chunk_plain_len(i) + TAG_LEN {
            return Err(i);
        }
        self.cipher
            .open(ChunkNonce::new(i, self.geom.is_last(i)), buf)
            .map_err(|_| i)
    }

    /// Opens chunk `i` from `stored` (ciphertext || tag, exactly as stored)
    /// into `out` (its plaintext length), leaving `stored` as it is. Returns
    /// `Err(i)` when it fails authentication or a length is wrong; `out` then
    /// holds no plaintext.
    pub fn open_chunk_into(&self, i: u64, stored: &[u8], out: &mut [u8]) -> Result<(), u64> {
        let n = self.geom.chunk_plain_len(i);
        if i >= self.geom.chunk_count() || stored.len() != n + TAG_LEN || out.len() != n {
            zeroize::Zeroize::zeroize(out);
            return Err(i);
        }
        self.cipher
            .open_into(ChunkNonce::new(i, self.geom.is_last(i)), stored, out)
            .map_err(|_| i)
    }

    /// Seals the contiguous run of chunks starting at `first`, laid out as
    /// stored (plaintext at each chunk's place, tag room after it), in parallel.
    pub fn seal_run(&self, first: u64, buf: &mut [u8]) {
        let stride = self.geom.chunk_size() as usize + TAG_LEN;
        buf.par_chunks_mut(stride)
            .enumerate()
            .for_each(|(k, c)| self.seal_chunk(first + k as u64, c));
    }

    /// Opens the contiguous run of chunks starting at `first` in place, in
    /// parallel. On failure returns the lowest failing chunk index and wipes
    /// the whole run, so no plaintext of a failed run can be used.
    pub fn open_run(&self, first: u64, buf: &mut [u8]) -> Result<(), u64> {
        let stride = self.geom.chunk_size() as usize + TAG_LEN;
        let bad = if buf.len() <= stride {
            self.open_chunk(first, buf).err()
        } else {
            buf.par_chunks_mut(stride)
                .with_min_len(4)
                .enumerate()
                .filter_map(|(k, c)| self.open_chunk(first + k as u64, c).err())
                .min()
        };
        match bad {
            None => Ok(()),
            Some(i) => {
                zeroize::Zeroize::zeroize(buf);
                Err(i)
            }
        }
    }

    /// Opens separately-buffered chunks `first, first + 1, …` in parallel
    /// (each buffer holds one chunk as stored). Same failure rule as
    /// [`StreamKey::open_run`].
    pub fn open_slots(&self, first: u64, slots: &mut [&mut [u8]]) -> Result<(), u64> {
        self.open_slots_in(first, slots, true)
    }

    /// [`StreamKey::open_slots`] on the calling thread only, for callers that
    /// already run in parallel (a rayon task that joined a parallel loop could
    /// be handed another queued task, blocking on that task's I/O meanwhile).
    pub fn open_slots_serial(&self, first: u64, slots: &mut [&mut [u8]]) -> Result<(), u64> {
        self.open_slots_in(first, slots, false)
    }

    fn open_slots_in(&self, first: u64, slots: &mut [&mut [u8]], par: bool) -> Result<(), u64> {
        let bad = if !par || slots.len() == 1 {
            slots
                .iter_mut()
                .enumerate()
                .find_map(|(k, c)| self.open_chunk(first + k as u64, c).err())
        } else {
            // Whole groups of chunks per task: a 64 KiB chunk opens in ~8 µs,
            // too little to pay for a task each.
            slots
                .par_iter_mut()
                .with_min_len(4)
                .enumerate()
                .filter_map(|(k, c)| self.open_chunk(first + k as u64, c).err())
                .min()
        };
        match bad {
            None => Ok(()),
            Some(i) => {
                for s in slots.iter_mut() {
                    zeroize::Zeroize::zeroize(&mut **s);
                }
                Err(i)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_into_another_buffer_matches_opening_in_place() {
        let g = Geometry::new(4096, 10_000);
        for &backend in Backend::all() {
            for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
                let k = StreamKey::new(suite, backend, &SubKey::from_bytes([3; 32]), g);
                let plain: Vec<u8> = (0..g.chunk_plain_len(2)).map(|b| b as u8).collect();
                let mut stored = plain.clone();
                stored.resize(plain.len() + TAG_LEN, 0);
                k.seal_chunk(2, &mut stored);
                let mut out = vec![0u8; plain.len()];
                k.open_chunk_into(2, &stored, &mut out).unwrap();
                assert_eq!(out, plain, "{suite:?} on {}", backend.name());
                // The stored bytes are left as they were: opening in place
                // afterwards gives the same plaintext.
                let mut again = stored.clone();
                k.open_chunk(2, &mut again).unwrap();
                assert_eq!(&again[..plain.len()], &plain[..]);
                // Wrong index (nonce), tampered byte, wrong lengths: refused,
                // and the output holds no plaintext.
                let mut out = vec![0u8; plain.len()];
                assert_eq!(k.open_chunk_into(1, &stored, &mut out), Err(1));
                assert!(out.iter().all(|&b| b == 0));
                let mut bad = stored.clone();
                bad[5] ^= 1;
                let mut out = vec![0xAAu8; plain.len()];
                assert_eq!(k.open_chunk_into(2, &bad, &mut out), Err(2));
                assert!(out.iter().all(|&b| b == 0), "wiped after a failure");
                let mut short = vec![0u8; plain.len() - 1];
                assert_eq!(k.open_chunk_into(2, &stored, &mut short), Err(2));
            }
        }
    }
}
