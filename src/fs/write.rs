//! Everything that would change the tree: setattr, mknod, mkdir, unlink,
//! rmdir, symlink, rename, link, write, create, fallocate, copy_file_range,
//! the xattr setters and fsync.
//!
//! Inside the results directory each is forwarded to [`super::output`] (or
//! refused by its rules: no special files, no links, no renames out of it);
//! inside the scratch directory to [`super::scratch`] (files and
//! directories, no special files, links or xattrs, nothing moved in or out
//! by rename); anywhere else the archives are read-only and the answer is
//! `EROFS` (the kernel already refuses most of it when the mount is
//! read-only, that is when there is neither a results nor a scratch
//! directory).

use std::ffi::OsStr;
use std::time::SystemTime;

use fuser::{FileAttr, FileHandle, FopenFlags, INodeNo, RenameFlags, TimeOrNow};

use crate::crypto::Source;

use super::errors::FsError;
use super::output::{is_output, Output};
use super::scratch::{is_scratch, Change};
use super::Inner;

/// What setattr asks to change.
pub(super) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

fn when(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl<S: Source + 'static> Inner<S> {
    /// The results directory if `ino` is in it; else the archives refuse.
    fn writable(&self, ino: INodeNo) -> Result<&Output, FsError> {
        self.output_of(ino.0).ok_or(FsError::ReadOnly)
    }

    /// Mode, size (only to what it is) and mtime of a results entry; its
    /// owner cannot change.
    pub(super) fn setattr(&self, ino: INodeNo, set: SetAttr) -> Result<FileAttr, FsError> {
        let owner = set.uid.is_some_and(|u| u != self.owner.uid)
            || set.gid.is_some_and(|g| g != self.owner.gid);
        if let Some(s) = self.scratch_of(ino.0) {
            let ch = Change {
                mode: set.mode,
                owner_change: owner,
                size: set.size,
                atime: set.atime.map(when),
                mtime: set.mtime.map(when),
            };
            return s.setattr(ino.0, ch);
        }
        let o = self.writable(ino)?;
        o.setattr(ino.0, set.mode, set.size, owner, set.mtime.map(when))
    }

    /// Regular files come through create(); nothing else is stored.
    pub(super) fn mknod(&self, parent: INodeNo) -> Result<FileAttr, FsError> {
        Err(if is_output(parent.0) || is_scratch(parent.0) {
            FsError::NotPermitted
        } else {
            FsError::ReadOnly
        })
    }

    pub(super) fn mkdir(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<FileAttr, FsError> {
        if let Some(s) = self.scratch_of(parent.0) {
            return s.mkdir(parent.0, name, mode);
        }
        self.writable(parent)?.mkdir(parent.0, name, mode)
    }

    pub(super) fn unlink(&self, parent: INodeNo, name: &OsStr) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(parent.0) {
            return s.unlink(parent.0, name);
        }
        self.writable(parent)?.unlink(parent.0, name)
    }

    pub(super) fn rmdir(&self, parent: INodeNo, name: &OsStr) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(parent.0) {
            return s.rmdir(parent.0, name);
        }
        self.writable(parent)?.rmdir(parent.0, name)
    }

    /// No symlinks anywhere (results and scratch hold files and directories).
    pub(super) fn symlink(&self, parent: INodeNo) -> Result<FileAttr, FsError> {
        Err(if is_scratch(parent.0) {
            FsError::NotPermitted
        } else {
            FsError::ReadOnly
        })
    }

    /// Within the results or the scratch directory only; out of either is
    /// another device.
    pub(super) fn rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(parent.0) {
            if !is_scratch(new_parent.0) {
                return Err(FsError::CrossDevice);
            }
            let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
            return s.rename(parent.0, name, new_parent.0, new_name, noreplace, exchange);
        }
        let o = self.writable(parent)?;
        if !is_output(new_parent.0) {
            return Err(FsError::CrossDevice);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return Err(FsError::Invalid);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        o.rename(parent.0, name, new_parent.0, new_name, noreplace)
    }

    /// No hard links anywhere.
    pub(super) fn link(&self, new_parent: INodeNo) -> Result<FileAttr, FsError> {
        Err(if is_scratch(new_parent.0) {
            FsError::NotPermitted
        } else {
            FsError::ReadOnly
        })
    }

    pub(super) fn write(&self, ino: INodeNo, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        if let Some(s) = self.scratch_of(ino.0) {
            return s.write(ino.0, offset, data);
        }
        self.writable(ino)?.write(ino.0, offset, data)
    }

    /// A new results file, written past the page cache straight into its
    /// encrypting writer.
    pub(super) fn create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> Result<(FileAttr, FileHandle, FopenFlags), FsError> {
        if let Some(s) = self.scratch_of(parent.0) {
            let (a, flags) = s.create(parent.0, name, mode)?;
            return Ok((a, FileHandle(0), flags));
        }
        let a = self.writable(parent)?.create(parent.0, name, mode)?;
        Ok((a, FileHandle(0), FopenFlags::FOPEN_DIRECT_IO))
    }

    pub(super) fn fallocate(
        &self,
        ino: INodeNo,
        offset: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(ino.0) {
            return s.fallocate(ino.0, offset, len, mode);
        }
        Err(if is_output(ino.0) {
            FsError::Unsupported
        } else {
            FsError::ReadOnly
        })
    }

    /// Into the results or scratch directory: EXDEV makes cp and friends
    /// fall back to read and write.
    pub(super) fn copy_file_range(&self, ino_out: INodeNo) -> Result<u32, FsError> {
        Err(if is_output(ino_out.0) || is_scratch(ino_out.0) {
            FsError::CrossDevice
        } else {
            FsError::ReadOnly
        })
    }

    /// No extended attributes can be set or removed (in scratch: not
    /// supported, which `cp -a` accepts quietly).
    pub(super) fn set_or_remove_xattr(&self, ino: INodeNo) -> Result<(), FsError> {
        Err(if is_scratch(ino.0) {
            FsError::Unsupported
        } else {
            FsError::ReadOnly
        })
    }

    /// Nothing to sync: results objects are made durable when finished, and
    /// scratch blocks are in the backing file as soon as written (durability
    /// beyond the mount would be pointless: the key dies with it).
    pub(super) fn fsync(&self) -> Result<(), FsError> {
        Ok(())
    }
}
