//! Changes to the results tree and its objects: mkdir, create, open,
//! write, setattr, release (the last release finishes a file's object),
//! unlink, rmdir and rename. Each returns an [`FsError`] the callbacks send
//! back unchanged.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fuser::FileAttr;

use super::{check_name, child, insert, path_of, FileState, Kind, Output, Tree, Writer};
use crate::fs::errors::FsError;

impl Output {
    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<FileAttr, FsError> {
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
    pub fn create(&self, parent: u64, name: &OsStr, mode: u32) -> Result<FileAttr, FsError> {
        {
            let t = self.lock()?;
            if child(&t, parent, name.as_bytes())?.is_some() {
                return Err(FsError::Exists);
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
            FsError::Storage(e)
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
    pub fn open(&self, ino: u64, write: bool) -> Result<(), FsError> {
        let mut t = self.lock()?;
        let path = path_of(&t, ino);
        let n = t.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        match &mut n.kind {
            Kind::Dir { .. } => Err(FsError::IsDir),
            Kind::File(_) if !write => Err(FsError::WriteOnly),
            Kind::File(FileState::Writing { opens, .. }) => {
                *opens += 1;
                Ok(())
            }
            Kind::File(_) => {
                crate::log::log(
                    1,
                    format_args!(
                        "output {}: inode {ino}{} is finished; results are write-once (write a new file)",
                        self.name,
                        crate::log::Also(&path)
                    ),
                );
                Err(FsError::NotPermitted)
            }
        }
    }

    /// Appends `data` at `offset`, which must be the file's current size.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let (w, len) = {
            let t = self.lock()?;
            match t.nodes.get(&ino).map(|n| &n.kind) {
                Some(Kind::File(FileState::Writing { w, len, .. })) => {
                    (Arc::clone(w), Arc::clone(len))
                }
                Some(Kind::File(_)) => return Err(FsError::BadHandle),
                Some(Kind::Dir { .. }) => return Err(FsError::IsDir),
                None => return Err(FsError::NotFound),
            }
        };
        let mut g = w
            .lock()
            .map_err(|_| FsError::Internal("results writer lock"))?;
        let Some(obj) = g.as_mut() else {
            // An earlier write failed and the stream was abandoned.
            return Err(FsError::Storage(std::io::Error::other("object abandoned")));
        };
        if offset != obj.len() {
            crate::log::log(
                0,
                format_args!(
                    "output {}: object {}: write at offset {} of a file holding {}: output files are written sequentially only (ESPIPE)",
                    self.name,
                    obj.partial_name(),
                    crate::log::Size(offset),
                    crate::log::Size(obj.len())
                ),
            );
            return Err(FsError::NotSequential);
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
            return Err(FsError::Storage(e));
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
    ) -> Result<FileAttr, FsError> {
        if owner_change {
            return Err(FsError::NotPermitted);
        }
        let cur = self.getattr(ino)?;
        if let Some(s) = size {
            if s != cur.size {
                crate::log::log(
                    1,
                    format_args!(
                        "output {}: truncating to {} refused: output files only grow",
                        self.name,
                        crate::log::Size(s)
                    ),
                );
                return Err(FsError::NotPermitted);
            }
        }
        let mut t = self.lock()?;
        let n = t.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
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

    pub(super) fn finish_one(&self, ino: u64, w: &Writer, path: &[u8], mode: u32, linked: bool) {
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
                                "output {}: finishing object {partial}{} failed: {e}; it is incomplete",
                                self.name,
                                crate::log::Also(path)
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
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        if matches!(t.nodes.get(&ino).map(|n| &n.kind), Some(Kind::Dir { .. })) {
            return Err(FsError::IsDir);
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
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        match t.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::Dir { children }) if children.is_empty() => {}
            Some(Kind::Dir { .. }) => return Err(FsError::NotEmpty),
            _ => return Err(FsError::NotDir),
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
    ) -> Result<(), FsError> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        if child(&t, new_parent, b".")?.is_none() {
            return Err(FsError::NotFound);
        }
        check_name(new_name.as_bytes())?;
        let is_dir = matches!(t.nodes[&ino].kind, Kind::Dir { .. });
        // A directory cannot move under itself.
        let mut a = new_parent;
        while a != 1 && a != 0 {
            if a == ino {
                return Err(FsError::Invalid);
            }
            a = t.nodes.get(&a).map_or(0, |n| n.parent);
        }
        if let Some(old) = child(&t, new_parent, new_name.as_bytes())? {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(FsError::Exists);
            }
            match (&t.nodes[&old].kind, is_dir) {
                (Kind::Dir { children }, true) if children.is_empty() => {
                    t.nodes.remove(&old);
                }
                (Kind::Dir { .. }, true) => return Err(FsError::NotEmpty),
                (Kind::Dir { .. }, false) => return Err(FsError::IsDir),
                (Kind::File(_), true) => return Err(FsError::NotDir),
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
}
