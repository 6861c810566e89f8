//! The FUSE filesystem over unlocked archives (fuser, multi-threaded): the
//! archives read-only, plus an optional write-only results directory and an
//! optional encrypted, read-write scratch directory ([`scratch`]).
//!
//! [`HpcsFs`] serves one archive at the mount root, or several under a
//! synthetic root that lists them by name (and the results directory, if
//! any). It takes a plain, already validated [`MountConfig`] and
//! [`Archive`]s; it knows nothing of keys, Vault, the command line or async
//! runtimes. Metadata comes from the in-memory index with long TTLs (an
//! archive never changes). Data goes through [`read::DataPath`]: a bounded,
//! locked, shared plaintext cache with single-flight loading ([`cache`]) and
//! per-handle read-ahead ([`readahead`]) run on a small prefetch pool
//! ([`pool`], threads that sleep when idle).
//!
//! The frontend is split by kind of operation, as gocryptfs splits its own:
//! this file holds the mount settings, construction and the fuser session;
//! `callbacks` is the one `impl Filesystem`, a thin dispatch that hands each
//! request to an operation in `meta` (lookup, getattr, readlink, statfs,
//! access, xattrs), `file` (open, read, release, flush and read-ahead
//! scheduling), `dir` (opendir, readdir), `write` (everything that would
//! change the tree: forwarded to the results directory, [`output`], or
//! refused with `EROFS`) or `kernel` (init: what is negotiated with the
//! kernel). Every request's operation fails with an [`errors::FsError`], for
//! the archives and the results directory alike (read, which replies from a
//! locked per-thread buffer, too); [`errors::FsError::errno`] is the one
//! place an error becomes an errno, and `reply::answer` the one place that
//! calls it. Every request callback runs under `catch_unwind`
//! (`reply::guarded`): a bug replies `EIO`, never takes the mount down.
//! Reads reply with exactly the bytes asked for (short only at end of file)
//! or `EIO`.

pub mod attr;
#[cfg(feature = "bench-ceilings")]
pub mod bench;
pub mod cache;
mod callbacks;
mod dir;
pub mod errors;
mod file;
pub mod inodes;
mod kernel;
mod meta;
pub mod output;
pub mod pool;
pub mod read;
pub mod readahead;
mod reply;
pub mod scratch;
mod write;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};

use fuser::{MountOption, SessionACL};

use crate::crypto::{Archive, Source};
use crate::secmem::SlotArena;

use attr::{Inodes, Owner};
use cache::ChunkCache;
use output::Output;
use read::DataPath;
use scratch::Scratch;

/// Largest read the kernel sends (fs.fuse.max_pages_limit = 256 pages).
const MAX_REQUEST: usize = 1 << 20;

/// Bytes per read-ahead backing read (one Lustre RPC at the common 1 MiB
/// `max_pages_per_rpc`); a refill is split into reads of this size.
const PREFETCH_PIECE: u64 = 1 << 20;

/// Files up to this size are read through the kernel page cache even in
/// direct-I/O mode, and their pages are dropped at their last close: one
/// read request instead of two per small file (a direct-I/O read that ends
/// short is followed by one that finds end of file; the page cache knows the
/// size and stops). One default kernel read-ahead window.
const SMALL_FILE: u64 = 128 << 10;

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
    /// Serve zeros instead of archive data (benchmark ceiling only; cargo
    /// feature `bench-ceilings`).
    #[cfg(feature = "bench-ceilings")]
    pub null_data: bool,
    /// Read the archive as usual but skip decryption and authentication,
    /// serving the stored bytes (benchmark ceiling only; cargo feature
    /// `bench-ceilings`).
    #[cfg(feature = "bench-ceilings")]
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
            #[cfg(feature = "bench-ceilings")]
            null_data: false,
            #[cfg(feature = "bench-ceilings")]
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

struct Inner<S> {
    names: Vec<String>,
    labels: Vec<String>,
    data: DataPath<S>,
    inodes: Inodes,
    owner: Owner,
    cfg: MountConfig,
    handles: Mutex<HashMap<u64, Arc<file::Handle>>>,
    next_fh: AtomicU64,
    pool: Option<pool::Pool>,
    inflight: AtomicUsize,
    /// Resolved at FUSE init from `cfg.direct_io` and the kernel's abilities.
    direct_io: AtomicBool,
    /// Tells the kernel to drop cached pages (set once the session exists).
    notifier: OnceLock<fuser::Notifier>,
    /// Open handles per small file read through the page cache (inode ->
    /// count): its pages are dropped when the count falls to zero.
    small_open: Mutex<HashMap<u64, u32>>,
    /// The write-only results directory under the top, if any.
    output: Option<Output>,
    /// The encrypted scratch directory under the top, if any.
    scratch: Option<Scratch>,
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
    /// directory (RESULTS.md), `scratch` an encrypted scratch directory
    /// (docs/mount.md).
    pub fn new(
        archives: Vec<MountedArchive<S>>,
        cfg: MountConfig,
        output: Option<(String, crate::results::Run)>,
        scratch: Option<Scratch>,
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
        if let Err(e) = arena.populate_ahead() {
            crate::log::log(
                crate::log::DEBUG,
                format_args!("cache: pages fault in on first use (no populating thread: {e})"),
            );
        }
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
            cfg.force_top || output.is_some() || scratch.is_some(),
        );
        if let Some((name, _)) = &output {
            if names.iter().any(|n| n == name) {
                return Err(io::Error::other(format!(
                    "the output directory {name:?} has the name of an archive"
                )));
            }
        }
        let mut scratch = scratch;
        if let Some(s) = &mut scratch {
            let name = s.name();
            if names.iter().any(|n| n == name) || output.as_ref().is_some_and(|(o, _)| o == name) {
                return Err(io::Error::other(format!(
                    "the scratch directory {name:?} has the name of an archive or of the results directory"
                )));
            }
            s.set_owner(owner.uid, owner.gid);
        }
        let output = output.map(|(name, run)| Output::new(name, run, owner));
        let data = DataPath::new(list, ChunkCache::new(arena));
        let prefetch = cfg.readahead_bytes > 0;
        #[cfg(feature = "bench-ceilings")]
        let (data, prefetch) = {
            let mode = bench::BenchMode::of(&cfg);
            (
                data.with_ceiling(mode),
                prefetch && mode != bench::BenchMode::Zeros,
            )
        };
        let pool = if prefetch {
            Some(pool::Pool::new(cfg.prefetch_threads, "hpcs-prefetch")?)
        } else {
            None
        };
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
            notifier: OnceLock::new(),
            small_open: Mutex::new(HashMap::new()),
            output,
            scratch,
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
/// With a results or scratch directory (`writable`), the mount is
/// read-write and every callback outside those directories refuses changes
/// with EROFS itself.
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
    let writable = fs.inner.output.is_some() || fs.inner.scratch.is_some();
    let inner = Arc::clone(&fs.inner);
    let session = fuser::Session::new(fs, mountpoint, &fuser_config(cfg, writable))?;
    let _ = inner.notifier.set(session.notifier());
    Ok(session)
}
