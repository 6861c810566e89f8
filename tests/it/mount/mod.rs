//! Integration tests: hpcs-mount with real FUSE mounts.
//!
//! Every test mounts for real, waits for a readiness signal (the --ready-fd
//! pipe, the --daemon parent's exit, or a line from the exec-mode command),
//! never a sleep, and checks afterwards that no mount is left in
//! /proc/self/mountinfo and that no descriptor of this process or of the
//! daemon was leaked. Without /dev/fuse the tests print a line and pass,
//! unless HPCS_REQUIRE_FUSE=1 (CI), where they fail.
//!
//! This file is the harness (samples, mounting, leak checks); the tests are
//! by subject: `reads` (what a mount serves), `failures` (refused writes,
//! damaged archives, startup errors), `lifecycle` (exec, daemon and
//! foreground modes, ending a mount), `ceilings` (the benchmark ceilings,
//! or their absence from a default build) and `scratch` (the encrypted
//! scratch directory).

#![cfg(feature = "fuse")]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

mod ceilings;
mod failures;
mod lifecycle;
mod pins;
mod reads;
mod scratch;

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

    /// Arguments for exec mode: mount, run `sh -c script`, unmount.
    fn exec_args(&self, script: &str) -> Vec<String> {
        let mut args = self.args();
        args.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
        args
    }

    /// Starts exec mode running `sh -c script` and returns it with the first
    /// line the command printed (the mount was ready before it ran).
    fn exec_first_line(&self, script: &str) -> (Child, String) {
        let mut child = Command::new(MOUNT)
            .args(self.exec_args(script))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (child, line)
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
        // Busy only while another test's child, between fork and exec,
        // still holds copies of this process's descriptors: retry, bounded.
        let unmount = || {
            Command::new(MOUNT)
                .arg("--unmount")
                .arg(&self.mnt)
                .output()
                .unwrap()
        };
        let mut out = unmount();
        wait_until("the mount to stop being busy", || {
            if out.status.code() != Some(hpcs::exit::UNMOUNT_FAILED as i32) {
                return true;
            }
            out = unmount();
            false
        });
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

/// Runs hpcs-mount to completion (exec mode or a failing start).
fn run_mount(args: &[String]) -> std::process::Output {
    Command::new(MOUNT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
