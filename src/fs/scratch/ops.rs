//! Changes to the scratch tree: create, mkdir, open, release, unlink,
//! rmdir, rename and setattr. A file unlinked while open keeps its data
//! until its last release; then, as for a file removed while closed, its
//! slots go back to the allocator (and are punched out of the backing
//! file). Each operation returns an [`FsError`] the callbacks send back.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{FileAttr, FopenFlags};

use super::{check_name, child, touch_dir, FileData, Kind, Node, Scratch, Tree, MAX_ENTRIES};
use crate::fs::errors::FsError;

/// What setattr asks of a scratch entry.
pub struct Change {
    /// New permission bits.
    pub mode: Option<u32>,
    /// An owner other than the mounting user was asked for.
    pub owner_change: bool,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SystemTime>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

impl Scratch {
    /// Adds `name` to directory `parent`.
    fn insert(
        &self,
        t: &mut Tree,
        parent: u64,
        name: &[u8],
        mode: u32,
        kind: Kind,
    ) -> Result<u64, FsError> {
        check_name(name)?;
        if child(t, parent, name)?.is_some() {
            return Err(FsError::Exists);
        }
        if t.nodes.len() >= MAX_ENTRIES {
            crate::info!(
                "scratch: {MAX_ENTRIES} entries already; creating another one returned ENOSPC"
            );
            return Err(FsError::NoSpace);
        }
        let ino = t.next_ino;
        t.next_ino += 1;
        if let Some(Kind::Dir { children, .. }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.insert(name.to_vec(), ino);
        }
        touch_dir(t, parent);
        t.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_vec(),
                mode: mode & 0o777,
                linked: true,
                opens: 0,
                kind,
            },
        );
        Ok(ino)
    }

    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<FileAttr, FsError> {
        let mut t = self.lock()?;
        let now = SystemTime::now();
        let kind = Kind::Dir {
            children: BTreeMap::new(),
            times: [now; 3],
        };
        let ino = self.insert(&mut t, parent, name.as_bytes(), mode, kind)?;
        self.attr_locked(t, ino)
    }

    /// Creates a file and opens it.
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<(FileAttr, FopenFlags), FsError> {
        let mut t = self.lock()?;
        let f = Arc::new(FileData::new());
        let ino = self.insert(&mut t, parent, name.as_bytes(), mode, Kind::File(f))?;
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.opens = 1;
        }
        Ok((self.attr_locked(t, ino)?, self.open_flags()))
    }

    /// How scratch files are opened: direct I/O (every read reaches the
    /// daemon, so a damaged block is noticed at once and no plaintext stays
    /// in the kernel page cache; shared mmap still works, Linux 6.6+), or,
    /// when the mount uses the page cache, without keeping it across opens.
    fn open_flags(&self) -> FopenFlags {
        if self.direct_io.load(std::sync::atomic::Ordering::Relaxed) {
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
        } else {
            FopenFlags::empty()
        }
    }

    /// Opens a file.
    pub fn open(&self, ino: u64) -> Result<FopenFlags, FsError> {
        let mut t = self.lock()?;
        let n = t.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        match n.kind {
            Kind::Dir { .. } => Err(FsError::IsDir),
            Kind::File(_) => {
                n.opens += 1;
                Ok(self.open_flags())
            }
        }
    }

    /// A handle on `ino` was released: the last one of an unlinked file
    /// frees its data.
    pub fn release(&self, ino: u64) {
        let gone = {
            let Ok(mut t) = self.lock() else { return };
            let Some(n) = t.nodes.get_mut(&ino) else {
                return;
            };
            n.opens = n.opens.saturating_sub(1);
            if n.opens > 0 || n.linked {
                return;
            }
            t.nodes.remove(&ino)
        };
        if let Some(Node {
            kind: Kind::File(f),
            ..
        }) = gone
        {
            self.free_file(&f);
        }
    }

    /// Returns every slot of a file to the allocator.
    fn free_file(&self, f: &FileData) {
        if let Ok(mut c) = f.content.write() {
            let mut freed = Vec::new();
            c.map.truncate(0, &mut freed);
            self.store.free(&mut freed);
        }
    }

    /// Detaches file `ino` from its parent; returns its data to free now
    /// (`None` while it is still open).
    fn detach(t: &mut Tree, ino: u64) -> Option<Arc<FileData>> {
        let n = t.nodes.get_mut(&ino)?;
        let parent = n.parent;
        let name = std::mem::take(&mut n.name);
        n.linked = false;
        let open = n.opens > 0;
        if let Some(Kind::Dir { children, .. }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(&name);
        }
        touch_dir(t, parent);
        if open {
            return None;
        }
        match t.nodes.remove(&ino).map(|n| n.kind) {
            Some(Kind::File(f)) => Some(f),
            _ => None,
        }
    }

    /// Removes a file (its data goes when its last handle does).
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let mut t = self.lock()?;
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        if matches!(t.nodes.get(&ino).map(|n| &n.kind), Some(Kind::Dir { .. })) {
            return Err(FsError::IsDir);
        }
        let data = Self::detach(&mut t, ino);
        drop(t);
        if let Some(f) = data {
            self.free_file(&f);
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let mut t = self.lock()?;
        if name.as_bytes() == b"." {
            return Err(FsError::Invalid);
        }
        let ino = child(&t, parent, name.as_bytes())?.ok_or(FsError::NotFound)?;
        match t.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::Dir { children, .. }) if children.is_empty() => {}
            Some(Kind::Dir { .. }) => return Err(FsError::NotEmpty),
            _ => return Err(FsError::NotDir),
        }
        t.nodes.remove(&ino);
        if let Some(Kind::Dir { children, .. }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(name.as_bytes());
        }
        touch_dir(&mut t, parent);
        Ok(())
    }

    /// Renames within the scratch tree: replaces a file or an empty
    /// directory of the same kind (unless `noreplace`), or swaps two
    /// entries (`exchange`).
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        noreplace: bool,
        exchange: bool,
    ) -> Result<(), FsError> {
        let (name, new_name) = (name.as_bytes(), new_name.as_bytes());
        let mut t = self.lock()?;
        let ino = child(&t, parent, name)?.ok_or(FsError::NotFound)?;
        if !matches!(
            t.nodes.get(&new_parent).map(|n| &n.kind),
            Some(Kind::Dir { .. })
        ) {
            return Err(FsError::NotDir);
        }
        check_name(new_name)?;
        let is_dir =
            |t: &Tree, i: u64| matches!(t.nodes.get(&i).map(|n| &n.kind), Some(Kind::Dir { .. }));
        let under = |t: &Tree, dir: u64, mut a: u64| {
            while super::is_scratch(a) {
                if a == dir {
                    return true;
                }
                a = t.nodes.get(&a).map_or(0, |n| n.parent);
            }
            false
        };
        // A directory cannot move under itself.
        if is_dir(&t, ino) && under(&t, ino, new_parent) {
            return Err(FsError::Invalid);
        }
        let target = child(&t, new_parent, new_name)?;
        if exchange {
            let other = target.ok_or(FsError::NotFound)?;
            if other == ino {
                return Ok(());
            }
            if is_dir(&t, other) && under(&t, other, parent) {
                return Err(FsError::Invalid);
            }
            set_child(&mut t, parent, name, other);
            set_child(&mut t, new_parent, new_name, ino);
            for (i, p, n) in [(ino, new_parent, new_name), (other, parent, name)] {
                if let Some(node) = t.nodes.get_mut(&i) {
                    node.parent = p;
                    node.name = n.to_vec();
                }
            }
            touch_dir(&mut t, parent);
            touch_dir(&mut t, new_parent);
            return Ok(());
        }
        let mut freed = None;
        if let Some(old) = target {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(FsError::Exists);
            }
            match (is_dir(&t, old), is_dir(&t, ino)) {
                (true, true) => {
                    if !matches!(t.nodes.get(&old).map(|n| &n.kind), Some(Kind::Dir { children, .. }) if children.is_empty())
                    {
                        return Err(FsError::NotEmpty);
                    }
                    t.nodes.remove(&old);
                }
                (true, false) => return Err(FsError::IsDir),
                (false, true) => return Err(FsError::NotDir),
                (false, false) => freed = Self::detach(&mut t, old),
            }
        }
        if let Some(Kind::Dir { children, .. }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
            children.remove(name);
        }
        set_child(&mut t, new_parent, new_name, ino);
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.parent = new_parent;
            n.name = new_name.to_vec();
        }
        touch_dir(&mut t, parent);
        touch_dir(&mut t, new_parent);
        drop(t);
        if let Some(f) = freed {
            self.free_file(&f);
        }
        Ok(())
    }

    /// Changes mode, size or times; the owner cannot change.
    pub fn setattr(&self, ino: u64, ch: Change) -> Result<FileAttr, FsError> {
        if ch.owner_change {
            return Err(FsError::NotPermitted);
        }
        let mut t = self.lock()?;
        let n = t.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        if let Some(m) = ch.mode {
            n.mode = m & 0o777;
        }
        let now = SystemTime::now();
        match &mut n.kind {
            Kind::Dir { times, .. } => {
                if ch.size.is_some() {
                    return Err(FsError::IsDir);
                }
                if let Some(a) = ch.atime {
                    times[0] = a;
                }
                if let Some(m) = ch.mtime {
                    times[1] = m;
                }
                times[2] = now;
            }
            Kind::File(f) => {
                let f = Arc::clone(f);
                drop(t);
                let mut c = f
                    .content
                    .write()
                    .map_err(|_| FsError::Internal("scratch file lock"))?;
                if let Some(size) = ch.size {
                    self.resize(ino, &mut c, size)?;
                }
                if let Some(a) = ch.atime {
                    c.atime = a;
                }
                if let Some(m) = ch.mtime {
                    c.mtime = m;
                }
                c.ctime = now;
                drop(c);
                return self.getattr(ino);
            }
        }
        self.attr_locked(t, ino)
    }
}

/// Points `name` in directory `parent` at `ino`.
fn set_child(t: &mut Tree, parent: u64, name: &[u8], ino: u64) {
    if let Some(Kind::Dir { children, .. }) = t.nodes.get_mut(&parent).map(|p| &mut p.kind) {
        children.insert(name.to_vec(), ino);
    }
}

#[cfg(test)]
mod tests {
    use super::super::block::BLOCK;
    use super::super::SCRATCH_INO;
    use super::*;
    use fuser::Errno;

    fn scratch(dir: &std::path::Path, limit: Option<u64>) -> Scratch {
        Scratch::new("tmp".into(), dir, limit).unwrap().0
    }

    fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> Errno {
        r.expect_err("must be refused").errno()
    }

    /// Each refusal of the scratch tree gives the errno the callbacks send.
    #[test]
    fn tree_rules_give_their_errnos() {
        let d = tempfile::tempdir().unwrap();
        let s = scratch(d.path(), Some(4 * BLOCK as u64));
        let n = OsStr::new;
        let root = SCRATCH_INO;
        let (a, _) = s.create(root, n("a"), 0o644).unwrap();
        let f = a.ino.0;
        assert_eq!(errno(s.create(root, n("a"), 0o644)), Errno::EEXIST);
        assert_eq!(errno(s.mkdir(root, n(""), 0o755)), Errno::EINVAL);
        assert_eq!(errno(s.mkdir(root, n("a/b"), 0o755)), Errno::EINVAL);
        let long = OsStr::from_bytes(&[b'x'; 256]);
        assert_eq!(errno(s.mkdir(root, long, 0o755)), Errno::ENAMETOOLONG);
        assert_eq!(errno(s.lookup(f, n("x"))), Errno::ENOTDIR);
        assert_eq!(errno(s.open(root)), Errno::EISDIR);
        let d1 = s.mkdir(root, n("d"), 0o755).unwrap().ino.0;
        s.mkdir(d1, n("e"), 0o755).unwrap();
        assert_eq!(errno(s.rmdir(root, n("d"))), Errno::ENOTEMPTY);
        assert_eq!(errno(s.rmdir(root, n("a"))), Errno::ENOTDIR);
        assert_eq!(errno(s.unlink(root, n("d"))), Errno::EISDIR);
        assert_eq!(
            errno(s.rename(root, n("d"), d1, n("x"), false, false)),
            Errno::EINVAL
        );
        assert_eq!(
            errno(s.rename(root, n("a"), root, n("d"), false, false)),
            Errno::EISDIR
        );
        assert_eq!(
            errno(s.rename(root, n("d"), root, n("a"), false, false)),
            Errno::ENOTDIR
        );
        assert_eq!(
            errno(s.rename(root, n("d"), root, n("a"), true, false)),
            Errno::EEXIST
        );
        assert_eq!(
            errno(s.rename(root, n("zz"), root, n("a"), false, true)),
            Errno::ENOENT
        );
        let ch = Change {
            mode: None,
            owner_change: true,
            size: None,
            atime: None,
            mtime: None,
        };
        assert_eq!(errno(s.setattr(f, ch)), Errno::EPERM);
        // The limit: four blocks in all, then ENOSPC (and nothing half done).
        assert_eq!(s.write(f, 0, &[1; 3 * BLOCK]).unwrap(), 3 * BLOCK as u32);
        assert_eq!(
            errno(s.write(f, 3 * BLOCK as u64, &[2; 2 * BLOCK])),
            Errno::ENOSPC
        );
        assert_eq!(s.getattr(f).unwrap().size, 3 * BLOCK as u64);
        assert_eq!(
            errno(s.write(f, super::super::block::MAX_FILE, b"x")),
            Errno::EFBIG
        );
        assert_eq!(
            errno(s.fallocate(f, 0, 10, libc::FALLOC_FL_COLLAPSE_RANGE)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(errno(s.fallocate(f, 0, 8 * BLOCK as u64, 0)), Errno::ENOSPC);
        // Unlinking frees the blocks (the file was released once: create).
        s.release(f);
        s.unlink(root, n("a")).unwrap();
        assert_eq!(s.store.used_blocks(), 0);
        assert_eq!(errno(s.getattr(f)), Errno::ENOENT);
    }

    /// A file unlinked while open keeps its data until its last release;
    /// a file replaced by rename is freed like an unlinked one.
    #[test]
    fn unlinked_while_open_and_replaced_by_rename() {
        let d = tempfile::tempdir().unwrap();
        let s = scratch(d.path(), None);
        let n = OsStr::new;
        let root = SCRATCH_INO;
        let f = s.create(root, n("f"), 0o600).unwrap().0.ino.0;
        s.write(f, 0, &[7; 10_000]).unwrap();
        s.unlink(root, n("f")).unwrap();
        assert_eq!(errno(s.lookup(root, n("f"))), Errno::ENOENT);
        let a = s.getattr(f).unwrap();
        assert_eq!((a.size, a.nlink), (10_000, 0));
        assert_eq!(s.store.used_blocks(), 3);
        s.release(f);
        assert_eq!(s.store.used_blocks(), 0);
        let g = s.create(root, n("g"), 0o600).unwrap().0.ino.0;
        s.write(g, 0, &[1; 100]).unwrap();
        s.release(g);
        let h = s.create(root, n("h"), 0o600).unwrap().0.ino.0;
        s.write(h, 0, &[2; 5000]).unwrap();
        s.release(h);
        s.rename(root, n("h"), root, n("g"), false, false).unwrap();
        assert_eq!(s.lookup(root, n("g")).unwrap().ino.0, h);
        assert_eq!(s.store.used_blocks(), 2, "g's block was freed");
        let sub = s.mkdir(root, n("sub"), 0o700).unwrap().ino.0;
        s.rename(root, n("g"), sub, n("g2"), false, true)
            .unwrap_err();
        s.rename(root, n("sub"), root, n("g"), false, true).unwrap();
        assert_eq!(s.lookup(root, n("g")).unwrap().ino.0, sub);
        assert_eq!(s.lookup(root, n("sub")).unwrap().ino.0, h);
        let names: Vec<Vec<u8>> = s
            .readdir(root, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.2)
            .collect();
        assert_eq!(
            names,
            [
                b".".to_vec(),
                b"..".to_vec(),
                b"g".to_vec(),
                b"sub".to_vec()
            ]
        );
    }
}
