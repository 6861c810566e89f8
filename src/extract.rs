//! Extracting an archive (or parts of it) into a local directory.
//!
//! Safety rules: archive names are single validated components (no `/`, no
//! `..`), requested paths must be relative and free of `..`, nothing is ever
//! written through a symlink (files are created with `O_NOFOLLOW | O_EXCL`,
//! directories are checked to be real directories), existing files are never
//! overwritten, and each file is written to a temporary name and renamed into
//! place once it is complete and authenticated.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::crypto::index::{Kind, NodeId, ROOT};
use crate::crypto::{self, Archive, Source};
use crate::reference::{ExternalFiles, RefError};

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A requested path is absolute or contains `..`.
    #[error("refusing unsafe path {0:?}: give paths relative to the archive root, without ..")]
    UnsafePath(String),
    /// A requested path is not in the archive.
    #[error("{0:?} is not in the archive (see `hpcs-pack inspect -i …` for its contents)")]
    NotFound(String),
    /// The destination already has something at that name.
    #[error("{} already exists; extract into an empty directory", Hidden(.0))]
    Exists(PathBuf),
    /// A destination directory component is a symlink or not a directory.
    #[error("{} is not a directory (refusing to write through symlinks)", Hidden(.0))]
    NotADir(PathBuf),
    /// Writing failed.
    #[error("cannot write {}: {err}", Hidden(path))]
    Write {
        /// Path.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// The destination directory given is not a directory or cannot be
    /// created.
    #[error("destination {}: {why}", .path.display())]
    Dest {
        /// The directory given.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Reading an entry from the archive failed (authentication, I/O).
    #[error("entry {entry}{}: {err}", crate::log::Also(.name))]
    Entry {
        /// The entry number in the index.
        entry: NodeId,
        /// Its path (shown with `--log-names` only).
        name: Vec<u8>,
        /// Why.
        err: crypto::Error,
    },
    /// Reading the archive failed (authentication, I/O).
    #[error(transparent)]
    Archive(#[from] crypto::Error),
    /// Reading an external Crypt4GH file of a reference archive failed
    /// (changed, missing, a segment failed authentication).
    #[error(transparent)]
    Reference(#[from] RefError),
}

/// A destination path built from archive names: shown with `--log-names`
/// only (see [`crate::log`]).
struct Hidden<'a>(&'a Path);

impl std::fmt::Display for Hidden<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::log::Name(self.0.as_os_str().as_bytes()))
    }
}

/// Checks a user-supplied archive path and returns its components.
pub fn check_request(path: &str) -> Result<(), ExtractError> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(ExtractError::UnsafePath(path.into()));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(ExtractError::UnsafePath(path.into())),
        }
    }
    Ok(())
}

/// Summary of an extraction.
#[derive(Debug, Default)]
pub struct Extracted {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Extracts `paths` (everything when empty) of `archive` under `dest`;
/// `externals` are the archive's external Crypt4GH files (none for a plain
/// archive).
pub fn extract<S: Source>(
    archive: &Archive<S>,
    externals: &ExternalFiles,
    dest: &Path,
    paths: &[String],
    progress: &mut dyn FnMut(u64),
) -> Result<Extracted, ExtractError> {
    let tree = archive.tree();
    let mut roots = Vec::new();
    for p in paths {
        check_request(p)?;
        roots.push(
            tree.resolve(p)
                .ok_or_else(|| ExtractError::NotFound(p.clone()))?,
        );
    }
    if roots.is_empty() {
        roots.push(ROOT);
    }
    // Select entries: the requested ones, their ancestors, their descendants.
    let n = tree.len();
    let mut selected = vec![false; n];
    for &r in &roots {
        let mut cur = r;
        loop {
            selected[cur as usize] = true;
            if cur == ROOT {
                break;
            }
            cur = tree.node(cur).map_or(ROOT, |x| x.parent);
        }
    }
    // Parents come before children in the index, so one pass marks subtrees.
    let mut in_subtree = vec![false; n];
    for &r in &roots {
        in_subtree[r as usize] = true;
    }
    for id in 1..n {
        let parent = tree.node(id as NodeId).map_or(0, |x| x.parent) as usize;
        if in_subtree[parent] {
            in_subtree[id] = true;
        }
        if in_subtree[id] {
            selected[id] = true;
        }
    }

    let wr = |path: &Path| {
        let path = path.to_path_buf();
        move |err| ExtractError::Write { path, err }
    };
    ensure_dir(dest)?;
    let mut out = Extracted::default();
    let mut where_: HashMap<NodeId, PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, u16, i64, u32)> = Vec::new();
    let mut done_bytes = 0u64;
    let mut buf = vec![0u8; 4 << 20];
    where_.insert(ROOT, dest.to_path_buf());
    for id in 1..n as NodeId {
        if !selected[id as usize] {
            continue;
        }
        let node = tree.node(id).expect("id < len");
        let parent = where_[&node.parent].clone();
        let path = parent.join(std::ffi::OsStr::from_bytes(tree.name(id)));
        match &node.kind {
            Kind::Dir { .. } => {
                match fs::symlink_metadata(&path) {
                    Ok(md) if md.is_dir() && !md.file_type().is_symlink() => {}
                    Ok(_) => return Err(ExtractError::NotADir(path)),
                    Err(_) => fs::create_dir(&path).map_err(wr(&path))?,
                }
                dirs.push((path.clone(), node.mode, node.mtime, node.mtime_nsec));
                where_.insert(id, path);
            }
            Kind::Symlink { .. } => {
                let target = tree.symlink_target(id).unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path).map_err(
                    |e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            ExtractError::Exists(path.clone())
                        } else {
                            ExtractError::Write {
                                path: path.clone(),
                                err: e,
                            }
                        }
                    },
                )?;
                set_times(&path, node.mtime, node.mtime_nsec, false);
            }
            Kind::File { .. } | Kind::External { .. } => {
                let (inode, size) = match node.kind {
                    Kind::File { inode, size, .. } => (inode, size),
                    _ => (id, node.size()),
                };
                if fs::symlink_metadata(&path).is_ok() {
                    return Err(ExtractError::Exists(path));
                }
                if inode != id {
                    if let Some(first) = where_.get(&inode) {
                        fs::hard_link(first, &path).map_err(wr(&path))?;
                        continue;
                    }
                }
                let tmp = parent.join(format!(".{}.hpcs-tmp", std::process::id()));
                let _ = fs::remove_file(&tmp);
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(wr(&tmp))?;
                let source = FileData {
                    archive,
                    externals,
                    id,
                    kind: &node.kind,
                };
                let r = copy_file(&source, size, &mut f, &mut buf, &mut |n| {
                    done_bytes += n;
                    progress(done_bytes)
                });
                if let Err(e) = r {
                    drop(f);
                    let _ = fs::remove_file(&tmp);
                    return Err(
                        e.into_extract(id, tree.path(id), |err| ExtractError::Write { path, err })
                    );
                }
                f.set_permissions(fs::Permissions::from_mode(node.mode.into()))
                    .map_err(wr(&tmp))?;
                drop(f);
                set_times(&tmp, node.mtime, node.mtime_nsec, true);
                // Never replaces anything that appeared meanwhile: the name
                // is taken atomically (renameat2 RENAME_NOREPLACE).
                if let Err(e) = crate::place::rename_noreplace(&tmp, &path) {
                    let _ = fs::remove_file(&tmp);
                    return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                        ExtractError::Exists(path)
                    } else {
                        ExtractError::Write { path, err: e }
                    });
                }
                out.files += 1;
                out.bytes += size;
                where_.insert(id, path);
            }
        }
    }
    // Directory modes and times last, deepest first.
    for (path, mode, s, ns) in dirs.into_iter().rev() {
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode.into()));
        set_times(&path, s, ns, true);
    }
    Ok(out)
}

enum CopyError {
    Archive(crypto::Error),
    Reference(RefError),
    Write(io::Error),
}

impl CopyError {
    /// The error of copying entry `entry` (path `name`, shown with
    /// `--log-names` only); `write` says what a failed write is.
    fn into_extract(
        self,
        entry: NodeId,
        name: Vec<u8>,
        write: impl FnOnce(io::Error) -> ExtractError,
    ) -> ExtractError {
        match self {
            CopyError::Archive(err) => ExtractError::Entry { entry, name, err },
            CopyError::Reference(e) => ExtractError::Reference(e),
            CopyError::Write(err) => write(err),
        }
    }
}

/// Where a file's bytes come from: the data stream, or an external file.
struct FileData<'a, S> {
    archive: &'a Archive<S>,
    externals: &'a ExternalFiles,
    id: NodeId,
    kind: &'a Kind,
}

impl<S: Source> FileData<'_, S> {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, CopyError> {
        match self.kind {
            Kind::External { ext, .. } => self
                .externals
                .get(*ext)
                .ok_or(CopyError::Reference(RefError::Invalid(
                    "an external file of the archive was not opened",
                )))?
                .read_at(self.archive, off, buf)
                .map_err(CopyError::Reference),
            _ => self
                .archive
                .read_at(self.id, off, buf)
                .map_err(CopyError::Archive),
        }
    }
}

fn copy_file<S: Source>(
    source: &FileData<'_, S>,
    size: u64,
    w: &mut dyn Write,
    buf: &mut [u8],
    progress: &mut dyn FnMut(u64),
) -> Result<(), CopyError> {
    let mut off = 0u64;
    let mut used = 0usize;
    let result = (|| {
        while off < size {
            let n = source.read_at(off, buf)?;
            if n == 0 {
                return Err(CopyError::Archive(crypto::Error::BadRequest));
            }
            used = used.max(n);
            w.write_all(&buf[..n]).map_err(CopyError::Write)?;
            off += n as u64;
            progress(n as u64);
        }
        Ok(())
    })();
    // Wipe only the plaintext this file left in the buffer (a full 4 MiB wipe
    // per small file would dominate extracting millions of them).
    zeroize::Zeroize::zeroize(&mut buf[..used]);
    result
}

/// Writes file `id` to `w` (for `cat`), authenticating each piece before it
/// is released.
pub fn cat<S: Source>(
    archive: &Archive<S>,
    externals: &ExternalFiles,
    id: NodeId,
    w: &mut dyn Write,
) -> Result<u64, ExtractError> {
    let node = archive.tree().node(id).ok_or(crypto::Error::NotAFile)?;
    if !matches!(node.kind, Kind::File { .. } | Kind::External { .. }) {
        return Err(crypto::Error::NotAFile.into());
    }
    let size = node.size();
    let source = FileData {
        archive,
        externals,
        id,
        kind: &node.kind,
    };
    let mut buf = vec![0u8; 1 << 20];
    copy_file(&source, size, w, &mut buf, &mut |_| {}).map_err(|e| {
        e.into_extract(id, archive.tree().path(id), |err| ExtractError::Dest {
            path: PathBuf::from("<stdout>"),
            why: format!("cannot write: {err}"),
        })
    })?;
    Ok(size)
}

fn ensure_dir(dest: &Path) -> Result<(), ExtractError> {
    match fs::symlink_metadata(dest) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(ExtractError::Dest {
            path: dest.to_path_buf(),
            why: "not a directory (refusing to write through symlinks)".into(),
        }),
        Err(_) => fs::create_dir_all(dest).map_err(|err| ExtractError::Dest {
            path: dest.to_path_buf(),
            why: format!("cannot create it: {err}"),
        }),
    }
}

fn set_times(path: &Path, s: i64, ns: u32, follow: bool) {
    let t = libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: ns as libc::c_long,
    };
    let times = [t, t];
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: `c` is a valid NUL-terminated path and `times` two valid
    // timespecs; utimensat reads both and keeps no pointer.
    unsafe {
        libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        for ok in ["a", "a/b", "./a", "a/./b", ""] {
            assert!(check_request(ok).is_ok(), "{ok}");
        }
        for bad in ["/etc", "../x", "a/../b", "a/.."] {
            assert!(check_request(bad).is_err(), "{bad}");
        }
    }
}
