//! Assembling an archive's age key stanzas (FORMAT.md, "Key stanzas"): the
//! data key wrapped to every recipient, and next to it the recipient list
//! sealed under the notes key, so that whoever holds the key (and only they)
//! can see who else does. Also the recipient arithmetic of a rewrap: the
//! current list less the removed, plus the added, never none at all.

use std::path::PathBuf;

use crate::crypto::header::{open_note, seal_note, STANZA_AGE, STANZA_RECIPIENTS};
use crate::crypto::{DataKey, Header, Stanza, Suite};

use super::{parse_recipient, read_recipients_file, wrap_recipients, KeyError, Recipient};

/// Why a set of key stanzas could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum StanzaError {
    /// A recipient or recipients file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A recipients file (-R) names nobody.
    #[error("recipients file {} lists no recipient", .0.display())]
    EmptyRecipientsFile(PathBuf),
    /// A recipient to remove is not in the archive's list.
    #[error("{0:?} is not a recipient of this archive")]
    NotARecipient(String),
    /// Nobody could open the archive after the change.
    #[error("refusing to remove the last recipient: nobody could open the archive any more")]
    LastRecipient,
    /// Sealing the recipient list failed (no randomness).
    #[error("{0}")]
    Seal(crate::crypto::Error),
}

/// Parses recipient strings, then the recipients files (each must name at
/// least one); the first of duplicates is kept, in that order.
pub fn collect_recipients(
    list: &[String],
    files: &[PathBuf],
) -> Result<Vec<Recipient>, StanzaError> {
    let mut out = Vec::new();
    for r in list {
        out.push(parse_recipient(r)?);
    }
    for f in files {
        let rs = read_recipients_file(f)?;
        if rs.is_empty() {
            return Err(StanzaError::EmptyRecipientsFile(f.clone()));
        }
        out.extend(rs);
    }
    // Keep the first of duplicates.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.text().to_string()));
    Ok(out)
}

/// The age stanza plus the sealed recipient list.
pub fn age_stanzas(
    key: &DataKey,
    archive_id: &[u8; 32],
    suite: Suite,
    recipients: &[Recipient],
) -> Result<Vec<Stanza>, StanzaError> {
    let mut list = String::new();
    for r in recipients {
        list.push_str(r.text());
        list.push('\n');
    }
    let note = seal_note(key, archive_id, suite, list.as_bytes()).map_err(StanzaError::Seal)?;
    Ok(vec![
        wrap_recipients(key, recipients)?,
        Stanza {
            kind: STANZA_RECIPIENTS,
            body: note,
        },
    ])
}

/// The recipients sealed in `header` (one per line as written), or none if
/// there is no list or it does not open with `key`.
pub fn recipients_note(key: &DataKey, header: &Header) -> Vec<String> {
    header
        .stanzas
        .iter()
        .find(|s| s.kind == STANZA_RECIPIENTS)
        .and_then(|s| open_note(key, &header.archive_id, header.suite, &s.body))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The recipients after a rewrap: `current` less `remove` (each must be
/// there), then `add` and the recipients `files`.
pub fn rewrap_recipients(
    current: &[String],
    remove: &[String],
    add: &[String],
    files: &[PathBuf],
) -> Result<Vec<Recipient>, StanzaError> {
    for r in remove {
        let r = r.trim();
        if !current.iter().any(|c| c == r) {
            return Err(StanzaError::NotARecipient(r.to_string()));
        }
    }
    let mut keep: Vec<String> = current
        .iter()
        .filter(|c| !remove.iter().any(|r| r.trim() == c.as_str()))
        .cloned()
        .collect();
    keep.extend(add.iter().cloned());
    collect_recipients(&keep, files)
}

/// The stanzas of `header` with its age stanza and recipient list replaced
/// by ones for `recipients` (other stanzas, such as Vault's, are kept).
/// Refuses a result nobody could open.
pub fn restanza(
    key: &DataKey,
    header: &Header,
    recipients: &[Recipient],
) -> Result<Vec<Stanza>, StanzaError> {
    let mut stanzas: Vec<Stanza> = header
        .stanzas
        .iter()
        .filter(|s| s.kind != STANZA_AGE && s.kind != STANZA_RECIPIENTS)
        .cloned()
        .collect();
    if recipients.is_empty() && stanzas.is_empty() {
        return Err(StanzaError::LastRecipient);
    }
    if !recipients.is_empty() {
        stanzas.extend(age_stanzas(
            key,
            &header.archive_id,
            header.suite,
            recipients,
        )?);
    }
    Ok(stanzas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::header::STANZA_VAULT;
    use crate::keys::{load_identities, unwrap_age};
    use std::path::Path;

    fn identity(dir: &Path, n: u8) -> (PathBuf, String) {
        let id = age::x25519::Identity::generate();
        let p = dir.join(format!("id{n}.txt"));
        crate::keys::age_keys::write_test_identity(
            &p,
            &format!(
                "{}\n",
                age::secrecy::ExposeSecret::expose_secret(&id.to_string())
            ),
        );
        (p, id.to_public().to_string())
    }

    fn header(key: &DataKey, stanzas: Vec<Stanza>) -> Header {
        Header::seal(key, Suite::Aes256Gcm, 65536, [7; 32], 10, 20, stanzas).unwrap()
    }

    #[test]
    fn stanzas_open_with_every_recipient_and_list_them() {
        let d = tempfile::tempdir().unwrap();
        let (id1, r1) = identity(d.path(), 1);
        let (id2, r2) = identity(d.path(), 2);
        let key = DataKey::generate().unwrap();
        let recipients = collect_recipients(&[r1.clone(), r2.clone(), r1.clone()], &[]).unwrap();
        assert_eq!(recipients.len(), 2, "duplicates dropped");
        let st = age_stanzas(&key, &[7; 32], Suite::Aes256Gcm, &recipients).unwrap();
        assert_eq!(
            st.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [STANZA_AGE, STANZA_RECIPIENTS]
        );
        for id in [&id1, &id2] {
            let got = unwrap_age(&st, &load_identities(id).unwrap()).unwrap();
            assert_eq!(got.expose(), key.expose());
        }
        let h = header(&key, st);
        assert_eq!(recipients_note(&key, &h), [r1, r2]);
        // Another key does not open the list.
        assert!(recipients_note(&DataKey::generate().unwrap(), &h).is_empty());
    }

    #[test]
    fn recipients_files_must_name_someone() {
        let d = tempfile::tempdir().unwrap();
        let (_, r1) = identity(d.path(), 1);
        let empty = d.path().join("empty");
        std::fs::write(&empty, "# nobody\n").unwrap();
        let e = collect_recipients(std::slice::from_ref(&r1), std::slice::from_ref(&empty))
            .unwrap_err();
        assert!(
            matches!(&e, StanzaError::EmptyRecipientsFile(p) if *p == empty),
            "{e}"
        );
        let list = d.path().join("list");
        std::fs::write(&list, format!("{r1}\n")).unwrap();
        assert_eq!(collect_recipients(&[], &[list]).unwrap().len(), 1);
        assert!(matches!(
            collect_recipients(&["nope".into()], &[]),
            Err(StanzaError::Key(KeyError::BadRecipient(_)))
        ));
    }

    #[test]
    fn rewrap_arithmetic() {
        let d = tempfile::tempdir().unwrap();
        let (_, r1) = identity(d.path(), 1);
        let (_, r2) = identity(d.path(), 2);
        let (_, r3) = identity(d.path(), 3);
        let current = vec![r1.clone(), r2.clone()];
        let got = rewrap_recipients(
            &current,
            &[format!(" {r1} ")],
            std::slice::from_ref(&r3),
            &[],
        )
        .unwrap();
        let texts: Vec<&str> = got.iter().map(|r| r.text()).collect();
        assert_eq!(texts, [r2.as_str(), r3.as_str()]);
        let e = rewrap_recipients(&current, std::slice::from_ref(&r3), &[], &[]).unwrap_err();
        assert!(matches!(e, StanzaError::NotARecipient(r) if r == r3));
    }

    #[test]
    fn restanza_keeps_other_stanzas_and_refuses_nobody() {
        let d = tempfile::tempdir().unwrap();
        let (id1, r1) = identity(d.path(), 1);
        let key = DataKey::generate().unwrap();
        let recips = collect_recipients(std::slice::from_ref(&r1), &[]).unwrap();
        let age_only = header(
            &key,
            age_stanzas(&key, &[7; 32], Suite::Aes256Gcm, &recips).unwrap(),
        );
        assert!(matches!(
            restanza(&key, &age_only, &[]),
            Err(StanzaError::LastRecipient)
        ));

        let vault = Stanza {
            kind: STANZA_VAULT,
            body: b"v".to_vec(),
        };
        let mut st = age_only.stanzas.clone();
        st.push(vault.clone());
        let both = header(&key, st);
        // Removing every age recipient leaves the Vault stanza alone.
        assert_eq!(restanza(&key, &both, &[]).unwrap(), vec![vault.clone()]);
        let again = restanza(&key, &both, &recips).unwrap();
        assert_eq!(again[0], vault);
        assert_eq!(again.len(), 3);
        let got = unwrap_age(&again, &load_identities(&id1).unwrap()).unwrap();
        assert_eq!(got.expose(), key.expose());
    }
}
