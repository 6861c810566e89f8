//! Command-line flags of `hpcs-spiffe-agent` and their conversion into a
//! checked [`Config`].
//!
//! The flag spellings are a contract used by tests, scripts and docs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use hpcs_spiffe_agent::config::{self, Config, ConfigError, IdentityMap, DEFAULT_TTL_SECS};

/// DEVELOPMENT-ONLY SPIFFE Workload API server (JWT-SVIDs) for hpcs tests and
/// demos. NOT FOR PRODUCTION: identities are chosen by uid alone and the
/// signing key never rotates. In production, run a SPIRE agent instead.
///
/// Prints `ready` on stdout once the socket accepts connections. Exit codes:
/// 0 after SIGTERM/SIGINT, 1 on a runtime failure, 2 on bad usage.
#[derive(Debug, Parser)]
#[command(name = "hpcs-spiffe-agent", version, max_term_width = 100)]
pub struct Cli {
    /// Unix socket to serve the Workload API on.
    ///
    /// Workloads find it through SPIFFE_ENDPOINT_SOCKET=unix://<PATH>. A
    /// stale socket file left by a dead agent is removed; a socket another
    /// process still serves on, or a path that is not a socket, is an error.
    /// The socket is made connectable by every local user (their identity
    /// comes from the peer credentials) and removed at exit.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,

    /// Trust domain name of every issued SVID, e.g. `example.org`.
    ///
    /// The JWT bundle is published under the trust domain's SPIFFE ID
    /// (`spiffe://<TD>`), as SPIRE does.
    #[arg(long, value_name = "TD")]
    pub trust_domain: String,

    /// Give callers running as UID the identity SPIFFE_ID (repeatable).
    ///
    /// The uid is read from the unix socket's peer credentials
    /// (SO_PEERCRED). SPIFFE_ID must be `spiffe://<TD>/<path>` in canonical
    /// form with the agent's trust domain. A uid may be mapped once.
    #[arg(long = "map", value_name = "UID=SPIFFE_ID")]
    pub map: Vec<String>,

    /// Identity for callers whose uid has no --map entry.
    ///
    /// Without it, such callers get PermissionDenied on every RPC.
    #[arg(long, value_name = "SPIFFE_ID")]
    pub default_id: Option<String>,

    /// Lifetime of issued JWT-SVIDs, in seconds (1 to 86400).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TTL_SECS)]
    pub ttl: u64,

    /// TEST ONLY: move `iat` and `exp` of issued SVIDs this many seconds
    /// into the past.
    ///
    /// With SECONDS >= --ttl every issued SVID is already expired, which lets
    /// tests check that relying parties reject expired SVIDs.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub backdate: u64,

    /// PKCS#8 P-256 signing key (PEM; DER also read).
    ///
    /// Created with mode 0600 if missing, reused otherwise, so restarts keep
    /// the same key and `kid`. Without it the key lives in memory only.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Write the trust domain's JWKS (JSON) here, atomically.
    ///
    /// Keys carry `"use": "jwt-svid"`; this is the document FetchJWTBundles
    /// returns, usable as static keys for a relying party.
    #[arg(long, value_name = "PATH")]
    pub jwks_out: Option<PathBuf>,

    /// Write the public key as PEM (SubjectPublicKeyInfo) here, atomically.
    ///
    /// For OpenBao/Vault JWT auth `jwt_validation_pubkeys`.
    #[arg(long, value_name = "PATH")]
    pub jwks_pem_out: Option<PathBuf>,

    /// Also serve the JWKS over plain HTTP at GET /keys on this address.
    ///
    /// Loopback addresses only (e.g. 127.0.0.1:8281). For OpenBao/Vault JWT
    /// auth `jwks_url=http://<ADDR:PORT>/keys`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub jwks_listen: Option<SocketAddr>,

    /// Write this file (atomically) once the socket accepts connections.
    ///
    /// Removed again at exit. Lets scripts wait for readiness without sleeping.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

impl Cli {
    /// Checks the flags and builds the agent's configuration.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let trust_domain = config::parse_trust_domain(&self.trust_domain)?;
        let mappings = self
            .map
            .iter()
            .map(|m| config::parse_mapping(&trust_domain, m))
            .collect::<Result<Vec<_>, _>>()?;
        let default = self
            .default_id
            .as_deref()
            .map(|id| config::parse_spiffe_id("--default-id", &trust_domain, id))
            .transpose()?;
        let identities = IdentityMap::new(mappings, default)?;
        Ok(Config {
            socket: self.socket,
            trust_domain,
            identities,
            ttl_secs: config::check_ttl(self.ttl)?,
            backdate_secs: self.backdate,
            key_file: self.key_file,
            jwks_out: self.jwks_out,
            jwks_pem_out: self.jwks_pem_out,
            jwks_listen: self
                .jwks_listen
                .map(config::check_jwks_listen)
                .transpose()?,
            ready_file: self.ready_file,
        })
    }
}
