//! Data keys kept in Vault/OpenBao and released to SPIFFE workloads.
//!
//! Three callers, three entry points, one blocking API (a current-thread tokio
//! runtime lives inside; do not call from async code):
//!
//! * the site administrator, once: [`setup`] enables a KV v1 mount, a JWT auth
//!   mount trusting the SPIFFE trust domain's JWT keys, and two templated
//!   policies;
//! * the data owner on the secure device: [`Registrar`] logs in with the
//!   user's own Vault login and registers, re-targets ([`Registrar::set_allowed`])
//!   and revokes (crypto-shreds) a dataset's key;
//! * the job on a compute node: [`release_key`] fetches a JWT-SVID, logs in to
//!   the JWT auth mount, reads the key copy registered for its own SPIFFE ID,
//!   checks the archive id pin, and revokes its Vault token.
//!
//! Storage (docs/vault.md "Design"): OpenBao and Vault refuse identity-template
//! values containing `/` in policy paths, so a SPIFFE ID can never name a path
//! itself. Each SPIFFE ID instead gets an *identity slot*: a JWT role named
//! [`slot_role`] (`spiffe-` + SHA-256 of the ID) bound to exactly that subject.
//! A login through it stamps the token's entity alias with `role=<slot>`, and
//! the workload policy grants read on `<kv>/ds/+/+/<slot>` only. Owners write
//! under `<kv>/ds/<their Vault entity id>/…` only. Nothing here logs a token or a
//! key; every type holding one redacts its `Debug`.
//!
//! One file per concern; imports point one way, leaves first:
//!
//! * `secret`, `error`, `names` (the stanza, dataset and slot names): leaves,
//!   imported by [`crate::keys::config`] and [`crate::keys::spiffe`] too;
//! * `records` (the KV records) and `conn` (the client, retries, and the
//!   generic meaning of a failed call), on top of those and the settings;
//! * `login`, `setup`, `registrar`, `release`: the three callers' entry
//!   points; only `release` uses the Workload API client.
//!
//! Nothing below this module imports `crate::keys::vault` itself; the
//! re-exports here are the public paths (`hpcs::keys::vault::…`).

mod conn;
pub(super) mod error;
mod login;
pub(super) mod names;
mod records;
mod registrar;
mod release;
pub(super) mod secret;
mod setup;

pub use error::VaultError;
pub use login::{ambient_token, UserLogin};
pub use names::{check_spiffe_id, slot_role, Dataset, VaultRef, RECORD_VERSION, SLOT_PREFIX};
pub use registrar::{Current, Registrar, Status};
pub use release::{release_for_archive, release_key, release_key_with, wanted, Released};
pub use secret::Secret;
pub use setup::{
    policy_names, setup, user_policy, workload_policy, JwtTrust, SetupOptions, SetupReport,
};

/// What a Vault server sends, parsed without I/O: the entry points of the
/// fuzz target `vault_json` (fuzz/, docs/fuzzing.md). Not a stable API.
#[doc(hidden)]
pub mod replies {
    use super::conn::{client_token, parse_reply};
    use super::records::{key_of, MetaRecord, SlotRecord};
    use super::release::check_copy;
    use super::{Dataset, VaultError};
    use crate::crypto::DataKey;

    /// A reply with status `code` and body `bytes`: its JSON body, or the
    /// error text a user would see.
    pub fn reply(code: u16, bytes: &[u8]) -> Result<Option<serde_json::Value>, String> {
        parse_reply(code, bytes).map_err(|e| e.text())
    }

    /// Whether a 200 login reply `bytes` carries a token.
    pub fn login_token(bytes: &[u8]) -> bool {
        let v = parse_reply(200, bytes).ok().flatten();
        client_token(v.as_ref()).is_some()
    }

    /// The key in a key-copy record `json` (the `data` of a KV v1 read), as
    /// the mount side checks it for `ds`, `spiffe_id` and `archive_id`.
    pub fn key_copy(
        json: &[u8],
        ds: &Dataset,
        spiffe_id: &str,
        archive_id: &[u8; 32],
    ) -> Result<DataKey, VaultError> {
        let rec: SlotRecord =
            serde_json::from_slice(json).map_err(|e| VaultError::Config(e.to_string()))?;
        check_copy(&rec, ds, spiffe_id, archive_id, "<fuzz>")
    }

    /// The key in an owner's record `json`, if it parses and holds one.
    pub fn owner_key(json: &[u8]) -> Option<DataKey> {
        let rec: MetaRecord = serde_json::from_slice(json).ok()?;
        key_of(&rec.key_hex)
    }
}
