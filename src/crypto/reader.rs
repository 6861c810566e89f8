//! Reading an archive: open, unlock with the data key, random access.
//!
//! [`SealedArchive::open`] parses the header without a key (for `inspect` and
//! for finding a usable key stanza). [`SealedArchive::unlock`] checks the key
//! against the key check, the header MAC, the exact archive length, decrypts
//! and validates the whole index, and authenticates the final data chunk, so
//! no size is ever reported that the archive cannot back up. [`Archive`] is
//! then `Sync`: `read_at` takes `&self` and decrypts the chunks a read spans
//! in parallel; the FUSE layer builds its cache on [`Archive::read_chunks`].

use zeroize::Zeroize;

use super::aead::{Backend, TAG_LEN};
use super::header::{Header, PREFIX_LEN};
use super::index::{Kind, NodeId, Tree};
use super::keys::{DataKey, SubKey};
use super::offsets::Geometry;
use super::source::Source;
use super::stream::{StreamKey, StreamKind};
use super::Error;

/// An archive whose header is parsed but whose key is not yet known.
pub struct SealedArchive<S> {
    source: S,
    header: Header,
}

impl<S: Source> SealedArchive<S> {
    /// Reads and parses the header (no key needed, nothing authenticated).
    pub fn open(source: S) -> Result<SealedArchive<S>, Error> {
        let len = source.len()?;
        if len < PREFIX_LEN as u64 {
            return Err(Error::NotAnArchive);
        }
        let mut prefix = [0u8; PREFIX_LEN];
        source.read_exact_at(&mut prefix, 0)?;
        let header_len = Header::parse_prefix(&prefix)?;
        if u64::from(header_len) > len {
            return Err(Error::Truncated {
                expected: header_len.into(),
                actual: len,
            });
        }
        let mut bytes = vec![0u8; header_len as usize];
        source.read_exact_at(&mut bytes, 0)?;
        let header = Header::parse(&bytes)?;
        Ok(SealedArchive { source, header })
    }

    /// The parsed (unauthenticated) header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Checks `key` and opens the archive with the default backend.
    pub fn unlock(self, key: &DataKey) -> Result<Archive<S>, Error> {
        self.unlock_with(key, Backend::default())
    }

    /// Checks `key` and opens the archive on `backend`.
    pub fn unlock_with(self, key: &DataKey, backend: Backend) -> Result<Archive<S>, Error> {
        let h = self.header;
        let keys = h.authenticate(key)?;
        let actual = self.source.len()?;
        let expected = h.archive_len();
        if actual < expected {
            return Err(Error::Truncated { expected, actual });
        }
        if actual > expected {
            return Err(Error::TrailingData(actual - expected));
        }
        let data = StreamKey::new(h.suite, backend, &keys.data, h.data_geometry());
        let index = StreamKey::new(h.suite, backend, &keys.index, h.index_geometry());

        // Index: read it whole, open every chunk, then parse.
        let ig = h.index_geometry();
        let span = ig.cipher_span(0..ig.chunk_count()) as usize;
        let mut buf = vec![0u8; span];
        self.source.read_exact_at(&mut buf, h.index_offset())?;
        index
            .open_run(0, &mut buf)
            .map_err(|_| Error::IndexTampered)?;
        let plain = compact(&ig, 0, &buf);
        buf.zeroize();
        let tree = Tree::parse(&plain, h.data_len);
        let mut plain = plain;
        plain.zeroize();
        let tree = tree?;

        let archive = Archive {
            source: self.source,
            header: h,
            data,
            tree,
            results: SubKey::from_bytes(*keys.results.expose()),
        };
        // The end first: the final data chunk must authenticate as final.
        let last = archive.data.geometry().chunk_count() - 1;
        let mut chunk = vec![0u8; archive.chunk_stored_len(last)];
        archive.read_chunks(last, &mut [&mut chunk[..]])?;
        chunk.zeroize();
        Ok(archive)
    }
}

/// Concatenates the plaintext of the run of chunks in `buf` (opened in place).
fn compact(g: &Geometry, first: u64, buf: &[u8]) -> Vec<u8> {
    let stride = g.chunk_size() as usize + TAG_LEN;
    let mut out = Vec::with_capacity(buf.len());
    for (k, c) in buf.chunks(stride).enumerate() {
        let n = g.chunk_plain_len(first + k as u64);
        out.extend_from_slice(&c[..n]);
    }
    out
}

/// What [`Archive::read_chunks_in`] does with the chunks it has read.
#[derive(Clone, Copy)]
enum Opening {
    /// Authenticate and decrypt them on the rayon pool.
    Parallel,
    /// Authenticate and decrypt them on this thread.
    Serial,
    /// Leave them sealed, as stored: [`Archive::open_chunk_into`] or
    /// [`Archive::open_chunk_in_place`] authenticates them later.
    Sealed,
}

/// An unlocked archive: authenticated header, validated index, ready to read.
pub struct Archive<S> {
    source: S,
    header: Header,
    data: StreamKey,
    tree: Tree,
    results: SubKey,
}

impl<S: Source> Archive<S> {
    /// The authenticated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The key that authenticates encrypted job results produced by a job
    /// that held this archive's key (FORMAT.md "Keys", `crate::results`).
    pub fn results_key(&self) -> &SubKey {
        &self.results
    }

    /// The directory tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The backing source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Shape of the data stream.
    pub fn data_geometry(&self) -> &Geometry {
        self.data.geometry()
    }

    /// Bytes chunk `i` of the data stream occupies as stored (plaintext + tag).
    pub fn chunk_stored_len(&self, i: u64) -> usize {
        self.data.geometry().chunk_plain_len(i) + TAG_LEN
    }

    /// The data-stream extent `(offset, size)` of a file entry.
    pub fn extent(&self, node: NodeId) -> Option<(u64, u64)> {
        match self.tree.node(node)?.kind {
            Kind::File { offset, size, .. } => Some((offset, size)),
            _ => None,
        }
    }

    /// Reads and authenticates data chunks `first, first + 1, …` into `slots`
    /// (each exactly `chunk_stored_len(i)` bytes) with one vectored positional
    /// read, then opens them in parallel. On success each slot's plaintext is
    /// its first `len - TAG_LEN` bytes. On failure no slot holds plaintext.
    pub fn read_chunks(&self, first: u64, slots: &mut [&mut [u8]]) -> Result<(), Error> {
        self.read_chunks_in(first, slots, Opening::Parallel)
    }

    /// [`Archive::read_chunks`], opening the chunks on the calling thread
    /// (for callers that are themselves one of several parallel tasks).
    pub fn read_chunks_serial(&self, first: u64, slots: &mut [&mut [u8]]) -> Result<(), Error> {
        self.read_chunks_in(first, slots, Opening::Serial)
    }

    /// Reads data chunks `first, first + 1, …` into `slots` as stored
    /// (ciphertext || tag, each exactly `chunk_stored_len(i)` bytes) with one
    /// vectored positional read, without opening them: nothing in the slots
    /// is plaintext or authenticated until [`Archive::open_chunk_into`] or
    /// [`Archive::open_chunk_in_place`] says so. This is how the FUSE cache
    /// loads, so that a chunk is decrypted once, straight where its
    /// plaintext is needed.
    pub fn read_chunks_sealed(&self, first: u64, slots: &mut [&mut [u8]]) -> Result<(), Error> {
        self.read_chunks_in(first, slots, Opening::Sealed)
    }

    /// Authenticates data chunk `i`, read with [`Archive::read_chunks_sealed`]
    /// into `stored`, and decrypts it into `out` (its plaintext length), for
    /// example straight into a reply buffer; `stored` is left as it was. On
    /// failure `out` holds no plaintext.
    pub fn open_chunk_into(&self, i: u64, stored: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.data
            .open_chunk_into(i, stored, out)
            .map_err(|chunk| Error::ChunkAuth {
                stream: StreamKind::Data,
                chunk,
            })
    }

    /// Authenticates and decrypts data chunk `i`, read with
    /// [`Archive::read_chunks_sealed`], in place: on success the plaintext is
    /// the first `stored.len() - TAG_LEN` bytes; on failure `stored` holds
    /// no plaintext.
    pub fn open_chunk_in_place(&self, i: u64, stored: &mut [u8]) -> Result<(), Error> {
        self.data
            .open_chunk(i, stored)
            .map_err(|chunk| Error::ChunkAuth {
                stream: StreamKind::Data,
                chunk,
            })
    }

    fn read_chunks_in(
        &self,
        first: u64,
        slots: &mut [&mut [u8]],
        opening: Opening,
    ) -> Result<(), Error> {
        let g = self.data.geometry();
        let n = slots.len() as u64;
        if n == 0 {
            return Ok(());
        }
        if first.checked_add(n).is_none_or(|e| e > g.chunk_count())
            || slots
                .iter()
                .enumerate()
                .any(|(k, s)| s.len() != self.chunk_stored_len(first + k as u64))
        {
            return Err(Error::BadRequest);
        }
        let off = self.header.data_offset() + g.chunk_cipher_offset(first);
        self.source.read_vectored_exact_at(slots, off)?;
        let opened = match opening {
            Opening::Parallel => self.data.open_slots(first, slots),
            Opening::Serial => self.data.open_slots_serial(first, slots),
            Opening::Sealed => Ok(()),
        };
        opened.map_err(|chunk| Error::ChunkAuth {
            stream: StreamKind::Data,
            chunk,
        })
    }

    /// Reads up to `buf.len()` bytes of file `node` at `offset`. Returns the
    /// number of bytes read: `buf.len()`, or fewer only at the end of the file.
    /// Either every byte returned is authentic or an error is returned.
    pub fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let (start, size) = self.extent(node).ok_or(Error::NotAFile)?;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset) as usize;
        self.read_stream(start + offset, &mut buf[..n])?;
        Ok(n)
    }

    /// Reads `out.len()` bytes of the data stream at `pos` (must lie inside).
    pub fn read_stream(&self, pos: u64, out: &mut [u8]) -> Result<(), Error> {
        let g = *self.data.geometry();
        let chunks = g.chunks_for(pos, out.len() as u64);
        if chunks.end - chunks.start == 0 || pos + out.len() as u64 > g.len() {
            return if out.is_empty() {
                Ok(())
            } else {
                Err(Error::BadRequest)
            };
        }
        let span = g.cipher_span(chunks.clone()) as usize;
        let mut buf = vec![0u8; span];
        let off = self.header.data_offset() + g.chunk_cipher_offset(chunks.start);
        self.source.read_exact_at(&mut buf, off)?;
        self.data
            .open_run(chunks.start, &mut buf)
            .map_err(|chunk| Error::ChunkAuth {
                stream: StreamKind::Data,
                chunk,
            })?;
        // Copy the requested plaintext out of the opened run.
        let stride = g.chunk_size() + TAG_LEN as u64;
        let mut written = 0usize;
        for i in chunks.clone() {
            let cstart = g.chunk_plain_start(i);
            let clen = g.chunk_plain_len(i) as u64;
            let from = pos.max(cstart);
            let to = (pos + out.len() as u64).min(cstart + clen);
            if from >= to {
                continue;
            }
            let base = ((i - chunks.start) * stride + (from - cstart)) as usize;
            let len = (to - from) as usize;
            out[written..written + len].copy_from_slice(&buf[base..base + len]);
            written += len;
        }
        buf.zeroize();
        debug_assert_eq!(written, out.len());
        Ok(())
    }

    /// Authenticates every data chunk, in parallel batches. `progress` gets
    /// the number of plaintext bytes verified so far.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<(), Error> {
        let g = *self.data.geometry();
        let per_batch = ((16u64 << 20) / g.chunk_size()).max(1);
        let count = g.chunk_count();
        let mut buf = Vec::new();
        let mut first = 0;
        while first < count {
            let end = (first + per_batch).min(count);
            buf.resize(g.cipher_span(first..end) as usize, 0);
            let off = self.header.data_offset() + g.chunk_cipher_offset(first);
            self.source.read_exact_at(&mut buf, off)?;
            self.data
                .open_run(first, &mut buf)
                .map_err(|chunk| Error::ChunkAuth {
                    stream: StreamKind::Data,
                    chunk,
                })?;
            progress(g.chunk_plain_start(end).min(g.len()));
            first = end;
        }
        buf.zeroize();
        Ok(())
    }
}
