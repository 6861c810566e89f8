//! Metadata operations: lookup, getattr, readlink, statfs, access and the
//! extended attributes (the archives store none). Archive entries are
//! answered from the in-memory index; entries of the results directory from
//! its tree ([`super::output`]), those of the scratch directory from its own
//! ([`super::scratch`]). Also the inode helpers the other operations share
//! (`resolve`, `entry`, `output_of`, `scratch_of`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{AccessFlags, FileAttr, FileType, INodeNo};

use crate::crypto::index::{Kind, Node, NodeId};
use crate::crypto::Source;

use super::attr::{self, Ino};
use super::errors::FsError;
use super::output::{is_output, Output, OUTPUT_INO};
use super::reply::{StatFs, XattrList};
use super::scratch::{is_scratch, Scratch, SCRATCH_INO};
use super::Inner;

impl<S: Source + 'static> Inner<S> {
    /// The results directory, if `ino` is in it.
    pub(super) fn output_of(&self, ino: u64) -> Option<&Output> {
        self.output.as_ref().filter(|_| is_output(ino))
    }

    /// The scratch directory, if `ino` is in it.
    pub(super) fn scratch_of(&self, ino: u64) -> Option<&Scratch> {
        self.scratch.as_ref().filter(|_| is_scratch(ino))
    }

    pub(super) fn resolve(&self, ino: INodeNo) -> Result<Ino, FsError> {
        self.inodes.resolve(ino.0).ok_or(FsError::NotFound)
    }

    /// The archive entry behind `ino` (not the top directory).
    pub(super) fn entry(&self, ino: INodeNo) -> Result<(usize, NodeId, &Node), FsError> {
        match self.resolve(ino)? {
            Ino::Entry { archive, id } => {
                let node = self
                    .data
                    .archives()
                    .get(archive)
                    .and_then(|a| a.tree().node(id))
                    .ok_or(FsError::NotFound)?;
                Ok((archive, id, node))
            }
            Ino::Top => Err(FsError::IsDir),
        }
    }

    fn attr_of(&self, archive: usize, id: NodeId) -> Result<FileAttr, FsError> {
        let a = self.data.archives().get(archive).ok_or(FsError::NotFound)?;
        let node = a.tree().node(id).ok_or(FsError::NotFound)?;
        let shown = attr::inode_id(id, node);
        let link_len = a.tree().symlink_target(id).map_or(0, |t| t.len());
        Ok(attr::entry_attr(
            self.inodes.ino(archive, shown),
            node,
            link_len,
            &self.owner,
        ))
    }

    pub(super) fn getattr(&self, ino: INodeNo) -> Result<FileAttr, FsError> {
        if let Some(o) = self.output_of(ino.0) {
            return o.getattr(ino.0);
        }
        if let Some(s) = self.scratch_of(ino.0) {
            return s.getattr(ino.0);
        }
        match self.resolve(ino)? {
            Ino::Top => Ok(attr::top_attr(
                &self.owner,
                self.names.len()
                    + usize::from(self.output.is_some())
                    + usize::from(self.scratch.is_some()),
            )),
            Ino::Entry { archive, id } => self.attr_of(archive, id),
        }
    }

    pub(super) fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, FsError> {
        if let Some(o) = self.output_of(parent.0) {
            return o.lookup(parent.0, name);
        }
        if let Some(s) = self.scratch_of(parent.0) {
            return s.lookup(parent.0, name);
        }
        match self.resolve(parent)? {
            Ino::Top => {
                if let Some(s) = self
                    .scratch
                    .as_ref()
                    .filter(|s| s.name().as_bytes() == name.as_bytes())
                {
                    return s.getattr(SCRATCH_INO);
                }
                if let Some(o) = self
                    .output
                    .as_ref()
                    .filter(|o| o.name().as_bytes() == name.as_bytes())
                {
                    return o.getattr(OUTPUT_INO);
                }
                let k = self
                    .names
                    .iter()
                    .position(|n| n.as_bytes() == name.as_bytes())
                    .ok_or(FsError::NotFound)?;
                self.attr_of(k, attr::ARCHIVE_ROOT)
            }
            Ino::Entry { archive, id } => {
                let a = self.data.archives().get(archive).ok_or(FsError::NotFound)?;
                let node = a.tree().node(id).ok_or(FsError::NotFound)?;
                if !matches!(node.kind, Kind::Dir { .. }) {
                    return Err(FsError::NotDir);
                }
                let child = a
                    .tree()
                    .lookup(id, name.as_bytes())
                    .ok_or(FsError::NotFound)?;
                self.attr_of(archive, child)
            }
        }
    }

    pub(super) fn readlink(&self, ino: INodeNo) -> Result<&[u8], FsError> {
        if self.scratch_of(ino.0).is_some() {
            return Err(FsError::NotSymlink);
        }
        let (archive, id, _) = self.entry(ino)?;
        self.data
            .archives()
            .get(archive)
            .and_then(|a| a.tree().symlink_target(id))
            .ok_or(FsError::NotSymlink)
    }

    /// Sizes of the archives' data and entry counts, in blocks of the
    /// mount's block size; in the scratch directory, its space.
    pub(super) fn statfs(&self, ino: INodeNo) -> Result<StatFs, FsError> {
        if let Some(s) = self.scratch_of(ino.0) {
            return s.statfs();
        }
        let archives = self.data.archives();
        let bytes: u64 = archives.iter().map(|a| a.data_geometry().len()).sum();
        let files: u64 = archives.iter().map(|a| a.tree().len() as u64).sum();
        let bsize = self.owner.blksize;
        Ok(StatFs {
            blocks: bytes.div_ceil(u64::from(bsize)),
            free: 0,
            files,
            ffree: 0,
            bsize,
        })
    }

    /// Archives: anything but writing. Results directory: anything but
    /// reading a file (results are encrypted to the user). Scratch: anything
    /// (the kernel checks the permission bits).
    pub(super) fn access(&self, ino: INodeNo, mask: AccessFlags) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(ino.0) {
            return s.getattr(ino.0).map(|_| ());
        }
        if let Some(o) = self.output_of(ino.0) {
            let a = o.getattr(ino.0)?;
            if a.kind == FileType::RegularFile && mask.contains(AccessFlags::R_OK) {
                return Err(FsError::WriteOnly);
            }
            return Ok(());
        }
        if mask.contains(AccessFlags::W_OK) {
            return Err(FsError::ReadOnly);
        }
        self.getattr(ino).map(|_| ())
    }

    /// No entry has extended attributes.
    pub(super) fn getxattr(&self) -> Result<XattrList<'static>, FsError> {
        Err(FsError::NoXattr)
    }

    /// The (empty) attribute list: its size when asked with `size` 0.
    pub(super) fn listxattr(&self, size: u32) -> Result<XattrList<'static>, FsError> {
        Ok(if size == 0 {
            XattrList::Size(0)
        } else {
            XattrList::Data(&[])
        })
    }
}
