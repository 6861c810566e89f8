//! The administrator's side: `vault-setup` is idempotent and checks its
//! input, and JWKS-URL trust works as well as static public keys.

use hpcs::exit;

use super::harness::*;

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
    let Some(site) = Site::bare("jwks_url") else {
        return;
    };
    let port = free_port();
    let agent = Agent::start(
        site.dir.path(),
        "job-a",
        JOB_A,
        &["--jwks-listen", &format!("127.0.0.1:{port}")],
    );
    site.set_up(&["--jwks-url", &format!("http://127.0.0.1:{port}/keys")]);
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let (key, _) = release(&site, &agent, &archive).expect("JWKS-URL trust releases");
    assert_reads(&archive, &key);
}
