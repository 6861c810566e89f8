//! Everything that would change the tree: setattr, mknod, mkdir, unlink,
//! rmdir, symlink, rename, link, write, create, fallocate, copy_file_range,
//! the xattr setters and fsync.
//!
//! Inside the results directory each is forwarded to [`super::output`] (or
//! refused by its rules: no special files, no links, no renames out of it);
//! anywhere else the archives are read-only and the answer is `EROFS` (the
//! kernel already refuses most of it when the mount is read-only, that is
//! when there is no results directory).

use std::ffi::OsStr;
use std::time::SystemTime;

use fuser::{FileAttr, FileHandle, FopenFlags, INodeNo, RenameFlags, TimeOrNow};

use crate::crypto::Source;

use super::errors::FsError;
use super::output::{is_output, Output};
use super::Inner;

/// What setattr asks to change.
pub(super) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<TimeOrNow>,
}

impl<S: Source + 'static> Inner<S> {
    /// The results directory if `ino` is in it; else the archives refuse.
    fn writable(&self, ino: INodeNo) -> Result<&Output, FsError> {
        self.output_of(ino.0).ok_or(FsError::ReadOnly)
    }

    /// Mode, size (only to what it is) and mtime of a results entry; its
    /// owner cannot change.
    pub(super) fn setattr(&self, ino: INodeNo, set: SetAttr) -> Result<FileAttr, FsError> {
        let o = self.writable(ino)?;
        let owner = set.uid.is_some_and(|u| u != self.owner.uid)
            || set.gid.is_some_and(|g| g != self.owner.gid);
        let mtime = set.mtime.map(|t| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        });
        o.setattr(ino.0, set.mode, set.size, owner, mtime)
    }

    /// Regular files come through create(); nothing else is stored.
    pub(super) fn mknod(&self, parent: INodeNo) -> Result<FileAttr, FsError> {
        Err(if is_output(parent.0) {
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
        self.writable(parent)?.mkdir(parent.0, name, mode)
    }

    pub(super) fn unlink(&self, parent: INodeNo, name: &OsStr) -> Result<(), FsError> {
        self.writable(parent)?.unlink(parent.0, name)
    }

    pub(super) fn rmdir(&self, parent: INodeNo, name: &OsStr) -> Result<(), FsError> {
        self.writable(parent)?.rmdir(parent.0, name)
    }

    /// No symlinks anywhere (results are files and directories).
    pub(super) fn symlink(&self) -> Result<FileAttr, FsError> {
        Err(FsError::ReadOnly)
    }

    /// Within the results directory only; out of it is another device.
    pub(super) fn rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), FsError> {
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
    pub(super) fn link(&self) -> Result<FileAttr, FsError> {
        Err(FsError::ReadOnly)
    }

    pub(super) fn write(&self, ino: INodeNo, offset: u64, data: &[u8]) -> Result<u32, FsError> {
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
        let a = self.writable(parent)?.create(parent.0, name, mode)?;
        Ok((a, FileHandle(0), FopenFlags::FOPEN_DIRECT_IO))
    }

    pub(super) fn fallocate(&self, ino: INodeNo) -> Result<(), FsError> {
        Err(if is_output(ino.0) {
            FsError::Unsupported
        } else {
            FsError::ReadOnly
        })
    }

    /// Into the results directory: EXDEV makes cp and friends fall back to
    /// read and write.
    pub(super) fn copy_file_range(&self, ino_out: INodeNo) -> Result<u32, FsError> {
        Err(if is_output(ino_out.0) {
            FsError::CrossDevice
        } else {
            FsError::ReadOnly
        })
    }

    /// No extended attributes can be set or removed.
    pub(super) fn set_or_remove_xattr(&self) -> Result<(), FsError> {
        Err(FsError::ReadOnly)
    }

    /// Nothing to sync: results objects are made durable when finished.
    pub(super) fn fsync(&self) -> Result<(), FsError> {
        Ok(())
    }
}
