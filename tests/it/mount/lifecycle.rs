//! How a mount starts and ends: exec mode (the command's status, signals,
//! a killed hpcs-mount), --daemon, a watched process, SIGTERM in the
//! foreground.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use super::*;

#[test]
fn exec_mode_returns_the_command_status_and_unmounts() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let mnt = s.mnt.display().to_string();
    let out = run_mount(&s.exec_args(&format!(
        "sha256sum {mnt}/big.bin && test -f {mnt}/one && exit 42"
    )));
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
    let out = run_mount(&s.exec_args("kill -USR1 $$"));
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
    let script = format!("cat {}/one; echo; exec sleep 1000", s.mnt.display());
    let (mut child, line) = s.exec_first_line(&script);
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
    let (mut child, line) = s.exec_first_line("echo $$; exec sleep 1000");
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

#[test]
fn pidfile_is_never_written_through_a_symlink_nor_someone_elses_removed() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let victim = s.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let pidfile = s.dir.path().join("pid");
    let nowhere = s.dir.path().join("nowhere");
    // A symlink to an existing file, then a dangling one: refused before
    // mounting (exit 4), neither target written or created.
    for target in [&victim, &nowhere] {
        let _ = std::fs::remove_file(&pidfile);
        std::os::unix::fs::symlink(target, &pidfile).unwrap();
        let mut args = s.args();
        args.extend(["--pidfile".to_string(), pidfile.display().to_string()]);
        let out = run_mount(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(hpcs::exit::OUTPUT_EXISTS as i32),
            "{err}"
        );
        assert!(err.contains("is a symlink"), "{err}");
        assert!(!mounted(&s.mnt));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!nowhere.exists());
        assert!(std::fs::symlink_metadata(&pidfile)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // A stale pidfile of ours is replaced (through a temporary name, none
    // left behind); a file someone puts at the name meanwhile is not removed
    // at exit.
    std::fs::remove_file(&pidfile).unwrap();
    std::fs::write(&pidfile, b"stale\n").unwrap();
    let mut m = s.mount(&["--pidfile", &pidfile.display().to_string()]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid as u32, m.pid());
    let left: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pid"))
        .collect();
    assert!(left.is_empty(), "a temporary name was left: {left:?}");
    let other = s.dir.path().join("other-pid");
    std::fs::write(&other, b"4242\n").unwrap();
    std::fs::rename(&other, &pidfile).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = m.child.take().unwrap().wait().unwrap();
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log_text());
    assert_eq!(std::fs::read(&pidfile).unwrap(), b"4242\n");
}
