//! Exec mode's command: started once the mount is ready, with the signal
//! mask and core limit it would have had without us, killed (SIGTERM) if
//! hpcs-mount dies first, and waited for on its own thread so its exit code
//! arrives as an [`Event::ChildExited`].

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::mpsc::Sender;

use crate::exit;

use super::events::Event;

/// Starts `cmd` (program and arguments) and a thread that reports its exit
/// code; returns its pid. `core` is the core-size limit to restore in it.
pub fn spawn(cmd: &[OsString], core: libc::rlimit, tx: Sender<Event>) -> std::io::Result<i32> {
    let mut command = Command::new(&cmd[0]);
    command.args(&cmd[1..]).env_remove("NOTIFY_SOCKET");
    // CMD must not outlive a killed hpcs-mount (its mount would be dead and
    // Slurm's default process tracking would not stop it): it gets SIGTERM
    // when we die. We fork from the main thread, whose exit is ours.
    // SAFETY: getpid is always safe to call.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls (setrlimit, sigprocmask,
    // prctl, getppid, raise) between fork and exec.
    unsafe {
        command.pre_exec(move || {
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
    let mut child = command.spawn()?;
    let pid = child.id() as i32;
    let _ = std::thread::Builder::new()
        .name("hpcs-wait".into())
        .spawn(move || {
            let code = child.wait().map(exit_code).unwrap_or(exit::INTERNAL);
            let _ = tx.send(Event::ChildExited(code));
        });
    Ok(pid)
}

/// The exit code that passes on a child's status: its own code, or 128 + N
/// if signal N killed it.
pub fn exit_code(st: std::process::ExitStatus) -> u8 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => (128 + s).min(255) as u8,
        _ => exit::INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    fn run(script: &str) -> u8 {
        let (tx, rx) = channel();
        let cmd: Vec<OsString> = vec!["sh".into(), "-c".into(), script.into()];
        let mut core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to an rlimit we own.
        unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) };
        spawn(&cmd, core, tx).expect("sh starts");
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Event::ChildExited(c)) => c,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn exit_codes_pass_through() {
        assert_eq!(run("exit 0"), 0);
        assert_eq!(run("exit 3"), 3);
        assert_eq!(run("kill -KILL $$"), 128 + 9);
        assert_eq!(run("kill -TERM $$"), 128 + 15);
    }

    #[test]
    fn command_runs_with_signals_unblocked() {
        // A blocked SIGTERM in the test thread must not reach the child.
        // SAFETY: sigset manipulation on local sets and this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        assert_eq!(
            run("grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status"),
            0
        );
    }

    #[test]
    fn missing_program_fails_to_start() {
        let (tx, _rx) = channel();
        let e = spawn(
            &["/nonexistent/hpcs-no-such-program".into()],
            libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            },
            tx,
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
