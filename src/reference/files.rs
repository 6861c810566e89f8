//! The reading side of a reference archive: its external `.c4gh` files,
//! opened read-only where the index says they live, checked against their
//! records (exact length, SHA-256 of the Crypt4GH header) before anything is
//! served, then read segment by segment. A segment is released only after
//! its tag from the archive's table matched its stored bytes at its own
//! index and its Crypt4GH MAC verified under a data key from the record; the
//! plaintext is then cut by the recorded edit list.
//!
//! [`BoundFile::load_run`] is the one place that turns stored segments into
//! plaintext; the FUSE layer calls it for cache slots, [`BoundFile::read_at`]
//! and [`ExternalFiles::verify`] for `hpcs-pack`.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{Named, RefError};
use crate::crypt4gh::{DataKey, DataKeys, EditList, PlainMap, NONCE_LEN};
use crate::crypto::external::{
    External, Location, SegmentTagger, SEGMENT_PLAIN, SEGMENT_STORED, SEGMENT_TAG_LEN,
};
use crate::crypto::index::Kind;
use crate::crypto::{Archive, FileSource, Source};

/// Segments handled per backing read by [`BoundFile::read_at`] and
/// [`ExternalFiles::verify`] (8 MiB).
const RUN: u64 = 128;

/// Why a segment could not be served.
#[derive(Debug)]
pub enum SegmentError {
    /// The backing read failed (I/O error, or the file is shorter now).
    Read(io::Error),
    /// Its tag or its Crypt4GH MAC did not verify.
    Auth,
}

/// A failed run of segments: the first segment that failed, and why.
#[derive(Debug)]
pub struct RunFailure {
    /// The segment.
    pub segment: u64,
    /// Why.
    pub error: SegmentError,
}

/// One external file, open and checked against its record.
pub struct BoundFile {
    src: FileSource,
    ordinal: u32,
    keys: DataKeys,
    map: PlainMap,
    header_len: u64,
    segments: u64,
    raw_len: u64,
    name: Named,
}

impl std::fmt::Debug for BoundFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoundFile({}, {} segments)", self.ordinal, self.segments)
    }
}

impl BoundFile {
    /// Its ordinal in the archive (index order).
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// How messages name it.
    pub fn name(&self) -> &Named {
        &self.name
    }

    /// Bytes it shows (after the edit list).
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// True when it shows nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of segments.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Plaintext bytes of all segments (before the edit list).
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }

    /// The map from shown bytes to segments.
    pub fn map(&self) -> &PlainMap {
        &self.map
    }

    /// Plaintext bytes of segment `i`.
    pub fn plain_len(&self, i: u64) -> usize {
        self.raw_len
            .saturating_sub(i.saturating_mul(SEGMENT_PLAIN))
            .min(SEGMENT_PLAIN) as usize
    }

    /// Stored bytes of segment `i` (plaintext, nonce and MAC).
    pub fn stored_len(&self, i: u64) -> usize {
        self.plain_len(i) + (SEGMENT_STORED - SEGMENT_PLAIN) as usize
    }

    fn stored_start(&self, i: u64) -> u64 {
        self.header_len + i * SEGMENT_STORED
    }

    /// Checks segment `i` as stored in `stored` against its tag, decrypts
    /// it, and moves the plaintext to the front; returns its length. On
    /// failure `stored` holds no plaintext.
    pub fn open_segment(
        &self,
        tagger: &SegmentTagger,
        i: u64,
        tag: &[u8],
        stored: &mut [u8],
    ) -> Result<usize, SegmentError> {
        if !tagger.verify(self.ordinal, i, stored, tag) {
            return Err(SegmentError::Auth);
        }
        let n = match self.keys.open_segment(i, stored) {
            Ok(plain) => plain.len(),
            Err(_) => {
                stored.zeroize();
                return Err(SegmentError::Auth);
            }
        };
        stored.copy_within(NONCE_LEN..NONCE_LEN + n, 0);
        Ok(n)
    }

    /// Reads segments `first, first + 1, …` into `bufs` (one per segment,
    /// each exactly [`BoundFile::stored_len`]) with one vectored read,
    /// checks each against its tag in `tags` (16 bytes per segment) and
    /// decrypts it: each buffer then starts with its plaintext. Several
    /// segments open in parallel when `par`. On failure no buffer holds
    /// plaintext.
    pub fn load_run(
        &self,
        tagger: &SegmentTagger,
        first: u64,
        tags: &[u8],
        bufs: &mut [&mut [u8]],
        par: bool,
    ) -> Result<(), RunFailure> {
        let n = bufs.len() as u64;
        let bad_request = || RunFailure {
            segment: first,
            error: SegmentError::Read(io::Error::other("segment request outside the file")),
        };
        if n == 0 {
            return Ok(());
        }
        if first.checked_add(n).is_none_or(|e| e > self.segments)
            || tags.len() as u64 != n * SEGMENT_TAG_LEN as u64
            || bufs
                .iter()
                .enumerate()
                .any(|(k, b)| b.len() != self.stored_len(first + k as u64))
        {
            return Err(bad_request());
        }
        self.src
            .read_vectored_exact_at(bufs, self.stored_start(first))
            .map_err(|e| RunFailure {
                segment: first,
                error: SegmentError::Read(e),
            })?;
        let open = |k: usize, b: &mut &mut [u8]| {
            let i = first + k as u64;
            let tag = &tags[k * SEGMENT_TAG_LEN..(k + 1) * SEGMENT_TAG_LEN];
            self.open_segment(tagger, i, tag, b)
                .err()
                .map(|error| RunFailure { segment: i, error })
        };
        let bad = if par && n > 1 {
            bufs.par_iter_mut()
                .enumerate()
                .filter_map(|(k, b)| open(k, b))
                .min_by_key(|f| f.segment)
        } else {
            bufs.iter_mut().enumerate().find_map(|(k, b)| open(k, b))
        };
        match bad {
            None => Ok(()),
            Some(f) => {
                for b in bufs.iter_mut() {
                    b.zeroize();
                }
                Err(f)
            }
        }
    }

    fn failure(&self, f: RunFailure) -> RefError {
        match f.error {
            SegmentError::Auth => RefError::SegmentAuth {
                file: self.name.clone(),
                segment: f.segment,
            },
            SegmentError::Read(err) => RefError::SegmentRead {
                file: self.name.clone(),
                segment: f.segment,
                err,
            },
        }
    }

    /// Loads segments `first..first + n` (tags read from `archive`) into
    /// one buffer, each segment at `k · SEGMENT_STORED` with its plaintext
    /// first.
    fn load<S: Source>(
        &self,
        archive: &Archive<S>,
        first: u64,
        n: u64,
    ) -> Result<Zeroizing<Vec<u8>>, RefError> {
        let tagger = archive.segment_tagger().ok_or(RefError::Invalid(
            "external file in an archive without tags",
        ))?;
        let mut tags = vec![0u8; (n as usize) * SEGMENT_TAG_LEN];
        archive.segment_tags(self.ordinal, first, &mut tags)?;
        let mut data = Zeroizing::new(vec![0u8; (n * SEGMENT_STORED) as usize]);
        {
            let mut bufs: Vec<&mut [u8]> = data
                .chunks_mut(SEGMENT_STORED as usize)
                .enumerate()
                .map(|(k, c)| &mut c[..self.stored_len(first + k as u64)])
                .collect();
            self.load_run(tagger, first, &tags, &mut bufs, true)
                .map_err(|f| self.failure(f))?;
        }
        Ok(data)
    }

    /// Fills `buf` from shown offset `offset`; returns the bytes read (fewer
    /// only at the end). Every byte returned is from a segment that passed
    /// its tag; on any failure nothing is returned.
    pub fn read_at<S: Source>(
        &self,
        archive: &Archive<S>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, RefError> {
        let pieces = self
            .map
            .pieces(offset..offset.saturating_add(buf.len() as u64));
        let mut pos = 0usize;
        let mut i = 0;
        while i < pieces.len() {
            // A run of pieces over consecutive segments, at most RUN of them.
            let first = pieces[i].segment;
            let mut last = first;
            let mut j = i;
            while j < pieces.len()
                && (pieces[j].segment == last || pieces[j].segment == last + 1)
                && pieces[j].segment - first < RUN
            {
                last = pieces[j].segment;
                j += 1;
            }
            let data = self.load(archive, first, last - first + 1)?;
            for p in &pieces[i..j] {
                let base = ((p.segment - first) * SEGMENT_STORED) as usize;
                let src = &data[base + p.within.start..base + p.within.end];
                buf[pos..pos + src.len()].copy_from_slice(src);
                pos += src.len();
            }
            i = j;
        }
        Ok(pos)
    }
}

/// The external files of one archive, by ordinal.
#[derive(Debug, Default)]
pub struct ExternalFiles {
    files: Vec<BoundFile>,
}

impl ExternalFiles {
    /// No external file (a plain archive).
    pub fn none() -> ExternalFiles {
        ExternalFiles::default()
    }

    /// Opens every external file of `archive`, which was read from
    /// `archive_path` (relative locations start at its directory), and
    /// checks each against its record: the exact length and the SHA-256 of
    /// the Crypt4GH header. Any difference refuses the whole archive.
    /// `show_paths` lets errors name the files' paths.
    pub fn open<S: Source>(
        archive: &Archive<S>,
        archive_path: &Path,
        show_paths: bool,
    ) -> Result<ExternalFiles, RefError> {
        let tree = archive.tree();
        if tree.externals().is_empty() {
            return Ok(ExternalFiles::none());
        }
        let mut sizes = vec![None; tree.externals().len()];
        for id in 0..tree.len() as u32 {
            if let Some(Kind::External { ext, size }) = tree.node(id).map(|n| &n.kind) {
                if let Some(s) = sizes.get_mut(*ext as usize) {
                    *s = Some(*size);
                }
            }
        }
        let base = archive_path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        make_room_for(sizes.len());
        let mut files = Vec::with_capacity(sizes.len());
        for (k, rec) in tree.externals().iter().enumerate() {
            let size = sizes[k].ok_or(RefError::Invalid("external record without an entry"))?;
            files.push(bind(rec, k as u32, size, &base, show_paths)?);
        }
        Ok(ExternalFiles { files })
    }

    /// External file `ordinal`.
    pub fn get(&self, ordinal: u32) -> Option<&BoundFile> {
        self.files.get(ordinal as usize)
    }

    /// Number of external files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True for a plain archive.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Largest stored segment (a cache slot must hold one); 0 without files.
    pub fn max_stored_segment(&self) -> usize {
        if self.files.is_empty() {
            0
        } else {
            SEGMENT_STORED as usize
        }
    }

    /// Authenticates every segment of every external file (also those the
    /// edit list hides). `progress` gets the stored bytes checked so far.
    pub fn verify<S: Source>(
        &self,
        archive: &Archive<S>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RefError> {
        let mut done = 0u64;
        for f in &self.files {
            let mut first = 0;
            while first < f.segments {
                let n = RUN.min(f.segments - first);
                let mut data = f.load(archive, first, n)?;
                data.zeroize();
                done += (first..first + n)
                    .map(|i| f.stored_len(i) as u64)
                    .sum::<u64>();
                progress(done);
                first += n;
            }
        }
        Ok(())
    }
}

/// Raises the soft limit of open files (up to the hard limit) so that `n`
/// more descriptors fit: every external file stays open while it is served.
fn make_room_for(n: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let want = (n as libc::rlim_t).saturating_add(256).min(lim.rlim_max);
    if lim.rlim_cur < want {
        lim.rlim_cur = want;
        // SAFETY: setrlimit reads one valid rlimit; the soft limit stays
        // within the hard one.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// Where a location points, seen from the archive's directory `base`.
pub fn resolve(location: &Location, base: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(location.bytes()));
    match location {
        Location::Relative(_) => base.join(p),
        Location::Absolute(_) => p.to_path_buf(),
    }
}

/// Opens and checks one external file.
fn bind(
    rec: &External,
    ordinal: u32,
    size: u64,
    base: &Path,
    show_paths: bool,
) -> Result<BoundFile, RefError> {
    let path = resolve(rec.location(), base);
    let name = Named {
        ordinal,
        path: show_paths.then(|| path.clone()),
    };
    let changed = |what| RefError::Changed {
        file: name.clone(),
        what,
    };
    let file = File::open(&path).map_err(|err| RefError::Missing {
        file: name.clone(),
        err,
    })?;
    let md = file.metadata().map_err(|err| RefError::Missing {
        file: name.clone(),
        err,
    })?;
    if !md.is_file() {
        return Err(changed("it is not a regular file"));
    }
    if md.len() != rec.c4gh_len() {
        return Err(changed(
            "its length differs: segments were added, dropped or cut off",
        ));
    }
    let mut header = Zeroizing::new(vec![0u8; rec.header_len() as usize]);
    file.read_exact_at(&mut header, 0)
        .map_err(|err| RefError::Missing {
            file: name.clone(),
            err,
        })?;
    let digest: [u8; 32] = Sha256::digest(&*header).into();
    if digest != *rec.header_sha256() {
        return Err(changed(
            "its Crypt4GH header differs: a packet was added or changed (an edit list?), or the file was replaced",
        ));
    }
    let keys = DataKeys::new(
        rec.keys()
            .iter()
            .map(|k| DataKey::from_bytes(*k.expose()))
            .collect(),
    );
    let edit = match rec.edit_list() {
        Some(e) => {
            Some(EditList::new(e.to_vec()).map_err(|_| RefError::Invalid("edit list too long"))?)
        }
        None => None,
    };
    let map = PlainMap::new(edit.as_ref(), rec.raw_len());
    if map.len() != size {
        return Err(RefError::Invalid(
            "an external file's size disagrees with its edit list",
        ));
    }
    Ok(BoundFile {
        src: FileSource::new(file),
        ordinal,
        keys,
        map,
        header_len: rec.header_len().into(),
        segments: rec.segments(),
        raw_len: rec.raw_len(),
        name,
    })
}

/// Half-open file range of a run of segments (for tests and the pack side).
pub(crate) fn run_range(header_len: u64, raw_len: u64, first: u64, n: u64) -> Range<u64> {
    let start = header_len + first * SEGMENT_STORED;
    let end_seg = first + n;
    let end_plain = (end_seg * SEGMENT_PLAIN).min(raw_len);
    let end = header_len + end_plain + end_seg * (SEGMENT_STORED - SEGMENT_PLAIN);
    start..end
}
