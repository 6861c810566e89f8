//! Jobs with real hpcs-mount: archive pins (issue 11).

use super::*;

/// The real hpcs-mount next to this test binary (built by `cargo test
/// --workspace`), when FUSE can be used; `None` (skip) otherwise, unless
/// HPCS_REQUIRE_FUSE=1.
fn real_hpcs_mount() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("hpcs-mount");
    let ok = bin.exists() && Path::new("/dev/fuse").exists();
    if !ok {
        assert!(
            std::env::var("HPCS_REQUIRE_FUSE").as_deref() != Ok("1"),
            "HPCS_REQUIRE_FUSE=1 but {} or /dev/fuse is missing (cargo test --workspace)",
            bin.display()
        );
        eprintln!("SKIP: no hpcs-mount build or /dev/fuse");
    }
    ok.then_some(bin)
}

/// Issue 11, problem 1 for jobs: the generated script pins data.hpcs; the
/// job reads it through a real mount; once someone replaces data.hpcs with
/// an archive of their own packed to the same key (or puts back an older
/// version, or its own with the genuine archive id and key check copied
/// into the header), the same script stops with 201 (hpcs-mount 18), mounts
/// nothing and never starts the application; the same archive rewrapped (same
/// pin) still runs. With --insecure-no-pins the
/// substitute is read.
#[test]
fn a_pinned_job_mounts_only_the_archive_it_was_generated_for() {
    let e = Env::new();
    let Some(mount) = real_hpcs_mount() else {
        return;
    };
    let (log, _, tmp) = e.staging();
    let app = e.script("app.sh", &format!("cat \"$HPCS_DATA/file\" >> {}", s(&log)));
    let root = format!("{}/mnt-%j", e.dir.path().display());
    let older = e.pack("older.hpcs", b"older\n");
    let unpinned = e.p("unpinned.sh");
    let data = e.p("data.hpcs");
    let out = hpcs_job(&[
        "--data",
        s(&data),
        "-i",
        s(&e.p("id.txt")),
        "--hpcs-mount",
        s(&mount),
        "--mount-root",
        &root,
        "--app",
        s(&app),
        "--insecure-no-pins",
        "-o",
        s(&unpinned),
    ]);
    assert!(out.status.success());
    let res = e.p("res");
    let job = e.job(
        &mount,
        &root,
        &app,
        &["--results", s(&res), "--results-recipient", &e.recipient],
    );
    let text = fs::read_to_string(&job).unwrap();
    assert!(
        text.contains("HPCS_PINS=('hpcspin1-"),
        "the script carries the pin"
    );
    let run_id = text
        .split("HPCS_RUN_IDS=('")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("a run id")
        .to_string();
    let run = |job: &Path| {
        let _ = fs::remove_file(&log);
        let out = Command::new("bash")
            .arg(job)
            .env("TMPDIR", &tmp)
            .env_remove("SLURM_JOB_ID")
            .output()
            .expect("bash");
        e.assert_no_mount_roots();
        (out, fs::read_to_string(&log).unwrap_or_default())
    };

    let (out, read) = run(&job);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read, "genuine\n");
    // The results run is the one fixed in the script.
    assert!(
        res.join(format!("manifest-{run_id}.age")).exists(),
        "{run_id}"
    );
    // (a run id is used once: the same script refuses to run again into
    // the same directory, 39; clear it for the next runs)
    fs::remove_dir_all(&res).unwrap();

    // Accepted: the same archive rewrapped (another recipient added; same
    // id, key and streams, so the same pin).
    let header = |p: &Path| {
        hpcs::crypto::SealedArchive::open(hpcs::crypto::FileSource::open(p).unwrap())
            .unwrap()
            .header()
            .clone()
    };
    let h = header(&data);
    let ids = hpcs::keys::load_identities(&e.p("id.txt")).unwrap();
    let key = hpcs::keys::unwrap_age(&h.stanzas, &ids).unwrap();
    let second = age::x25519::Identity::generate().to_public().to_string();
    let rs = [
        hpcs::keys::parse_recipient(&e.recipient).unwrap(),
        hpcs::keys::parse_recipient(&second).unwrap(),
    ];
    let stanzas = hpcs::keys::stanzas::age_stanzas(&key, &h.archive_id, h.suite, &rs).unwrap();
    let new = h.with_stanzas(&key, stanzas).unwrap();
    let rewrapped = e.p("rewrapped.hpcs");
    let stop = std::sync::atomic::AtomicBool::new(false);
    hpcs::rewrap::write_with_header(&data, &h, &new, &rewrapped, false, &key, &stop).unwrap();
    let genuine_bytes = fs::read(&data).unwrap();
    fs::copy(&rewrapped, &data).unwrap();
    let (out, read) = run(&job);
    assert_eq!(
        out.status.code(),
        Some(0),
        "rewrapped: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read, "genuine\n");
    fs::remove_dir_all(&res).unwrap();
    fs::write(&data, &genuine_bytes).unwrap();

    let foreign = e.pack("foreign.hpcs", b"evil\n");
    // The foreign archive with the genuine archive id and key check copied
    // into its header (FORMAT.md offsets): the genuine pin over another key.
    let copied = e.p("copied-id.hpcs");
    let mut forged = fs::read(&foreign).unwrap();
    let genuine = genuine_bytes;
    forged[24..56].copy_from_slice(&genuine[24..56]);
    forged[72..104].copy_from_slice(&genuine[72..104]);
    fs::write(&copied, forged).unwrap();
    for substitute in [&foreign, &older, &copied] {
        fs::copy(substitute, &data).unwrap();
        let (out, read) = run(&job);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(201), "{err}");
        assert!(err.contains("not the one this job was pinned to"), "{err}");
        assert!(
            err.contains("not the expected archive"),
            "hpcs-mount says why: {err}"
        );
        assert_eq!(read, "", "the application ran");
    }
    // What the pin prevents: the unpinned script reads the substitute.
    fs::copy(&older, &data).unwrap();
    let (out, read) = run(&unpinned);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read, "older\n");
    assert!(fs::read_to_string(&unpinned)
        .unwrap()
        .contains("# WARNING: generated with --insecure-no-pins"));
}
