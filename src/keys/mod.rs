//! Where a data key comes from: age recipients and identities
//! ([`age_keys`]), and Vault/OpenBao, which releases keys to SPIFFE workloads
//! (feature `vault`: `vault`, its settings `config` and the Workload API
//! client `spiffe`).
//!
//! This layer turns key stanzas (opaque to `crate::crypto`) into a
//! [`DataKey`] and back. It knows the age crate, Vault's HTTP API and the
//! SPIFFE Workload API; it knows nothing of FUSE or the command line.
//!
//! Imports among these modules point one way: `vault`'s leaves (its error,
//! secret and name types) ← `config` ← `spiffe` ← the rest of `vault` (the
//! connection, setup, registrar and release). `age_keys` (with its
//! [`KeyError`]) stands alone; this file only re-exports and names
//! [`Candidate`].

pub mod age_keys;
#[cfg(feature = "vault")]
pub mod config;
#[cfg(feature = "vault")]
pub mod spiffe;
pub mod stanzas;
#[cfg(feature = "vault")]
pub mod vault;

pub use age_keys::{
    load_identities, parse_recipient, read_recipients_file, unwrap_age, wrap_recipients,
    Identities, KeyError, Recipient,
};

use crate::crypto::DataKey;

/// A candidate data key recovered from a stanza (still to be checked against
/// the header's key check).
pub type Candidate = DataKey;
