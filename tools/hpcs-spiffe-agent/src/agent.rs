//! Start-up, serving and shutdown of the agent.
//!
//! Order matters for the readiness contract: the key is loaded, the JWKS
//! files are published, the Workload API socket is bound (and the JWKS HTTP
//! listener, if any), and only then is the ready file written and `on_ready`
//! called. At shutdown the open bundle streams are ended, the server gets a
//! short grace period, and the socket (if still ours) and ready file are
//! removed.

use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::files::{self, BoundSocket, SocketPathError};
use crate::jwt::Issuer;
use crate::key::{KeyError, KeyOrigin, SigningKey};
use crate::pb::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use crate::service::WorkloadApi;

/// How long in-flight requests may take to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runtime failures (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Socket(#[from] SocketPathError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--jwks-listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> AgentError + 'a {
    move |source| AgentError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Runs the agent until `stop` completes (normally SIGTERM/SIGINT).
/// `on_ready` is called once the socket accepts connections.
pub async fn run(
    config: Config,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), AgentError> {
    let (key, origin) = match &config.key_file {
        Some(path) => SigningKey::load_or_create(path)?,
        None => (SigningKey::generate()?, KeyOrigin::Ephemeral),
    };
    let origin = match origin {
        KeyOrigin::Ephemeral => "in memory only".to_owned(),
        KeyOrigin::Created => format!("created {}", display_opt(config.key_file.as_deref())),
        KeyOrigin::Loaded => format!("loaded {}", display_opt(config.key_file.as_deref())),
    };
    eprintln!(
        "hpcs-spiffe-agent: ES256 signing key kid={} ({origin})",
        key.kid()
    );
    let pem = key.public_key_pem()?;
    let issuer = Arc::new(Issuer::new(
        Arc::new(key),
        config.trust_domain.clone(),
        config.ttl_secs,
        config.backdate_secs,
    ));
    let jwks = issuer.jwks();
    if let Some(path) = &config.jwks_out {
        files::write_atomic(path, &jwks, 0o644).map_err(io_error("--jwks-out", path))?;
    }
    if let Some(path) = &config.jwks_pem_out {
        files::write_atomic(path, pem.as_bytes(), 0o644)
            .map_err(io_error("--jwks-pem-out", path))?;
    }

    files::clear_stale_socket(&config.socket)?;
    let listener =
        UnixListener::bind(&config.socket).map_err(io_error("--socket", &config.socket))?;
    let bound =
        BoundSocket::record(&config.socket).map_err(io_error("--socket", &config.socket))?;

    let result = serve(&config, issuer, jwks, listener, stop, on_ready).await;

    let mut cleanup = bound
        .remove()
        .map_err(io_error("removing socket", &config.socket));
    if let Some(path) = &config.ready_file {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                cleanup = cleanup.and(Err(io_error("removing --ready-file", path)(e)));
            }
            _ => {}
        }
    }
    result.and(cleanup)
}

async fn serve(
    config: &Config,
    issuer: Arc<Issuer>,
    jwks: Vec<u8>,
    listener: UnixListener,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), AgentError> {
    // Any local process may connect; who it is comes from SO_PEERCRED.
    std::fs::set_permissions(&config.socket, std::fs::Permissions::from_mode(0o777))
        .map_err(io_error("--socket", &config.socket))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let http = match config.jwks_listen {
        Some(addr) => {
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Listen { addr, source })?;
            let local = tcp
                .local_addr()
                .map_err(|source| AgentError::Listen { addr, source })?;
            eprintln!(
                "hpcs-spiffe-agent: serving the JWKS at http://{local}{}",
                crate::http::JWKS_PATH
            );
            Some(tokio::spawn(crate::http::serve(
                tcp,
                Arc::new(jwks),
                stop_rx.clone(),
            )))
        }
        None => None,
    };

    let api = WorkloadApi::new(issuer, Arc::new(config.identities.clone()), stop_rx.clone());
    let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
        SpiffeWorkloadApiServer::new(api),
        UnixListenerStream::new(listener),
        crate::stop_requested(stop_rx),
    );
    tokio::pin!(server);

    if let Some(path) = &config.ready_file {
        files::write_atomic(path, b"ready\n", 0o644).map_err(io_error("--ready-file", path))?;
    }
    eprintln!(
        "hpcs-spiffe-agent: Workload API listening on unix://{} (trust domain {})",
        config.socket.display(),
        config.trust_domain
    );
    on_ready();

    let result = tokio::select! {
        result = &mut server => result.map_err(AgentError::from),
        () = stop => {
            eprintln!("hpcs-spiffe-agent: stopping");
            let _ = stop_tx.send(true);
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(result) => result.map_err(AgentError::from),
                // Requests still running after the grace period are dropped.
                Err(_) => Ok(()),
            }
        }
    };
    let _ = stop_tx.send(true);
    if let Some(task) = http {
        let _ = task.await;
    }
    result
}

fn display_opt(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}
