//! Every failure of a FUSE operation, on the archive side, in the results
//! directory and in the scratch directory alike, and the one place that turns it into an errno (gocryptfs
//! `doRead` style). Operations return `Result<_, FsError>`; only
//! [`FsError::errno`] decides what the kernel sees, and only `reply::answer`
//! calls it. Authentication failures, I/O errors on the backing archive and
//! internal errors are all `EIO`: a read either returns exactly the authentic
//! bytes asked for, or fails.

use std::io;

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
    /// Any modification outside the results directory: the archives are
    /// read-only (also: a new entry in a results directory already closed).
    ReadOnly,
    /// No such extended attribute (the archive stores none).
    NoXattr,
    /// An unknown or already released file handle, or a write to a results
    /// file that is no longer being written.
    BadHandle,
    /// A request outside what the archive holds (bad offset arithmetic).
    Range,
    /// The backing archive could not be read or failed authentication.
    Archive(FormatError),
    /// A bug: a panic was caught or an invariant did not hold.
    Internal(&'static str),
    /// An operation the filesystem does not implement, so the kernel stops
    /// sending it (FLUSH).
    NotImplemented,
    /// The name already exists (results directory).
    Exists,
    /// rmdir, or rename over, a directory that is not empty.
    NotEmpty,
    /// An empty name, `.`, `..`, a name with `/`, or a rename that would
    /// move a directory under itself or exchange two entries.
    Invalid,
    /// A name longer than 255 bytes.
    NameTooLong,
    /// Refused by the results rules: results are write-once and only grow,
    /// their owner is fixed, nothing but files and directories is stored.
    NotPermitted,
    /// Reading a results file: results are encrypted to the user, the node
    /// cannot read them back.
    WriteOnly,
    /// A results file written anywhere but at its end.
    NotSequential,
    /// A rename or copy between the results directory and the archives.
    CrossDevice,
    /// fallocate in the results directory.
    Unsupported,
    /// Writing a results object, or reading or writing the scratch
    /// directory's backing file, failed (its errno is kept, `EIO` when it
    /// has none).
    Storage(io::Error),
    /// The scratch directory is full (its size limit, or its entry limit).
    NoSpace,
    /// A scratch file would grow past the largest size it can have.
    TooBig,
    /// A scratch block failed authentication, or its stored copy is missing
    /// (changed, moved, rolled back or truncated on storage).
    Tampered,
}

impl FsError {
    /// The errno the kernel gets for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::NotSymlink | FsError::Range | FsError::Invalid => Errno::EINVAL,
            FsError::ReadOnly => Errno::EROFS,
            FsError::NoXattr => Errno::NO_XATTR,
            FsError::BadHandle => Errno::EBADF,
            FsError::Archive(_) | FsError::Internal(_) | FsError::Tampered => Errno::EIO,
            FsError::NotImplemented => Errno::ENOSYS,
            FsError::Exists => Errno::EEXIST,
            FsError::NotEmpty => Errno::ENOTEMPTY,
            FsError::NameTooLong => Errno::ENAMETOOLONG,
            FsError::NotPermitted => Errno::EPERM,
            FsError::WriteOnly => Errno::EACCES,
            FsError::NotSequential => Errno::ESPIPE,
            FsError::CrossDevice => Errno::EXDEV,
            FsError::Unsupported => Errno::EOPNOTSUPP,
            FsError::Storage(e) => Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO)),
            FsError::NoSpace => Errno::ENOSPC,
            FsError::TooBig => Errno::EFBIG,
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

    #[test]
    fn results_failures_keep_their_errno() {
        let full = FsError::Storage(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.errno(), Errno::ENOSPC);
        let other = FsError::Storage(io::Error::other("no errno"));
        assert_eq!(other.errno(), Errno::EIO);
        for (e, want) in [
            (FsError::Exists, Errno::EEXIST),
            (FsError::NotEmpty, Errno::ENOTEMPTY),
            (FsError::Invalid, Errno::EINVAL),
            (FsError::NameTooLong, Errno::ENAMETOOLONG),
            (FsError::NotPermitted, Errno::EPERM),
            (FsError::WriteOnly, Errno::EACCES),
            (FsError::NotSequential, Errno::ESPIPE),
            (FsError::CrossDevice, Errno::EXDEV),
            (FsError::Unsupported, Errno::EOPNOTSUPP),
            (FsError::NotImplemented, Errno::ENOSYS),
            (FsError::BadHandle, Errno::EBADF),
            (FsError::NoSpace, Errno::ENOSPC),
            (FsError::TooBig, Errno::EFBIG),
            (FsError::Tampered, Errno::EIO),
        ] {
            assert_eq!(e.errno(), want, "{e:?}");
        }
    }
}
