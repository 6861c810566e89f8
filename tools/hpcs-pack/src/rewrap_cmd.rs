//! `hpcs-pack rewrap`: changes who can open an archive by rewriting only its
//! header (the key stanzas); the data region is copied byte for byte. The
//! stanza arithmetic is `hpcs::keys::stanzas`, the atomic rewrite
//! `hpcs::rewrap`, whose failures [`rewrite_fail`] maps for `register` too.

use hpcs::crypto::{DataKey, Header};
use hpcs::exit::{self, Fail};
use hpcs::keys::stanzas::{recipients_note, restanza, rewrap_recipients, StanzaError};
use hpcs::keys::Recipient;
use hpcs::rewrap::{self, RewriteError};
use hpcs::util::hex;

use crate::{archive_fail, cli, install_signal_handlers, load_key, open_sealed, STOP};

/// The age recipients `a` asks for: the archive's current ones (from its
/// encrypted recipients note) minus `--remove-recipient`, plus the added
/// ones (rewrap and rekey alike).
pub(crate) fn new_recipients(
    a: &cli::RewrapArgs,
    key: &DataKey,
    h: &Header,
) -> Result<Vec<Recipient>, Fail> {
    let current = recipients_note(key, h);
    rewrap_recipients(&current, &a.remove, &a.recipients, &a.recipients_files).map_err(
        |e| match e {
            StanzaError::NotARecipient(r) => Fail::new(
                exit::BAD_RECIPIENT,
                format!(
                    "{r:?} is not a recipient of {} (see `hpcs-pack inspect -i …`)",
                    a.archive.display()
                ),
            ),
            e => e.into(),
        },
    )
}

pub fn rewrap(a: cli::RewrapArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let sealed = open_sealed(&a.archive)?;
    let key = load_key(&a.archive, &sealed, &a.id.identities)?;
    let h = sealed.header().clone();
    // Authenticate the header and the archive's structure before touching it.
    let archive = sealed
        .unlock(&key)
        .map_err(|e| archive_fail(&a.archive, &e))?;
    drop(archive);
    let recipients = new_recipients(&a, &key, &h)?;
    let stanzas = restanza(&key, &h, &recipients)?;
    let new_header = h
        .with_stanzas(&key, stanzas)
        .map_err(|e| archive_fail(&a.archive, &e))?;

    let (out, replace) = match &a.output {
        Some(o) => (o.clone(), a.force),
        None => (a.archive.clone(), true),
    };
    if !replace && std::fs::symlink_metadata(&out).is_ok() {
        return Err(hpcs::pack::PackError::OutputExists(out).into());
    }
    rewrap::write_with_header(&a.archive, &h, &new_header, &out, replace, &key, &STOP)
        .map_err(rewrite_fail)?;
    if !a.quiet {
        eprintln!(
            "rewrapped {}: {} recipient(s); data region unchanged (archive id {}, pin {} unchanged)",
            out.display(),
            recipients.len(),
            hex(&h.archive_id[..8]),
            h.pin()
        );
    }
    Ok(())
}

/// The failure for a header rewrite (`hpcs::rewrap::write_with_header`,
/// used by `rewrap` and `register`): a result that does not open gets the
/// same hint as any damaged archive.
pub fn rewrite_fail(e: RewriteError) -> Fail {
    match e {
        RewriteError::Check { path, err } => archive_fail(&path, &err),
        e => e.into(),
    }
}
