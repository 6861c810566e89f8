//! Writing a reference archive on the secure device: [`scan`] opens every
//! `.c4gh` input with the user's Crypt4GH secret key (header only) and lays
//! out the index; [`write`] then reads every segment once, authenticates it
//! under the file's data keys, computes its tag, and streams the tags as the
//! archive's data stream, to a temporary file renamed into place when
//! complete (as `hpcs-pack pack` does).
//!
//! Names: a `.c4gh` file given directly becomes an entry at the root named
//! after it without `.c4gh`; a directory given is walked (symlinked
//! directories are not followed) and its `.c4gh` files keep their paths
//! below it. Locations are recorded relative to the directory of the archive
//! (so data and archive can move together) or absolute ([`Placement`]).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::files::run_range;
use super::RefError;
use crate::crypt4gh::{DataKeys, Header, Layout, PlainMap, SecretKey};
use crate::crypto::external::{
    External, ExternalKey, Location, SegmentTagger, FEATURE_EXTERNAL_C4GH, SEGMENT_STORED,
    SEGMENT_TAG_LEN,
};
use crate::crypto::index::{NodeId, ROOT};
use crate::crypto::{self, DataKey, Stanza, TreeBuilder, WriteOptions};
use crate::pack::{write_file, Filler, PackError, Packed, Warning};

/// Segments read and authenticated per step (8 MiB).
const BATCH: u64 = 128;

/// How locations are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Relative to the directory that holds the archive (the default).
    Relative,
    /// Absolute paths.
    Absolute,
}

/// One input file, as scanned.
struct ScanFile {
    path: PathBuf,
    /// (device, inode, length, mtime in ns) when scanned.
    id: (u64, u64, u64, i128),
    header_len: u64,
    header_sha256: [u8; 32],
    raw_len: u64,
    segments: u64,
    keys: DataKeys,
}

/// The scanned inputs: the index and what the data stream will hold.
pub struct RefScan {
    /// Serialised index.
    pub index: Vec<u8>,
    /// Data stream length (all tag tables).
    pub data_len: u64,
    /// Entries in the index, the root included.
    pub entries: usize,
    /// Stored bytes of every input (what [`write`] authenticates).
    pub c4gh_bytes: u64,
    /// Bytes the files show (after their edit lists).
    pub shown_bytes: u64,
    /// Inputs skipped, for the user.
    pub warnings: Vec<Warning>,
    files: Vec<ScanFile>,
}

impl RefScan {
    /// Number of `.c4gh` files.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

fn mtime_ns(md: &fs::Metadata) -> i128 {
    i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec())
}

fn file_id(md: &fs::Metadata) -> (u64, u64, u64, i128) {
    (md.dev(), md.ino(), md.len(), mtime_ns(md))
}

/// `to` relative to the directory `from` (both absolute and canonical).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// Lays out the archive for `inputs` (`.c4gh` files or directories of
/// them), opening each header with `sk`. `archive` is where the archive
/// will be written (relative locations start at its directory).
pub fn scan(
    inputs: &[PathBuf],
    archive: &Path,
    sk: &SecretKey,
    placement: Placement,
) -> Result<RefScan, RefError> {
    let out_dir = match archive.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let out_dir = out_dir.canonicalize().map_err(|err| RefError::Read {
        path: out_dir.clone(),
        err,
    })?;
    let now = crate::util::now_secs() as i64;
    let mut b = TreeBuilder::new(0o755, now, 0);
    let mut dirs: HashMap<Vec<Vec<u8>>, NodeId> = HashMap::new();
    let mut scan = RefScan {
        index: Vec::new(),
        data_len: 0,
        entries: 0,
        c4gh_bytes: 0,
        shown_bytes: 0,
        warnings: Vec::new(),
        files: Vec::new(),
    };
    let mut skipped = 0usize;
    // (source path, name components in the archive)
    let mut found: Vec<(PathBuf, Vec<Vec<u8>>)> = Vec::new();
    for input in inputs {
        let md = fs::metadata(input).map_err(|err| RefError::Read {
            path: input.clone(),
            err,
        })?;
        if md.is_file() {
            let name = input.file_name().ok_or_else(|| RefError::BadInput {
                path: input.clone(),
                why: "no file name".into(),
            })?;
            found.push((input.clone(), vec![entry_name(name.as_bytes())]));
        } else if md.is_dir() {
            walk(input, &mut Vec::new(), &mut found, &mut skipped)?;
        } else {
            return Err(RefError::BadInput {
                path: input.clone(),
                why: "not a file or a directory".into(),
            });
        }
    }
    if skipped > 0 {
        scan.warnings.push(Warning(format!(
            "skipped {skipped} files that do not end in .c4gh, and symlinks to directories"
        )));
    }
    if found.is_empty() {
        return Err(RefError::BadInput {
            path: inputs.first().cloned().unwrap_or_default(),
            why: "no .c4gh file found".into(),
        });
    }
    for (path, names) in found {
        let (parents, name) = names.split_at(names.len() - 1);
        let mut parent = ROOT;
        for depth in 1..=parents.len() {
            let key = parents[..depth].to_vec();
            parent = match dirs.get(&key) {
                Some(&d) => d,
                None => {
                    let d = b
                        .dir(parent, &key[depth - 1], 0o755, (now, 0))
                        .map_err(|e| RefError::BadInput {
                            path: path.clone(),
                            why: e.to_string(),
                        })?;
                    dirs.insert(key, d);
                    d
                }
            };
        }
        let (file, size) = scan_file(&path, sk, &out_dir, placement)?;
        let md = fs::metadata(&path).map_err(|err| RefError::Read {
            path: path.clone(),
            err,
        })?;
        let ext = file.1;
        b.external(
            parent,
            &name[0],
            (md.mode() & 0o1777) as u16,
            (md.mtime(), md.mtime_nsec().clamp(0, 999_999_999) as u32),
            size,
            ext,
        )
        .map_err(|e| RefError::BadInput {
            path: path.clone(),
            why: format!("{e} (two inputs give the same name?)"),
        })?;
        scan.c4gh_bytes += file.0.id.2;
        scan.shown_bytes += size;
        scan.files.push(file.0);
    }
    scan.entries = b.len();
    let (index, _extents, data_len) = b.finish(crypto::offsets::DEFAULT_CHUNK_SIZE);
    let tags: u64 = scan
        .files
        .iter()
        .map(|f| f.segments * SEGMENT_TAG_LEN as u64)
        .sum();
    if tags != data_len {
        return Err(RefError::Invalid(
            "tag tables are not the whole data stream",
        ));
    }
    scan.index = index;
    scan.data_len = data_len;
    Ok(scan)
}

/// The archive name of a `.c4gh` file: without the suffix.
fn entry_name(name: &[u8]) -> Vec<u8> {
    match name.strip_suffix(b".c4gh") {
        Some(n) if !n.is_empty() => n.to_vec(),
        _ => name.to_vec(),
    }
}

/// Collects the `.c4gh` files under `dir` (names relative to the walk's
/// start), in name order; symlinked directories are not followed.
fn walk(
    dir: &Path,
    prefix: &mut Vec<Vec<u8>>,
    found: &mut Vec<(PathBuf, Vec<Vec<u8>>)>,
    skipped: &mut usize,
) -> Result<(), RefError> {
    let read = |err| RefError::Read {
        path: dir.to_path_buf(),
        err,
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let lmd = fs::symlink_metadata(&path).map_err(|err| RefError::Read {
            path: path.clone(),
            err,
        })?;
        if lmd.is_dir() {
            prefix.push(name.as_bytes().to_vec());
            walk(&path, prefix, found, skipped)?;
            prefix.pop();
            continue;
        }
        let is_file = fs::metadata(&path).is_ok_and(|m| m.is_file());
        if is_file && name.as_bytes().ends_with(b".c4gh") {
            let mut names = prefix.clone();
            names.push(entry_name(name.as_bytes()));
            found.push((path, names));
        } else {
            *skipped += 1;
        }
    }
    Ok(())
}

/// Opens the header of one input: its scan record, its archive record, and
/// the bytes it shows.
fn scan_file(
    path: &Path,
    sk: &SecretKey,
    out_dir: &Path,
    placement: Placement,
) -> Result<((ScanFile, External), u64), RefError> {
    let read = |err| RefError::Read {
        path: path.to_path_buf(),
        err,
    };
    let unusable = |err| RefError::NotUsable {
        path: path.to_path_buf(),
        err,
    };
    let file = File::open(path).map_err(read)?;
    let md = file.metadata().map_err(read)?;
    let header = Header::read(&mut BufReader::new(&file), sk).map_err(unusable)?;
    let header_len = header.byte_len();
    let layout = Layout::new(header_len, md.len()).map_err(unusable)?;
    let header_sha256 = hash_header(&file, header_len).map_err(read)?;
    let map = PlainMap::new(header.edit_list(), layout.raw_len());
    let canon = path.canonicalize().map_err(read)?;
    let location = match placement {
        Placement::Absolute => Location::Absolute(canon.as_os_str().as_bytes().to_vec()),
        Placement::Relative => {
            Location::Relative(relative(out_dir, &canon).as_os_str().as_bytes().to_vec())
        }
    };
    let keys: Vec<ExternalKey> = header
        .data_keys()
        .keys()
        .map(|k| ExternalKey::from_bytes(*k.expose()))
        .collect();
    let edit = header.edit_list().map(|e| e.lengths().to_vec());
    let header_len32 = u32::try_from(header_len).map_err(|_| RefError::BadInput {
        path: path.to_path_buf(),
        why: "Crypt4GH header too large".into(),
    })?;
    let ext = External::new(
        location,
        md.len(),
        header_len32,
        header_sha256,
        keys,
        edit,
        0,
    )
    .map_err(|why| RefError::BadInput {
        path: path.to_path_buf(),
        why: why.to_string(),
    })?;
    let (keys, _, _) = header.into_parts();
    Ok((
        (
            ScanFile {
                path: path.to_path_buf(),
                id: file_id(&md),
                header_len,
                header_sha256,
                raw_len: layout.raw_len(),
                segments: layout.segments(),
                keys,
            },
            ext,
        ),
        map.len(),
    ))
}

fn hash_header(file: &File, len: u64) -> io::Result<[u8; 32]> {
    let mut h = Zeroizing::new(vec![0u8; len as usize]);
    file.read_exact_at(&mut h, 0)?;
    Ok(Sha256::digest(&*h).into())
}

/// Produces the data stream: every input's segment tags, in order, each
/// computed after the segment authenticated under the input's data keys.
struct TagFeeder<'a> {
    files: &'a [ScanFile],
    tagger: SegmentTagger,
    next_file: usize,
    cur: Option<(File, u64)>, // open input, next segment
    pending: Vec<u8>,
    used: usize,
    buf: Zeroizing<Vec<u8>>,
    stop: &'a AtomicBool,
}

impl TagFeeder<'_> {
    fn fill(&mut self, mut out: &mut [u8]) -> Result<(), RefError> {
        while !out.is_empty() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(RefError::Pack(PackError::Interrupted(PathBuf::new())));
            }
            if self.used < self.pending.len() {
                let n = (self.pending.len() - self.used).min(out.len());
                out[..n].copy_from_slice(&self.pending[self.used..self.used + n]);
                self.used += n;
                out = &mut out[n..];
                continue;
            }
            self.batch()?;
        }
        Ok(())
    }

    /// Authenticates the next batch of segments and queues their tags.
    fn batch(&mut self) -> Result<(), RefError> {
        let ordinal = self.next_file.saturating_sub(1);
        let done = match &self.cur {
            Some((_, next)) => *next >= self.files[ordinal].segments,
            None => true,
        };
        if done {
            if let Some((file, _)) = self.cur.take() {
                check_unchanged(&self.files[ordinal], &file)?;
            }
            let f = self
                .files
                .get(self.next_file)
                .ok_or(RefError::Invalid("more tags asked for than inputs have"))?;
            let read = |err| RefError::Read {
                path: f.path.clone(),
                err,
            };
            let file = File::open(&f.path).map_err(read)?;
            check_unchanged(f, &file)?;
            if hash_header(&file, f.header_len).map_err(read)? != f.header_sha256 {
                return Err(changed(f));
            }
            self.cur = Some((file, 0));
            self.next_file += 1;
            return Ok(());
        }
        let f = &self.files[ordinal];
        let (file, next) = self.cur.as_mut().expect("a file is open");
        let first = *next;
        let n = BATCH.min(f.segments - first);
        let range = run_range(f.header_len, f.raw_len, first, n);
        let len = (range.end - range.start) as usize;
        self.buf.resize(len, 0);
        file.read_exact_at(&mut self.buf[..len], range.start)
            .map_err(|err| RefError::Read {
                path: f.path.clone(),
                err,
            })?;
        let mut tags = vec![[0u8; SEGMENT_TAG_LEN]; n as usize];
        let tagger = &self.tagger;
        let bad = self.buf[..len]
            .par_chunks_mut(SEGMENT_STORED as usize)
            .zip(tags.par_iter_mut())
            .enumerate()
            .filter_map(|(k, (seg, tag))| {
                let i = first + k as u64;
                *tag = tagger.tag(ordinal as u32, i, seg);
                match f.keys.open_segment(i, seg) {
                    Ok(plain) => {
                        plain.zeroize();
                        None
                    }
                    Err(_) => Some(i),
                }
            })
            .min();
        if let Some(segment) = bad {
            return Err(RefError::InputAuth {
                path: f.path.clone(),
                segment,
            });
        }
        *next += n;
        self.pending.clear();
        self.used = 0;
        for t in &tags {
            self.pending.extend_from_slice(t);
        }
        Ok(())
    }
}

impl Filler for TagFeeder<'_> {
    type Error = RefError;
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RefError> {
        TagFeeder::fill(self, buf)
    }

    /// After the last tag: inputs with no segment left get checked too, and
    /// the last input must be unchanged.
    fn finish(&mut self) -> Result<(), RefError> {
        while self.next_file < self.files.len() {
            self.batch()?;
        }
        if let Some((file, _)) = self.cur.take() {
            check_unchanged(&self.files[self.next_file - 1], &file)?;
        }
        Ok(())
    }
}

fn changed(f: &ScanFile) -> RefError {
    RefError::Pack(PackError::Changed {
        path: f.path.clone(),
        what: "it is not the file scanned",
    })
}

fn check_unchanged(f: &ScanFile, file: &File) -> Result<(), RefError> {
    let md = file.metadata().map_err(|err| RefError::Read {
        path: f.path.clone(),
        err,
    })?;
    if file_id(&md) != f.id {
        return Err(changed(f));
    }
    Ok(())
}

/// Writes the reference archive for `scan` to `out` atomically (temporary
/// file, sync, rename). `opts` gives the suite and backend; the chunk size
/// is the default and the external-files feature bit is set here.
#[allow(clippy::too_many_arguments)]
pub fn write(
    scan: &RefScan,
    out: &Path,
    force: bool,
    opts: &WriteOptions,
    key: &DataKey,
    archive_id: [u8; 32],
    stanzas: Vec<Stanza>,
    progress: &mut dyn FnMut(u64),
    stop: &AtomicBool,
) -> Result<Packed, RefError> {
    let opts = WriteOptions {
        features: opts.features | FEATURE_EXTERNAL_C4GH,
        chunk_size: crypto::offsets::DEFAULT_CHUNK_SIZE,
        ..*opts
    };
    let keys = key.derive(&archive_id, opts.suite);
    let mut feeder = TagFeeder {
        files: &scan.files,
        tagger: SegmentTagger::new(opts.suite, opts.backend, &keys.c4gh_segments),
        next_file: 0,
        cur: None,
        pending: Vec::new(),
        used: 0,
        buf: Zeroizing::new(Vec::new()),
        stop,
    };
    let stream = (&scan.index[..], scan.data_len);
    write_file(
        out,
        force,
        &opts,
        key,
        archive_id,
        stanzas,
        stream,
        &mut feeder,
        progress,
        stop,
    )
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::external::SEGMENT_PLAIN;

    #[test]
    fn relative_locations() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(r("/a/b", "/a/b/c.c4gh"), PathBuf::from("c.c4gh"));
        assert_eq!(r("/a/b", "/a/x/c.c4gh"), PathBuf::from("../x/c.c4gh"));
        assert_eq!(
            r("/home/u", "/scratch/d/f"),
            PathBuf::from("../../scratch/d/f")
        );
        assert_eq!(r("/", "/f"), PathBuf::from("f"));
    }

    #[test]
    fn names_drop_the_suffix() {
        assert_eq!(entry_name(b"s1.bam.c4gh"), b"s1.bam");
        assert_eq!(entry_name(b".c4gh"), b".c4gh");
        assert_eq!(entry_name(b"plain"), b"plain");
    }

    #[test]
    fn run_ranges_match_the_layout() {
        let l = Layout::for_plaintext(100, 3 * SEGMENT_PLAIN + 7);
        for (first, n) in [(0, 1), (0, 4), (1, 2), (3, 1), (2, 2)] {
            let want = l.segment_range(first).start..l.segment_range(first + n - 1).end;
            assert_eq!(run_range(100, l.raw_len(), first, n), want, "{first}+{n}");
        }
    }
}
