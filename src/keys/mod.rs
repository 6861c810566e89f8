//! Where a data key comes from: age recipients and identities
//! ([`age_keys`]), and Vault/OpenBao, which releases keys to SPIFFE workloads
//! (feature `vault`: [`vault`], its settings [`config`] and the Workload API
//! client [`spiffe`]).
//!
//! This layer turns key stanzas (opaque to `crate::crypto`) into a
//! [`DataKey`] and back. It knows the age crate, Vault's HTTP API and the
//! SPIFFE Workload API; it knows nothing of FUSE or the command line.
//!
//! Imports among these modules point one way: `vault`'s leaves (its error,
//! secret and name types) ← `config` ← `spiffe` ← the rest of `vault` (the
//! connection, setup, registrar and release). `age_keys` stands alone.

pub mod age_keys;
#[cfg(feature = "vault")]
pub mod config;
#[cfg(feature = "vault")]
pub mod spiffe;
#[cfg(feature = "vault")]
pub mod vault;

pub use age_keys::{
    load_identities, parse_recipient, read_recipients_file, unwrap_age, wrap_recipients,
    Identities, Recipient,
};

use crate::crypto::DataKey;

/// Why no data key could be obtained or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A recipient string is not something age understands.
    #[error("invalid recipient {0:?}: expected an age X25519 recipient (age1…) or an SSH public key (ssh-ed25519 / ssh-rsa)")]
    BadRecipient(String),
    /// The identity file could not be read.
    #[error("cannot read identity file {path}: {err}")]
    IdentityUnreadable {
        /// File.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// The identity file has no usable identity.
    #[error("identity file {path} is not usable: {why}")]
    BadIdentity {
        /// File.
        path: String,
        /// Why.
        why: String,
    },
    /// No identity decrypted any age stanza.
    #[error("none of the given identities can open this archive (it was not packed for them)")]
    NoMatchingIdentity,
    /// The archive has no age stanza at all.
    #[error("this archive has no age key stanza (it is opened with a key from Vault)")]
    NoAgeStanza,
    /// The age stanza is damaged.
    #[error("the archive's age key stanza is damaged ({0})")]
    BadStanza(String),
    /// A file given with -R could not be read.
    #[error("cannot read recipients file {path}: {err}")]
    RecipientsUnreadable {
        /// File.
        path: String,
        /// Why.
        err: std::io::Error,
    },
}

/// A candidate data key recovered from a stanza (still to be checked against
/// the header's key check).
pub type Candidate = DataKey;
