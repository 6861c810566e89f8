//! What makes a serving hpcs-mount act, as one stream of [`Event`]s: signals
//! (received by one thread with `sigwaitinfo`, blocked everywhere else), the
//! exec-mode command ending, the FUSE session ending, and the watched
//! process ending (through a pidfd, which pid reuse cannot fool).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::Sender;

/// Things that make the main loop act.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A signal; `true` when another process sent it (kill), not the tty.
    Signal(i32, bool),
    /// Exec mode: CMD ended with this exit code.
    ChildExited(u8),
    /// The FUSE session ended (unmounted from outside, or by us).
    SessionEnded,
    /// The watched process exited.
    WatchedExited(i32),
}

/// Signals taken over by the signal thread (and forwarded to CMD in exec
/// mode).
pub const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A process whose end unmounts (`--watch-pid`, default the parent), opened
/// as a pidfd before any fork.
pub struct Watched {
    /// Its pid, for log lines.
    pub pid: i32,
    /// Readable once it has exited.
    pub fd: OwnedFd,
}

impl Watched {
    /// Opens a pidfd for `pid` (`ESRCH` if there is no such process).
    pub fn open(pid: i32) -> std::io::Result<Watched> {
        Ok(Watched {
            pid,
            fd: pidfd_open(pid)?,
        })
    }
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
pub fn signal_thread(tx: Sender<Event>) {
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

/// Starts a thread that sends [`Event::WatchedExited`] when `w` exits.
pub fn watch_thread(w: Watched, tx: Sender<Event>) {
    let Watched { pid, fd } = w;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn watched_process_exit_is_reported() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id() as i32;
        let w = Watched::open(pid).expect("pidfd_open");
        let (tx, rx) = channel();
        watch_thread(w, tx);
        // Still running: nothing reported.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        child.kill().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(Event::WatchedExited(pid))
        );
        child.wait().unwrap();
    }

    #[test]
    fn no_such_process() {
        // pid_max is at most 2^22, so this pid cannot exist.
        let e = Watched::open(1 << 23).err().expect("no such process");
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
