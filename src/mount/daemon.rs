//! Starting the serving process and telling others it is ready.
//!
//! [`start`] opens the watched process, redirects the log, and for
//! `--daemon` forks before any thread exists: the parent waits on a
//! readiness pipe and returns the child's verdict (byte 0 = mounted, else an
//! exit code followed by the message), so the exit status of a daemonising
//! hpcs-mount says whether mounting worked. [`announce_ready`] is the other
//! end: pidfile, `--ready-fd`, `sd_notify` and the daemon pipe, in that order.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::exit::{self, Fail};
use crate::{info, warn};

use super::events::Watched;

/// How the serving process starts (checked settings).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Fork and return once the child reports the mount ready.
    pub daemon: bool,
    /// Process whose end unmounts (None: none).
    pub watch: Option<i32>,
    /// Append log lines (stderr) to this file.
    pub log_file: Option<PathBuf>,
}

/// The write end of the readiness pipe, held by a daemon child.
pub struct DaemonPipe(File);

/// Opens the watched process, redirects the log, forks for --daemon (before
/// any thread exists), then runs `serve` (in the child for --daemon) with
/// the watched process and, in a daemon child, the readiness pipe.
pub fn start<F>(launch: &Launch, serve: F) -> Result<u8, Fail>
where
    F: FnOnce(Option<Watched>, Option<&mut DaemonPipe>) -> Result<u8, Fail>,
{
    // Open the watched process now: a pidfd survives the fork and cannot
    // be fooled by pid reuse.
    let watch = match launch.watch {
        Some(pid) => match Watched::open(pid) {
            Ok(w) => Some(w),
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
    if let Some(f) = &launch.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
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
    if !launch.daemon {
        return serve(watch, None);
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
            let mut wr = DaemonPipe(File::from(wr));
            match serve(watch, Some(&mut wr)) {
                Ok(code) => Ok(code),
                Err(f) => {
                    let _ = wr.0.write_all(&failure_report(&f));
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
            let _ = File::from(rd).read_to_end(&mut buf);
            match read_report(&buf) {
                Some(Ok(())) => {
                    info!("serving in the background as pid {child}");
                    Ok(exit::OK)
                }
                Some(Err(f)) => Err(f),
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

/// What a daemon child writes when it fails before the mount is ready.
fn failure_report(f: &Fail) -> Vec<u8> {
    let mut msg = vec![f.code];
    msg.extend_from_slice(f.msg.as_bytes());
    msg
}

/// What the parent read from the pipe: ready, the child's failure, or
/// `None` when the child died without a word.
fn read_report(buf: &[u8]) -> Option<Result<(), Fail>> {
    match buf.split_first() {
        Some((0, _)) => Some(Ok(())),
        Some((&code, msg)) => Some(Err(Fail::new(code, String::from_utf8_lossy(msg)))),
        None => None,
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

/// Tells everyone waiting that `mountpoint` is served: writes the pidfile,
/// "ready\n" to `ready_fd` (then closes it), READY=1 to systemd, and byte 0
/// to a daemon parent (then releases the pipe so the parent returns).
/// Returns the pidfile's (device, inode) if it was written, so that only
/// that file is removed at exit ([`crate::place::remove_if_ours`]).
pub fn announce_ready(
    pidfile: Option<&Path>,
    ready_fd: Option<RawFd>,
    mountpoint: &Path,
    parent: Option<&mut DaemonPipe>,
) -> Option<(u64, u64)> {
    let mut written = None;
    if let Some(p) = pidfile {
        match crate::place::write_private_file(p, format!("{}\n", std::process::id()).as_bytes()) {
            Ok(id) => written = Some(id),
            Err(e) => warn!("cannot write --pidfile {}: {e}", p.display()),
        }
    }
    if let Some(fd) = ready_fd {
        // SAFETY: fd was checked to be open at startup and is ours to
        // consume; OwnedFd closes it after the write.
        let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let _ = f.write_all(b"ready\n");
    }
    sd_notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=serving {}",
        std::process::id(),
        mountpoint.display()
    ));
    if let Some(DaemonPipe(p)) = parent {
        let _ = p.write_all(&[0]);
        // Closing it tells the parent (which reads to EOF) to return.
        // SAFETY: replacing our copy of the pipe with /dev/null keeps the
        // fd number valid while releasing the pipe.
        if let Ok(null) = File::open("/dev/null") {
            unsafe { libc::dup2(null.as_raw_fd(), p.as_raw_fd()) };
        }
    }
    written
}

/// Sends `msg` to systemd's notification socket, if NOTIFY_SOCKET is set.
pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if let Err(e) = notify_to(&sock, path.as_bytes(), msg) {
        warn!("sd_notify failed: {e}");
    }
}

/// Sends one datagram to a socket path, or to an abstract name (`@name`).
fn notify_to(sock: &UnixDatagram, path: &[u8], msg: &str) -> std::io::Result<usize> {
    if let Some(name) = path.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), std::ffi::OsStr::from_bytes(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn report_round_trip() {
        assert!(matches!(read_report(&[0]), Some(Ok(()))));
        let f = read_report(&failure_report(&Fail::new(exit::NO_FUSE, "no /dev/fuse")))
            .expect("a report")
            .unwrap_err();
        assert_eq!((f.code, f.msg.as_str()), (exit::NO_FUSE, "no /dev/fuse"));
        assert!(read_report(&[]).is_none());
    }

    #[test]
    fn notify_reaches_a_socket_path_and_an_abstract_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        notify_to(&tx, p.as_os_str().as_bytes(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("hpcs-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&tx, format!("@{name}").as_bytes(), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(notify_to(&tx, d.path().join("none").as_os_str().as_bytes(), "x").is_err());
    }

    #[test]
    fn ready_reaches_pidfile_fd_and_daemon_parent() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("pid");
        let (ready_rd, ready_wr) = pipe().unwrap();
        let (parent_rd, parent_wr) = pipe().unwrap();
        let mut parent = DaemonPipe(File::from(parent_wr));
        announce_ready(
            Some(&pidfile),
            Some(ready_wr.into_raw_fd()),
            Path::new("/mnt/x"),
            Some(&mut parent),
        );
        assert_eq!(
            std::fs::read_to_string(&pidfile).unwrap(),
            format!("{}\n", std::process::id())
        );
        // Both pipes are closed after their message (read_to_end returns).
        let mut got = Vec::new();
        File::from(ready_rd).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ready\n");
        let mut got = Vec::new();
        File::from(parent_rd).read_to_end(&mut got).unwrap();
        assert_eq!(got, [0]);
    }
}
