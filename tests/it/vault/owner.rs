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
        .pack_user("alice", &["revoke", &site.alice("genome")])
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
        msg.contains(&format!(
            "access to dataset {} was revoked",
            site.alice("genome")
        )),
        "{msg}"
    );
    // Crypto-shredding: no record under the dataset holds the key any more.
    let hexkey = key_hex;
    let record = format!("hpcs/ds/{}", site.alice("genome"));
    let mut paths = vec![record.clone()];
    for k in site
        .bao
        .ok(&["list", "-format=json", &format!("{record}/")])
        .split('"')
    {
        if k.starts_with("spiffe-") {
            paths.push(format!("{record}/{k}"));
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
        r.dataset,
        site.alice("old"),
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
    let genome = site.alice("genome");
    let o = site
        .pack_user("bob", &["allow", &genome, "--add", JOB_B])
        .output()
        .unwrap();
    let err = assert_code(&o, exit::VAULT_DENIED, "bob changes alice's dataset");
    assert!(err.contains("own Vault entity id"), "{err}");
    let o = site
        .pack_user("bob", &["revoke", "--yes", &genome])
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "bob revokes alice's dataset");
    let mut c = site.pack_user("bob", &["pack"]);
    c.arg(&site.src).arg("-o").arg(site.path("evil.hpcs"));
    c.args([
        "--vault",
        "--allow",
        JOB_B,
        "--dataset",
        &site.alice("evil"),
        "-q",
    ]);
    assert_code(
        &c.output().unwrap(),
        exit::VAULT_DENIED,
        "bob registers under alice/",
    );
    // No login at all: a clear login error.
    let o = site.pack_as("", &["allow", &genome]).output().unwrap();
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
    let o = site.bao.cli(&["read", &site.genome_copy(JOB_A)]);
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

/// "alice" on two userpass mounts is two data owners: owner namespaces are
/// keyed by Vault entity id, not by the alias name, so neither can replace,
/// change or revoke the other's dataset, and the same short name lands in two
/// different spaces.
#[test]
fn the_same_name_on_two_auth_mounts_is_two_owners() {
    let Some((site, archive, agent)) = Site::with_genome("alias_collision") else {
        return;
    };
    const PW2: &str = "the-other-alice";
    site.bao
        .ok(&["auth", "enable", "-path=userpass2", "userpass"]);
    site.bao.ok(&[
        "write",
        "auth/userpass2/users/alice",
        &format!("password={PW2}"),
        "token_policies=hpcs-user",
    ]);
    std::fs::write(site.path("alice2.pw"), format!("{PW2}\n")).unwrap();
    let other_alice = |args: &[&str]| {
        let mut c = site.pack_as("", args);
        c.args([
            "--vault-login",
            "userpass",
            "--vault-login-mount",
            "userpass2",
            "--vault-user",
            "alice",
            "--vault-password-file",
        ])
        .arg(site.path("alice2.pw"));
        c
    };
    let first = site.entity_of("userpass", "alice", ALICE_PW);
    let second = site.entity_of("userpass2", "alice", PW2);
    assert_ne!(first, second, "two mounts, two entities");
    let genome = format!("{first}/genome");
    let key_before = site.genome_key_hex();

    // The second alice cannot replace, change or revoke the first's dataset.
    let mut c = other_alice(&["pack"]);
    c.arg(&site.src).arg("-o").arg(site.path("swap.hpcs"));
    c.args([
        "--vault",
        "--replace",
        "--allow",
        JOB_B,
        "--dataset",
        &genome,
        "-q",
    ]);
    let err = assert_code(&c.output().unwrap(), exit::VAULT_DENIED, "pack --replace");
    assert!(err.contains("own Vault entity id"), "{err}");
    let o = other_alice(&["allow", &genome, "--add", JOB_B])
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "allow on the other's dataset");
    let o = other_alice(&["revoke", "--yes", &genome]).output().unwrap();
    assert_code(&o, exit::VAULT_DENIED, "revoke the other's dataset");

    // The same short name is the second alice's own dataset, elsewhere.
    let mut c = other_alice(&["pack"]);
    c.arg(&site.src).arg("-o").arg(site.path("mine.hpcs"));
    c.args(["--vault", "--allow", JOB_B, "--dataset", "genome", "-q"]);
    assert_ok(
        &c.output().unwrap(),
        "the second alice packs her own genome",
    );
    let (r, _) = archive_ref(&site.path("mine.hpcs"));
    assert_eq!(r.dataset, format!("{second}/genome"));
    // ...which the first alice cannot revoke either.
    let o = site
        .pack_user("alice", &["revoke", "--yes", &r.dataset])
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "first alice revokes the second's");

    // The first alice's dataset is untouched: same key, still released to JOB_A.
    assert_eq!(site.genome_key_hex(), key_before);
    assert_mounted_and_read(&mount_cat(&site, &agent, &archive, &[]));
}
