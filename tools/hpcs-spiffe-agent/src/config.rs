//! Checked settings for the agent, and the uid → SPIFFE ID map.
//!
//! The binary parses flags with clap and turns them into a [`Config`] with
//! the parsers here; everything past this point can rely on the invariants
//! (IDs are canonical SPIFFE IDs with a path, in the agent's trust domain;
//! the JWKS HTTP address is loopback; lifetimes are in range).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use spiffe::{SpiffeId, TrustDomain};

/// Longest JWT-SVID lifetime the agent will issue (one day).
pub const MAX_TTL_SECS: u64 = 86_400;
/// Default JWT-SVID lifetime (SPIRE's default is also five minutes).
pub const DEFAULT_TTL_SECS: u64 = 300;

/// A usage error: the message names the offending input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Everything the agent needs to run, already checked.
#[derive(Debug)]
pub struct Config {
    pub socket: PathBuf,
    pub trust_domain: TrustDomain,
    pub identities: IdentityMap,
    pub ttl_secs: u64,
    /// TEST ONLY: seconds subtracted from `iat` and `exp`.
    pub backdate_secs: u64,
    pub key_file: Option<PathBuf>,
    pub jwks_out: Option<PathBuf>,
    pub jwks_pem_out: Option<PathBuf>,
    pub jwks_listen: Option<SocketAddr>,
    pub ready_file: Option<PathBuf>,
}

/// Which SPIFFE ID a caller gets, chosen by its uid.
#[derive(Debug, Clone, Default)]
pub struct IdentityMap {
    by_uid: BTreeMap<u32, SpiffeId>,
    default: Option<SpiffeId>,
}

impl IdentityMap {
    /// Builds the map; a uid given twice is an error.
    pub fn new(
        mappings: impl IntoIterator<Item = (u32, SpiffeId)>,
        default: Option<SpiffeId>,
    ) -> Result<Self, ConfigError> {
        let mut by_uid = BTreeMap::new();
        for (uid, id) in mappings {
            if by_uid.insert(uid, id).is_some() {
                return Err(ConfigError(format!("--map: uid {uid} is mapped twice")));
            }
        }
        Ok(Self { by_uid, default })
    }

    /// The identity of a caller with `uid`, if it has one.
    pub fn lookup(&self, uid: u32) -> Option<&SpiffeId> {
        self.by_uid.get(&uid).or(self.default.as_ref())
    }

    /// True when no caller can get an identity.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty() && self.default.is_none()
    }
}

/// Parses `--trust-domain`: a bare trust domain name such as `example.org`.
pub fn parse_trust_domain(s: &str) -> Result<TrustDomain, ConfigError> {
    if s.contains(['/', ':']) {
        return Err(ConfigError(format!(
            "--trust-domain {s:?}: give the bare name (e.g. example.org), not a URI"
        )));
    }
    let td = TrustDomain::new(s).map_err(|e| ConfigError(format!("--trust-domain {s:?}: {e}")))?;
    if td.to_string() != s {
        return Err(ConfigError(format!(
            "--trust-domain {s:?}: must be lower case (use {td})"
        )));
    }
    Ok(td)
}

/// Parses a workload SPIFFE ID: `spiffe://<td>/<path>` in canonical form,
/// with a non-empty path, in trust domain `td`. `what` names the flag.
pub fn parse_spiffe_id(what: &str, td: &TrustDomain, s: &str) -> Result<SpiffeId, ConfigError> {
    let id = SpiffeId::new(s).map_err(|e| ConfigError(format!("{what} {s:?}: {e}")))?;
    if id.to_string() != s {
        return Err(ConfigError(format!(
            "{what} {s:?}: not in canonical form (use {id})"
        )));
    }
    if id.path().is_empty() {
        return Err(ConfigError(format!(
            "{what} {s:?}: a workload SPIFFE ID needs a path (spiffe://{td}/...)"
        )));
    }
    if id.trust_domain_name() != td.to_string() {
        return Err(ConfigError(format!(
            "{what} {s:?}: not in the agent's trust domain {td}"
        )));
    }
    Ok(id)
}

/// Parses one `--map UID=SPIFFE_ID`.
pub fn parse_mapping(td: &TrustDomain, s: &str) -> Result<(u32, SpiffeId), ConfigError> {
    let (uid, id) = s
        .split_once('=')
        .ok_or_else(|| ConfigError(format!("--map {s:?}: expected UID=SPIFFE_ID")))?;
    let uid: u32 = uid
        .parse()
        .map_err(|_| ConfigError(format!("--map {s:?}: {uid:?} is not a numeric uid")))?;
    Ok((uid, parse_spiffe_id("--map", td, id)?))
}

/// Checks `--ttl`.
pub fn check_ttl(ttl: u64) -> Result<u64, ConfigError> {
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ConfigError(format!(
            "--ttl {ttl}: must be between 1 and {MAX_TTL_SECS} seconds"
        )));
    }
    Ok(ttl)
}

/// Checks `--jwks-listen`: plain HTTP is only ever served on loopback.
pub fn check_jwks_listen(addr: SocketAddr) -> Result<SocketAddr, ConfigError> {
    if !addr.ip().is_loopback() {
        return Err(ConfigError(format!(
            "--jwks-listen {addr}: only loopback addresses (127.0.0.0/8, [::1]) are allowed"
        )));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TrustDomain {
        parse_trust_domain("example.org").expect("td")
    }

    #[test]
    fn trust_domains() {
        for ok in ["example.org", "hpc.example-1.org", "td_1"] {
            assert!(parse_trust_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "spiffe://example.org",
            "Example.org",
            "example.org/x",
            "exa mple",
            "host:8080",
        ] {
            assert!(parse_trust_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spiffe_ids() {
        let td = td();
        for ok in [
            "spiffe://example.org/user/alice/job",
            "spiffe://example.org/a",
            "spiffe://example.org/a.b-c_d/E",
        ] {
            assert!(parse_spiffe_id("--default-id", &td, ok).is_ok(), "{ok}");
        }
        for bad in [
            "spiffe://example.org",
            "spiffe://example.org/",
            "spiffe://other.org/a",
            "SPIFFE://example.org/a",
            "spiffe://Example.org/a",
            "spiffe://example.org/a/",
            "spiffe://example.org/a//b",
            "spiffe://example.org/./a",
            "spiffe://example.org/a?q=1",
            "spiffe://example.org/a#f",
            "spiffe://user@example.org/a",
            "spiffe://example.org:8443/a",
            "https://example.org/a",
            "example.org/a",
        ] {
            assert!(parse_spiffe_id("--default-id", &td, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mappings_and_lookup() {
        let td = td();
        let (uid, id) = parse_mapping(&td, "1000=spiffe://example.org/user/alice").expect("map");
        assert_eq!(uid, 1000);
        for bad in [
            "1000",
            "alice=spiffe://example.org/a",
            "-1=spiffe://example.org/a",
            "1000=spiffe://other.org/a",
            "=spiffe://example.org/a",
        ] {
            assert!(parse_mapping(&td, bad).is_err(), "{bad}");
        }
        let default = parse_spiffe_id("--default-id", &td, "spiffe://example.org/any").ok();
        let map = IdentityMap::new([(uid, id.clone())], default.clone()).expect("map");
        assert_eq!(map.lookup(1000), Some(&id));
        assert_eq!(map.lookup(1001), default.as_ref());
        let strict = IdentityMap::new([(uid, id.clone())], None).expect("map");
        assert_eq!(strict.lookup(1001), None);
        assert!(IdentityMap::new([(1, id.clone()), (1, id)], None).is_err());
        assert!(IdentityMap::default().is_empty());
    }

    #[test]
    fn ttl_and_listen_bounds() {
        assert!(check_ttl(0).is_err());
        assert!(check_ttl(1).is_ok());
        assert!(check_ttl(MAX_TTL_SECS).is_ok());
        assert!(check_ttl(MAX_TTL_SECS + 1).is_err());
        for ok in ["127.0.0.1:0", "127.0.0.2:8200", "[::1]:8200"] {
            assert!(check_jwks_listen(ok.parse().expect("addr")).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8200", "10.0.0.1:8200", "[::]:8200"] {
            assert!(
                check_jwks_listen(bad.parse().expect("addr")).is_err(),
                "{bad}"
            );
        }
    }
}
