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
pub use registrar::{Registrar, Status};
pub use release::{release_for_archive, release_key, release_key_with, wanted, Released};
pub use secret::Secret;
pub use setup::{
    policy_names, setup, user_policy, workload_policy, JwtTrust, SetupOptions, SetupReport,
};
