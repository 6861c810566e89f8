//! The write-only output directory (RESULTS.md): an in-memory tree of
//! directories and files under one name of the mount's top directory. Each
//! file's bytes go straight into a [`crate::results::ObjectWriter`] (age
//! encryption to the user's recipients, on shared storage); nothing is kept,
//! and nothing can be read back.
//!
//! Locking: one mutex for the tree (short critical sections, no I/O except
//! deleting objects), one per file being written (encryption and the backing
//! write happen under it only).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

use super::attr::Owner;
use crate::results::{
    Finished, ManifestBody, ManifestDir, ManifestFile, ManifestOpen, ObjectWriter, Run,
};

/// Inode of the output directory itself; its entries follow.
pub const OUTPUT_INO: u64 = 1 << 56;

/// True if `ino` belongs to the output tree.
pub fn is_output(ino: u64) -> bool {
    ino >= OUTPUT_INO
}

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

    fn lock(&self) -> Result<MutexGuard<'_, Tree>, Errno> {
        self.tree.lock().map_err(|_| Errno::EIO)
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
    pub fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let t = self.lock()?;
        let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, n))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, n))
    }

    /// Directory entries from `offset` on: (ino, next offset, kind, name).
    pub fn readdir(&self, ino: u64, offset: u64) -> Result<Vec<(u64, FileType, Vec<u8>)>, Errno> {
        let t = self.lock()?;
        let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let Kind::Dir { children } = &n.kind else {
            return Err(Errno::ENOTDIR);
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

    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<FileAttr, Errno> {
        let mut t = self.lock()?;
        let ino = insert(
            &mut t,
            parent,
            name.as_bytes(),
            mode,
            Kind::Dir {
                children: BTreeMap::new(),
            },
        )
        .map_err(|(e, _)| e)?;
        Ok(self.attr(ino, &t.nodes[&ino]))
    }

    /// Creates a file and starts its encrypted object.
    pub fn create(&self, parent: u64, name: &OsStr, mode: u32) -> Result<FileAttr, Errno> {
        {
            let t = self.lock()?;
            if child(&t, parent, name.as_bytes())?.is_some() {
                return Err(Errno::EEXIST);
            }
        }
        // The object file is created outside the tree lock (shared storage
        // can be slow); the name is checked again when inserting.
        let w = self.run.create().map_err(|e| {
            crate::log::log(
                0,
                format_args!(
                    "output {}: cannot create an object in {}: {e}",
                    self.name,
                    self.run.dir().display()
                ),
            );
            Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
        })?;
        let mut t = self.lock()?;
        let state = FileState::Writing {
            w: Arc::new(Mutex::new(Some(w))),
            opens: 1,
            len: Arc::new(AtomicU64::new(0)),
        };
        match insert(&mut t, parent, name.as_bytes(), mode, Kind::File(state)) {
            Ok(ino) => Ok(self.attr(ino, &t.nodes[&ino])),
            Err((e, Kind::File(FileState::Writing { w, .. }))) => {
                drop(t);
                if let Some(w) = w.lock().ok().and_then(|mut g| g.take()) {
                    w.abandon();
                }
                Err(e)
            }
            Err((e, _)) => Err(e),
        }
    }

    /// Opens an existing file: only a file still being written, for writing.
    pub fn open(&self, ino: u64, write: bool) -> Result<(), Errno> {
        let mut t = self.lock()?;
        let path = path_of(&t, ino);
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        match &mut n.kind {
            Kind::Dir { .. } => Err(Errno::EISDIR),
            Kind::File(_) if !write => Err(Errno::EACCES),
            Kind::File(FileState::Writing { opens, .. }) => {
                *opens += 1;
                Ok(())
            }
            Kind::File(_) => {
                crate::log::log(
                    1,
                    format_args!(
                        "output {}: {} is finished; results are write-once (write a new file)",
                        self.name,
                        String::from_utf8_lossy(&path)
                    ),
                );
                Err(Errno::EPERM)
            }
        }
    }

    /// Appends `data` at `offset`, which must be the file's current size.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let (w, len) = {
            let t = self.lock()?;
            match t.nodes.get(&ino).map(|n| &n.kind) {
                Some(Kind::File(FileState::Writing { w, len, .. })) => {
                    (Arc::clone(w), Arc::clone(len))
                }
                Some(Kind::File(_)) => return Err(Errno::EBADF),
                Some(Kind::Dir { .. }) => return Err(Errno::EISDIR),
                None => return Err(Errno::ENOENT),
            }
        };
        let mut g = w.lock().map_err(|_| Errno::EIO)?;
        let Some(obj) = g.as_mut() else {
            return Err(Errno::EIO);
        };
        if offset != obj.len() {
            crate::log::log(
                0,
                format_args!(
                    "output {}: write at offset {offset} of a file holding {} bytes: output files are written sequentially only (ESPIPE)",
                    self.name,
                    obj.len()
                ),
            );
            return Err(Errno::ESPIPE);
        }
        if let Err(e) = obj.write(data) {
            crate::log::log(
                0,
                format_args!(
                    "output {}: writing object {} failed: {e}; the file is incomplete",
                    self.name,
                    obj.partial_name()
                ),
            );
            // A broken stream cannot be continued: refuse further writes.
            *g = None;
            return Err(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        len.store(obj.len(), Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    /// Changes mode or times; size only to what it already is.
    pub fn setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        size: Option<u64>,
        owner_change: bool,
        mtime: Option<SystemTime>,
    ) -> Result<FileAttr, Errno> {
        if owner_change {
            return Err(Errno::EPERM);
        }
        let cur = self.getattr(ino)?;
        if let Some(s) = size {
            if s != cur.size {
                crate::log::log(
                    1,
                    format_args!(
                        "output {}: truncating to {s} bytes refused: output files only grow",
                        self.name
                    ),
                );
                return Err(Errno::EPERM);
            }
        }
        let mut t = self.lock()?;
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if let Some(m) = mode {
            n.mode = m & 0o777;
        }
        if let Some(m) = mtime {
            n.mtime = m;
        }
        Ok(self.attr(ino, n))
    }

    /// A handle on `ino` was released: the last one finishes the object.
    pub fn release(&self, ino: u64) {
        let (w, path, mode, linked) = {
            let Ok(mut t) = self.lock() else { return };
            let path = path_of(&t, ino);
            let Some(n) = t.nodes.get_mut(&ino) else {
                return;
            };
            let (mode, linked) = (n.mode, n.linked);
            match &mut n.kind {
                Kind::File(FileState::Writing { w, opens, .. }) => {
                    *opens = opens.saturating_sub(1);
                    if *opens > 0 {
                        return;
                    }
                    (Arc::clone(w), path, mode, linked)
                }
                _ => return,
            }
        };
        self.finish_one(ino, &w, &path, mode, linked);
    }

    fn finish_one(&self, ino: u64, w: &Writer, path: &[u8], mode: u32, linked: bool) {
        let taken = w.lock().ok().and_then(|mut g| g.take());
        let state = match taken {
            None => None,
            Some(obj) if !linked => {
                obj.abandon();
                None
            }
            Some(obj) => {
                let partial = obj.partial_name();
                match obj.finish(path, mode) {
                    Ok(f) => Some(FileState::Done(f)),
                    Err(e) => {
                        crate::log::log(
                            0,
                            format_args!(
                                "output {}: finishing {} ({partial}) failed: {e}; it is incomplete",
                                self.name,
                                String::from_utf8_lossy(path)
                            ),
                        );
                        Some(FileState::Failed { partial })
                    }
                }
            }
        };
        let Ok(mut t) = self.lock() else { return };
        // The file may have been unlinked while it was being finished.
        let now_linked = t.nodes.get(&ino).is_some_and(|n| n.linked);
        if !now_linked {
            t.nodes.remove(&ino);
            drop(t);
            let obj = match &state {
                Some(FileState::Done(f)) => Some(f.object.clone()),
                Some(FileState::Failed { partial }) => Some(partial.clone()),
                _ => None,
            };
            if let Some(obj) = obj.filter(|o| !o.is_empty()) {
                if let Err(e) = self.run.remove(&obj) {
                    crate::log::log(
                        0,
                        format_args!("output {}: cannot delete object {obj}: {e}", self.name),
                    );
                }
            }
            return;
        }
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.kind = Kind::File(state.unwrap_or(FileState::Failed {
                partial: String::new(),
            }));
        }
    }

    /// Removes a file: its object is deleted (at once, or when the file is
    /// released if still open).
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        if matches!(t.nodes.get(&ino).map(|n| &n.kind), Some(Kind::Dir { .. })) {
            return Err(Errno::EISDIR);
        }
        self.drop_file(&mut t, ino);
        Ok(())
    }

    /// Detaches file `ino` from its parent and deletes its object.
    fn drop_file(&self, t: &mut Tree, ino: u64) {
        let Some(n) = t.nodes.get_mut(&ino) else {
            return;
        };
        let parent = n.parent;
        let name = std::mem::take(&mut n.name);
        let remove_now = match &n.kind {
            Kind::File(FileState::Writing { .. }) => {
                n.linked = false;
                None
            }
            Kind::File(FileState::Done(f)) => Some(f.object.clone()),
            Kind::File(FileState::Failed { partial }) => Some(partial.clone()),
            Kind::Dir { .. } => return,
        };
        if let Some(Kind::Dir { children }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(&name);
        }
        if let Some(obj) = remove_now {
            t.nodes.remove(&ino);
            if !obj.is_empty() {
                if let Err(e) = self.run.remove(&obj) {
                    crate::log::log(
                        0,
                        format_args!("output {}: cannot delete object {obj}: {e}", self.name),
                    );
                }
            }
        }
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        match t.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::Dir { children }) if children.is_empty() => {}
            Some(Kind::Dir { .. }) => return Err(Errno::ENOTEMPTY),
            _ => return Err(Errno::ENOTDIR),
        }
        t.nodes.remove(&ino);
        if let Some(Kind::Dir { children }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(name.as_bytes());
        }
        Ok(())
    }

    /// Renames within the output tree (replacing a file or an empty
    /// directory; `noreplace` refuses to replace).
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(Errno::ENOENT)?;
        if child(&t, new_parent, b".")?.is_none() {
            return Err(Errno::ENOENT);
        }
        check_name(new_name.as_bytes())?;
        let is_dir = matches!(t.nodes[&ino].kind, Kind::Dir { .. });
        // A directory cannot move under itself.
        let mut a = new_parent;
        while a != 1 && a != 0 {
            if a == ino {
                return Err(Errno::EINVAL);
            }
            a = t.nodes.get(&a).map_or(0, |n| n.parent);
        }
        if let Some(old) = child(&t, new_parent, new_name.as_bytes())? {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(Errno::EEXIST);
            }
            match (&t.nodes[&old].kind, is_dir) {
                (Kind::Dir { children }, true) if children.is_empty() => {
                    t.nodes.remove(&old);
                }
                (Kind::Dir { .. }, true) => return Err(Errno::ENOTEMPTY),
                (Kind::Dir { .. }, false) => return Err(Errno::EISDIR),
                (Kind::File(_), true) => return Err(Errno::ENOTDIR),
                (Kind::File(_), false) => self.drop_file(&mut t, old),
            }
        }
        if let Some(Kind::Dir { children }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(name.as_bytes());
        }
        if let Some(Kind::Dir { children }) = t.nodes.get_mut(&new_parent).map(|p| &mut p.kind) {
            children.insert(new_name.as_bytes().to_vec(), ino);
        }
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.as_bytes().to_vec();
            n.mtime = SystemTime::now();
        }
        Ok(())
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

    /// Ends the run: no new files; if `finish_open`, files whose release
    /// never came (the session has ended, so nothing holds them) are
    /// finished, otherwise they are recorded as incomplete; then the
    /// manifest is written.
    pub fn close(&self, finish_open: bool) -> CloseReport {
        // Files whose release never came, with their path now.
        let pending: Vec<(u64, Writer, Vec<u8>, u32, bool)> = match self.lock() {
            Ok(mut t) => {
                t.closed = true;
                if finish_open {
                    t.nodes
                        .iter()
                        .filter_map(|(&ino, n)| match &n.kind {
                            Kind::File(FileState::Writing { w, .. }) => {
                                Some((ino, Arc::clone(w), path_of(&t, ino), n.mode, n.linked))
                            }
                            _ => None,
                        })
                        .collect()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        for (ino, w, path, mode, linked) in pending {
            self.finish_one(ino, &w, &path, mode, linked);
        }
        let mut body = ManifestBody::default();
        let mut incomplete = Vec::new();
        if let Ok(t) = self.lock() {
            let mut inos: Vec<_> = t.nodes.keys().copied().collect();
            inos.sort_unstable();
            for ino in inos {
                let n = &t.nodes[&ino];
                if ino == OUTPUT_INO || !n.linked {
                    continue;
                }
                let path = path_of(&t, ino);
                match &n.kind {
                    Kind::Dir { .. } => body.dirs.push(ManifestDir { mode: n.mode, path }),
                    Kind::File(FileState::Done(f)) => body.files.push(ManifestFile {
                        object: f.object.clone(),
                        size: f.size,
                        sha256: f.sha256,
                        mode: n.mode,
                        path,
                    }),
                    Kind::File(FileState::Writing { w, .. }) => {
                        let object = w
                            .lock()
                            .ok()
                            .and_then(|g| g.as_ref().map(|o| o.partial_name()))
                            .unwrap_or_default();
                        incomplete.push(String::from_utf8_lossy(&path).into_owned());
                        body.open.push(ManifestOpen { object, path });
                    }
                    Kind::File(FileState::Failed { partial }) => {
                        incomplete.push(String::from_utf8_lossy(&path).into_owned());
                        body.open.push(ManifestOpen {
                            object: partial.clone(),
                            path,
                        });
                    }
                }
            }
        }
        let manifest = self.run.write_manifest(&body).map_err(|e| e.to_string());
        CloseReport {
            files: body.files.len(),
            incomplete,
            manifest,
        }
    }
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// The child `name` of directory `parent` (`.` names the directory itself).
fn child(t: &Tree, parent: u64, name: &[u8]) -> Result<Option<u64>, Errno> {
    let p = t.nodes.get(&parent).ok_or(Errno::ENOENT)?;
    match &p.kind {
        Kind::Dir { .. } if name == b"." => Ok(Some(parent)),
        Kind::Dir { children } => Ok(children.get(name).copied()),
        Kind::File(_) => Err(Errno::ENOTDIR),
    }
}

/// Adds a node; on failure gives the kind back (so a writer can be abandoned).
fn insert(
    t: &mut Tree,
    parent: u64,
    name: &[u8],
    mode: u32,
    kind: Kind,
) -> Result<u64, (Errno, Kind)> {
    if t.closed {
        return Err((Errno::EROFS, kind));
    }
    if let Err(e) = check_name(name) {
        return Err((e, kind));
    }
    match child(t, parent, name) {
        Ok(None) => {}
        Ok(Some(_)) => return Err((Errno::EEXIST, kind)),
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
