//! The job's side on a compute node ([`release_key`]): fetch a JWT-SVID from
//! the Workload API, log in to the JWT auth mount through the identity slot
//! of that SPIFFE ID, read the key copy registered for it, check the archive
//! id pin (no rollback), and revoke the Vault token. The caller still checks
//! the key against the header's key commitment.
//!
//! [`release_for_archive`] is the whole mount side from an archive's header
//! (its stanza, the settings layers, the release); [`wanted`] says whether an
//! archive's key comes from Vault at all. A mount binary only maps its flags
//! to a [`Layer`].

use serde_json::json;

use super::conn::{client_token, CallErr, Conn};
use super::error::VaultError;
use super::names::{slot_role, Dataset, VaultRef};
use super::records::{key_of, SlotRecord};
use crate::crypto::{DataKey, Header, Stanza};
use crate::keys::config::{self, Layer, Notice, Settings};
use crate::keys::spiffe::fetch_jwt_svid;
use crate::util::hex;

/// Everything [`release_key`] learnt besides the key.
#[derive(Debug, Clone)]
pub struct Released {
    /// The dataset whose key was released (as the archive's stanza names it).
    pub dataset: String,
    /// The SPIFFE ID the key was released to.
    pub spiffe_id: String,
    /// Whether the Vault token was revoked (false: it expires by itself).
    pub token_revoked: bool,
}

impl std::fmt::Display for Released {
    /// The log line: `key of dataset D released by Vault to ID[; Vault token revoked]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "key of dataset {} released by Vault to {}{}",
            self.dataset,
            self.spiffe_id,
            if self.token_revoked {
                "; Vault token revoked"
            } else {
                ""
            }
        )
    }
}

/// Whether the key of an archive with these `stanzas` comes from Vault:
/// when `forced` (hpcs-mount's `--vault`), or when the archive has a Vault
/// stanza and no age identities were given.
pub fn wanted(stanzas: &[Stanza], forced: bool, have_identities: bool) -> bool {
    forced || (!have_identities && VaultRef::find(stanzas).is_some())
}

/// The mount side from an archive's header: takes its Vault stanza, refuses
/// an archive of another dataset than `want_dataset` (if given), resolves the
/// settings (`flags` over the environment and config files, over the stanza;
/// see [`crate::keys::config`]) and releases the key ([`release_key_with`]).
/// `notice` hears retries. The caller still checks the key against the
/// header (`SealedArchive::unlock`).
pub fn release_for_archive(
    header: &Header,
    want_dataset: Option<&str>,
    flags: Layer,
    notice: Option<Notice>,
) -> Result<(DataKey, Released), VaultError> {
    let vref = match VaultRef::find(&header.stanzas) {
        Some(r) => r?,
        None => {
            return Err(VaultError::UnknownDataset(
                "the archive names no Vault key (register it with `hpcs-pack register`, or open it with -i)".into(),
            ))
        }
    };
    if let Some(want) = want_dataset {
        if want != vref.dataset {
            return Err(VaultError::WrongDataset(format!(
                "the archive is dataset {}, not the expected {want} (--vault-dataset): it is not the archive this mount was told to open; nothing was mounted",
                vref.dataset
            )));
        }
    }
    let mut s = config::load(flags)?.resolve(Some(&vref))?;
    s.notice = notice;
    release_key_with(&s, &vref, &header.archive_id)
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
        Ok(v) => client_token(v.as_ref())
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
                dataset: vref.dataset.clone(),
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
    check_copy(
        &rec,
        ds,
        spiffe_id,
        archive_id,
        &format!("{}/{}", c.s.kv_mount, ds.slot_path(role)),
    )
}

/// The key in the copy `rec` read at `place`, if it is live, for
/// `spiffe_id` and `ds`, and pinned to `archive_id` (no I/O, so the fuzz
/// targets reach it).
pub(super) fn check_copy(
    rec: &SlotRecord,
    ds: &Dataset,
    spiffe_id: &str,
    archive_id: &[u8; 32],
    place: &str,
) -> Result<DataKey, VaultError> {
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
            "the key copy at {place} is for {} / {}, not {spiffe_id} / {ds}",
            rec.spiffe_id, rec.dataset
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

    fn header_with(stanzas: Vec<Stanza>) -> Header {
        let key = DataKey::from_bytes([3; 32]);
        let suite = crate::crypto::Suite::Aes256Gcm;
        Header::seal(&key, suite, 65536, [9; 32], 0, 0, stanzas).unwrap()
    }

    #[test]
    fn vault_is_wanted_when_forced_or_named_without_identities() {
        let vault = vec![VaultRef::new("a/b", "hpcs", "hpcs-jwt", "hpcs").to_stanza()];
        let age = vec![Stanza {
            kind: crate::crypto::header::STANZA_AGE,
            body: vec![1],
        }];
        assert!(wanted(&vault, false, false));
        assert!(!wanted(&vault, false, true), "identities win unless forced");
        assert!(wanted(&vault, true, true));
        assert!(!wanted(&age, false, false));
        assert!(
            wanted(&age, true, false),
            "forced: the release says why not"
        );
    }

    #[test]
    fn archives_without_the_wanted_vault_key_are_refused_before_any_call() {
        let refused = |stanzas: Vec<Stanza>, want: Option<&str>| {
            let h = header_with(stanzas);
            match release_for_archive(&h, want, Layer::default(), None) {
                Ok(_) => panic!("a key was released"),
                Err(e) => e,
            }
        };
        let e = refused(vec![], None);
        assert!(
            matches!(&e, VaultError::UnknownDataset(m) if m.contains("names no Vault key")),
            "{e}"
        );
        let vault = VaultRef::new("alice/x", "hpcs", "hpcs-jwt", "hpcs").to_stanza();
        let e = refused(vec![vault], Some("alice/y"));
        assert!(
            matches!(&e, VaultError::WrongDataset(m)
                if m.contains("dataset alice/x, not the expected alice/y")),
            "{e}"
        );
        let bad = Stanza {
            kind: crate::crypto::header::STANZA_VAULT,
            body: b"not json".to_vec(),
        };
        let e = refused(vec![bad], None);
        assert!(matches!(e, VaultError::Config(_)), "{e}");
    }

    #[test]
    fn the_release_line_says_to_whom_and_whether_the_token_went() {
        let mut r = Released {
            dataset: "alice/x".into(),
            spiffe_id: "spiffe://t/job".into(),
            token_revoked: true,
        };
        assert_eq!(
            r.to_string(),
            "key of dataset alice/x released by Vault to spiffe://t/job; Vault token revoked"
        );
        r.token_revoked = false;
        assert_eq!(
            r.to_string(),
            "key of dataset alice/x released by Vault to spiffe://t/job"
        );
    }
}
