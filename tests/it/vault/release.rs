//! The job's side: the allowed identity gets the key (and the audit log
//! names it), another identity, an expired SVID, a wrong audience and an
//! older archive of the dataset do not.

use hpcs::exit;
use hpcs::keys::vault::{self, slot_role};

use super::harness::*;
use crate::util::pin_of;

#[test]
fn allowed_identity_gets_the_key_and_the_audit_log_shows_who() {
    let Some((site, archive, agent)) = Site::with_genome("allowed_identity") else {
        return;
    };
    let (r, _) = archive_ref(&archive);
    assert_eq!(r.dataset, site.alice("genome"));
    assert_eq!(
        (r.mount.as_str(), r.auth_mount.as_str(), r.audience.as_str()),
        ("hpcs", "hpcs-jwt", "hpcs")
    );

    let o = mount_cat(&site, &agent, &archive, &[]);
    assert_mounted_and_read(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "released by Vault to {JOB_A}; Vault token revoked"
        )),
        "{err}"
    );
    let key_hex = site.genome_key_hex();
    assert_eq!(key_hex.len(), 64);

    // The audit log names the SPIFFE ID that read this dataset's key copy.
    let slot_path = site.genome_copy(JOB_A);
    let entries = site.bao.audit_entries();
    let read = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == slot_path.as_str()
                && e["request"]["operation"] == "read"
        })
        .expect("an audit entry for the key read");
    assert!(
        read.get("error").is_none_or(|e| e.is_null() || e == ""),
        "{read}"
    );
    let who = read["auth"]["display_name"].as_str().unwrap();
    assert!(
        who.ends_with(JOB_A),
        "audit display_name {who:?} names the SPIFFE ID"
    );
    assert_eq!(read["auth"]["metadata"]["role"], slot_role(JOB_A).as_str());
    // The key itself never appears in the audit log in clear.
    let log = std::fs::read_to_string(&site.bao.audit).unwrap();
    assert!(!log.contains(&key_hex));

    // The job's Vault token was revoked: its accessor no longer resolves.
    let accessor = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/hpcs-jwt/login"
                && e["auth"]["display_name"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(JOB_A))
        })
        .and_then(|e| e["auth"]["accessor"].as_str().map(str::to_string))
        .expect("login entry with a clear accessor");
    assert!(
        !accessor.starts_with("hmac"),
        "audit device logs accessors in clear"
    );
    let o = site.bao.cli(&["token", "lookup", "-accessor", &accessor]);
    assert!(
        !o.status.success(),
        "the job's token is still valid after the release"
    );
    assert!(entries
        .iter()
        .any(|e| e["request"]["path"] == "auth/token/revoke-self" && e["type"] == "response"));
}

#[test]
fn another_identity_is_denied() {
    let Some(site) = Site::new("another_identity") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    // bob's job has no identity slot at all yet.
    let agent_b = site.agent("job-b", JOB_B);
    let o = mount_cat(&site, &agent_b, &archive, &[]);
    let err = assert_code(&o, exit::UNKNOWN_DATASET, "another identity mounts");
    assert!(err.contains(JOB_B), "{err}");
    assert!(o.stdout.is_empty());

    // Once bob's job has a slot (allowed for another dataset), it still gets
    // nothing of alice/genome: its own slot has no copy, alice's is forbidden.
    site.pack_vault("other.hpcs", "other", &[JOB_B], &[]);
    let (code, msg) = code_of(release(&site, &agent_b, &archive));
    assert_eq!(code, exit::UNKNOWN_DATASET, "{msg}");
    assert!(msg.contains("has not allowed this identity"), "{msg}");

    let jwt = fetch_jwt(&agent_b, "hpcs");
    let login = |role: &str| {
        site.bao.cli_as(
            "",
            &[
                "write",
                "-field=token",
                "auth/hpcs-jwt/login",
                &format!("role={role}"),
                &format!("jwt={jwt}"),
            ],
        )
    };
    let o = login(&slot_role(JOB_A));
    assert!(
        !o.status.success(),
        "bob's SVID logs in through alice's job slot"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("subject"));
    let o = login(&slot_role(JOB_B));
    assert_ok(&o, "bob's job logs in through its own slot");
    let tok = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = site.bao.cli_as(&tok, &["read", &site.genome_copy(JOB_A)]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rec = format!("hpcs/ds/{}", site.alice("genome"));
    let o = site.bao.cli_as(&tok, &["read", &rec]);
    assert!(!o.status.success(), "a job reads the owner's record");
}

fn fetch_jwt(agent: &Agent, aud: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = spiffe::WorkloadApiClient::connect_to(&agent.endpoint)
            .await
            .unwrap();
        c.fetch_jwt_svid([aud], None)
            .await
            .unwrap()
            .token()
            .to_string()
    })
}

#[test]
fn expired_svid_is_refused() {
    let Some(site) = Site::new("expired_svid") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let agent = Agent::start(
        site.dir.path(),
        "job-a-old",
        JOB_A,
        &["--ttl", "60", "--backdate", "3600"],
    );
    let o = mount_cat(&site, &agent, &archive, &[]);
    let err = assert_code(&o, exit::SVID_EXPIRED, "expired SVID");
    assert!(err.contains("expired") && err.contains(JOB_A), "{err}");
}

#[test]
fn wrong_audience_is_refused() {
    let Some((site, archive, agent)) = Site::with_genome("wrong_audience") else {
        return;
    };
    let o = mount_cat(&site, &agent, &archive, &["--audience", "not-hpcs"]);
    let err = assert_code(&o, exit::WRONG_AUDIENCE, "wrong audience");
    assert!(err.contains("not-hpcs"), "{err}");
    // The same through the library.
    let (r, id) = archive_ref(&archive);
    let e = vault::release_key(&site.job(&agent, &r, Some("not-hpcs"), 5), &r, &id).map(|_| ());
    let e = e.expect_err("wrong audience refused");
    assert_eq!(exit::for_vault(&e), exit::WRONG_AUDIENCE, "{e}");
}

#[test]
fn older_archive_of_the_same_dataset_is_refused() {
    let Some(site) = Site::new("rollback") else {
        return;
    };
    let v1 = site.pack_vault("genome-v1.hpcs", "genome", &[JOB_A], &[]);
    // Registering the same dataset again needs --replace (exit 4 otherwise).
    let o = site.try_pack_vault("genome-v2.hpcs", "genome", &[JOB_A], &[]);
    assert_code(
        &o,
        exit::OUTPUT_EXISTS,
        "second registration without --replace",
    );
    assert!(
        !site.path("genome-v2.hpcs").exists(),
        "nothing packed when Vault refuses"
    );
    let v2 = site.pack_vault("genome-v2.hpcs", "genome", &[JOB_A], &["--replace"]);

    let agent = site.agent("job-a", JOB_A);
    let o = mount_cat(&site, &agent, &v1, &[]);
    let msg = assert_code(&o, exit::ROLLBACK, "older archive");
    assert!(
        msg.contains(&format!(
            "not the current version of dataset {}",
            site.alice("genome")
        )),
        "{msg}"
    );
    assert_mounted_and_read(&mount_cat(&site, &agent, &v2, &[]));
    let (key, _) = release(&site, &agent, &v2).expect("the current version opens");
    assert_reads(&v2, &key);
}

/// Issue 11, problem 1 in Vault mode: bob packs his own dataset, allows
/// alice's job to read it and puts it where alice's job expects
/// alice/genome. Unpinned, alice's job mounts it; with `--vault-dataset`
/// or `--pin` it is refused with 18 and nothing is mounted or run.
#[test]
fn a_pinned_vault_mount_refuses_an_archive_of_another_dataset() {
    let Some((site, genome, agent)) = Site::with_genome("pinned_dataset") else {
        return;
    };
    let mut c = site.pack_user("bob", &["pack"]);
    c.arg(&site.src).arg("-o").arg(site.path("bobs.hpcs"));
    c.args(["--vault", "--dataset", "trap", "--allow", JOB_A, "-q"]);
    assert_ok(&c.output().unwrap(), "bob packs bob/trap for alice's job");
    let bobs = site.path("bobs.hpcs");
    // Owner spaces are Vault entity ids: "<bob's entity id>/trap".
    let trap = archive_ref(&bobs).0.dataset;
    let wanted = archive_ref(&genome).0.dataset;
    assert!(
        trap.ends_with("/trap") && wanted.ends_with("/genome"),
        "{trap} {wanted}"
    );
    let pin = pin_of(&genome);

    assert_mounted_and_read(&mount_cat(&site, &agent, &bobs, &[]));
    for expect in [
        ["--vault-dataset", wanted.as_str()],
        ["--pin", pin.as_str()],
    ] {
        let o = mount_cat(&site, &agent, &bobs, &expect);
        let err = assert_code(&o, exit::ARCHIVE_PIN, "another dataset");
        assert!(err.contains("not the expected"), "{err}");
        assert!(o.stdout.is_empty());
    }
    let both = ["--vault-dataset", wanted.as_str(), "--pin", pin.as_str()];
    assert_mounted_and_read(&mount_cat(&site, &agent, &genome, &both));
}

/// A reference archive (`hpcs-pack c4gh-ref --vault`) is registered in Vault
/// like any other: the allowed job gets its key and reads the `.c4gh` file's
/// bytes through the mount (the node never holds the Crypt4GH key), pinned
/// by the pin `c4gh-ref` prints; alice's other dataset's pin refuses it (18).
#[test]
fn a_reference_archive_is_released_by_vault_and_pinned() {
    if !crate::crypt4gh::have_reference("a_reference_archive_is_released_by_vault_and_pinned") {
        return;
    }
    let Some((site, genome, agent)) = Site::with_genome("reference_vault") else {
        return;
    };
    let dir = site.dir.path();
    let (sk, pk) = crate::crypt4gh::keygen(dir, "alice-c4gh", None);
    let data = site.path("ega");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("reads.txt.c4gh"),
        crate::crypt4gh::reference_encrypt(dir, READS, &[&pk]),
    )
    .unwrap();
    let out = site.path("ref.hpcs");
    let mut c = site.pack_user("alice", &["c4gh-ref"]);
    c.arg(&data).arg("--sk").arg(&sk).arg("-o").arg(&out);
    c.args(["--vault", "--dataset", "ega", "--allow", JOB_A]);
    let o = c.output().unwrap();
    assert_ok(&o, "c4gh-ref --vault");
    let err = String::from_utf8_lossy(&o.stderr);
    let pin = err
        .lines()
        .find_map(|l| l.strip_prefix("pin: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("c4gh-ref prints the pin: {err}"))
        .to_string();
    assert_eq!(archive_ref(&out).0.dataset, site.alice("ega"));

    let o = mount_cat(&site, &agent, &out, &["--pin", &pin]);
    assert_mounted_and_read(&o);
    let genome_pin = pin_of(&genome);
    let o = mount_cat(&site, &agent, &out, &["--pin", &genome_pin]);
    assert_code(&o, exit::ARCHIVE_PIN, "reference archive under another pin");
    assert!(o.stdout.is_empty());
}
