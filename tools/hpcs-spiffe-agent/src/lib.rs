//! `hpcs-spiffe-agent`: a DEVELOPMENT-ONLY SPIFFE Workload API server.
//!
//! It stands in for a SPIRE agent in tests and demos on machines where SPIRE
//! cannot be installed. It serves the JWT-SVID profile of the Workload API
//! on a unix socket, choosing each caller's SPIFFE ID from its uid, and
//! signs JWT-SVIDs with one ES256 key whose JWKS it can also publish for
//! OpenBao. It does no workload attestation beyond the uid and no key
//! rotation: never use it to protect real data.
//!
//! Layers point down: [`config`] (checked settings) and [`key`] (the signing
//! key) know nothing of gRPC; [`jwt`] builds on [`key`]; [`service`] is the
//! gRPC surface over [`jwt`]; [`agent`] wires sockets, files and shutdown.
//! The CLI lives in the binary.

pub mod agent;
pub mod config;
pub mod files;
pub mod http;
pub mod jwt;
pub mod key;
pub mod pb;
pub mod service;

/// Completes once `stop` holds `true` (or its sender is gone).
pub(crate) async fn stop_requested(mut stop: tokio::sync::watch::Receiver<bool>) {
    // The borrow `wait_for` returns is not `Send`; drop it right here.
    let _ = stop.wait_for(|stop| *stop).await;
}
