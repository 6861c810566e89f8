//! Vault unavailable: refused connections and a sealed Vault (503) are
//! retried until Vault answers, and given up after the retry budget.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use hpcs::exit;
use hpcs::keys::vault;

use super::harness::*;

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
    let Some((site, archive, agent)) = Site::with_genome("unreachable_then_reachable") else {
        return;
    };

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
    assert_eq!(o.stdout, READS);
}

#[test]
fn sealed_vault_503_is_retried_until_unsealed() {
    let Some((site, archive, agent)) = Site::with_genome("sealed_then_unsealed") else {
        return;
    };
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
    assert_reads(&archive, &key);
}

#[test]
fn unreachable_vault_gives_up_after_the_retry_budget() {
    let Some((site, archive, agent)) = Site::with_genome("unreachable_gives_up") else {
        return;
    };
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

/// Plain http:// is refused before any request unless the development switch
/// is set: whoever holds the port would receive the JWT-SVID (or the token).
#[test]
fn plain_http_is_refused_without_the_development_switch() {
    let Some((site, archive, agent)) = Site::with_genome("plain_http_refused") else {
        return;
    };
    let audit_before = site.bao.audit_entries().len();
    let o = mount_cmd(&site, &agent, &archive, "reads.txt", &[])
        .env_remove(hpcs::keys::config::ALLOW_HTTP_ENV)
        .output()
        .unwrap();
    let err = assert_code(&o, exit::VAULT_CONFIG, "hpcs-mount over http");
    assert!(
        err.contains("refusing plain http") && err.contains("HPCS_VAULT_ALLOW_HTTP=1"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing was mounted or read");
    let o = site
        .pack_user("alice", &["pack"])
        .arg(&site.src)
        .arg("-o")
        .arg(site.path("http.hpcs"))
        .args(["--vault", "--dataset", "http", "-q", "--allow", JOB_A])
        .env_remove(hpcs::keys::config::ALLOW_HTTP_ENV)
        .output()
        .unwrap();
    assert_code(&o, exit::VAULT_CONFIG, "hpcs-pack over http");
    assert!(!site.path("http.hpcs").exists());
    assert_eq!(
        site.bao.audit_entries().len(),
        audit_before,
        "no request reached Vault"
    );
}
