//! The data path: plaintext bytes of an archive's data stream, through the
//! chunk cache.
//!
//! [`DataPath::read`] serves a byte range. Each run of consecutive missing
//! chunks is claimed and read with one [`Archive::read_chunks_sealed`] call
//! (one `preadv` of the backing file into the cache slots), and published
//! sealed: nothing is decrypted ahead of need. A chunk is then authenticated
//! and decrypted where its plaintext goes, once: a read that wants all of a
//! sealed chunk decrypts it out of place straight into its reply buffer
//! ([`Archive::open_chunk_into`]: the plaintext is written once, and the
//! cache keeps only ciphertext); a read that wants part of it opens it in its
//! slot ([`Archive::open_chunk_in_place`]), where every later reader finds
//! the plaintext; opened chunks are copied out. The output is either filled
//! completely with authentic plaintext or the call fails: there is no partial
//! success, and a chunk that fails authentication leaves the cache.
//! [`DataPath::prefetch`] reads chunks ahead of a sequential reader and never
//! waits for cache space. Only a build with the cargo feature
//! `bench-ceilings` knows the benchmark ceilings (`bench::BenchMode`): zeros
//! without touching the archive, or the stored bytes without decryption and
//! authentication. A default build has no path that serves anything but
//! authentic plaintext.

use std::ops::Range;
use std::sync::Arc;

use crate::crypto::aead::TAG_LEN;
use crate::crypto::{Archive, Error as FormatError, Source};
use crate::secmem::Region;

#[cfg(feature = "bench-ceilings")]
use super::bench::BenchMode;
use super::cache::{ChunkCache, Claim, Entry, Key, Loaded, Opened};
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

fn fail(error: FsError, chunk: u64) -> ReadFailure {
    ReadFailure { error, chunk }
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
        let want = Want { pos, end };
        let mut written = 0u64;
        let mut i = chunks.start;
        let mut foreign = 0u32;
        while i < chunks.end {
            let claim = match self.cache.get((ak, i)) {
                Some(e) => match e.wait() {
                    Some(c) => {
                        written += self.serve(arch, (ak, i), &e, c, want, out)?;
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
                        self.cache.claim(ak, i, 1, true)
                    }
                },
                None => self.cache.claim(ak, i, chunks.end - i, true),
            };
            if claim.is_empty() {
                continue; // someone else inserted it meanwhile
            }
            for (e, c) in self.load(arch, claim)? {
                written += self.serve(arch, (ak, i), &e, c, want, out)?;
                i += 1;
            }
        }
        if written != len {
            return Err(fail(FsError::Internal("short copy"), chunks.start));
        }
        Ok(())
    }

    /// Puts the part of chunk `key.1` that `want` covers into `out` (which
    /// holds `want`); returns the bytes written.
    fn serve(
        &self,
        arch: &Archive<S>,
        key: Key,
        e: &Entry,
        c: Loaded,
        want: Want,
        out: &mut [u8],
    ) -> Result<u64, ReadFailure> {
        let i = key.1;
        let g = arch.data_geometry();
        let cs = g.chunk_plain_start(i);
        let clen = g.chunk_plain_len(i);
        let from = want.pos.max(cs);
        let to = want.end.min(cs + clen as u64);
        if from >= to {
            return Err(fail(FsError::Internal("chunk outside read"), i));
        }
        let dst = out
            .get_mut((from - want.pos) as usize..(to - want.pos) as usize)
            .ok_or_else(|| fail(FsError::Internal("copy range"), i))?;
        let part = (from - cs) as usize..(to - cs) as usize;
        let ready = match c {
            Loaded::Ready(r) => r,
            Loaded::Sealed(s) if part.len() == clen => {
                // All of it: authenticate and decrypt straight into the reply.
                if let Err(err) = self.open_into(arch, i, s.stored(), dst) {
                    self.cache.discard(key, e);
                    return Err(err);
                }
                return Ok(clen as u64);
            }
            Loaded::Sealed(s) => {
                let opened = self.cache.open(key, e, s, |buf| {
                    self.open_in_place(arch, i, buf)?;
                    Ok(buf.len().saturating_sub(TAG_LEN))
                })?;
                match opened {
                    Opened::Ready(r) => r,
                    Opened::Shared(s) => {
                        // Another reader holds the sealed chunk: open a copy.
                        let mut tmp = Region::new(clen)
                            .map_err(|_| fail(FsError::Internal("scratch buffer"), i))?;
                        let plain = tmp
                            .as_mut_slice()
                            .get_mut(..clen)
                            .ok_or_else(|| fail(FsError::Internal("scratch buffer"), i))?;
                        self.open_into(arch, i, s.stored(), plain)?;
                        let src = plain
                            .get(part)
                            .ok_or_else(|| fail(FsError::Internal("chunk range"), i))?;
                        dst.copy_from_slice(src);
                        return Ok(to - from); // tmp is wiped on drop
                    }
                }
            }
        };
        let src = ready
            .data()
            .get(part)
            .ok_or_else(|| fail(FsError::Internal("chunk range"), i))?;
        dst.copy_from_slice(src);
        Ok(to - from)
    }

    /// Authenticates sealed chunk `i` and decrypts it into `out`.
    fn open_into(
        &self,
        arch: &Archive<S>,
        i: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), ReadFailure> {
        #[cfg(feature = "bench-ceilings")]
        if self.mode == BenchMode::NoCrypt {
            let src = stored
                .get(..out.len())
                .ok_or_else(|| fail(FsError::Internal("chunk range"), i))?;
            out.copy_from_slice(src);
            return Ok(());
        }
        arch.open_chunk_into(i, stored, out)
            .map_err(|e| archive_failure(e, i))
    }

    /// Authenticates sealed chunk `i` and decrypts it in place.
    fn open_in_place(&self, arch: &Archive<S>, i: u64, buf: &mut [u8]) -> Result<(), ReadFailure> {
        #[cfg(feature = "bench-ceilings")]
        if self.mode == BenchMode::NoCrypt {
            return Ok(());
        }
        arch.open_chunk_in_place(i, buf)
            .map_err(|e| archive_failure(e, i))
    }

    /// Reads a claimed run on this thread and publishes it sealed. Never on
    /// a work-stealing pool: its idle threads spin and yield (measured at
    /// 15-20 % of the daemon's CPU), and the runs that matter run side by
    /// side already (prefetch pieces on the prefetch pool, concurrent
    /// requests on the FUSE threads).
    fn load(
        &self,
        arch: &Archive<S>,
        mut claim: Claim<'_>,
    ) -> Result<Vec<(Arc<Entry>, Loaded)>, ReadFailure> {
        let first = claim.first();
        let result = match claim.buffers(|i| arch.chunk_stored_len(i)) {
            Some(mut bufs) => arch.read_chunks_sealed(first, &mut bufs),
            None => Err(FormatError::BadRequest),
        };
        match result {
            Ok(()) => Ok(claim.publish(|i| arch.chunk_stored_len(i))),
            Err(e) => {
                claim.fail();
                Err(archive_failure(e, first))
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
            if self.load(arch, claim).is_err() {
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

/// The byte range of the data stream a read wants.
#[derive(Clone, Copy)]
struct Want {
    pos: u64,
    end: u64,
}

/// A format error while reading chunk `first` (or the chunk it names).
fn archive_failure(e: FormatError, first: u64) -> ReadFailure {
    let chunk = match &e {
        FormatError::ChunkAuth { chunk, .. } => *chunk,
        _ => first,
    };
    fail(FsError::Archive(e), chunk)
}
