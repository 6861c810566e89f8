//! hpcs-mount's Vault key source: the flags, mapped to a settings layer, and
//! the call into `hpcs::keys::vault::release_for_archive` (which holds the
//! logic) when the archive names a Vault key (or `--vault` is given). The
//! caller checks the released key against the header's key commitment
//! (`SealedArchive::unlock`) before mounting.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use hpcs::crypto::{DataKey, Header};
use hpcs::exit;
use hpcs::keys::config::{Layer, Notice};
use hpcs::keys::vault;

use super::Fail;

/// Vault and SPIFFE options. Flags win over the environment
/// (BAO_ADDR/VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE, SPIFFE_ENDPOINT_SOCKET),
/// which wins over /etc/hpcs/config.toml and ~/.config/hpcs/config.toml.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Vault (keys released to this job's SPIFFE ID)")]
pub struct VaultMountArgs {
    /// Get the key from Vault even when -i identities are given.
    ///
    /// Without -i, an archive with a Vault stanza always gets its key from
    /// Vault: hpcs-mount fetches a JWT-SVID from the SPIFFE Workload API,
    /// logs in to Vault with it, reads the key registered for this job's
    /// SPIFFE ID, checks it, and revokes its Vault token before mounting.
    #[arg(long)]
    pub vault: bool,

    /// Refuse (exit 18, before any call to Vault) unless the archive names
    /// this dataset: `--vault-dataset OWNER/NAME` for the one ARCHIVE,
    /// `--vault-dataset NAME=OWNER/NAME` per --archive NAME (repeatable).
    /// Implies --vault for that archive. hpcs-job always passes it with --vault.
    #[arg(long, value_name = "[NAME=]OWNER/NAME")]
    pub vault_dataset: Vec<String>,

    /// JWT-SVID audience (default: config file, else the archive's, else hpcs).
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,

    /// Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR].
    #[arg(long, value_name = "URL")]
    pub vault_addr: Option<String>,

    /// PEM CA bundle for Vault's TLS [env: BAO_CACERT, VAULT_CACERT].
    #[arg(long, value_name = "FILE")]
    pub vault_cacert: Option<PathBuf>,

    /// Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE].
    #[arg(long, value_name = "NS")]
    pub vault_namespace: Option<String>,

    /// KV mount of the key records (default: the archive's).
    #[arg(long, value_name = "MOUNT")]
    pub vault_mount: Option<String>,

    /// JWT auth mount (default: the archive's).
    #[arg(long, value_name = "MOUNT")]
    pub vault_auth_mount: Option<String>,

    /// Seconds to keep retrying while Vault or the Workload API is
    /// unavailable (connection refused, 5xx, 429); default 30.
    #[arg(long, value_name = "SECS")]
    pub vault_retry_secs: Option<u64>,

    /// Workload API endpoint, unix:///path [env: SPIFFE_ENDPOINT_SOCKET].
    #[arg(long, value_name = "ENDPOINT")]
    pub spiffe_socket: Option<String>,
}

impl VaultMountArgs {
    /// The flags as the highest settings layer (see `hpcs::keys::config`).
    fn layer(&self) -> Layer {
        Layer {
            addr: self.vault_addr.clone(),
            ca_cert: self.vault_cacert.clone(),
            namespace: self.vault_namespace.clone(),
            kv_mount: self.vault_mount.clone(),
            auth_mount: self.vault_auth_mount.clone(),
            audience: self.audience.clone(),
            retry_secs: self.vault_retry_secs,
            spiffe_socket: self.spiffe_socket.clone(),
            ..Layer::default()
        }
    }
}

/// Whether this archive's key comes from Vault: `--vault`, or a Vault stanza
/// and no age identities.
pub fn wanted(header: &Header, a: &VaultMountArgs, have_identities: bool) -> bool {
    vault::wanted(&header.stanzas, a.vault, have_identities)
}

/// Releases the key from Vault (see the module doc); retry notices are
/// warnings, the release itself an info line.
/// `want`: the dataset this archive must name (`--vault-dataset`).
pub fn obtain(
    header: &Header,
    label: &str,
    a: &VaultMountArgs,
    want: Option<&str>,
) -> Result<DataKey, Fail> {
    let notice: Notice = Arc::new(|m: &str| hpcs::warn!("{m}"));
    let (key, released) = vault::release_for_archive(header, want, a.layer(), Some(notice))
        .map_err(|e| Fail::new(exit::for_vault(&e), format!("{label}: {e}")))?;
    hpcs::info!("{label}: {released}");
    Ok(key)
}
