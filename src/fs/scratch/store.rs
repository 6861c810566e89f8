//! The backing file of a scratch directory and its slot allocator.
//!
//! All files of a scratch directory share one backing file in DIR, cut into
//! slots of [`STORED`] bytes. The file has no name: it is opened with
//! `O_TMPFILE` (or, where the filesystem lacks it, created under a random
//! name and unlinked at once), so the kernel frees it when the daemon's
//! descriptor closes, however the daemon ends, and DIR never shows more
//! than, at most, an empty name for a few microseconds. A leftover of such a
//! name (the daemon died between creating and unlinking it) is removed by
//! the next mount. An observer of the storage sees one file whose size is
//! the most blocks ever in use at once; not how many files there are, their
//! names or their sizes.
//!
//! Slots are handed out from a free list (lowest first after a file is
//! freed, so runs stay contiguous) or past the highest one used; freed runs
//! are punched out of the backing file so its disk space follows what is in
//! use. An optional limit bounds the slots in use (`ENOSPC` past it).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::block::{slot_offset, BLOCK, STORED};
use crate::fs::errors::FsError;

/// Name prefix of a backing file on filesystems without `O_TMPFILE`, for
/// the instant between its creation and its unlinking.
pub const LEFTOVER_PREFIX: &str = ".hpcs-scratch-";

struct Alloc {
    /// Freed runs of slots: first slot -> count (never adjacent).
    free: BTreeMap<u32, u32>,
    /// Slots `0..high` have been handed out at some time.
    high: u32,
    /// Slots in use.
    used: u64,
}

impl Alloc {
    /// Adds a freed run, merged with its neighbours; free runs at the top
    /// lower the high-water mark instead.
    fn give_back(&mut self, mut first: u32, mut count: u32) {
        if let Some((&p, &pc)) = self.free.range(..first).next_back() {
            if p + pc == first {
                self.free.remove(&p);
                first = p;
                count += pc;
            }
        }
        if let Some(nc) = self.free.remove(&(first + count)) {
            count += nc;
        }
        if first + count == self.high {
            self.high = first;
        } else {
            self.free.insert(first, count);
        }
    }
}

/// The backing file and its allocator.
pub struct Store {
    file: File,
    dir: PathBuf,
    alloc: Mutex<Alloc>,
    /// Most slots in use at once (`--scratch ...:SIZE` / 4 KiB).
    limit: u64,
    /// False once punching holes failed (the filesystem cannot).
    punch: AtomicBool,
}

/// What [`Store::create`] found and did.
#[derive(Debug, Default)]
pub struct Opened {
    /// Leftover names of earlier mounts removed from DIR.
    pub removed: usize,
    /// The backing file got a name for an instant (no `O_TMPFILE` here).
    pub named: bool,
}

impl Store {
    /// Opens a new, nameless backing file in `dir`; `limit` bounds the
    /// plaintext bytes stored (rounded down to whole blocks).
    pub fn create(dir: &Path, limit: Option<u64>) -> io::Result<(Store, Opened)> {
        let mut opened = Opened {
            removed: remove_leftovers(dir)?,
            named: false,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
        {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                opened.named = true;
                named_then_unlinked(dir)?
            }
            Err(e) => return Err(e),
        };
        let limit = limit.map_or(u64::from(u32::MAX - 1), |l| {
            (l / BLOCK as u64).min(u64::from(u32::MAX - 1))
        });
        Ok((
            Store {
                file,
                dir: dir.to_path_buf(),
                alloc: Mutex::new(Alloc {
                    free: BTreeMap::new(),
                    high: 0,
                    used: 0,
                }),
                limit,
                punch: AtomicBool::new(true),
            },
            opened,
        ))
    }

    /// The directory holding the backing file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Slots the limit allows at once.
    pub fn limit_blocks(&self) -> u64 {
        self.limit
    }

    /// Slots in use.
    pub fn used_blocks(&self) -> u64 {
        self.alloc.lock().map_or(0, |a| a.used)
    }

    /// The backing descriptor (tests find the file through it).
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Hands out `n` slots into `out`, or none and `NoSpace` past the limit.
    pub fn alloc(&self, n: usize, out: &mut Vec<u32>) -> Result<(), FsError> {
        if n == 0 {
            return Ok(());
        }
        let mut a = self
            .alloc
            .lock()
            .map_err(|_| FsError::Internal("scratch allocator lock"))?;
        if a.used + n as u64 > self.limit {
            return Err(FsError::NoSpace);
        }
        let mut need = n as u32;
        while need > 0 {
            let Some((&first, &count)) = a.free.first_key_value() else {
                break;
            };
            let k = need.min(count);
            a.free.remove(&first);
            if k < count {
                a.free.insert(first + k, count - k);
            }
            out.extend(first..first + k);
            need -= k;
        }
        // Cannot overflow: every slot below `high` is in use or free, so
        // `high + need` is at most `used + n`, which the limit keeps below
        // u32::MAX.
        let start = a.high;
        let high = start.saturating_add(need);
        a.high = high;
        out.extend(start..high);
        a.used += n as u64;
        Ok(())
    }

    /// Returns `slots` to the allocator and punches them out of the file.
    pub fn free(&self, slots: &mut [u32]) {
        if slots.is_empty() {
            return;
        }
        slots.sort_unstable();
        if self.punch.load(Ordering::Relaxed) {
            for run in runs(slots) {
                if !self.punch_run(run.0, run.1) {
                    self.punch.store(false, Ordering::Relaxed);
                    break;
                }
            }
        }
        if let Ok(mut a) = self.alloc.lock() {
            a.used = a.used.saturating_sub(slots.len() as u64);
            for (first, count) in runs(slots) {
                a.give_back(first, count);
            }
        }
    }

    fn punch_run(&self, first: u32, count: u32) -> bool {
        // SAFETY: fallocate on our own descriptor with plain integers.
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                slot_offset(first) as libc::off_t,
                (u64::from(count) * STORED as u64) as libc::off_t,
            ) == 0
        }
    }

    /// Best effort: allocates disk space for `count` slots from `first`
    /// (fallocate of a scratch file reserves real space where it can).
    pub fn preallocate(&self, first: u32, count: u32) {
        // SAFETY: as in punch_run.
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                slot_offset(first) as libc::off_t,
                (u64::from(count) * STORED as u64) as libc::off_t,
            );
        }
    }

    /// Reads the stored blocks of slots `first..` into `buf` (a whole
    /// number of slots). Missing bytes (a truncated backing file) are an
    /// `UnexpectedEof` error.
    pub fn read_slots(&self, first: u32, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, slot_offset(first))
    }

    /// Writes stored blocks into slots `first..`.
    pub fn write_slots(&self, first: u32, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, slot_offset(first))
    }

    /// Size of the backing file and its disk use in bytes.
    pub fn backing_size(&self) -> (u64, u64) {
        self.file
            .metadata()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.len(), m.blocks() * 512)
            })
            .unwrap_or((0, 0))
    }
}

/// Consecutive runs `(first, count)` of sorted slots.
pub fn runs(slots: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((first, count)) if *first + *count == s => *count += 1,
            _ => out.push((s, 1)),
        }
    }
    out
}

/// The fallback: a random name, opened exclusively, unlinked at once.
fn named_then_unlinked(dir: &Path) -> io::Result<File> {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r).map_err(io::Error::other)?;
    let path = dir.join(format!("{LEFTOVER_PREFIX}{}", crate::util::hex(&r)));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// Removes names a daemon left in `dir` when it died between creating its
/// backing file and unlinking it (the data in them was sealed under a key
/// that died with it). Returns how many.
fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let b = name.as_bytes();
        if b.starts_with(LEFTOVER_PREFIX.as_bytes())
            && b.len() == LEFTOVER_PREFIX.len() + 32
            && e.file_type().is_ok_and(|t| t.is_file())
        {
            match std::fs::remove_file(e.path()) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_slots() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[3]), [(3, 1)]);
        assert_eq!(runs(&[0, 1, 2, 5, 6, 9]), [(0, 3), (5, 2), (9, 1)]);
    }

    #[test]
    fn the_backing_file_has_no_name_and_slots_are_reused_lowest_first() {
        let d = tempfile::tempdir().unwrap();
        let (s, opened) = Store::create(d.path(), Some(10 * BLOCK as u64 + 5)).unwrap();
        assert_eq!(opened.removed, 0);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "no name in DIR"
        );
        assert_eq!(s.limit_blocks(), 10);
        let mut got = Vec::new();
        s.alloc(4, &mut got).unwrap();
        assert_eq!(got, [0, 1, 2, 3]);
        s.write_slots(0, &vec![7u8; 4 * STORED]).unwrap();
        let mut back = vec![0u8; 2 * STORED];
        s.read_slots(2, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 7));
        // Past the end of the file: a short read is an error, never zeros.
        let mut past = vec![0u8; STORED];
        assert_eq!(
            s.read_slots(4, &mut past).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        got.clear();
        s.alloc(6, &mut got).unwrap();
        assert_eq!(got, [4, 5, 6, 7, 8, 9]);
        assert!(matches!(s.alloc(1, &mut got), Err(FsError::NoSpace)));
        assert_eq!(got.len(), 6, "nothing handed out on failure");
        s.free(&mut [2, 1, 6]);
        assert_eq!(s.used_blocks(), 7);
        got.clear();
        s.alloc(3, &mut got).unwrap();
        assert_eq!(got, [1, 2, 6], "lowest freed slots first, in order");
        // Freeing the top slots lowers the high-water mark.
        s.free(&mut [9, 8, 7]);
        got.clear();
        s.alloc(1, &mut got).unwrap();
        assert_eq!(got, [7]);
    }

    #[test]
    fn leftover_names_of_dead_mounts_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let leftover = d
            .path()
            .join(format!("{LEFTOVER_PREFIX}{}", "ab".repeat(16)));
        std::fs::write(&leftover, b"ciphertext").unwrap();
        let other = d.path().join(format!("{LEFTOVER_PREFIX}short"));
        std::fs::write(&other, b"x").unwrap();
        std::fs::write(d.path().join("user-file"), b"x").unwrap();
        let (_s, opened) = Store::create(d.path(), None).unwrap();
        assert_eq!(opened.removed, 1);
        assert!(!leftover.exists());
        assert!(
            other.exists() && d.path().join("user-file").exists(),
            "only our names"
        );
    }
}
