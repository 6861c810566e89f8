//! Rewriting an archive's header (rewrap, Vault registration): the new
//! header followed by the old archive's data and index regions, copied byte
//! for byte into a temp file that is synced and renamed into place, so
//! `out` is either the old archive or the complete new one, never a mix.
//! The data region does not change, so no chunk is decrypted or re-sealed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::crypto::{DataKey, FileSource, Header, SealedArchive};
use crate::pack::TempOut;

/// Why a header could not be rewritten; `out` is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The source archive (or the result, to check it) cannot be opened.
    #[error("cannot open {}: {err}", path.display())]
    Open {
        /// The archive.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The source archive cannot be positioned at its data region.
    #[error("{0}")]
    Seek(std::io::Error),
    /// Writing the new archive failed.
    #[error("cannot write {}: {err}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The source is shorter than its old header says.
    #[error("{} changed while its header was rewritten; try again", .0.display())]
    Changed(PathBuf),
    /// `stop` was set before the rename.
    #[error("interrupted; the archive was not changed")]
    Interrupted,
    /// The result does not open with the key (it is in place, though).
    #[error("{}: {err}", path.display())]
    Check {
        /// The result.
        path: PathBuf,
        /// Why.
        err: crate::crypto::Error,
    },
}

/// Writes `src`'s data and index regions after header `new` (replacing
/// `old`) to `out` atomically: temp file, byte-for-byte copy, sync, rename
/// (replacing an existing `out` only if `replace`). `stop` (set by a signal)
/// is checked before the rename. Then checks that the result opens with
/// `key`.
pub fn write_with_header(
    src: &Path,
    old: &Header,
    new: &Header,
    out: &Path,
    replace: bool,
    key: &DataKey,
    stop: &AtomicBool,
) -> Result<(), RewriteError> {
    let out_err = |err: std::io::Error| RewriteError::Write {
        path: out.to_path_buf(),
        err,
    };
    let tmp = TempOut::create(out).map_err(out_err)?;
    {
        let mut w = tmp.file();
        w.write_all(&new.to_bytes()).map_err(out_err)?;
        let mut file = std::fs::File::open(src).map_err(|err| RewriteError::Open {
            path: src.to_path_buf(),
            err,
        })?;
        file.seek(SeekFrom::Start(old.data_offset()))
            .map_err(RewriteError::Seek)?;
        let want = old.archive_len() - old.data_offset();
        // std::io::copy uses copy_file_range between files on Linux.
        let n = std::io::copy(&mut (&mut file).take(want), &mut w).map_err(out_err)?;
        if n != want {
            return Err(RewriteError::Changed(src.to_path_buf()));
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Err(RewriteError::Interrupted);
    }
    tmp.commit(out, replace).map_err(out_err)?;
    // Check what we wrote opens with the same key before reporting success.
    let check = |err| RewriteError::Check {
        path: out.to_path_buf(),
        err,
    };
    let file = FileSource::open(out).map_err(|err| RewriteError::Open {
        path: out.to_path_buf(),
        err,
    })?;
    SealedArchive::open(file)
        .map_err(check)?
        .unlock(key)
        .map_err(check)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Stanza, WriteOptions};

    fn stanza(b: &[u8]) -> Stanza {
        Stanza {
            kind: 99,
            body: b.to_vec(),
        }
    }

    /// A real archive of two small files, and its header.
    fn archive(dir: &Path, key: &DataKey) -> (PathBuf, Header) {
        let src = dir.join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), b"alpha").unwrap();
        std::fs::write(src.join("b"), vec![7u8; 70_000]).unwrap();
        let opts = WriteOptions::default();
        let scan = crate::pack::scan(&src, opts.chunk_size).unwrap();
        let p = dir.join("a.hpcs");
        let id = crate::crypto::writer::new_archive_id().unwrap();
        let stop = AtomicBool::new(false);
        let stanzas = vec![stanza(b"a")];
        crate::pack::write(
            &scan,
            &p,
            false,
            &opts,
            key,
            id,
            stanzas,
            &mut |_| {},
            &stop,
        )
        .unwrap();
        let h = SealedArchive::open(FileSource::open(&p).unwrap())
            .unwrap()
            .header()
            .clone();
        (p, h)
    }

    fn go() -> AtomicBool {
        AtomicBool::new(false)
    }

    #[test]
    fn new_header_same_regions() {
        let d = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap();
        let (p, old) = archive(d.path(), &key);
        let before = std::fs::read(&p).unwrap();
        let new = old
            .with_stanzas(&key, vec![stanza(b"a longer stanza")])
            .unwrap();
        let out = d.path().join("b.hpcs");
        write_with_header(&p, &old, &new, &out, false, &key, &go()).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let (hlen, old_hlen) = (new.to_bytes().len(), old.data_offset() as usize);
        assert_eq!(bytes[..hlen], new.to_bytes()[..]);
        assert_eq!(bytes[hlen..], before[old_hlen..]);
        let sealed = SealedArchive::open(FileSource::open(&out).unwrap()).unwrap();
        assert_eq!(sealed.header().stanzas, [stanza(b"a longer stanza")]);

        // An existing output is kept unless replacing is asked for.
        let e = write_with_header(&p, &old, &new, &out, false, &key, &go()).unwrap_err();
        assert!(matches!(e, RewriteError::Write { .. }), "{e}");
        write_with_header(&p, &old, &new, &p, true, &key, &go()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
    }

    #[test]
    fn result_is_checked_with_the_key() {
        let d = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap();
        let (p, old) = archive(d.path(), &key);
        let new = old.with_stanzas(&key, vec![stanza(b"b")]).unwrap();
        let other = DataKey::generate().unwrap();
        let out = d.path().join("b.hpcs");
        let e = write_with_header(&p, &old, &new, &out, false, &other, &go()).unwrap_err();
        assert!(
            matches!(&e, RewriteError::Check { path, err: crate::crypto::Error::WrongKey } if *path == out),
            "{e}"
        );
    }

    #[test]
    fn short_source_or_stop_leaves_the_output_alone() {
        let d = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap();
        let (p, old) = archive(d.path(), &key);
        let before = std::fs::read(&p).unwrap();
        let new = old.with_stanzas(&key, vec![stanza(b"b")]).unwrap();
        let stop = AtomicBool::new(true);
        let e = write_with_header(&p, &old, &new, &p, true, &key, &stop).unwrap_err();
        assert!(matches!(e, RewriteError::Interrupted), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);

        std::fs::write(&p, &before[..before.len() - 1]).unwrap();
        let e = write_with_header(&p, &old, &new, &p, true, &key, &go()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} changed while its header was rewritten; try again",
                p.display()
            )
        );
        assert_eq!(std::fs::read(&p).unwrap().len(), before.len() - 1);
        // No temp file is left behind (only src/ and the archive).
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);

        let (gone, o) = (d.path().join("gone"), d.path().join("o"));
        let e = write_with_header(&gone, &old, &new, &o, false, &key, &go()).unwrap_err();
        assert!(
            matches!(&e, RewriteError::Open { path, .. } if *path == gone),
            "{e}"
        );
        assert!(!o.exists());
    }
}
