//! Integration tests: hpcs-mount with real FUSE mounts.
//!
//! Every test mounts for real, waits for a readiness signal (the --ready-fd
//! pipe, the --daemon parent's exit, or a line from the exec-mode command),
//! never a sleep, and checks afterwards that no mount is left in
//! /proc/self/mountinfo and that no descriptor of this process or of the
//! daemon was leaked. Without /dev/fuse the tests print a line and pass,
//! unless HPCS_REQUIRE_FUSE=1 (CI), where they fail.

#![cfg(feature = "fuse")]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

const MOUNT: &str = env!("CARGO_BIN_EXE_hpcs-mount");
/// Upper bound for anything we wait on (never a fixed sleep).
const PATIENCE: Duration = Duration::from_secs(60);

/// True when FUSE tests can run; panics when they must but cannot.
fn fuse_ok() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var("HPCS_REQUIRE_FUSE").as_deref() == Ok("1") {
        panic!("/dev/fuse is missing but HPCS_REQUIRE_FUSE=1");
    }
    eprintln!(
        "skipping mount test: /dev/fuse is missing (set HPCS_REQUIRE_FUSE=1 to fail instead)"
    );
    false
}

macro_rules! need_fuse {
    () => {
        if !fuse_ok() {
            return;
        }
    };
}

/// A packed sample: source tree, archive, identity, empty mount point.
struct Sample {
    dir: tempfile::TempDir,
    src: PathBuf,
    archive: PathBuf,
    identity: PathBuf,
    mnt: PathBuf,
    key: hpcs::crypto::DataKey,
}

impl Sample {
    fn new(chunk: u32, build: impl FnOnce(&Path)) -> Sample {
        let dir = tmpdir();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        build(&src);
        let (identity, recipient) = identity_file(dir.path(), "id.txt");
        let archive = dir.path().join("a.hpcs");
        let key = pack_lib(
            &src,
            &archive,
            chunk,
            hpcs::crypto::Suite::Aes256Gcm,
            &recipient,
        );
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Sample {
            dir,
            src,
            archive,
            identity,
            mnt,
            key,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("mount.log")
    }

    fn args(&self) -> Vec<String> {
        vec![
            self.archive.display().to_string(),
            self.mnt.display().to_string(),
            "-i".into(),
            self.identity.display().to_string(),
        ]
    }

    /// Mounts in the foreground with --ready-fd; returns once ready.
    fn mount(&self, extra: &[&str]) -> Mounted {
        let mut args = self.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        Mounted::start(&args, &self.mnt, &self.log())
    }

    /// Data-stream byte offset of data chunk `k` in the archive file.
    fn chunk_file_offset(&self, k: u64) -> u64 {
        let a = open_lib(&self.archive, &self.key).unwrap();
        a.header().data_offset() + a.data_geometry().chunk_cipher_offset(k)
    }

    /// Data-stream chunk holding byte `off` of file `rel`.
    fn chunk_of(&self, rel: &str, off: u64) -> u64 {
        let a = open_lib(&self.archive, &self.key).unwrap();
        let id = a.tree().resolve(rel).unwrap();
        let (start, _) = a.extent(id).unwrap();
        (start + off) / a.data_geometry().chunk_size()
    }
}

fn mounted(mnt: &Path) -> bool {
    let canon = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&m.replace("\\040", " ")) == canon)
    })
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Descriptors of this process that point into `dir`.
fn my_fds_under(dir: &Path) -> Vec<PathBuf> {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(&canon))
        .collect()
}

/// Waits (bounded) until `cond` holds, re-checking when `tick` returns.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// True once process `pid` has exited (gone or a zombie nobody reaps).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Reads from `fd` until EOF, waiting at most PATIENCE.
fn read_to_eof(fd: OwnedFd) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    let mut f = File::from(fd);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for readiness");
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
        let mut buf = [0u8; 64];
        match f.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the ready pipe: {e}"),
        }
    }
}

/// A foreground hpcs-mount child serving `mnt`.
struct Mounted {
    mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// Daemon descriptors right after the mount was ready.
    fds_at_start: usize,
}

impl Mounted {
    fn start(args: &[String], mnt: &Path, log: &Path) -> Mounted {
        let (r, w) = pipe();
        let wfd = w.as_raw_fd();
        let mut cmd = Command::new(MOUNT);
        cmd.args(args)
            .args(["--ready-fd", "3", "--log-file"])
            .arg(log)
            .stdin(Stdio::null());
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if wfd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else {
                    libc::dup2(wfd, 3);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn hpcs-mount");
        drop(w);
        let got = read_to_eof(r);
        if got != b"ready\n" {
            let st = child.wait().unwrap();
            panic!(
                "hpcs-mount did not become ready ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(mounted(mnt), "ready but not in mountinfo");
        let fds_at_start = fd_count(child.id());
        Mounted {
            mnt: mnt.to_path_buf(),
            child: Some(child),
            log: log.to_path_buf(),
            fds_at_start,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Checks for leaks, unmounts with `hpcs-mount --unmount`, and expects
    /// the daemon to exit 0 with nothing left mounted.
    fn finish(mut self) {
        assert_eq!(
            my_fds_under(&self.mnt),
            Vec::<PathBuf>::new(),
            "test leaked fds"
        );
        let now = fd_count(self.pid());
        assert!(
            now <= self.fds_at_start,
            "daemon descriptors grew while serving: {} at start, {now} now",
            self.fds_at_start
        );
        let out = Command::new(MOUNT)
            .arg("--unmount")
            .arg(&self.mnt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--unmount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st = self.child.take().unwrap().wait().unwrap();
        assert_eq!(st.code(), Some(0), "daemon exit; log:\n{}", self.log_text());
        assert!(!mounted(&self.mnt), "mount left behind");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if mounted(&self.mnt) {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.mnt)
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn errno(r: std::io::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// A tree with the awkward cases: empty and 1-byte files, sizes around the
/// chunk size, nested directories, modes, symlinks, a hard link.
fn rich_tree(src: &Path, chunk: usize) {
    let w = |rel: &str, data: &[u8], mode: u32| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("empty", b"", 0o644);
    w("one", b"x", 0o600);
    for (i, n) in [chunk - 1, chunk, chunk + 1, 3 * chunk + 7, 100_000]
        .iter()
        .enumerate()
    {
        w(&format!("sizes/f{i}"), &noise(i as u64, *n), 0o644);
    }
    w("deep/a/b/c/d.txt", b"deep\n", 0o444);
    w("exec.sh", b"#!/bin/sh\necho hi\n", 0o755);
    w("big.bin", &noise(99, 1_234_567), 0o640);
    std::os::unix::fs::symlink("deep/a/b/c/d.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::fs::hard_link(src.join("one"), src.join("one-again")).unwrap();
    std::fs::create_dir(src.join("emptydir")).unwrap();
    std::fs::set_permissions(src.join("deep/a"), std::fs::Permissions::from_mode(0o750)).unwrap();
}

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

/// The benchmark ceilings: `--bench-nocrypt` serves the stored (encrypted)
/// bytes of each chunk through the usual cache and read-ahead, `--bench-null`
/// zeros; both keep sizes, neither may be combined with the other.
#[test]
fn bench_ceilings_serve_stored_bytes_or_zeros() {
    need_fuse!();
    let cs = 16384usize;
    let data = noise(5, 10 * cs + 123);
    let d2 = data.clone();
    let s = Sample::new(cs as u32, move |p| {
        std::fs::write(p.join("f"), &d2).unwrap()
    });
    let stored = std::fs::read(&s.archive).unwrap();
    assert_eq!(
        s.chunk_of("f", 0),
        0,
        "the only file starts the data stream"
    );
    let m = s.mount(&["--bench-nocrypt"]);
    let got = std::fs::read(m.mnt.join("f")).unwrap();
    m.finish();
    assert_eq!(got.len(), data.len());
    assert_ne!(got, data, "no-crypto ceiling served plaintext");
    for k in [0usize, 3, 10] {
        let from = k * cs;
        let to = ((k + 1) * cs).min(data.len());
        let chunk = s.chunk_of("f", from as u64);
        let off = s.chunk_file_offset(chunk) as usize + (from - chunk as usize * cs);
        assert_eq!(got[from..to], stored[off..off + (to - from)], "chunk {k}");
    }
    let m = s.mount(&["--bench-null"]);
    let zeros = std::fs::read(m.mnt.join("f")).unwrap();
    m.finish();
    assert_eq!(zeros, vec![0u8; data.len()]);
    let mut both = s.args();
    both.extend(["--bench-null".to_string(), "--bench-nocrypt".to_string()]);
    let out = run_mount(&both);
    assert_eq!(out.status.code(), Some(hpcs::exit::USAGE as i32));
    assert!(!mounted(&s.mnt));
}

#[test]
fn writes_get_erofs() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let m = s.mount(&[]);
    let p = |r: &str| m.mnt.join(r);
    let rofs = libc::EROFS;
    assert_eq!(
        errno(std::fs::OpenOptions::new().write(true).open(p("one"))),
        rofs
    );
    assert_eq!(
        errno(std::fs::OpenOptions::new().append(true).open(p("one"))),
        rofs
    );
    assert_eq!(errno(File::create(p("new"))), rofs);
    assert_eq!(errno(std::fs::create_dir(p("newdir"))), rofs);
    assert_eq!(errno(std::fs::remove_file(p("one"))), rofs);
    assert_eq!(errno(std::fs::remove_dir(p("emptydir"))), rofs);
    assert_eq!(errno(std::fs::rename(p("one"), p("two"))), rofs);
    assert_eq!(errno(std::fs::hard_link(p("one"), p("three"))), rofs);
    assert_eq!(errno(std::os::unix::fs::symlink("x", p("sl"))), rofs);
    assert_eq!(
        errno(std::fs::set_permissions(
            p("one"),
            std::fs::Permissions::from_mode(0o777)
        )),
        rofs
    );
    let c = std::ffi::CString::new(p("one").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 0) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(rofs));
    // The file is untouched.
    assert_eq!(std::fs::read(p("one")).unwrap(), b"x");
    m.finish();
}

#[test]
fn tampered_chunk_gives_eio_and_other_files_still_read() {
    need_fuse!();
    let chunk = 4096u64;
    let s = Sample::new(chunk as u32, |p| {
        std::fs::write(p.join("victim"), noise(1, 40 * 4096)).unwrap();
        std::fs::write(p.join("other"), noise(2, 20 * 4096)).unwrap();
    });
    let m = s.mount(&["--direct-io", "--readahead", "0"]);
    // Flip one byte in data chunk 10 of "victim", under the live mount.
    let k = s.chunk_of("victim", 10 * chunk + 5);
    let off = s.chunk_file_offset(k) + 100;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&s.archive)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], off).unwrap();
    drop(f);

    let victim = File::open(m.mnt.join("victim")).unwrap();
    let want = noise(1, 40 * 4096);
    // Before the bad chunk: fine. Spanning it or inside it: EIO, never zeros
    // or a short read.
    let mut buf = vec![0u8; 8192];
    victim.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, want[..8192]);
    let mut buf = vec![0u8; 3 * 4096];
    assert_eq!(errno(victim.read_at(&mut buf, 9 * chunk)), libc::EIO);
    let mut one = [0u8; 1];
    assert_eq!(
        errno(victim.read_at(&mut one, 10 * chunk + 4000)),
        libc::EIO
    );
    // After it: fine again.
    let mut buf = vec![0u8; 4096];
    victim.read_exact_at(&mut buf, 11 * chunk).unwrap();
    assert_eq!(buf, want[11 * 4096..12 * 4096]);
    // Reading the whole file fails; other files still read.
    assert_eq!(errno(std::fs::read(m.mnt.join("victim"))), libc::EIO);
    assert_eq!(
        std::fs::read(m.mnt.join("other")).unwrap(),
        noise(2, 20 * 4096)
    );
    drop(victim);
    let log = m.log_text();
    assert!(
        log.contains(&format!("/victim: data chunk {k} failed authentication")),
        "log names file and chunk:\n{log}"
    );
    m.finish();
}

#[test]
fn truncated_archive_gives_eio() {
    need_fuse!();
    let s = Sample::new(4096, |p| {
        std::fs::write(p.join("f"), noise(5, 64 * 4096)).unwrap()
    });
    let m = s.mount(&["--direct-io", "--readahead", "0"]);
    let f = File::open(m.mnt.join("f")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    // Cut the archive in the middle of the file's data.
    let cut = s.chunk_file_offset(s.chunk_of("f", 30 * 4096));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.archive)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(errno(f.read_at(&mut buf, 40 * 4096)), libc::EIO);
    // Already cached data stays authentic.
    let mut again = vec![0u8; 4096];
    f.read_exact_at(&mut again, 0).unwrap();
    assert_eq!(again, head);
    drop(f);
    m.finish();
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

/// Runs hpcs-mount to completion (exec mode or a failing start).
fn run_mount(args: &[String]) -> std::process::Output {
    Command::new(MOUNT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn exec_mode_returns_the_command_status_and_unmounts() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let mnt = s.mnt.display().to_string();
    let mut args = s.args();
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("sha256sum {mnt}/big.bin && test -f {mnt}/one && exit 42"),
    ]);
    let out = run_mount(&args);
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = sha256_hex(&std::fs::read(s.src.join("big.bin")).unwrap());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
    assert!(!mounted(&s.mnt));
    // A command killed by a signal: 128 + N.
    let mut args = s.args();
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        "kill -USR1 $$".into(),
    ]);
    let out = run_mount(&args);
    assert_eq!(out.status.code(), Some(128 + libc::SIGUSR1));
    assert!(!mounted(&s.mnt));
    // A command that cannot be started.
    let mut args = s.args();
    args.extend(["--".into(), "/nonexistent/cmd".into()]);
    let out = run_mount(&args);
    assert_eq!(out.status.code(), Some(hpcs::exit::CMD_NOT_STARTED as i32));
    assert!(!mounted(&s.mnt));
}

#[test]
fn exec_mode_sigterm_stops_the_command_and_unmounts() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let mut args = s.args();
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("cat {}/one; echo; exec sleep 1000", s.mnt.display()),
    ]);
    let mut child = Command::new(MOUNT)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "x\n", "the command ran with the mount ready");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{st:?}");
    assert!(st.signal().is_none());
    assert!(!mounted(&s.mnt));
}

#[test]
fn exec_mode_command_dies_with_a_killed_hpcs_mount() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let mut args = s.args();
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        "echo $$; exec sleep 1000".into(),
    ]);
    let mut child = Command::new(MOUNT)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let cmd_pid: u32 = line.trim().parse().expect("the command printed its pid");
    assert!(!process_gone(cmd_pid), "the command runs");
    // SIGKILL: hpcs-mount gets no chance to stop the command itself.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("the orphaned command to get SIGTERM", || {
        process_gone(cmd_pid)
    });
    // The dead mount is detached by hand, as a job's cleanup would.
    let _ = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&s.mnt)
        .status();
    wait_until("the dead mount to go", || !mounted(&s.mnt));
}

#[test]
fn startup_errors_have_their_exit_codes_and_mount_nothing() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let code = |args: Vec<String>| {
        let out = run_mount(&args);
        assert!(!mounted(&s.mnt), "{args:?} left a mount");
        assert!(!out.stderr.is_empty());
        out.status.code().unwrap()
    };
    let (other_id, _) = identity_file(s.dir.path(), "other.txt");
    let mut wrong = s.args();
    wrong[3] = other_id.display().to_string();
    assert_eq!(code(wrong), hpcs::exit::WRONG_KEY as i32);
    let notarch = s.dir.path().join("not.hpcs");
    std::fs::write(&notarch, b"hello, this is not an archive at all........").unwrap();
    let mut na = s.args();
    na[0] = notarch.display().to_string();
    assert_eq!(code(na), hpcs::exit::NOT_ARCHIVE as i32);
    let mut missing = s.args();
    missing[1] = s.dir.path().join("nope").display().to_string();
    assert_eq!(code(missing), hpcs::exit::MOUNTPOINT_MISSING as i32);
    let full = s.dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let mut busy = s.args();
    busy[1] = full.display().to_string();
    assert_eq!(code(busy), hpcs::exit::MOUNTPOINT_BUSY as i32);
    assert_eq!(
        code(vec![s.archive.display().to_string()]),
        hpcs::exit::USAGE as i32
    );
    for bad in ["--threads", "--prefetch-threads"] {
        let mut zero = s.args();
        zero.extend([bad.to_string(), "0".to_string()]);
        assert_eq!(code(zero), hpcs::exit::USAGE as i32, "{bad} 0");
    }
    let mut noid = s.args();
    noid.truncate(2);
    let out = Command::new(MOUNT)
        .args(&noid)
        .env_remove("HPCS_IDENTITY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(hpcs::exit::BAD_IDENTITY as i32));
    // A mount point that is already mounted on.
    let m = s.mount(&[]);
    let out = run_mount(&s.args());
    assert_eq!(out.status.code(), Some(hpcs::exit::MOUNTPOINT_BUSY as i32));
    m.finish();
    // --unmount of something that is not an hpcs mount.
    let out = Command::new(MOUNT)
        .arg("--unmount")
        .arg(&s.mnt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(hpcs::exit::NOT_MOUNTED as i32));
}

#[test]
fn daemon_mode_returns_when_ready_and_fusermount_ends_it() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let pidfile = s.dir.path().join("pid");
    let mut args = s.args();
    args.extend([
        "--daemon".into(),
        "--pidfile".into(),
        pidfile.display().to_string(),
        "--log-file".into(),
        s.log().display().to_string(),
    ]);
    let out = run_mount(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mounted(&s.mnt), "mounted when --daemon returns");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Baseline after a first read: descriptors still settling right after
    // readiness (the readiness pipe) must not count as a leak.
    assert_eq!(std::fs::read(s.mnt.join("one")).unwrap(), b"x");
    let fds = fd_count(pid);
    // Reading the whole tree opens every file: a per-open leak would show.
    assert_eq!(describe_tree(&s.mnt), describe_tree(&s.src));
    assert_eq!(describe_tree(&s.mnt), describe_tree(&s.src));
    let after = fd_count(pid);
    assert!(
        after <= fds,
        "daemon leaked descriptors: {fds} before, {after} after"
    );
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&s.mnt)
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("the daemon to exit", || process_gone(pid));
    assert!(!mounted(&s.mnt));
    assert!(!pidfile.exists(), "pidfile removed on exit");
}

#[test]
fn watched_process_exit_unmounts() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let m = s.mount(&["--watch-pid", &pid]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let mut m = m;
    let st = m.child.take().unwrap().wait().unwrap();
    assert_eq!(st.code(), Some(hpcs::exit::WATCHED_EXITED as i32));
    assert!(!mounted(&s.mnt));
    assert!(m.log_text().contains("watched process"));
}

#[test]
fn foreground_sigterm_unmounts_and_exits_zero() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let pidfile = s.dir.path().join("pid");
    let mut m = s.mount(&["--pidfile", &pidfile.display().to_string()]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid as u32, m.pid(), "pidfile names the serving process");
    assert_eq!(std::fs::read(s.mnt.join("one")).unwrap(), b"x");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = m.child.take().unwrap().wait().unwrap();
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log_text());
    assert!(!mounted(&s.mnt));
    assert!(!pidfile.exists());
}
