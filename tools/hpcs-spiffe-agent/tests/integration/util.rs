//! Shared helpers: a per-test directory, the agent as a real child process
//! (ready when it prints `ready`, never after a sleep), raw gRPC and
//! `spiffe` clients, and a minimal HTTP/1.0 client for loopback servers.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hpcs_spiffe_agent::pb::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::transport::Channel;

pub const AGENT: &str = env!("CARGO_BIN_EXE_hpcs-spiffe-agent");
pub const TD: &str = "example.org";
/// Upper bound for anything a test waits for (start-up, exit, health).
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// A temporary directory owned by one test.
pub fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hpcs-spiffe-agent-test.")
        .tempdir()
        .expect("create test directory")
}

/// The uid this test process runs as (the owner of a directory it created),
/// without `unsafe` calls.
pub fn my_uid(dir: &Path) -> u32 {
    std::fs::metadata(dir).expect("stat test dir").uid()
}

/// A running agent; killed and reaped on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts the agent serving on `<dir>/<name>.sock` with `args` and
    /// waits (bounded) for its `ready` line.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Agent {
        let socket = dir.join(format!("{name}.sock"));
        let mut child = Command::new(AGENT)
            .arg("--socket")
            .arg(&socket)
            .args(["--trust-domain", TD])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hpcs-spiffe-agent");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push_str(&(line + "\n"));
            }
        });
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut agent = Agent {
            child,
            socket,
            stderr,
        };
        match rx.recv_timeout(WAIT_LIMIT) {
            Ok(line) if line == "ready" => agent,
            other => {
                let status = agent.wait_exit(Duration::from_secs(2));
                panic!(
                    "agent did not become ready (stdout {other:?}, exit {status:?}); stderr:\n{}",
                    agent.stderr()
                )
            }
        }
    }

    /// `unix://` endpoint URI of the socket.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through kill(1), to avoid `unsafe` FFI) and waits,
    /// bounded, for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit(WAIT_LIMIT)
            .unwrap_or_else(|| panic!("agent ignored SIGTERM; stderr:\n{}", self.stderr()))
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the agent to completion with `args` (for usage errors); returns
/// (exit code, stdout, stderr).
pub fn run_agent(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(AGENT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hpcs-spiffe-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A gRPC client generated from the same proto as the server, over the
/// agent's unix socket, that adds no metadata by itself.
pub async fn raw_client(socket: &Path) -> SpiffeWorkloadApiClient<Channel> {
    let path = socket.to_owned();
    let channel = tonic::transport::Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to agent socket");
    SpiffeWorkloadApiClient::new(channel)
}

/// Wraps `message` in a request carrying the Workload API security header.
pub fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "workload.spiffe.io",
        "true".parse().expect("metadata value"),
    );
    request
}

/// The `spiffe` crate's client for this agent.
pub async fn spiffe_client(agent: &Agent) -> spiffe::WorkloadApiClient {
    spiffe::WorkloadApiClient::connect_to(agent.endpoint())
        .await
        .expect("spiffe client connects")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// An HTTP response: status code and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.0 request to a loopback server (no redirects followed, no
/// path normalisation: `path` goes on the wire exactly as given).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(WAIT_LIMIT))?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(HttpResponse {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    })
}
