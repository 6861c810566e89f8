//! The scratch directory as a normal user with the default `ulimit -l`
//! (8 MiB): as root the test runs hpcs-mount as `nobody` through setpriv
//! (with /dev/fuse open to all users, as clusters have it); as a normal
//! user, as that user.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::*;

const NOBODY: u32 = 65534;
const DEFAULT_MEMLOCK: u64 = 8 << 20;

fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

#[test]
fn scratch_works_for_a_normal_user_with_the_default_memlock_limit() {
    need_fuse!();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let s = Sample::new(4096, |p| std::fs::write(p.join("x"), b"x").unwrap());
    let dir = s.dir.path().join("scratch-dir");
    std::fs::create_dir(&dir).unwrap();
    if root {
        // Clusters open /dev/fuse to every user; do the same here.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode();
        if mode & 0o006 != 0o006 {
            std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        chown_tree(s.dir.path(), NOBODY);
    }
    let mnt = s.mnt.display().to_string();
    let script = format!(
        r#"set -e
ulimit -l
cd {mnt}/tmp
python3 -c "
import os, sqlite3
with open('big.bin', 'wb') as f:
    for i in range(64): f.write(os.urandom(1 << 20))
c = sqlite3.connect('db.sqlite')
c.execute('create table t(a)')
with c: c.executemany('insert into t values(?)', [(i,) for i in range(10000)])
assert c.execute('select sum(a) from t').fetchone()[0] == 49995000
"
seq 200000 | sort -r -S 100K -T {mnt}/tmp > sorted.txt
test "$(head -n 1 sorted.txt)" = 99999
sha256sum big.bin > /dev/null
stat -c %s big.bin
"#
    );
    let mut args = ScratchMount::args(&s, &dir, "", &[]);
    args.extend(["--log-file".into(), s.log().display().to_string()]);
    args.extend(["--".into(), "sh".into(), "-c".into(), script]);
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
            "--",
        ]);
        c.arg(super::MOUNT);
        c
    } else {
        Command::new(super::MOUNT)
    };
    cmd.args(&args).env("HOME", s.dir.path());
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: DEFAULT_MEMLOCK,
                rlim_max: DEFAULT_MEMLOCK,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let log = std::fs::read_to_string(s.log()).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "8192\n67108864\n");
    assert!(!log.contains("may be swapped"), "{log}");
    assert!(!mounted(&s.mnt));
    assert_eq!(listing(&dir), Vec::<String>::new());
}
