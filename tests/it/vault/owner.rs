//! The data owner's side: revoking crypto-shreds, allowed IDs change in
//! Vault only, an existing archive can be registered, owners stay in their
//! own space, and a hijacked identity slot never receives a key.

use std::process::{Command, Stdio};

use hpcs::crypto::{FileSource, SealedArchive};
use hpcs::exit;
use hpcs::keys::vault::slot_role;

use super::harness::*;
use crate::util::bin;

#[test]
fn revoked_key_is_refused_and_destroyed() {
    let Some(site) = Site::new("revoked_key") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A, JOB_B], &[]);
    let agent = site.agent("job-a", JOB_A);
    assert_mounted_and_read(&mount_cat(&site, &agent, &archive, &[]));
    let key_hex = site.genome_key_hex();

    // Without --yes and without a terminal, revoke refuses.
    let o = site
        .pack_user("alice", &["revoke", "alice/genome"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&o, exit::USAGE, "revoke without --yes");
    let o = site
        .pack_user("alice", &["revoke", "--yes"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_ok(&o, "revoke");

    let o = mount_cat(&site, &agent, &archive, &[]);
    let msg = assert_code(&o, exit::KEY_REVOKED, "mount after revoke");
    assert!(
        msg.contains("access to dataset alice/genome was revoked"),
        "{msg}"
    );
    // Crypto-shredding: no record under the dataset holds the key any more.
    let hexkey = key_hex;
    let mut paths = vec!["hpcs/ds/alice/genome".to_string()];
    for k in site
        .bao
        .ok(&["list", "-format=json", "hpcs/ds/alice/genome/"])
        .split('"')
    {
        if k.starts_with("spiffe-") {
            paths.push(format!("hpcs/ds/alice/genome/{k}"));
        }
    }
    assert_eq!(paths.len(), 3, "owner record and two copies: {paths:?}");
    for p in &paths {
        let rec = site.bao.ok(&["read", "-format=json", p]);
        assert!(
            !rec.contains(&hexkey) && !rec.contains("key_hex"),
            "{p} still holds the key: {rec}"
        );
        assert!(rec.contains("\"revoked\": true"), "{p}: {rec}");
    }
}

#[test]
fn allowed_ids_change_in_vault_only() {
    let Some(site) = Site::new("allow_add_remove") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let before = std::fs::read(&archive).unwrap();
    let agent_a = site.agent("job-a", JOB_A);
    let agent_b = site.agent("job-b", JOB_B);
    assert!(release(&site, &agent_b, &archive).is_err());

    let o = site
        .pack_user(
            "alice",
            &["allow", "genome", "--add", JOB_B, "--remove", JOB_A],
        )
        .output()
        .unwrap();
    assert_ok(&o, "allow --add --remove");
    assert!(
        release(&site, &agent_b, &archive).is_ok(),
        "added identity reads"
    );
    let (code, msg) = code_of(release(&site, &agent_a, &archive));
    assert_eq!(code, exit::KEY_REVOKED, "{msg}");
    assert!(msg.contains("access removed"), "{msg}");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        before,
        "the archive was not touched"
    );
}

#[test]
fn an_existing_archive_can_be_registered() {
    let Some(site) = Site::new("register_existing") else {
        return;
    };
    let (id_file, recipient) = crate::util::identity_file(site.dir.path(), "alice.age");
    let archive = site.path("old.hpcs");
    let o = Command::new(bin("hpcs-pack"))
        .arg("pack")
        .arg(&site.src)
        .arg("-o")
        .arg(&archive)
        .args(["-q", "-r", &recipient])
        .output()
        .unwrap();
    assert_ok(&o, "age-only pack");
    let before = std::fs::read(&archive).unwrap();
    let old_header_len = SealedArchive::open(FileSource::open(&archive).unwrap())
        .unwrap()
        .header()
        .header_len as usize;

    let o = site
        .pack_user("alice", &["register", "--allow", JOB_A, "-q"])
        .arg("-i")
        .arg(&id_file)
        .arg(&archive)
        .output()
        .unwrap();
    assert_ok(&o, "register");
    let after = std::fs::read(&archive).unwrap();
    let (r, _) = archive_ref(&archive);
    assert_eq!(
        r.dataset, "alice/old",
        "default dataset name is the file stem"
    );
    let new_header_len = after.len() - (before.len() - old_header_len);
    assert_eq!(
        &after[new_header_len..],
        &before[old_header_len..],
        "data region unchanged"
    );

    let agent = site.agent("job-a", JOB_A);
    let (key, _) = release(&site, &agent, &archive).expect("registered archive releases");
    assert_eq!(read_with(&archive, &key, "sub/big.bin"), vec![7u8; 200_000]);
}

#[test]
fn owners_cannot_touch_each_others_datasets() {
    let Some(site) = Site::new("owner_isolation") else {
        return;
    };
    site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let o = site
        .pack_user("bob", &["allow", "alice/genome", "--add", JOB_B])
        .output()
        .unwrap();
    let err = assert_code(&o, exit::VAULT_DENIED, "bob changes alice's dataset");
    assert!(err.contains("own Vault login name"), "{err}");
    let o = site
        .pack_user("bob", &["revoke", "--yes", "alice/genome"])
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "bob revokes alice's dataset");
    let mut c = site.pack_user("bob", &["pack"]);
    c.arg(&site.src).arg("-o").arg(site.path("evil.hpcs"));
    c.args(["--vault", "--allow", JOB_B, "--dataset", "alice/evil", "-q"]);
    assert_code(
        &c.output().unwrap(),
        exit::VAULT_DENIED,
        "bob registers under alice/",
    );
    // No login at all: a clear login error.
    let o = site
        .pack_as("", &["allow", "alice/genome"])
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_LOGIN, "no token");
}

#[test]
fn a_hijacked_identity_slot_never_receives_keys() {
    let Some(site) = Site::new("slot_hijack") else {
        return;
    };
    // bob creates the slot of alice's job SPIFFE ID, bound to his own job.
    let o = site.bao.cli(&[
        "login",
        "-method=userpass",
        "-token-only",
        "username=bob",
        &format!("password={BOB_PW}"),
    ]);
    assert_ok(&o, "bob login");
    let bob = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let slot = format!("auth/hpcs-jwt/role/{}", slot_role(JOB_A));
    let o = site.bao.cli_as(
        &bob,
        &[
            "write",
            &slot,
            "role_type=jwt",
            "user_claim=sub",
            &format!("bound_subject={JOB_B}"),
            "bound_audiences=hpcs",
            "token_policies=hpcs-workload",
        ],
    );
    assert_ok(&o, "users may create slots");
    let o = site.try_pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let err = assert_code(
        &o,
        exit::VAULT_DENIED,
        "alice registers for a hijacked slot",
    );
    assert!(err.contains("not what hpcs expects"), "{err}");
    let o = site.bao.cli(&["read", &genome_copy(JOB_A)]);
    assert!(
        !o.status.success(),
        "a key copy was written to the hijacked slot"
    );
    // And a correct slot cannot be changed by a user afterwards.
    let slot_c = format!("auth/hpcs-jwt/role/{}", slot_role(JOB_B));
    site.pack_vault("b.hpcs", "b", &[JOB_B], &[]);
    let o = site.bao.cli_as(
        &bob,
        &[
            "write",
            &slot_c,
            "role_type=jwt",
            "user_claim=sub",
            "bound_subject=spiffe://example.org/evil",
            "bound_audiences=hpcs",
            "token_policies=hpcs-workload",
        ],
    );
    assert!(!o.status.success(), "a user rewrote an existing slot");
}
