//! The read-only FUSE filesystem over unlocked archives (fuser, multi-threaded).
//!
//! [`HpcsFs`] serves one archive at the mount root, or several under a
//! synthetic root that lists them by name. It takes a plain, already
//! validated [`MountConfig`] and [`Archive`]s; it knows nothing of keys,
//! Vault, the command line or async runtimes. Metadata comes from the
//! in-memory index with long TTLs (an archive never changes). Data goes
//! through [`read::DataPath`]: a bounded, locked, shared plaintext cache with
//! single-flight loading ([`cache`]) and per-handle read-ahead
//! ([`readahead`]) run on a small prefetch pool. Every callback body runs
//! under `catch_unwind` and reports failures through [`errors::FsError`],
//! the one place errors become errnos; reads reply with exactly the bytes
//! asked for (short only at end of file) or `EIO`. Writes get `EROFS`.

pub mod attr;
pub mod bench;
pub mod cache;
pub mod errors;
pub mod output;
pub mod read;
pub mod readahead;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenAccMode,
    OpenFlags, RenameFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, SessionACL, TimeOrNow, WriteFlags,
};

use crate::crypto::index::{Kind, Node, NodeId};
use crate::crypto::{Archive, Source};
use crate::secmem::{Region, SlotArena};

use attr::{Ino, Inodes, Owner};
use cache::ChunkCache;
use errors::FsError;
use output::{is_output, Output, OUTPUT_INO};
use read::{BenchMode, DataPath};
use readahead::Sequential;

/// How long the kernel may cache names and attributes (archives are immutable).
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Archive entries never change; the results directory does.
fn ttl(ino: INodeNo) -> Duration {
    if is_output(ino.0) {
        Duration::ZERO
    } else {
        TTL
    }
}

/// Largest read the kernel sends (fs.fuse.max_pages_limit = 256 pages).
const MAX_REQUEST: usize = 1 << 20;

/// Bytes per read-ahead backing read (one Lustre RPC at the common 1 MiB
/// `max_pages_per_rpc`); a refill is split into reads of this size.
const PREFETCH_PIECE: u64 = 1 << 20;

/// Smallest number of cache slots, whatever --cache-size says.
const MIN_SLOTS: usize = 16;

/// Settings of one mount, already validated by the caller.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Upper bound of the plaintext cache in bytes.
    pub cache_bytes: u64,
    /// Read-ahead per sequential handle in bytes (0 = off).
    pub readahead_bytes: u64,
    /// Open files with `FOPEN_DIRECT_IO` (bypass the kernel page cache):
    /// `Some(true)` always, `Some(false)` never, `None` (auto) when the
    /// kernel allows shared mmap of direct-I/O files (Linux 6.6+), so
    /// nothing that works with the page cache breaks.
    pub direct_io: Option<bool>,
    /// Owner shown on every entry.
    pub uid: u32,
    /// Group shown on every entry.
    pub gid: u32,
    /// FUSE dispatch threads.
    pub threads: usize,
    /// Threads loading read-ahead.
    pub prefetch_threads: usize,
    /// Let other users (and root) in: `allow_other`.
    pub allow_other: bool,
    /// Let root in (but no other user): fuser's `allow_root`.
    pub allow_root: bool,
    /// Serve zeros instead of archive data (benchmark ceiling only).
    pub null_data: bool,
    /// Read the archive as usual but skip decryption and authentication,
    /// serving the stored bytes (benchmark ceiling only).
    pub no_crypt: bool,
    /// Source name shown in the mount table.
    pub fsname: String,
    /// 0 = warnings only, 1 = info, 2 = debug.
    pub verbosity: u8,
    /// Show a single archive under its name in a top directory (as several
    /// archives always are) instead of at the mount point itself.
    pub force_top: bool,
}

impl Default for MountConfig {
    fn default() -> MountConfig {
        MountConfig {
            cache_bytes: 256 << 20,
            readahead_bytes: 16 << 20,
            direct_io: None,
            // SAFETY: getuid/getgid cannot fail and touch no memory.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
            threads: 4,
            prefetch_threads: 2,
            allow_other: false,
            allow_root: false,
            null_data: false,
            no_crypt: false,
            fsname: "hpcs".into(),
            verbosity: 0,
            force_top: false,
        }
    }
}

/// One archive to serve, with the name it has under a shared root and a
/// label for log lines (typically the archive path).
pub struct MountedArchive<S> {
    /// Directory name under the shared root (unused for a single archive).
    pub name: String,
    /// For log lines.
    pub label: String,
    /// The unlocked archive.
    pub archive: Archive<S>,
}

/// What a mount reports about itself after construction.
#[derive(Clone, Debug)]
pub struct CacheInfo {
    /// Slots in the cache.
    pub slots: usize,
    /// Bytes per slot.
    pub slot_len: usize,
    /// Whether the cache memory is locked in RAM.
    pub locked: bool,
}

struct Handle {
    archive: usize,
    node: NodeId,
    seq: Mutex<Sequential>,
}

struct Inner<S> {
    names: Vec<String>,
    labels: Vec<String>,
    data: DataPath<S>,
    inodes: Inodes,
    owner: Owner,
    cfg: MountConfig,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    pool: Option<rayon::ThreadPool>,
    inflight: AtomicUsize,
    /// Resolved at FUSE init from `cfg.direct_io` and the kernel's abilities.
    direct_io: AtomicBool,
    /// The write-only results directory under the top, if any.
    output: Option<Output>,
}

/// The filesystem. Cheap to clone a [`FsHandle`] from for shutdown.
pub struct HpcsFs<S> {
    inner: Arc<Inner<S>>,
}

/// A handle kept by the binary to wipe the cache and close the results
/// directory before exiting.
pub struct FsHandle {
    wipe: Box<dyn Fn() + Send + Sync>,
    open_outputs: Box<dyn Fn() -> usize + Send + Sync>,
    close_output: Box<dyn Fn(bool) -> Option<output::CloseReport> + Send + Sync>,
}

impl FsHandle {
    /// Drops every cached chunk (slots are wiped).
    pub fn wipe(&self) {
        (self.wipe)();
    }

    /// Files of the results directory still open for writing.
    pub fn open_outputs(&self) -> usize {
        (self.open_outputs)()
    }

    /// Ends the results directory and writes its manifest (see
    /// [`Output::close`]); `None` without one.
    pub fn close_output(&self, finish_open: bool) -> Option<output::CloseReport> {
        (self.close_output)(finish_open)
    }
}

impl<S: Source + 'static> HpcsFs<S> {
    /// Builds the filesystem. Fails only if the cache memory cannot be mapped.
    /// `output` adds a write-only results directory of that name to the top
    /// directory (RESULTS.md).
    pub fn new(
        archives: Vec<MountedArchive<S>>,
        cfg: MountConfig,
        output: Option<(String, crate::results::Run)>,
    ) -> io::Result<(HpcsFs<S>, CacheInfo)> {
        crate::log::set_verbosity(cfg.verbosity);
        let mut names = Vec::new();
        let mut labels = Vec::new();
        let mut list = Vec::new();
        for m in archives {
            names.push(m.name);
            labels.push(m.label);
            list.push(m.archive);
        }
        if list.is_empty() {
            return Err(io::Error::other("no archive to mount"));
        }
        let slot_len = DataPath::<S>::max_stored_chunk(&list);
        let slots = ((cfg.cache_bytes / slot_len as u64) as usize).max(MIN_SLOTS);
        let arena = SlotArena::new(slot_len, slots)?;
        let info = CacheInfo {
            slots: arena.count(),
            slot_len: arena.slot_len(),
            locked: arena.is_locked(),
        };
        let chunk = list
            .iter()
            .map(|a| a.data_geometry().chunk_size())
            .max()
            .unwrap_or(65536);
        let owner = Owner {
            uid: cfg.uid,
            gid: cfg.gid,
            blksize: chunk.clamp(4096, MAX_REQUEST as u64) as u32,
        };
        let inodes = Inodes::new(
            &list.iter().map(|a| a.tree().len()).collect::<Vec<_>>(),
            cfg.force_top || output.is_some(),
        );
        if let Some((name, _)) = &output {
            if names.iter().any(|n| n == name) {
                return Err(io::Error::other(format!(
                    "the output directory {name:?} has the name of an archive"
                )));
            }
        }
        let output = output.map(|(name, run)| Output::new(name, run, owner));
        let pool = if cfg.readahead_bytes > 0 && !cfg.null_data {
            rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.prefetch_threads.max(1))
                .thread_name(|i| format!("hpcs-prefetch-{i}"))
                .build()
                .ok()
        } else {
            None
        };
        let mode = if cfg.null_data {
            BenchMode::Zeros
        } else if cfg.no_crypt {
            BenchMode::NoCrypt
        } else {
            BenchMode::Real
        };
        let data = DataPath::new(list, ChunkCache::new(arena), mode);
        let cfg_direct = cfg.direct_io;
        let inner = Arc::new(Inner {
            names,
            labels,
            data,
            inodes,
            owner,
            cfg,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            pool,
            inflight: AtomicUsize::new(0),
            direct_io: AtomicBool::new(cfg_direct == Some(true)),
            output,
        });
        Ok((HpcsFs { inner }, info))
    }

    /// A handle to wipe the cache at shutdown.
    pub fn handle(&self) -> FsHandle {
        let (a, b, c) = (
            Arc::clone(&self.inner),
            Arc::clone(&self.inner),
            Arc::clone(&self.inner),
        );
        FsHandle {
            wipe: Box::new(move || a.data.cache().clear()),
            open_outputs: Box::new(move || b.output.as_ref().map_or(0, |o| o.open_files())),
            close_output: Box::new(move |finish| c.output.as_ref().map(|o| o.close(finish))),
        }
    }
}

/// The fuser session configuration for `cfg`: read-only, nosuid, nodev,
/// noatime, kernel permission checks, owner-only unless asked otherwise,
/// multi-threaded dispatch with one cloned /dev/fuse fd per thread.
///
/// With a results directory (`writable`), the mount is read-write and every
/// callback outside that directory refuses changes with EROFS itself.
pub fn fuser_config(cfg: &MountConfig, writable: bool) -> fuser::Config {
    let mut c = fuser::Config::default();
    c.mount_options = vec![
        if writable {
            MountOption::RW
        } else {
            MountOption::RO
        },
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
        MountOption::FSName(cfg.fsname.clone()),
        MountOption::Subtype("hpcs".into()),
    ];
    c.acl = if cfg.allow_other {
        SessionACL::All
    } else if cfg.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    c.n_threads = Some(cfg.threads.max(1));
    c.clone_fd = true;
    c
}

/// Mounts `fs` at `mountpoint` and completes the FUSE handshake; the caller
/// runs (or spawns) the returned session.
pub fn mount<S: Source + 'static>(
    fs: HpcsFs<S>,
    mountpoint: &Path,
    cfg: &MountConfig,
) -> io::Result<fuser::Session<HpcsFs<S>>> {
    let writable = fs.inner.output.is_some();
    fuser::Session::new(fs, mountpoint, &fuser_config(cfg, writable))
}

thread_local! {
    /// Per-thread reply buffer in locked, non-dumpable memory.
    static REPLY_BUF: RefCell<Option<Region>> = const { RefCell::new(None) };
}

/// Runs `f` on a locked per-thread buffer of at least `n` bytes.
fn with_reply_buf<R>(n: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, FsError> {
    REPLY_BUF.with(|cell| {
        let mut b = cell
            .try_borrow_mut()
            .map_err(|_| FsError::Internal("reply buffer busy"))?;
        if b.as_ref().is_none_or(|r| r.len() < n) {
            *b = None; // wiped on drop
            *b = Some(
                Region::new(n.max(MAX_REQUEST)).map_err(|_| FsError::Internal("reply buffer"))?,
            );
        }
        let r = b.as_mut().ok_or(FsError::Internal("reply buffer"))?;
        let s = r
            .as_mut_slice()
            .get_mut(..n)
            .ok_or(FsError::Internal("reply buffer"))?;
        Ok(f(s))
    })
}

/// Runs a callback body, turning a panic into `EIO` (fuser replies `EIO`
/// for a reply dropped unsent) plus a log line.
fn guarded(op: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        crate::log::log(
            0,
            format_args!("internal error in {op} (a bug; please report it); replied EIO"),
        );
    }
}

impl<S: Source + 'static> Inner<S> {
    /// The results directory, if `ino` is in it.
    fn output_of(&self, ino: u64) -> Option<&Output> {
        self.output.as_ref().filter(|_| is_output(ino))
    }

    fn resolve(&self, ino: INodeNo) -> Result<Ino, FsError> {
        self.inodes.resolve(ino.0).ok_or(FsError::NotFound)
    }

    fn entry(&self, ino: INodeNo) -> Result<(usize, NodeId, &Node), FsError> {
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

    fn attr_of(&self, archive: usize, id: NodeId) -> Result<fuser::FileAttr, FsError> {
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

    fn getattr(&self, ino: INodeNo) -> Result<fuser::FileAttr, FsError> {
        if let Some(o) = self.output_of(ino.0) {
            return o.getattr(ino.0).map_err(FsError::Output);
        }
        match self.resolve(ino)? {
            Ino::Top => Ok(attr::top_attr(
                &self.owner,
                self.names.len() + usize::from(self.output.is_some()),
            )),
            Ino::Entry { archive, id } => self.attr_of(archive, id),
        }
    }

    fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<fuser::FileAttr, FsError> {
        if let Some(o) = self.output_of(parent.0) {
            return o.lookup(parent.0, name).map_err(FsError::Output);
        }
        match self.resolve(parent)? {
            Ino::Top => {
                if let Some(o) = self
                    .output
                    .as_ref()
                    .filter(|o| o.name().as_bytes() == name.as_bytes())
                {
                    return o.getattr(OUTPUT_INO).map_err(FsError::Output);
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

    fn readlink(&self, ino: INodeNo) -> Result<&[u8], FsError> {
        let (archive, id, _) = self.entry(ino)?;
        self.data
            .archives()
            .get(archive)
            .and_then(|a| a.tree().symlink_target(id))
            .ok_or(FsError::NotSymlink)
    }

    fn open(&self, ino: INodeNo, flags: OpenFlags) -> Result<(FileHandle, FopenFlags), FsError> {
        if let Some(o) = self.output_of(ino.0) {
            let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
            o.open(ino.0, write).map_err(FsError::Output)?;
            // No page cache: the bytes go straight to the encrypting writer.
            return Ok((FileHandle(0), FopenFlags::FOPEN_DIRECT_IO));
        }
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return Err(FsError::ReadOnly);
        }
        let (archive, id, node) = self.entry(ino)?;
        if !matches!(node.kind, Kind::File { .. }) {
            return Err(FsError::IsDir);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            archive,
            node: id,
            seq: Mutex::new(Sequential::default()),
        });
        self.handles
            .lock()
            .map_err(|_| FsError::Internal("handle table"))?
            .insert(fh, h);
        let fl = if self.direct_io.load(Ordering::Relaxed) {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        Ok((FileHandle(fh), fl))
    }

    fn release(&self, fh: FileHandle) {
        if let Ok(mut h) = self.handles.lock() {
            h.remove(&fh.0);
        }
    }

    fn path_of(&self, archive: usize, id: NodeId) -> String {
        let p = self
            .data
            .archives()
            .get(archive)
            .map(|a| a.tree().path(id))
            .unwrap_or_default();
        let label = self.labels.get(archive).map_or("", |s| s.as_str());
        format!("{label}: /{}", String::from_utf8_lossy(&p))
    }
}

impl<S: Source + 'static> HpcsFs<S> {
    fn read_impl(&self, ino: INodeNo, fh: FileHandle, offset: u64, size: u32, reply: ReplyData) {
        let inner = &self.inner;
        if inner.output_of(ino.0).is_some() {
            // Results are encrypted to the user: the node cannot read them.
            return reply.error(Errno::EACCES);
        }
        let (archive, id, node) = match inner.entry(ino) {
            Ok(x) => x,
            Err(e) => return reply.error(e.errno()),
        };
        let Kind::File {
            offset: base,
            size: fsize,
            ..
        } = node.kind
        else {
            return reply.error(FsError::IsDir.errno());
        };
        if offset >= fsize || size == 0 {
            return reply.data(&[]);
        }
        let n = (u64::from(size)).min(fsize - offset) as usize;
        // Read-ahead is decided before this read is served: its pieces load
        // while this one does, and reads reach it in the order the kernel
        // sent them (after the reply, the next read of a synchronous reader
        // can overtake this one on another thread).
        self.maybe_prefetch(archive, id, fh, (base, fsize), offset, n as u64);
        let res = with_reply_buf(n, |buf| {
            match inner.data.read(archive, base + offset, buf) {
                Ok(()) => {
                    reply.data(buf);
                    Ok(())
                }
                Err(f) => Err((f, reply)),
            }
        });
        // The log line is written before the error reply, so whoever sees the
        // EIO can already find its explanation in the log.
        match res {
            Ok(Ok(())) => {}
            Ok(Err((f, reply))) => {
                let line = f.error_line(&inner.path_of(archive, id));
                crate::log::log(0, format_args!("{line}; read returned EIO"));
                reply.error(f.error.errno());
            }
            Err(e) => {
                let path = inner.path_of(archive, id);
                crate::log::log(0, format_args!("{path}: {e:?}; read returned EIO"));
            }
        }
    }

    fn maybe_prefetch(
        &self,
        archive: usize,
        id: NodeId,
        fh: FileHandle,
        (base, fsize): (u64, u64),
        off: u64,
        len: u64,
    ) {
        let inner = &self.inner;
        let Some(pool) = inner.pool.as_ref() else {
            return;
        };
        let Some(a) = inner.data.archives().get(archive) else {
            return;
        };
        let g = *a.data_geometry();
        let window = inner.cfg.readahead_bytes.div_ceil(g.chunk_size());
        // Refills are split into pieces of PREFETCH_PIECE bytes, each its own
        // backing read on its own pool thread: on storage where every request
        // costs milliseconds (Lustre), several are in flight at once, and the
        // window is topped up a piece at a time instead of half at once.
        let piece = (PREFETCH_PIECE / g.chunk_size()).max(1);
        let handle = inner
            .handles
            .lock()
            .ok()
            .and_then(|h| h.get(&fh.0).cloned());
        let Some(handle) = handle else { return };
        if handle.archive != archive || handle.node != id {
            return;
        }
        let range = match handle.seq.lock() {
            Ok(mut s) => s.on_read(&g, base, fsize, off, len, window, piece),
            Err(_) => None,
        };
        let Some(range) = range else { return };
        let limit = inner.cfg.prefetch_threads.max(1) * 2;
        let mut start = range.start;
        while start < range.end {
            let part = start..range.end.min(start.saturating_add(piece));
            start = part.end;
            if inner.inflight.fetch_add(1, Ordering::AcqRel) >= limit {
                inner.inflight.fetch_sub(1, Ordering::AcqRel);
                // Too many pieces queued: a later read asks for the rest.
                if let Ok(mut s) = handle.seq.lock() {
                    s.unrequest(part.start);
                }
                return;
            }
            if crate::log::enabled(crate::log::DEBUG) {
                crate::log::log(
                    2,
                    format_args!(
                        "prefetch {} chunks {}..{}",
                        inner.path_of(archive, id),
                        part.start,
                        part.end
                    ),
                );
            }
            let worker = Arc::clone(inner);
            pool.spawn(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| worker.data.prefetch(archive, part)));
                worker.inflight.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }

    fn readdir_impl(&self, ino: INodeNo, offset: u64, mut reply: ReplyDirectory) {
        let inner = &self.inner;
        if let Some(o) = inner.output_of(ino.0) {
            match o.readdir(ino.0, offset) {
                Ok(entries) => {
                    for (k, (i, kind, name)) in entries.iter().enumerate() {
                        let next = offset + k as u64 + 1;
                        if reply.add(INodeNo(*i), next, *kind, OsStr::from_bytes(name)) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(e),
            }
            return;
        }
        let resolved = match inner.resolve(ino) {
            Ok(r) => r,
            Err(e) => return reply.error(e.errno()),
        };
        // Entries: ".", "..", then children; offset k resumes after entry k-1.
        let mut idx = offset;
        match resolved {
            Ino::Top => {
                let out = inner.output.as_ref().map(|o| o.name().as_bytes());
                let total = 2 + inner.names.len() as u64 + u64::from(out.is_some());
                while idx < total {
                    let (ino_k, kind, name): (u64, FileType, &[u8]) = match idx {
                        0 => (1, FileType::Directory, b"."),
                        1 => (1, FileType::Directory, b".."),
                        k => {
                            let a = (k - 2) as usize;
                            match inner.names.get(a) {
                                Some(n) => (
                                    inner.inodes.ino(a, attr::ARCHIVE_ROOT),
                                    FileType::Directory,
                                    n.as_bytes(),
                                ),
                                None => match out {
                                    Some(n) => (OUTPUT_INO, FileType::Directory, n),
                                    None => break,
                                },
                            }
                        }
                    };
                    if reply.add(INodeNo(ino_k), idx + 1, kind, OsStr::from_bytes(name)) {
                        break;
                    }
                    idx += 1;
                }
            }
            Ino::Entry { archive, id } => {
                let Some(a) = inner.data.archives().get(archive) else {
                    return reply.error(Errno::ENOENT);
                };
                let tree = a.tree();
                let Some(node) = tree.node(id) else {
                    return reply.error(Errno::ENOENT);
                };
                if !matches!(node.kind, Kind::Dir { .. }) {
                    return reply.error(FsError::NotDir.errno());
                }
                let kids = tree.children(id);
                let total = 2 + kids.len() as u64;
                while idx < total {
                    let (ino_k, kind, name): (u64, FileType, &[u8]) = match idx {
                        0 => (ino.0, FileType::Directory, b"."),
                        1 => {
                            let p = if id == attr::ARCHIVE_ROOT && inner.inodes.has_top() {
                                1
                            } else {
                                inner.inodes.ino(archive, node.parent)
                            };
                            (p, FileType::Directory, b"..")
                        }
                        k => {
                            let Some(&c) = kids.get((k - 2) as usize) else {
                                break;
                            };
                            let Some(cn) = tree.node(c) else { break };
                            (
                                inner.inodes.ino(archive, attr::inode_id(c, cn)),
                                attr::file_type(&cn.kind),
                                tree.name(c),
                            )
                        }
                    };
                    if reply.add(INodeNo(ino_k), idx + 1, kind, OsStr::from_bytes(name)) {
                        break;
                    }
                    idx += 1;
                }
            }
        }
        reply.ok();
    }
}

impl read::ReadFailure {
    fn error_line(&self, path: &str) -> String {
        match &self.error {
            FsError::Archive(crate::crypto::Error::ChunkAuth { chunk, .. }) => {
                format!("{path}: data chunk {chunk} failed authentication (archive modified or damaged)")
            }
            FsError::Archive(crate::crypto::Error::Io(e)) => format!(
                "{path}: reading data chunk {} from the archive failed: {e} (archive truncated or unreadable?)",
                self.chunk
            ),
            e => format!("{path}: data chunk {}: {e:?}", self.chunk),
        }
    }
}

impl<S: Source + 'static> Filesystem for HpcsFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for cap in [
            InitFlags::FUSE_ASYNC_DIO,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            if config.add_capabilities(cap).is_err() {
                crate::log::log(2, format_args!("kernel lacks capability {cap:?}"));
            }
        }
        let _ = config.set_max_background(64);
        if self.inner.output.is_some() {
            // Large writes into the results directory (the default is 128 KiB).
            let _ = config.set_max_write(MAX_REQUEST as u32);
        }
        let mmap_ok = config
            .capabilities()
            .contains(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        let direct = self.inner.cfg.direct_io.unwrap_or(mmap_ok);
        self.inner.direct_io.store(direct, Ordering::Relaxed);
        if direct && !mmap_ok {
            crate::log::log(
                0,
                format_args!("--direct-io on a kernel without FUSE_DIRECT_IO_ALLOW_MMAP: shared mmap of files will fail (ENODEV)"),
            );
        }
        crate::log::log(
            1,
            format_args!(
                "I/O mode: {}",
                if direct {
                    "direct I/O (no kernel page cache)"
                } else {
                    "kernel page cache"
                }
            ),
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guarded("lookup", || match self.inner.lookup(parent, name) {
            Ok(a) => reply.entry(&ttl(a.ino), &a, Generation(0)),
            Err(e) => reply.error(e.errno()),
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guarded("getattr", || match self.inner.getattr(ino) {
            Ok(a) => reply.attr(&ttl(a.ino), &a),
            Err(e) => reply.error(e.errno()),
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        guarded("readlink", || match self.inner.readlink(ino) {
            Ok(t) => reply.data(t),
            Err(e) => reply.error(e.errno()),
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        guarded("open", || match self.inner.open(ino, flags) {
            Ok((fh, fl)) => reply.opened(fh, fl),
            Err(e) => reply.error(e.errno()),
        });
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
        guarded("read", || self.read_impl(ino, fh, offset, size, reply));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to do at close(2) (results are finished at release): ENOSYS
        // tells the kernel to stop sending FLUSH, one round trip less per
        // close, which is most of the cost of reading many small files.
        reply.error(Errno::ENOSYS);
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
        guarded("release", || {
            match self.inner.output_of(ino.0) {
                Some(o) => o.release(ino.0),
                None => self.inner.release(fh),
            }
            reply.ok();
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guarded("opendir", || match self.inner.getattr(ino) {
            Ok(a) if a.kind == FileType::Directory && is_output(ino.0) => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(a) if a.kind == FileType::Directory => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e.errno()),
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        guarded("readdir", || self.readdir_impl(ino, offset, reply));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        guarded("statfs", || {
            let inner = &self.inner;
            let bytes: u64 = inner
                .data
                .archives()
                .iter()
                .map(|a| a.data_geometry().len())
                .sum();
            let files: u64 = inner
                .data
                .archives()
                .iter()
                .map(|a| a.tree().len() as u64)
                .sum();
            let bsize = inner.owner.blksize;
            reply.statfs(
                bytes.div_ceil(u64::from(bsize)),
                0,
                0,
                files,
                0,
                bsize,
                255,
                bsize,
            );
        });
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        guarded("access", || {
            if let Some(o) = self.inner.output_of(ino.0) {
                return match o.getattr(ino.0) {
                    Ok(a)
                        if a.kind == FileType::RegularFile && mask.contains(AccessFlags::R_OK) =>
                    {
                        reply.error(Errno::EACCES)
                    }
                    Ok(_) => reply.ok(),
                    Err(e) => reply.error(e),
                };
            }
            if mask.contains(AccessFlags::W_OK) {
                return reply.error(Errno::EROFS);
            }
            match self.inner.getattr(ino) {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(e.errno()),
            }
        });
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(FsError::NoXattr.errno());
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    // Everything below modifies the tree: the results directory handles it,
    // everything else is read-only (EROFS; the kernel already refuses most
    // of it when the mount is read-only).

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        guarded("setattr", || {
            let Some(o) = self.inner.output_of(ino.0) else {
                return reply.error(Errno::EROFS);
            };
            let owner = uid.is_some_and(|u| u != self.inner.owner.uid)
                || gid.is_some_and(|g| g != self.inner.owner.gid);
            let mtime = mtime.map(|t| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            });
            match o.setattr(ino.0, mode, size, owner, mtime) {
                Ok(a) => reply.attr(&Duration::ZERO, &a),
                Err(e) => reply.error(e),
            }
        });
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
        // Regular files come through create(); nothing else is stored.
        reply.error(if is_output(p.0) {
            Errno::EPERM
        } else {
            Errno::EROFS
        });
    }

    fn mkdir(&self, _req: &Request, p: INodeNo, n: &OsStr, m: u32, umask: u32, reply: ReplyEntry) {
        guarded("mkdir", || match self.inner.output_of(p.0) {
            Some(o) => match o.mkdir(p.0, n, m & !umask) {
                Ok(a) => reply.entry(&Duration::ZERO, &a, Generation(0)),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::EROFS),
        });
    }

    fn unlink(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        guarded("unlink", || match self.inner.output_of(p.0) {
            Some(o) => match o.unlink(p.0, n) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::EROFS),
        });
    }

    fn rmdir(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        guarded("rmdir", || match self.inner.output_of(p.0) {
            Some(o) => match o.rmdir(p.0, n) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::EROFS),
        });
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
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
        guarded("rename", || {
            match (self.inner.output_of(p.0), is_output(np.0)) {
                (Some(o), true) => {
                    if f.contains(RenameFlags::RENAME_EXCHANGE) {
                        return reply.error(Errno::EINVAL);
                    }
                    let noreplace = f.contains(RenameFlags::RENAME_NOREPLACE);
                    match o.rename(p.0, n, np.0, nn, noreplace) {
                        Ok(()) => reply.ok(),
                        Err(e) => reply.error(e),
                    }
                }
                (Some(_), false) => reply.error(Errno::EXDEV),
                (None, _) => reply.error(Errno::EROFS),
            }
        });
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
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
        guarded("write", || match self.inner.output_of(ino.0) {
            Some(o) => match o.write(ino.0, offset, data) {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::EROFS),
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        p: INodeNo,
        n: &OsStr,
        m: u32,
        umask: u32,
        _f: i32,
        reply: fuser::ReplyCreate,
    ) {
        guarded("create", || match self.inner.output_of(p.0) {
            Some(o) => match o.create(p.0, n, m & !umask) {
                Ok(a) => reply.created(
                    &Duration::ZERO,
                    &a,
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_DIRECT_IO,
                ),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::EROFS),
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _l: u64,
        _m: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(if is_output(i.0) {
            Errno::EOPNOTSUPP
        } else {
            Errno::EROFS
        });
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
        // Into the results directory: EXDEV makes cp and friends fall back
        // to read and write.
        reply.error(if is_output(ino_out.0) {
            Errno::EXDEV
        } else {
            Errno::EROFS
        });
    }
}
