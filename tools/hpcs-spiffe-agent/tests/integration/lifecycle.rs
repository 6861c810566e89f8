//! The agent as a process: usage errors and exit codes, the development
//! warning, published files (key, JWKS, PEM, ready file), the JWKS HTTP
//! endpoint, stale and live sockets, and SIGTERM.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hpcs_spiffe_agent::pb::JwtBundlesRequest;

use crate::util::{self, http, raw_client, run_agent, with_header, Agent, TD};

#[test]
fn bad_usage_exits_2_with_one_line_message() {
    let dir = util::test_dir();
    let sock = dir.path().join("a.sock");
    let sock = sock.to_str().expect("utf-8 path");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--socket", sock, "--trust-domain", "spiffe://example.org"],
            "--trust-domain",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--map",
                "0=spiffe://other.org/a",
            ],
            "trust domain",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--map",
                "alice=spiffe://example.org/a",
            ],
            "numeric uid",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--map",
                "0=spiffe://example.org/a",
                "--map",
                "0=spiffe://example.org/b",
            ],
            "twice",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--default-id",
                "spiffe://example.org",
            ],
            "path",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--default-id",
                "spiffe://example.org/a/../b",
            ],
            "--default-id",
        ),
        (
            &["--socket", sock, "--trust-domain", TD, "--ttl", "0"],
            "--ttl",
        ),
        (
            &[
                "--socket",
                sock,
                "--trust-domain",
                TD,
                "--jwks-listen",
                "0.0.0.0:8200",
            ],
            "loopback",
        ),
    ];
    for (args, needle) in cases {
        let (code, stdout, stderr) = run_agent(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stdout.is_empty(),
            "{args:?}: nothing on stdout, got {stdout:?}"
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line: {stderr}");
        assert!(errors[0].contains(needle), "{args:?}: {stderr}");
        assert!(
            !Path::new(sock).exists(),
            "{args:?}: no socket on bad usage"
        );
    }
    // Malformed flags are clap's usage errors: also exit 2.
    let (code, _, _) = run_agent(&["--socket", sock, "--trust-domain", TD, "--ttl", "soon"]);
    assert_eq!(code, Some(2));
    let (code, _, _) = run_agent(&["--trust-domain", TD]);
    assert_eq!(code, Some(2));
}

#[test]
fn help_documents_every_flag_and_the_warning() {
    let (code, stdout, _) = run_agent(&["--help"]);
    assert_eq!(code, Some(0));
    let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("NOT FOR PRODUCTION"), "{stdout}");
    for flag in [
        "--socket",
        "--trust-domain",
        "--map",
        "--default-id",
        "--ttl",
        "--backdate",
        "--key-file",
        "--jwks-out",
        "--jwks-pem-out",
        "--jwks-listen",
        "--ready-file",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_files_http_jwks_and_restart_with_the_same_key() {
    let dir = util::test_dir();
    let d = dir.path();
    let key = d.join("agent.key");
    let jwks = d.join("jwks.json");
    let pem = d.join("jwks.pem");
    let ready = d.join("ready");
    let port = util::free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--default-id",
        "spiffe://example.org/a",
        "--key-file",
        key.to_str().expect("utf-8"),
        "--jwks-out",
        jwks.to_str().expect("utf-8"),
        "--jwks-pem-out",
        pem.to_str().expect("utf-8"),
        "--jwks-listen",
        &listen,
        "--ready-file",
        ready.to_str().expect("utf-8"),
    ];
    let mut agent = Agent::start(d, "agent", &args);
    assert!(
        agent.stderr().contains("development and test use only"),
        "start-up warning: {}",
        agent.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(&ready).expect("ready file"),
        "ready\n"
    );
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
    let key_bytes = std::fs::read(&key).expect("key");
    assert!(
        !agent
            .stderr()
            .contains(&String::from_utf8_lossy(&key_bytes)[30..80]),
        "no key material in the log"
    );
    let mode = std::fs::metadata(&agent.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777, "any local user may connect");

    // The JWKS file, the HTTP endpoint and FetchJWTBundles agree.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jwks).expect("jwks")).expect("json");
    let addr = listen.parse().expect("addr");
    let served = http(addr, "GET", "/keys", None, None).expect("GET /keys");
    assert_eq!(served.status, 200);
    assert!(served.headers.contains("application/json"));
    assert_eq!(served.json(), file);
    assert_eq!(
        http(addr, "GET", "/other", None, None).expect("GET").status,
        404
    );
    assert_eq!(
        http(addr, "POST", "/keys", None, Some("{}"))
            .expect("POST")
            .status,
        405
    );
    let mut raw = raw_client(&agent.socket).await;
    let mut stream = raw
        .fetch_jwt_bundles(with_header(JwtBundlesRequest {}))
        .await
        .expect("bundles")
        .into_inner();
    let message = stream
        .message()
        .await
        .expect("message")
        .expect("one bundle set");
    let bundle = message
        .bundles
        .get("spiffe://example.org")
        .expect("keyed by trust domain ID");
    let streamed: serde_json::Value = serde_json::from_slice(bundle).expect("json");
    assert_eq!(streamed, file);
    let kid = file["keys"][0]["kid"].as_str().expect("kid").to_owned();
    assert_eq!(file["keys"][0]["use"], "jwt-svid");
    let pem_text = std::fs::read_to_string(&pem).expect("pem");
    assert!(pem_text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    drop(stream);

    let status = tokio::task::block_in_place(|| agent.terminate());
    assert_eq!(status.code(), Some(0));
    assert!(!agent.socket.exists(), "socket removed");
    assert!(!ready.exists(), "ready file removed at exit");

    // A restart reuses the key: same kid, same public key.
    let agent = Agent::start(d, "agent", &args);
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&jwks).expect("jwks")).expect("json");
    assert_eq!(again["keys"][0]["kid"], kid.as_str());
    assert_eq!(std::fs::read_to_string(&pem).expect("pem"), pem_text);
    assert!(agent.stderr().contains("loaded"), "{}", agent.stderr());
}

#[test]
fn stale_socket_is_replaced_but_live_socket_and_other_files_are_not() {
    let dir = util::test_dir();
    let d = dir.path();
    // A socket file nobody listens on (the listener is closed, the file stays).
    drop(std::os::unix::net::UnixListener::bind(d.join("agent.sock")).expect("bind"));
    let agent = Agent::start(d, "agent", &["--default-id", "spiffe://example.org/a"]);

    let sock = agent.socket.to_str().expect("utf-8").to_owned();
    let (code, stdout, stderr) = run_agent(&[
        "--socket",
        &sock,
        "--trust-domain",
        TD,
        "--default-id",
        "spiffe://example.org/a",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("already serving"), "{stderr}");
    assert!(
        agent.socket.exists(),
        "the live agent's socket is untouched"
    );

    let file = d.join("not-a-socket");
    std::fs::write(&file, b"data").expect("write");
    let (code, _, stderr) = run_agent(&[
        "--socket",
        file.to_str().expect("utf-8"),
        "--trust-domain",
        TD,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&file).expect("still there"), b"data");
}
