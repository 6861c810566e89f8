//! Memory for secrets and plaintext, and process hardening.
//!
//! [`Region`] is an anonymous private mapping that is excluded from core
//! dumps (`MADV_DONTDUMP`), locked in RAM when the memlock limit allows it
//! (`mlock2(MLOCK_ONFAULT)`, so untouched pages cost nothing), and wiped
//! before it is unmapped. [`SlotArena`] cuts one region into fixed-size slots
//! for the FUSE plaintext cache; a [`Slot`] is wiped when it is released, so
//! evicted plaintext never lingers, and [`SlotArena::populate_ahead`] keeps
//! the arena faulted in a little ahead of the slots in use (from a
//! background thread). [`harden_process`] makes the process
//! non-dumpable and sets its core limit to zero; [`lock_all_memory`] locks
//! every page the process touches when it is privileged or unlimited (that is
//! what keeps the cipher contexts held by the archive reader out of swap).
//! Nothing here panics or aborts when locking is refused: callers get a
//! warning to show, and the memory is still usable and still wiped.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Result of [`harden_process`]: what to restore in children, and warnings.
#[derive(Debug, Clone, Copy)]
pub struct Hardening {
    /// The core-size limit before hardening (restore it in spawned commands).
    pub core_limit: libc::rlimit,
    /// `PR_SET_DUMPABLE 0` took effect.
    pub undumpable: bool,
}

/// Makes the process non-dumpable (no core files, no ptrace by other users,
/// `/proc/PID/mem` closed to them) and sets `RLIMIT_CORE` to 0.
pub fn harden_process() -> Hardening {
    let mut core_limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integer arguments;
    // getrlimit/setrlimit get a valid pointer to an rlimit we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_CORE, &mut core_limit);
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: core_limit.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        let undumpable = libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
        Hardening {
            core_limit,
            undumpable,
        }
    }
}

/// The soft `RLIMIT_MEMLOCK` in bytes after raising it to the hard limit, or
/// `None` when locking is unlimited for this process (no limit, or root /
/// `CAP_IPC_LOCK`, which the limit does not bind).
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Some(0);
        }
        if lim.rlim_cur != lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                lim = raised;
            }
        }
        if lim.rlim_cur == libc::RLIM_INFINITY || libc::geteuid() == 0 {
            return None;
        }
    }
    Some(lim.rlim_cur)
}

/// Locks every page the process has and will touch (`mlockall` with
/// `MCL_ONFAULT`), but only when [`memlock_limit`] is unlimited: under a
/// finite limit `MCL_FUTURE` would make later allocations fail. Returns
/// whether it did.
pub fn lock_all_memory() -> bool {
    if memlock_limit().is_some() {
        return false;
    }
    // SAFETY: mlockall takes only flags.
    unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) == 0 }
}

/// An anonymous mapping kept out of core dumps, locked when possible, and
/// wiped (up to the highest byte ever handed out) before it is unmapped.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    locked: bool,
    /// Bytes from the start that may have held data (wiped on drop).
    dirty: AtomicUsize,
}

// SAFETY: a Region is a plain block of memory; it hands out `&mut [u8]` only
// through `&mut self`, and `SlotArena` (the only shared user) guarantees that
// each byte range is owned by one `Slot` at a time.
unsafe impl Send for Region {}
// SAFETY: see above; shared references only read `len`/`locked`/`dirty`.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes (rounded up to whole pages). Fails only when the
    /// mapping itself fails; whether it could be locked is [`Region::is_locked`].
    pub fn new(len: usize) -> io::Result<Region> {
        let page = page_size();
        let len = len.max(1).div_ceil(page) * page;
        // SAFETY: anonymous private mapping, no fd, kernel-chosen address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        // SAFETY: [p, p+len) is the mapping just created.
        let locked = unsafe {
            libc::madvise(p, len, libc::MADV_DONTDUMP);
            libc::madvise(p, len, libc::MADV_DONTFORK);
            libc::syscall(libc::SYS_mlock2, p, len, libc::MLOCK_ONFAULT) == 0
                || libc::mlock(p, len) == 0
        };
        Ok(Region {
            ptr,
            len,
            locked,
            dirty: AtomicUsize::new(0),
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a region has at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the pages are locked in RAM (never swapped).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// The whole region.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.dirty.store(self.len, Ordering::Relaxed);
        // SAFETY: the mapping is live for `self`'s lifetime, `len` bytes long,
        // and `&mut self` makes this the only reference into it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The whole region, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above; no `&mut` exists while `&self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Faults in (and, where locking took, locks) the pages of
    /// `[offset, offset + len)` now with `MADV_POPULATE_WRITE` (Linux 5.14+),
    /// without touching their contents, so later writes there take no page
    /// fault. Best effort: false when the kernel refused.
    pub fn populate(&self, offset: usize, len: usize) -> bool {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return true;
        }
        // SAFETY: [ptr + offset, ptr + end) lies inside the live mapping;
        // MADV_POPULATE_WRITE only faults pages in, never changes data that
        // is there (pages in use by a slot keep their bytes).
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(offset).cast(),
                end - offset,
                libc::MADV_POPULATE_WRITE,
            ) == 0
        }
    }

    fn mark_dirty(&self, end: usize) {
        self.dirty.fetch_max(end.min(self.len), Ordering::Relaxed);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let dirty = *self.dirty.get_mut();
        // SAFETY: [ptr, ptr+dirty) lies inside the live mapping and nobody
        // else references it (we are being dropped); volatile writes keep the
        // wipe from being optimised away. Then the mapping is released.
        unsafe {
            wipe(self.ptr.as_ptr(), dirty);
            if self.locked {
                libc::munlock(self.ptr.as_ptr().cast(), self.len);
            }
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Zeroes `len` bytes at `p` in a way the compiler may not remove.
///
/// # Safety
/// `p..p+len` must be valid for writes and not referenced elsewhere.
unsafe fn wipe(p: *mut u8, len: usize) {
    // explicit_bzero is glibc's memset that is never optimised away: about
    // 4x faster than word-wise volatile stores on the eviction path.
    // SAFETY: the caller guarantees the range is valid for writes.
    unsafe { libc::explicit_bzero(p.cast(), len) };
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// How far ahead of the highest slot handed out the arena is faulted in.
const POPULATE_AHEAD: usize = 32 << 20;
/// Bytes faulted in per `madvise` call (short holds of the mm's lock).
const POPULATE_PIECE: usize = 1 << 20;

/// Faulting an arena in ahead of use (see [`SlotArena::populate_ahead`]).
#[derive(Default)]
struct Ahead {
    /// On until the kernel refuses (or there is no thread doing it).
    on: AtomicBool,
    /// Bytes from the start already faulted in.
    done: AtomicUsize,
    /// End of the highest slot handed out so far.
    high: AtomicUsize,
    /// More is wanted; the thread waits on `wanted`.
    pending: Mutex<bool>,
    wanted: Condvar,
}

/// A region cut into `count` slots of `stride` bytes, handed out as [`Slot`]s.
pub struct SlotArena {
    region: Region,
    stride: usize,
    count: usize,
    free: Mutex<Vec<u32>>,
    freed: Condvar,
    ahead: Arc<Ahead>,
}

impl SlotArena {
    /// An arena of `count` slots able to hold `slot_len` bytes each.
    pub fn new(slot_len: usize, count: usize) -> io::Result<Arc<SlotArena>> {
        let stride = slot_len.max(1).div_ceil(64) * 64;
        let count = count.clamp(1, u32::MAX as usize);
        let bytes = stride
            .checked_mul(count)
            .ok_or_else(|| io::Error::other("cache size overflows"))?;
        let region = Region::new(bytes)?;
        // Pop from the end: slot 0 first, so the touched prefix stays small.
        let free = (0..count as u32).rev().collect();
        Ok(Arc::new(SlotArena {
            region,
            stride,
            count,
            free: Mutex::new(free),
            freed: Condvar::new(),
            ahead: Arc::default(),
        }))
    }

    /// Bytes per slot.
    pub fn slot_len(&self) -> usize {
        self.stride
    }

    /// Number of slots.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when the slots are locked in RAM.
    pub fn is_locked(&self) -> bool {
        self.region.is_locked()
    }

    /// Slots currently free.
    pub fn free_count(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// A free slot, if any.
    pub fn try_alloc(self: &Arc<Self>) -> Option<Slot> {
        let idx = self.free.lock().ok()?.pop()?;
        let end = (idx as usize + 1).saturating_mul(self.stride);
        self.region.mark_dirty(end);
        let a = &self.ahead;
        if a.on.load(Ordering::Relaxed)
            && end.saturating_add(POPULATE_AHEAD / 2) > a.done.load(Ordering::Relaxed)
            && a.high.fetch_max(end, Ordering::Relaxed) < end
        {
            if let Ok(mut p) = a.pending.lock() {
                *p = true;
            }
            a.wanted.notify_one();
        }
        Some(Slot {
            arena: Arc::clone(self),
            idx,
        })
    }

    /// Starts a thread that keeps the arena faulted in (`MADV_POPULATE_WRITE`,
    /// [`Region::populate`]) [`POPULATE_AHEAD`] bytes beyond the highest slot
    /// handed out, so loading a chunk into a fresh slot takes no page fault
    /// (page faults were ~6 % of the daemon's CPU during the first pass
    /// through a fresh cache, clearing and mapping each new page one trap at
    /// a time), while memory the cache never reaches is never touched (a
    /// mount that reads a few files does not pay for its whole cache). The
    /// thread ends with the arena, or at the first refusal (an old kernel):
    /// pages then fault in on first use, as without it.
    pub fn populate_ahead(self: &Arc<Self>) -> io::Result<()> {
        let a = Arc::clone(&self.ahead);
        let arena = Arc::downgrade(self);
        a.on.store(true, Ordering::Relaxed);
        let started = std::thread::Builder::new()
            .name("hpcs-populate".into())
            .spawn(move || loop {
                let Some(arena) = arena.upgrade() else { return };
                let len = arena.region.len();
                let done = a.done.load(Ordering::Relaxed);
                if done >= len {
                    return;
                }
                let target = a
                    .high
                    .load(Ordering::Relaxed)
                    .saturating_add(POPULATE_AHEAD);
                if done < target.min(len) {
                    let n = POPULATE_PIECE.min(len - done);
                    if !arena.region.populate(done, n) {
                        a.on.store(false, Ordering::Relaxed);
                        return;
                    }
                    a.done.store(done + n, Ordering::Relaxed);
                    continue;
                }
                drop(arena); // do not keep the arena alive while waiting
                let mut p = a.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !*p {
                    p = a
                        .wanted
                        .wait_timeout(p, Duration::from_secs(1))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                *p = false;
            });
        if let Err(e) = started {
            self.ahead.on.store(false, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    /// Bytes from the start of the arena faulted in ahead of use so far.
    pub fn populated(&self) -> usize {
        self.ahead.done.load(Ordering::Relaxed)
    }

    /// Waits until a slot is released or `timeout` passes.
    pub fn wait_free(&self, timeout: Duration) {
        if let Ok(g) = self.free.lock() {
            if g.is_empty() {
                let _ = self.freed.wait_timeout(g, timeout);
            }
        }
    }

    fn release(&self, idx: u32) {
        if let Ok(mut f) = self.free.lock() {
            f.push(idx);
        }
        self.freed.notify_one();
    }
}

/// One slot of a [`SlotArena`], owned exclusively; wiped and returned to the
/// arena on drop.
pub struct Slot {
    arena: Arc<SlotArena>,
    idx: u32,
}

impl Slot {
    fn ptr(&self) -> *mut u8 {
        // idx < count, so the offset lies inside the region.
        // SAFETY: idx * stride + stride <= region len (checked at creation).
        unsafe {
            self.arena
                .region
                .ptr
                .as_ptr()
                .add(self.idx as usize * self.arena.stride)
        }
    }

    /// The slot's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the free list hands each index to one Slot at a time, so
        // this range is ours; writes need `&mut self`, so none happen while
        // this shared borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.arena.stride) }
    }

    /// The slot's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: exclusive ownership of the index (see `as_slice`) plus
        // `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.arena.stride) }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: the slot's range is exclusively ours until `release`.
        unsafe { wipe(self.ptr(), self.arena.stride) };
        self.arena.release(self.idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_usable_and_page_rounded() {
        let mut r = Region::new(10).unwrap();
        assert!(r.len() >= 10 && r.len().is_multiple_of(page_size()));
        r.as_mut_slice()[..4].copy_from_slice(b"abcd");
        assert_eq!(&r.as_slice()[..4], b"abcd");
    }

    #[test]
    fn the_arena_is_populated_ahead_of_use_and_keeps_its_contents() {
        // 1600 slots of 64 KiB: 100 MiB, more than POPULATE_AHEAD.
        let a = SlotArena::new(65536, 1600).unwrap();
        let mut s = a.try_alloc().unwrap();
        s.as_mut_slice()[..3].copy_from_slice(b"abc");
        a.populate_ahead().unwrap();
        let wait_for = |bytes: usize| {
            let t = std::time::Instant::now();
            while a.populated() < bytes {
                assert!(t.elapsed() < Duration::from_secs(20), "{}", a.populated());
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        wait_for(POPULATE_AHEAD);
        std::thread::sleep(Duration::from_millis(50));
        assert!(a.populated() < a.region.len(), "no further than needed");
        // Hand out slots up to 48 MiB: population follows.
        let held: Vec<Slot> = (0..767).map(|_| a.try_alloc().unwrap()).collect();
        wait_for((48 << 20) + POPULATE_AHEAD);
        assert_eq!(&s.as_slice()[..3], b"abc", "data in a slot survives");
        assert!(
            a.region.populate(a.region.len(), 10),
            "an empty range is fine"
        );
        drop((s, held));
    }

    #[test]
    fn slots_are_wiped_and_reused() {
        let a = SlotArena::new(100, 2).unwrap();
        assert_eq!(a.slot_len(), 128);
        let mut s1 = a.try_alloc().unwrap();
        let s2 = a.try_alloc().unwrap();
        assert!(a.try_alloc().is_none());
        s1.as_mut_slice().fill(0xAA);
        let idx = s1.idx;
        drop(s1);
        assert_eq!(a.free_count(), 1);
        let s3 = a.try_alloc().unwrap();
        assert_eq!(s3.idx, idx);
        assert!(s3.as_slice().iter().all(|&b| b == 0), "evicted slot wiped");
        drop((s2, s3));
        assert_eq!(a.free_count(), 2);
    }
}
