//! The data owner's session on the secure device ([`Registrar`]): logs in
//! with the user's own Vault login, checks and creates identity slots
//! ([`Registrar::ensure_slot`]), registers a dataset's key for the allowed
//! SPIFFE IDs, re-targets it ([`Registrar::set_allowed`]) and revokes
//! (crypto-shreds) it. Owners write only under their own Vault entity id.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::conn::{CallErr, Conn};
use super::error::VaultError;
use super::login::{login_user, UserLogin};
use super::names::{check_spiffe_id, slot_role, Dataset};
use super::records::{key_of, HexKey, MetaRecord, SlotRecord};
use super::setup::policy_names;
use crate::crypto::DataKey;
use crate::keys::config::Settings;
use crate::util::{hex, now_secs, unhex_array};

/// A dataset's state as Vault records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Dataset.
    pub dataset: String,
    /// Pinned archive id (hex); empty if revoked before any.
    pub archive_id: String,
    /// SPIFFE IDs that can read the key.
    pub allowed: Vec<String>,
    /// Whether the key was destroyed.
    pub revoked: bool,
}

impl Status {
    /// The state `m`, the record of `ds`, says.
    fn of(ds: &Dataset, m: &MetaRecord) -> Status {
        Status {
            dataset: ds.to_string(),
            archive_id: m.archive_id.clone(),
            allowed: m.allowed.clone(),
            revoked: m.revoked,
        }
    }
}

/// The live version of a dataset ([`Registrar::current`]).
pub struct Current {
    /// The data key (wiped on drop).
    pub key: DataKey,
    /// The archive id Vault pins.
    pub archive_id: [u8; 32],
    /// SPIFFE IDs that can read the key.
    pub allowed: Vec<String>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("archive_id", &hex(&self.archive_id[..8]))
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// The data owner's Vault session on the secure device.
pub struct Registrar {
    c: Conn,
    owner: Option<String>,
    logged_in: bool,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("addr", &self.c.s.addr)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        // A token we created by logging in is ours to revoke; one the user
        // brought (VAULT_TOKEN, token helper) is not.
        if self.logged_in {
            let _ = self.c.revoke_self();
        }
    }
}

impl Registrar {
    /// Logs in (or takes the token) and finds out who the user is.
    pub fn login(s: &Settings, login: UserLogin) -> Result<Registrar, VaultError> {
        let mut c = Conn::new(s)?;
        let logged_in = matches!(login, UserLogin::Password { .. });
        let token = login_user(&c, login)?;
        c.set_token(token);
        let me = match c.get("look up own token", "auth/token/lookup-self") {
            Ok(v) => v.unwrap_or_default(),
            Err(e @ CallErr::Api { code: 400 | 401 | 403, .. }) => {
                return Err(VaultError::Login(format!(
                    "Vault refused the token ({}); it may have expired: log in again (`bao login`, or --vault-login userpass|ldap)",
                    e.text()
                )))
            }
            Err(e) => return Err(e.into_vault(&s.addr, "look up own token")),
        };
        // The owner part of the user's datasets is their entity id: alias
        // names ("alice") repeat across auth mounts, entity ids do not.
        let owner = me
            .pointer("/data/entity_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        Ok(Registrar {
            c,
            owner,
            logged_in,
        })
    }

    /// The user's Vault entity id (the owner part of their datasets), if the
    /// token has one (a root token has none).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// `name` as a dataset: `owner/name` as given, or `name` in the user's space.
    pub fn dataset(&self, name: &str) -> Result<Dataset, VaultError> {
        if name.contains('/') {
            return Dataset::parse(name);
        }
        match &self.owner {
            Some(o) => Dataset::parse(&format!("{o}/{name}")),
            None => Err(VaultError::Config(format!(
                "this token has no Vault entity (a root or orphan token?): log in as yourself, or name the dataset OWNER_ENTITY_ID/{name}"
            ))),
        }
    }

    fn read_meta(&self, ds: &Dataset) -> Result<Option<MetaRecord>, VaultError> {
        self.c
            .kv_read::<MetaRecord>(&ds.meta_path())
            .map_err(|e| self.denied_or(e, ds, "read the dataset record"))
    }

    /// The owner's record of `ds`, which must exist.
    fn registered_meta(&self, ds: &Dataset) -> Result<MetaRecord, VaultError> {
        self.read_meta(ds)?.ok_or_else(|| {
            VaultError::UnknownDataset(format!("dataset {ds} is not registered in Vault"))
        })
    }

    fn denied_or(&self, e: CallErr, ds: &Dataset, what: &str) -> VaultError {
        if e.is(403) {
            VaultError::Denied(format!(
                "you may not {what} of {ds}: owners may only touch datasets under their own Vault entity id{} (and need the {} policy)",
                self.owner.as_ref().map(|o| format!(" ({o}/…)")).unwrap_or_default(),
                policy_names(&self.c.s.kv_mount).0
            ))
        } else {
            e.into_vault(&self.c.s.addr, what)
        }
    }

    /// Makes sure `spiffe_id`'s identity slot exists and is bound to exactly
    /// that ID with the expected settings; creates it if missing.
    pub fn ensure_slot(&self, spiffe_id: &str) -> Result<String, VaultError> {
        check_spiffe_id(spiffe_id)?;
        let role = slot_role(spiffe_id);
        let path = format!("auth/{}/role/{role}", self.c.s.auth_mount);
        let wl_pol = policy_names(&self.c.s.kv_mount).1;
        let deny = |e: CallErr, what: &str| {
            if e.is(403) {
                VaultError::Denied(format!(
                    "you may not {what} identity slots ({path}): the site must give you the {} policy (hpcs-pack vault-setup)",
                    policy_names(&self.c.s.kv_mount).0
                ))
            } else {
                e.into_vault(&self.c.s.addr, what)
            }
        };
        let existing = match self.c.get("read identity slot", &path) {
            Ok(v) => v,
            Err(e) if e.is(404) => None,
            Err(e) => return Err(deny(e, "read")),
        };
        let role_data = match existing {
            Some(v) => v.get("data").cloned().unwrap_or_default(),
            None => {
                self.c
                    .post(
                        "create identity slot",
                        &path,
                        json!({
                            "role_type": "jwt",
                            "user_claim": "sub",
                            "bound_subject": spiffe_id,
                            // Plain strings: `allowed_parameters` in the
                            // user policy matches whole values, and a JSON
                            // array never equals the allowed string.
                            "bound_audiences": self.c.s.audience,
                            "token_policies": wl_pol,
                        }),
                    )
                    .map_err(|e| deny(e, "create"))?;
                self.c
                    .get("read identity slot", &path)
                    .map_err(|e| deny(e, "read"))?
                    .and_then(|v| v.get("data").cloned())
                    .unwrap_or_default()
            }
        };
        // Slots are create-only for users, so a correct slot stays correct.
        // A wrong one (created first by someone else) must never receive keys.
        let s = |k: &str| role_data.get(k).and_then(Value::as_str).unwrap_or("");
        let list = |k: &str| -> Vec<String> {
            role_data
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let empty = |k: &str| {
            role_data
                .get(k)
                .is_none_or(|v| v.is_null() || v.as_object().is_some_and(|o| o.is_empty()))
        };
        let mut wrong = Vec::new();
        if s("bound_subject") != spiffe_id {
            wrong.push(format!("bound to subject {:?}", s("bound_subject")));
        }
        if s("user_claim") != "sub" || s("role_type") != "jwt" {
            wrong.push("not a plain sub-claim jwt role".to_string());
        }
        if list("bound_audiences") != [self.c.s.audience.clone()] {
            wrong.push(format!("audiences {:?}", list("bound_audiences")));
        }
        if list("token_policies") != [wl_pol.clone()] {
            wrong.push(format!("policies {:?}", list("token_policies")));
        }
        if !empty("bound_claims") || !empty("claim_mappings") {
            wrong.push("extra claim bindings or mappings".to_string());
        }
        if !wrong.is_empty() {
            return Err(VaultError::Denied(format!(
                "the identity slot {path} for {spiffe_id} is not what hpcs expects ({}); no key was stored for it. Ask the Vault administrator to delete that role and retry",
                wrong.join(", ")
            )));
        }
        Ok(role)
    }

    /// Checks before packing that `ds` can be registered for `allowed`:
    /// the name is free (or `replace`), and every identity slot is sound.
    pub fn preflight(
        &self,
        ds: &Dataset,
        allowed: &[String],
        replace: bool,
    ) -> Result<(), VaultError> {
        if allowed.is_empty() {
            return Err(VaultError::Config(
                "no SPIFFE ID allowed: give at least one --allow spiffe://…".into(),
            ));
        }
        if let Some(m) = self.read_meta(ds)? {
            if !replace {
                return Err(VaultError::DatasetExists(m.dataset.clone()));
            }
        }
        for id in allowed {
            self.ensure_slot(id)?;
        }
        Ok(())
    }

    /// Stores `key` for `allowed` as the current version of `ds` (pinning
    /// `archive_id`); with `replace`, supersedes the previous version and
    /// tombstones identities no longer allowed.
    pub fn register(
        &self,
        ds: &Dataset,
        key: &DataKey,
        archive_id: &[u8; 32],
        allowed: &[String],
        replace: bool,
    ) -> Result<Status, VaultError> {
        let allowed = dedup(allowed);
        self.preflight(ds, &allowed, replace)?;
        let old = self.read_meta(ds)?;
        let created = old.as_ref().map(|m| m.created).unwrap_or_else(now_secs);
        let aid = hex(archive_id);
        for id in &allowed {
            self.write_slot(ds, id, key, &aid)?;
        }
        if let Some(old) = &old {
            for id in old.allowed.iter().filter(|i| !allowed.contains(i)) {
                self.tombstone_slot(ds, id, "access removed for this identity by the owner")?;
            }
        }
        let meta = MetaRecord::live(ds.to_string(), aid, Some(HexKey::of(key)), allowed, created);
        self.write_meta(ds, &meta, "write the dataset record")
    }

    fn write_slot(
        &self,
        ds: &Dataset,
        id: &str,
        key: &DataKey,
        aid: &str,
    ) -> Result<(), VaultError> {
        let role = self.ensure_slot(id)?;
        let rec = SlotRecord::copy(ds.to_string(), id.to_string(), aid.to_string(), key);
        self.c
            .kv_write(&ds.slot_path(&role), &rec)
            .map_err(|e| self.denied_or(e, ds, "write a key copy"))
    }

    fn tombstone_slot(&self, ds: &Dataset, id: &str, reason: &str) -> Result<(), VaultError> {
        let rec = SlotRecord::tombstone(ds.to_string(), id.to_string(), now_secs(), reason);
        self.c
            .kv_write(&ds.slot_path(&slot_role(id)), &rec)
            .map_err(|e| self.denied_or(e, ds, "write a tombstone"))
    }

    /// The dataset's state.
    pub fn status(&self, ds: &Dataset) -> Result<Status, VaultError> {
        let m = self.registered_meta(ds)?;
        Ok(Status::of(ds, &m))
    }

    /// The owner's record of `ds` and its key; revoked or keyless records
    /// are refused.
    fn live_meta(&self, ds: &Dataset) -> Result<(MetaRecord, DataKey), VaultError> {
        let m = self.registered_meta(ds)?;
        if m.revoked {
            return Err(VaultError::revoked(
                ds,
                m.revoked_at,
                "revoked by the owner; register the archive again to restore access".into(),
            ));
        }
        let key = key_of(&m.key_hex).ok_or_else(|| {
            VaultError::Config(format!("the record of {ds} in Vault holds no valid key"))
        })?;
        Ok((m, key))
    }

    /// The live version of `ds` as its owner's record holds it: the data
    /// key, the pinned archive id and the allowed SPIFFE IDs (for rekey,
    /// which replaces all three but the IDs). Revoked or keyless records are
    /// refused.
    pub fn current(&self, ds: &Dataset) -> Result<Current, VaultError> {
        let (m, key) = self.live_meta(ds)?;
        let archive_id = unhex_array::<32>(&m.archive_id).ok_or_else(|| {
            VaultError::Config(format!(
                "the record of {ds} in Vault pins no valid archive id"
            ))
        })?;
        Ok(Current {
            key,
            archive_id,
            allowed: m.allowed,
        })
    }

    /// Adds and removes allowed SPIFFE IDs; touches only Vault.
    pub fn set_allowed(
        &self,
        ds: &Dataset,
        add: &[String],
        remove: &[String],
    ) -> Result<Status, VaultError> {
        let (m, key) = self.live_meta(ds)?;
        for id in add.iter().chain(remove) {
            check_spiffe_id(id)?;
        }
        for id in remove {
            if !m.allowed.contains(id) {
                return Err(VaultError::Config(format!("{id} is not allowed for {ds}")));
            }
        }
        let mut allowed: Vec<String> = m
            .allowed
            .iter()
            .filter(|i| !remove.contains(i))
            .cloned()
            .collect();
        for id in dedup(add) {
            if !allowed.contains(&id) {
                allowed.push(id);
            }
        }
        for id in &allowed {
            if !m.allowed.contains(id) {
                self.write_slot(ds, id, &key, &m.archive_id)?;
            }
        }
        for id in remove {
            self.tombstone_slot(ds, id, "access removed for this identity by the owner")?;
        }
        let meta = MetaRecord::live(
            m.dataset.clone(),
            m.archive_id.clone(),
            m.key_hex.clone(),
            allowed,
            m.created,
        );
        self.write_meta(ds, &meta, "write the dataset record")
    }

    /// Crypto-shreds the dataset: every key copy (found by listing, so stray
    /// copies go too) and the owner's record are overwritten by tombstones.
    /// KV v1 keeps no older versions; backups of Vault's storage still do.
    pub fn revoke(&self, ds: &Dataset) -> Result<Status, VaultError> {
        let m = self.registered_meta(ds)?;
        let slots = self
            .c
            .kv_list(&format!("{}/", ds.meta_path()))
            .map_err(|e| self.denied_or(e, ds, "list the key copies"))?;
        let at = now_secs();
        for slot in slots.iter().filter(|k| !k.ends_with('/')) {
            let path = ds.slot_path(slot);
            let old: Option<SlotRecord> = self
                .c
                .kv_read(&path)
                .map_err(|e| self.denied_or(e, ds, "read a key copy"))?;
            let spiffe_id = old.map(|o| o.spiffe_id).unwrap_or_default();
            let reason = "the owner revoked the dataset's key";
            let rec = SlotRecord::tombstone(ds.to_string(), spiffe_id, at, reason);
            self.c
                .kv_write(&path, &rec)
                .map_err(|e| self.denied_or(e, ds, "destroy a key copy"))?;
        }
        let tomb = m.tombstone(ds.to_string(), at);
        self.write_meta(ds, &tomb, "destroy the dataset record")
    }

    /// Writes the owner's record of `ds` (`what` for messages) and returns
    /// the state it records.
    fn write_meta(
        &self,
        ds: &Dataset,
        meta: &MetaRecord,
        what: &str,
    ) -> Result<Status, VaultError> {
        self.c
            .kv_write(&ds.meta_path(), meta)
            .map_err(|e| self.denied_or(e, ds, what))?;
        Ok(Status::of(ds, meta))
    }
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter()
        .filter(|i| seen.insert(i.to_string()))
        .cloned()
        .collect()
}
