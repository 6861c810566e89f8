//! The administrator's side: `vault-setup` is idempotent and checks its
//! input, and JWKS-URL trust works as well as static public keys.

use hpcs::exit;

use super::harness::*;
use crate::util::tmpdir;

#[test]
fn setup_is_idempotent_and_checks_its_input() {
    let Some(site) = Site::new("setup_idempotent") else {
        return;
    };
    let o = site
        .pack_as("root", &["vault-setup", "--jwt-pubkey"])
        .arg(site.path("jwt-pub.pem"))
        .output()
        .unwrap();
    assert_ok(&o, "second vault-setup");
    assert!(String::from_utf8_lossy(&o.stdout).contains("already there"));
    let o = site.pack_as("root", &["vault-setup"]).output().unwrap();
    assert_code(&o, exit::USAGE, "vault-setup without trust");
    let o = site
        .pack_as(
            "root",
            &["vault-setup", "--vault-mount", "secret", "--jwt-pubkey"],
        )
        .arg(site.path("jwt-pub.pem"))
        .output()
        .unwrap();
    let err = assert_code(&o, exit::VAULT_CONFIG, "KV v2 mount refused");
    assert!(err.contains("KV version 1"), "{err}");
    let o = site
        .pack_as("alice-has-no-admin-token", &["vault-setup", "--jwt-pubkey"])
        .arg(site.path("jwt-pub.pem"))
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_DENIED, "setup with a bad token");
}

#[test]
fn the_jwks_url_trust_works_too() {
    let Some(bao_path) = bao_bin("jwks_url") else {
        return;
    };
    let dir = tmpdir();
    let bao = Bao::start(&bao_path, dir.path());
    let port = free_port();
    let agent = Agent::start(
        dir.path(),
        "job-a",
        JOB_A,
        &["--jwks-listen", &format!("127.0.0.1:{port}")],
    );
    let site = Site {
        src: dir.path().join("src"),
        dir,
        bao,
    };
    let o = site
        .pack_as(
            "root",
            &[
                "vault-setup",
                "--enable-userpass",
                "--jwks-url",
                &format!("http://127.0.0.1:{port}/keys"),
            ],
        )
        .output()
        .unwrap();
    assert_ok(&o, "vault-setup --jwks-url");
    site.bao.ok(&[
        "write",
        "auth/userpass/users/alice",
        &format!("password={ALICE_PW}"),
        "token_policies=hpcs-user",
    ]);
    std::fs::write(site.path("alice.pw"), ALICE_PW).unwrap();
    std::fs::create_dir_all(&site.src).unwrap();
    std::fs::write(site.src.join("reads.txt"), b"ACGT sample reads\n").unwrap();
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let (key, _) = release(&site, &agent, &archive).expect("JWKS-URL trust releases");
    assert_eq!(
        read_with(&archive, &key, "reads.txt"),
        b"ACGT sample reads\n"
    );
}
