//! [`VaultError`]: why a key could not be stored in or released from Vault,
//! one variant per documented exit code (`crate::exit::for_vault`). A leaf:
//! the settings ([`crate::keys::config`]) and the Workload API client
//! ([`crate::keys::spiffe`]) report with it, so it imports nothing of theirs.

/// Why a key could not be stored in or released from Vault. Each variant has
/// its own exit code (`crate::exit::for_vault`); messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Vault did not answer, or answered 5xx/429, for the whole retry budget.
    #[error("Vault at {addr} is unreachable: {why}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// Last failure.
        why: String,
    },
    /// Vault refused: permission denied, login refused, identity not trusted.
    #[error("Vault denied access: {0}")]
    Denied(String),
    /// The JWT-SVID had expired when Vault checked it.
    #[error("the JWT-SVID of {spiffe_id} has expired (Vault: {why}); check the node's clock and the SPIRE agent")]
    SvidExpired {
        /// Whose SVID.
        spiffe_id: String,
        /// Vault's words.
        why: String,
    },
    /// Vault's role expects another audience than the SVID carries.
    #[error("Vault rejected the JWT-SVID's audience {audience:?} ({why}); use the audience the site configured (--audience, or audience in the [vault] section of the config file)")]
    WrongAudience {
        /// Audience requested.
        audience: String,
        /// Vault's words.
        why: String,
    },
    /// No key is registered for this dataset (for this identity).
    #[error("{0}")]
    UnknownDataset(String),
    /// The archive names another dataset than the one expected
    /// (`--vault-dataset`): refused before any call to Vault.
    #[error("{0}")]
    WrongDataset(String),
    /// The owner revoked the dataset's key (or this identity's access).
    #[error("access to dataset {dataset} was revoked{at}: {reason}; the key has been destroyed in Vault, so this archive can no longer be opened through Vault")]
    Revoked {
        /// Dataset.
        dataset: String,
        /// `" at <time>"` or `""`.
        at: String,
        /// Why (revoked by owner / access removed for this identity).
        reason: String,
    },
    /// The archive is not the version Vault pins for the dataset.
    #[error("this archive is not the current version of dataset {dataset}: Vault pins archive id {current}, this archive is {archive}; fetch the current archive (an older copy is refused to prevent rollback)")]
    Rollback {
        /// Dataset.
        dataset: String,
        /// Archive id Vault pins (hex prefix).
        current: String,
        /// Archive id of this archive (hex prefix).
        archive: String,
    },
    /// The SPIFFE Workload API is missing, down, or has no identity for us.
    #[error("{0}")]
    SpiffeUnavailable(String),
    /// Bad configuration: config file, address, CA file, mount, stanza.
    #[error("Vault/SPIFFE configuration: {0}")]
    Config(String),
    /// The user on the secure device has no usable Vault login.
    #[error("Vault login: {0}")]
    Login(String),
    /// Registering would replace an existing dataset without `--replace`.
    #[error("dataset {0} is already registered in Vault; pass --replace to make this archive its current version (older archives will then be refused)")]
    DatasetExists(String),
}

impl VaultError {
    /// [`VaultError::Revoked`] for `dataset`, revoked at unix time `at` if the
    /// tombstone says when.
    pub(super) fn revoked(
        dataset: impl std::fmt::Display,
        at: Option<u64>,
        reason: String,
    ) -> VaultError {
        VaultError::Revoked {
            dataset: dataset.to_string(),
            at: at.map(|t| format!(" at unix time {t}")).unwrap_or_default(),
            reason,
        }
    }
}
