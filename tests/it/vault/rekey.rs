//! `hpcs-pack rekey` of archives whose key is in Vault: the dataset's record
//! is replaced with the new key and archive id, jobs get the new key, the old
//! key opens nothing of the new archive, and an older copy of the dataset is
//! refused (rekeying it would roll the dataset back).

use hpcs::crypto::{FileSource, SealedArchive};
use hpcs::exit;

use super::harness::*;
use crate::util::pin_of;

#[test]
fn rekey_replaces_the_vault_record_and_the_old_key_opens_nothing() {
    let Some(site) = Site::new("rekey_vault") else {
        return;
    };
    // A Vault-only archive (no age recipient): the key comes from Vault.
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A, JOB_B], &[]);
    let agent_a = site.agent("job-a", JOB_A);
    let agent_b = site.agent("job-b", JOB_B);
    let (old_key, _) = release(&site, &agent_a, &archive).expect("released before rekey");
    let old_hex = site.genome_key_hex();
    let old_pin = pin_of(&archive);
    let (_, old_id) = archive_ref(&archive);
    let old_copy = site.path("genome-old.hpcs");
    std::fs::copy(&archive, &old_copy).unwrap();

    let o = site
        .pack_user("alice", &["rekey"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_ok(&o, "rekey of a Vault archive");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("key replaced in Vault"), "{err}");

    // A new archive id and pin; the record holds a new key, for both IDs.
    let (r, new_id) = archive_ref(&archive);
    assert_eq!(r.dataset, site.alice("genome"), "same dataset");
    assert_ne!(new_id, old_id, "new archive id");
    assert_ne!(pin_of(&archive), old_pin, "new pin");
    let new_hex = site.genome_key_hex();
    assert_ne!(new_hex, old_hex, "the Vault record holds a new key");
    for agent in [&agent_a, &agent_b] {
        let (key, _) = release(&site, agent, &archive).expect("released after rekey");
        assert_eq!(
            read_with(&archive, &key, "sub/big.bin"),
            vec![7u8; 200_000],
            "the rekeyed archive holds the same tree"
        );
    }
    // The old data key (a job or a removed identity may have kept it)
    // does not unlock the new archive.
    let sealed = SealedArchive::open(FileSource::open(&archive).unwrap()).unwrap();
    assert!(
        sealed.unlock(&old_key).is_err(),
        "the old data key opened the rekeyed archive"
    );
    // The old archive (a copy anybody may have kept) is refused by Vault.
    let (code, msg) = code_of(release(&site, &agent_a, &old_copy));
    assert_eq!(code, exit::ROLLBACK, "{msg}");

    // Rekeying that older copy would make it current again: refused, and
    // nothing changes in Vault or on disk.
    let before = std::fs::read(&old_copy).unwrap();
    let o = site
        .pack_user("alice", &["rekey"])
        .arg(&old_copy)
        .output()
        .unwrap();
    let msg = assert_code(&o, exit::ROLLBACK, "rekey of an older version");
    assert!(msg.contains("not the current version"), "{msg}");
    assert_eq!(
        std::fs::read(&old_copy).unwrap(),
        before,
        "old copy untouched"
    );
    assert_eq!(site.genome_key_hex(), new_hex, "Vault record untouched");

    // Another owner cannot rekey alice's dataset (and changes nothing).
    let o = site
        .pack_user("bob", &["rekey"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "bob rekeys alice's dataset");
    assert_eq!(site.genome_key_hex(), new_hex, "Vault record untouched");
    assert!(release(&site, &agent_a, &archive).is_ok());
}

#[test]
fn rekey_of_an_age_and_vault_archive_keeps_both() {
    let Some(site) = Site::new("rekey_vault_age") else {
        return;
    };
    let (id_file, recipient) = crate::util::identity_file(site.dir.path(), "alice.age");
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &["-r", &recipient]);
    let old_hex = site.genome_key_hex();
    // With -i the key comes from the age identity (and must match Vault's).
    let o = site
        .pack_user("alice", &["rekey", "-q"])
        .arg("-i")
        .arg(&id_file)
        .arg(&archive)
        .output()
        .unwrap();
    assert_ok(&o, "rekey with -i");
    assert_ne!(
        site.genome_key_hex(),
        old_hex,
        "the Vault record holds a new key"
    );
    let agent = site.agent("job-a", JOB_A);
    let (key, _) = release(&site, &agent, &archive).expect("released after rekey");
    assert_eq!(read_with(&archive, &key, "sub/big.bin"), vec![7u8; 200_000]);
    // The age recipient still opens it (extract through the CLI).
    let dest = site.path("out");
    let o = std::process::Command::new(crate::util::bin("hpcs-pack"))
        .arg("extract")
        .arg(&archive)
        .arg("-i")
        .arg(&id_file)
        .arg("-o")
        .arg(&dest)
        .output()
        .unwrap();
    assert_ok(&o, "extract with the age identity after rekey");
    assert_eq!(
        std::fs::read(dest.join("sub/big.bin")).unwrap(),
        vec![7u8; 200_000]
    );

    // Rekeyed to another file (-o): that one becomes the current version,
    // and the message says the original is not any more.
    let v3 = site.path("genome-v3.hpcs");
    let o = site
        .pack_user("alice", &["rekey"])
        .arg("-i")
        .arg(&id_file)
        .arg(&archive)
        .arg("-o")
        .arg(&v3)
        .output()
        .unwrap();
    assert_ok(&o, "rekey -o");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is no longer the current version"), "{err}");
    assert!(
        release(&site, &agent, &v3).is_ok(),
        "the -o output is current"
    );
    let (code, msg) = code_of(release(&site, &agent, &archive));
    assert_eq!(code, exit::ROLLBACK, "{msg}");
}

/// alice's Vault dataset `genome` of one 48 MiB file `big.bin` of `byte`
/// (large enough that its rekey can be paused midway), for `allow`.
fn pack_big(site: &Site, byte: u8, allow: &[&str]) -> std::path::PathBuf {
    let src = site.path("big-src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big.bin"), vec![byte; 48 << 20]).unwrap();
    let archive = site.path("genome.hpcs");
    let mut c = site.pack_user("alice", &["pack"]);
    c.arg(&src).arg("-o").arg(&archive);
    c.args(["--vault", "--dataset", "genome", "-q"]);
    for a in allow {
        c.args(["--allow", a]);
    }
    assert_ok(&c.output().unwrap(), "pack --vault");
    archive
}

/// Whether a temporary file of `out` (`.NAME.tmp-…`, pack::TempOut) is in
/// the site's directory.
fn temp_exists(site: &Site, out: &str) -> bool {
    let prefix = format!(".{out}.tmp-");
    std::fs::read_dir(site.dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(&prefix)
    })
}

/// Runs alice's `hpcs-pack rekey ARGS`, writing `out` in the site's
/// directory; once its temporary file exists (re-encryption under way) the
/// rekey is paused (SIGSTOP), `meanwhile` runs, and the rekey goes on.
fn rekey_paused(
    site: &Site,
    args: &[&std::ffi::OsStr],
    out: &str,
    meanwhile: impl FnOnce(),
) -> std::process::Output {
    let mut rekey = site
        .pack_user("alice", &["rekey"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = rekey.id() as i32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !temp_exists(site, out) {
        assert!(
            rekey.try_wait().unwrap().is_none(),
            "rekey ended before its temporary file was seen"
        );
        assert!(std::time::Instant::now() < deadline, "no temporary file");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: pid is our running child's; SIGSTOP/SIGCONT only pause it.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    meanwhile();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    rekey.wait_with_output().unwrap()
}

/// KV v1 has no check-and-set: a change of the dataset while its archive is
/// re-encrypted (here an identity removed with `allow --remove`, as an
/// owner does when an identity leaks) must not be undone by the rekey's
/// write. The rekey is paused (SIGSTOP) once its temporary file exists, the
/// identity is removed, and the rekey then replaces nothing (46).
#[test]
fn a_dataset_changed_during_rekey_is_not_overwritten() {
    let Some(site) = Site::new("rekey_race") else {
        return;
    };
    let archive = pack_big(&site, 3, &[JOB_A, JOB_B]);
    let before = std::fs::read(&archive).unwrap();

    let o = rekey_paused(&site, &[archive.as_os_str()], "genome.hpcs", || {
        let o = site
            .pack_user("alice", &["allow", "genome", "--remove", JOB_B])
            .output()
            .unwrap();
        assert_ok(&o, "allow --remove during the rekey");
    });
    let msg = assert_code(&o, exit::ROLLBACK, "rekey of a dataset changed meanwhile");
    assert!(
        msg.contains("changed while the archive was re-encrypted"),
        "{msg}"
    );

    // Nothing was undone or replaced: the removed identity stays removed,
    // the archive and its key are as before, no temporary file is left.
    let agent_b = site.agent("job-b", JOB_B);
    let (code, msg) = code_of(release(&site, &agent_b, &archive));
    assert_eq!(code, exit::KEY_REVOKED, "{msg}");
    let agent_a = site.agent("job-a", JOB_A);
    let (key, _) = release(&site, &agent_a, &archive).expect("the archive is still current");
    assert_eq!(read_with(&archive, &key, "big.bin").len(), 48 << 20);
    assert!(
        std::fs::read(&archive).unwrap() == before,
        "archive replaced"
    );
    assert!(
        !temp_exists(&site, "genome.hpcs"),
        "temporary file left behind"
    );
}

/// The rename that places the rekeyed archive fails (here: `-o OUT` taken
/// by someone else while the rekey ran, which is never replaced): the
/// Vault record is put back to the old key and archive id, so the old
/// archive still opens for its jobs, and no temporary file is left.
#[test]
fn a_failed_placement_puts_the_old_record_back() {
    let Some(site) = Site::new("rekey_put_back") else {
        return;
    };
    let archive = pack_big(&site, 5, &[JOB_A]);
    let old_hex = site.genome_key_hex();
    let out = site.path("genome-v2.hpcs");

    let args = [archive.as_os_str(), "-o".as_ref(), out.as_os_str()];
    let o = rekey_paused(&site, &args, "genome-v2.hpcs", || {
        std::fs::write(&out, b"someone else's file").unwrap();
    });
    let msg = assert_code(&o, exit::OUTPUT, "rekey whose output was taken meanwhile");
    assert!(msg.contains("is as it was"), "{msg}");

    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"someone else's file",
        "replaced"
    );
    assert_eq!(site.genome_key_hex(), old_hex, "the old record is back");
    let agent = site.agent("job-a", JOB_A);
    let (key, _) = release(&site, &agent, &archive).expect("the old archive still opens");
    assert_eq!(read_with(&archive, &key, "big.bin").len(), 48 << 20);
    assert!(
        !temp_exists(&site, "genome-v2.hpcs"),
        "temporary file left behind"
    );
}
