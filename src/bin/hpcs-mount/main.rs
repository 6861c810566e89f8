//! hpcs-mount: mounts hpcs archives read-only through FUSE, decrypting on
//! demand in locked memory. Thin: parses the command line (cli.rs), checks
//! everything that can be checked before mounting (so startup errors get a
//! clear message and a documented exit code and nothing is left mounted),
//! obtains the data key in one place ([`obtain_key`]), then runs the
//! `hpcs::fs` filesystem in one of three modes: exec (run a command, unmount
//! when it exits), foreground (serve until unmounted or signalled, readiness
//! through --ready-fd / --pidfile / sd_notify), or --daemon (fork before any
//! thread exists; the parent returns once the child reports the mount ready).
//! A watched process (default: whoever started us) ending also unmounts.

mod cli;
mod vault_key;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use clap::Parser;

use hpcs::crypto::{DataKey, FileSource, Header, SealedArchive, Source};
use hpcs::exit;
#[cfg(feature = "bench-ceilings")]
use hpcs::fs::bench::ShapedSource;
use hpcs::fs::{self as hfs, HpcsFs, MountConfig, MountedArchive};
use hpcs::keys::{self, Identities};
use hpcs::results;
use hpcs::secmem;

use cli::Cli;

/// A failure: the exit code and the message for the user (what to do).
struct Fail {
    code: u8,
    msg: String,
}

impl Fail {
    fn new(code: u8, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
}

use hpcs::{info, warn};

/// Checked settings.
struct Settings {
    /// (name under a shared root, archive path).
    archives: Vec<(String, PathBuf)>,
    mountpoint: PathBuf,
    cmd: Vec<OsString>,
    identities: Vec<PathBuf>,
    fs: MountConfig,
    kernel_readahead: u64,
    daemon: bool,
    ready_fd: Option<RawFd>,
    pidfile: Option<PathBuf>,
    watch: Option<i32>,
    log_file: Option<PathBuf>,
    /// Benchmark shaping of the backing file (HPCS_BENCH_BACKING_LATENCY_US,
    /// HPCS_BENCH_BACKING_MBPS).
    #[cfg(feature = "bench-ceilings")]
    shape: Option<(Duration, Option<u64>)>,
    /// Vault/SPIFFE key source options.
    vault: vault_key::VaultMountArgs,
    /// Results directory: (name under the root, directory on storage,
    /// recipients).
    output: Option<(String, PathBuf, Vec<keys::Recipient>)>,
}

/// Things that make the main loop act.
enum Event {
    /// A signal; `true` when another process sent it (kill), not the tty.
    Signal(i32, bool),
    /// Exec mode: CMD ended with this exit code.
    ChildExited(u8),
    /// The FUSE session ended (unmounted from outside, or by us).
    SessionEnded,
    /// The watched process exited.
    WatchedExited(i32),
}

const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    hpcs::log::init("hpcs-mount", cli.verbose);
    let result = match &cli.unmount {
        Some(m) => unmount_cmd(m, cli.lazy),
        None => settings(cli).and_then(start),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("hpcs-mount: error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn size_arg(flag: &str, v: &str) -> Result<u64, Fail> {
    hpcs::util::parse_size(v).ok_or_else(|| {
        Fail::new(
            exit::USAGE,
            format!("invalid {flag} {v:?}: give a size such as 256M, 1G or 0"),
        )
    })
}

fn settings(cli: Cli) -> Result<Settings, Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let (archives, mountpoint) = if cli.archives.is_empty() {
        match <[PathBuf; 2]>::try_from(cli.paths) {
            Ok([a, m]) => (vec![(String::new(), a)], m),
            Err(_) => {
                return Err(usage(
                    "give ARCHIVE and MOUNTPOINT (or --archive NAME=ARCHIVE ... and MOUNTPOINT); see --help".into(),
                ))
            }
        }
    } else {
        let m = match <[PathBuf; 1]>::try_from(cli.paths) {
            Ok([m]) => m,
            Err(_) => {
                return Err(usage(
                    "with --archive, give only MOUNTPOINT as a positional argument".into(),
                ))
            }
        };
        let mut list: Vec<(String, PathBuf)> = Vec::new();
        for a in &cli.archives {
            let (name, path) = a.split_once('=').ok_or_else(|| {
                usage(format!(
                    "--archive {a:?}: expected NAME=ARCHIVE, e.g. data=/scratch/data.hpcs"
                ))
            })?;
            if !plain_name(name) {
                return Err(usage(format!(
                    "--archive {a:?}: NAME must be a plain file name (no '/', not '.' or '..')"
                )));
            }
            if list.iter().any(|(n, _)| n == name) {
                return Err(usage(format!("--archive: the name {name:?} is used twice")));
            }
            list.push((name.to_string(), PathBuf::from(path)));
        }
        (list, m)
    };
    let output = match &cli.output {
        None => None,
        Some(o) => Some(output_settings(
            o,
            &cli.output_recipients,
            &cli.output_recipients_files,
            &archives,
        )?),
    };
    let cache_bytes = size_arg("--cache-size", &cli.cache_size)?;
    let readahead_bytes = size_arg("--readahead", &cli.readahead)?;
    let kernel_readahead = size_arg("--kernel-readahead", &cli.kernel_readahead)?;
    // Read-ahead beyond a quarter of the cache would evict itself.
    let readahead_bytes = readahead_bytes.min(cache_bytes / 4);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = cli.threads.unwrap_or(2 * cpus).clamp(1, 64);
    if cli.threads == Some(0) {
        return Err(usage("--threads must be at least 1".into()));
    }
    let prefetch_threads = match cli.prefetch_threads {
        Some(0) => return Err(usage("--prefetch-threads must be at least 1".into())),
        Some(n) => n.min(64),
        None => (8 * cpus).clamp(16, 64),
    };
    if let Some(fd) = cli.ready_fd {
        // SAFETY: F_GETFD only queries the descriptor table.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(usage(format!(
                "--ready-fd {fd} is not an open file descriptor"
            )));
        }
    }
    let watch = if !cli.cmd.is_empty() || cli.no_watch {
        None
    } else {
        // SAFETY: getppid cannot fail.
        let ppid = unsafe { libc::getppid() };
        match cli.watch_pid {
            Some(p) if p <= 0 => return Err(usage(format!("--watch-pid {p}: give a process id"))),
            Some(p) => Some(p),
            None if ppid > 1 => Some(ppid),
            None => None,
        }
    };
    #[cfg(feature = "bench-ceilings")]
    let shape = std::env::var("HPCS_BENCH_BACKING_LATENCY_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| {
            let mbps = std::env::var("HPCS_BENCH_BACKING_MBPS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(|m| m * 1_000_000);
            (Duration::from_micros(us), mbps)
        });
    let fs = MountConfig {
        cache_bytes,
        readahead_bytes,
        direct_io: if cli.direct_io {
            Some(true)
        } else if cli.page_cache {
            Some(false)
        } else {
            None
        },
        threads,
        prefetch_threads,
        allow_other: cli.allow_other,
        allow_root: cli.allow_root,
        #[cfg(feature = "bench-ceilings")]
        null_data: cli.bench_null,
        #[cfg(feature = "bench-ceilings")]
        no_crypt: cli.bench_nocrypt,
        verbosity: cli.verbose,
        force_top: !cli.archives.is_empty(),
        ..MountConfig::default()
    };
    Ok(Settings {
        archives,
        mountpoint,
        cmd: cli.cmd,
        identities: cli.identities,
        fs,
        kernel_readahead,
        daemon: cli.daemon,
        ready_fd: cli.ready_fd,
        pidfile: cli.pidfile,
        watch,
        log_file: cli.log_file,
        #[cfg(feature = "bench-ceilings")]
        shape,
        vault: cli.vault,
        output,
    })
}

/// A name that can be one directory entry under the mount root.
fn plain_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255)
}

/// Checks `--output NAME=DIR` and its recipients.
fn output_settings(
    o: &str,
    recipient_args: &[String],
    recipient_files: &[PathBuf],
    archives: &[(String, PathBuf)],
) -> Result<(String, PathBuf, Vec<keys::Recipient>), Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let (name, dir) = o.split_once('=').ok_or_else(|| {
        usage(format!(
            "--output {o:?}: expected NAME=DIR, e.g. output=$HOME/results/$SLURM_JOB_ID"
        ))
    })?;
    if !plain_name(name) {
        return Err(usage(format!(
            "--output {o:?}: NAME must be a plain file name (no '/', not '.' or '..')"
        )));
    }
    if archives.iter().any(|(n, _)| n == name) {
        return Err(usage(format!(
            "--output: the name {name:?} is already an --archive name"
        )));
    }
    let mut recipients = Vec::new();
    for r in recipient_args {
        recipients.push(
            keys::parse_recipient(r).map_err(|e| Fail::new(exit::for_key(&e), e.to_string()))?,
        );
    }
    for f in recipient_files {
        recipients.extend(
            keys::read_recipients_file(f)
                .map_err(|e| Fail::new(exit::for_key(&e), e.to_string()))?,
        );
    }
    if recipients.is_empty() {
        return Err(usage(
            "--output needs --output-recipient RECIPIENT or --output-recipients-file FILE: the results are encrypted to you".into(),
        ));
    }
    let dir = PathBuf::from(dir);
    let unusable = |why: String| {
        Fail::new(
            exit::RESULTS_WRITE,
            format!(
                "--output: cannot write results into {}: {why}",
                dir.display()
            ),
        )
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(unusable("not a directory".into())),
        Err(e) => {
            return Err(unusable(format!(
                "{e} (create it first, e.g. mkdir -p {})",
                dir.display()
            )))
        }
    }
    // Probe: a results directory that cannot take a file fails now, not
    // after the job has run.
    let probe = dir.join(format!(".hpcs-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| unusable(e.to_string()))?;
    Ok((name.to_string(), dir, recipients))
}

/// This node's name, for the results manifest.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "-".into())
}

/// Forks for --daemon (before any thread exists), redirects logs, then runs.
fn start(s: Settings) -> Result<u8, Fail> {
    // Open the watched process now: a pidfd survives the fork and cannot
    // be fooled by pid reuse.
    let watch = match s.watch {
        Some(pid) => match pidfd_open(pid) {
            Ok(fd) => Some((pid, fd)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return Err(Fail::new(
                    exit::WATCHED_EXITED,
                    format!("the process to watch (pid {pid}) does not exist; give --watch-pid or --no-watch"),
                ))
            }
            Err(e) => {
                warn!("cannot watch pid {pid} ({e}); the mount will not end with it");
                None
            }
        },
        None => None,
    };
    if let Some(f) = &s.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
            .map_err(|e| {
                Fail::new(
                    exit::OUTPUT,
                    format!("cannot open --log-file {}: {e}", f.display()),
                )
            })?;
        // SAFETY: dup2 onto stderr of a valid open fd.
        unsafe { libc::dup2(file.as_raw_fd(), 2) };
    }
    if !s.daemon {
        return serve(s, watch, None);
    }
    let (rd, wr) = pipe()?;
    // SAFETY: no other thread exists yet (nothing before this point spawns
    // one), so the child is a faithful copy that may keep running Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(Fail::new(
            exit::INTERNAL,
            format!("fork: {}", std::io::Error::last_os_error()),
        )),
        0 => {
            drop(rd);
            // SAFETY: plain syscalls on our own process and fds.
            unsafe {
                libc::setsid();
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            let mut wr = std::fs::File::from(wr);
            match serve(s, watch, Some(&mut wr)) {
                Ok(code) => Ok(code),
                Err(f) => {
                    let mut msg = vec![f.code];
                    msg.extend_from_slice(f.msg.as_bytes());
                    let _ = wr.write_all(&msg);
                    drop(wr);
                    // The parent prints the message.
                    std::process::exit(i32::from(f.code));
                }
            }
        }
        child => {
            drop(wr);
            drop(watch);
            let mut buf = Vec::new();
            let _ = std::fs::File::from(rd).read_to_end(&mut buf);
            match buf.split_first() {
                Some((0, _)) => {
                    info!("serving in the background as pid {child}");
                    Ok(exit::OK)
                }
                Some((&code, msg)) => Err(Fail::new(code, String::from_utf8_lossy(msg))),
                None => {
                    let mut st = 0;
                    // SAFETY: waiting for our own child.
                    unsafe { libc::waitpid(child, &mut st, 0) };
                    Err(Fail::new(
                        exit::DAEMON_FAILED,
                        format!("the background process died before the mount was ready (status {st:#x})"),
                    ))
                }
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Fail> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Fail::new(
            exit::INTERNAL,
            format!("pipe: {}", std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Blocks the forwarded signals in this (and every later) thread and starts
/// a thread that receives them with sigwaitinfo.
fn signal_thread(tx: Sender<Event>) {
    // SAFETY: sigset manipulation on a local set, then the thread mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let _ = std::thread::Builder::new()
        .name("hpcs-signals".into())
        .spawn(move || loop {
            // SAFETY: `set` is a valid sigset and `info` a writable siginfo.
            let (sig, user) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let sig = libc::sigwaitinfo(&set, &mut info);
                (sig, info.si_code <= 0)
            };
            if sig > 0 && tx.send(Event::Signal(sig, user)).is_err() {
                return;
            }
        });
}

fn watch_thread(pid: i32, fd: OwnedFd, tx: Sender<Event>) {
    let _ = std::thread::Builder::new()
        .name("hpcs-watch".into())
        .spawn(move || loop {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, -1) };
            if r > 0 {
                let _ = tx.send(Event::WatchedExited(pid));
                return;
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return;
            }
        });
}

/// Where the data key of one archive comes from. Today: the age identities
/// given with -i; this is the one place to add other sources (Vault).
fn obtain_key(
    header: &Header,
    label: &str,
    ids: &[Identities],
    vault: &vault_key::VaultMountArgs,
) -> Result<DataKey, Fail> {
    if vault_key::wanted(header, vault, !ids.is_empty()) {
        return vault_key::obtain(header, label, vault);
    }
    if ids.is_empty() {
        return Err(Fail::new(
            exit::BAD_IDENTITY,
            "no identity given: pass -i FILE (an age identity the archive was packed for) or set HPCS_IDENTITY",
        ));
    }
    let mut last = None;
    for set in ids {
        match keys::unwrap_age(&header.stanzas, set) {
            Ok(k) => return Ok(k),
            Err(e @ keys::KeyError::NoMatchingIdentity) => last = Some(e),
            Err(e) => return Err(Fail::new(exit::for_key(&e), format!("{label}: {e}"))),
        }
    }
    let e = last.unwrap_or(keys::KeyError::NoMatchingIdentity);
    Err(Fail::new(exit::for_key(&e), format!("{label}: {e}")))
}

type Src = Box<dyn Source>;

/// Opens and unlocks every archive (no mount yet).
fn open_archives(s: &Settings) -> Result<Vec<MountedArchive<Src>>, Fail> {
    let mut ids = Vec::new();
    for p in &s.identities {
        ids.push(
            keys::load_identities(p).map_err(|e| Fail::new(exit::for_key(&e), e.to_string()))?,
        );
    }
    let mut out = Vec::new();
    for (name, path) in &s.archives {
        let label = path.display().to_string();
        let file = FileSource::open(path)
            .map_err(|e| Fail::new(exit::INPUT, format!("cannot open archive {label}: {e}")))?;
        #[cfg(feature = "bench-ceilings")]
        let src: Src = match s.shape {
            Some((lat, bw)) => Box::new(ShapedSource::new(file, lat, bw)),
            None => Box::new(file),
        };
        #[cfg(not(feature = "bench-ceilings"))]
        let src: Src = Box::new(file);
        let sealed = SealedArchive::open(src)
            .map_err(|e| Fail::new(exit::for_format(&e), format!("{label}: {e}")))?;
        let key = obtain_key(sealed.header(), &label, &ids, &s.vault)?;
        let archive = sealed
            .unlock(&key)
            .map_err(|e| Fail::new(exit::for_format(&e), format!("{label}: {e}")))?;
        drop(key); // wiped; the archive keeps only derived keys
        out.push(MountedArchive {
            name: name.clone(),
            label,
            archive,
        });
    }
    Ok(out)
}

/// One line of /proc/self/mountinfo: (mount point, fs type, source).
fn mounts() -> Vec<(PathBuf, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let source = r.next().unwrap_or("").to_string();
            Some((PathBuf::from(unescape(mp)), fstype, source))
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (\040 space, \011 tab, \012, \134).
fn unescape(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_os_string()
}

/// Checks the mount point before anything is opened or mounted.
fn check_mountpoint(p: &Path) -> Result<PathBuf, Fail> {
    let md = std::fs::metadata(p).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTCONN) => Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "{} is a dead FUSE mount (its daemon was killed); remove it with `fusermount3 -u {}` first",
                p.display(),
                p.display()
            ),
        ),
        _ if e.kind() == std::io::ErrorKind::NotFound => Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {} does not exist; create an empty directory first (mkdir -p)", p.display()),
        ),
        _ => Fail::new(exit::MOUNTPOINT_MISSING, format!("cannot use mount point {}: {e}", p.display())),
    })?;
    if !md.is_dir() {
        return Err(Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {} is not a directory", p.display()),
        ));
    }
    let canon = p.canonicalize().map_err(|e| {
        Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {}: {e}", p.display()),
        )
    })?;
    if mounts().iter().any(|(m, _, _)| *m == canon) {
        return Err(Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "{} is already a mount point; unmount it or choose another directory",
                canon.display()
            ),
        ));
    }
    let nonempty = std::fs::read_dir(&canon)
        .map(|mut d| d.next().is_some())
        .map_err(|e| {
            Fail::new(
                exit::MOUNTPOINT_MISSING,
                format!("cannot read mount point {}: {e}", canon.display()),
            )
        })?;
    if nonempty {
        return Err(Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "mount point {} is not empty; mount on an empty directory so no files are hidden",
                canon.display()
            ),
        ));
    }
    Ok(canon)
}

fn check_dev_fuse() -> Result<(), Fail> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Fail::new(
            exit::NO_FUSE,
            format!("cannot open /dev/fuse: {e}; FUSE is not open to this user here (ask for /dev/fuse mode 0666)"),
        )),
        Err(e) => Err(Fail::new(
            exit::NO_FUSE,
            format!(
                "cannot open /dev/fuse: {e}; FUSE is not available on this node (load the fuse module, or run where /dev/fuse exists)"
            ),
        )),
    }
}

/// Caps the cache to what may be locked, with a warning.
fn fit_cache(cfg: &mut MountConfig) {
    // Locked besides the cache: one reply buffer (1 MiB) per FUSE thread.
    let reserve = (cfg.threads as u64 + 1) << 20;
    if let Some(limit) = secmem::memlock_limit() {
        if cfg.cache_bytes + reserve > limit {
            let capped = limit.saturating_sub(reserve);
            if capped >= 1 << 20 {
                warn!(
                    "--cache-size reduced from {} MiB to {} KiB to fit the locked-memory limit ({} KiB, ulimit -l); raise it (LimitMEMLOCK= in a unit, ulimit -l in a job) for a larger cache",
                    cfg.cache_bytes >> 20,
                    capped >> 10,
                    limit >> 10
                );
                cfg.cache_bytes = capped;
                cfg.readahead_bytes = cfg.readahead_bytes.min(capped / 4);
            } else {
                warn!(
                    "the locked-memory limit is only {} KiB (ulimit -l): decrypted data cannot be locked in RAM and may be swapped; raise the limit",
                    limit >> 10
                );
            }
        }
    }
}

fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_bytes();
    let r = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), Path::new(&path))
    };
    if let Err(e) = r {
        warn!("sd_notify failed: {e}");
    }
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
        hpcs::log::log(hpcs::log::DEBUG, format_args!("cannot set {p}: {e}"));
    }
}

/// Unmounts `mnt`: plainly, or lazily (detach) if `lazy`.
fn unmount_path(mnt: &Path, lazy: bool) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mnt.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error().to_string());
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mnt)
        .output()
        .map_err(|e| format!("cannot run fusermount3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn unmount_cmd(mnt: &Path, lazy: bool) -> Result<u8, Fail> {
    let abs = std::path::absolute(mnt).unwrap_or_else(|_| mnt.to_path_buf());
    let canon = abs.canonicalize().unwrap_or(abs);
    let found = mounts().into_iter().rev().find(|(m, _, _)| *m == canon);
    match found {
        Some((_, t, src)) if t == "fuse.hpcs" || (t == "fuse" && src == "hpcs") => {}
        Some((_, t, _)) => {
            return Err(Fail::new(
                exit::NOT_MOUNTED,
                format!(
                    "{} is a {t} mount, not an hpcs mount; not touching it",
                    canon.display()
                ),
            ))
        }
        None => {
            return Err(Fail::new(
                exit::NOT_MOUNTED,
                format!("{} is not a mount point", canon.display()),
            ))
        }
    }
    unmount_path(&canon, lazy).map_err(|e| {
        Fail::new(
            exit::UNMOUNT_FAILED,
            format!(
                "cannot unmount {}: {e}; close the files open under it, or use --lazy to detach it now",
                canon.display()
            ),
        )
    })?;
    Ok(exit::OK)
}

fn exit_code(st: std::process::ExitStatus) -> u8 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => (128 + s).min(255) as u8,
        _ => exit::INTERNAL,
    }
}

/// Mounts, reports readiness, and runs until the mode says stop.
fn serve(
    mut s: Settings,
    watch: Option<(i32, OwnedFd)>,
    daemon_pipe: Option<&mut std::fs::File>,
) -> Result<u8, Fail> {
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
    let archives = open_archives(&s)?;
    if let Ok(Event::Signal(sig, _)) = rx.try_recv() {
        return Err(Fail::new(
            exit::INTERRUPTED,
            format!("interrupted by signal {sig} before mounting"),
        ));
    }
    let output = match s.output.take() {
        None => None,
        Some((name, dir, recipients)) => {
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
            info!(
                "results directory {name}: encrypted into {} (run {})",
                dir.display(),
                hpcs::util::hex(&run.info().run)
            );
            Some((name, run))
        }
    };
    let (fs, cache) = HpcsFs::new(archives, s.fs.clone(), output)
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
    // Ready means the kernel answers: the root of the new mount is inode 1
    // on a device other than its parent's.
    let parent_dev = mountpoint
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    let ready = std::fs::metadata(&mountpoint)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.ino() == 1 && Some(m.dev()) != parent_dev {
                Ok(m.dev())
            } else {
                Err("the mount point does not show the mounted archive".into())
            }
        });
    let dev = match ready {
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
        let core = hardening.core_limit;
        let mut cmd = Command::new(&s.cmd[0]);
        cmd.args(&s.cmd[1..]).env_remove("NOTIFY_SOCKET");
        // CMD must not outlive a killed hpcs-mount (its mount would be dead and
        // Slurm's default process tracking would not stop it): it gets SIGTERM
        // when we die. We fork from the main thread, whose exit is ours.
        // SAFETY: getpid is always safe to call.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls (setrlimit, sigprocmask,
        // prctl, getppid, raise) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setrlimit(libc::RLIMIT_CORE, &core);
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                if libc::getppid() != parent {
                    // We died between fork and prctl.
                    libc::raise(libc::SIGTERM);
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(mut child) => {
                child_pid = Some(child.id() as i32);
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("hpcs-wait".into())
                    .spawn(move || {
                        let code = child.wait().map(exit_code).unwrap_or(exit::INTERNAL);
                        let _ = tx.send(Event::ChildExited(code));
                    });
            }
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
        if let Some((pid, fd)) = watch {
            watch_thread(pid, fd, tx.clone());
        }
        if let Some(p) = &s.pidfile {
            if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
                warn!("cannot write --pidfile {}: {e}", p.display());
            }
        }
        if let Some(fd) = s.ready_fd {
            // SAFETY: fd was checked to be open at startup and is ours to
            // consume; OwnedFd closes it after the write.
            let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let _ = f.write_all(b"ready\n");
        }
        sd_notify(&format!(
            "READY=1\nMAINPID={}\nSTATUS=serving {}",
            std::process::id(),
            mountpoint.display()
        ));
        if let Some(p) = daemon_pipe {
            let _ = p.write_all(&[0]);
            // Closing it tells the parent (which reads to EOF) to return.
            // SAFETY: replacing our copy of the pipe with /dev/null keeps the
            // fd number valid while releasing the pipe.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                unsafe { libc::dup2(null.as_raw_fd(), p.as_raw_fd()) };
            }
        }
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
fn cleanup(s: &Settings, wiper: &hfs::FsHandle, ended: bool, code: u8) -> u8 {
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
