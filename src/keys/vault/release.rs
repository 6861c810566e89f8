//! The job's side on a compute node ([`release_key`]): fetch a JWT-SVID from
//! the Workload API, log in to the JWT auth mount through the identity slot
//! of that SPIFFE ID, read the key copy registered for it, check the archive
//! id pin (no rollback), and revoke the Vault token. The caller still checks
//! the key against the header's key commitment.

use serde_json::{json, Value};

use super::conn::{CallErr, Conn};
use super::error::VaultError;
use super::names::{slot_role, Dataset, VaultRef};
use super::records::{key_of, SlotRecord};
use super::secret::Secret;
use crate::crypto::DataKey;
use crate::keys::config::Settings;
use crate::keys::spiffe::fetch_jwt_svid;
use crate::util::hex;

/// Everything [`release_key`] learnt besides the key.
#[derive(Debug, Clone)]
pub struct Released {
    /// The SPIFFE ID the key was released to.
    pub spiffe_id: String,
    /// Whether the Vault token was revoked (false: it expires by itself).
    pub token_revoked: bool,
}

/// Mount side: SVID → JWT login through the identity slot → read the key copy
/// → archive-id pin check → revoke the Vault token. The caller must still
/// check the key against the header (`Header::authenticate`).
pub fn release_key(
    s: &Settings,
    vref: &VaultRef,
    archive_id: &[u8; 32],
) -> Result<DataKey, VaultError> {
    release_key_with(s, vref, archive_id).map(|(k, _)| k)
}

/// [`release_key`], also saying to whom the key was released.
pub fn release_key_with(
    s: &Settings,
    vref: &VaultRef,
    archive_id: &[u8; 32],
) -> Result<(DataKey, Released), VaultError> {
    let ds = Dataset::parse(&vref.dataset)?;
    let mut c = Conn::new(s)?;
    let svid = fetch_jwt_svid(&c.rt, s)?;
    let role = slot_role(&svid.spiffe_id);
    let login = c.post(
        "JWT login",
        &format!("auth/{}/login", s.auth_mount),
        json!({ "role": role, "jwt": svid.token.expose() }),
    );
    let token = match login {
        Ok(v) => v
            .as_ref()
            .and_then(|v| v.pointer("/auth/client_token"))
            .and_then(Value::as_str)
            .map(|t| Secret::new(t.to_string()))
            .ok_or_else(|| VaultError::Config("Vault's JWT login returned no token".into()))?,
        Err(e) => return Err(login_error(e, s, &svid.spiffe_id, &ds)),
    };
    drop(svid.token);
    c.set_token(token);
    let result = read_copy(&c, &ds, &role, &svid.spiffe_id, archive_id);
    let token_revoked = match c.revoke_self() {
        Ok(()) => true,
        Err(e) => {
            s.notify(&format!(
                "could not revoke the Vault token ({}); it expires by itself",
                e.text()
            ));
            false
        }
    };
    result.map(|k| {
        (
            k,
            Released {
                spiffe_id: svid.spiffe_id,
                token_revoked,
            },
        )
    })
}

fn login_error(e: CallErr, s: &Settings, spiffe_id: &str, ds: &Dataset) -> VaultError {
    if e.says("expired") {
        VaultError::SvidExpired {
            spiffe_id: spiffe_id.to_string(),
            why: e.text(),
        }
    } else if e.says("audience") || e.says("aud claim") {
        VaultError::WrongAudience {
            audience: s.audience.clone(),
            why: e.text(),
        }
    } else if e.says("could not be found") || e.says("role not found") {
        VaultError::UnknownDataset(format!(
            "no dataset has ever been registered in Vault for {spiffe_id} (no identity slot {} at auth/{}/); ask the owner of {ds} to allow this identity (hpcs-pack allow)",
            slot_role(spiffe_id),
            s.auth_mount
        ))
    } else if e.says("subject") {
        VaultError::Denied(format!(
            "Vault's identity slot for {spiffe_id} is bound to another SPIFFE ID ({}); ask the Vault administrator to fix it",
            e.text()
        ))
    } else if matches!(
        e,
        CallErr::Api {
            code: 400 | 401 | 403,
            ..
        }
    ) {
        VaultError::Denied(format!(
            "Vault refused the JWT-SVID of {spiffe_id} ({}); does the JWT auth mount auth/{}/ trust this SPIFFE trust domain's keys?",
            e.text(),
            s.auth_mount
        ))
    } else {
        e.into_vault(&s.addr, "JWT login")
    }
}

fn read_copy(
    c: &Conn,
    ds: &Dataset,
    role: &str,
    spiffe_id: &str,
    archive_id: &[u8; 32],
) -> Result<DataKey, VaultError> {
    let rec = match c.kv_read::<SlotRecord>(&ds.slot_path(role)) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(VaultError::UnknownDataset(format!(
                "no key for dataset {ds} is registered in Vault for {spiffe_id}: the dataset is unknown, or its owner has not allowed this identity (hpcs-pack allow {ds} --add {spiffe_id})"
            )))
        }
        Err(e) if e.is(403) => {
            return Err(VaultError::Denied(format!(
                "{spiffe_id} may not read the key of {ds} (HTTP 403 on {}/{})",
                c.s.kv_mount,
                ds.slot_path(role)
            )))
        }
        Err(e) => return Err(e.into_vault(&c.s.addr, "read the key")),
    };
    if rec.revoked {
        let reason = rec.reason.clone();
        return Err(VaultError::revoked(
            ds,
            rec.revoked_at,
            reason.unwrap_or_else(|| "revoked by the owner".into()),
        ));
    }
    if rec.spiffe_id != spiffe_id || rec.dataset != ds.to_string() {
        return Err(VaultError::Config(format!(
            "the key copy at {}/{} is for {} / {}, not {spiffe_id} / {ds}",
            c.s.kv_mount,
            ds.slot_path(role),
            rec.spiffe_id,
            rec.dataset
        )));
    }
    let mine = hex(archive_id);
    if !crate::crypto::keys::ct_eq(rec.archive_id.as_bytes(), mine.as_bytes()) {
        return Err(VaultError::Rollback {
            dataset: ds.to_string(),
            current: rec.archive_id.chars().take(16).collect(),
            archive: mine.chars().take(16).collect(),
        });
    }
    key_of(&rec.key_hex)
        .ok_or_else(|| VaultError::Config(format!("the key copy of {ds} in Vault is malformed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_errors_get_their_own_meaning() {
        let s = crate::keys::config::Layer::default().resolve(None).unwrap();
        let ds = Dataset::parse("a/b").unwrap();
        let api = |m: &str| CallErr::Api {
            code: 400,
            errors: vec![m.to_string()],
        };
        // The messages OpenBao 2.7 sends (seen against `bao server -dev`).
        assert!(matches!(
            login_error(
                api("error validating token: token is expired"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::SvidExpired { .. }
        ));
        assert!(matches!(
            login_error(api("error validating token: invalid audience (aud) claim: audience claim does not match any expected audience"), &s, "spiffe://t/x", &ds),
            VaultError::WrongAudience { .. }
        ));
        assert!(matches!(
            login_error(
                api("role \"spiffe-00\" could not be found"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::UnknownDataset(_)
        ));
        assert!(matches!(
            login_error(
                api("error validating token: invalid subject (sub) claim"),
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::Denied(_)
        ));
        assert!(matches!(
            login_error(
                CallErr::Api {
                    code: 503,
                    errors: vec!["Vault is sealed".into()]
                },
                &s,
                "spiffe://t/x",
                &ds
            ),
            VaultError::Unreachable { .. }
        ));
    }
}
