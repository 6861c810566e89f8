//! The write-only output directory (RESULTS.md): an in-memory tree of
//! directories and files under one name of the mount's top directory. Each
//! file's bytes go straight into a [`crate::results::ObjectWriter`] (age
//! encryption to the user's recipients, on shared storage); nothing is kept,
//! and nothing can be read back.
//!
//! Locking: one mutex for the tree (short critical sections, no I/O except
//! deleting objects), one per file being written (encryption and the backing
//! write happen under it only).
//!
//! This file owns the tree (its nodes, names and attributes) and the
//! read-only views of it (getattr, lookup, readdir); `ops` changes it
//! (create, write, release, unlink, rename…) and `close` ends the run and
//! writes its manifest. Failures are [`FsError`]s like any other operation's.

mod close;
mod ops;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};

use super::attr::Owner;
use super::errors::FsError;
use crate::results::{Finished, ObjectWriter, Run};

pub use super::inodes::{is_output, OUTPUT_INO};

type Writer = Arc<Mutex<Option<ObjectWriter>>>;

enum FileState {
    /// Open (or closed with its release still to come).
    Writing {
        w: Writer,
        opens: u32,
        /// Bytes written (readable while the writer is busy).
        len: Arc<AtomicU64>,
    },
    /// Finished and renamed to `<id>.age`.
    Done(Finished),
    /// Writing failed; the object stays `.age.partial`.
    Failed { partial: String },
}

enum Kind {
    Dir { children: BTreeMap<Vec<u8>, u64> },
    File(FileState),
}

struct Node {
    parent: u64,
    name: Vec<u8>,
    mode: u32,
    mtime: SystemTime,
    /// False once unlinked while still open.
    linked: bool,
    kind: Kind,
}

struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// After [`Output::close`]: no new files.
    closed: bool,
}

/// One output directory.
pub struct Output {
    name: String,
    run: Run,
    owner: Owner,
    tree: Mutex<Tree>,
}

/// What closing the output did.
#[derive(Debug)]
pub struct CloseReport {
    /// Files finished.
    pub files: usize,
    /// Files left incomplete (still open, or failed).
    pub incomplete: Vec<String>,
    /// The manifest written, or why not.
    pub manifest: Result<std::path::PathBuf, String>,
}

impl Output {
    /// An empty output directory called `name` under the top directory.
    pub fn new(name: String, run: Run, owner: Owner) -> Output {
        let mut nodes = HashMap::new();
        nodes.insert(
            OUTPUT_INO,
            Node {
                parent: 1,
                name: name.as_bytes().to_vec(),
                mode: 0o700,
                mtime: SystemTime::now(),
                linked: true,
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                },
            },
        );
        Output {
            name,
            run,
            owner,
            tree: Mutex::new(Tree {
                nodes,
                next_ino: OUTPUT_INO + 1,
                closed: false,
            }),
        }
    }

    /// Its name under the top directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run writing the objects.
    pub fn run(&self) -> &Run {
        &self.run
    }

    fn lock(&self) -> Result<MutexGuard<'_, Tree>, FsError> {
        self.tree
            .lock()
            .map_err(|_| FsError::Internal("results tree lock"))
    }

    fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        let (kind, size, nlink) = match &n.kind {
            Kind::Dir { .. } => (FileType::Directory, 0, 2),
            Kind::File(s) => {
                let size = match s {
                    FileState::Writing { len, .. } => len.load(Ordering::Relaxed),
                    FileState::Done(f) => f.size,
                    FileState::Failed { .. } => 0,
                };
                (FileType::RegularFile, size, u32::from(n.linked))
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind,
            perm: (n.mode & 0o777) as u16,
            nlink,
            uid: self.owner.uid,
            gid: self.owner.gid,
            rdev: 0,
            blksize: self.owner.blksize,
            flags: 0,
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<FileAttr, FsError> {
        let t = self.lock()?;
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        Ok(self.attr(ino, n))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr, FsError> {
        let t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        Ok(self.attr(ino, n))
    }

    /// Directory entries from `offset` on: (ino, next offset, kind, name).
    pub fn readdir(&self, ino: u64, offset: u64) -> Result<Vec<(u64, FileType, Vec<u8>)>, FsError> {
        let t = self.lock()?;
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        let Kind::Dir { children } = &n.kind else {
            return Err(FsError::NotDir);
        };
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (n.parent, FileType::Directory, b"..".to_vec()),
        ];
        for (name, &c) in children {
            let kind = match t.nodes.get(&c).map(|n| &n.kind) {
                Some(Kind::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            out.push((c, kind, name.clone()));
        }
        Ok(out.into_iter().skip(offset as usize).collect())
    }

    /// Files currently open for writing.
    pub fn open_files(&self) -> usize {
        self.lock().map_or(0, |t| {
            t.nodes
                .values()
                .filter(|n| matches!(n.kind, Kind::File(FileState::Writing { .. })))
                .count()
        })
    }
}

/// Checks a new entry name (results and scratch directories alike).
pub(in crate::fs) fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(FsError::Invalid);
    }
    if name.len() > 255 {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

/// The child `name` of directory `parent` (`.` names the directory itself).
fn child(t: &Tree, parent: u64, name: &[u8]) -> Result<Option<u64>, FsError> {
    let p = t.nodes.get(&parent).ok_or(FsError::NotFound)?;
    match &p.kind {
        Kind::Dir { .. } if name == b"." => Ok(Some(parent)),
        Kind::Dir { children } => Ok(children.get(name).copied()),
        Kind::File(_) => Err(FsError::NotDir),
    }
}

/// Adds a node; on failure gives the kind back (so a writer can be abandoned).
fn insert(
    t: &mut Tree,
    parent: u64,
    name: &[u8],
    mode: u32,
    kind: Kind,
) -> Result<u64, (FsError, Kind)> {
    if t.closed {
        return Err((FsError::ReadOnly, kind));
    }
    if let Err(e) = check_name(name) {
        return Err((e, kind));
    }
    match child(t, parent, name) {
        Ok(None) => {}
        Ok(Some(_)) => return Err((FsError::Exists, kind)),
        Err(e) => return Err((e, kind)),
    }
    let ino = t.next_ino;
    t.next_ino += 1;
    if let Some(Kind::Dir { children }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
        children.insert(name.to_vec(), ino);
    }
    t.nodes.insert(
        ino,
        Node {
            parent,
            name: name.to_vec(),
            mode: mode & 0o777,
            mtime: SystemTime::now(),
            linked: true,
            kind,
        },
    );
    Ok(ino)
}

/// Path of `ino` relative to the output directory.
fn path_of(t: &Tree, mut ino: u64) -> Vec<u8> {
    let mut parts = Vec::new();
    while ino != OUTPUT_INO {
        let Some(n) = t.nodes.get(&ino) else { break };
        parts.push(n.name.clone());
        ino = n.parent;
    }
    parts.reverse();
    parts.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::SubKey;
    use fuser::Errno;

    fn output(dir: &std::path::Path) -> Output {
        let id = age::x25519::Identity::generate();
        let r = crate::keys::parse_recipient(&id.to_public().to_string()).unwrap();
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let run = Run::new(&out, vec![r], &key, [7; 32], "n".into(), "1".into()).unwrap();
        let owner = Owner {
            uid: 0,
            gid: 0,
            blksize: 4096,
        };
        Output::new("out".into(), run, owner)
    }

    fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> Errno {
        r.expect_err("must be refused").errno()
    }

    /// Each rule of the results directory gives the errno the callbacks
    /// send (RESULTS.md: write-once, sequential, never read back).
    #[test]
    fn results_rules_give_their_errnos() {
        let t = tempfile::tempdir().unwrap();
        let o = output(t.path());
        let n = OsStr::new;
        let root = OUTPUT_INO;
        let f = o.create(root, n("a.txt"), 0o644).unwrap().ino.0;
        assert_eq!(errno(o.create(root, n("a.txt"), 0o644)), Errno::EEXIST);
        assert_eq!(errno(o.open(f, false)), Errno::EACCES);
        assert_eq!(o.write(f, 0, b"hello").unwrap(), 5);
        assert_eq!(errno(o.write(f, 2, b"x")), Errno::ESPIPE);
        assert_eq!(
            errno(o.setattr(f, None, Some(1), false, None)),
            Errno::EPERM
        );
        assert_eq!(errno(o.setattr(f, None, None, true, None)), Errno::EPERM);
        o.release(f);
        assert_eq!(o.getattr(f).unwrap().size, 5);
        assert_eq!(errno(o.open(f, true)), Errno::EPERM);
        assert_eq!(errno(o.write(f, 5, b"x")), Errno::EBADF);
        let d = o.mkdir(root, n("d"), 0o755).unwrap().ino.0;
        o.mkdir(d, n("e"), 0o755).unwrap();
        assert_eq!(errno(o.rmdir(root, n("d"))), Errno::ENOTEMPTY);
        assert_eq!(errno(o.rmdir(root, n("a.txt"))), Errno::ENOTDIR);
        assert_eq!(errno(o.unlink(root, n("d"))), Errno::EISDIR);
        assert_eq!(
            errno(o.rename(root, n("d"), d, n("x"), false)),
            Errno::EINVAL
        );
        assert_eq!(
            errno(o.rename(root, n("a.txt"), root, n("d"), false)),
            Errno::EISDIR
        );
        assert_eq!(
            errno(o.rename(root, n("d"), root, n("a.txt"), true)),
            Errno::EEXIST
        );
        assert_eq!(errno(o.mkdir(root, n(".."), 0o755)), Errno::EINVAL);
        let long = OsStr::from_bytes(&[b'n'; 256]);
        assert_eq!(errno(o.mkdir(root, long, 0o755)), Errno::ENAMETOOLONG);
        assert_eq!(errno(o.lookup(root, n("nope"))), Errno::ENOENT);
        assert_eq!(errno(o.lookup(f, n("x"))), Errno::ENOTDIR);
        assert_eq!(errno(o.readdir(f, 0)), Errno::ENOTDIR);
        assert_eq!(o.close(false).files, 1);
        assert_eq!(errno(o.mkdir(root, n("late"), 0o755)), Errno::EROFS);
    }
}
