//! fsx in the spirit of xfstests: random mixes of write, read, truncate,
//! mmap write and read, fsync, fallocate and reopen on scratch files,
//! checked against a reference file in RAM after every operation that
//! reads, over many seeds, in several threads at once (each on its own
//! file), plus several threads writing one file at once.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::*;

/// xorshift: a deterministic stream per seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
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

const MAX_SIZE: u64 = 300_000;

fn open(p: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .unwrap()
}

/// Checks `len` bytes at `off` (clipped to the file) against the model.
fn check(f: &File, model: &[u8], off: u64, len: usize, what: &str) {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], off + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    let lo = (off as usize).min(model.len());
    let hi = (lo + len).min(model.len());
    assert_eq!(got, hi - lo, "{what}: read length at {off} +{len}");
    if buf[..got] != model[lo..hi] {
        let first = buf[..got]
            .iter()
            .zip(&model[lo..hi])
            .position(|(a, b)| a != b)
            .unwrap();
        panic!("{what}: wrong byte at {}", off + first as u64);
    }
}

/// A shared mapping of `len` bytes of `f` (at least one page).
struct Map {
    p: *mut u8,
    len: usize,
}

impl Map {
    fn new(f: &File, len: usize, shared: bool) -> Map {
        let flags = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        // SAFETY: a fresh mapping of our own open file; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Map { p: p.cast(), len }
    }

    fn slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is live and `len` bytes long; the file is at
        // least that long while the map is used (callers ensure it).
        unsafe { std::slice::from_raw_parts_mut(self.p, self.len) }
    }

    fn msync(&self) {
        // SAFETY: our live mapping.
        assert_eq!(
            unsafe { libc::msync(self.p.cast(), self.len, libc::MS_SYNC) },
            0
        );
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once.
        unsafe { libc::munmap(self.p.cast(), self.len) };
    }
}

fn fallocate(f: &File, mode: i32, off: u64, len: u64) {
    // SAFETY: fallocate on our open file with plain integers.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) };
    assert_eq!(
        r,
        0,
        "fallocate mode {mode}: {}",
        std::io::Error::last_os_error()
    );
}

/// One seed: `ops` random operations on `path`, every read checked.
fn run_seed(path: &Path, seed: u64, ops: usize) {
    let mut r = Rng::new(seed);
    let mut f = open(path);
    f.set_len(0).unwrap();
    let mut model: Vec<u8> = Vec::new();
    for step in 0..ops {
        let what = format!("seed {seed} step {step}");
        match r.below(20) {
            // write (unaligned, aligned, past the end)
            0..=5 => {
                let aligned = r.below(3) == 0;
                let mut off = r.below(MAX_SIZE);
                if aligned {
                    off &= !4095;
                }
                let cap = if r.below(5) == 0 { 64 << 10 } else { 6000 };
                let len = 1 + r.below(cap) as usize;
                let data = canary_data(r.next(), len);
                f.write_all_at(&data, off).unwrap();
                let end = off as usize + len;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[off as usize..end].copy_from_slice(&data);
            }
            // read
            6..=9 => {
                let off = r.below(model.len() as u64 + 5000);
                let len = r.below(100_000) as usize;
                check(&f, &model, off, len, &what);
            }
            // truncate down or up
            10 | 11 => {
                let size = r.below(MAX_SIZE);
                f.set_len(size).unwrap();
                model.resize(size as usize, 0);
            }
            // shared mmap write (sometimes msync'd), then read back through
            // the descriptor
            12 | 13 if !model.is_empty() => {
                let mut m = Map::new(&f, model.len(), true);
                let off = r.below(model.len() as u64) as usize;
                let len = (1 + r.below(20_000) as usize).min(model.len() - off);
                let data = noise(r.next(), len);
                m.slice()[off..off + len].copy_from_slice(&data);
                model[off..off + len].copy_from_slice(&data);
                if r.below(2) == 0 {
                    m.msync();
                }
                drop(m);
                check(&f, &model, off as u64, len, &what);
            }
            // mmap read, shared or private; a private write changes nothing
            14 if !model.is_empty() => {
                let shared = r.below(2) == 0;
                let mut m = Map::new(&f, model.len(), shared);
                assert!(m.slice() == &model[..], "{what}: mapping differs");
                if !shared {
                    m.slice()[0] ^= 0xff;
                    drop(m);
                    check(&f, &model, 0, 1, &what);
                }
            }
            15 => f.sync_all().unwrap(),
            16 => f.sync_data().unwrap(),
            // reopen
            17 => {
                drop(f);
                f = open(path);
                assert_eq!(
                    f.metadata().unwrap().len(),
                    model.len() as u64,
                    "{what}: size after reopen"
                );
            }
            // fallocate: keep-size reserve, punch a hole, zero a range, grow
            18 => {
                let off = r.below(MAX_SIZE);
                let len = 1 + r.below(40_000);
                match r.below(4) {
                    0 => fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, off, len),
                    1 => {
                        fallocate(
                            &f,
                            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                            off,
                            len,
                        );
                        let end = ((off + len) as usize).min(model.len());
                        if (off as usize) < end {
                            model[off as usize..end].fill(0);
                        }
                    }
                    2 => {
                        fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, off, len);
                        let end = (off + len) as usize;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[off as usize..end].fill(0);
                    }
                    _ => {
                        fallocate(&f, 0, off, len);
                        let end = (off + len) as usize;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                    }
                }
            }
            _ => {
                assert_eq!(
                    f.metadata().unwrap().len(),
                    model.len() as u64,
                    "{what}: size"
                );
            }
        }
    }
    assert_eq!(
        std::fs::read(path).unwrap(),
        model,
        "seed {seed}: whole file"
    );
}

/// Many seeds in four threads at once, each on its own file; afterwards no
/// plaintext on disk and no slot left in use once the files are deleted.
#[test]
fn random_operations_match_a_reference_in_four_threads() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    let seeds_per_thread = 15;
    let names: Vec<String> = (0..4).map(|t| format!("fsx-thread-{t}.bin")).collect();
    std::thread::scope(|sc| {
        for (t, name) in names.iter().enumerate() {
            let p = sm.path(name);
            sc.spawn(move || {
                for k in 0..seeds_per_thread {
                    run_seed(&p, 1 + (t * seeds_per_thread + k) as u64, 250);
                }
            });
        }
    });
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let mut backing = sm.backing();
    assert_no_plaintext(&sm.dir, &mut backing, &refs);
    for n in &names {
        std::fs::remove_file(sm.path(n)).unwrap();
    }
    let st = nix_statvfs(&sm.root);
    assert_eq!(
        st.0 - st.1,
        0,
        "every block freed (statfs of the scratch directory)"
    );
    sm.finish(&refs);
}

/// (blocks, free blocks) of the filesystem at `p`.
fn nix_statvfs(p: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills a struct we own.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut v) }, 0);
    (v.f_blocks, v.f_bfree)
}

/// Several threads write interleaved, unaligned stripes of one file at once
/// (stripes share blocks, so blocks are read-modified-written
/// concurrently); the file ends up exactly as planned.
#[test]
fn threads_writing_one_file_at_once() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    let p = sm.path("shared.bin");
    let threads = 4usize;
    let stripe = 1000usize;
    let stripes = 400usize;
    let size = stripe * stripes;
    let expected = canary_data(11, size);
    std::fs::write(&p, vec![0u8; size]).unwrap();
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (p, expected) = (&p, &expected);
            sc.spawn(move || {
                let f = open(p);
                let mut r = Rng::new(t as u64 + 100);
                let mut mine: Vec<usize> = (0..stripes).filter(|s| s % threads == t).collect();
                // Shuffle, so threads hit the same blocks in different orders.
                for i in (1..mine.len()).rev() {
                    mine.swap(i, r.below(i as u64 + 1) as usize);
                }
                for s in mine {
                    let off = s * stripe;
                    f.write_all_at(&expected[off..off + stripe], off as u64)
                        .unwrap();
                }
            });
        }
    });
    assert!(std::fs::read(&p).unwrap() == expected, "the shared file");
    // Appends from several threads through O_APPEND lose nothing.
    let a = sm.path("appended.log");
    std::thread::scope(|sc| {
        for t in 0..threads {
            let a = &a;
            sc.spawn(move || {
                let f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(a)
                    .unwrap();
                for i in 0..200 {
                    std::io::Write::write_all(&mut &f, format!("t{t} line {i:04}\n").as_bytes())
                        .unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text.lines().count(), threads * 200);
    for t in 0..threads {
        for i in 0..200 {
            assert!(
                text.contains(&format!("t{t} line {i:04}\n")),
                "t{t} line {i}"
            );
        }
    }
    sm.finish(&["shared.bin", "appended.log"]);
}
