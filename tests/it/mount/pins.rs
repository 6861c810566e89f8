//! The substitution matrix against a pinned hpcs-mount (issue 11, problem
//! 1): the expected archive and a rewrapped copy of it mount; an archive
//! packed by someone else to the same recipient, an older version of the
//! data, and an archive id and key check copied over another key are refused
//! with exit code 18 before anything is mounted or run. The same archives
//! mount without `--pin` (what the pin adds).

use super::*;

use hpcs::crypto::{FileSource, SealedArchive};

use crate::util::pin_of;

fn header_of(path: &Path) -> hpcs::crypto::Header {
    SealedArchive::open(FileSource::open(path).unwrap())
        .unwrap()
        .header()
        .clone()
}

/// The victim's archive, and the attacker's substitutes for it.
struct Matrix {
    dir: tempfile::TempDir,
    identity: PathBuf,
    genuine: PathBuf,
    mnt: PathBuf,
}

impl Matrix {
    fn new() -> Matrix {
        let dir = tmpdir();
        let (identity, recipient) = identity_file(dir.path(), "id.txt");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("run.sh"), b"echo genuine\n").unwrap();
        let p = |n: &str| dir.path().join(n);
        let suite = hpcs::crypto::Suite::Aes256Gcm;
        // An older version of the data, packed by the victim.
        pack_lib(&src, &p("older.hpcs"), 4096, suite, &recipient);
        // The current, genuine version.
        std::fs::write(src.join("run.sh"), b"echo current\n").unwrap();
        let key = pack_lib(&src, &p("genuine.hpcs"), 4096, suite, &recipient);
        // Rewrapped: another recipient added (same id, same key, same streams).
        let h = header_of(&p("genuine.hpcs"));
        let (_, second) = age_keypair();
        let rs = [
            hpcs::keys::parse_recipient(&recipient).unwrap(),
            hpcs::keys::parse_recipient(&second).unwrap(),
        ];
        let stanzas = hpcs::keys::stanzas::age_stanzas(&key, &h.archive_id, h.suite, &rs).unwrap();
        let new = h.with_stanzas(&key, stanzas).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        hpcs::rewrap::write_with_header(
            &p("genuine.hpcs"),
            &h,
            &new,
            &p("rewrapped.hpcs"),
            false,
            &key,
            &stop,
        )
        .unwrap();
        // Someone else packs their own run.sh to the victim's recipient.
        let evil = dir.path().join("evil");
        std::fs::create_dir(&evil).unwrap();
        std::fs::write(evil.join("run.sh"), b"echo evil\n").unwrap();
        pack_lib(&evil, &p("foreign.hpcs"), 4096, suite, &recipient);
        // ... and copies the genuine archive id and key check into it: the
        // header now carries the genuine pin over the attacker's key.
        let mut forged = std::fs::read(p("foreign.hpcs")).unwrap();
        let genuine = std::fs::read(p("genuine.hpcs")).unwrap();
        forged[24..56].copy_from_slice(&genuine[24..56]);
        forged[72..104].copy_from_slice(&genuine[72..104]);
        std::fs::write(p("copied-id.hpcs"), forged).unwrap();
        let mnt = p("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Matrix {
            identity,
            genuine: p("genuine.hpcs"),
            mnt,
            dir,
        }
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    /// Exec mode on `archive` with `extra` flags: prints run.sh's content.
    fn run(&self, archive: &Path, extra: &[String]) -> std::process::Output {
        let mut args = vec![
            archive.display().to_string(),
            self.mnt.display().to_string(),
            "-i".into(),
            self.identity.display().to_string(),
        ];
        args.extend(extra.iter().cloned());
        let script = format!("cat {}/run.sh", self.mnt.display());
        args.extend(["--".into(), "sh".into(), "-c".into(), script]);
        let out = run_mount(&args);
        assert!(!mounted(&self.mnt), "a mount was left behind");
        out
    }
}

#[test]
fn a_pinned_mount_refuses_every_substitute_and_mounts_nothing() {
    need_fuse!();
    let m = Matrix::new();
    let pin = pin_of(&m.genuine);
    let pinned = ["--pin".to_string(), pin.clone()];

    // Accepted: the genuine archive and its rewrapped copy (same pin).
    for ok in ["genuine.hpcs", "rewrapped.hpcs"] {
        assert_eq!(pin_of(&m.path(ok)), pin, "{ok}");
        let out = m.run(&m.path(ok), &pinned);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{ok}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "echo current\n");
    }

    for (bad, why) in [
        ("foreign.hpcs", "its pin is"),
        ("older.hpcs", "its pin is"),
        ("copied-id.hpcs", "its key does not match"),
    ] {
        // Without a pin the substitute opens with the victim's key (that is
        // the attack the pin stops); the copied id over another key is then
        // only a wrong key (12).
        let unpinned = if bad == "copied-id.hpcs" {
            hpcs::exit::WRONG_KEY as i32
        } else {
            0
        };
        let open = m.run(&m.path(bad), &[]);
        assert_eq!(open.status.code(), Some(unpinned), "{bad}");
        let out = m.run(&m.path(bad), &pinned);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(hpcs::exit::ARCHIVE_PIN as i32),
            "{bad}: {err}"
        );
        assert!(
            err.contains("not the expected archive") && err.contains(why),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "{bad}: the command ran");
    }
    // The copied id and key check really carry the genuine pin: the header
    // check alone cannot tell, the key check after unwrapping does.
    assert_eq!(pin_of(&m.path("copied-id.hpcs")), pin);
}

#[test]
fn several_archives_are_pinned_by_name_and_one_substitute_stops_all() {
    need_fuse!();
    let m = Matrix::new();
    let pin = pin_of(&m.genuine);
    let mount = |second: &str, pins: &[String]| {
        let mut args = vec![
            "--archive".to_string(),
            format!("data={}", m.genuine.display()),
            "--archive".to_string(),
            format!("job={}", m.path(second).display()),
            m.mnt.display().to_string(),
            "-i".into(),
            m.identity.display().to_string(),
        ];
        for p in pins {
            args.extend(["--pin".to_string(), p.clone()]);
        }
        args.extend(["--".into(), "true".into()]);
        let out = run_mount(&args);
        assert!(!mounted(&m.mnt));
        out
    };
    let both = [format!("data={pin}"), format!("job={pin}")];
    assert_eq!(mount("rewrapped.hpcs", &both).status.code(), Some(0));
    let out = mount("foreign.hpcs", &both);
    assert_eq!(out.status.code(), Some(hpcs::exit::ARCHIVE_PIN as i32));
    assert!(String::from_utf8_lossy(&out.stderr).contains("foreign.hpcs"));
    // Only the pinned name is checked.
    assert_eq!(
        mount("foreign.hpcs", &[format!("data={pin}")])
            .status
            .code(),
        Some(0)
    );
}
