//! The contents of scratch files: read, write, truncate and fallocate.
//!
//! Reads take the file's lock shared, read the stored blocks they need with
//! one positional read per run of consecutive slots, and open each block
//! with the version the map records straight into the locked per-thread
//! reply buffer (plaintext never sits anywhere else in the daemon); holes
//! and reserved blocks are zeros without a disk read. Writes take the lock
//! exclusively: whole blocks are sealed straight from the request into a
//! ciphertext buffer; a block written in part is first opened into locked
//! memory, changed and sealed again (read-modify-write); then each run of
//! consecutive slots is one positional write, and only then does the map
//! record the new versions. Every block written gets a new version; a block
//! keeps its slot, so rewriting a file does not fragment it.
//!
//! Invariant: the bytes of a file's last block past its size are zeros (a
//! truncation into a block rewrites it), so growing a file shows zeros.

use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::ReplyData;

use super::block::{blocks, within, BLOCK, MAX_FILE, STORED};
use super::map::{BlockMap, Entry};
use super::store::runs;
use super::{Content, FileData, Kind, Scratch};
use crate::fs::errors::FsError;
use crate::fs::file::with_reply_buf;
use crate::fs::reply::answer;

thread_local! {
    /// Per-thread buffer of stored (encrypted) blocks: ciphertext only, so
    /// ordinary memory.
    static SEALED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's sealed-block buffer, `n` bytes long.
fn with_sealed<R>(n: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, FsError> {
    SEALED.with(|cell| {
        let mut v = cell
            .try_borrow_mut()
            .map_err(|_| FsError::Internal("sealed buffer busy"))?;
        if v.len() < n {
            v.resize(n, 0);
        }
        Ok(f(&mut v[..n]))
    })
}

/// fallocate modes (linux/falloc.h).
const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE;
const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE;

/// What a write puts into the blocks it touches.
#[derive(Clone, Copy)]
enum Fill<'a> {
    /// These bytes, from this file offset.
    Bytes(u64, &'a [u8]),
    /// Zeros over `off..off + len`.
    Zeros(u64, u64),
}

impl Fill<'_> {
    fn span(self) -> (u64, u64) {
        match self {
            Fill::Bytes(off, d) => (off, d.len() as u64),
            Fill::Zeros(off, len) => (off, len),
        }
    }

    /// The new bytes of block `b` within it (`part`), copied into `dst`.
    fn copy_into(self, b: u64, part: Range<usize>, dst: &mut [u8]) {
        match self {
            Fill::Bytes(off, d) => {
                let from = (b * BLOCK as u64 + part.start as u64 - off) as usize;
                dst[part.clone()].copy_from_slice(&d[from..from + part.len()]);
            }
            Fill::Zeros(..) => dst[part].fill(0),
        }
    }
}

static ZERO_BLOCK: [u8; BLOCK] = [0; BLOCK];

impl Scratch {
    /// The data of file `ino`.
    pub(super) fn file(&self, ino: u64) -> Result<Arc<FileData>, FsError> {
        let t = self.lock()?;
        match t.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::File(f)) => Ok(Arc::clone(f)),
            Some(Kind::Dir { .. }) => Err(FsError::IsDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Serves one read: exactly the bytes asked for (short only at the end
    /// of the file), or `EIO` after a log line naming the inode and block.
    pub fn read(&self, ino: u64, off: u64, size: u32, reply: ReplyData) {
        let mut reply = Some(reply);
        let r = self.read_with(ino, off, size, |bytes| {
            if let Some(rp) = reply.take() {
                answer(rp, Ok(bytes));
            }
        });
        if let (Err(e), Some(rp)) = (r, reply.take()) {
            answer(rp, Err(e));
        }
    }

    /// Reads up to `size` bytes at `off` into the locked per-thread buffer
    /// and hands them to `f` (while the file's lock is still held).
    pub fn read_with<R>(
        &self,
        ino: u64,
        off: u64,
        size: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, FsError> {
        let file = self.file(ino)?;
        let c = file
            .content
            .read()
            .map_err(|_| FsError::Internal("scratch file lock"))?;
        if off >= c.size || size == 0 {
            return Ok(f(&[]));
        }
        let n = u64::from(size).min(c.size - off) as usize;
        let range = blocks(off, n as u64);
        let skip = (off % BLOCK as u64) as usize;
        let len = (range.end - range.start) as usize * BLOCK;
        with_reply_buf(len, |buf| {
            self.load(ino, &c.map, range, buf)
                .map(|()| f(&buf[skip..skip + n]))
        })?
    }

    /// Opens blocks `range` of a file into `out` (a whole number of blocks).
    fn load(
        &self,
        ino: u64,
        map: &BlockMap,
        range: Range<u64>,
        out: &mut [u8],
    ) -> Result<(), FsError> {
        let first = range.start;
        let mut b = first;
        while b < range.end {
            let e = map.get(b);
            let i = (b - first) as usize;
            if e.version() == 0 {
                out[i * BLOCK..(i + 1) * BLOCK].fill(0);
                b += 1;
                continue;
            }
            // A run of stored blocks in consecutive slots: one read.
            let slot = e
                .slot()
                .ok_or(FsError::Internal("stored block without a slot"))?;
            let mut k = 1u64;
            while b + k < range.end {
                let next = map.get(b + k);
                if next.version() == 0 || next.slot() != Some(slot + k as u32) {
                    break;
                }
                k += 1;
            }
            let run = k as usize;
            with_sealed(run * STORED, |sealed| -> Result<(), FsError> {
                self.store.read_slots(slot, sealed).map_err(|err| {
                    self.damaged(ino, b..b + k, &err);
                    backing_error(err)
                })?;
                for j in 0..run {
                    let version = map.get(b + j as u64).version();
                    let dst = &mut out[(i + j) * BLOCK..(i + j + 1) * BLOCK];
                    if self
                        .cipher
                        .open(version, &sealed[j * STORED..(j + 1) * STORED], dst)
                        .is_err()
                    {
                        crate::warn!(
                            "scratch: inode {ino}, block {}: failed authentication (its stored copy in {} was changed, moved, replaced by an older one or damaged); returned EIO",
                            b + j as u64,
                            self.store.dir().display()
                        );
                        return Err(FsError::Tampered);
                    }
                }
                Ok(())
            })??;
            b += k;
        }
        Ok(())
    }

    fn damaged(&self, ino: u64, b: Range<u64>, err: &io::Error) {
        let which = if b.end - b.start == 1 {
            format!("block {}", b.start)
        } else {
            format!("blocks {}..{}", b.start, b.end - 1)
        };
        if err.kind() == io::ErrorKind::UnexpectedEof {
            crate::warn!(
                "scratch: inode {ino}, {which}: the backing file in {} is shorter than what was stored (truncated); returned EIO",
                self.store.dir().display()
            );
        } else {
            crate::warn!(
                "scratch: inode {ino}, {which}: reading the backing file in {} failed: {err}",
                self.store.dir().display()
            );
        }
    }

    /// Writes `data` at `off`.
    pub fn write(&self, ino: u64, off: u64, data: &[u8]) -> Result<u32, FsError> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE)
            .ok_or(FsError::TooBig)?;
        let f = self.file(ino)?;
        let mut c = f
            .content
            .write()
            .map_err(|_| FsError::Internal("scratch file lock"))?;
        self.fill(ino, &mut c.map, Fill::Bytes(off, data))?;
        c.size = c.size.max(end);
        let now = SystemTime::now();
        c.mtime = now;
        c.ctime = now;
        Ok(data.len() as u32)
    }

    /// Seals and stores what `fill` says into the blocks it touches, then
    /// records their new versions (nothing is recorded if storing fails).
    fn fill(&self, ino: u64, map: &mut BlockMap, fill: Fill<'_>) -> Result<(), FsError> {
        let (off, len) = fill.span();
        let range = blocks(off, len);
        let nb = (range.end - range.start) as usize;
        if nb == 0 {
            return Ok(());
        }
        // Slots: the ones the blocks have, new ones for the others.
        let mut slots: Vec<u32> = Vec::with_capacity(nb);
        let missing = range
            .clone()
            .filter(|&b| map.get(b).slot().is_none())
            .count();
        let mut new = Vec::with_capacity(missing);
        self.store.alloc(missing, &mut new)?;
        let mut fresh = new.iter();
        for b in range.clone() {
            match map.get(b).slot() {
                Some(s) => slots.push(s),
                None => slots.push(*fresh.next().ok_or(FsError::Internal("slot count"))?),
            }
        }
        let v0 = self
            .version
            .fetch_add(nb as u64, std::sync::atomic::Ordering::Relaxed);
        let stored = with_sealed(nb * STORED, |sealed| -> Result<(), FsError> {
            for (i, b) in range.clone().enumerate() {
                let out = &mut sealed[i * STORED..(i + 1) * STORED];
                let part = within(b, off, len);
                let version = v0 + i as u64;
                if part.len() == BLOCK {
                    let whole = match fill {
                        Fill::Bytes(o, d) => {
                            let from = (b * BLOCK as u64 - o) as usize;
                            &d[from..from + BLOCK]
                        }
                        Fill::Zeros(..) => &ZERO_BLOCK[..],
                    };
                    self.cipher.seal(version, whole, out);
                    continue;
                }
                // Part of the block: open the old one in locked memory,
                // change it, seal it again.
                let old = map.get(b);
                with_reply_buf(BLOCK, |plain| -> Result<(), FsError> {
                    if old.version() == 0 {
                        plain.fill(0);
                    } else {
                        let slot = old
                            .slot()
                            .ok_or(FsError::Internal("stored block without a slot"))?;
                        self.store.read_slots(slot, out).map_err(|err| {
                            self.damaged(ino, b..b + 1, &err);
                            backing_error(err)
                        })?;
                        if self.cipher.open(old.version(), out, plain).is_err() {
                            crate::warn!(
                                "scratch: inode {ino}, block {b}: failed authentication before a partial write (its stored copy in {} was changed); the write returned EIO",
                                self.store.dir().display()
                            );
                            return Err(FsError::Tampered);
                        }
                    }
                    fill.copy_into(b, part.clone(), plain);
                    self.cipher.seal(version, plain, out);
                    Ok(())
                })??;
            }
            // Each run of consecutive slots is one positional write.
            let mut i = 0;
            while i < nb {
                let mut k = 1;
                while i + k < nb && slots[i + k] == slots[i] + k as u32 {
                    k += 1;
                }
                self.store
                    .write_slots(slots[i], &sealed[i * STORED..(i + k) * STORED])
                    .map_err(|e| {
                        crate::warn!(
                            "scratch: inode {ino}: writing the backing file in {} failed: {e}",
                            self.store.dir().display()
                        );
                        backing_error(e)
                    })?;
                i += k;
            }
            Ok(())
        })?;
        if let Err(e) = stored {
            self.store.free(&mut new);
            return Err(e);
        }
        for (i, b) in range.enumerate() {
            map.set(b, Entry::new(v0 + i as u64, slots[i]));
        }
        Ok(())
    }

    /// Truncates or extends file `ino` to `size` bytes (`c` is its content,
    /// locked by the caller).
    pub(super) fn resize(&self, ino: u64, c: &mut Content, size: u64) -> Result<(), FsError> {
        if size > MAX_FILE {
            return Err(FsError::TooBig);
        }
        if size < c.size {
            let tail = size % BLOCK as u64;
            if tail != 0 && c.map.get(size / BLOCK as u64).version() != 0 {
                // Zero the rest of the new last block, so growing the file
                // again shows zeros there.
                self.fill(ino, &mut c.map, Fill::Zeros(size, BLOCK as u64 - tail))?;
            }
            let mut freed = Vec::new();
            c.map.truncate(size.div_ceil(BLOCK as u64), &mut freed);
            self.store.free(&mut freed);
        }
        c.size = size;
        let now = SystemTime::now();
        c.mtime = now;
        c.ctime = now;
        Ok(())
    }

    /// fallocate: reserve space (mode 0 or `KEEP_SIZE`), punch a hole
    /// (`PUNCH_HOLE | KEEP_SIZE`) or zero a range (`ZERO_RANGE`, with or
    /// without `KEEP_SIZE`); other modes are `EOPNOTSUPP`.
    pub fn fallocate(&self, ino: u64, off: u64, len: u64, mode: i32) -> Result<(), FsError> {
        let end = off
            .checked_add(len)
            .filter(|&e| e <= MAX_FILE)
            .ok_or(FsError::TooBig)?;
        if len == 0 {
            return Err(FsError::Invalid);
        }
        let f = self.file(ino)?;
        let mut c = f
            .content
            .write()
            .map_err(|_| FsError::Internal("scratch file lock"))?;
        let keep = mode & KEEP_SIZE != 0;
        match mode & !KEEP_SIZE {
            0 => {
                // Reserve a slot for every block without one; they read as
                // zeros until written.
                let range = blocks(off, len);
                let holes: Vec<u64> = range.filter(|&b| c.map.get(b).slot().is_none()).collect();
                let mut new = Vec::with_capacity(holes.len());
                self.store.alloc(holes.len(), &mut new)?;
                for (&b, &s) in holes.iter().zip(&new) {
                    c.map.set(b, Entry::new(0, s));
                }
                new.sort_unstable();
                for (first, count) in runs(&new) {
                    self.store.preallocate(first, count);
                }
            }
            PUNCH_HOLE if keep => self.zero(ino, &mut c, off, len)?,
            ZERO_RANGE => self.zero(ino, &mut c, off, len)?,
            _ => return Err(FsError::Unsupported),
        }
        if !keep && end > c.size {
            c.size = end;
        }
        let now = SystemTime::now();
        c.mtime = now;
        c.ctime = now;
        Ok(())
    }

    /// Makes `off..off + len` (within the file) read as zeros: whole blocks
    /// become holes, the parts of blocks at the edges are rewritten.
    fn zero(&self, ino: u64, c: &mut Content, off: u64, len: u64) -> Result<(), FsError> {
        let end = (off + len).min(c.size);
        if off >= end {
            return Ok(());
        }
        let len = end - off;
        let r = blocks(off, len);
        let full = |b: u64| within(b, off, len).len() == BLOCK;
        let whole = (if full(r.start) { r.start } else { r.start + 1 })..(if full(r.end - 1) {
            r.end
        } else {
            r.end - 1
        });
        let edges = if r.end - r.start == 1 {
            vec![r.start]
        } else {
            vec![r.start, r.end - 1]
        };
        for b in edges {
            if full(b) || c.map.get(b).version() == 0 {
                continue;
            }
            let part = within(b, off, len);
            let at = b * BLOCK as u64 + part.start as u64;
            self.fill(ino, &mut c.map, Fill::Zeros(at, part.len() as u64))?;
        }
        if whole.start < whole.end {
            let mut freed = Vec::new();
            c.map.clear(whole, &mut freed);
            self.store.free(&mut freed);
        }
        Ok(())
    }
}

/// A failed read or write of the backing file: missing bytes are damage
/// (`EIO`), anything else keeps its errno (`ENOSPC`, `EIO`...).
fn backing_error(e: io::Error) -> FsError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FsError::Tampered
    } else {
        FsError::Storage(e)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::super::SCRATCH_INO;
    use super::*;

    fn read(s: &Scratch, ino: u64, off: u64, size: u32) -> Result<Vec<u8>, FsError> {
        s.read_with(ino, off, size, |b| b.to_vec())
    }

    /// xorshift: deterministic per seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Random writes (aligned or not, past the end), truncations (both
    /// ways), hole punches, zero ranges and reservations against a
    /// reference in RAM, over many seeds; every read must match.
    #[test]
    fn random_operations_match_a_reference() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Scratch::new("t".into(), d.path(), None).unwrap();
        for seed in 1..=40u64 {
            let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let (a, _) = s
                .create(SCRATCH_INO, OsStr::new(&format!("f{seed}")), 0o600)
                .unwrap();
            let ino = a.ino.0;
            let mut model: Vec<u8> = Vec::new();
            let max = 200_000u64;
            for step in 0..150 {
                match r.below(10) {
                    0..=4 => {
                        let off = if r.below(3) == 0 {
                            r.below(max / BLOCK as u64) * BLOCK as u64
                        } else {
                            r.below(max)
                        };
                        let cap = if r.below(4) == 0 { 40_000 } else { 5_000 };
                        let len = 1 + r.below(cap) as usize;
                        let data: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
                        s.write(ino, off, &data).unwrap();
                        let end = off as usize + len;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[off as usize..end].copy_from_slice(&data);
                    }
                    5 | 6 => {
                        let size = r.below(max);
                        let f = s.file(ino).unwrap();
                        let mut c = f.content.write().unwrap();
                        s.resize(ino, &mut c, size).unwrap();
                        model.resize(size as usize, 0);
                    }
                    7 => {
                        let (off, len) = (r.below(max), 1 + r.below(30_000));
                        s.fallocate(ino, off, len, PUNCH_HOLE | KEEP_SIZE).unwrap();
                        let end = ((off + len) as usize).min(model.len());
                        if (off as usize) < end {
                            model[off as usize..end].fill(0);
                        }
                    }
                    8 => {
                        let (off, len) = (r.below(max), 1 + r.below(30_000));
                        let keep = r.below(2) == 0;
                        let mode = ZERO_RANGE | if keep { KEEP_SIZE } else { 0 };
                        s.fallocate(ino, off, len, mode).unwrap();
                        let end = ((off + len) as usize).min(model.len());
                        if (off as usize) < end {
                            model[off as usize..end].fill(0);
                        }
                        if !keep && model.len() < (off + len) as usize {
                            model.resize((off + len) as usize, 0);
                        }
                    }
                    _ => {
                        let (off, len) = (r.below(max), 1 + r.below(30_000));
                        s.fallocate(ino, off, len, 0).unwrap();
                        if model.len() < (off + len) as usize {
                            model.resize((off + len) as usize, 0);
                        }
                    }
                }
                assert_eq!(
                    s.getattr(ino).unwrap().size,
                    model.len() as u64,
                    "seed {seed} step {step}"
                );
                let off = r.below(model.len() as u64 + 10);
                let size = r.below(300_000) as u32;
                let got = read(&s, ino, off, size).unwrap();
                let lo = (off as usize).min(model.len());
                let hi = (lo + size as usize).min(model.len());
                assert!(
                    got == model[lo..hi],
                    "seed {seed} step {step}: read {off} +{size}"
                );
            }
            let all = read(&s, ino, 0, model.len() as u32 + 1).unwrap();
            assert!(all == model, "seed {seed}: whole file");
            s.release(ino);
            s.unlink(SCRATCH_INO, OsStr::new(&format!("f{seed}")))
                .unwrap();
        }
        assert_eq!(s.store.used_blocks(), 0, "every slot came back");
    }

    /// Damage to the backing file under a live scratch directory: a flipped
    /// byte, two blocks swapped, an older copy of a block put back, the file
    /// truncated. Each gives `Tampered` (EIO) for the blocks concerned, and
    /// only for them.
    #[test]
    fn damaged_blocks_are_eio_never_wrong_bytes() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Scratch::new("t".into(), d.path(), None).unwrap();
        let ino = s
            .create(SCRATCH_INO, OsStr::new("f"), 0o600)
            .unwrap()
            .0
            .ino
            .0;
        let data: Vec<u8> = (0..8 * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
        s.write(ino, 0, &data).unwrap();
        // SAFETY: dup of our own backing descriptor, owned by the File.
        let backing = unsafe {
            use std::os::fd::FromRawFd;
            std::fs::File::from_raw_fd(libc::dup(s.backing_fd()))
        };
        let slot = |k: u64| k * STORED as u64;
        let block = |k: u64| read(&s, ino, k * BLOCK as u64, BLOCK as u32);
        let stored = |k: u64| {
            let mut b = vec![0u8; STORED];
            backing.read_exact_at(&mut b, slot(k)).unwrap();
            b
        };
        assert_eq!(block(0).unwrap(), vec![1u8; BLOCK]);
        // Flip one bit of block 1.
        let mut b1 = stored(1);
        b1[10] ^= 1;
        backing.write_all_at(&b1, slot(1)).unwrap();
        assert!(matches!(block(1), Err(FsError::Tampered)));
        assert_eq!(
            block(0).unwrap(),
            vec![1u8; BLOCK],
            "other blocks still read"
        );
        // A partial write into the damaged block is refused too.
        assert!(matches!(
            s.write(ino, BLOCK as u64 + 5, b"x"),
            Err(FsError::Tampered)
        ));
        // Swap blocks 2 and 3.
        let (b2, b3) = (stored(2), stored(3));
        backing.write_all_at(&b3, slot(2)).unwrap();
        backing.write_all_at(&b2, slot(3)).unwrap();
        assert!(matches!(block(2), Err(FsError::Tampered)));
        assert!(matches!(block(3), Err(FsError::Tampered)));
        // Roll block 4 back to the copy it had before a rewrite.
        let old4 = stored(4);
        s.write(ino, 4 * BLOCK as u64, &vec![9u8; BLOCK]).unwrap();
        assert_eq!(block(4).unwrap(), vec![9u8; BLOCK]);
        backing.write_all_at(&old4, slot(4)).unwrap();
        assert!(matches!(block(4), Err(FsError::Tampered)));
        // Truncate the backing file in the middle of block 7.
        backing.set_len(slot(7) + 100).unwrap();
        assert!(matches!(block(7), Err(FsError::Tampered)));
        assert!(matches!(
            read(&s, ino, 6 * BLOCK as u64, 2 * BLOCK as u32),
            Err(FsError::Tampered)
        ));
        assert_eq!(
            block(6).unwrap(),
            vec![7u8; BLOCK],
            "the block before it still reads"
        );
        // Rewriting a damaged block whole heals it (nothing of it is read).
        s.write(ino, BLOCK as u64, &vec![5u8; BLOCK]).unwrap();
        assert_eq!(block(1).unwrap(), vec![5u8; BLOCK]);
    }

    /// No plaintext and no name reach the backing file.
    #[test]
    fn backing_file_holds_no_plaintext() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Scratch::new("t".into(), d.path(), None).unwrap();
        let name = "canary-name-7f3a9c";
        let ino = s
            .create(SCRATCH_INO, OsStr::new(name), 0o600)
            .unwrap()
            .0
            .ino
            .0;
        let canary = b"CANARY-PLAINTEXT-0123456789";
        let mut data = Vec::new();
        while data.len() < 100_000 {
            data.extend_from_slice(canary);
        }
        s.write(ino, 12_345, &data).unwrap();
        // SAFETY: dup of our own backing descriptor, owned by the File.
        let mut backing = unsafe {
            use std::os::fd::FromRawFd;
            std::fs::File::from_raw_fd(libc::dup(s.backing_fd()))
        };
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut backing, &mut all).unwrap();
        assert!(all.len() >= data.len());
        for needle in [&canary[..16], name.as_bytes()] {
            assert!(
                !all.windows(needle.len()).any(|w| w == needle),
                "plaintext on disk"
            );
        }
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "no name in DIR"
        );
    }
}
