//! Every failure of a FUSE operation, and the one place that turns it into an
//! errno (gocryptfs `doRead` style). Callbacks build an [`FsError`]; only
//! [`FsError::errno`] decides what the kernel sees. Authentication failures,
//! I/O errors on the backing archive and internal errors are all `EIO`: a read
//! either returns exactly the authentic bytes asked for, or fails.

use fuser::Errno;

use crate::crypto::Error as FormatError;

/// Why an operation failed.
#[derive(Debug)]
pub enum FsError {
    /// No such entry (bad inode or name).
    NotFound,
    /// A directory operation on a non-directory.
    NotDir,
    /// A file operation on a directory.
    IsDir,
    /// readlink on something that is not a symlink.
    NotSymlink,
    /// Any modification: the mount is read-only.
    ReadOnly,
    /// No such extended attribute (the archive stores none).
    NoXattr,
    /// An unknown or already released file handle.
    BadHandle,
    /// A request outside what the archive holds (bad offset arithmetic).
    Range,
    /// The backing archive could not be read or failed authentication.
    Archive(FormatError),
    /// A bug: a panic was caught or an invariant did not hold.
    Internal(&'static str),
    /// From the results directory, already an errno.
    Output(Errno),
}

impl FsError {
    /// The errno the kernel gets for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::NotSymlink => Errno::EINVAL,
            FsError::ReadOnly => Errno::EROFS,
            FsError::NoXattr => Errno::NO_XATTR,
            FsError::BadHandle => Errno::EBADF,
            FsError::Range => Errno::EINVAL,
            FsError::Archive(_) | FsError::Internal(_) => Errno::EIO,
            FsError::Output(e) => *e,
        }
    }
}

impl From<FormatError> for FsError {
    fn from(e: FormatError) -> FsError {
        FsError::Archive(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_failures_are_eio_and_writes_are_erofs() {
        let auth = FsError::Archive(FormatError::ChunkAuth {
            stream: crate::crypto::StreamKind::Data,
            chunk: 3,
        });
        assert_eq!(auth.errno(), Errno::EIO);
        let trunc = FsError::Archive(FormatError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "short",
        )));
        assert_eq!(trunc.errno(), Errno::EIO);
        assert_eq!(FsError::Internal("x").errno(), Errno::EIO);
        assert_eq!(FsError::ReadOnly.errno(), Errno::EROFS);
        assert_eq!(FsError::NotFound.errno(), Errno::ENOENT);
    }
}
