//! Crypt4GH results (RESULTS.md "Crypt4GH results") as the secure device
//! reads them: an object `<id>.c4gh` with its receipt `<id>.hpcs-receipt`
//! (`decrypt_c4gh_object`, `partial_run`), a manifest
//! `manifest-<run>.hpcs-manifest` (`read_manifest`), and the whole
//! directory as `hpcs-pack results verify|decrypt` checks it (`check_dir`),
//! with the fixed Crypt4GH secret key [`SK`] and results key [`KEY`].
//!
//! Input: byte 0 is the mode, bytes 1..3 and 3..5 the lengths (u16
//! little-endian) of the receipt and the manifest that follow, the rest is
//! the object. Mode bits: 0 puts the manifest in the directory; 1, 2 and 3
//! say the receipt, the object and the manifest are plaintext, which the
//! target encrypts to [`SK`]'s public key (as a job would), after
//! re-computing the MAC of the receipt (over the object's plaintext) and of
//! the manifest so the fields behind it are reached; 4 also runs
//! `check_dir` placing decrypted results, 5 placing verified `.c4gh` copies.
//!
//! Checks: an accepted object's sink holds exactly the plaintext of the
//! `.c4gh` file, its size and path are the receipt's, its hash is the
//! file's, and the receipt's MAC (checked here with `hmac`) covers that
//! plaintext; an accepted manifest is for [`ARCHIVE`] and its MAC holds;
//! `check_dir` places only the accepted plaintext (or the file itself).

use std::path::Path;

use hmac::{Hmac, Mac};
use hpcs::crypt4gh::{self, SecretKey, WriterOptions};
use hpcs::crypto::keys::SubKey;
use hpcs::results::{self, Placing, ResultKeys};

use crate::hex;
use sha2::{Digest, Sha256};

/// The results key and archive id the seeds were made with.
pub const KEY: [u8; 32] = [0x5a; 32];
/// The archive id of the seeds' run.
pub const ARCHIVE: [u8; 32] = [0xa5; 32];
/// The Crypt4GH secret key the results are encrypted to.
pub const SK: [u8; 32] = [0x11; 32];
/// The run id of the seeds.
pub const RUN: [u8; 16] = [0x77; 16];
/// The object id every input is stored under.
pub const OBJECT_ID: &str = "0123456789abcdef0123456789abcdef";

const HEADER_LEN: usize = 72;
const TAIL_FIXED: usize = 56;

fn mac(parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The results keys: the golden age identity and [`SK`].
pub fn result_keys() -> &'static ResultKeys {
    thread_local! {
        static KEYS: &'static ResultKeys = Box::leak(Box::new(ResultKeys {
            age: crate::load_golden_identities(),
            c4gh: Some(SecretKey::from_bytes(SK)),
        }));
    }
    KEYS.with(|k| *k)
}

fn sk() -> &'static SecretKey {
    result_keys().c4gh.as_ref().unwrap()
}

fn seal(plain: &[u8]) -> Vec<u8> {
    crypt4gh::encrypt(plain, &[sk().public_key()], WriterOptions::default()).unwrap()
}

/// The plaintext of a Crypt4GH file, if it decrypts.
fn open(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    crypt4gh::decrypt_stream(bytes, sk(), &mut out).ok()?;
    Some(out)
}

/// Re-computes the MAC of receipt plaintext `r` for object data `data`.
fn fix_receipt(r: &mut [u8], data: &[u8]) {
    let p = r.len();
    if p >= HEADER_LEN + TAIL_FIXED && r.ends_with(b"HPCS-END") {
        let m = mac(&[&r[..HEADER_LEN], data, &r[HEADER_LEN..p - 40]]);
        r[p - 40..p - 8].copy_from_slice(&m);
    }
}

/// Re-computes the MAC line of manifest plaintext `m`.
fn fix_manifest(m: &mut Vec<u8>) {
    if let Some(at) = m.windows(5).rposition(|w| w == b"\nmac ") {
        let tag = mac(&[&m[..at + 1]]);
        m.truncate(at + 1);
        m.extend_from_slice(format!("mac {}\n", hex(&tag)).as_bytes());
    }
}

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    if input.len() < 5 {
        return;
    }
    let mode = input[0];
    let rlen = u16::from_le_bytes([input[1], input[2]]) as usize;
    let mlen = u16::from_le_bytes([input[3], input[4]]) as usize;
    let rest = &input[5..];
    let (mut receipt, rest) = rest.split_at(rlen.min(rest.len()));
    let (mut manifest, mut object) = rest.split_at(mlen.min(rest.len()));
    let (sealed_object, sealed_receipt, sealed_manifest);
    if mode & 4 != 0 {
        sealed_object = seal(object);
        object = &sealed_object;
    }
    if mode & 2 != 0 {
        let mut r = receipt.to_vec();
        fix_receipt(&mut r, &open(object).unwrap_or_default());
        sealed_receipt = seal(&r);
        receipt = &sealed_receipt;
    }
    if mode & 8 != 0 {
        let mut m = manifest.to_vec();
        fix_manifest(&mut m);
        sealed_manifest = seal(&m);
        manifest = &sealed_manifest;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("results");
    std::fs::create_dir(&dir).unwrap();
    let obj = dir.join(format!("{OBJECT_ID}{}", results::C4GH_SUFFIX));
    let rec = dir.join(format!("{OBJECT_ID}{}", results::RECEIPT_SUFFIX));
    std::fs::write(&obj, object).unwrap();
    std::fs::write(&rec, receipt).unwrap();
    let man = dir.join(format!(
        "{}{}{}",
        results::MANIFEST_PREFIX,
        hex(&RUN),
        results::C4GH_MANIFEST_SUFFIX
    ));
    if mode & 1 != 0 {
        std::fs::write(&man, manifest).unwrap();
    }
    let key = SubKey::from_bytes(KEY);

    let mut sink = Vec::new();
    let accepted = results::decrypt_c4gh_object(&obj, &rec, sk(), &key, &ARCHIVE, &mut sink);
    if let Ok(meta) = &accepted {
        check_accepted(meta, &sink, object, receipt);
    }
    let partial = dir.join(format!("{OBJECT_ID}{}", results::C4GH_PARTIAL_SUFFIX));
    std::fs::write(&partial, object).unwrap();
    if let Some(run) = results::partial_run(&partial, result_keys()) {
        let r = open(receipt).expect("a receipt that gives a run decrypts");
        assert_eq!(&r[16..32], &run[..], "the run is the receipt's");
    }
    std::fs::remove_file(&partial).unwrap();

    if mode & 1 != 0 {
        if let Ok(m) = results::read_manifest(&man, result_keys(), &key, &ARCHIVE) {
            assert_eq!(m.info.archive_id, ARCHIVE);
            let text = open(manifest).expect("an accepted manifest decrypts");
            let at = text.windows(5).rposition(|w| w == b"\nmac ").unwrap() + 1;
            let line = std::str::from_utf8(&text[at + 4..]).unwrap().trim_end();
            assert_eq!(
                line,
                hex(&mac(&[&text[..at]])),
                "an accepted manifest carries its MAC"
            );
        }
    }

    if mode & 0x30 != 0 {
        let dest = t.path().join("dest");
        let placing = if mode & 0x20 != 0 {
            Placing::Crypt4gh(&dest)
        } else {
            Placing::Decrypted(&dest)
        };
        let _ = results::check_dir(&dir, result_keys(), &key, &ARCHIVE, placing);
        let placed = files_under(&dest);
        match &accepted {
            Ok(_) if mode & 0x20 != 0 => {
                for f in &placed {
                    assert_eq!(&std::fs::read(f).unwrap()[..], object, "a verified copy");
                }
            }
            Ok(_) => {
                for f in &placed {
                    assert_eq!(std::fs::read(f).unwrap(), sink, "the accepted plaintext");
                }
            }
            Err(_) => assert!(placed.is_empty(), "nothing refused is placed: {placed:?}"),
        }
    }
}

/// What an accepted object must be.
fn check_accepted(meta: &results::ObjectMeta, sink: &[u8], object: &[u8], receipt: &[u8]) {
    assert_eq!(
        meta.size,
        sink.len() as u64,
        "the sink holds exactly the size"
    );
    assert_eq!(
        open(object).as_deref(),
        Some(sink),
        "the sink holds the file's plaintext"
    );
    assert_eq!(meta.sha256, <[u8; 32]>::from(Sha256::digest(object)));
    let r = open(receipt).expect("an accepted receipt decrypts");
    let p = r.len();
    assert!(p >= HEADER_LEN + TAIL_FIXED && r.ends_with(b"HPCS-END"));
    assert_eq!(&r[40..72], &ARCHIVE[..], "for the archive");
    assert_eq!(
        &r[p - 40..p - 8],
        &mac(&[&r[..HEADER_LEN], sink, &r[HEADER_LEN..p - 40]])[..],
        "the receipt's MAC covers the plaintext given out"
    );
    assert_eq!(&r[HEADER_LEN..HEADER_LEN + meta.path.len()], &meta.path[..]);
    assert_eq!(HEADER_LEN + meta.path.len() + TAIL_FIXED, p);
}

/// Every regular file under `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(files_under(&p));
        } else if ft.is_file() {
            out.push(p);
        }
    }
    out
}

/// Seeds made with the library's own writer (`Run` with Crypt4GH
/// recipients): (name, input). Each object both as written (mode 0x11: with
/// the manifest, `check_dir`) and as plaintext (mode 0x1f).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let t = tempfile::tempdir().unwrap();
    let key = SubKey::from_bytes(KEY);
    let run = results::Run::new(
        t.path(),
        results::Recipients::Crypt4gh(vec![sk().public_key()]),
        &key,
        ARCHIVE,
        "node1".into(),
        "42".into(),
    )
    .unwrap()
    .with_run_id(RUN);
    let mut out = Vec::new();
    let cases: [(&[u8], &[u8]); 3] = [
        (b"hello crypt4gh results\n", b"out/a.txt"),
        (b"", b"e"),
        (&[7u8; 70_000], b"d/big.bin"),
    ];
    for (i, (data, path)) in cases.into_iter().enumerate() {
        let mut w = run.create().unwrap();
        w.write(data).unwrap();
        let fin = w.finish(path, 0o640).unwrap();
        let id = fin.object.strip_suffix(results::C4GH_SUFFIX).unwrap();
        let object = std::fs::read(t.path().join(&fin.object)).unwrap();
        let receipt =
            std::fs::read(t.path().join(format!("{id}{}", results::RECEIPT_SUFFIX))).unwrap();
        let body = results::ManifestBody {
            dirs: Vec::new(),
            files: vec![results::ManifestFile {
                object: format!("{OBJECT_ID}{}", results::C4GH_SUFFIX),
                size: fin.size,
                sha256: fin.sha256,
                mode: 0o640,
                path: path.to_vec(),
            }],
            open: Vec::new(),
        };
        let manifest = std::fs::read(run.write_manifest(&body).unwrap()).unwrap();
        let input = |mode: u8, r: &[u8], m: &[u8], o: &[u8]| {
            let mut v = vec![mode];
            v.extend_from_slice(&(r.len() as u16).to_le_bytes());
            v.extend_from_slice(&(m.len() as u16).to_le_bytes());
            v.extend_from_slice(r);
            v.extend_from_slice(m);
            v.extend_from_slice(o);
            v
        };
        out.push((
            format!("object-{i}"),
            input(0x11, &receipt, &manifest, &object),
        ));
        out.push((
            format!("object-{i}-c4gh-copy"),
            input(0x21, &receipt, &manifest, &object),
        ));
        if data.len() < 1000 {
            let (r, m) = (open(&receipt).unwrap(), open(&manifest).unwrap());
            out.push((format!("object-{i}-plain"), input(0x1f, &r, &m, data)));
        }
        for f in std::fs::read_dir(t.path()).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
    }
    out
}
