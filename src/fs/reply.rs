//! How an operation's outcome goes back to the kernel.
//!
//! Each fuser reply type learns, through [`Reply`], how to send the value of
//! a successful operation (attributes with their cache lifetime, an open
//! handle, bytes…). [`answer`] sends either that value or the errno of the
//! [`FsError`]: it is the only caller of [`FsError::errno`]. [`serve`] runs an
//! operation under [`guarded`], which turns a panic into a log line and
//! `EIO` (fuser replies `EIO` for a reply dropped unsent), so no callback can
//! take the mount down.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use fuser::{
    Errno, FileAttr, FileHandle, FopenFlags, Generation, INodeNo, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr,
};

use super::errors::FsError;
use super::inodes::{is_output, is_scratch};

/// How long the kernel may cache names and attributes (archives are immutable).
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Archive entries never change; the results and scratch directories do.
fn ttl(ino: INodeNo) -> Duration {
    if is_output(ino.0) || is_scratch(ino.0) {
        Duration::ZERO
    } else {
        TTL
    }
}

/// A fuser reply that can carry a `T` or an errno.
pub(super) trait Reply<T> {
    /// Sends the value of a successful operation.
    fn ok(self, value: T);
    /// Sends an errno.
    fn error(self, e: Errno);
}

/// Sends `result`: its value, or the errno of its error (the one place an
/// [`FsError`] becomes an errno).
pub(super) fn answer<T, R: Reply<T>>(reply: R, result: Result<T, FsError>) {
    match result {
        Ok(v) => reply.ok(v),
        Err(e) => reply.error(e.errno()),
    }
}

/// Runs a callback body, turning a panic into `EIO` (fuser replies `EIO`
/// for a reply dropped unsent) plus a log line.
pub(super) fn guarded(op: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        crate::log::log(
            0,
            format_args!("internal error in {op} (a bug; please report it); replied EIO"),
        );
    }
}

/// Runs operation `f` under [`guarded`] and [`answer`]s with its result.
pub(super) fn serve<T, R: Reply<T>>(op: &str, reply: R, f: impl FnOnce() -> Result<T, FsError>) {
    guarded(op, move || answer(reply, f()));
}

/// What statfs reports (see `statfs(2)`).
pub(super) struct StatFs {
    pub blocks: u64,
    pub free: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
}

/// What listxattr reports: the size of the list, or the list itself.
pub(super) enum XattrList<'a> {
    Size(u32),
    Data(&'a [u8]),
}

macro_rules! error_reply {
    ($t:ty) => {
        fn error(self, e: Errno) {
            <$t>::error(self, e)
        }
    };
}

impl Reply<FileAttr> for ReplyEntry {
    fn ok(self, a: FileAttr) {
        self.entry(&ttl(a.ino), &a, Generation(0));
    }
    error_reply!(ReplyEntry);
}

impl Reply<FileAttr> for ReplyAttr {
    fn ok(self, a: FileAttr) {
        self.attr(&ttl(a.ino), &a);
    }
    error_reply!(ReplyAttr);
}

impl<'a> Reply<&'a [u8]> for ReplyData {
    fn ok(self, data: &'a [u8]) {
        self.data(data);
    }
    error_reply!(ReplyData);
}

impl Reply<(FileHandle, FopenFlags)> for ReplyOpen {
    fn ok(self, (fh, flags): (FileHandle, FopenFlags)) {
        self.opened(fh, flags);
    }
    error_reply!(ReplyOpen);
}

impl Reply<(FileAttr, FileHandle, FopenFlags)> for ReplyCreate {
    fn ok(self, (a, fh, flags): (FileAttr, FileHandle, FopenFlags)) {
        self.created(&ttl(a.ino), &a, Generation(0), fh, flags);
    }
    error_reply!(ReplyCreate);
}

impl Reply<()> for ReplyEmpty {
    fn ok(self, (): ()) {
        ReplyEmpty::ok(self);
    }
    error_reply!(ReplyEmpty);
}

/// The entries were added by the operation; this ends the listing.
impl Reply<()> for ReplyDirectory {
    fn ok(self, (): ()) {
        ReplyDirectory::ok(self);
    }
    error_reply!(ReplyDirectory);
}

impl Reply<u32> for ReplyWrite {
    fn ok(self, written: u32) {
        self.written(written);
    }
    error_reply!(ReplyWrite);
}

impl Reply<StatFs> for ReplyStatfs {
    fn ok(self, s: StatFs) {
        self.statfs(
            s.blocks, s.free, s.free, s.files, s.ffree, s.bsize, 255, s.bsize,
        );
    }
    error_reply!(ReplyStatfs);
}

impl<'a> Reply<XattrList<'a>> for ReplyXattr {
    fn ok(self, x: XattrList<'a>) {
        match x {
            XattrList::Size(n) => self.size(n),
            XattrList::Data(d) => self.data(d),
        }
    }
    error_reply!(ReplyXattr);
}
