//! Locked memory as a normal user (docs/mount.md "Memory"): root is not
//! bound by `ulimit -l`, so these tests create a test user and run
//! hpcs-mount as it, with the locked-memory limit set for the run. They need
//! root (to create the user), /dev/fuse open to all (0666, as on clusters)
//! and a setuid fusermount3; as a normal user they print a line and pass.

use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use super::*;

const USER: &str = "hpcs-memtest";

/// The test user's uid and gid (created when missing), or None when not root.
fn test_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping memlock test: needs root to create the test user");
        return None;
    }
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, USER]).output().unwrap();
        o.status.success().then(|| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .unwrap()
        })
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", USER])
            .status()
            .unwrap();
        assert!(st.success() || id("-u").is_some(), "useradd {USER}");
    }
    let fuse = std::fs::metadata("/dev/fuse").unwrap();
    if fuse.permissions().mode() & 0o666 != 0o666 {
        // As on clusters (RECIPES.md "As a normal user").
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    Some((id("-u").unwrap(), id("-g").unwrap()))
}

/// A sample the test user can mount: readable archive, its identity, its
/// mount point.
fn user_sample(uid: u32, gid: u32) -> Sample {
    let s = Sample::new(65536, |src| {
        std::fs::create_dir(src.join("canary_dir_MEMTEST")).unwrap();
        std::fs::write(src.join("canary_dir_MEMTEST/data.txt"), noise(7, 300_000)).unwrap();
    });
    give_to(&s, uid, gid);
    s
}

/// Lets the test user mount `s`.
fn give_to(s: &Sample, uid: u32, gid: u32) {
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    chown(&s.identity, Some(uid), Some(gid)).unwrap();
    chown(&s.mnt, Some(uid), Some(gid)).unwrap();
}

/// Runs hpcs-mount `args` as the test user with `ulimit -l` of `memlock`
/// bytes (soft and hard).
fn run_as_user(uid: u32, gid: u32, memlock: u64, args: &[String]) -> Output {
    let mut cmd = Command::new(MOUNT);
    cmd.args(args)
        .env("HOME", "/")
        .stdin(Stdio::null())
        .uid(uid)
        .gid(gid);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: memlock,
                rlim_max: memlock,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_user_mounts_with_the_default_limit_and_is_refused_without_one() {
    need_fuse!();
    let Some((uid, gid)) = test_user() else {
        return;
    };
    let s = user_sample(uid, gid);
    let file = s.mnt.join("canary_dir_MEMTEST/data.txt");
    let want = std::fs::read(s.src.join("canary_dir_MEMTEST/data.txt")).unwrap();
    let script = format!("cat '{}'", file.display());

    // The default ulimit -l of a login: mounts, reads, says so once.
    let out = run_as_user(uid, gid, 8 << 20, &s.exec_args(&script));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "8 MiB: {err}");
    assert_eq!(out.stdout, want, "8 MiB: contents");
    assert_eq!(
        err.matches("the locked-memory limit is 8192 KiB (ulimit -l): cache ")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("all locked"), "{err}");
    assert!(!mounted(&s.mnt));

    // No locking possible: refused with 54, nothing mounted, nothing run.
    let out = run_as_user(uid, gid, 0, &s.exec_args(&script));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(54), "0: {err}");
    assert!(out.stdout.is_empty(), "the command ran");
    assert!(err.contains("cannot be locked in RAM"), "{err}");
    assert!(err.contains("--allow-unlocked-memory"), "{err}");
    assert!(!mounted(&s.mnt));

    // The opt-in names the risk, once, and serves.
    let mut args = s.exec_args(&script);
    args.insert(4, "--allow-unlocked-memory".into());
    let out = run_as_user(uid, gid, 0, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "opt-in: {err}");
    assert_eq!(out.stdout, want, "opt-in: contents");
    assert_eq!(err.matches("may be written to swap").count(), 1, "{err}");
    assert!(!err.contains("may be swapped"), "said twice: {err}");
    assert!(!mounted(&s.mnt));
}

#[test]
fn a_cache_the_kernel_will_not_lock_is_refused() {
    need_fuse!();
    let Some((uid, gid)) = test_user() else {
        return;
    };
    // 1 MiB chunks: the cache's minimum of 16 slots needs 16 MiB locked,
    // more than the 8 MiB limit allows, so mlock is refused at setup.
    let s = Sample::new(1 << 20, |src| std::fs::write(src.join("f"), b"x").unwrap());
    give_to(&s, uid, gid);
    let out = run_as_user(uid, gid, 8 << 20, &s.exec_args("echo ran"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(54), "{err}");
    assert!(err.contains("could not be locked (mlock refused)"), "{err}");
    assert!(out.stdout.is_empty(), "the command ran");
    assert!(!mounted(&s.mnt));
}

/// The private anonymous mappings of `pid`, but its main stack, that are
/// not excluded from core dumps (no "dd" in their smaps VmFlags).
fn dumped_anonymous(pid: u32) -> Vec<String> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut header: Option<&str> = None;
    let mut out = Vec::new();
    for line in smaps.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(h) = header.take() {
                if !flags.split_ascii_whitespace().any(|f| f == "dd") {
                    out.push(h.to_string());
                }
            }
            continue;
        }
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let is_header = f
            .first()
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(a, b)| {
                u64::from_str_radix(a, 16).is_ok() && u64::from_str_radix(b, 16).is_ok()
            });
        if is_header {
            let name = f.get(5).copied().unwrap_or("");
            let anon = f.len() >= 5
                && f[4] == "0"
                && f[1].ends_with('p')
                && (name.is_empty() || name == "[heap]" || name.starts_with("[anon"));
            header = anon.then_some(line);
        }
    }
    out
}

#[test]
fn a_core_of_the_daemon_holds_no_canary() {
    need_fuse!();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping gcore test: gcore of a non-dumpable daemon needs root");
        return;
    }
    let has_gcore = Command::new("gcore").arg("--version").output().is_ok();
    if !has_gcore {
        assert_ne!(
            std::env::var("HPCS_REQUIRE_FUSE").as_deref(),
            Ok("1"),
            "gcore (gdb) is missing; tools/setup.sh installs it"
        );
        eprintln!("skipping gcore test: gcore (gdb) is missing");
        return;
    }
    const CONTENT: &str = "CANARY_CONTENT_5e1f0c2a";
    const DIR: &str = "CANARY_DIRNAME_93ab71d4";
    const RESULT_NAME: &str = "CANARY_RESULTNAME_0d7c44e9";
    const RESULT_TEXT: &str = "CANARY_RESULTTEXT_b2f6a813";
    // In ordinary memory: the daemon's argv (the log file's name) sits on
    // its main stack, which stays in the core. Finding it proves the core
    // holds the daemon's memory and the search works.
    const CONTROL: &str = "CANARY_CONTROL_7a90e3f1";
    let s = Sample::new(65536, |src| {
        std::fs::create_dir(src.join(DIR)).unwrap();
        std::fs::write(src.join(DIR).join("f.txt"), CONTENT.repeat(1000)).unwrap();
    });
    let out_dir = s.dir.path().join("results");
    std::fs::create_dir(&out_dir).unwrap();
    let (_, recipient) = identity_file(s.dir.path(), "out-id.txt");
    let args: Vec<String> = vec![
        "--archive".into(),
        format!("data={}", s.archive.display()),
        "--output".into(),
        format!("res={}", out_dir.display()),
        "--output-recipient".into(),
        recipient,
        s.mnt.display().to_string(),
        "-i".into(),
        s.identity.display().to_string(),
    ];
    let log = s.dir.path().join(format!("{CONTROL}.log"));
    let m = Mounted::start(&args, &s.mnt, &log);

    let got = std::fs::read_to_string(s.mnt.join("data").join(DIR).join("f.txt")).unwrap();
    assert_eq!(got, CONTENT.repeat(1000));
    let names: Vec<_> = std::fs::read_dir(s.mnt.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.iter().any(|n| n == DIR), "{names:?}");
    std::fs::write(
        s.mnt.join("res").join(RESULT_NAME),
        RESULT_TEXT.repeat(1000),
    )
    .unwrap();

    // Mappings made while serving are marked within a sweep period.
    wait_until("every anonymous mapping excluded from dumps", || {
        dumped_anonymous(m.pid()).is_empty()
    });
    let core_base = s.dir.path().join("core");
    let out = Command::new("gcore")
        .arg("-o")
        .arg(&core_base)
        .arg(m.pid().to_string())
        .output()
        .unwrap();
    let core_path = s.dir.path().join(format!("core.{}", m.pid()));
    assert!(
        core_path.exists(),
        "gcore wrote no core: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let core = std::fs::read(&core_path).unwrap();
    std::fs::remove_file(&core_path).unwrap();
    let has = |needle: &str| core.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        has(CONTROL),
        "control canary missing: the core is not the daemon's memory"
    );
    for c in [CONTENT, DIR, RESULT_NAME, RESULT_TEXT] {
        assert!(!has(c), "{c} is in a core dump of the daemon");
    }
    m.finish();
}
