//! Integration tests: encrypted results through a real FUSE mount
//! (`hpcs-mount --output`) and `hpcs-pack results verify|decrypt`.

#![cfg(feature = "fuse")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::*;

mod crypt4gh;

const MOUNT: &str = env!("CARGO_BIN_EXE_hpcs-mount");
const CANARY: &str = "CANARY-7f3a9c-results-never-in-plaintext";

fn fuse_ok() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var("HPCS_REQUIRE_FUSE").as_deref() == Ok("1") {
        panic!("/dev/fuse is missing but HPCS_REQUIRE_FUSE=1");
    }
    eprintln!("skipping results test: /dev/fuse is missing");
    false
}

/// An archive, an identity that opens it and receives the results, a
/// results directory and a mount point.
struct Job {
    dir: tempfile::TempDir,
    archive: PathBuf,
    identity: PathBuf,
    recipient: String,
    results: PathBuf,
    mnt: PathBuf,
    big: PathBuf,
    /// Crypt4GH results: (secret key, public key) from `crypt4gh-keygen`.
    c4gh: Option<(PathBuf, PathBuf)>,
}

impl Job {
    fn new() -> Job {
        let dir = tmpdir();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("one"), noise(1, 70_000)).unwrap();
        let (identity, recipient) = identity_file(dir.path(), "id.txt");
        let archive = dir.path().join("data.hpcs");
        pack_lib(
            &src,
            &archive,
            65536,
            hpcs::crypto::Suite::Aes256Gcm,
            &recipient,
        );
        let results = dir.path().join("results");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&results).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        // Outside the results directory, input for the job to copy.
        let big = dir.path().join("big.in");
        std::fs::write(&big, noise(2, 20 << 20)).unwrap();
        Job {
            dir,
            archive,
            identity,
            recipient,
            results,
            mnt,
            big,
            c4gh: None,
        }
    }

    /// hpcs-mount in exec mode running `script` (with $M the mount point).
    fn run(&self, script: &str) -> Output {
        self.command(script).output().unwrap()
    }

    fn command(&self, script: &str) -> Command {
        self.command_with(&[], script)
    }

    /// [`Job::command`] with `extra` hpcs-mount flags.
    fn command_with(&self, extra: &[&str], script: &str) -> Command {
        let mut c = Command::new(MOUNT);
        c.args(extra)
            .arg("--archive")
            .arg(format!("data={}", self.archive.display()))
            .arg(&self.mnt)
            .arg("-i")
            .arg(&self.identity)
            .arg("--output")
            .arg(format!("out={}", self.results.display()));
        match &self.c4gh {
            Some((_, pk)) => c.arg("--output-c4gh-recipient").arg(pk),
            None => c.args(["--output-recipient", &self.recipient]),
        };
        c.args(["--", "sh", "-c", script])
            .env("M", &self.mnt)
            .env("BIG", &self.big)
            .env("CANARY", CANARY)
            .env("R", &self.results)
            .stdin(Stdio::null());
        c
    }

    fn results_cmd(&self, verb: &str, extra: &[&Path]) -> Output {
        let mut c = Command::new(bin("hpcs-pack"));
        c.args(["results", verb])
            .arg(&self.results)
            .arg("--archive")
            .arg(&self.archive)
            .arg("-i")
            .arg(&self.identity);
        if let Some((sk, _)) = &self.c4gh {
            c.arg("--sk").arg(sk);
        }
        for (k, p) in extra.iter().enumerate() {
            if k == 0 {
                c.arg("-o");
            }
            c.arg(p);
        }
        run(&mut c)
    }

    fn verify(&self) -> (i32, String) {
        self.verify_with(&[])
    }

    /// `hpcs-pack results verify` with more arguments (e.g. --log-names).
    fn verify_with(&self, args: &[&str]) -> (i32, String) {
        let mut c = Command::new(bin("hpcs-pack"));
        c.args(["results", "verify"])
            .arg(&self.results)
            .arg("--archive")
            .arg(&self.archive)
            .arg("-i")
            .arg(&self.identity)
            .args(args);
        if let Some((sk, _)) = &self.c4gh {
            c.arg("--sk").arg(sk);
        }
        let o = run(&mut c);
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mounted(mnt: &Path) -> bool {
    let canon = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m) == canon))
}

/// True if any file under `dir` contains `needle`.
fn contains_anywhere(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            contains_anywhere(&p, needle)
        } else {
            let d = std::fs::read(&p).unwrap_or_default();
            d.windows(needle.len()).any(|w| w == needle)
        }
    })
}

/// The largest results object in `dir` (not the manifest).
fn largest_object(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("manifest-")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

/// The job of the first test: every kind of write a job does.
const FULL_JOB: &str = r#"
set -u
printf '%s\n' "$CANARY" > "$M/out/r1.txt" || exit 10
mkdir -p "$M/out/sub/deep" && mkdir "$M/out/empty" || exit 11
cat "$BIG" > "$M/out/sub/deep/big.bin" || exit 12
if cat "$M/out/r1.txt" >/dev/null 2>&1; then exit 13; fi
echo tmp > "$M/out/t.tmp" && mv "$M/out/t.tmp" "$M/out/final.txt" || exit 14
echo gone > "$M/out/gone.txt" && rm "$M/out/gone.txt" || exit 15
printf x | dd of="$M/out/seek.bin" bs=1 seek=10 conv=notrunc 2>&1 | grep -q 'Illegal seek' || exit 16
if echo x > "$M/data/new" 2>/dev/null; then exit 17; fi
cp "$M/data/one" "$M/out/copied" || exit 18
if echo again >> "$M/out/r1.txt" 2>/dev/null; then exit 19; fi
ls "$M/out" | sort | tr '\n' ' '
"#;

#[test]
fn results_are_encrypted_on_write_and_decrypt_on_the_secure_side() {
    if !fuse_ok() {
        return;
    }
    let j = Job::new();
    let o = j.run(FULL_JOB);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "copied empty final.txt r1.txt seek.bin sub ",
        "{}",
        text(&o)
    );
    assert!(!mounted(&j.mnt));
    // Shared storage holds only age files and the manifest: no names, no
    // plaintext.
    assert!(!contains_anywhere(&j.results, CANARY.as_bytes()));
    assert!(!contains_anywhere(&j.results, b"final.txt"));
    let names: Vec<String> = std::fs::read_dir(&j.results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("manifest-")).count(),
        1
    );
    assert!(names.iter().all(|n| n.ends_with(".age")), "{names:?}");

    let (code, out) = j.verify();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("manifest authentic, 5 of 5 result(s) complete"),
        "{out}"
    );

    let dest = j.dir.path().join("decrypted");
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dest.join("r1.txt")).unwrap(),
        format!("{CANARY}\n")
    );
    assert_eq!(
        std::fs::read(dest.join("sub/deep/big.bin")).unwrap(),
        std::fs::read(&j.big).unwrap()
    );
    assert_eq!(std::fs::read(dest.join("final.txt")).unwrap(), b"tmp\n");
    assert_eq!(
        std::fs::read(dest.join("copied")).unwrap(),
        noise(1, 70_000)
    );
    assert_eq!(std::fs::read(dest.join("seek.bin")).unwrap(), b"");
    assert!(dest.join("empty").is_dir());
    assert!(!dest.join("gone.txt").exists());
    assert!(!dest.join("t.tmp").exists());
    // Decrypting again never overwrites.
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::OUTPUT_EXISTS as i32),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(dest.join("final.txt")).unwrap(), b"tmp\n");
    // Symlinks planted at result names (one to a file, one dangling) are
    // neither followed nor replaced; the other results are written.
    let planted = j.dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    let victim = j.dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let nowhere = j.dir.path().join("nowhere");
    std::os::unix::fs::symlink(&victim, planted.join("r1.txt")).unwrap();
    std::os::unix::fs::symlink(&nowhere, planted.join("final.txt")).unwrap();
    let o = j.results_cmd("decrypt", &[&planted]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::OUTPUT_EXISTS as i32),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!nowhere.exists());
    for l in ["r1.txt", "final.txt"] {
        assert!(std::fs::symlink_metadata(planted.join(l))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(
        std::fs::read(planted.join("copied")).unwrap(),
        noise(1, 70_000)
    );
    // A symlink planted on the way (DEST/sub -> a directory elsewhere) is
    // not followed: decrypt fails and writes nothing there.
    let planted = j.dir.path().join("planted-dir");
    std::fs::create_dir(&planted).unwrap();
    let elsewhere = j.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, planted.join("sub")).unwrap();
    let o = j.results_cmd("decrypt", &[&planted]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::OUTPUT as i32),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("never followed"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // A directory on the way that every user can write (DEST/sub, 1777):
    // refused, nothing written into it, its name not given.
    let open = j.dir.path().join("open-dir");
    std::fs::create_dir_all(open.join("sub")).unwrap();
    std::fs::set_permissions(open.join("sub"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let o = j.results_cmd("decrypt", &[&open]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::OUTPUT as i32),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("writable by every user"), "{}", text(&o));
    assert!(!text(&o).contains("sub"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(open.join("sub")).unwrap().count(), 0);
}

#[test]
fn tampered_missing_forged_and_foreign_results_are_reported() {
    if !fuse_ok() {
        return;
    }
    let j = Job::new();
    let o = j.run(
        r#"echo first > "$M/out/a.txt" && cat "$BIG" > "$M/out/b.bin" && echo third > "$M/out/c.txt""#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(j.verify().0, 0);
    let big = largest_object(&j.results);
    let orig = std::fs::read(&big).unwrap();

    // One flipped bit in the middle of an object.
    let mut bad = orig.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    std::fs::write(&big, &bad).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    assert!(out.contains("TAMPERED"), "{out}");
    // Decrypt writes the good ones, not the bad one.
    let dest = j.dir.path().join("dec1");
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(o.status.code(), Some(hpcs::exit::RESULTS_TAMPERED as i32));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"first\n");
    assert!(!dest.join("b.bin").exists());

    // Truncated.
    std::fs::write(&big, &orig[..orig.len() - 1000]).unwrap();
    assert_eq!(j.verify().0, hpcs::exit::RESULTS_TAMPERED as i32);

    // Deleted: the manifest notices.
    std::fs::remove_file(&big).unwrap();
    let (code, out) = j.verify_with(&["--log-names"]);
    assert_eq!(code, hpcs::exit::RESULTS_INCOMPLETE as i32, "{out}");
    assert!(
        out.contains("MISSING     ") && out.contains(" (\"b.bin\")"),
        "{out}"
    );
    std::fs::write(&big, &orig).unwrap();
    assert_eq!(j.verify().0, 0);

    // Forged: encrypted to the user's (public) recipient and naming the
    // right archive, but without the archive's key.
    let forger = hpcs::results::Run::new(
        &j.results,
        vec![hpcs::keys::parse_recipient(&j.recipient).unwrap()],
        &hpcs::crypto::keys::SubKey::from_bytes([9; 32]),
        archive_id(&j.archive),
        "evil".into(),
        "1".into(),
    )
    .unwrap();
    let mut w = forger.create().unwrap();
    w.write(b"forged result").unwrap();
    let f = w.finish(b"a.txt", 0o644).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    assert!(out.contains("failed authentication"), "{out}");
    std::fs::remove_file(j.results.join(&f.object)).unwrap();

    // The archive given must be the one the job mounted.
    let other = j.dir.path().join("other.hpcs");
    let osrc = j.dir.path().join("osrc");
    std::fs::create_dir(&osrc).unwrap();
    pack_lib(
        &osrc,
        &other,
        65536,
        hpcs::crypto::Suite::Aes256Gcm,
        &j.recipient,
    );
    let o = run(Command::new(bin("hpcs-pack"))
        .args(["results", "verify"])
        .arg(&j.results)
        .arg("--archive")
        .arg(&other)
        .arg("-i")
        .arg(&j.identity));
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::WRONG_KEY as i32),
        "{}",
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("mounted first"));
}

/// Issue 11, problem 5: the user knows the run id in advance (hpcs-mount
/// --output-run, as hpcs-job passes it) and requires it; a complete,
/// authentic run forged by a holder of the archive key (here with a
/// manifest naming host ../../x) is reported with exit 19 and nothing is
/// decrypted; without --expect-run its files land under DEST/run-<run>/,
/// never outside DEST.
#[test]
fn expected_runs_and_forged_manifests_stay_inside_dest() {
    if !fuse_ok() {
        return;
    }
    let j = Job::new();
    let run_id = "00112233445566778899aabbccddeeff";
    let o = j
        .command_with(&["--output-run", run_id], r#"echo mine > "$M/out/a.txt""#)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(j.results.join(format!("manifest-{run_id}.age")).exists());
    // A run id is used once.
    let o = j
        .command_with(&["--output-run", run_id], "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(hpcs::exit::RESULTS_WRITE as i32));

    // A co-key-holder forges a whole run with the archive's results key.
    let ids = hpcs::keys::load_identities(&j.identity).unwrap();
    let sealed =
        hpcs::crypto::SealedArchive::open(hpcs::crypto::FileSource::open(&j.archive).unwrap())
            .unwrap();
    let key = hpcs::keys::unwrap_age(&sealed.header().stanzas, &ids).unwrap();
    let archive = sealed.unlock(&key).unwrap();
    let forger = hpcs::results::Run::new(
        &j.results,
        vec![hpcs::keys::parse_recipient(&j.recipient).unwrap()],
        archive.results_key(),
        archive.header().archive_id,
        "../../x".into(),
        "1".into(),
    )
    .unwrap();
    let mut w = forger.create().unwrap();
    w.write(b"forged\n").unwrap();
    let f = w.finish(b"a.txt", 0o644).unwrap();
    let body = hpcs::results::ManifestBody {
        dirs: vec![],
        files: vec![hpcs::results::ManifestFile {
            object: f.object.clone(),
            size: f.size,
            sha256: f.sha256,
            mode: 0o644,
            path: b"a.txt".to_vec(),
        }],
        open: vec![],
    };
    forger.write_manifest(&body).unwrap();
    let forged_run = hpcs::util::hex(&forger.info().run);

    // Required runs: the forged one is reported, nothing is written.
    let dest = j.dir.path().join("deep/er/dest");
    let expect = |verb: &str, dest: Option<&Path>, runs: &[&str]| {
        let mut c = Command::new(bin("hpcs-pack"));
        c.args(["results", verb])
            .arg(&j.results)
            .arg("--archive")
            .arg(&j.archive)
            .arg("-i")
            .arg(&j.identity);
        if let Some(d) = dest {
            c.arg("-o").arg(d);
        }
        for r in runs {
            c.args(["--expect-run", r]);
        }
        run(&mut c)
    };
    let o = expect("decrypt", Some(&dest), &[run_id]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::UNEXPECTED_RUN as i32),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains(&forged_run), "{}", text(&o));
    assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().next().is_none());
    let o = expect(
        "verify",
        None,
        &[run_id, "ffeeddccbbaa99887766554433221100"],
    );
    assert_eq!(o.status.code(), Some(hpcs::exit::UNEXPECTED_RUN as i32));
    assert!(
        text(&o).contains("no results of expected run(s) ffeedd"),
        "{}",
        text(&o)
    );
    let o = expect("verify", None, &[run_id, &forged_run]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = expect("verify", None, &["not-hex"]);
    assert_eq!(o.status.code(), Some(hpcs::exit::USAGE as i32));

    // Without --expect-run both runs are authentic; each goes under a
    // directory named by hpcs-pack, and nothing lands outside DEST.
    let o = expect("decrypt", Some(&dest), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mine = dest.join(format!("run-{run_id}/a.txt"));
    assert_eq!(std::fs::read(&mine).unwrap(), b"mine\n");
    let theirs = dest.join(format!("run-{forged_run}/a.txt"));
    assert_eq!(std::fs::read(&theirs).unwrap(), b"forged\n");
    let outside: Vec<_> = std::fs::read_dir(j.dir.path().join("deep"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["er"], "something was written outside DEST");
    assert_eq!(
        std::fs::read_dir(j.dir.path().join("deep/er"))
            .unwrap()
            .count(),
        1
    );
}

fn archive_id(p: &Path) -> [u8; 32] {
    let src = hpcs::crypto::FileSource::open(p).unwrap();
    hpcs::crypto::SealedArchive::open(src)
        .unwrap()
        .header()
        .archive_id
}

#[test]
fn an_interrupted_job_leaves_complete_results_and_reports_the_rest() {
    if !fuse_ok() {
        return;
    }
    let j = Job::new();
    // The mount is killed while a file is half written (and a finished one
    // is already there: the script waits for its object to be renamed, as
    // the release of a closed file reaches the daemon asynchronously).
    let st = j
        .command(
            r#"echo done > "$M/out/complete.txt" || exit 10
n=0
until ls "$R" | grep -q '[0-9a-f]\.age$'; do n=$((n+1)); [ $n -gt 6000 ] && exit 11; sleep 0.01; done
exec 3> "$M/out/partial.bin"
head -c 300000 "$BIG" >&3
kill -9 $PPID
exec sleep 5"#,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.signal_code(), Some(libc::SIGKILL), "{st}");
    // The dead mount stays until detached.
    let _ = Command::new("umount").arg("-l").arg(&j.mnt).status();
    let _ = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&j.mnt)
        .stderr(Stdio::null())
        .status();
    assert!(!mounted(&j.mnt));
    let (code, out) = j.verify_with(&["--log-names"]);
    assert_eq!(code, hpcs::exit::RESULTS_INCOMPLETE as i32, "{out}");
    assert!(out.contains("NO MANIFEST"), "{out}");
    assert!(out.contains("INCOMPLETE"), "{out}");
    assert!(out.contains(".age (\"complete.txt\")"), "{out}");
    let dest = j.dir.path().join("dec");
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(o.status.code(), Some(hpcs::exit::RESULTS_INCOMPLETE as i32));
    assert_eq!(std::fs::read(dest.join("complete.txt")).unwrap(), b"done\n");
    assert!(!dest.join("partial.bin").exists());
    // The partial object holds no plaintext either.
    assert!(!contains_anywhere(&j.results, &noise(2, 64)[..]));
}

/// A result's name, directory and size that neither the job's stderr nor
/// the secure side's report may show unless --log-names is given.
const CANARY_RESULT: &str = "CANARY_RESULT_patient_JANE_ROE";
const CANARY_RESULT_SIZE: usize = 77_777;

#[test]
fn results_logs_and_reports_name_no_result_unless_asked() {
    if !fuse_ok() {
        return;
    }
    let j = Job::new();
    let script = format!(
        r#"mkdir "$M/out/{CANARY_RESULT}_dir" || exit 10
head -c {CANARY_RESULT_SIZE} "$BIG" > "$M/out/{CANARY_RESULT}_dir/{CANARY_RESULT}.txt" || exit 11
printf x | dd of="$M/out/{CANARY_RESULT}_seek.bin" bs=1 seek={CANARY_RESULT_SIZE} conv=notrunc 2>/dev/null && exit 12
exit 0"#
    );
    let o = j.run(&script);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The refused seek was logged (without its offset or the file's name).
    assert!(err.contains("written sequentially only"), "{err}");
    let hidden = |t: &str| !t.contains("CANARY") && !t.contains(&CANARY_RESULT_SIZE.to_string());
    assert!(hidden(&err), "the job's stderr names a result:\n{err}");
    assert!(!contains_anywhere(&j.results, CANARY_RESULT.as_bytes()));
    // Tamper the canary's object (the largest one).
    let big = largest_object(&j.results);
    let mut bad = std::fs::read(&big).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    std::fs::write(&big, &bad).unwrap();
    let (code, out) = j.verify();
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    let object = big.file_name().unwrap().to_str().unwrap();
    assert!(
        out.contains(&format!("TAMPERED    {object}")),
        "names the object: {out}"
    );
    assert!(hidden(&out), "the report names a result:\n{out}");
    // Decrypting: the good ones are written (under their names), the report
    // still names none.
    let dest = j.dir.path().join("dec");
    let o = j.results_cmd("decrypt", &[&dest]);
    assert_eq!(o.status.code(), Some(hpcs::exit::RESULTS_TAMPERED as i32));
    assert!(hidden(&text(&o)), "{}", text(&o));
    // With --log-names, the report shows the paths it knows (a tampered
    // object's path is inside it, so it stays unknown).
    let (code, out) = j.verify_with(&["--log-names"]);
    assert_eq!(code, hpcs::exit::RESULTS_TAMPERED as i32, "{out}");
    assert!(
        out.contains(&format!("(\"{CANARY_RESULT}_seek.bin\") (0 bytes)")),
        "--log-names shows the path: {out}"
    );
}

trait SignalCode {
    fn signal_code(&self) -> Option<i32>;
}

impl SignalCode for std::process::ExitStatus {
    fn signal_code(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(self)
    }
}

#[test]
fn output_options_are_checked_before_mounting() {
    let j = Job::new();
    let base = |extra: &[&str]| {
        let mut c = Command::new(MOUNT);
        c.arg("--archive")
            .arg(format!("data={}", j.archive.display()))
            .arg(&j.mnt)
            .arg("-i")
            .arg(&j.identity)
            .args(extra)
            .args(["--", "true"]);
        run(&mut c)
    };
    let res = format!("out={}", j.results.display());
    let cases: Vec<(Vec<&str>, u8, &str)> = vec![
        (
            vec!["--output", &res],
            hpcs::exit::USAGE,
            "--output-recipient",
        ),
        (
            vec!["--output", "out", "--output-recipient", &j.recipient],
            hpcs::exit::USAGE,
            "NAME=DIR",
        ),
        (
            vec!["--output", "data=/tmp", "--output-recipient", &j.recipient],
            hpcs::exit::USAGE,
            "already an --archive name",
        ),
        (
            vec!["--output", &res, "--output-recipient", "age1nope"],
            hpcs::exit::BAD_RECIPIENT,
            "age1nope",
        ),
        (
            vec![
                "--output",
                "out=/nonexistent/results",
                "--output-recipient",
                &j.recipient,
            ],
            hpcs::exit::RESULTS_WRITE,
            "mkdir -p",
        ),
    ];
    for (args, code, msg) in cases {
        let o = base(&args);
        assert_eq!(o.status.code(), Some(code as i32), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(msg),
            "{args:?}: {}",
            text(&o)
        );
    }
    // --output needs named archives (it sits next to them).
    let o = run(Command::new(MOUNT).arg(&j.archive).arg(&j.mnt).args([
        "--output",
        &res,
        "--output-recipient",
        &j.recipient,
    ]));
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::USAGE as i32),
        "{}",
        text(&o)
    );
    assert!(std::fs::read_dir(&j.results).unwrap().next().is_none());
}
