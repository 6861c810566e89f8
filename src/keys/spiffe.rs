//! Fetching this process's JWT-SVID from the SPIFFE Workload API.
//!
//! The Workload API (a SPIRE agent in production, `hpcs-spiffe-agent` in tests)
//! decides who we are from the socket's peer credentials and hands out a
//! short-lived JWT-SVID for the audience we ask for. We only fetch; Vault is
//! the one that verifies it. The token is a bearer credential: it lives in a
//! [`Secret`] and never reaches a log line.

use std::time::{Duration, Instant};

use spiffe::workload_api::WorkloadApiError;
use spiffe::WorkloadApiClient;

use super::config::Settings;
use super::vault::error::VaultError;
use super::vault::secret::Secret;

/// A JWT-SVID as fetched: the compact token and the SPIFFE ID it names.
pub struct Svid {
    /// The token, to present to Vault once.
    pub token: Secret,
    /// The `sub` claim: this workload's SPIFFE ID.
    pub spiffe_id: String,
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Whether a Workload API failure may go away by itself (agent starting,
/// socket not there yet) or will not (no identity for us, bad request).
fn transient(e: &WorkloadApiError) -> bool {
    use spiffe::transport::TransportError;
    match e {
        WorkloadApiError::Transport(TransportError::Connect(_)) => true,
        WorkloadApiError::Transport(TransportError::Status(s)) => matches!(
            s.code(),
            spiffe::transport::GrpcStatusCode::Unavailable
                | spiffe::transport::GrpcStatusCode::DeadlineExceeded
                | spiffe::transport::GrpcStatusCode::ResourceExhausted
        ),
        WorkloadApiError::EmptyResponse => true,
        _ => false,
    }
}

/// Fetches a JWT-SVID for `settings.audience` from `settings.spiffe_socket`
/// (else `SPIFFE_ENDPOINT_SOCKET`), retrying an unavailable agent within the
/// retry budget. Runs on `rt`.
pub fn fetch_jwt_svid(
    rt: &tokio::runtime::Runtime,
    settings: &Settings,
) -> Result<Svid, VaultError> {
    let endpoint = match &settings.spiffe_socket {
        Some(s) => s.clone(),
        None => match std::env::var("SPIFFE_ENDPOINT_SOCKET") {
            Ok(s) if !s.is_empty() => s,
            _ => {
                return Err(VaultError::SpiffeUnavailable(
                    "SPIFFE_ENDPOINT_SOCKET is not set: no Workload API to ask for an identity (is the SPIRE agent running on this node, and does the job see its socket?)".into(),
                ))
            }
        },
    };
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let res = rt.block_on(async {
            let client = WorkloadApiClient::connect_to(&endpoint).await?;
            client
                .fetch_jwt_svid([settings.audience.as_str()], None)
                .await
        });
        match res {
            Ok(svid) => {
                return Ok(Svid {
                    token: Secret::new(svid.token().to_string()),
                    spiffe_id: svid.spiffe_id().to_string(),
                })
            }
            Err(WorkloadApiError::Endpoint(e)) => {
                return Err(VaultError::Config(format!(
                    "invalid Workload API endpoint {endpoint:?}: {e} (expected unix:///path/to/agent.sock)"
                )))
            }
            Err(e) if transient(&e) && start.elapsed() + delay <= settings.retry => {
                settings.notify(&format!(
                    "SPIFFE Workload API at {endpoint} unavailable ({e}); retrying in {:.1}s",
                    delay.as_secs_f64()
                ));
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(4));
            }
            Err(e) if transient(&e) => {
                return Err(VaultError::SpiffeUnavailable(format!(
                    "the SPIFFE Workload API at {endpoint} did not answer within {}s ({e}); is the SPIRE agent running?",
                    settings.retry.as_secs()
                )))
            }
            Err(e @ (WorkloadApiError::NoIdentityIssued | WorkloadApiError::PermissionDenied(_))) => {
                return Err(VaultError::SpiffeUnavailable(format!(
                    "the SPIFFE Workload API at {endpoint} gave this process no identity ({e}); the job needs a registration entry that matches it (uid {})",
                    // SAFETY: getuid has no preconditions and cannot fail.
                    unsafe { libc::getuid() }
                )))
            }
            Err(e) => {
                return Err(VaultError::SpiffeUnavailable(format!(
                    "the SPIFFE Workload API at {endpoint} failed: {e}"
                )))
            }
        }
    }
}
