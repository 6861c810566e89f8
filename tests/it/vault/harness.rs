//! The Vault test harness: a bootstrapped site ([`Site`]: OpenBao set up by
//! `hpcs-pack vault-setup`, users alice and bob, a sample tree), the commands
//! run against it, and the checks the cases share. The servers themselves
//! are in `servers`; this module re-exports them for the cases.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hpcs::crypto::{DataKey, FileSource, SealedArchive};
use hpcs::exit;
use hpcs::keys::config::{Layer, ALLOW_HTTP_ENV};
use hpcs::keys::vault::{self, VaultError, VaultRef};

pub(super) use super::servers::{bao_bin, free_port, Agent, Bao};
use crate::util::{bin, tmpdir};

pub(super) const TD: &str = "example.org";
pub(super) const JOB_A: &str = "spiffe://example.org/slurm/alice/genome-analysis";
pub(super) const JOB_B: &str = "spiffe://example.org/slurm/bob/other-job";
pub(super) const ALICE_PW: &str = "alice-test-password";
pub(super) const BOB_PW: &str = "bob-test-password";
/// The content of `reads.txt` in the sample tree.
pub(super) const READS: &[u8] = b"ACGT sample reads\n";

/// A bootstrapped site: OpenBao, hpcs policies, users alice and bob, and a
/// sample tree.
pub(super) struct Site {
    pub(super) dir: tempfile::TempDir,
    pub(super) bao: Bao,
    pub(super) src: PathBuf,
}

impl Site {
    /// A site whose JWT auth mount trusts the dev agent's public key file;
    /// `None` (SKIP) without `bao`.
    pub(super) fn new(test: &str) -> Option<Site> {
        let site = Site::bare(test)?;
        // The agent's key must exist before Vault can trust it.
        drop(Agent::start(site.dir.path(), "keygen", JOB_A, &[]));
        let pem = site.path("jwt-pub.pem");
        site.set_up(&["--jwt-pubkey", pem.to_str().unwrap()]);
        Some(site)
    }

    /// [`Site::new`] with `genome.hpcs` packed as alice's dataset genome for
    /// `JOB_A`, and the agent of that job.
    pub(super) fn with_genome(test: &str) -> Option<(Site, PathBuf, Agent)> {
        let site = Site::new(test)?;
        let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
        let agent = site.agent("job-a", JOB_A);
        Some((site, archive, agent))
    }

    /// OpenBao running, nothing set up yet; `None` (SKIP) without `bao`.
    pub(super) fn bare(test: &str) -> Option<Site> {
        let bao_path = bao_bin(test)?;
        let dir = tmpdir();
        let bao = Bao::start(&bao_path, dir.path());
        Some(Site {
            src: dir.path().join("src"),
            dir,
            bao,
        })
    }

    /// `vault-setup --enable-userpass` trusting the SVIDs as `trust` says,
    /// users alice and bob (password files `<user>.pw`), and the sample tree
    /// (`reads.txt`, `sub/big.bin`).
    pub(super) fn set_up(&self, trust: &[&str]) {
        let o = self
            .pack_as("root", &["vault-setup", "--enable-userpass"])
            .args(trust)
            .output()
            .unwrap();
        assert_ok(&o, "vault-setup");
        // bob's password file has no final newline: both forms are read.
        for (u, pw, nl) in [("alice", ALICE_PW, "\n"), ("bob", BOB_PW, "")] {
            self.bao.ok(&[
                "write",
                &format!("auth/userpass/users/{u}"),
                &format!("password={pw}"),
                "token_policies=hpcs-user",
            ]);
            std::fs::write(self.path(&format!("{u}.pw")), format!("{pw}{nl}")).unwrap();
        }
        std::fs::create_dir_all(self.src.join("sub")).unwrap();
        std::fs::write(self.src.join("reads.txt"), READS).unwrap();
        std::fs::write(self.src.join("sub/big.bin"), vec![7u8; 200_000]).unwrap();
    }

    /// The dev agent giving this process the identity `id`.
    pub(super) fn agent(&self, name: &str, id: &str) -> Agent {
        Agent::start(self.dir.path(), name, id, &[])
    }

    /// The Vault entity id (the owner part of their datasets) of the user who
    /// logs in as `user` with `password` on userpass mount `mount`.
    pub(super) fn entity_of(&self, mount: &str, user: &str, password: &str) -> String {
        let out = self.bao.ok(&[
            "write",
            "-format=json",
            &format!("auth/{mount}/login/{user}"),
            &format!("password={password}"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = v["auth"]["entity_id"].as_str().unwrap().to_string();
        assert!(!id.is_empty(), "{out}");
        id
    }

    /// Dataset `name` of alice (userpass): `<alice's entity id>/name`.
    pub(super) fn alice(&self, name: &str) -> String {
        format!("{}/{name}", self.entity_of("userpass", "alice", ALICE_PW))
    }

    /// KV path of `id`'s copy of alice's genome key.
    pub(super) fn genome_copy(&self, id: &str) -> String {
        format!("hpcs/ds/{}/{}", self.alice("genome"), vault::slot_role(id))
    }

    /// The data key in hex as alice's genome owner record holds it.
    pub(super) fn genome_key_hex(&self) -> String {
        let rec = format!("hpcs/ds/{}", self.alice("genome"));
        let out = self.bao.ok(&["read", "-field=key_hex", &rec]);
        out.trim().to_string()
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// hpcs-pack with a clean environment: no ambient token or config unless
    /// `token` is given (then as BAO_TOKEN).
    pub(super) fn pack_as(&self, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin("hpcs-pack"));
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("BAO_ADDR", &self.bao.addr)
            .env(ALLOW_HTTP_ENV, "1");
        if !token.is_empty() {
            c.env("BAO_TOKEN", token);
        }
        c.args(args);
        c
    }

    /// hpcs-pack logged in as a userpass user.
    pub(super) fn pack_user(&self, user: &str, args: &[&str]) -> Command {
        let mut c = self.pack_as("", args);
        c.args([
            "--vault-login",
            "userpass",
            "--vault-user",
            user,
            "--vault-password-file",
        ])
        .arg(self.path(&format!("{user}.pw")));
        c
    }

    /// `pack --vault` as alice; returns the archive path.
    pub(super) fn pack_vault(
        &self,
        out: &str,
        dataset: &str,
        allow: &[&str],
        extra: &[&str],
    ) -> PathBuf {
        let o = self.try_pack_vault(out, dataset, allow, extra);
        assert_ok(&o, "pack --vault");
        self.path(out)
    }

    pub(super) fn try_pack_vault(
        &self,
        out: &str,
        dataset: &str,
        allow: &[&str],
        extra: &[&str],
    ) -> Output {
        let mut c = self.pack_user("alice", &["pack"]);
        c.arg(&self.src).arg("-o").arg(self.path(out));
        c.args(["--vault", "--dataset", dataset, "-q"]);
        for a in allow {
            c.args(["--allow", a]);
        }
        c.args(extra);
        c.output().unwrap()
    }

    /// The job's settings: this site's Vault, `agent`'s socket, the archive's stanza.
    pub(super) fn job(
        &self,
        agent: &Agent,
        vref: &VaultRef,
        audience: Option<&str>,
        retry: u64,
    ) -> hpcs::keys::config::Settings {
        self.job_at(&self.bao.addr, agent, vref, audience, retry)
    }

    pub(super) fn job_at(
        &self,
        addr: &str,
        agent: &Agent,
        vref: &VaultRef,
        audience: Option<&str>,
        retry: u64,
    ) -> hpcs::keys::config::Settings {
        Layer {
            addr: Some(addr.into()),
            spiffe_socket: Some(agent.endpoint.clone()),
            audience: audience.map(str::to_string),
            retry_secs: Some(retry),
            // The test OpenBao is a -dev server on plain http (loopback).
            allow_insecure_http: Some(true),
            ..Layer::default()
        }
        .resolve(Some(vref))
        .unwrap()
    }
}

pub(super) fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

pub(super) fn assert_code(o: &Output, code: u8, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code.into()), "{what}: {err}");
    err
}

/// The archive's Vault stanza and id.
pub(super) fn archive_ref(path: &Path) -> (VaultRef, [u8; 32]) {
    let sealed = SealedArchive::open(FileSource::open(path).unwrap()).unwrap();
    let h = sealed.header();
    let r = VaultRef::find(&h.stanzas).expect("a Vault stanza").unwrap();
    (r, h.archive_id)
}

/// Unlocks `path` with `key` (checking the header's key commitment) and
/// returns the content of `file`.
pub(super) fn read_with(path: &Path, key: &DataKey, file: &str) -> Vec<u8> {
    let sealed = SealedArchive::open(FileSource::open(path).unwrap()).unwrap();
    let archive = sealed
        .unlock(key)
        .expect("the released key opens the archive");
    let id = archive.tree().resolve(file).expect("file in archive");
    let mut out = Vec::new();
    hpcs::extract::cat(&archive, id, &mut out).unwrap();
    out
}

/// Asserts that `key` opens `archive` and its `reads.txt` is the sample's.
pub(super) fn assert_reads(archive: &Path, key: &DataKey) {
    assert_eq!(read_with(archive, key, "reads.txt"), READS);
}

/// Releases the key as a job of `agent` would.
pub(super) fn release(
    site: &Site,
    agent: &Agent,
    archive: &Path,
) -> Result<(DataKey, vault::Released), VaultError> {
    let (r, id) = archive_ref(archive);
    vault::release_key_with(&site.job(agent, &r, None, 5), &r, &id)
}

pub(super) fn code_of(r: Result<(DataKey, vault::Released), VaultError>) -> (u8, String) {
    match r {
        Ok(_) => panic!("the key was released but should not have been"),
        Err(e) => (exit::for_vault(&e), e.to_string()),
    }
}

/// hpcs-mount in exec mode as a job of `agent` (Workload API found through
/// SPIFFE_ENDPOINT_SOCKET, Vault through BAO_ADDR): `cat MNT/<file>`.
pub(super) fn mount_cmd(
    site: &Site,
    agent: &Agent,
    archive: &Path,
    file: &str,
    extra: &[&str],
) -> Command {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mnt = site.path(&format!(
        "mnt-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&mnt).unwrap();
    let mut c = Command::new(bin("hpcs-mount"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", site.dir.path())
        .env("XDG_CONFIG_HOME", site.path("xdg"))
        .env("SPIFFE_ENDPOINT_SOCKET", &agent.endpoint)
        .env("BAO_ADDR", &site.bao.addr)
        .env(ALLOW_HTTP_ENV, "1")
        .arg("-v")
        .args(extra)
        .arg(archive)
        .arg(&mnt)
        .arg("--")
        .arg("cat")
        .arg(mnt.join(file));
    c
}

pub(super) fn mount_cat(site: &Site, agent: &Agent, archive: &Path, extra: &[&str]) -> Output {
    mount_cmd(site, agent, archive, "reads.txt", extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts the mount worked and the job read the file through it.
pub(super) fn assert_mounted_and_read(o: &Output) {
    assert_ok(o, "hpcs-mount with the key from Vault");
    assert_eq!(o.stdout, READS);
}
