//! The one `impl Filesystem`: a thin dispatch. Each callback picks the
//! arguments its operation needs, runs it under `catch_unwind`
//! ([`serve`]/[`guarded`]) and sends its `Result` back through
//! [`super::reply::answer`]; no callback chooses an errno itself. The
//! operations live by kind in `meta`, `file`, `dir`, `write` and `kernel`.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, FileHandle, Filesystem, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::crypto::Source;

use super::reply::{answer, guarded, serve};
use super::write::SetAttr;
use super::HpcsFs;

impl<S: Source + 'static> Filesystem for HpcsFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        self.inner.init(config);
        Ok(())
    }

    // Metadata (meta.rs).

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        serve("lookup", reply, || self.inner.lookup(parent, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        serve("getattr", reply, || self.inner.getattr(ino));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        serve("readlink", reply, || self.inner.readlink(ino));
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        serve("statfs", reply, || self.inner.statfs(ino));
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        serve("access", reply, || self.inner.access(ino, mask));
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, _size: u32, reply: ReplyXattr) {
        serve("getxattr", reply, || self.inner.getxattr());
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        serve("listxattr", reply, || self.inner.listxattr(size));
    }

    // Files (file.rs).

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        serve("open", reply, || self.inner.open(ino, flags));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        guarded("read", || self.inner.read(ino, fh, offset, size, reply));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        serve("flush", reply, || self.inner.flush());
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        serve("release", reply, || self.inner.release(ino, fh));
    }

    // Directories (dir.rs).

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        serve("opendir", reply, || self.inner.opendir(ino));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        guarded("readdir", || {
            let r = self.inner.readdir(ino, offset, &mut reply);
            answer(reply, r);
        });
    }

    // Changes: the results directory, or EROFS (write.rs).

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        serve("setattr", reply, || self.inner.setattr(ino, set));
    }

    fn mknod(
        &self,
        _req: &Request,
        p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        serve("mknod", reply, || self.inner.mknod(p));
    }

    fn mkdir(&self, _req: &Request, p: INodeNo, n: &OsStr, m: u32, umask: u32, reply: ReplyEntry) {
        serve("mkdir", reply, || self.inner.mkdir(p, n, m & !umask));
    }

    fn unlink(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        serve("unlink", reply, || self.inner.unlink(p, n));
    }

    fn rmdir(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        serve("rmdir", reply, || self.inner.rmdir(p, n));
    }

    fn symlink(&self, _req: &Request, p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        serve("symlink", reply, || self.inner.symlink(p));
    }

    fn rename(
        &self,
        _req: &Request,
        p: INodeNo,
        n: &OsStr,
        np: INodeNo,
        nn: &OsStr,
        f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        serve("rename", reply, || self.inner.rename(p, n, np, nn, f));
    }

    fn link(&self, _req: &Request, _i: INodeNo, np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        serve("link", reply, || self.inner.link(np));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        serve("write", reply, || self.inner.write(ino, offset, data));
    }

    fn create(
        &self,
        _req: &Request,
        p: INodeNo,
        n: &OsStr,
        m: u32,
        umask: u32,
        _f: i32,
        reply: ReplyCreate,
    ) {
        serve("create", reply, || self.inner.create(p, n, m & !umask));
    }

    fn fsync(&self, _req: &Request, _i: INodeNo, _fh: FileHandle, _d: bool, reply: ReplyEmpty) {
        serve("fsync", reply, || self.inner.fsync());
    }

    fn fallocate(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        o: u64,
        l: u64,
        m: i32,
        reply: ReplyEmpty,
    ) {
        serve("fallocate", reply, || self.inner.fallocate(i, o, l, m));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        serve("copy_file_range", reply, || {
            self.inner.copy_file_range(ino_out)
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        serve("setxattr", reply, || self.inner.set_or_remove_xattr(ino));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        serve("removexattr", reply, || self.inner.set_or_remove_xattr(ino));
    }
}
