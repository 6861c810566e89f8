//! Reading objects back on the secure device (RESULTS.md "Object
//! plaintext"): decrypting an object with the user's age identities,
//! checking its archive id, trailer and MAC, and streaming its data out;
//! and the [`ReadError`] every reading step reports. Verdicts over a whole
//! directory are `check.rs`'s.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;

use hmac::Mac;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::cipher::{c4gh_error, open_c4gh_small, ResultKeys};
use super::object::{
    mac_range, new_mac, ObjectHeader, Trailer, C4GH_PARTIAL_SUFFIX, HEADER_LEN, MAX_PATH,
    RECEIPT_SUFFIX, TAIL_FIXED,
};
use crate::crypt4gh::SecretKey;
use crate::crypto::keys::{ct_eq, SubKey};
use crate::keys::Identities;
use crate::util::hex;

/// Why an object or manifest could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// None of the identities decrypts it.
    #[error("none of the given identities decrypts it (encrypted to someone else?)")]
    NoIdentity,
    /// Crypt4GH results, and no Crypt4GH secret key was given.
    #[error("these results are Crypt4GH files: give the Crypt4GH secret key they were encrypted to (--sk KEY)")]
    NoCrypt4ghKey,
    /// It was written with a different archive's key.
    #[error(
        "it was produced by a job that mounted archive {found}, not the archive given ({given})"
    )]
    WrongArchive {
        /// Archive id in the object.
        found: String,
        /// Archive id of the archive given.
        given: String,
    },
    /// Cut short, modified, or not a results file.
    #[error("{0}")]
    Bad(String),
    /// Reading it (or writing the plaintext) failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a finished object says about itself (authenticated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Run that wrote it.
    pub run: [u8; 16],
    /// Order within the run.
    pub seq: u64,
    /// Path when it was closed.
    pub path: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the object file.
    pub sha256: [u8; 32],
}

/// The object file under the age stream, hashed as it is read (to compare
/// with the manifest).
struct HashingReader {
    inner: File,
    hash: Rc<RefCell<Sha256>>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// Opens the age stream of an object or manifest with the identities.
pub(super) fn age_reader<R: Read>(
    r: R,
    ids: &Identities,
) -> Result<age::stream::StreamReader<R>, ReadError> {
    let d = age::Decryptor::new(r).map_err(|e| match e {
        age::DecryptError::Io(e) => ReadError::Io(e),
        e => ReadError::Bad(format!("not an age file: {e}")),
    })?;
    d.decrypt(ids.as_age()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => ReadError::NoIdentity,
        age::DecryptError::Io(e) => ReadError::Io(e),
        e => ReadError::Bad(format!("age header rejected: {e}")),
    })
}

/// What a failed read of an age stream means.
pub(super) fn stream_error(e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Bad("cut short (truncated)".into()),
        io::ErrorKind::InvalidData => {
            ReadError::Bad("failed authentication (modified or damaged)".into())
        }
        _ => ReadError::Io(e),
    }
}

/// Decrypts and authenticates one object file, streaming its data to `sink`
/// (which sees unauthenticated bytes: write it somewhere temporary and keep
/// it only on `Ok`). `archive_id` is the id of the archive whose results
/// key is `key`.
pub fn decrypt_object(
    file: &Path,
    ids: &Identities,
    key: &SubKey,
    archive_id: &[u8; 32],
    sink: &mut dyn Write,
) -> Result<ObjectMeta, ReadError> {
    let hash = Rc::new(RefCell::new(Sha256::new()));
    let r = HashingReader {
        inner: File::open(file)?,
        hash: Rc::clone(&hash),
    };
    let mut rd = age_reader(r, ids)?;
    let mut header = [0u8; HEADER_LEN];
    rd.read_exact(&mut header).map_err(stream_error)?;
    let h = ObjectHeader::parse(&header)
        .ok_or_else(|| ReadError::Bad("not an hpcs results object".into()))?;
    if &h.archive_id != archive_id {
        return Err(ReadError::WrongArchive {
            found: hex(&h.archive_id),
            given: hex(archive_id),
        });
    }
    let mut mac = new_mac(key).map_err(|_| ReadError::Bad("HMAC key".into()))?;
    mac.update(&header);
    // Hold back the longest possible trailer until the end is known.
    const HOLD: usize = MAX_PATH + TAIL_FIXED;
    let mut pending: Vec<u8> = Vec::with_capacity(HOLD + 65536);
    let mut buf = Zeroizing::new(vec![0u8; 65536]);
    let mut written = 0u64;
    loop {
        let n = rd.read(&mut buf).map_err(stream_error)?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        if pending.len() > HOLD {
            let out = pending.len() - HOLD;
            mac.update(&pending[..out]);
            sink.write_all(&pending[..out])?;
            written += out as u64;
            pending.drain(..out);
        }
    }
    let p = pending.len();
    let t = Trailer::parse(&pending)
        .ok_or_else(|| ReadError::Bad("has no valid trailer (cut short or not finished)".into()))?;
    let data_here = p - TAIL_FIXED - t.path_len;
    if written + data_here as u64 != t.size {
        return Err(ReadError::Bad("size in the trailer does not match".into()));
    }
    let tag_at = mac_range(p);
    mac.update(&pending[..tag_at.start]);
    check_mac(mac, &pending[tag_at])?;
    sink.write_all(&pending[..data_here])?;
    let path = pending[data_here..data_here + t.path_len].to_vec();
    pending.zeroize();
    Ok(ObjectMeta::new(&h, path, &t, &hash))
}

/// Compares a finished results MAC with the tag read back.
fn check_mac(mac: super::object::HmacSha256, tag: &[u8]) -> Result<(), ReadError> {
    if !ct_eq(&mac.finalize().into_bytes(), tag) {
        return Err(ReadError::Bad(
            "failed authentication: not written by a job holding the archive's key, or modified"
                .into(),
        ));
    }
    Ok(())
}

impl ObjectMeta {
    fn new(h: &ObjectHeader, path: Vec<u8>, t: &Trailer, hash: &RefCell<Sha256>) -> ObjectMeta {
        ObjectMeta {
            run: h.run,
            seq: h.seq,
            path,
            mode: t.mode,
            size: t.size,
            sha256: hash.borrow().clone().finalize().into(),
        }
    }
}

/// Reads the run id from the first chunk of an object that was never
/// finished (`.age.partial`), if it decrypts that far. A Crypt4GH object
/// (`.c4gh.partial`) holds no header: its run is known only from a receipt
/// (written when it was finished, just before the rename).
pub fn partial_run(file: &Path, keys: &ResultKeys) -> Option<[u8; 16]> {
    let name = file.file_name()?.to_str()?;
    if let Some(id) = name.strip_suffix(C4GH_PARTIAL_SUFFIX) {
        let receipt = file.with_file_name(format!("{id}{RECEIPT_SUFFIX}"));
        return read_receipt(&receipt, keys.c4gh().ok()?)
            .ok()
            .map(|r| r.0.run);
    }
    let mut rd = age_reader(File::open(file).ok()?, &keys.age).ok()?;
    let mut header = [0u8; HEADER_LEN];
    rd.read_exact(&mut header).ok()?;
    ObjectHeader::parse(&header).map(|h| h.run)
}

/// The header and trailer of a Crypt4GH object's receipt (RESULTS.md
/// "Crypt4GH results"): `header ‖ path ‖ path_len ‖ mode ‖ data_len ‖ mac ‖
/// "HPCS-END"`, decrypted and parsed (not yet authenticated).
pub(super) fn read_receipt(
    receipt: &Path,
    sk: &SecretKey,
) -> Result<(ObjectHeader, Vec<u8>, Trailer), ReadError> {
    let f = File::open(receipt).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Bad(
            "its receipt is missing: nothing says which job wrote it (removed, or never finished)"
                .into(),
        ),
        _ => ReadError::Io(e),
    })?;
    let max = (HEADER_LEN + MAX_PATH + TAIL_FIXED) as u64;
    let r = open_c4gh_small(&f, sk, max)?;
    let bad = || ReadError::Bad("its receipt is not an hpcs results receipt".into());
    let header: &[u8; HEADER_LEN] = r
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(bad)?;
    let h = ObjectHeader::parse(header).ok_or_else(bad)?;
    let t = Trailer::parse(&r[HEADER_LEN..]).ok_or_else(bad)?;
    if r.len() != HEADER_LEN + t.path_len + TAIL_FIXED {
        return Err(bad());
    }
    Ok((h, r, t))
}

/// Decrypts and authenticates a Crypt4GH object (`<id>.c4gh`, a plain
/// Crypt4GH file of the result's bytes) with its receipt, streaming its data
/// to `sink` (unauthenticated until `Ok`, as for [`decrypt_object`]).
pub fn decrypt_c4gh_object(
    file: &Path,
    receipt: &Path,
    sk: &SecretKey,
    key: &SubKey,
    archive_id: &[u8; 32],
    sink: &mut dyn Write,
) -> Result<ObjectMeta, ReadError> {
    let (h, r, t) = read_receipt(receipt, sk)?;
    if &h.archive_id != archive_id {
        return Err(ReadError::WrongArchive {
            found: hex(&h.archive_id),
            given: hex(archive_id),
        });
    }
    let mut mac = new_mac(key).map_err(|_| ReadError::Bad("HMAC key".into()))?;
    mac.update(&r[..HEADER_LEN]);
    let hash = Rc::new(RefCell::new(Sha256::new()));
    let input = HashingReader {
        inner: File::open(file)?,
        hash: Rc::clone(&hash),
    };
    let mut out = MacWriter {
        mac: &mut mac,
        sink,
        len: 0,
    };
    // The receipt's MAC covers the bytes the file shows, so a header
    // packet added to it (an edit list) or reordered segments fail here.
    crate::crypt4gh::decrypt_stream(io::BufReader::new(input), sk, &mut out).map_err(c4gh_error)?;
    if out.len != t.size {
        return Err(ReadError::Bad("size in the receipt does not match".into()));
    }
    let tag_at = mac_range(r.len());
    mac.update(&r[HEADER_LEN..tag_at.start]);
    check_mac(mac, &r[tag_at])?;
    let path = r[HEADER_LEN..HEADER_LEN + t.path_len].to_vec();
    Ok(ObjectMeta::new(&h, path, &t, &hash))
}

/// Passes plaintext on to a sink, feeding the results MAC and counting it.
struct MacWriter<'a> {
    mac: &'a mut super::object::HmacSha256,
    sink: &'a mut dyn Write,
    len: u64,
}

impl Write for MacWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.mac.update(buf);
        self.sink.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::test_util::run;

    #[test]
    fn crypt4gh_object_round_trip_and_tamper() {
        use crate::crypt4gh::{header, EditList};
        use crate::results::{Recipients, Run};
        let t = tempfile::tempdir().unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let me = SecretKey::generate().unwrap();
        let run = Run::new(
            t.path(),
            Recipients::Crypt4gh(vec![me.public_key()]),
            &key,
            [7; 32],
            "node1".into(),
            "42".into(),
        )
        .unwrap();
        let mut w = run.create().unwrap();
        assert!(w.partial_name().ends_with(".c4gh.partial"));
        let data: Vec<u8> = (0..150_000u32).map(|i| (i * 11) as u8).collect();
        w.write(&data).unwrap();
        let fin = w.finish(b"a/b.bin", 0o600).unwrap();
        let obj = t.path().join(&fin.object);
        let id = fin.object.strip_suffix(".c4gh").unwrap();
        let receipt = t.path().join(format!("{id}{RECEIPT_SUFFIX}"));
        // a plain Crypt4GH file of the data
        let mut plain = Vec::new();
        crate::crypt4gh::decrypt_stream(&std::fs::read(&obj).unwrap()[..], &me, &mut plain)
            .unwrap();
        assert_eq!(plain, data);
        let mut out = Vec::new();
        let m = decrypt_c4gh_object(&obj, &receipt, &me, &key, &[7; 32], &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            (m.path.as_slice(), m.mode, m.size),
            (&b"a/b.bin"[..], 0o600, 150_000)
        );
        assert_eq!(m.sha256, fin.sha256);
        let bad = |what: &str| {
            let r = decrypt_c4gh_object(&obj, &receipt, &me, &key, &[7; 32], &mut io::sink());
            assert!(matches!(r, Err(ReadError::Bad(_))), "{what}: {r:?}");
        };
        assert!(matches!(
            decrypt_c4gh_object(
                &obj,
                &receipt,
                &me,
                &SubKey::from_bytes([4; 32]),
                &[7; 32],
                &mut io::sink()
            ),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            decrypt_c4gh_object(
                &obj,
                &receipt,
                &SecretKey::generate().unwrap(),
                &key,
                &[7; 32],
                &mut io::sink()
            ),
            Err(ReadError::NoIdentity)
        ));
        // an edit list added with the public key only: other bytes shown
        let orig = std::fs::read(&obj).unwrap();
        let h = crate::crypt4gh::Header::parse(&orig, &me)
            .unwrap()
            .byte_len() as usize;
        let mallory = SecretKey::generate().unwrap();
        let e = EditList::new(vec![0, 1000]).unwrap();
        let p = header::build(&[], Some(&e), &[me.public_key()], &mallory).unwrap();
        let mut f = orig[..h].to_vec();
        f[12] += 1;
        f.extend_from_slice(&p[16..]);
        f.extend_from_slice(&orig[h..]);
        std::fs::write(&obj, &f).unwrap();
        bad("edit list injected");
        // cut at a segment boundary (Crypt4GH alone accepts it)
        std::fs::write(&obj, &orig[..h + crate::crypt4gh::CIPHER_SEGMENT_SIZE]).unwrap();
        bad("cut at a segment boundary");
        std::fs::write(&obj, &orig).unwrap();
        // a receipt forged with another results key
        let other = Run::new(
            t.path(),
            Recipients::Crypt4gh(vec![me.public_key()]),
            &SubKey::from_bytes([5; 32]),
            [7; 32],
            "n".into(),
            "1".into(),
        )
        .unwrap();
        let mut w = other.create().unwrap();
        w.write(&data).unwrap();
        let forged = w.finish(b"a/b.bin", 0o600).unwrap();
        let fid = forged.object.strip_suffix(".c4gh").unwrap();
        std::fs::copy(t.path().join(format!("{fid}{RECEIPT_SUFFIX}")), &receipt).unwrap();
        bad("forged receipt");
        std::fs::remove_file(&receipt).unwrap();
        bad("no receipt");
    }

    #[test]
    fn object_round_trip_and_tamper() {
        let t = tempfile::tempdir().unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let (run, ids) = run(t.path(), &key);
        let mut w = run.create().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        for c in data.chunks(4096) {
            w.write(c).unwrap();
        }
        let fin = w.finish(b"sub/result.bin", 0o640).unwrap();
        let obj = run.dir().join(&fin.object);
        let mut out = Vec::new();
        let m = decrypt_object(&obj, &ids, &key, &[7; 32], &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(m.path, b"sub/result.bin");
        assert_eq!((m.mode, m.size, m.sha256), (0o640, 200_000, fin.sha256));
        assert_eq!(m.run, run.info().run);
        // Another key (another archive's results key) cannot have written it.
        let other = SubKey::from_bytes([4; 32]);
        assert!(matches!(
            decrypt_object(&obj, &ids, &other, &[7; 32], &mut io::sink()),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            decrypt_object(&obj, &ids, &key, &[8; 32], &mut io::sink()),
            Err(ReadError::WrongArchive { .. })
        ));
        // Truncation and bit flips are refused.
        let bytes = std::fs::read(&obj).unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 17, bytes.len() / 2] {
            std::fs::write(&obj, &bytes[..cut]).unwrap();
            assert!(decrypt_object(&obj, &ids, &key, &[7; 32], &mut io::sink()).is_err());
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 100;
        flipped[at] ^= 1;
        std::fs::write(&obj, &flipped).unwrap();
        assert!(decrypt_object(&obj, &ids, &key, &[7; 32], &mut io::sink()).is_err());
    }
}
