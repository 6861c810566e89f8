//! The second kind of backing source: the external Crypt4GH files of a
//! reference archive (FORMAT.md "External Crypt4GH files"), served through
//! the same cache, single-flight loading and read-ahead as archive chunks.
//!
//! A file's bytes are the plaintext of its Crypt4GH segments cut by its edit
//! list: a read maps to pieces of segments (`PlainMap::pieces`). Each
//! segment is a cache entry keyed by `(EXTERNAL | n, segment)`, `n` numbering
//! the external files of all archives, so they never meet an archive's own
//! chunks. A run of missing segments is loaded with one vectored read of the
//! `.c4gh` file; every segment is checked against its tag (read through the
//! cache from the archive's data stream, *before* the run's slots are
//! claimed, so a load never waits for cache space while holding some) and
//! decrypted by [`BoundFile::load_run`]: a failed segment fails the run and
//! releases nothing. Log lines name the archive entry and the external file's
//! ordinal, never the `.c4gh` path.

use std::ops::Range;
use std::sync::Arc;

use fuser::{FileHandle, ReplyData};

use crate::crypto::external::{SEGMENT_PLAIN, SEGMENT_TAG_LEN};
use crate::crypto::index::NodeId;
use crate::crypto::offsets::Geometry;
use crate::crypto::Source;
use crate::reference::files::SegmentError;
use crate::reference::{BoundFile, ExternalFiles};

use super::cache::{Claim, Loaded, Ready};
use super::errors::FsError;
use super::file::Prefetch;
use super::reply::answer;
use super::Inner;

/// High bit of a cache key's source number: an external file, not an archive.
const EXTERNAL: u32 = 1 << 31;

/// Most segments one foreground load claims (1 MiB, the largest request).
const MAX_RUN: u64 = 16;

/// Failed loads a reader tolerates from *other* threads on one segment.
const FOREIGN_FAILURES: u32 = 2;

/// The external files of every mounted archive.
#[derive(Default)]
pub struct Externals {
    /// By archive index.
    files: Vec<ExternalFiles>,
    /// Cache number of each archive's first external file.
    bases: Vec<u32>,
}

impl Externals {
    /// The external files of `per_archive` (in archive order).
    pub fn new(per_archive: Vec<ExternalFiles>) -> Externals {
        let mut bases = Vec::with_capacity(per_archive.len());
        let mut n = 0u32;
        for f in &per_archive {
            bases.push(n);
            n = n.saturating_add(f.len() as u32);
        }
        Externals {
            files: per_archive,
            bases,
        }
    }

    /// Largest stored segment of any external file (0 without any).
    pub fn max_stored_segment(&self) -> usize {
        self.files
            .iter()
            .map(ExternalFiles::max_stored_segment)
            .max()
            .unwrap_or(0)
    }

    fn get(&self, archive: usize, ext: u32) -> Option<&BoundFile> {
        self.files.get(archive)?.get(ext)
    }

    fn key(&self, archive: usize, ext: u32) -> u32 {
        EXTERNAL
            | self
                .bases
                .get(archive)
                .copied()
                .unwrap_or(0)
                .saturating_add(ext)
    }
}

/// A failed external read: what, and which segment (for the log line).
struct Failure {
    error: FsError,
    segment: u64,
    why: &'static str,
}

impl Failure {
    fn internal(why: &'static str, segment: u64) -> Failure {
        Failure {
            error: FsError::Internal(why),
            segment,
            why,
        }
    }
}

impl<S: Source + 'static> Inner<S> {
    /// Serves a read of external file `ext` of `archive` (entry `id`, `fsize`
    /// bytes): exactly the bytes asked for, short only at its end, or EIO
    /// after a log line.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_external(
        self: &Arc<Self>,
        archive: usize,
        id: NodeId,
        ext: u32,
        fsize: u64,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        if offset >= fsize || size == 0 {
            let nothing: &[u8] = &[];
            return answer(reply, Ok(nothing));
        }
        let Some(file) = self.ext.get(archive, ext) else {
            return answer(reply, Err(FsError::Internal("external file not open")));
        };
        let n = u64::from(size).min(fsize - offset);
        let pieces = file.map().pieces(offset..offset + n);
        if let Some(p) = pieces.first() {
            // Read-ahead works on the raw plaintext (before the edit list).
            let raw = p.segment * SEGMENT_PLAIN + p.within.start as u64;
            let g = Geometry::new(SEGMENT_PLAIN as u32, file.raw_len());
            let what = Prefetch::External { archive, ext };
            self.maybe_prefetch(what, id, fh, &g, (0, g.len()), raw, n);
        }
        self.reply_read(
            (archive, id),
            n as usize,
            reply,
            |buf| self.read_pieces(archive, ext, file, &pieces, buf),
            |f, path| {
                let line = format!(
                    "{path}: external Crypt4GH file {ext}, segment {}: {}",
                    f.segment, f.why
                );
                (line, f.error)
            },
        );
    }

    /// Fills `out` from `pieces` (in order), loading missing segments.
    fn read_pieces(
        &self,
        archive: usize,
        ext: u32,
        file: &BoundFile,
        pieces: &[crate::crypt4gh::Piece],
        out: &mut [u8],
    ) -> Result<(), Failure> {
        let last = pieces.last().map_or(0, |p| p.segment);
        let mut have: Vec<(u64, Arc<Ready>)> = Vec::new();
        let mut pos = 0usize;
        for p in pieces {
            let ready = match have.iter().find(|(s, _)| *s == p.segment) {
                Some((_, r)) => Arc::clone(r),
                None => {
                    let end = (p.segment + MAX_RUN).min(last + 1);
                    have = self.segments(archive, ext, file, p.segment..end)?;
                    match have.first() {
                        Some((s, r)) if *s == p.segment => Arc::clone(r),
                        _ => return Err(Failure::internal("segment not loaded", p.segment)),
                    }
                }
            };
            let src = ready
                .data()
                .get(p.within.clone())
                .ok_or_else(|| Failure::internal("segment shorter than its piece", p.segment))?;
            let dst = out
                .get_mut(pos..pos + src.len())
                .ok_or_else(|| Failure::internal("copy range", p.segment))?;
            dst.copy_from_slice(src);
            pos += src.len();
        }
        if pos != out.len() {
            return Err(Failure::internal("short copy", last));
        }
        Ok(())
    }

    /// Segment `want.start` ready in the cache, with the segments after it
    /// (up to `want.end`) that one load brought along.
    fn segments(
        &self,
        archive: usize,
        ext: u32,
        file: &BoundFile,
        want: Range<u64>,
    ) -> Result<Vec<(u64, Arc<Ready>)>, Failure> {
        let cache = self.data.cache();
        let key = self.ext.key(archive, ext);
        let seg = want.start;
        let mut foreign = 0u32;
        loop {
            if let Some(e) = cache.get((key, seg)) {
                match e.wait() {
                    Some(Loaded::Ready(r)) => return Ok(vec![(seg, r)]),
                    // External segments are only ever published opened.
                    Some(Loaded::Sealed(_)) => {
                        return Err(Failure::internal("external segment left sealed", seg))
                    }
                    None => {}
                }
                // Another thread's load failed: try this segment alone.
                foreign += 1;
                if foreign > FOREIGN_FAILURES {
                    return Err(Failure::internal("repeated load failures", seg));
                }
                let tags = self.tags(archive, ext, seg..seg + 1)?;
                let claim = cache.claim(key, seg, 1, true);
                if claim.is_empty() {
                    continue;
                }
                return self.load(archive, file, claim, &tags, true);
            }
            let tags = self.tags(archive, ext, want.clone())?;
            let claim = cache.claim(key, seg, want.end - seg, true);
            if claim.is_empty() {
                continue; // someone else inserted it meanwhile
            }
            return self.load(archive, file, claim, &tags, true);
        }
    }

    /// The tags of segments `range` of external file `ext`, from the
    /// archive's data stream (through the cache).
    fn tags(&self, archive: usize, ext: u32, range: Range<u64>) -> Result<Vec<u8>, Failure> {
        let rec = self
            .data
            .archives()
            .get(archive)
            .and_then(|a| a.external(ext))
            .ok_or_else(|| Failure::internal("external record", range.start))?;
        let t = SEGMENT_TAG_LEN as u64;
        let mut tags = vec![0u8; ((range.end - range.start) * t) as usize];
        self.data
            .read(archive, rec.tags_offset() + range.start * t, &mut tags)
            .map_err(|f| Failure {
                error: f.error,
                segment: range.start,
                why: "its tag could not be read from the archive",
            })?;
        Ok(tags)
    }

    /// Loads a claimed run of segments of `file` (of `archive`) whose tags,
    /// from the run's first segment on, are in `tags`, and publishes it;
    /// opens them in parallel when `par` (foreground reads).
    fn load(
        &self,
        archive: usize,
        file: &BoundFile,
        mut claim: Claim<'_>,
        tags: &[u8],
        par: bool,
    ) -> Result<Vec<(u64, Arc<Ready>)>, Failure> {
        let first = claim.first();
        let n = claim.len() as usize;
        let tagger = self
            .data
            .archives()
            .get(archive)
            .and_then(|a| a.segment_tagger());
        let result = match (tagger, tags.get(..n * SEGMENT_TAG_LEN)) {
            (Some(tagger), Some(tags)) => match claim.buffers(|i| file.stored_len(i)) {
                Some(mut bufs) => file
                    .load_run(tagger, first, tags, &mut bufs, par)
                    .map_err(|f| match f.error {
                        SegmentError::Auth => Failure {
                            error: FsError::External,
                            segment: f.segment,
                            why: "failed authentication (the .c4gh file was modified: segments reordered, replaced or damaged)",
                        },
                        SegmentError::Read(_) => Failure {
                            error: FsError::External,
                            segment: f.segment,
                            why: "reading it failed (the .c4gh file truncated or unreadable?)",
                        },
                    }),
                None => Err(Failure::internal("a segment does not fit a cache slot", first)),
            },
            _ => Err(Failure::internal("no tags for the segments", first)),
        };
        match result {
            Ok(()) => Ok(claim
                .publish_opened(|i| file.plain_len(i))
                .into_iter()
                .enumerate()
                .map(|(k, r)| (first + k as u64, r))
                .collect()),
            Err(f) => {
                claim.fail();
                Err(f)
            }
        }
    }

    /// Loads the missing segments `range` of external file `ext` into the
    /// cache without waiting for space (read-ahead); failures are left for
    /// a foreground read to report.
    pub(super) fn prefetch_external(&self, archive: usize, ext: u32, range: Range<u64>) {
        let Some(file) = self.ext.get(archive, ext) else {
            return;
        };
        let cache = self.data.cache();
        let key = self.ext.key(archive, ext);
        let end = range.end.min(file.segments());
        let mut i = range.start;
        while i < end {
            if cache.contains((key, i)) {
                i += 1;
                continue;
            }
            let Ok(tags) = self.tags(archive, ext, i..end) else {
                return;
            };
            let claim = cache.claim(key, i, end - i, false);
            if claim.is_empty() {
                if cache.contains((key, i)) {
                    continue;
                }
                return; // no room: the reader is faster than the cache is big
            }
            let n = claim.len();
            if self.load(archive, file, claim, &tags, false).is_err() {
                return;
            }
            i += n;
        }
    }
}
