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

use super::object::{mac_range, new_mac, ObjectHeader, Trailer, HEADER_LEN, MAX_PATH, TAIL_FIXED};
use crate::crypto::keys::{ct_eq, SubKey};
use crate::keys::Identities;
use crate::util::hex;

/// Why an object or manifest could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// None of the identities decrypts it.
    #[error("none of the given identities decrypts it (encrypted to someone else?)")]
    NoIdentity,
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
    let tag = mac.finalize().into_bytes();
    if !ct_eq(&tag, &pending[tag_at]) {
        return Err(ReadError::Bad(
            "failed authentication: not written by a job holding the archive's key, or modified"
                .into(),
        ));
    }
    sink.write_all(&pending[..data_here])?;
    let path = pending[data_here..data_here + t.path_len].to_vec();
    pending.zeroize();
    let sha256: [u8; 32] = hash.borrow_mut().clone().finalize().into();
    Ok(ObjectMeta {
        run: h.run,
        seq: h.seq,
        path,
        mode: t.mode,
        size: t.size,
        sha256,
    })
}

/// Reads the run id from the first chunk of an object that was never
/// finished (`.age.partial`), if it decrypts that far.
pub fn partial_run(file: &Path, ids: &Identities) -> Option<[u8; 16]> {
    let mut rd = age_reader(File::open(file).ok()?, ids).ok()?;
    let mut header = [0u8; HEADER_LEN];
    rd.read_exact(&mut header).ok()?;
    ObjectHeader::parse(&header).map(|h| h.run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::test_util::run;

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
