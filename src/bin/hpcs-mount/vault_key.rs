//! hpcs-mount's Vault key source: the flags, and the call into
//! `hpcs::keys::vault::release_key` when the archive names a Vault key (or
//! `--vault` is given). The caller checks the released key against the
//! header's key commitment (`SealedArchive::unlock`) before mounting.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use hpcs::crypto::{DataKey, Header};
use hpcs::exit;
use hpcs::keys::config::{self, Layer};
use hpcs::keys::vault::{self, VaultRef};

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

    /// Refuse unless the archive names this dataset (OWNER/NAME).
    #[arg(long, value_name = "OWNER/NAME")]
    pub vault_dataset: Option<String>,

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

/// Whether this archive's key comes from Vault: `--vault`, or a Vault stanza
/// and no age identities.
pub fn wanted(header: &Header, a: &VaultMountArgs, have_identities: bool) -> bool {
    a.vault || (!have_identities && VaultRef::find(&header.stanzas).is_some())
}

/// Releases the key from Vault (see the module doc).
pub fn obtain(header: &Header, label: &str, a: &VaultMountArgs) -> Result<DataKey, Fail> {
    let vfail = |e: vault::VaultError| Fail::new(exit::for_vault(&e), format!("{label}: {e}"));
    let vref = match VaultRef::find(&header.stanzas) {
        Some(r) => r.map_err(vfail)?,
        None => {
            return Err(Fail::new(
                exit::UNKNOWN_DATASET,
                format!("{label}: the archive names no Vault key (register it with `hpcs-pack register`, or open it with -i)"),
            ))
        }
    };
    if let Some(want) = &a.vault_dataset {
        if *want != vref.dataset {
            return Err(Fail::new(
                exit::UNKNOWN_DATASET,
                format!(
                    "{label}: the archive is dataset {}, not {want} (--vault-dataset)",
                    vref.dataset
                ),
            ));
        }
    }
    let flags = Layer {
        addr: a.vault_addr.clone(),
        ca_cert: a.vault_cacert.clone(),
        namespace: a.vault_namespace.clone(),
        kv_mount: a.vault_mount.clone(),
        auth_mount: a.vault_auth_mount.clone(),
        audience: a.audience.clone(),
        retry_secs: a.vault_retry_secs,
        spiffe_socket: a.spiffe_socket.clone(),
        ..Layer::default()
    };
    let mut s = config::load(flags)
        .and_then(|l| l.resolve(Some(&vref)))
        .map_err(vfail)?;
    s.notice = Some(Arc::new(|m: &str| hpcs::log::log(0, format_args!("{m}"))));
    let (key, rel) = vault::release_key_with(&s, &vref, &header.archive_id).map_err(vfail)?;
    hpcs::log::log(
        1,
        format_args!(
            "{label}: key of dataset {} released by Vault to {}{}",
            vref.dataset,
            rel.spiffe_id,
            if rel.token_revoked {
                "; Vault token revoked"
            } else {
                ""
            }
        ),
    );
    Ok(key)
}
