//! Open files of the archives: open, read, release and flush, and the
//! read-ahead scheduling a read triggers.
//!
//! Handles come from a counter that only goes up; each keeps its own
//! [`Sequential`] state. A read is decided for read-ahead first (its pieces
//! are handed to the prefetch pool), then served through the shared data path
//! into a locked per-thread reply buffer, positionally, with no cursor shared
//! between readers. A failed read logs the file and chunk before it replies
//! `EIO`, so whoever sees the error finds its explanation in the log.
//! Results files (write-only) are opened here too but never read; scratch
//! files are opened, read and released by [`super::scratch`].

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use fuser::{FileHandle, FopenFlags, INodeNo, OpenAccMode, OpenFlags, ReplyData};

use crate::crypto::index::{Kind, NodeId};
use crate::crypto::Source;
use crate::secmem::Region;

use super::errors::FsError;
use super::read::ReadFailure;
use super::readahead::Sequential;
use super::reply::answer;
use super::{Inner, MAX_REQUEST, PREFETCH_PIECE, SMALL_FILE};

/// An open archive file.
pub(super) struct Handle {
    archive: usize,
    node: NodeId,
    seq: Mutex<Sequential>,
    /// A small file read through the page cache (see [`super::SMALL_FILE`]).
    small: bool,
}

thread_local! {
    /// Per-thread reply buffer in locked, non-dumpable memory.
    static REPLY_BUF: RefCell<Option<Region>> = const { RefCell::new(None) };
}

/// Runs `f` on a locked per-thread buffer of at least `n` bytes (also the
/// scratch directory's plaintext buffer: one per FUSE thread in all).
pub(super) fn with_reply_buf<R>(n: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, FsError> {
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

impl ReadFailure {
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

impl<S: Source + 'static> Inner<S> {
    pub(super) fn open(
        &self,
        ino: INodeNo,
        flags: OpenFlags,
    ) -> Result<(FileHandle, FopenFlags), FsError> {
        if let Some(o) = self.output_of(ino.0) {
            let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
            o.open(ino.0, write)?;
            // No page cache: the bytes go straight to the encrypting writer.
            return Ok((FileHandle(0), FopenFlags::FOPEN_DIRECT_IO));
        }
        if let Some(s) = self.scratch_of(ino.0) {
            return Ok((FileHandle(0), s.open(ino.0)?));
        }
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return Err(FsError::ReadOnly);
        }
        let (archive, id, node) = self.entry(ino)?;
        let Kind::File { size, .. } = node.kind else {
            return Err(FsError::IsDir);
        };
        let direct = self.direct_io.load(Ordering::Relaxed);
        // In automatic direct-I/O mode a small file goes through the page
        // cache, its pages dropped at its last close (see release).
        let small = direct
            && self.cfg.direct_io.is_none()
            && size <= SMALL_FILE
            && self.notifier.get().is_some();
        if small {
            *self
                .small_open
                .lock()
                .map_err(|_| FsError::Internal("small-file table"))?
                .entry(ino.0)
                .or_insert(0) += 1;
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            archive,
            node: id,
            seq: Mutex::new(Sequential::default()),
            small,
        });
        self.handles
            .lock()
            .map_err(|_| FsError::Internal("handle table"))?
            .insert(fh, h);
        let fl = if direct && !small {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        Ok((FileHandle(fh), fl))
    }

    /// The last close of a file: a results file finishes its object; a small
    /// file read through the page cache has its pages dropped once no handle
    /// of it is left, so no plaintext stays in the kernel page cache.
    pub(super) fn release(&self, ino: INodeNo, fh: FileHandle) -> Result<(), FsError> {
        if let Some(s) = self.scratch_of(ino.0) {
            s.release(ino.0);
            return Ok(());
        }
        if let Some(o) = self.output_of(ino.0) {
            o.release(ino.0);
            return Ok(());
        }
        let h = self.handles.lock().ok().and_then(|mut h| h.remove(&fh.0));
        if h.is_some_and(|h| h.small) && self.last_small_close(ino.0) {
            if let Some(n) = self.notifier.get() {
                // Offset 0, length 0: every page of the file.
                if let Err(e) = n.inval_inode(ino, 0, 0) {
                    crate::log::log(
                        0,
                        format_args!("dropping the cached pages of a closed file failed: {e}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Counts one close of small file `ino`; true when it was the last.
    fn last_small_close(&self, ino: u64) -> bool {
        let Ok(mut open) = self.small_open.lock() else {
            return true; // poisoned: drop the pages anyway
        };
        match open.get_mut(&ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                open.remove(&ino);
                true
            }
        }
    }

    /// Nothing to do at close(2) (results are finished at release): ENOSYS
    /// tells the kernel to stop sending FLUSH, one round trip less per
    /// close, which is most of the cost of reading many small files.
    pub(super) fn flush(&self) -> Result<(), FsError> {
        Err(FsError::NotImplemented)
    }

    /// "label: /path" of an archive entry, for log lines.
    pub(super) fn path_of(&self, archive: usize, id: NodeId) -> String {
        let p = self
            .data
            .archives()
            .get(archive)
            .map(|a| a.tree().path(id))
            .unwrap_or_default();
        let label = self.labels.get(archive).map_or("", |s| s.as_str());
        format!("{label}: /{}", String::from_utf8_lossy(&p))
    }

    /// Serves one read: exactly the bytes asked for (short only at end of
    /// file), or an error after its log line.
    pub(super) fn read(
        self: &Arc<Self>,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        if self.output_of(ino.0).is_some() {
            // Results are encrypted to the user: the node cannot read them.
            return answer(reply, Err(FsError::WriteOnly));
        }
        if let Some(s) = self.scratch_of(ino.0) {
            return s.read(ino.0, offset, size, reply);
        }
        let (archive, id, node) = match self.entry(ino) {
            Ok(x) => x,
            Err(e) => return answer(reply, Err(e)),
        };
        let Kind::File {
            offset: base,
            size: fsize,
            ..
        } = node.kind
        else {
            return answer(reply, Err(FsError::IsDir));
        };
        if offset >= fsize || size == 0 {
            let nothing: &[u8] = &[];
            return answer(reply, Ok(nothing));
        }
        let n = (u64::from(size)).min(fsize - offset) as usize;
        // Read-ahead is decided before this read is served: its pieces load
        // while this one does, and reads reach it in the order the kernel
        // sent them (after the reply, the next read of a synchronous reader
        // can overtake this one on another thread).
        self.maybe_prefetch(archive, id, fh, (base, fsize), offset, n as u64);
        let res = with_reply_buf(n, |buf| match self.data.read(archive, base + offset, buf) {
            Ok(()) => {
                answer(reply, Ok(&*buf));
                Ok(())
            }
            Err(f) => Err((f, reply)),
        });
        // The log line is written before the error reply, so whoever sees the
        // EIO can already find its explanation in the log.
        match res {
            Ok(Ok(())) => {}
            Ok(Err((f, reply))) => {
                let line = f.error_line(&self.path_of(archive, id));
                crate::log::log(0, format_args!("{line}; read returned EIO"));
                answer(reply, Err(f.error));
            }
            Err(e) => {
                // The reply went with the closure, unsent: fuser sends EIO.
                let path = self.path_of(archive, id);
                crate::log::log(0, format_args!("{path}: {e:?}; read returned EIO"));
            }
        }
    }

    /// Hands the read-ahead this read calls for to the prefetch pool, in
    /// pieces of [`PREFETCH_PIECE`] bytes, as long as few enough are queued.
    fn maybe_prefetch(
        self: &Arc<Self>,
        archive: usize,
        id: NodeId,
        fh: FileHandle,
        (base, fsize): (u64, u64),
        off: u64,
        len: u64,
    ) {
        let Some(pool) = self.pool.as_ref() else {
            return;
        };
        let Some(a) = self.data.archives().get(archive) else {
            return;
        };
        let g = *a.data_geometry();
        let window = self.cfg.readahead_bytes.div_ceil(g.chunk_size());
        // Refills are split into pieces of PREFETCH_PIECE bytes, each its own
        // backing read on its own pool thread: on storage where every request
        // costs milliseconds (Lustre), several are in flight at once, and the
        // window is topped up a piece at a time instead of half at once.
        let piece = (PREFETCH_PIECE / g.chunk_size()).max(1);
        let handle = self.handles.lock().ok().and_then(|h| h.get(&fh.0).cloned());
        let Some(handle) = handle else { return };
        if handle.archive != archive || handle.node != id {
            return;
        }
        let range = match handle.seq.lock() {
            Ok(mut s) => s.on_read(&g, base, fsize, off, len, window, piece),
            Err(_) => None,
        };
        let Some(range) = range else { return };
        let limit = self.cfg.prefetch_threads.max(1) * 2;
        let mut start = range.start;
        while start < range.end {
            let part = start..range.end.min(start.saturating_add(piece));
            start = part.end;
            if self.inflight.fetch_add(1, Ordering::AcqRel) >= limit {
                self.inflight.fetch_sub(1, Ordering::AcqRel);
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
                        self.path_of(archive, id),
                        part.start,
                        part.end
                    ),
                );
            }
            let worker = Arc::clone(self);
            pool.spawn(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| worker.data.prefetch(archive, part)));
                worker.inflight.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }
}
