//! Packing a local directory or file into an archive (the writer's front end).
//!
//! Walks the source without following symlinks, builds the index with
//! [`TreeBuilder`], then streams file contents into
//! [`crate::crypto::write_archive`] in layout order. The archive is written
//! to a temporary file next to the output and renamed into place only when
//! complete and synced, so an interrupted pack never leaves a partial archive
//! under the final name.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::crypto::index::{Extent, NodeId, ROOT};
use crate::crypto::{self, DataKey, Header, Stanza, TreeBuilder, WriteOptions};

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The source (or something in it) cannot be read.
    #[error("cannot read {path}: {err}")]
    Source {
        /// Path.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// A source file changed size while it was being packed.
    #[error("{path} changed while it was being packed ({what}); pack again when it is stable")]
    Changed {
        /// Path.
        path: PathBuf,
        /// What changed.
        what: &'static str,
    },
    /// An entry cannot be represented.
    #[error("cannot pack {path}: {why}")]
    Unsupported {
        /// Path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The output already exists.
    #[error("{0} already exists; choose another name or pass --force to replace it")]
    OutputExists(PathBuf),
    /// Writing the output failed.
    #[error("cannot write {path}: {err}")]
    Output {
        /// Path.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// Interrupted by a signal.
    #[error("interrupted; nothing was written to {0}")]
    Interrupted(PathBuf),
    /// A format-level failure.
    #[error(transparent)]
    Format(#[from] crypto::Error),
}

/// A non-fatal note about the source (skipped entries, dropped bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// The scanned source: index plus where each extent's bytes come from.
pub struct Scan {
    /// Serialised index.
    pub index: Vec<u8>,
    /// Extents in stream order.
    pub extents: Vec<Extent>,
    /// Data stream length.
    pub data_len: u64,
    /// Source path of each file entry, by node id.
    pub paths: HashMap<NodeId, PathBuf>,
    /// Things skipped or changed, for the user.
    pub warnings: Vec<Warning>,
    /// Entries in the index.
    pub entries: usize,
    /// Regular files (hard links counted once).
    pub files: usize,
}

fn mtime(md: &fs::Metadata) -> (i64, u32) {
    (md.mtime(), md.mtime_nsec().clamp(0, 999_999_999) as u32)
}

/// Walks `src` (a directory, or a single file that becomes the archive's only
/// entry) and lays out the archive for `chunk_size`.
pub fn scan(src: &Path, chunk_size: u32) -> Result<Scan, PackError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |err| PackError::Source { path, err }
    };
    let md = fs::symlink_metadata(src).map_err(err(src))?;
    let mut warnings = Vec::new();
    let mut paths = HashMap::new();
    let mut links: HashMap<(u64, u64), NodeId> = HashMap::new();
    let mut suid = 0usize;
    let mut files = 0usize;
    let mut b;
    let perm = |md: &fs::Metadata, suid: &mut usize| {
        let m = md.mode();
        if m & 0o6000 != 0 {
            *suid += 1;
        }
        (m & 0o1777) as u16
    };
    if md.is_dir() {
        let (s, ns) = mtime(&md);
        b = TreeBuilder::new(perm(&md, &mut suid), s, ns);
        let mut stack: Vec<(PathBuf, NodeId)> = vec![(src.to_path_buf(), ROOT)];
        while let Some((dir, id)) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .map_err(err(&dir))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(err(&dir))?;
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let path = dir.join(&name);
                let md = fs::symlink_metadata(&path).map_err(err(&path))?;
                let nb = name.as_bytes();
                let ft = md.file_type();
                let added = if ft.is_dir() {
                    let child = b.dir(id, nb, perm(&md, &mut suid), mtime(&md));
                    if let Ok(c) = child {
                        subdirs.push((path.clone(), c));
                    }
                    child.map(|_| ())
                } else if ft.is_file() {
                    let key = (md.dev(), md.ino());
                    match links.get(&key) {
                        Some(&first) if md.nlink() > 1 => b.hard_link(id, nb, first).map(|_| ()),
                        _ => {
                            files += 1;
                            let node = b.file(id, nb, perm(&md, &mut suid), mtime(&md), md.len());
                            if let Ok(n) = node {
                                if md.nlink() > 1 {
                                    links.insert(key, n);
                                }
                                paths.insert(n, path.clone());
                            }
                            node.map(|_| ())
                        }
                    }
                } else if ft.is_symlink() {
                    let target = fs::read_link(&path).map_err(err(&path))?;
                    b.symlink(id, nb, mtime(&md), target.as_os_str().as_bytes())
                        .map(|_| ())
                } else {
                    warnings.push(Warning(format!(
                        "skipped {} (devices, fifos and sockets are not packed)",
                        path.display()
                    )));
                    Ok(())
                };
                added.map_err(|e| PackError::Unsupported {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            // Visit subdirectories in name order (stack pops the last first).
            stack.extend(subdirs.into_iter().rev());
        }
    } else if md.is_file() {
        let name = src.file_name().ok_or_else(|| PackError::Unsupported {
            path: src.to_path_buf(),
            why: "no file name".into(),
        })?;
        b = TreeBuilder::new(0o755, mtime(&md).0, mtime(&md).1);
        let n = b
            .file(
                ROOT,
                name.as_bytes(),
                perm(&md, &mut suid),
                mtime(&md),
                md.len(),
            )
            .map_err(|e| PackError::Unsupported {
                path: src.to_path_buf(),
                why: e.to_string(),
            })?;
        files = 1;
        paths.insert(n, src.to_path_buf());
    } else {
        return Err(PackError::Unsupported {
            path: src.to_path_buf(),
            why: "the source must be a directory or a regular file".into(),
        });
    }
    if suid > 0 {
        warnings.push(Warning(format!(
            "dropped setuid/setgid bits from {suid} entries (archives never carry them)"
        )));
    }
    let entries = b.len();
    let (index, extents, data_len) = b.finish(chunk_size);
    Ok(Scan {
        index,
        extents,
        data_len,
        paths,
        warnings,
        entries,
        files,
    })
}

/// Feeds the data stream from the source files in extent order.
struct Feeder<'a> {
    scan: &'a Scan,
    next: usize,
    pos: u64,
    cur: Option<(File, PathBuf, u64)>, // file, path, bytes left
    stop: &'a AtomicBool,
}

impl Feeder<'_> {
    fn fill(&mut self, mut buf: &mut [u8]) -> Result<(), PackError> {
        while !buf.is_empty() {
            if self.stop.load(Ordering::Relaxed) {
                return Err(PackError::Interrupted(PathBuf::new()));
            }
            if let Some((file, path, left)) = &mut self.cur {
                if *left == 0 {
                    // The file must end exactly here.
                    let mut probe = [0u8; 1];
                    let n = read_retry(file, &mut probe).map_err(|err| PackError::Source {
                        path: path.clone(),
                        err,
                    })?;
                    if n != 0 {
                        return Err(PackError::Changed {
                            path: path.clone(),
                            what: "it grew",
                        });
                    }
                    self.cur = None;
                    continue;
                }
                let want = (buf.len() as u64).min(*left) as usize;
                let n = read_retry(file, &mut buf[..want]).map_err(|err| PackError::Source {
                    path: path.clone(),
                    err,
                })?;
                if n == 0 {
                    return Err(PackError::Changed {
                        path: path.clone(),
                        what: "it shrank",
                    });
                }
                *left -= n as u64;
                self.pos += n as u64;
                buf = &mut buf[n..];
                continue;
            }
            // Padding up to the next extent (or the end of the stream).
            let next_start = self
                .scan
                .extents
                .get(self.next)
                .map_or(self.scan.data_len, |e| e.offset);
            if self.pos < next_start {
                let n = ((next_start - self.pos) as usize).min(buf.len());
                buf[..n].fill(0);
                self.pos += n as u64;
                buf = &mut buf[n..];
                continue;
            }
            let Some(e) = self.scan.extents.get(self.next) else {
                // fill() is never asked for more than data_len bytes.
                return Err(PackError::Format(crypto::Error::BadRequest));
            };
            self.next += 1;
            let path = self.scan.paths[&e.node].clone();
            let file = File::open(&path).map_err(|err| PackError::Source {
                path: path.clone(),
                err,
            })?;
            self.cur = Some((file, path, e.size));
        }
        Ok(())
    }

    /// After the last byte: the last file must have ended exactly.
    fn finish(&mut self) -> Result<(), PackError> {
        if let Some((file, path, 0)) = &mut self.cur {
            let mut probe = [0u8; 1];
            if read_retry(file, &mut probe).map_err(|err| PackError::Source {
                path: path.clone(),
                err,
            })? != 0
            {
                return Err(PackError::Changed {
                    path: path.clone(),
                    what: "it grew",
                });
            }
        }
        Ok(())
    }
}

fn read_retry(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// What a pack produced.
#[derive(Debug)]
pub struct Packed {
    /// The header written.
    pub header: Header,
    /// Bytes of the archive.
    pub archive_len: u64,
}

/// Encrypts `scan` into `out` atomically (temp file + fsync + rename).
/// `stop` aborts the pack (the temp file is removed) when set, e.g. by a
/// signal handler.
#[allow(clippy::too_many_arguments)]
pub fn write(
    scan: &Scan,
    out: &Path,
    force: bool,
    opts: &WriteOptions,
    key: &DataKey,
    archive_id: [u8; 32],
    stanzas: Vec<Stanza>,
    progress: &mut dyn FnMut(u64),
    stop: &AtomicBool,
) -> Result<Packed, PackError> {
    let mut feeder = Feeder {
        scan,
        next: 0,
        pos: 0,
        cur: None,
        stop,
    };
    let stream = (&scan.index[..], scan.data_len);
    write_file(
        out,
        force,
        opts,
        key,
        archive_id,
        stanzas,
        stream,
        &mut feeder,
        progress,
        stop,
    )
}

/// Produces the plaintext of a data stream for [`write_file`].
pub trait Filler: Send {
    /// What goes wrong producing it.
    type Error: From<PackError> + Send;
    /// Fills `buf` completely with the next bytes of the stream.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// After the last byte, before the archive is committed: checks that
    /// the sources ended as expected.
    fn finish(&mut self) -> Result<(), Self::Error>;
}

impl Filler for Feeder<'_> {
    type Error = PackError;
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PackError> {
        Feeder::fill(self, buf)
    }
    fn finish(&mut self) -> Result<(), PackError> {
        Feeder::finish(self)
    }
}

/// Writes an archive with `index` and a data stream of `data_len` bytes from
/// `filler` to `out` atomically: a temporary file next to it, synced and
/// renamed into place only when complete, and never when `stop` was set
/// meanwhile (then the error is [`PackError::Interrupted`]). An existing
/// `out` is refused unless `force`. The filler's own errors come back as
/// they are.
#[allow(clippy::too_many_arguments)]
pub fn write_file<F: Filler>(
    out: &Path,
    force: bool,
    opts: &WriteOptions,
    key: &DataKey,
    archive_id: [u8; 32],
    stanzas: Vec<Stanza>,
    (index, data_len): (&[u8], u64),
    filler: &mut F,
    progress: &mut dyn FnMut(u64),
    stop: &AtomicBool,
) -> Result<Packed, F::Error> {
    let out_err = |err| PackError::Output {
        path: out.to_path_buf(),
        err,
    };
    let interrupted = || F::Error::from(PackError::Interrupted(out.to_path_buf()));
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(PackError::OutputExists(out.to_path_buf()).into());
    }
    let tmp = TempOut::create(out).map_err(out_err)?;
    let mut fill_err: Option<F::Error> = None;
    let result = {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.file());
        crypto::write_archive(
            &mut w,
            opts,
            key,
            archive_id,
            stanzas,
            index,
            data_len,
            &mut |buf: &mut [u8]| {
                filler.fill(buf).map_err(|e| {
                    fill_err = Some(e);
                    io::Error::other("the data stream could not be filled")
                })
            },
            progress,
        )
    };
    if stop.load(Ordering::Relaxed) {
        return Err(interrupted());
    }
    if let Some(e) = fill_err {
        return Err(e);
    }
    let header = result.map_err(|e| match e {
        crypto::Error::Io(err) => out_err(err),
        e => PackError::Format(e),
    })?;
    filler.finish()?;
    if stop.load(Ordering::Relaxed) {
        return Err(interrupted());
    }
    let archive_len = header.archive_len();
    tmp.commit(out, force).map_err(out_err)?;
    Ok(Packed {
        header,
        archive_len,
    })
}

/// A temporary output file next to its final name; removed unless committed.
pub struct TempOut {
    path: PathBuf,
    file: Option<File>,
    synced: bool,
}

impl TempOut {
    /// Creates `.<name>.tmp-<pid>-<random>` in the output's directory.
    pub fn create(out: &Path) -> io::Result<TempOut> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "output has no file name")
        })?;
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).map_err(io::Error::other)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            crate::util::hex(&rnd)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        Ok(TempOut {
            path: tmp,
            file: Some(file),
            synced: false,
        })
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("temp file is open until commit")
    }

    /// The temp file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the temp file durable (fsync) now, so that a later
    /// [`commit`](Self::commit) is only the rename.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.synced {
            self.file().sync_all()?;
            self.synced = true;
        }
        Ok(())
    }

    /// Keeps the temp file where it is (it is not removed) and returns its
    /// path: for a caller that cannot place it but must not lose it.
    pub fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.path)
    }

    /// Syncs and renames onto `out` (refusing to replace it unless `replace`).
    pub fn commit(self, out: &Path, replace: bool) -> io::Result<()> {
        self.rename(out, replace).map_err(|(_, e)| e)
    }

    /// [`commit`](Self::commit) that hands the temp file back when it
    /// fails, still removed on drop unless [`keep`](Self::keep) is called.
    pub fn rename(mut self, out: &Path, replace: bool) -> Result<(), (TempOut, io::Error)> {
        if let Err(e) = self.sync() {
            return Err((self, e));
        }
        match self.place(out, replace) {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }

    fn place(&mut self, out: &Path, replace: bool) -> io::Result<()> {
        drop(self.file.take());
        if replace {
            fs::rename(&self.path, out)?;
        } else {
            // renameat2(RENAME_NOREPLACE) (or a hard link) refuses an
            // existing name atomically: never check, then rename.
            match crate::place::rename_noreplace(&self.path, out) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "output appeared while packing",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}
