use super::*;
use clap::Parser;
use std::path::PathBuf;

/// A real (empty) archive with `stanzas`, packed by the library.
fn archive_with(dir: &Path, name: &str, stanzas: Vec<hpcs::crypto::Stanza>) -> PathBuf {
    let src = dir.join(format!("{name}.src"));
    std::fs::create_dir_all(&src).expect("mkdir");
    let p = dir.join(name);
    let scan = hpcs::pack::scan(&src, 4096).expect("scan");
    let key = hpcs::crypto::DataKey::generate().expect("key");
    let id = hpcs::crypto::writer::new_archive_id().expect("id");
    let opts = hpcs::crypto::WriteOptions {
        chunk_size: 4096,
        ..Default::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    hpcs::pack::write(
        &scan,
        &p,
        true,
        &opts,
        &key,
        id,
        stanzas,
        &mut |_| {},
        &stop,
    )
    .expect("pack");
    p
}

fn archive(dir: &Path, name: &str) -> PathBuf {
    archive_with(dir, name, vec![])
}

fn pin_of(p: &Path) -> String {
    SealedArchive::open(FileSource::open(p).unwrap())
        .unwrap()
        .header()
        .pin()
        .to_string()
}

fn exec_script(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn spec(args: &[&str]) -> Result<JobSpec, Error> {
    let mut v = vec!["hpcs-job"];
    v.extend_from_slice(args);
    JobSpec::from_cli(&Cli::try_parse_from(v).expect("parses"))
}

#[test]
fn accepts_a_valid_job_and_derives_names() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "genome.hpcs");
    let c = archive(d.path(), "img.hpcs");
    let id = exec_script(d.path(), "id.txt", 0o600);
    let s = spec(&[
        "--data",
        a.to_str().unwrap(),
        "--container",
        &format!("{}:rootfs", c.display()),
        "-i",
        id.to_str().unwrap(),
        "--app",
        "cat",
        "--app-arg",
        "{root}/genome/x",
    ])
    .expect("valid");
    assert_eq!(s.mounts.len(), 2);
    assert_eq!(s.mounts[0].name, "genome");
    assert_eq!(s.mounts[1].name, "rootfs");
    assert_eq!(s.mounts[1].kind, Kind::Container);
    assert!(s.mounts[0].archive.starts_with('/'));
    assert!(!s.srun);
    assert_eq!(s.app, vec!["cat", "{root}/genome/x"]);
}

#[test]
fn rejects_non_archives_missing_files_and_bad_scripts() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "data.hpcs");
    let not = d.path().join("plain.txt");
    std::fs::write(&not, "hello world, not an archive").expect("write");
    let id = exec_script(d.path(), "id.txt", 0o600);
    let noexec = exec_script(d.path(), "check.sh", 0o644);
    let (a, id) = (a.to_str().unwrap(), id.to_str().unwrap());

    let e = spec(&["--data", not.to_str().unwrap(), "-i", id, "--app", "true"]).unwrap_err();
    assert!(e.to_string().contains("not an hpcs archive"), "{e}");
    assert_eq!(e.exit_code(), 3);
    let e = spec(&["--data", "/nonexistent/x.hpcs", "-i", id, "--app", "true"]).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.hpcs"), "{e}");
    let e = spec(&[
        "--data",
        a,
        "-i",
        id,
        "--app",
        "true",
        "--verify-input",
        noexec.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("not executable"), "{e}");
    let e = spec(&["--data", a, "--app", "true"]).unwrap_err();
    assert!(e.to_string().contains("--identity FILE or --vault"), "{e}");
    let e = spec(&["--data", a, "--data", a, "-i", id, "--app", "true"]).unwrap_err();
    assert!(e.to_string().contains("same name"), "{e}");
    // a script inside a mount is checked at run time only
    spec(&[
        "--data",
        a,
        "-i",
        id,
        "--app",
        "true",
        "--verify-input",
        "{root}/data/check.sh",
    ])
    .expect("ok");
}

#[test]
fn rejects_values_that_could_break_the_script() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "data.hpcs");
    let id = exec_script(d.path(), "id.txt", 0o600);
    let (a, id) = (a.to_str().unwrap(), id.to_str().unwrap());
    let base = ["--data", a, "-i", id, "--app", "true"];
    for bad in [
        ["--partition", "a b"],
        ["--partition", "x\n#SBATCH --uid=0"],
        ["--time", "1:00;id"],
        ["--job-name", "a'b"],
        ["--mount-root", "relative/dir"],
        ["--mount-root", "/tmp/a b"],
        ["--mount-root", "/tmp/../etc"],
        ["--mount-root", "/"],
        ["--sbatch-flag", "mem=4G"],
        ["--sbatch-flag", "--mem=4G\n#SBATCH --x"],
        ["--app-arg", "line\nbreak"],
    ] {
        let mut v = base.to_vec();
        v.extend_from_slice(&bad);
        let e = spec(&v).unwrap_err();
        assert_eq!(e.exit_code(), 3, "{bad:?}");
    }
}

#[test]
fn scratch_options() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "data.hpcs");
    let id = exec_script(d.path(), "id.txt", 0o600);
    let (a, id) = (a.to_str().unwrap(), id.to_str().unwrap());
    let base = ["--data", a, "-i", id, "--app", "true"];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        spec(&v)
    };
    let s = with(&["--scratch", "/local/%u-%j:100G"]).expect("valid");
    assert_eq!(s.scratch.as_deref(), Some("/local/%u-%j:100G"));
    assert_eq!(
        with(&["--scratch", "/local/x/"])
            .unwrap()
            .scratch
            .as_deref(),
        Some("/local/x")
    );
    let s = with(&[
        "--scratch",
        "/l",
        "--results",
        "/r",
        "--results-recipient",
        "age1xyz",
        "--scratch-keep",
        "out/t.h5",
    ])
    .expect("valid");
    assert_eq!(s.scratch_keep, ["out/t.h5"]);
    for (bad, msg) in [
        (&["--scratch", "rel/dir"][..], "absolute directory"),
        (&["--scratch", "/a b"][..], "absolute directory"),
        (&["--scratch", "/a/../b"][..], "absolute directory"),
        (&["--scratch", "/a:lots"][..], "not a size"),
        (&["--scratch", "/a:10GG"][..], "not a size"),
        (
            &["--scratch-keep", "x"][..],
            "needs --scratch and --results",
        ),
        (
            &["--scratch", "/l", "--scratch-keep", "x"][..],
            "needs --scratch and --results",
        ),
    ] {
        let e = with(bad).unwrap_err();
        assert!(e.to_string().contains(msg), "{bad:?}: {e}");
        assert_eq!(e.exit_code(), 3);
    }
    let keep = [
        "--scratch",
        "/l",
        "--results",
        "/r",
        "--results-recipient",
        "age1xyz",
        "--scratch-keep",
    ];
    for bad in ["/abs", "../up", "a/../b", "", "a//b"] {
        let mut v = keep.to_vec();
        v.push(bad);
        assert!(
            with(&v)
                .unwrap_err()
                .to_string()
                .contains("inside the scratch directory"),
            "{bad:?}"
        );
    }
    let named = format!("{a}:scratch");
    let e = spec(&[
        "--data",
        &named,
        "-i",
        id,
        "--app",
        "true",
        "--scratch",
        "/l",
    ])
    .unwrap_err();
    assert!(
        e.to_string().contains("name of the scratch directory"),
        "{e}"
    );
}

#[test]
fn every_archive_is_pinned_and_a_given_pin_must_still_hold() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "x.hpcs");
    let other = archive(d.path(), "y.hpcs");
    let pin = pin_of(&a);
    let on = Pins {
        off: false,
        vault: false,
    };
    let arg = |suffix: &str| format!("{}{suffix}", a.display());
    // Computed from the archive as it is now.
    let m = mount_spec(Kind::Data, &arg(""), None, on).unwrap();
    assert_eq!(
        (m.name.as_str(), m.pin.as_deref()),
        ("x", Some(pin.as_str()))
    );
    // Given, with and without a name, in either case.
    let m = mount_spec(
        Kind::Data,
        &arg(&format!(":in@{}", pin.to_uppercase())),
        None,
        on,
    )
    .unwrap();
    assert_eq!(
        (m.name.as_str(), m.pin.as_deref()),
        ("in", Some(pin.as_str()))
    );
    // Given, but the archive there now has another pin (replaced).
    let e = mount_spec(Kind::Data, &arg(&format!("@{}", pin_of(&other))), None, on).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("not the archive you pinned"), "{e}");
    let e = mount_spec(Kind::Data, &arg("@hpcspin1-short"), None, on).unwrap_err();
    assert!(e.to_string().contains("not a valid pin"), "{e}");
    // Opted out: no pin, and a pin given anyway is refused.
    let off = Pins {
        off: true,
        vault: false,
    };
    assert_eq!(
        mount_spec(Kind::Data, &arg(""), None, off).unwrap().pin,
        None
    );
    assert!(mount_spec(Kind::Data, &arg(&format!("@{pin}")), None, off).is_err());
    // --vault: the dataset comes from the archive; none is an error.
    let vault = Pins {
        off: true,
        vault: true,
    };
    let stanza = VaultRef::new("alice/genome", "hpcs", "hpcs-jwt", "hpcs").to_stanza();
    let v = archive_with(d.path(), "v.hpcs", vec![stanza]);
    let m = mount_spec(Kind::Data, v.to_str().unwrap(), None, vault).unwrap();
    assert_eq!(m.dataset.as_deref(), Some("alice/genome"));
    let e = mount_spec(Kind::Data, &arg(""), None, vault).unwrap_err();
    assert!(e.to_string().contains("names no Vault dataset"), "{e}");
}

#[test]
fn archive_name_parsing() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "x.hpcs");
    let on = Pins {
        off: false,
        vault: false,
    };
    let m = mount_spec(Kind::Data, &format!("{}:in_1", a.display()), None, on).expect("ok");
    assert_eq!(m.name, "in_1");
    assert!(mount_spec(Kind::Data, &format!("{}:a/b", a.display()), None, on).is_err());
    assert!(valid_name("a.b-c_d"));
    for n in ["", ".", "..", "a/b", "a b", "ä"] {
        assert!(!valid_name(n), "{n:?}");
    }
}

#[test]
fn secret_script_becomes_the_app_and_nodes_imply_srun() {
    let d = tempfile::tempdir().expect("tmp");
    let a = archive(d.path(), "data.hpcs");
    let j = archive(d.path(), "job.hpcs");
    let id = exec_script(d.path(), "id.txt", 0o600);
    let s = spec(&[
        "--data",
        a.to_str().unwrap(),
        "--secret-script",
        j.to_str().unwrap(),
        "-i",
        id.to_str().unwrap(),
        "--app-arg",
        "--fast",
        "--nodes",
        "2",
    ])
    .expect("valid");
    assert_eq!(s.app, vec!["{root}/job/run.sh", "--fast"]);
    assert_eq!(s.secret_entry.as_deref(), Some("{root}/job/run.sh"));
    assert!(s.srun);
    assert!(s.sbatch.contains(&"--nodes=2".to_string()));
    assert!(relative_entry("../x").is_err());
    assert!(relative_entry("/abs").is_err());
    assert!(relative_entry("bin/run").is_ok());
}
