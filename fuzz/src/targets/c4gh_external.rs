//! The external `.c4gh` files of a reference archive (FORMAT.md "External
//! Crypt4GH files") as a mount and `extract` read them: the golden
//! reference archive tests/vectors/reference_c4gh.hpcs, unlocked with its
//! key, with one of its external files replaced by bytes the fuzzer
//! chooses. Read through `ExternalFiles::open` (length and header checks),
//! `BoundFile::read_at` (what `extract` and `cat` call), `BoundFile::load_run`
//! with tags from the archive (what the mount's cache loads call, serial and
//! parallel) and `ExternalFiles::verify` (`hpcs-pack verify`).
//!
//! Input: byte 0 is the mode, bytes 1..5 a read offset and 5..9 a read
//! length (u32 little-endian), the rest builds the file. Mode bits 0-1 pick
//! the external file (by ordinal, modulo their number); bits 2-3 how the
//! rest builds it: 0 the file itself, 1 the original with the rest (after a
//! u32 position) XORed in at that position, 2 the original header followed
//! by the stored segments of any of the files that the rest's bytes pick
//! (at most eight)
//! (reordered, repeated, moved between files), 3 the original cut or
//! extended to a u32 length (extended with the rest after it); bit 4 opens
//! runs of segments in parallel.
//!
//! Checks: every read either fails or gives exactly the original plaintext
//! at that offset (checked at start-up against the SHA-256 in
//! reference_c4gh.expect); a failed run of segments leaves no plaintext in
//! any buffer; a file that verifies is byte for byte the original.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use hpcs::crypto::external::{Location, SEGMENT_STORED, SEGMENT_TAG_LEN};
use hpcs::crypto::{Archive, Backend, DataKey, Kind, SealedArchive};
use hpcs::reference::{ExternalFiles, SegmentError};
use sha2::{Digest, Sha256};

const VECTOR: &str = "reference_c4gh";
/// Largest read asked for (a few segments).
const MAX_READ: usize = 300_000;
/// Most segments a built file holds (each is 64 KiB: an input of 50 000
/// picks would otherwise build a 3 GiB file).
const MAX_SEGMENTS: usize = 8;

/// The archive in a private directory with copies of its external files.
struct Fixture {
    _dir: tempfile::TempDir,
    archive_path: PathBuf,
    archive: Archive<Vec<u8>>,
    /// Where external file `k` lives.
    paths: Vec<PathBuf>,
    /// Its original bytes.
    originals: Vec<Vec<u8>>,
    /// Its Crypt4GH header length.
    header_lens: Vec<usize>,
    /// The bytes it shows (after the edit list).
    shown: Vec<Vec<u8>>,
    /// The plaintext of each of its segments (before the edit list).
    segments: Vec<Vec<Vec<u8>>>,
    /// The file currently replaced, to restore before the next input.
    dirty: Cell<Option<usize>>,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

impl Fixture {
    fn new() -> Fixture {
        let vectors = Path::new(crate::VECTORS);
        let dir = tempfile::tempdir().unwrap();
        let archive_path = dir.path().join(format!("{VECTOR}.hpcs"));
        let bytes = std::fs::read(vectors.join(format!("{VECTOR}.hpcs"))).unwrap();
        std::fs::write(&archive_path, &bytes).unwrap();
        copy_tree(
            &vectors.join(format!("{VECTOR}.files")),
            &dir.path().join(format!("{VECTOR}.files")),
        );
        let key = DataKey::from_bytes(crate::key_for(&bytes).expect("the golden key"));
        let archive = SealedArchive::open(bytes)
            .unwrap()
            .unlock_with(&key, Backend::RustCrypto)
            .unwrap();
        let tree = archive.tree();
        let paths: Vec<PathBuf> = tree
            .externals()
            .iter()
            .map(|r| {
                assert!(matches!(r.location(), Location::Relative(_)));
                hpcs::reference::files::resolve(r.location(), dir.path())
            })
            .collect();
        let originals: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let header_lens = tree
            .externals()
            .iter()
            .map(|r| r.header_len() as usize)
            .collect();
        // The shown bytes, read through the library and checked against the
        // hashes the golden vector's .expect records.
        let expect = std::fs::read_to_string(vectors.join(format!("{VECTOR}.expect"))).unwrap();
        let files = ExternalFiles::open(&archive, &archive_path, false).unwrap();
        let mut shown = vec![Vec::new(); paths.len()];
        for id in 0..tree.len() as u32 {
            let Some(&Kind::External { ext, size }) = tree.node(id).map(|n| &n.kind) else {
                continue;
            };
            let f = files.get(ext).unwrap();
            let mut buf = vec![0u8; size as usize];
            assert_eq!(f.read_at(&archive, 0, &mut buf).unwrap(), buf.len());
            let line = format!(
                "file: {} {size} {}",
                String::from_utf8(tree.path(id)).unwrap(),
                crate::hex(&Sha256::digest(&buf))
            );
            assert!(expect.lines().any(|l| l == line), "{line} in the .expect");
            shown[ext as usize] = buf;
        }
        let tagger = archive.segment_tagger().unwrap();
        let segments = (0..paths.len())
            .map(|k| {
                let f = files.get(k as u32).unwrap();
                (0..f.segments())
                    .map(|i| {
                        let mut tag = [0u8; SEGMENT_TAG_LEN];
                        archive.segment_tags(k as u32, i, &mut tag).unwrap();
                        let mut buf = vec![0u8; f.stored_len(i)];
                        f.load_run(tagger, i, &tag, &mut [&mut buf[..]], false)
                            .unwrap();
                        buf.truncate(f.plain_len(i));
                        buf
                    })
                    .collect()
            })
            .collect();
        Fixture {
            _dir: dir,
            archive_path,
            archive,
            paths,
            originals,
            header_lens,
            shown,
            segments,
            dirty: Cell::new(None),
        }
    }

    fn restore(&self) {
        if let Some(k) = self.dirty.take() {
            std::fs::write(&self.paths[k], &self.originals[k]).unwrap();
        }
    }

    /// The stored segments of every original file, in order.
    fn all_stored(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        for (k, o) in self.originals.iter().enumerate() {
            let mut at = self.header_lens[k];
            while at < o.len() {
                let end = (at + SEGMENT_STORED as usize).min(o.len());
                out.push(&o[at..end]);
                at = end;
            }
        }
        out
    }

    /// The file the input builds in place of external file `k`.
    fn build(&self, k: usize, how: u8, rest: &[u8]) -> Vec<u8> {
        let orig = &self.originals[k];
        let u32_at = |b: &[u8]| {
            b.get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        match how {
            0 => rest.to_vec(),
            1 => {
                let mut f = orig.clone();
                if let (Some(pos), false) = (u32_at(rest), f.is_empty()) {
                    let pos = pos as usize % f.len();
                    for (d, x) in f[pos..].iter_mut().zip(&rest[4..]) {
                        *d ^= x;
                    }
                }
                f
            }
            2 => {
                let all = self.all_stored();
                let mut f = orig[..self.header_lens[k]].to_vec();
                for &b in rest.iter().take(MAX_SEGMENTS) {
                    f.extend_from_slice(all[b as usize % all.len()]);
                }
                f
            }
            _ => {
                let mut f = orig.clone();
                let len =
                    u32_at(rest).unwrap_or(0) as usize % (orig.len() + 2 * SEGMENT_STORED as usize);
                let fill = rest.get(4..).unwrap_or_default();
                if len <= f.len() {
                    f.truncate(len);
                } else if fill.is_empty() {
                    f.resize(len, 0);
                } else {
                    while f.len() < len {
                        let n = (len - f.len()).min(fill.len());
                        f.extend_from_slice(&fill[..n]);
                    }
                }
                f
            }
        }
    }
}

thread_local! {
    static FIXTURE: RefCell<Option<&'static Fixture>> = const { RefCell::new(None) };
}

fn fixture() -> &'static Fixture {
    FIXTURE.with(|f| {
        *f.borrow_mut()
            .get_or_insert_with(|| Box::leak(Box::new(Fixture::new())))
    })
}

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    if input.len() < 9 {
        return;
    }
    let fx = fixture();
    fx.restore();
    let mode = input[0];
    let offset = u32::from_le_bytes(input[1..5].try_into().unwrap()) as u64;
    let len = u32::from_le_bytes(input[5..9].try_into().unwrap()) as usize % (MAX_READ + 1);
    let k = (mode & 3) as usize % fx.paths.len();
    let file = fx.build(k, (mode >> 2) & 3, &input[9..]);
    fx.dirty.set(Some(k));
    std::fs::write(&fx.paths[k], &file).unwrap();
    check(fx, k, &file, mode & 16 != 0, offset, len);
    fx.restore();
}

fn check(fx: &Fixture, k: usize, file: &[u8], par: bool, offset: u64, len: usize) {
    let archive = &fx.archive;
    let Ok(files) = ExternalFiles::open(archive, &fx.archive_path, false) else {
        return;
    };
    let f = files.get(k as u32).expect("every external file is open");
    let shown = &fx.shown[k];
    assert_eq!(f.len(), shown.len() as u64, "the recorded size");

    // A read at an offset, as extract and cat make them.
    let off = offset % (f.len() + 1);
    let mut buf = vec![0u8; len];
    if let Ok(n) = f.read_at(archive, off, &mut buf) {
        let off = off as usize;
        assert_eq!(n, len.min(shown.len() - off), "short only at the end");
        assert_eq!(&buf[..n], &shown[off..off + n], "only the original bytes");
    }

    // A run of segments as the mount's cache loads it.
    if f.segments() > 0 {
        let first = offset % f.segments();
        let n = (1 + len as u64 % 16).min(f.segments() - first);
        let mut tags = vec![0u8; n as usize * SEGMENT_TAG_LEN];
        archive.segment_tags(k as u32, first, &mut tags).unwrap();
        let mut bufs: Vec<Vec<u8>> = (first..first + n)
            .map(|i| vec![0u8; f.stored_len(i)])
            .collect();
        let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        let tagger = archive.segment_tagger().unwrap();
        match f.load_run(tagger, first, &tags, &mut slices, par) {
            Ok(()) => {
                for (j, b) in bufs.iter().enumerate() {
                    let want = &fx.segments[k][first as usize + j];
                    assert_eq!(&b[..want.len()], &want[..], "segment {}", first + j as u64);
                }
            }
            Err(e) if matches!(e.error, SegmentError::Auth) => {
                for b in &bufs {
                    assert!(b.iter().all(|&x| x == 0), "a failed run keeps no plaintext");
                }
            }
            Err(_) => {}
        }
    }

    if files.verify(archive, &mut |_| {}).is_ok() {
        assert_eq!(
            file,
            &fx.originals[k][..],
            "only the original file verifies"
        );
    }
}

/// Seeds: each external file as it is, and one of each construction.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let fx = fixture();
    let mut out = Vec::new();
    let head = |mode: u8, off: u32, len: u32| {
        let mut v = vec![mode];
        v.extend_from_slice(&off.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    };
    for k in 0..fx.paths.len() {
        let k8 = k as u8;
        let mut v = head(k8, 3, 70_000);
        v.extend_from_slice(&fx.originals[k]);
        out.push((format!("file{k}"), v));
        let mut v = head(k8 | 4 | 16, 65_530, 20);
        v.extend_from_slice(&(fx.header_lens[k] as u32 + 40).to_le_bytes());
        v.push(1);
        out.push((format!("file{k}-xor"), v));
        let mut v = head(k8 | 8 | 16, 0, 200_000);
        v.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6]);
        out.push((format!("file{k}-segments"), v));
        let mut v = head(k8 | 12, 1, 100);
        v.extend_from_slice(&(fx.originals[k].len() as u32 - 1).to_le_bytes());
        out.push((format!("file{k}-cut"), v));
    }
    out
}
