//! Names and references, checked: the archive's Vault stanza ([`VaultRef`]),
//! dataset names ([`Dataset`], and the record paths under them), SPIFFE IDs
//! ([`check_spiffe_id`]) and the identity-slot role of each ([`slot_role`]).
//! A leaf beside [`super::error`]: the settings read the stanza, so this
//! imports nothing of `crate::keys` but the error type.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::VaultError;
use crate::crypto::header::{Stanza, STANZA_VAULT};
use crate::util::hex;

/// Prefix of identity-slot role names.
pub const SLOT_PREFIX: &str = "spiffe-";
/// Current version of the stanza body and of the records.
pub const RECORD_VERSION: u32 = 1;

/// The Vault key stanza (type 2): where the data key is, never the key.
///
/// Body: a UTF-8 JSON object, e.g.
/// `{"v":1,"dataset":"alice/genome-2026","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}`.
/// Readers ignore unknown fields and refuse `v` other than 1. The stanza is
/// covered by the header MAC, which is checked only once the key is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRef {
    /// Body version (1).
    pub v: u32,
    /// Dataset name `owner/name`: the Vault records live under `<mount>/ds/<owner>/<name>`.
    pub dataset: String,
    /// KV v1 mount holding the records.
    pub mount: String,
    /// JWT auth mount the workloads log in to.
    pub auth_mount: String,
    /// JWT-SVID audience the JWT roles expect.
    pub audience: String,
}

impl VaultRef {
    /// A version-1 reference.
    pub fn new(dataset: &str, mount: &str, auth_mount: &str, audience: &str) -> VaultRef {
        VaultRef {
            v: RECORD_VERSION,
            dataset: dataset.into(),
            mount: mount.into(),
            auth_mount: auth_mount.into(),
            audience: audience.into(),
        }
    }

    /// The stanza to put in the header.
    pub fn to_stanza(&self) -> Stanza {
        Stanza {
            kind: STANZA_VAULT,
            body: serde_json::to_vec(self).expect("plain struct serialises"),
        }
    }

    /// Parses a stanza body.
    pub fn from_stanza(s: &Stanza) -> Result<VaultRef, VaultError> {
        let bad = |why: String| {
            VaultError::Config(format!("the archive's Vault stanza is unusable: {why}"))
        };
        let r: VaultRef = serde_json::from_slice(&s.body).map_err(|e| bad(e.to_string()))?;
        if r.v != RECORD_VERSION {
            return Err(bad(format!(
                "version {} (this hpcs reads version 1; upgrade hpcs)",
                r.v
            )));
        }
        Dataset::parse(&r.dataset).map_err(|e| bad(e.to_string()))?;
        Ok(r)
    }

    /// The first Vault stanza among `stanzas`, parsed; `None` if there is none.
    pub fn find(stanzas: &[Stanza]) -> Option<Result<VaultRef, VaultError>> {
        stanzas
            .iter()
            .find(|s| s.kind == STANZA_VAULT)
            .map(VaultRef::from_stanza)
    }
}

/// A dataset name `owner/name`; both parts are path-safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// The owner's Vault entity id (unique across auth mounts).
    pub owner: String,
    /// The dataset's name within the owner's space.
    pub name: String,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

impl Dataset {
    /// Parses `owner/name`.
    pub fn parse(s: &str) -> Result<Dataset, VaultError> {
        match s.split_once('/') {
            Some((o, n)) if valid_segment(o) && valid_segment(n) => Ok(Dataset {
                owner: o.into(),
                name: n.into(),
            }),
            _ => Err(VaultError::Config(format!(
                "invalid dataset name {s:?}: use OWNER/NAME, each 1-128 of letters, digits, '-', '_', '.', '@' (not starting with '.')"
            ))),
        }
    }

    /// KV path (below the mount) of the owner's record.
    pub(super) fn meta_path(&self) -> String {
        format!("ds/{}/{}", self.owner, self.name)
    }

    /// KV path (below the mount) of the key copy for identity slot `slot`.
    pub(super) fn slot_path(&self, slot: &str) -> String {
        format!("ds/{}/{}/{}", self.owner, self.name, slot)
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// Checks a SPIFFE ID (`spiffe://trust-domain/path`, canonical form).
pub fn check_spiffe_id(id: &str) -> Result<(), VaultError> {
    let parsed: spiffe::SpiffeId = id
        .parse()
        .map_err(|e| VaultError::Config(format!("invalid SPIFFE ID {id:?}: {e}")))?;
    if parsed.to_string() != id {
        return Err(VaultError::Config(format!(
            "SPIFFE ID {id:?} is not in canonical form (expected {parsed})"
        )));
    }
    Ok(())
}

/// The identity-slot role of a SPIFFE ID: `spiffe-` + hex SHA-256 of the ID.
pub fn slot_role(spiffe_id: &str) -> String {
    format!(
        "{SLOT_PREFIX}{}",
        hex(&Sha256::digest(spiffe_id.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_round_trip_and_checks() {
        let r = VaultRef::new("alice/genome-2026", "hpcs", "hpcs-jwt", "hpcs");
        let s = r.to_stanza();
        assert_eq!(s.kind, STANZA_VAULT);
        assert_eq!(
            std::str::from_utf8(&s.body).unwrap(),
            r#"{"v":1,"dataset":"alice/genome-2026","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}"#
        );
        assert_eq!(VaultRef::from_stanza(&s).unwrap(), r);
        let bad = |body: &str| {
            VaultRef::from_stanza(&Stanza {
                kind: STANZA_VAULT,
                body: body.as_bytes().to_vec(),
            })
            .is_err()
        };
        assert!(bad(
            r#"{"v":2,"dataset":"a/b","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad(
            r#"{"v":1,"dataset":"../b","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad(
            r#"{"v":1,"dataset":"a/b/c","mount":"m","auth_mount":"j","audience":"a"}"#
        ));
        assert!(bad("not json"));
        assert!(!bad(
            r#"{"v":1,"dataset":"a/b","mount":"m","auth_mount":"j","audience":"a","later":1}"#
        ));
    }

    #[test]
    fn dataset_names() {
        assert!(Dataset::parse("alice/genome-2026").is_ok());
        assert!(Dataset::parse("a.b@site/x_y").is_ok());
        for bad in [
            "alice", "/x", "a/", "a/b/c", "a/.x", "a/x*", "a/x+", "a/ x", "a/{{x}}",
        ] {
            assert!(Dataset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slots_are_path_safe_and_distinct() {
        let a = slot_role("spiffe://example.org/job/a");
        let b = slot_role("spiffe://example.org/job/b");
        assert_ne!(a, b);
        assert!(a.starts_with(SLOT_PREFIX) && a.len() == SLOT_PREFIX.len() + 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn spiffe_ids_are_checked() {
        assert!(check_spiffe_id("spiffe://example.org/job/a").is_ok());
        assert!(check_spiffe_id("spiffe://Example.org/job/a").is_err());
        assert!(check_spiffe_id("https://example.org/x").is_err());
        assert!(check_spiffe_id("spiffe://example.org/a//b").is_err());
    }
}
