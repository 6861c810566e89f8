//! The encrypted scratch directory (docs/mount.md, "Encrypted scratch"): a
//! readable and writable directory `MNT/NAME` whose files are stored in one
//! nameless backing file in DIR ([`store`]), 4 KiB blocks each sealed with
//! AES-256-GCM under a key generated for this mount ([`block`]), while
//! everything else lives only in the daemon's memory: the directory tree
//! with its names, each file's size, and which slot and which version each
//! block has ([`map`]), which is what makes a changed, moved, rolled-back
//! or missing block fail authentication (EIO) instead of returning wrong
//! bytes. When the daemon ends, however it ends, the key and the tree are
//! gone and the backing file is freed; what may remain on storage is
//! ciphertext nobody can open.
//!
//! This file owns the tree (nodes, names, attributes) and its read-only
//! views (getattr, lookup, readdir, statfs); `ops` changes the tree
//! (create, mkdir, unlink, rename, setattr, open, release) and `data` the
//! contents of files (read, write, truncate, fallocate).
//!
//! Locking: one mutex for the tree (short, no I/O); one read-write lock per
//! file around its size and block map, held across the backing I/O of a
//! read (shared) or a write (exclusive), so a reader never sees a block
//! whose new version is recorded but not yet stored. The tree lock is never
//! taken while a file lock is held. Log lines name inode numbers and block
//! numbers, never a scratch file's name.

pub mod block;
mod data;
pub mod map;
mod ops;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};

use super::attr::Owner;
use super::errors::FsError;
use super::output::check_name;
use super::reply::StatFs;
use block::{BlockCipher, BLOCK};
use map::BlockMap;
pub use ops::Change;
use store::Store;

pub use super::inodes::{is_scratch, SCRATCH_INO};

/// Most entries (files and directories) a scratch directory holds; past
/// it, creating one more is `ENOSPC` (like running out of inodes). Bounds
/// the tree's memory (docs/mount.md).
pub const MAX_ENTRIES: usize = 1 << 20;

/// `st_blksize` of scratch files: stdio and cp size their buffers on it,
/// and every write(2) of a scratch file is one FUSE request.
const SCRATCH_BLKSIZE: u32 = 256 << 10;

/// A file's contents and times, behind its lock.
pub(super) struct Content {
    size: u64,
    map: BlockMap,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

/// One file's data: its lock and what it protects.
pub(super) struct FileData {
    content: RwLock<Content>,
}

impl FileData {
    fn new() -> FileData {
        let now = SystemTime::now();
        FileData {
            content: RwLock::new(Content {
                size: 0,
                map: BlockMap::default(),
                atime: now,
                mtime: now,
                ctime: now,
            }),
        }
    }
}

enum Kind {
    Dir {
        children: BTreeMap<Vec<u8>, u64>,
        times: [SystemTime; 3],
    },
    File(Arc<FileData>),
}

struct Node {
    parent: u64,
    name: Vec<u8>,
    mode: u32,
    /// False once unlinked while still open.
    linked: bool,
    /// Open handles (the last release of an unlinked file frees its blocks).
    opens: u32,
    kind: Kind,
}

struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
}

/// One scratch directory.
pub struct Scratch {
    name: String,
    owner: Owner,
    tree: Mutex<Tree>,
    store: Store,
    cipher: BlockCipher,
    /// The next block version (never 0, never reused).
    version: AtomicU64,
    /// Open with direct I/O (resolved at FUSE init, as for the archives).
    direct_io: std::sync::atomic::AtomicBool,
}

/// What the binary reports once the scratch directory is set up.
#[derive(Debug)]
pub struct ScratchInfo {
    /// Leftover names of dead mounts removed from DIR.
    pub removed: usize,
    /// The backing file had a name for an instant (no `O_TMPFILE`).
    pub named: bool,
}

impl Scratch {
    /// A new, empty scratch directory called `name` under the top, stored in
    /// `dir` (at most `limit` bytes of data).
    pub fn new(
        name: String,
        dir: &Path,
        limit: Option<u64>,
    ) -> std::io::Result<(Scratch, ScratchInfo)> {
        let (store, opened) = Store::create(dir, limit)?;
        let cipher = BlockCipher::generate()?;
        let now = SystemTime::now();
        let mut nodes = HashMap::new();
        nodes.insert(
            SCRATCH_INO,
            Node {
                parent: 1,
                name: name.as_bytes().to_vec(),
                mode: 0o700,
                linked: true,
                opens: 0,
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                    times: [now; 3],
                },
            },
        );
        let s = Scratch {
            name,
            owner: Owner {
                uid: 0,
                gid: 0,
                blksize: SCRATCH_BLKSIZE,
            },
            tree: Mutex::new(Tree {
                nodes,
                next_ino: SCRATCH_INO + 1,
            }),
            store,
            cipher,
            version: AtomicU64::new(1),
            direct_io: std::sync::atomic::AtomicBool::new(true),
        };
        Ok((
            s,
            ScratchInfo {
                removed: opened.removed,
                named: opened.named,
            },
        ))
    }

    /// Shows every entry as owned by `uid`/`gid` (the mounting user).
    pub fn set_owner(&mut self, uid: u32, gid: u32) {
        self.owner.uid = uid;
        self.owner.gid = gid;
    }

    /// Its name under the top directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory holding the backing file.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Bytes of data the limit allows.
    pub fn limit_bytes(&self) -> u64 {
        self.store.limit_blocks() * BLOCK as u64
    }

    /// The backing file's descriptor in this process (for tests that look
    /// at or damage the stored blocks through /proc).
    pub fn backing_fd(&self) -> i32 {
        self.store.raw_fd()
    }

    /// Whether files are opened with direct I/O (set at FUSE init).
    pub(super) fn set_direct_io(&self, direct: bool) {
        self.direct_io.store(direct, Ordering::Relaxed);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Tree>, FsError> {
        self.tree
            .lock()
            .map_err(|_| FsError::Internal("scratch tree lock"))
    }

    fn dir_attr(&self, ino: u64, n: &Node, times: &[SystemTime; 3], subdirs: u32) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: times[0],
            mtime: times[1],
            ctime: times[2],
            crtime: times[2],
            kind: FileType::Directory,
            perm: (n.mode & 0o777) as u16,
            nlink: 2 + subdirs,
            uid: self.owner.uid,
            gid: self.owner.gid,
            rdev: 0,
            blksize: self.owner.blksize,
            flags: 0,
        }
    }

    fn file_attr(
        &self,
        ino: u64,
        mode: u32,
        linked: bool,
        f: &FileData,
    ) -> Result<FileAttr, FsError> {
        let c = f
            .content
            .read()
            .map_err(|_| FsError::Internal("scratch file lock"))?;
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: c.size,
            blocks: c.map.slots() * (BLOCK as u64 / 512),
            atime: c.atime,
            mtime: c.mtime,
            ctime: c.ctime,
            crtime: c.ctime,
            kind: FileType::RegularFile,
            perm: (mode & 0o777) as u16,
            nlink: u32::from(linked),
            uid: self.owner.uid,
            gid: self.owner.gid,
            rdev: 0,
            blksize: self.owner.blksize,
            flags: 0,
        })
    }

    /// Attributes of `ino` (the tree lock is released before a file's own
    /// lock is taken).
    pub fn getattr(&self, ino: u64) -> Result<FileAttr, FsError> {
        let t = self.lock()?;
        self.attr_locked(t, ino)
    }

    /// Attributes of `ino`, given the tree locked (and released here).
    fn attr_locked(&self, t: MutexGuard<'_, Tree>, ino: u64) -> Result<FileAttr, FsError> {
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        match &n.kind {
            Kind::Dir { children, times } => {
                let subdirs = children
                    .values()
                    .filter(|c| matches!(t.nodes.get(c).map(|n| &n.kind), Some(Kind::Dir { .. })))
                    .count() as u32;
                Ok(self.dir_attr(ino, n, times, subdirs))
            }
            Kind::File(f) => {
                let (f, mode, linked) = (Arc::clone(f), n.mode, n.linked);
                drop(t);
                self.file_attr(ino, mode, linked, &f)
            }
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr, FsError> {
        let t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        self.attr_locked(t, ino)
    }

    /// Directory entries from `offset` on.
    pub fn readdir(&self, ino: u64, offset: u64) -> Result<Vec<(u64, FileType, Vec<u8>)>, FsError> {
        let t = self.lock()?;
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        let Kind::Dir { children, .. } = &n.kind else {
            return Err(FsError::NotDir);
        };
        let mut out = Vec::with_capacity(children.len() + 2);
        out.push((ino, FileType::Directory, b".".to_vec()));
        out.push((n.parent, FileType::Directory, b"..".to_vec()));
        for (name, &c) in children.iter() {
            let kind = match t.nodes.get(&c).map(|n| &n.kind) {
                Some(Kind::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            out.push((c, kind, name.clone()));
        }
        Ok(out.into_iter().skip(offset as usize).collect())
    }

    /// Space and entries: the limit (or what the backing filesystem has
    /// left) in 4 KiB blocks.
    pub(in crate::fs) fn statfs(&self) -> Result<StatFs, FsError> {
        let used = self.store.used_blocks();
        let entries = self.lock()?.nodes.len() as u64;
        let mut total = self.store.limit_blocks();
        let mut free = total.saturating_sub(used);
        // SAFETY: fstatvfs fills a struct we own from our own descriptor.
        let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(self.store.raw_fd(), &mut v) } == 0 {
            let avail = v.f_bavail.saturating_mul(v.f_frsize) / BLOCK as u64;
            free = free.min(avail);
            total = total.min(used + avail);
        }
        Ok(StatFs {
            blocks: total,
            free,
            files: MAX_ENTRIES as u64,
            ffree: (MAX_ENTRIES as u64).saturating_sub(entries),
            bsize: BLOCK as u32,
        })
    }

    /// Memory the scratch state holds now, in bytes (block maps, and an
    /// estimate for the tree), and the backing file's size and disk use.
    pub fn footprint(&self) -> (usize, usize, (u64, u64)) {
        let Ok(t) = self.lock() else {
            return (0, 0, (0, 0));
        };
        let files: Vec<Arc<FileData>> = t
            .nodes
            .values()
            .filter_map(|n| match &n.kind {
                Kind::File(f) => Some(Arc::clone(f)),
                Kind::Dir { .. } => None,
            })
            .collect();
        let tree: usize = t.nodes.values().map(|n| 160 + 2 * n.name.len()).sum();
        drop(t);
        let maps = files
            .iter()
            .filter_map(|f| f.content.read().ok().map(|c| c.map.heap_bytes()))
            .sum();
        (maps, tree, self.store.backing_size())
    }
}

/// The child `name` of directory `parent` (`.` names the directory itself).
fn child(t: &Tree, parent: u64, name: &[u8]) -> Result<Option<u64>, FsError> {
    let p = t.nodes.get(&parent).ok_or(FsError::NotFound)?;
    match &p.kind {
        Kind::Dir { .. } if name == b"." => Ok(Some(parent)),
        Kind::Dir { .. } if name == b".." => Ok(Some(p.parent)),
        Kind::Dir { children, .. } => Ok(children.get(name).copied()),
        Kind::File(_) => Err(FsError::NotDir),
    }
}

/// Sets a directory's mtime and ctime to now.
fn touch_dir(t: &mut Tree, ino: u64) {
    if let Some(Node {
        kind: Kind::Dir { times, .. },
        ..
    }) = t.nodes.get_mut(&ino)
    {
        let now = SystemTime::now();
        times[1] = now;
        times[2] = now;
    }
}
