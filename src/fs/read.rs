//! The data path: plaintext bytes of an archive's data stream, through the
//! chunk cache.
//!
//! [`DataPath::read`] serves a byte range: chunks already cached (or being
//! loaded by another thread) are copied out; each run of consecutive missing
//! chunks is claimed and loaded with one [`Archive::read_chunks`] call (one
//! `preadv` of the backing file, then parallel authenticated decryption).
//! The output is either filled completely with authentic plaintext or the
//! call fails: there is no partial success. [`DataPath::prefetch`] loads
//! chunks ahead of a sequential reader and never waits for cache space.
//! Only a build with the cargo feature `bench-ceilings` knows the benchmark
//! ceilings (`bench::BenchMode`): zeros without touching the archive, or the
//! stored bytes without decryption and authentication. A default build has no
//! path that serves anything but authentic plaintext.

use std::ops::Range;
use std::sync::Arc;

use crate::crypto::aead::TAG_LEN;
use crate::crypto::{Archive, Error as FormatError, Source};

#[cfg(feature = "bench-ceilings")]
use super::bench::BenchMode;
use super::cache::{ChunkCache, Claim, Ready};
use super::errors::FsError;

/// Failed loads a reader tolerates from *other* threads on one chunk before
/// it gives up (its own failed load is final at once).
const FOREIGN_FAILURES: u32 = 2;

/// Archives plus the cache in front of them.
pub struct DataPath<S> {
    archives: Vec<Archive<S>>,
    cache: ChunkCache,
    #[cfg(feature = "bench-ceilings")]
    mode: BenchMode,
}

/// A failed load, with the chunk that failed (for the log line).
#[derive(Debug)]
pub struct ReadFailure {
    /// What went wrong.
    pub error: FsError,
    /// The data chunk being read when it failed.
    pub chunk: u64,
}

impl<S: Source> DataPath<S> {
    /// A data path over `archives` (indexed as given).
    pub fn new(archives: Vec<Archive<S>>, cache: ChunkCache) -> DataPath<S> {
        DataPath {
            archives,
            cache,
            #[cfg(feature = "bench-ceilings")]
            mode: BenchMode::Real,
        }
    }

    /// The same data path serving a benchmark ceiling instead.
    #[cfg(feature = "bench-ceilings")]
    pub fn with_ceiling(self, mode: BenchMode) -> DataPath<S> {
        DataPath { mode, ..self }
    }

    /// The archives.
    pub fn archives(&self) -> &[Archive<S>] {
        &self.archives
    }

    /// The cache.
    pub fn cache(&self) -> &ChunkCache {
        &self.cache
    }

    /// Fills `out` with data-stream bytes `[pos, pos + out.len())` of archive `a`.
    pub fn read(&self, a: usize, pos: u64, out: &mut [u8]) -> Result<(), ReadFailure> {
        let fail = |error, chunk| ReadFailure { error, chunk };
        let arch = self
            .archives
            .get(a)
            .ok_or_else(|| fail(FsError::Internal("archive index"), 0))?;
        let g = *arch.data_geometry();
        let len = out.len() as u64;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= g.len())
            .ok_or_else(|| fail(FsError::Range, 0))?;
        if len == 0 {
            return Ok(());
        }
        #[cfg(feature = "bench-ceilings")]
        if self.mode == BenchMode::Zeros {
            out.fill(0);
            return Ok(());
        }
        let chunks = g.chunks_for(pos, len);
        let ak = a as u32;
        let mut written = 0u64;
        let mut copy = |i: u64, r: &Ready| -> Result<(), ReadFailure> {
            let cs = g.chunk_plain_start(i);
            let from = pos.max(cs);
            let to = end.min(cs + r.data().len() as u64);
            if from >= to {
                return Err(fail(FsError::Internal("chunk outside read"), i));
            }
            let dst = out
                .get_mut((from - pos) as usize..(to - pos) as usize)
                .ok_or_else(|| fail(FsError::Internal("copy range"), i))?;
            let src = r
                .data()
                .get((from - cs) as usize..(to - cs) as usize)
                .ok_or_else(|| fail(FsError::Internal("chunk range"), i))?;
            dst.copy_from_slice(src);
            written += to - from;
            Ok(())
        };
        let mut i = chunks.start;
        let mut foreign = 0u32;
        while i < chunks.end {
            if let Some(e) = self.cache.get((ak, i)) {
                match e.wait() {
                    Some(r) => {
                        copy(i, &r)?;
                        i += 1;
                        foreign = 0;
                        continue;
                    }
                    None => {
                        // Another thread's load failed (maybe for a
                        // neighbour chunk): try this chunk alone ourselves.
                        foreign += 1;
                        if foreign > FOREIGN_FAILURES {
                            return Err(fail(FsError::Internal("repeated load failures"), i));
                        }
                        let claim = self.cache.claim(ak, i, 1, true);
                        if claim.is_empty() {
                            continue;
                        }
                        let rs = self.load(arch, claim, true)?;
                        for r in &rs {
                            copy(i, r)?;
                            i += 1;
                        }
                        continue;
                    }
                }
            }
            let claim = self.cache.claim(ak, i, chunks.end - i, true);
            if claim.is_empty() {
                continue; // someone else inserted it meanwhile
            }
            let rs = self.load(arch, claim, true)?;
            for r in &rs {
                copy(i, r)?;
                i += 1;
            }
        }
        if written != len {
            return Err(fail(FsError::Internal("short copy"), chunks.start));
        }
        Ok(())
    }

    /// Reads and authenticates a claimed run, publishing it to the cache;
    /// decrypts in parallel when `par` (foreground reads), on this thread
    /// otherwise (prefetch pieces, which already run side by side).
    fn load(
        &self,
        arch: &Archive<S>,
        mut claim: Claim<'_>,
        par: bool,
    ) -> Result<Vec<Arc<Ready>>, ReadFailure> {
        let first = claim.first();
        let result = match claim.buffers(|i| arch.chunk_stored_len(i)) {
            #[cfg(feature = "bench-ceilings")]
            Some(mut bufs) if self.mode == BenchMode::NoCrypt => {
                arch.read_chunks_stored(first, &mut bufs)
            }
            Some(mut bufs) if par => arch.read_chunks(first, &mut bufs),
            Some(mut bufs) => arch.read_chunks_serial(first, &mut bufs),
            None => Err(FormatError::BadRequest),
        };
        match result {
            Ok(()) => {
                let g = *arch.data_geometry();
                Ok(claim.publish(|i| g.chunk_plain_len(i)))
            }
            Err(e) => {
                claim.fail();
                let chunk = match &e {
                    FormatError::ChunkAuth { chunk, .. } => *chunk,
                    _ => first,
                };
                Err(ReadFailure {
                    error: FsError::Archive(e),
                    chunk,
                })
            }
        }
    }

    /// Loads the missing chunks of `chunks` of archive `a` into the cache,
    /// without waiting for space. Failures are left for a foreground read
    /// to report.
    pub fn prefetch(&self, a: usize, chunks: Range<u64>) {
        #[cfg(feature = "bench-ceilings")]
        if self.mode == BenchMode::Zeros {
            return;
        }
        let Some(arch) = self.archives.get(a) else {
            return;
        };
        let end = chunks.end.min(arch.data_geometry().chunk_count());
        let ak = a as u32;
        let mut i = chunks.start;
        while i < end {
            if self.cache.contains((ak, i)) {
                i += 1;
                continue;
            }
            let claim = self.cache.claim(ak, i, end - i, false);
            if claim.is_empty() {
                if self.cache.contains((ak, i)) {
                    continue;
                }
                return; // no room: the reader is faster than the cache is big
            }
            let n = claim.len();
            if self.load(arch, claim, false).is_err() {
                return;
            }
            i += n;
        }
    }

    /// Largest stored chunk of any archive (the cache slot size).
    pub fn max_stored_chunk(archives: &[Archive<S>]) -> usize {
        archives
            .iter()
            .map(|a| a.data_geometry().chunk_size() as usize + TAG_LEN)
            .max()
            .unwrap_or(TAG_LEN)
    }
}
