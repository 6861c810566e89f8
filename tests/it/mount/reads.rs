//! What a mount serves: the source tree exactly (modes, links, sizes around
//! the chunk size), under concurrent positional reads, mmap, many open files,
//! with and without read-ahead, and several archives under one root.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

#[test]
fn mounted_tree_equals_source() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let m = s.mount(&[]);
    assert_eq!(describe_tree(&m.mnt), describe_tree(&s.src));
    // Owner is the mounting user; no setuid/setgid anywhere; hard links share an inode.
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    for e in walk(&m.mnt) {
        let md = std::fs::symlink_metadata(&e).unwrap();
        assert_eq!(md.uid(), uid, "{}", e.display());
        assert_eq!(md.mode() & 0o6000, 0, "{}", e.display());
    }
    let a = std::fs::metadata(m.mnt.join("one")).unwrap();
    let b = std::fs::metadata(m.mnt.join("one-again")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    // The mount is read-only, nosuid, nodev.
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(&*m.mnt.canonicalize().unwrap().to_string_lossy()))
        .unwrap()
        .to_string();
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(
            line.split(' ').nth(5).unwrap().split(',').any(|o| o == opt),
            "{opt} in {line}"
        );
    }
    assert!(!line.contains("allow_other"), "{line}");
    m.finish();
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

/// Many threads, positional reads at and around every chunk boundary, with
/// a cache much smaller than the file (eviction and waiting for slots).
fn boundary_reads(extra: &[&str]) {
    let chunk = 4096usize;
    let data = noise(7, 97 * chunk + 123);
    let d2 = data.clone();
    let s = Sample::new(chunk as u32, move |p| {
        std::fs::write(p.join("f"), &d2).unwrap()
    });
    let m = s.mount(extra);
    let data = Arc::new(data);
    let path = m.mnt.join("f");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let data = Arc::clone(&data);
            let path = path.clone();
            std::thread::spawn(move || {
                let f = File::open(&path).unwrap();
                let lens = [
                    1usize, 15, 16, 17, 4095, 4096, 4097, 10_000, 65_536, 200_000,
                ];
                let mut k = t;
                while k * chunk <= data.len() + chunk {
                    for delta in [-17i64, -16, -1, 0, 1, 15, 16, 17] {
                        let off = (k * chunk) as i64 + delta;
                        if off < 0 {
                            continue;
                        }
                        let off = off as usize;
                        let len = lens[(k + delta.unsigned_abs() as usize) % lens.len()];
                        let mut buf = vec![0u8; len];
                        let n = f.read_at(&mut buf, off as u64).unwrap();
                        let want = data.len().saturating_sub(off).min(len);
                        assert_eq!(n, want, "short read at {off}+{len}");
                        if n > 0 {
                            assert!(buf[..n] == data[off..off + n], "wrong bytes at {off}+{len}");
                        }
                    }
                    k += 8;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    m.finish();
}

#[test]
fn concurrent_boundary_reads_direct_io() {
    need_fuse!();
    boundary_reads(&["--direct-io", "--cache-size", "64K", "--readahead", "0"]);
}

#[test]
fn concurrent_boundary_reads_page_cache_readahead() {
    need_fuse!();
    boundary_reads(&["--page-cache", "--cache-size", "1M", "--readahead", "64K"]);
}

fn mmap_sha(extra: &[&str]) {
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let m = s.mount(extra);
    for rel in ["big.bin", "sizes/f3", "one"] {
        let f = File::open(m.mnt.join(rel)).unwrap();
        // SAFETY: read-only shared mapping of a read-only file nobody changes.
        let map = unsafe { memmap2::Mmap::map(&f) }.expect("mmap");
        let want = std::fs::read(s.src.join(rel)).unwrap();
        assert_eq!(sha256_hex(&map), sha256_hex(&want), "{rel}");
        drop(map);
    }
    m.finish();
}

#[test]
fn mmap_reads_page_cache() {
    need_fuse!();
    mmap_sha(&["--page-cache"]);
}

#[test]
fn mmap_reads_direct_io() {
    need_fuse!();
    mmap_sha(&["--direct-io"]);
}

/// Pages of `f` in the kernel page cache (`cachestat`, Linux 6.5+); `None`
/// where the kernel lacks the call.
fn cached_pages(f: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        cache: u64,
        dirty: u64,
        writeback: u64,
        evicted: u64,
        recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    let r = Range { off: 0, len: 0 }; // the whole file
    let mut st = Stat::default();
    // SAFETY: cachestat reads `r` and writes `st`, both live and laid out as
    // the kernel's cachestat_range and cachestat; the fd is open.
    let rc = unsafe { libc::syscall(SYS_CACHESTAT, f.as_raw_fd(), &r, &mut st, 0) };
    (rc == 0).then_some(st.cache)
}

#[test]
fn small_files_leave_no_pages_in_the_page_cache() {
    need_fuse!();
    let small = noise(5, 10_000);
    let big = noise(6, 300_000);
    let s = Sample::new(4096, |p| {
        std::fs::write(p.join("small"), &small).unwrap();
        std::fs::write(p.join("big"), &big).unwrap();
    });
    // Default (direct I/O on this kernel): a small file goes through the page
    // cache while open and leaves none of it behind at its last close; with
    // --page-cache its pages stay (the control).
    for (extra, kept) in [(&[][..], false), (&["--page-cache"][..], true)] {
        let m = s.mount(extra);
        let path = m.mnt.join("small");
        let f = File::open(&path).unwrap();
        let mut all = Vec::new();
        (&f).read_to_end(&mut all).unwrap();
        assert_eq!(all, small);
        let Some(n) = cached_pages(&f) else {
            eprintln!("skipping the page-cache checks: no cachestat(2) in this kernel");
            drop(f);
            m.finish();
            return;
        };
        assert!(
            n > 0,
            "{extra:?}: the small file is read through the page cache"
        );
        let g = File::open(&path).unwrap(); // a second handle keeps the pages
        drop(f);
        assert!(cached_pages(&g).unwrap() > 0, "{extra:?}: still open");
        drop(g);
        if kept {
            let f = File::open(&path).unwrap();
            assert!(cached_pages(&f).unwrap() > 0, "--page-cache keeps pages");
        } else {
            wait_until("the pages of the closed small file to be dropped", || {
                cached_pages(&File::open(&path).unwrap()) == Some(0)
            });
            // A larger file is read with direct I/O: never in the page cache.
            let f = File::open(m.mnt.join("big")).unwrap();
            let mut all = Vec::new();
            (&f).read_to_end(&mut all).unwrap();
            assert_eq!(all, big);
            assert_eq!(cached_pages(&f), Some(0), "direct I/O for the large file");
        }
        m.finish();
    }
}

#[test]
fn many_files_open_at_once() {
    need_fuse!();
    let s = Sample::new(4096, |p| {
        for i in 0..300 {
            std::fs::write(p.join(format!("f{i:03}")), noise(i, 1000 + 97 * i as usize)).unwrap();
        }
    });
    let m = s.mount(&["--direct-io", "--cache-size", "256K"]);
    let files: Vec<File> = (0..300)
        .map(|i| File::open(m.mnt.join(format!("f{i:03}"))).unwrap())
        .collect();
    // Interleave: a piece of each, then the rest of each.
    for (i, f) in files.iter().enumerate() {
        let mut b = vec![0u8; 500];
        f.read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b, noise(i as u64, 1000 + 97 * i)[..500]);
    }
    for (i, mut f) in files.iter().enumerate() {
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        assert_eq!(all, noise(i as u64, 1000 + 97 * i), "f{i:03}");
    }
    drop(files);
    m.finish();
}

#[test]
fn readahead_on_and_off() {
    need_fuse!();
    let data = noise(3, 3_000_000);
    let d2 = data.clone();
    let s = Sample::new(16384, move |p| std::fs::write(p.join("seq"), &d2).unwrap());
    for (args, expect_prefetch) in [
        (&["--readahead", "0", "--direct-io", "-vv"][..], false),
        (&["--readahead", "256K", "--direct-io", "-vv"][..], true),
        (&["--readahead", "1M", "--page-cache", "-vv"][..], true),
        // One read-ahead thread: pieces queue behind each other, same bytes.
        (
            &["--readahead", "1M", "--prefetch-threads", "1", "-vv"][..],
            true,
        ),
    ] {
        let _ = std::fs::remove_file(s.log());
        let m = s.mount(args);
        let mut f = File::open(m.mnt.join("seq")).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        drop(f);
        assert!(got == data, "sequential read with {args:?}");
        let log = m.log_text();
        assert_eq!(
            log.contains("prefetch"),
            expect_prefetch,
            "{args:?}: log was\n{log}"
        );
        m.finish();
    }
}

#[test]
fn several_archives_under_one_root() {
    need_fuse!();
    let a = Sample::new(4096, |p| rich_tree(p, 4096));
    let b = Sample::new(65536, |p| {
        std::fs::write(p.join("image.sif"), noise(9, 300_000)).unwrap()
    });
    let args = vec![
        "--archive".to_string(),
        format!("data={}", a.archive.display()),
        "--archive".to_string(),
        format!("sif={}", b.archive.display()),
        a.mnt.display().to_string(),
        "-i".into(),
        a.identity.display().to_string(),
        "-i".into(),
        b.identity.display().to_string(),
    ];
    let m = Mounted::start(&args, &a.mnt, &a.log());
    let mut names: Vec<_> = std::fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "sif"]);
    assert_eq!(describe_tree(&m.mnt.join("data")), describe_tree(&a.src));
    assert_eq!(describe_tree(&m.mnt.join("sif")), describe_tree(&b.src));
    m.finish();
}
