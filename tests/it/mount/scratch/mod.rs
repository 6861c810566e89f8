//! The encrypted scratch directory on real mounts (`--scratch NAME=DIR`):
//! `fsx` (random operations against a reference in RAM, several threads),
//! `tools` (sort, SQLite, seeks and holes, cp and mv), `damage` (tampering
//! with the backing file under a live mount, SIGKILL of the daemon) and
//! `user` (a normal user with the default `ulimit -l`).
//!
//! After every test the harness checks that DIR holds no name at all and
//! that the backing file (reached through the daemon's descriptor in /proc,
//! as root) holds none of the canary bytes written and none of the names.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;

mod damage;
mod fsx;
mod tools;
mod user;

/// A string every test writes into its files (and never expects on disk).
const CANARY: &[u8] = b"SCRATCH-CANARY-PLAINTEXT-5e1f";

/// A mount with one small archive (`data`) and a scratch directory (`tmp`).
struct ScratchMount {
    s: Sample,
    /// DIR: where the backing file lives.
    dir: PathBuf,
    /// MNT/tmp.
    root: PathBuf,
    m: Mounted,
}

impl ScratchMount {
    /// Mounts with `--scratch tmp=DIR[spec]` (spec: e.g. ":1M") and `extra`.
    fn start(spec: &str, extra: &[&str]) -> ScratchMount {
        let s = Sample::new(4096, |p| {
            std::fs::write(p.join("input.txt"), noise(3, 300_000)).unwrap();
        });
        let dir = s.dir.path().join("scratch-dir");
        std::fs::create_dir(&dir).unwrap();
        let m = Mounted::start(&Self::args(&s, &dir, spec, extra), &s.mnt, &s.log());
        let root = s.mnt.join("tmp");
        ScratchMount { s, dir, root, m }
    }

    fn args(s: &Sample, dir: &Path, spec: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "--archive".to_string(),
            format!("data={}", s.archive.display()),
            s.mnt.display().to_string(),
            "-i".into(),
            s.identity.display().to_string(),
            "--scratch".into(),
            format!("tmp={}{spec}", dir.display()),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The daemon's backing file, opened read-write through /proc.
    fn backing(&self) -> File {
        backing_of(self.m.pid(), &self.dir)
    }

    /// Checks DIR and the backing file for plaintext (`names` too), then
    /// unmounts and checks DIR is empty.
    fn finish(self, names: &[&str]) {
        assert_no_plaintext(&self.dir, &mut self.backing(), names);
        let dir = self.dir.clone();
        self.m.finish();
        assert_eq!(
            listing(&dir),
            Vec::<String>::new(),
            "DIR emptied at unmount"
        );
    }
}

/// What DIR holds by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The descriptor of daemon `pid` that points at a deleted file in `dir`.
fn backing_fd(pid: u32, dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let p = e.unwrap().path();
        if let Ok(t) = std::fs::read_link(&p) {
            let t = t.to_string_lossy().into_owned();
            if t.starts_with(&*dir.to_string_lossy()) && t.ends_with(" (deleted)") {
                return p;
            }
        }
    }
    panic!(
        "daemon {pid} has no nameless backing file in {}",
        dir.display()
    );
}

fn backing_of(pid: u32, dir: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(backing_fd(pid, dir))
        .expect("open the backing file through /proc (needs root or the daemon's uid)")
}

/// DIR holds no name; the backing file holds neither the canary nor any of
/// `names`.
fn assert_no_plaintext(dir: &Path, backing: &mut File, names: &[&str]) {
    assert_eq!(listing(dir), Vec::<String>::new(), "a name in DIR");
    let mut all = Vec::new();
    std::io::Seek::rewind(backing).unwrap();
    backing.read_to_end(&mut all).unwrap();
    let mut needles: Vec<&[u8]> = vec![&CANARY[..16]];
    needles.extend(names.iter().filter(|n| n.len() >= 6).map(|n| n.as_bytes()));
    for n in needles {
        assert!(
            !all.windows(n.len()).any(|w| w == n),
            "{:?} in the backing file",
            String::from_utf8_lossy(n)
        );
    }
}

/// `n` bytes of canary-laced noise.
fn canary_data(seed: u64, n: usize) -> Vec<u8> {
    let mut v = noise(seed, n);
    let mut i = 0;
    while i + CANARY.len() <= n {
        v[i..i + CANARY.len()].copy_from_slice(CANARY);
        i += 4096 + 17;
    }
    v
}

/// The device of a path (to tell the scratch directory from elsewhere).
fn dev(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().dev()
}
