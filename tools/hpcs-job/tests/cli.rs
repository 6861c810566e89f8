//! Command-line behaviour of the hpcs-job binary: exit codes, where the
//! script goes (stdout, -o file with mode 0700, sbatch), and that a generated
//! script runs its stages in order and cleans up, checked without Slurm by
//! a stand-in hpcs-mount. The real Slurm + FUSE tests are tools/slurm/test.sh.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "cli/pins.rs"]
mod pins;

struct Env {
    dir: tempfile::TempDir,
    /// The age recipient of `id.txt`.
    recipient: String,
}

impl Env {
    /// `data.hpcs` (a real archive holding `file`) packed to `id.txt`.
    fn new() -> Env {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        let e = Env {
            dir: tempfile::tempdir().expect("tmp"),
            recipient: id.to_public().to_string(),
        };
        fs::write(
            e.p("id.txt"),
            format!("{}\n", id.to_string().expose_secret()),
        )
        .expect("write");
        fs::set_permissions(e.p("id.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
        e.pack("data.hpcs", b"genuine\n");
        e
    }
    /// Packs a tree holding `file` (with `content`) into `name` for `recipient`.
    fn pack(&self, name: &str, content: &[u8]) -> PathBuf {
        let src = self.p(&format!("{name}.src"));
        let _ = fs::remove_dir_all(&src);
        fs::create_dir(&src).expect("mkdir");
        fs::write(src.join("file"), content).expect("write");
        let scan = hpcs::pack::scan(&src, 4096).expect("scan");
        let key = hpcs::crypto::DataKey::generate().expect("key");
        let r = hpcs::keys::parse_recipient(&self.recipient).expect("recipient");
        let stanza = hpcs::keys::wrap_recipients(&key, &[r]).expect("wrap");
        let id = hpcs::crypto::writer::new_archive_id().expect("id");
        let opts = hpcs::crypto::WriteOptions {
            chunk_size: 4096,
            ..Default::default()
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let out = self.p(name);
        hpcs::pack::write(
            &scan,
            &out,
            true,
            &opts,
            &key,
            id,
            vec![stanza],
            &mut |_| {},
            &stop,
        )
        .expect("pack");
        out
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// No `mnt-*` directory (a mount root of the jobs) is left.
    fn assert_no_mount_roots(&self) {
        let left: Vec<_> = fs::read_dir(self.dir.path())
            .expect("ls")
            .filter_map(|d| d.ok())
            .filter(|d| d.file_name().to_string_lossy().starts_with("mnt-"))
            .collect();
        assert!(left.is_empty(), "mount roots left: {left:?}");
    }
    /// For running generated scripts: the log file, a stand-in hpcs-mount
    /// writing to it ([`Env::fake_mount`]) and an empty TMPDIR.
    fn staging(&self) -> (PathBuf, PathBuf, PathBuf) {
        let log = self.p("log");
        let tmp = self.p("tmp");
        fs::create_dir(&tmp).expect("mkdir");
        (log.clone(), self.fake_mount(&log), tmp)
    }
    /// A stand-in hpcs-mount: `ARCHIVE MOUNTPOINT -i ID -- CMD...` records
    /// the call in `log`, mounts a tmpfs and runs CMD as a child until
    /// SIGTERM, then unmounts.
    fn fake_mount(&self, log: &Path) -> PathBuf {
        self.script(
            "fake-mount",
            &format!(
                "echo \"mount $1 $2 $3\" >> {0}; mount -t tmpfs fake \"$2\" || exit 33; mp=$2\n\
                 while [ \"$1\" != -- ]; do shift; done; shift\n\
                 \"$@\" & c=$!; trap 'kill $c' TERM; wait $c; wait $c; umount \"$mp\" && echo unmount >> {0}",
                s(log)
            ),
        )
    }
    /// Writes job.sh for data.hpcs with the stand-in `mount`, mount root
    /// `root`, application `app` and `extra` flags; panics if hpcs-job fails.
    fn job(&self, mount: &Path, root: &str, app: &Path, extra: &[&str]) -> PathBuf {
        let job = self.p("job.sh");
        let _ = fs::remove_file(&job);
        let data = self.p("data.hpcs");
        let id = self.p("id.txt");
        let mut args = vec![
            "--data",
            s(&data),
            "-i",
            s(&id),
            "--hpcs-mount",
            s(mount),
            "--mount-root",
            root,
            "--app",
            s(app),
            "-o",
            s(&job),
        ];
        args.extend_from_slice(extra);
        let out = hpcs_job(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        job
    }
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.p(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }
}

fn hpcs_job(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpcs-job"))
        .args(args)
        .output()
        .expect("runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn exit_codes() {
    let e = Env::new();
    // 2: usage (clap)
    assert_eq!(hpcs_job(&["--bogus"]).status.code(), Some(2));
    // 3: not an archive
    fs::write(
        e.p("plain.hpcs"),
        "plaintext, long enough to look for a header",
    )
    .expect("write");
    let out = hpcs_job(&[
        "--data",
        s(&e.p("plain.hpcs")),
        "-i",
        s(&e.p("id.txt")),
        "--app",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an hpcs archive"));
    // 4: cannot write the script
    let out = hpcs_job(&[
        "--data",
        s(&e.p("data.hpcs")),
        "-i",
        s(&e.p("id.txt")),
        "--app",
        "true",
        "-o",
        "/nonexistent/dir/job.sh",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 5: sbatch missing or refusing
    let out = Command::new(env!("CARGO_BIN_EXE_hpcs-job"))
        .args([
            "--data",
            s(&e.p("data.hpcs")),
            "-i",
            s(&e.p("id.txt")),
            "--app",
            "true",
            "--submit",
        ])
        .env("HPCS_SBATCH", "/bin/false")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(5));
    // --help lists the exit codes
    let help = String::from_utf8_lossy(&hpcs_job(&["--help"]).stdout).into_owned();
    assert!(
        help.contains("202  an input verification script failed"),
        "{help}"
    );
}

/// An identity file group or others can access is refused (exit 3, with the
/// chmod to run) and no script is written; at 0600 the script is written.
#[test]
fn identity_file_readable_by_others_is_refused() {
    let e = Env::new();
    let (job, data, id) = (e.p("job.sh"), e.p("data.hpcs"), e.p("id.txt"));
    let args = [
        "--data",
        s(&data),
        "-i",
        s(&id),
        "--app",
        "true",
        "-o",
        s(&job),
    ];
    for mode in [0o644, 0o640, 0o604] {
        fs::set_permissions(&id, fs::Permissions::from_mode(mode)).expect("chmod");
        let out = hpcs_job(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "mode {mode:o}: {err}");
        let abs = id.canonicalize().expect("abs");
        assert!(
            err.contains(&format!("run `chmod 600 {}`", abs.display())),
            "{err}"
        );
        assert!(!job.exists(), "mode {mode:o}: a script was written");
    }
    fs::set_permissions(&id, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = hpcs_job(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(job.exists());
}

#[test]
fn writes_to_stdout_or_a_private_file_and_submits_through_sbatch() {
    let e = Env::new();
    let (data, id) = (e.p("data.hpcs"), e.p("id.txt"));
    let base = ["--data", s(&data), "-i", s(&id), "--app", "true"];
    let out = hpcs_job(&base);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("#!/bin/bash\n"));

    let job = e.p("job.sh");
    let mut args = base.to_vec();
    args.extend(["-o", s(&job)]);
    assert!(hpcs_job(&args).status.success());
    assert_eq!(
        fs::metadata(&job).expect("written").permissions().mode() & 0o777,
        0o700
    );

    // A fake sbatch that records its arguments and stdin.
    let log = e.p("sbatch.log");
    let fake = e.script(
        "sbatch",
        &format!("echo \"$@\" > {0}; cat >> {0}; echo 4242", s(&log)),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hpcs-job"))
        .args(base)
        .arg("--submit")
        .env("HPCS_SBATCH", &fake)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4242\n");
    let logged = fs::read_to_string(&log).expect("log");
    assert!(logged.starts_with("--parsable\n#!/bin/bash\n"), "{logged}");
}

/// Runs a generated script directly (no Slurm, no FUSE) in a private user and
/// mount namespace (`unshare -rm`) with a stand-in hpcs-mount that mounts a
/// tmpfs and runs the command: the stages run in order, a failing input check
/// stops before the app with 202, and every mount, directory and temp dir is
/// removed.
#[test]
fn generated_script_stages_and_cleanup_without_slurm() {
    let e = Env::new();
    let (log, fake_mount, tmp) = e.staging();
    let ok = e.script("ok.sh", &format!("echo \"verify $1\" >> {}", s(&log)));
    let bad = e.script("bad.sh", "exit 7");
    let app = e.script("app.sh", &format!("echo \"app $HPCS_DATA\" >> {}", s(&log)));
    let root = format!("{}/mnt-%j", e.dir.path().display());
    let run = |verify: &Path, verify_out: &Path| {
        let job = e.job(
            &fake_mount,
            &root,
            &app,
            &[
                "--verify-input",
                s(verify),
                "--verify-output",
                s(verify_out),
            ],
        );
        run_unshared(&job, &tmp)
    };

    let out = run(&ok, &ok);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = l.lines().collect();
    assert_eq!(lines.len(), 5, "{l}");
    assert!(
        lines[0].starts_with("mount ") && lines[0].ends_with(" -i"),
        "{l}"
    );
    assert!(
        lines[1].starts_with("verify ")
            && lines[2].starts_with("app ")
            && lines[2].ends_with("/data"),
        "{l}"
    );
    assert!(
        lines[3].starts_with("verify ") && lines[4] == "unmount",
        "{l}"
    );

    fs::remove_file(&log).expect("rm");
    let out = run(&bad, &ok);
    assert_eq!(out.status.code(), Some(202));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("input verification FAILED") && err.contains("NOT started"),
        "{err}"
    );
    let l = fs::read_to_string(&log).expect("log");
    assert!(!l.contains("app "), "{l}");
    assert!(l.ends_with("unmount\n"), "{l}");

    // A failing output check: 203 after the app ran, still unmounted.
    fs::remove_file(&log).expect("rm");
    let out = run(&ok, &bad);
    assert_eq!(out.status.code(), Some(203));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("output verification FAILED"), "{err}");
    let l = fs::read_to_string(&log).expect("log");
    assert!(l.contains("app ") && l.ends_with("unmount\n"), "{l}");

    // Nothing left: no mount root, no private state dir.
    e.assert_no_mount_roots();
    assert_eq!(
        fs::read_dir(&tmp).expect("ls").count(),
        0,
        "temp dirs left in TMPDIR"
    );
}

#[test]
fn results_options_are_checked_and_reach_the_script() {
    let e = Env::new();
    let (data, id) = (e.p("data.hpcs"), e.p("id.txt"));
    let base = ["--data", s(&data), "-i", s(&id), "--app", "true"];
    let cases: [(&[&str], &str); 4] = [
        (&["--results", "/shared/r/%j"], "needs --results-recipient"),
        (&["--results-recipient", "age1xyz"], "needs --results DIR"),
        (
            &["--results", "/shared/r", "--results-recipient", "nope"],
            "expected an age recipient",
        ),
        (
            &[
                "--results",
                "/shared/r;rm",
                "--results-recipient",
                "age1xyz",
            ],
            "give a directory made of",
        ),
    ];
    for (extra, msg) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = hpcs_job(&args);
        assert_eq!(out.status.code(), Some(3), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(msg),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--results",
        "/shared/r/%u/%j",
        "--results-recipient",
        "age1xyz",
    ]);
    let out = hpcs_job(&args);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("HPCS_RESULTS_TEMPLATE='/shared/r/%u/%j'\n"),
        "{script}"
    );
    assert!(script
        .contains("HPCS_RESULTS_ARGS=('--output-run' '{run}' '--output-recipient' 'age1xyz')\n"));
    // The run id is fixed now, printed, and written into the script.
    let said = String::from_utf8_lossy(&out.stderr);
    let run = said
        .split("--expect-run ")
        .nth(1)
        .expect("hpcs-job prints the run id")
        .trim()
        .to_string();
    assert_eq!(run.len(), 32, "{said}");
    assert!(
        script.contains(&format!("HPCS_RUN_IDS=('{run}')\n")),
        "{script}"
    );
    // Crypt4GH results: a public key file, by its absolute path.
    let pk = e.p("me.pub");
    std::fs::write(
        &pk,
        "-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n-----END CRYPT4GH PUBLIC KEY-----\n",
    )
    .unwrap();
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--results",
        "/shared/r/%j",
        "--results-c4gh-recipient",
        s(&pk),
    ]);
    let out = hpcs_job(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "HPCS_RESULTS_ARGS=('--output-run' '{{run}}' '--output-c4gh-recipient' '{}')\n",
        pk.canonicalize().unwrap().display()
    );
    assert!(script.contains(&want), "{script}");
    // the printed command names the Crypt4GH key results need
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("-i IDENTITY --sk CRYPT4GH_SECRET_KEY --expect-run "),
        "{said}"
    );
    let id_file = s(&id);
    let c4gh_cases: [(&[&str], &str); 3] = [
        (&["--results-c4gh-recipient", s(&pk)], "needs --results DIR"),
        (
            &[
                "--results",
                "/shared/r",
                "--results-c4gh-recipient",
                id_file,
            ],
            "not a Crypt4GH public key file",
        ),
        (
            &[
                "--results",
                "/shared/r",
                "--results-c4gh-recipient",
                s(&pk),
                "--results-recipient",
                "age1xyz",
            ],
            "cannot be used with",
        ),
    ];
    for (extra, msg) in c4gh_cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = hpcs_job(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{extra:?}");
        assert!(err.contains(msg), "{extra:?}: {err}");
    }
    // An archive may not take the results directory's name.
    let named = format!("{}:results", s(&e.p("data.hpcs")));
    let out = hpcs_job(&[
        "--data",
        &named,
        "-i",
        s(&e.p("id.txt")),
        "--app",
        "true",
        "--results",
        "/r",
        "--results-recipient",
        "age1xyz",
    ]);
    assert_eq!(out.status.code(), Some(3));
}

/// Runs `job` like the stage test does: bash in a private user and mount
/// namespace, no Slurm.
fn run_unshared(job: &Path, tmp: &Path) -> Output {
    Command::new("unshare")
        .args(["-rm", "bash"])
        .arg(job)
        .env("TMPDIR", tmp)
        .env_remove("SLURM_JOB_ID")
        .output()
        .expect("bash")
}

/// Private mount roots (issue 11): the job uses an existing mount root only
/// if it is a real directory owned by the job's user with mode 0700 in a
/// parent nobody else can write; a symbolic link, a world-writable root, one
/// in a world-writable non-sticky parent, or (as root) one owned by another
/// uid stops the job with 200 before anything is mounted.
#[test]
fn unsafe_mount_roots_stop_the_job_with_200() {
    let e = Env::new();
    let (log, fake_mount, tmp) = e.staging();
    let app = e.script("app.sh", &format!("echo app >> {}", s(&log)));
    let job_for = |root: &Path| e.job(&fake_mount, s(root), &app, &[]);
    let mode = |p: &Path, m: u32| {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
    };

    // A good pre-existing root is used (and, not being the job's, kept).
    let good = e.p("good");
    fs::create_dir(&good).expect("mkdir");
    mode(&good, 0o700);
    let out = run_unshared(&job_for(&good), &tmp);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(good.is_dir() && fs::read_dir(&good).expect("ls").count() == 0);

    let target = e.p("target");
    fs::create_dir(&target).expect("mkdir");
    mode(&target, 0o700);
    let link = e.p("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let open = e.p("open");
    fs::create_dir(&open).expect("mkdir");
    mode(&open, 0o777);
    let shared = e.p("shared");
    fs::create_dir(&shared).expect("mkdir");
    mode(&shared, 0o777);
    let in_shared = shared.join("root");
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (link.clone(), "is a symbolic link, not a directory"),
        (
            open.clone(),
            "exists with mode 777; it must be private (0700)",
        ),
        (in_shared.clone(), "lets other users rename or replace it"),
    ];
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let foreign = e.p("foreign");
    if root_user {
        fs::create_dir(&foreign).expect("mkdir");
        mode(&foreign, 0o700);
        let st = Command::new("chown")
            .args(["65534", s(&foreign)])
            .status()
            .expect("chown");
        assert!(st.success());
        cases.push((foreign.clone(), "belongs to uid 65534, not to you"));
    }
    for (root, msg) in &cases {
        let _ = fs::remove_file(&log);
        let out = run_unshared(&job_for(root), &tmp);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(200), "{}: {err}", root.display());
        assert!(err.contains(msg), "{}: {err}", root.display());
        assert!(
            err.contains("the mount root could not be set up")
                && err.contains("the application was NOT started"),
            "{err}"
        );
        assert!(
            !log.exists(),
            "hpcs-mount or the app ran for {}",
            root.display()
        );
    }
    // Nothing was created or removed by the refused jobs.
    assert!(fs::read_dir(&target).expect("ls").count() == 0);
    assert!(!in_shared.exists());
    assert!(link.is_symlink() && open.is_dir());
    assert_eq!(fs::read_dir(&tmp).expect("ls").count(), 0, "temp dirs left");
}

/// A mount that ends while the application runs (hpcs-mount killed) stops
/// the application and ends the job with 205; the dead mount is detached.
#[test]
fn a_mount_that_dies_under_the_app_ends_the_job_with_205() {
    let e = Env::new();
    let log = e.p("log");
    // Mounts a tmpfs, reports ready through CMD, then dies with SIGKILL
    // shortly after, leaving the mount behind as a killed hpcs-mount would.
    let dying = e.script(
        "dying-mount",
        &format!(
            "mount -t tmpfs fake \"$2\" || exit 33\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n\
             \"$@\" & sleep 1; echo died >> {0}; kill -KILL $$",
            s(&log)
        ),
    );
    let app = e.script(
        "app.sh",
        &format!(
            "echo app-start >> {0}; sleep 30; echo app-end >> {0}",
            s(&log)
        ),
    );
    let tmp = e.p("tmp");
    fs::create_dir(&tmp).expect("mkdir");
    let root = format!("{}/mnt-%j", e.dir.path().display());
    let job = e.job(&dying, &root, &app, &[]);
    let t = std::time::Instant::now();
    let out = run_unshared(&job, &tmp);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(205), "{err}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(25),
        "the app was not stopped"
    );
    assert!(
        err.contains("ended before the application finished (hpcs-mount exited with status 137"),
        "{err}"
    );
    assert!(
        err.contains("is still mounted (hpcs-mount ended with status 137); detaching it"),
        "{err}"
    );
    let l = fs::read_to_string(&log).expect("log");
    assert!(
        l.contains("app-start") && l.contains("died") && !l.contains("app-end"),
        "{l}"
    );
    e.assert_no_mount_roots();
}

/// --scratch and --scratch-keep, with a stand-in hpcs-mount (tmpfs): the
/// node wrapper creates the scratch directory and removes it afterwards,
/// hpcs-mount gets `--scratch scratch=DIR:SIZE` next to the named archives,
/// the application gets HPCS_SCRATCH and TMPDIR pointing into the mount, and
/// the kept path is copied into the results directory before output
/// verification; a kept path that does not exist ends the job with 206; a
/// planted scratch directory others can write stops the job with 200.
#[test]
fn scratch_and_keep_reach_the_mount_and_the_results() {
    let e = Env::new();
    let log = e.p("log");
    // ... MP -i ID ... -- CMD: mount a tmpfs on MP (the argument before -i),
    // give it the results and scratch directories, run CMD.
    let fake_mount = e.script(
        "fake-mount",
        &format!(
            "echo \"mount $*\" >> {log}; prev=; for a; do [ \"$a\" = -i ] && mp=$prev; prev=$a; done\n\
             mount -t tmpfs fake \"$mp\" || exit 33; mkdir \"$mp/results\" \"$mp/scratch\"\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n\
             \"$@\" & c=$!; trap 'kill $c' TERM; wait $c; wait $c\n\
             find \"$mp/results\" -type f | sed \"s|^$mp/|kept |\" >> {log}; umount \"$mp\" && echo unmount >> {log}",
            log = s(&log)
        ),
    );
    let app = e.script(
        "app.sh",
        &format!(
            "echo \"app $HPCS_SCRATCH $TMPDIR\" >> {}; mkdir -p \"$HPCS_SCRATCH/out\"; echo table > \"$HPCS_SCRATCH/out/t.bin\"",
            s(&log)
        ),
    );
    let tmp = e.p("tmp");
    fs::create_dir(&tmp).expect("mkdir");
    let root = format!("{}/mnt-%j", e.dir.path().display());
    let scratch = format!("{}/scratch-%j", e.dir.path().display());
    let run = |keep: &str| {
        let job = e.p("job.sh");
        let _ = fs::remove_file(&job);
        let _ = fs::remove_file(&log);
        let out = hpcs_job(&[
            "--data",
            s(&e.p("data.hpcs")),
            "-i",
            s(&e.p("id.txt")),
            "--hpcs-mount",
            s(&fake_mount),
            "--mount-root",
            &root,
            "--app",
            s(&app),
            "--results",
            s(&e.p("results")),
            "--results-recipient",
            "age1xyz",
            "--scratch",
            &format!("{scratch}:1G"),
            "--scratch-keep",
            keep,
            "-o",
            s(&job),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("unshare")
            .args(["-rm", "bash"])
            .arg(&job)
            .env("TMPDIR", &tmp)
            .env("SLURM_JOB_ID", "77")
            .output()
            .expect("bash");
        (out, fs::read_to_string(&log).unwrap_or_default())
    };
    let (out, l) = run("out/t.bin");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mnt = format!("{}/mnt-77", e.dir.path().display());
    // (The holder's script spans lines of the mount record.)
    assert!(
        l.starts_with("mount ")
            && l.contains(&format!(
                "--scratch scratch={}/scratch-77:1G {mnt} -i ",
                e.dir.path().display()
            )),
        "{l}"
    );
    assert!(
        l.ends_with(&format!(
            "\napp {mnt}/scratch {mnt}/scratch\nkept results/out/t.bin\nunmount\n"
        )),
        "{l}"
    );
    assert!(
        !e.p("scratch-77").exists(),
        "the scratch directory the job made is gone"
    );
    // A scratch directory another user could write (planted before the
    // job) is refused before anything is mounted, and left as it was.
    let planted = e.p("scratch-77");
    fs::create_dir(&planted).expect("mkdir");
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o777)).expect("chmod");
    let (out, l) = run("out/t.bin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(200), "{err}");
    assert!(err.contains("nobody else can write"), "{err}");
    assert!(!l.contains("mount "), "hpcs-mount ran: {l}");
    assert!(planted.is_dir());
    fs::remove_dir(&planted).expect("rmdir");
    let (out, l) = run("missing.bin");
    assert_eq!(out.status.code(), Some(206), "{l}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("copying"),
        "{l}"
    );
    assert!(l.ends_with("unmount\n"), "{l}");
    assert_eq!(
        fs::read_dir(&tmp).expect("ls").count(),
        0,
        "temp dirs left in TMPDIR"
    );
}
