//! Command-line syntax of hpcs-pack's Vault options and subcommands (clap
//! derive). Parsing only: vault_cmd.rs checks and runs them.

use std::path::PathBuf;

use clap::Args;

/// How to reach Vault and who we are there (shared by every Vault command).
/// Flags win over the environment, which wins over the config files.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Vault")]
pub struct VaultArgs {
    /// Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR].
    #[arg(long, value_name = "URL")]
    pub vault_addr: Option<String>,

    /// PEM file of CA certificates for Vault's TLS [env: BAO_CACERT, VAULT_CACERT].
    #[arg(long, value_name = "FILE")]
    pub vault_cacert: Option<PathBuf>,

    /// Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE].
    #[arg(long, value_name = "NS")]
    pub vault_namespace: Option<String>,

    /// KV v1 mount of the key records (default: hpcs).
    #[arg(long, value_name = "MOUNT")]
    pub vault_mount: Option<String>,

    /// JWT auth mount the jobs log in to (default: hpcs-jwt).
    #[arg(long, value_name = "MOUNT")]
    pub vault_auth_mount: Option<String>,

    /// JWT-SVID audience the site's Vault expects (default: hpcs).
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,

    /// Log in with a password instead of using a token.
    ///
    /// Without it, the token comes from BAO_TOKEN / VAULT_TOKEN, else from the
    /// token helper file ~/.vault-token (written by `bao login` / `vault login`).
    #[arg(long, value_name = "METHOD", value_parser = ["userpass", "ldap", "token"])]
    pub vault_login: Option<String>,

    /// Auth mount of --vault-login (default: the method's name).
    #[arg(long, value_name = "MOUNT")]
    pub vault_login_mount: Option<String>,

    /// User name for --vault-login userpass|ldap (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub vault_user: Option<String>,

    /// Read the password from this file's first line instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub vault_password_file: Option<PathBuf>,

    /// Seconds to keep retrying while Vault is unreachable (default: 30).
    #[arg(long, value_name = "SECS")]
    pub vault_retry_secs: Option<u64>,
}

/// `pack --vault`: register the new archive's key in Vault.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Vault")]
pub struct PackVaultArgs {
    /// Store the data key in Vault for the --allow'ed SPIFFE IDs.
    ///
    /// The archive records the dataset name and Vault mounts (never the key);
    /// Vault pins this archive's id as the dataset's current version.
    #[arg(long)]
    pub vault: bool,

    /// SPIFFE ID whose jobs may fetch the key (repeatable).
    #[arg(long = "allow", value_name = "SPIFFE_ID", requires = "vault")]
    pub allow: Vec<String>,

    /// Dataset name, NAME (in your own space) or OWNER/NAME (default: the
    /// archive's file name without .hpcs).
    #[arg(long, value_name = "NAME", requires = "vault")]
    pub dataset: Option<String>,

    /// Make this archive the current version of an already registered
    /// dataset: older archives of it are refused from then on.
    #[arg(long, requires = "vault")]
    pub replace: bool,

    #[command(flatten)]
    pub v: VaultArgs,
}

/// Register an existing archive's key in Vault (rewrites only the header).
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Archive to register (its header gains a Vault stanza; data untouched).
    pub archive: PathBuf,

    /// Identity file that opens the archive (repeatable).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,

    /// SPIFFE ID whose jobs may fetch the key (repeatable, at least one).
    #[arg(long = "allow", value_name = "SPIFFE_ID", required = true)]
    pub allow: Vec<String>,

    /// Dataset name, NAME or OWNER/NAME (default: from the archive's Vault
    /// stanza, else its file name without .hpcs).
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,

    /// Make this archive the current version of an already registered dataset.
    #[arg(long)]
    pub replace: bool,

    /// No summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    #[command(flatten)]
    pub v: VaultArgs,
}

/// Change which SPIFFE IDs may fetch a dataset's key (Vault only).
#[derive(Args, Debug)]
pub struct AllowArgs {
    /// The dataset: an archive that names it, or its name (NAME or OWNER/NAME).
    pub target: String,

    /// Allow this SPIFFE ID (repeatable).
    #[arg(long = "add", value_name = "SPIFFE_ID")]
    pub add: Vec<String>,

    /// Stop allowing this SPIFFE ID (repeatable); its key copy is destroyed.
    #[arg(long = "remove", value_name = "SPIFFE_ID")]
    pub remove: Vec<String>,

    #[command(flatten)]
    pub v: VaultArgs,
}

/// Destroy a dataset's key in Vault (crypto-shredding).
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The dataset: an archive that names it, or its name (NAME or OWNER/NAME).
    pub target: String,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,

    #[command(flatten)]
    pub v: VaultArgs,
}

/// Prepare a Vault/OpenBao for hpcs (administrator, once; idempotent).
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// JWKS URL of the SPIFFE trust domain (SPIRE OIDC discovery provider
    /// `https://…/keys`, or a JWKS bundle endpoint).
    #[arg(long, value_name = "URL", group = "trust")]
    pub jwks_url: Option<String>,

    /// OIDC discovery URL (SPIRE OIDC discovery provider).
    #[arg(long, value_name = "URL", group = "trust")]
    pub oidc_discovery_url: Option<String>,

    /// Static JWT public key in PEM (repeatable); update on key rotation.
    #[arg(long = "jwt-pubkey", value_name = "PEM_FILE", group = "trust")]
    pub jwt_pubkeys: Vec<PathBuf>,

    /// PEM CA bundle for the JWKS / OIDC discovery URL's TLS.
    #[arg(long, value_name = "PEM_FILE")]
    pub jwks_ca: Option<PathBuf>,

    /// Required `iss` claim (only if your SVIDs carry one).
    #[arg(long, value_name = "ISSUER")]
    pub bound_issuer: Option<String>,

    /// Auth mount data owners log in with (repeatable; default: userpass).
    #[arg(long = "user-auth-mount", value_name = "MOUNT")]
    pub user_auth_mounts: Vec<String>,

    /// Enable userpass at a --user-auth-mount that does not exist yet.
    #[arg(long)]
    pub enable_userpass: bool,

    /// Lifetime of a job's Vault token (hpcs-mount revokes it sooner).
    #[arg(long, value_name = "TTL", default_value = "5m")]
    pub workload_token_ttl: String,

    #[command(flatten)]
    pub v: VaultArgs,
}
