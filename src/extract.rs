//! Extracting an archive (or parts of it) into a local directory.
//!
//! Safety rules: archive names are single validated components (no `/`, no
//! `..`), requested paths must be relative and free of `..`, nothing is ever
//! written through a symlink and nothing outside the destination is touched:
//! the destination is opened once (`O_DIRECTORY|O_NOFOLLOW`), each directory
//! is made with `mkdirat` and opened with `openat(O_DIRECTORY|O_NOFOLLOW)`
//! relative to its parent's descriptor, and files, symlinks and links are
//! created relative to their directory's descriptor (`src/place.rs`), so a
//! symlink planted anywhere under the destination, before or during the
//! extraction, is an error, never followed. Existing files are never
//! overwritten: each file is written to a temporary name
//! (`O_CREAT|O_EXCL|O_NOFOLLOW`) and renamed into place with
//! `renameat2(RENAME_NOREPLACE)` once it is complete and authenticated.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

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
    /// A directory that already exists under the destination belongs to
    /// another user or is world-writable ([`crate::place::unsafe_dir`]).
    #[error("{} {why}: others could read, move or replace what is extracted there; extract into a directory only you (and your group) can write", Hidden(.path))]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
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
    // DEST is opened once; everything below it is made and opened relative
    // to its parent's descriptor, never following a symlink (module doc).
    let dest_fd = crate::place::open_dir(dest, false).map_err(|e| ExtractError::Dest {
        path: dest.to_path_buf(),
        why: match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                "not a directory (refusing to write through symlinks)".into()
            }
            _ => format!("cannot open it: {e}"),
        },
    })?;
    let dest_why = |why: String| ExtractError::Dest {
        path: dest.to_path_buf(),
        why,
    };
    match crate::place::unsafe_dir(&dest_fd) {
        Ok(None) => {}
        Ok(Some(why)) => return Err(dest_why(format!(
            "{why}: others could read, move or replace what is extracted there; extract into a directory only you (and your group) can write"
        ))),
        Err(e) => return Err(dest_why(format!("cannot check it: {e}"))),
    }
    let mut open = Dirs::new(tree, dest_fd);
    let mut out = Extracted::default();
    let mut where_: HashMap<NodeId, PathBuf> = HashMap::new();
    let mut dirs: Vec<(NodeId, u16, i64, u32)> = Vec::new();
    let mut done_bytes = 0u64;
    let mut buf = vec![0u8; 4 << 20];
    where_.insert(ROOT, dest.to_path_buf());
    let tmp_name = std::ffi::OsString::from(format!(".{}.hpcs-tmp", std::process::id()));
    for id in 1..n as NodeId {
        if !selected[id as usize] {
            continue;
        }
        let node = tree.node(id).expect("id < len");
        let name = std::ffi::OsStr::from_bytes(tree.name(id));
        let parent = where_[&node.parent].clone();
        let path = parent.join(name);
        let pfd = open.get(node.parent).map_err(|e| not_a_dir(&parent, e))?;
        match &node.kind {
            Kind::Dir { .. } => {
                let fd = crate::place::make_dir_at(&pfd, name).map_err(|e| not_a_dir(&path, e))?;
                // One that was there already must be as private as DEST.
                match crate::place::unsafe_dir(&fd) {
                    Ok(None) => {}
                    Ok(Some(why)) => return Err(ExtractError::UnsafeDir { path, why }),
                    Err(err) => return Err(ExtractError::Write { path, err }),
                }
                open.insert(id, fd);
                dirs.push((id, node.mode, node.mtime, node.mtime_nsec));
                where_.insert(id, path);
            }
            Kind::Symlink { .. } => {
                let target = tree.symlink_target(id).unwrap_or_default();
                crate::place::symlink_at(std::ffi::OsStr::from_bytes(target), &pfd, name).map_err(
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
                set_times_at(&pfd, name, node.mtime, node.mtime_nsec);
            }
            Kind::File { .. } | Kind::External { .. } => {
                let (inode, size) = match node.kind {
                    Kind::File { inode, size, .. } => (inode, size),
                    _ => (id, node.size()),
                };
                if crate::place::exists_at(&pfd, name) {
                    return Err(ExtractError::Exists(path));
                }
                if inode != id && where_.contains_key(&inode) {
                    let first = tree.node(inode).expect("an earlier entry");
                    let from = open
                        .get(first.parent)
                        .map_err(|e| not_a_dir(&where_[&first.parent], e))?;
                    crate::place::hard_link_at(
                        &from,
                        std::ffi::OsStr::from_bytes(tree.name(inode)),
                        &pfd,
                        name,
                    )
                    .map_err(wr(&path))?;
                    continue;
                }
                let tmp = parent.join(&tmp_name);
                let _ = crate::place::remove_file_at(&pfd, &tmp_name);
                let mut f =
                    crate::place::create_file_at(&pfd, &tmp_name, 0o600).map_err(wr(&tmp))?;
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
                    let _ = crate::place::remove_file_at(&pfd, &tmp_name);
                    return Err(
                        e.into_extract(id, tree.path(id), |err| ExtractError::Write { path, err })
                    );
                }
                if let Err(e) = f.set_permissions(fs::Permissions::from_mode(node.mode.into())) {
                    drop(f);
                    let _ = crate::place::remove_file_at(&pfd, &tmp_name);
                    return Err(wr(&tmp)(e));
                }
                set_fd_times(&f, node.mtime, node.mtime_nsec);
                drop(f);
                // Never replaces anything that appeared meanwhile: the name
                // is taken atomically (renameat2 RENAME_NOREPLACE).
                if let Err(e) = crate::place::rename_noreplace_at(&pfd, &tmp_name, name) {
                    let _ = crate::place::remove_file_at(&pfd, &tmp_name);
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
    for (id, mode, s, ns) in dirs.into_iter().rev() {
        if let Ok(fd) = open.get(id).and_then(|fd| fd.try_clone()) {
            let f = File::from(fd);
            let _ = f.set_permissions(fs::Permissions::from_mode(mode.into()));
            set_fd_times(&f, s, ns);
        }
    }
    Ok(out)
}

/// Directories open during an extraction: DEST, and each directory made
/// under it, opened relative to its parent without following a symlink
/// (`place::make_dir_at`, `place::open_dir_at`). At most [`OPEN_DIRS`] stay
/// open; one closed meanwhile is opened again from its parent the same way.
struct Dirs<'t> {
    tree: &'t crypto::Tree,
    open: HashMap<NodeId, Rc<OwnedFd>>,
}

/// Directory descriptors an extraction keeps open at most.
const OPEN_DIRS: usize = 256;

impl<'t> Dirs<'t> {
    fn new(tree: &'t crypto::Tree, dest: OwnedFd) -> Dirs<'t> {
        let mut open = HashMap::new();
        open.insert(ROOT, Rc::new(dest));
        Dirs { tree, open }
    }

    fn insert(&mut self, id: NodeId, fd: OwnedFd) -> Rc<OwnedFd> {
        if self.open.len() >= OPEN_DIRS {
            self.open.retain(|&k, _| k == ROOT);
        }
        let fd = Rc::new(fd);
        self.open.insert(id, Rc::clone(&fd));
        fd
    }

    /// Directory `id` (already made by this extraction), open.
    fn get(&mut self, id: NodeId) -> io::Result<Rc<OwnedFd>> {
        if let Some(fd) = self.open.get(&id) {
            return Ok(Rc::clone(fd));
        }
        let node = self
            .tree
            .node(id)
            .ok_or_else(|| io::Error::other("no such entry"))?;
        let parent = self.get(node.parent)?;
        let fd =
            crate::place::open_dir_at(&parent, std::ffi::OsStr::from_bytes(self.tree.name(id)))?;
        Ok(self.insert(id, fd))
    }
}

/// The error of making or opening directory `path` of the destination: a
/// symlink or a non-directory there is [`ExtractError::NotADir`].
fn not_a_dir(path: &Path, e: io::Error) -> ExtractError {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => ExtractError::NotADir(path.to_path_buf()),
        _ => ExtractError::Write {
            path: path.to_path_buf(),
            err: e,
        },
    }
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
        // Private until the user says otherwise: plaintext goes in.
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dest)
            .map_err(|err| ExtractError::Dest {
                path: dest.to_path_buf(),
                why: format!("cannot create it: {err}"),
            }),
    }
}

fn timespecs(s: i64, ns: u32) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: ns as libc::c_long,
    };
    [t, t]
}

/// Sets the times of `name` in `dir` itself (a symlink is not followed).
fn set_times_at(dir: &OwnedFd, name: &std::ffi::OsStr, s: i64, ns: u32) {
    let times = timespecs(s, ns);
    let Ok(c) = std::ffi::CString::new(name.as_bytes()) else {
        return;
    };
    // SAFETY: a valid directory fd, `c` a valid NUL-terminated name and
    // `times` two valid timespecs; utimensat reads them and keeps no pointer.
    unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

/// Sets the times of an open file or directory.
fn set_fd_times(f: &File, s: i64, ns: u32) {
    let times = timespecs(s, ns);
    // SAFETY: a valid open descriptor and two valid timespecs; futimens
    // reads them and keeps no pointer.
    unsafe {
        libc::futimens(f.as_raw_fd(), times.as_ptr());
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

    /// An archive of `src` in `dir`, unlocked.
    fn archive_of(src: &Path, dir: &Path) -> Archive<crypto::FileSource> {
        use std::sync::atomic::AtomicBool;
        let out = dir.join("a.hpcs");
        let scan = crate::pack::scan(src, crypto::offsets::DEFAULT_CHUNK_SIZE).unwrap();
        let key = crypto::DataKey::generate().unwrap();
        crate::pack::write(
            &scan,
            &out,
            false,
            &crypto::WriteOptions::default(),
            &key,
            [9; 32],
            vec![],
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        crypto::SealedArchive::open(crypto::FileSource::open(&out).unwrap())
            .unwrap()
            .unlock(&key)
            .unwrap()
    }

    /// Symlinks planted under DEST while extract runs (from its progress
    /// callback, between two files): a directory already made and swapped
    /// for a symlink to outside is not followed (the walk holds its
    /// descriptor), and one planted at a name still to come fails the
    /// extraction as `NotADir`; nothing is written outside DEST.
    #[test]
    fn symlinks_planted_meanwhile_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d1/e")).unwrap();
        fs::create_dir_all(src.join("d2")).unwrap();
        fs::write(src.join("a"), b"first").unwrap();
        for f in ["d1/e/f3", "d1/f1", "d1/f2", "d2/g"] {
            fs::write(src.join(f), f.as_bytes()).unwrap();
        }
        let archive = archive_of(&src, t.path());
        let none = ExternalFiles::none();
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();

        // d1 made, then moved aside (inside DEST) and replaced by a symlink.
        let dest = t.path().join("dest1");
        let mut swapped = false;
        let got = extract(&archive, &none, &dest, &[], &mut |_| {
            if !swapped && dest.join("d1").is_dir() {
                fs::rename(dest.join("d1"), dest.join("moved")).unwrap();
                std::os::unix::fs::symlink(&elsewhere, dest.join("d1")).unwrap();
                swapped = true;
            }
        });
        assert!(swapped);
        let got = got.unwrap();
        assert_eq!(got.files, 5);
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "followed");
        for f in ["d1/e/f3", "d1/f1", "d1/f2"] {
            let moved = dest.join("moved").join(&f[3..]);
            assert_eq!(fs::read(&moved).unwrap(), f.as_bytes(), "{f}");
        }

        // d2 not made yet: a symlink planted at its name fails the walk.
        let dest = t.path().join("dest2");
        let mut planted = false;
        let got = extract(&archive, &none, &dest, &[], &mut |_| {
            if !planted {
                std::os::unix::fs::symlink(&elsewhere, dest.join("d2")).unwrap();
                planted = true;
            }
        });
        assert!(matches!(got, Err(ExtractError::NotADir(_))), "{got:?}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "followed");
    }
}
