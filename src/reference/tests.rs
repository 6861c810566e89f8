//! Reference archives end to end in the library: pack `.c4gh` files made by
//! the codec, read them back byte-exact through their edit lists, and the
//! tamper matrix (every case refused when the files are opened, or an error
//! at read; never a wrong byte). The same matrix against files made by the
//! Python reference runs through the mount in tests/it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::*;
use crate::crypt4gh::{
    encrypt, header, DataKey as C4ghKey, DataKeys, EditList, Header, PublicKey, SecretKey,
    WriterOptions, CIPHER_SEGMENT_SIZE, SEGMENT_SIZE,
};
use crate::crypto::{Archive, DataKey, FileSource, SealedArchive, WriteOptions};

const SEG: usize = SEGMENT_SIZE;

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 16) as u8)
        .collect()
}

fn c4gh(plain: &[u8], to: &[PublicKey], edit: Option<EditList>) -> Vec<u8> {
    let options = WriterOptions {
        sender: None,
        edit_list: edit,
    };
    encrypt(plain, to, options).unwrap()
}

struct Case {
    dir: tempfile::TempDir,
    me: SecretKey,
    archive: PathBuf,
    key: DataKey,
    /// (name in the archive, file on disk, what the mount must show)
    files: Vec<(String, PathBuf, Vec<u8>)>,
}

impl Case {
    /// Three files in `data/`: several segments, an edit list, empty.
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let me = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let d = dir.path().join("data");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let mut files = Vec::new();
        let big = data(1, 3 * SEG + 7);
        let p = d.join("big.bin.c4gh");
        std::fs::write(&p, c4gh(&big, &[me.public_key(), other.public_key()], None)).unwrap();
        files.push(("big.bin".to_string(), p, big));
        let edited = data(2, 2 * SEG + 100);
        let e = EditList::new(vec![5, 10, SEG as u64, 200]).unwrap();
        let p = d.join("sub/cut.vcf.c4gh");
        std::fs::write(&p, c4gh(&edited, &[me.public_key()], Some(e.clone()))).unwrap();
        files.push(("sub/cut.vcf".to_string(), p, e.apply(&edited)));
        let p = d.join("empty.c4gh");
        std::fs::write(&p, c4gh(b"", &[me.public_key()], None)).unwrap();
        files.push(("empty".to_string(), p, Vec::new()));
        std::fs::write(d.join("notes.txt"), b"not Crypt4GH, skipped").unwrap();
        let archive = dir.path().join("ref.hpcs");
        let key = DataKey::generate().unwrap();
        let scan = scan(&[d], &archive, &me, Placement::Relative).unwrap();
        assert_eq!(scan.files(), 3);
        assert_eq!(scan.warnings.len(), 1, "notes.txt skipped");
        write(
            &scan,
            &archive,
            false,
            &WriteOptions::default(),
            &key,
            [4; 32],
            vec![],
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        Case {
            dir,
            me,
            archive,
            key,
            files,
        }
    }

    fn unlock(&self) -> Archive<FileSource> {
        SealedArchive::open(FileSource::open(&self.archive).unwrap())
            .unwrap()
            .unlock(&self.key)
            .unwrap()
    }

    fn open(&self) -> Result<(Archive<FileSource>, ExternalFiles), RefError> {
        let a = self.unlock();
        let x = ExternalFiles::open(&a, &self.archive, false)?;
        Ok((a, x))
    }

    /// Every file read whole through `read_at`, or the first error.
    fn read_all(&self) -> Result<Vec<Vec<u8>>, RefError> {
        let (a, x) = self.open()?;
        let mut out = Vec::new();
        for (name, _, _) in &self.files {
            let id = a.tree().resolve(name).unwrap();
            let crate::crypto::index::Kind::External { ext, size } =
                a.tree().node(id).unwrap().kind
            else {
                panic!("{name} is not external");
            };
            let f = x.get(ext).unwrap();
            assert_eq!(f.len(), size);
            let mut buf = vec![0u8; size as usize + 10];
            let n = f.read_at(&a, 0, &mut buf)?;
            buf.truncate(n);
            out.push(buf);
        }
        Ok(out)
    }

    fn big(&self) -> &Path {
        &self.files[0].1
    }
}

#[test]
fn files_read_back_through_their_edit_lists() {
    let c = Case::new();
    let got = c.read_all().unwrap();
    for ((name, _, want), got) in c.files.iter().zip(&got) {
        assert!(got == want, "{name}");
    }
    let (a, x) = c.open().unwrap();
    assert_eq!(
        a.header().features,
        crate::crypto::external::FEATURE_EXTERNAL_C4GH
    );
    let mut checked = 0;
    x.verify(&a, &mut |n| checked = n).unwrap();
    let stored: u64 = c
        .files
        .iter()
        .map(|(_, p, _)| {
            let f = std::fs::read(p).unwrap();
            f.len() as u64 - Header::parse(&f, &c.me).unwrap().byte_len()
        })
        .sum();
    assert_eq!(checked, stored);
    // random ranges, also across segment boundaries
    let f = x.get(0).unwrap();
    let want = &c.files[0].2;
    for (at, len) in [(SEG - 1, 2), (5, 3 * SEG), (3 * SEG, 100), (0, 1)] {
        let mut buf = vec![0u8; len];
        let n = f.read_at(&a, at as u64, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &want[at..(at + len).min(want.len())],
            "{at}+{len}"
        );
    }
    // the archive names its files relative to its own directory
    let loc = a.tree().external(0).unwrap().location();
    assert!(matches!(
        loc,
        crate::crypto::external::Location::Relative(_)
    ));
    // a node needs the archive key only: no Crypt4GH key was used to read
}

#[test]
fn the_archive_can_move_with_its_data() {
    let c = Case::new();
    let moved = c.dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(c.dir.path().join("data"), moved.join("data")).unwrap();
    std::fs::rename(&c.archive, moved.join("ref.hpcs")).unwrap();
    let a = SealedArchive::open(FileSource::open(&moved.join("ref.hpcs")).unwrap())
        .unwrap()
        .unlock(&c.key)
        .unwrap();
    let x = ExternalFiles::open(&a, &moved.join("ref.hpcs"), true).unwrap();
    assert_eq!(x.len(), 3);
    // left behind: refused, and the error names the file only when asked
    let e =
        ExternalFiles::open(&c.unlock_at(&moved.join("ref.hpcs")), &c.archive, false).unwrap_err();
    assert!(matches!(e, RefError::Missing { .. }), "{e}");
    assert!(!e.to_string().contains("big.bin"), "{e}");
    assert_eq!(crate::exit::for_reference(&e), crate::exit::C4GH_CHANGED);
}

impl Case {
    fn unlock_at(&self, p: &Path) -> Archive<FileSource> {
        SealedArchive::open(FileSource::open(p).unwrap())
            .unwrap()
            .unlock(&self.key)
            .unwrap()
    }
}

/// The segments of `file` (header, then each stored segment).
fn split(file: &[u8], me: &SecretKey) -> (Vec<u8>, Vec<Vec<u8>>) {
    let h = Header::parse(file, me).unwrap().byte_len() as usize;
    (
        file[..h].to_vec(),
        file[h..]
            .chunks(CIPHER_SEGMENT_SIZE)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// What happened to a tampered file: refused at open, or an error at read.
#[derive(Debug, PartialEq)]
enum Outcome {
    RefusedAtOpen,
    ReadFailed,
}

fn outcome(c: &Case) -> Outcome {
    match c.open() {
        Err(e) => {
            assert!(
                matches!(e, RefError::Changed { .. }),
                "refused for another reason: {e}"
            );
            Outcome::RefusedAtOpen
        }
        Ok(_) => match c.read_all() {
            Ok(_) => panic!("a tampered file read without an error"),
            Err(e) => {
                assert!(matches!(e, RefError::SegmentAuth { .. }), "{e}");
                assert_eq!(crate::exit::for_reference(&e), crate::exit::C4GH_AUTH);
                Outcome::ReadFailed
            }
        },
    }
}

#[test]
fn tamper_matrix() {
    use Outcome::*;
    let c = Case::new();
    let orig = std::fs::read(c.big()).unwrap();
    let (head, segs) = split(&orig, &c.me);
    let other = SecretKey::generate().unwrap();
    let mallory = SecretKey::generate().unwrap();
    let cat = |parts: &[&[u8]]| parts.concat();
    // a header packet sealed to our public key by anyone: a data key of theirs
    let inject = |extra: &[u8]| {
        let mut h = head.clone();
        let n = u32::from_le_bytes(h[12..16].try_into().unwrap()) + 1;
        h[12..16].copy_from_slice(&n.to_le_bytes());
        h.extend_from_slice(extra);
        h
    };
    let theirs = C4ghKey::generate().unwrap();
    let packet = |keys: &[C4ghKey], e: Option<&EditList>| {
        header::build(keys, e, &[c.me.public_key()], &mallory).unwrap()[16..].to_vec()
    };
    let mut forged = Vec::new();
    DataKeys::new(vec![theirs.clone()])
        .seal_segment(&data(9, SEG), &mut forged)
        .unwrap();
    // a key holder (any recipient) re-encrypts segment 1 with its own nonce
    // and data key: Crypt4GH's MAC verifies, the archive's tag does not
    let dk = {
        let h = Header::parse(&orig, &c.me).unwrap();
        let k = h.data_keys().keys().next().unwrap().clone();
        k
    };
    let mut resealed = Vec::new();
    DataKeys::new(vec![dk])
        .seal_segment(&data(7, SEG), &mut resealed)
        .unwrap();
    let replaced = c4gh(
        &data(1, 3 * SEG + 7),
        &[c.me.public_key(), other.public_key()],
        None,
    );
    assert_eq!(replaced.len(), orig.len(), "same length, same key");
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "segments swapped",
            cat(&[&head, &segs[1], &segs[0], &segs[2], &segs[3]]),
            ReadFailed,
        ),
        (
            "segment duplicated",
            cat(&[&head, &segs[0], &segs[0], &segs[1], &segs[2], &segs[3]]),
            RefusedAtOpen,
        ),
        (
            "segment duplicated over another",
            cat(&[&head, &segs[0], &segs[0], &segs[2], &segs[3]]),
            ReadFailed,
        ),
        (
            "segment dropped",
            cat(&[&head, &segs[0], &segs[2], &segs[3]]),
            RefusedAtOpen,
        ),
        (
            "cut at a segment boundary",
            cat(&[&head, &segs[0], &segs[1]]),
            RefusedAtOpen,
        ),
        (
            "cut inside a segment",
            orig[..orig.len() - 3].to_vec(),
            RefusedAtOpen,
        ),
        ("segment appended", cat(&[&orig, &forged]), RefusedAtOpen),
        (
            "data-key packet injected",
            cat(&[
                &inject(&packet(std::slice::from_ref(&theirs), None)),
                &segs.concat(),
                &forged,
            ]),
            RefusedAtOpen,
        ),
        (
            "edit list injected",
            cat(&[
                &inject(&packet(&[], Some(&EditList::new(vec![0, 5]).unwrap()))),
                &segs.concat(),
            ]),
            RefusedAtOpen,
        ),
        (
            "segment re-encrypted by a key holder",
            cat(&[&head, &segs[0], &resealed, &segs[2], &segs[3]]),
            ReadFailed,
        ),
        (
            "file replaced, same key and length",
            replaced,
            RefusedAtOpen,
        ),
        (
            "a byte flipped",
            {
                let mut b = orig.clone();
                b[head.len() + 100] ^= 1;
                b
            },
            ReadFailed,
        ),
    ];
    for (what, bytes, want) in cases {
        std::fs::write(c.big(), &bytes).unwrap();
        assert_eq!(outcome(&c), want, "{what}");
    }
    // the other files' edit list changed (same header length: one length edited)
    std::fs::write(c.big(), &orig).unwrap();
    let cut = &c.files[1].1;
    let f = std::fs::read(cut).unwrap();
    let (h, body) = split(&f, &c.me);
    let keys: Vec<C4ghKey> = Header::parse(&f, &c.me)
        .unwrap()
        .data_keys()
        .keys()
        .cloned()
        .collect();
    let e2 = EditList::new(vec![5, 10, SEG as u64, 201]).unwrap();
    let h2 = header::build(&keys, Some(&e2), &[c.me.public_key()], &mallory).unwrap();
    assert_eq!(h2.len(), h.len());
    std::fs::write(cut, cat(&[&h2, &body.concat()])).unwrap();
    assert_eq!(outcome(&c), RefusedAtOpen, "edit list changed");
    std::fs::write(cut, &f).unwrap();
    assert!(c.read_all().is_ok(), "all restored");
}
