//! The life of one mount: harden the process, check the node, open the
//! archives (through the caller's closure, after hardening so keys live in
//! locked, undumpable memory), mount, report readiness or run the exec-mode
//! command, then act on [`Event`]s until the mode says stop, and shut down:
//! unmount (lazily if busy), close the results directory, wipe the cache.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::crypto::Source;
use crate::exit::{self, Fail};
use crate::fs::scratch::Scratch;
use crate::fs::{self as hfs, HpcsFs, MountConfig, MountedArchive};
use crate::keys::Recipient;
use crate::{info, results, secmem, warn};

use super::checks::{check_dev_fuse, check_mountpoint, fit_cache};
use super::daemon::{announce_ready, sd_notify, DaemonPipe};
use super::events::{signal_thread, watch_thread, Event, Watched};
use super::{child, unmount::unmount_path};

/// What to mount and how to run it (checked settings).
#[derive(Debug)]
pub struct Plan {
    /// Where (checked again when mounting).
    pub mountpoint: PathBuf,
    /// Exec mode when not empty: the command and its arguments.
    pub cmd: Vec<OsString>,
    /// The filesystem's settings.
    pub fs: MountConfig,
    /// Kernel read-ahead of the mount in bytes (root only; 0 leaves it).
    pub kernel_readahead: u64,
    /// Inherited descriptor that gets "ready\n".
    pub ready_fd: Option<RawFd>,
    /// File that gets our pid while serving.
    pub pidfile: Option<PathBuf>,
    /// The write-only results directory, if any.
    pub output: Option<OutputDir>,
    /// The encrypted scratch directory, if any.
    pub scratch: Option<ScratchDir>,
}

/// `--scratch NAME=DIR[:SIZE]`.
#[derive(Debug)]
pub struct ScratchDir {
    /// Its name under the mount root.
    pub name: String,
    /// Where its (nameless) backing file goes.
    pub dir: PathBuf,
    /// Most bytes of data it holds (ENOSPC past it); `None`: what DIR's
    /// filesystem has room for.
    pub limit: Option<u64>,
}

/// `--output NAME=DIR` with its recipients.
#[derive(Debug)]
pub struct OutputDir {
    /// Its name under the mount root.
    pub name: String,
    /// Where the encrypted results go.
    pub dir: PathBuf,
    /// Who can decrypt them.
    pub recipients: Vec<Recipient>,
    /// The run id fixed in advance (`--output-run`), else a random one.
    pub run: Option<[u8; 16]>,
}

/// This node's name, for the results manifest.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "-".into())
}

/// Raises the kernel read-ahead of the new mount (root only; best effort).
fn set_kernel_readahead(dev: u64, bytes: u64) {
    if bytes == 0 {
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let p = format!("/sys/class/bdi/{maj}:{min}/read_ahead_kb");
    if let Err(e) = std::fs::write(&p, format!("{}", (bytes >> 10).max(4))) {
        crate::log::log(crate::log::DEBUG, format_args!("cannot set {p}: {e}"));
    }
}

/// Opens the results directory's run, keyed by the first archive.
fn open_output<S: Source + 'static>(
    o: OutputDir,
    archives: &[MountedArchive<S>],
) -> Result<(String, results::Run), Fail> {
    let OutputDir {
        name,
        dir,
        recipients,
        run: fixed_run,
    } = o;
    let first = &archives[0].archive;
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "-".into());
    let run = results::Run::new(
        &dir,
        recipients,
        first.results_key(),
        first.header().archive_id,
        host_name(),
        job,
    )
    .map_err(|e| {
        Fail::new(
            exit::RESULTS_WRITE,
            format!("--output: cannot use {}: {e}", dir.display()),
        )
    })?;
    let run = match fixed_run {
        Some(r) => run.with_run_id(r),
        None => run,
    };
    info!(
        "results directory {name}: encrypted into {} (run {})",
        dir.display(),
        crate::util::hex(&run.info().run)
    );
    Ok((name, run))
}

/// Sets up the scratch directory: its key and its nameless backing file.
fn open_scratch(d: ScratchDir) -> Result<Scratch, Fail> {
    let ScratchDir { name, dir, limit } = d;
    let (scratch, opened) = Scratch::new(name, &dir, limit).map_err(|e| {
        Fail::new(
            exit::SCRATCH,
            format!(
                "--scratch: cannot keep a scratch file in {}: {e} (give a directory on a writable local disk or parallel filesystem)",
                dir.display()
            ),
        )
    })?;
    if opened.removed > 0 {
        info!(
            "scratch: removed {} leftover backing file(s) of mounts that died while creating them in {} (unreadable: their keys died with them)",
            opened.removed,
            dir.display()
        );
    }
    if opened.named {
        info!(
            "scratch: {} has no O_TMPFILE; the backing file was created under a random name and unlinked at once",
            dir.display()
        );
    }
    info!(
        "scratch directory {}: encrypted into a nameless file in {}, limit {}",
        scratch.name(),
        dir.display(),
        limit.map_or("the filesystem's free space".into(), |l| format!(
            "{} MiB",
            l >> 20
        ))
    );
    Ok(scratch)
}

/// Ready means the kernel answers: the root of the new mount is inode 1 on
/// a device other than its parent's. Returns the mount's device.
fn mounted_dev(mountpoint: &Path) -> Result<u64, String> {
    let parent_dev = mountpoint
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    std::fs::metadata(mountpoint)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.ino() == 1 && Some(m.dev()) != parent_dev {
                Ok(m.dev())
            } else {
                Err("the mount point does not show the mounted archive".into())
            }
        })
}

/// Mounts, reports readiness, and runs until the mode says stop; returns
/// the exit code. `open` opens and unlocks the archives; it runs after the
/// process is hardened and the node checked, before anything is mounted.
pub fn serve<S, F>(
    mut s: Plan,
    open: F,
    watch: Option<Watched>,
    daemon_pipe: Option<&mut DaemonPipe>,
) -> Result<u8, Fail>
where
    S: Source + 'static,
    F: FnOnce() -> Result<Vec<MountedArchive<S>>, Fail>,
{
    let (tx, rx) = channel();
    // Before any other thread: every thread inherits the blocked mask.
    signal_thread(tx.clone());
    let hardening = secmem::harden_process();
    if !hardening.undumpable {
        warn!("could not make the process non-dumpable (PR_SET_DUMPABLE)");
    }
    let locked_all = secmem::lock_all_memory();
    check_dev_fuse()?;
    let mountpoint = check_mountpoint(&s.mountpoint)?;
    fit_cache(&mut s.fs);
    let archives = open()?;
    if let Ok(Event::Signal(sig, _)) = rx.try_recv() {
        return Err(Fail::new(
            exit::INTERRUPTED,
            format!("interrupted by signal {sig} before mounting"),
        ));
    }
    let output = match s.output.take() {
        None => None,
        Some(o) => Some(open_output(o, &archives)?),
    };
    let scratch = match s.scratch.take() {
        None => None,
        Some(d) => Some(open_scratch(d)?),
    };
    let (fs, cache) = HpcsFs::new(archives, s.fs.clone(), output, scratch)
        .map_err(|e| Fail::new(exit::INTERNAL, format!("cannot set up the cache: {e}")))?;
    if !cache.locked && !locked_all {
        warn!("the plaintext cache could not be locked in RAM (mlock refused; see ulimit -l): it may be swapped");
    }
    #[cfg(feature = "bench-ceilings")]
    if s.fs.null_data || s.fs.no_crypt {
        warn!(
            "benchmark ceiling: files read as {}, not their contents",
            if s.fs.null_data {
                "zeros"
            } else {
                "their stored (encrypted) bytes"
            }
        );
    }
    info!(
        "cache: {} slots of {} KiB ({} MiB), locked: {}",
        cache.slots,
        cache.slot_len >> 10,
        (cache.slots * cache.slot_len) >> 20,
        cache.locked || locked_all
    );
    let wiper = fs.handle();
    let mut session = hfs::mount(fs, &mountpoint, &s.fs).map_err(|e| {
        Fail::new(
            exit::MOUNT_FAILED,
            format!(
                "cannot mount on {}: {e}{}",
                mountpoint.display(),
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (as a normal user this needs fusermount3 from the fuse3 package, setuid root)"
                } else {
                    ""
                }
            ),
        )
    })?;
    let mut unmounter = session.unmount_callable();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("hpcs-session".into())
            .spawn(move || {
                if let Err(e) = session.run() {
                    warn!("FUSE session ended with an error: {e}");
                }
                let _ = tx.send(Event::SessionEnded);
            })
            .map_err(|e| {
                Fail::new(
                    exit::INTERNAL,
                    format!("cannot start the FUSE session: {e}"),
                )
            })?;
    }
    let dev = match mounted_dev(&mountpoint) {
        Ok(d) => d,
        Err(e) => {
            let _ = unmounter.unmount();
            return Err(Fail::new(
                exit::MOUNT_FAILED,
                format!("mount on {} is not answering: {e}", mountpoint.display()),
            ));
        }
    };
    set_kernel_readahead(dev, s.kernel_readahead);
    info!("mounted on {}", mountpoint.display());

    let mut child_pid = None;
    if !s.cmd.is_empty() {
        match child::spawn(&s.cmd, hardening.core_limit, tx.clone()) {
            Ok(pid) => child_pid = Some(pid),
            Err(e) => {
                let name = s.cmd[0].to_string_lossy().into_owned();
                let ended = shutdown(&mut unmounter, &mountpoint, &rx, &wiper);
                cleanup(&s, &wiper, ended, exit::CMD_NOT_STARTED);
                return Err(Fail::new(
                    exit::CMD_NOT_STARTED,
                    format!("cannot run {name}: {e}"),
                ));
            }
        }
    } else {
        if let Some(w) = watch {
            watch_thread(w, tx.clone());
        }
        announce_ready(s.pidfile.as_deref(), s.ready_fd, &mountpoint, daemon_pipe);
    }

    let code = loop {
        let Ok(ev) = rx.recv() else {
            break exit::INTERNAL;
        };
        match ev {
            Event::Signal(sig, user) => match child_pid {
                Some(pid) => {
                    if user {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
                None => {
                    info!("signal {sig}: unmounting {}", mountpoint.display());
                    break exit::OK;
                }
            },
            Event::ChildExited(code) => break code,
            Event::SessionEnded => {
                if child_pid.is_none() {
                    info!("{} was unmounted; exiting", mountpoint.display());
                    return Ok(cleanup(&s, &wiper, true, exit::OK));
                }
                warn!(
                    "{} was unmounted while the command was still running",
                    mountpoint.display()
                );
            }
            Event::WatchedExited(pid) => {
                warn!(
                    "the watched process {pid} exited; unmounting {}",
                    mountpoint.display()
                );
                break exit::WATCHED_EXITED;
            }
        }
    };
    sd_notify("STOPPING=1");
    let ended = shutdown(&mut unmounter, &mountpoint, &rx, &wiper);
    Ok(cleanup(&s, &wiper, ended, code))
}

/// Closes the results directory (manifest), wipes the cache, removes the
/// pidfile. `ended`: the FUSE session is over, so no file can still be open.
/// Returns the exit code: `code`, or 39 if the results were not closed
/// properly and nothing worse happened.
fn cleanup(s: &Plan, wiper: &hfs::FsHandle, ended: bool, code: u8) -> u8 {
    let mut code = code;
    if let Some(r) = wiper.close_output(ended) {
        match &r.manifest {
            Ok(p) => info!(
                "results: {} file(s) finished, manifest {}",
                r.files,
                p.display()
            ),
            Err(e) => {
                warn!("results: cannot write the manifest: {e}; the results will be reported incomplete");
                if code == exit::OK {
                    code = exit::RESULTS_WRITE;
                }
            }
        }
        if !r.incomplete.is_empty() {
            warn!(
                "results: {} file(s) were still open and are incomplete: {}",
                r.incomplete.len(),
                r.incomplete.join(", ")
            );
        }
    }
    wiper.wipe();
    if let Some(p) = &s.pidfile {
        let _ = std::fs::remove_file(p);
    }
    code
}

/// Unmounts (lazily if busy) and waits, bounded, for the session to end;
/// true if it did.
fn shutdown(
    unmounter: &mut fuser::SessionUnmounter,
    mnt: &Path,
    rx: &Receiver<Event>,
    wiper: &hfs::FsHandle,
) -> bool {
    // Results files closed just before we got here have their release on its
    // way: let it arrive (tearing the connection down would drop it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while wiper.open_outputs() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let wait = match unmounter.unmount() {
        Ok(()) => Duration::from_secs(10),
        Err(e) => {
            warn!("{} is busy ({e}); detaching it lazily", mnt.display());
            if let Err(e) = unmount_path(mnt, true) {
                warn!("lazy unmount of {} failed: {e}", mnt.display());
            }
            Duration::from_secs(1)
        }
    };
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::SessionEnded) => return true,
            Ok(_) => continue,
            Err(_) => {
                info!("files are still open under the detached mount; exiting anyway");
                wiper.wipe();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmounted_directory_is_not_ready() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            mounted_dev(d.path()).unwrap_err(),
            "the mount point does not show the mounted archive"
        );
        assert!(mounted_dev(&d.path().join("gone")).is_err());
    }

    #[test]
    fn host_name_is_one_word() {
        let h = host_name();
        assert!(!h.is_empty() && !h.contains(char::is_whitespace), "{h:?}");
    }
}
