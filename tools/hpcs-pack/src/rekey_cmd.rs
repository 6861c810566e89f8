//! `hpcs-pack rekey`: the archive again under a new data key and a new
//! archive id (so a new pin), for the recipients after the same
//! `--remove-recipient`/`-r` arithmetic as rewrap. Unlike rewrap this is
//! revocation: an old header spliced onto the result opens nothing. The
//! index and data streams are decrypted chunk by chunk in memory (wiped
//! after use) and sealed again straight into a temporary file next to the
//! output, renamed into place when complete; no plaintext reaches the disk.
//! An archive whose key is in Vault keeps its Vault stanza, and its
//! dataset's record is replaced (vault_cmd::RekeyVault) just before the
//! rename.

use std::io::{self, BufWriter};
use std::sync::atomic::Ordering;

use hpcs::crypto::header::{STANZA_AGE, STANZA_RECIPIENTS, STANZA_VAULT};
use hpcs::crypto::{Archive, DataKey, FileSource, SealedArchive, WriteOptions};
use hpcs::exit::{self, Fail};
use hpcs::keys::stanzas::{age_stanzas, StanzaError};
use zeroize::Zeroizing;

use crate::{archive_fail, cli, install_signal_handlers, load_key, open_sealed, STOP};

/// Data chunks decrypted per step (opened in parallel).
const BATCH: u64 = 64;

/// The old archive's data stream as plaintext, in order, a batch of chunks
/// at a time.
struct Plain<'a> {
    archive: &'a Archive<FileSource>,
    next: u64,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    failed: Option<hpcs::crypto::Error>,
}

impl Plain<'_> {
    fn load(&mut self) -> io::Result<()> {
        let g = *self.archive.data_geometry();
        let count = g.chunk_count();
        if self.next >= count {
            return Err(io::Error::other("read past the data stream"));
        }
        let k = BATCH.min(count - self.next);
        let lens: Vec<usize> = (0..k)
            .map(|i| self.archive.chunk_stored_len(self.next + i))
            .collect();
        let mut stored = Zeroizing::new(vec![0u8; lens.iter().sum()]);
        {
            let mut rest: &mut [u8] = &mut stored[..];
            let mut slots: Vec<&mut [u8]> = Vec::with_capacity(lens.len());
            for &l in &lens {
                let (a, b) = std::mem::take(&mut rest).split_at_mut(l);
                slots.push(a);
                rest = b;
            }
            if let Err(e) = self.archive.read_chunks(self.next, &mut slots) {
                let msg = e.to_string();
                self.failed = Some(e);
                return Err(io::Error::other(msg));
            }
        }
        // Capacity was reserved for a whole batch: no reallocation leaves an
        // unwiped copy behind.
        self.plain.clear();
        let mut off = 0;
        for (i, &l) in lens.iter().enumerate() {
            let n = g.chunk_plain_len(self.next + i as u64);
            self.plain.extend_from_slice(&stored[off..off + n]);
            off += l;
        }
        self.next += k;
        self.pos = 0;
        Ok(())
    }

    fn fill(&mut self, mut out: &mut [u8]) -> io::Result<()> {
        while !out.is_empty() {
            if STOP.load(Ordering::Relaxed) {
                return Err(io::Error::other("interrupted"));
            }
            if self.pos == self.plain.len() {
                self.load()?;
            }
            let n = out.len().min(self.plain.len() - self.pos);
            out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
            self.pos += n;
            out = &mut out[n..];
        }
        Ok(())
    }
}

pub fn rekey(args: cli::RekeyArgs) -> Result<(), Fail> {
    let a = &args.w;
    install_signal_handlers();
    let sealed = open_sealed(&a.archive)?;
    let h = sealed.header().clone();
    if let Some(s) = h
        .stanzas
        .iter()
        .find(|s| ![STANZA_AGE, STANZA_RECIPIENTS, STANZA_VAULT].contains(&s.kind))
    {
        return Err(Fail::new(
            exit::USAGE,
            format!(
                "{}: a key stanza of kind {} that this hpcs-pack does not know; rekey would drop it: use the hpcs-pack that wrote it",
                a.archive.display(),
                s.kind
            ),
        ));
    }
    // Vault first: login, current version, identity slots; all before a
    // byte is re-encrypted.
    let vault = crate::vault_cmd::rekey_prepare(&args.v, &a.archive, &h)?;
    let key = match &vault {
        Some(v) if a.id.identities.is_empty() => v.key().clone(),
        _ => load_key(&a.archive, &sealed, &a.id.identities)?,
    };
    let archive = sealed
        .unlock(&key)
        .map_err(|e| archive_fail(&a.archive, &e))?;
    let recipients = crate::rewrap_cmd::new_recipients(a, &key, &h)?;
    if recipients.is_empty() && vault.is_none() {
        return Err(StanzaError::LastRecipient.into());
    }
    let new_key = DataKey::generate().map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let new_id = hpcs::crypto::writer::new_archive_id()
        .map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let mut stanzas = if recipients.is_empty() {
        Vec::new()
    } else {
        age_stanzas(&new_key, &new_id, h.suite, &recipients)?
    };
    if let Some(v) = &vault {
        stanzas.push(v.stanza());
    }
    let index = archive
        .index_plaintext(&key)
        .map_err(|e| archive_fail(&a.archive, &e))?;
    let opts = WriteOptions {
        suite: h.suite,
        chunk_size: h.chunk_size,
        ..WriteOptions::default()
    };

    let (out, replace) = match &a.output {
        Some(o) => (o.clone(), a.force),
        None => (a.archive.clone(), true),
    };
    let out_fail =
        |e: io::Error| Fail::new(exit::OUTPUT, format!("cannot write {}: {e}", out.display()));
    if !replace && std::fs::symlink_metadata(&out).is_ok() {
        return Err(hpcs::pack::PackError::OutputExists(out).into());
    }
    let mut tmp = hpcs::pack::TempOut::create(&out).map_err(out_fail)?;
    let batch_plain = (BATCH as usize) * (h.chunk_size as usize);
    let mut plain = Plain {
        archive: &archive,
        next: 0,
        plain: Zeroizing::new(Vec::with_capacity(batch_plain)),
        pos: 0,
        failed: None,
    };
    let written = {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.file());
        let r = hpcs::crypto::write_archive(
            &mut w,
            &opts,
            &new_key,
            new_id,
            stanzas,
            &index,
            h.data_len,
            &mut |buf: &mut [u8]| plain.fill(buf),
            &mut |_| {},
        );
        match w.into_inner() {
            Ok(_) => r,
            Err(e) => r.and(Err(hpcs::crypto::Error::Io(e.into_error()))),
        }
    };
    if let Some(e) = plain.failed.take() {
        return Err(archive_fail(&a.archive, &e));
    }
    if STOP.load(Ordering::Relaxed) {
        return Err(Fail::new(
            exit::INTERRUPTED,
            format!("interrupted; nothing was written to {}", out.display()),
        ));
    }
    let new_header = written.map_err(|e| match e {
        hpcs::crypto::Error::Io(err) => out_fail(err),
        e => archive_fail(&out, &e),
    })?;
    drop(plain);
    drop(index);
    // The result is durable and opens under the new key before it replaces
    // anything (in Vault, too: the record is replaced only after this).
    tmp.sync().map_err(out_fail)?;
    SealedArchive::open(FileSource::open(tmp.path()).map_err(out_fail)?)
        .and_then(|s| s.unlock(&new_key))
        .map_err(|e| archive_fail(&out, &e))?;
    let status = match vault {
        None => {
            tmp.commit(&out, replace).map_err(out_fail)?;
            None
        }
        Some(v) => Some(v.commit(&new_key, &new_id, tmp, &out, replace)?),
    };
    if !a.quiet {
        eprintln!(
            "rekeyed {}: {} age recipient(s){}; new data key and archive id (pin {} -> {}); earlier headers and the old key open nothing of it",
            out.display(),
            recipients.len(),
            if status.is_some() {
                ", key replaced in Vault"
            } else {
                ""
            },
            h.pin(),
            new_header.pin()
        );
        if let Some(st) = &status {
            crate::vault_cmd::RekeyVault::print(st);
            if out != a.archive {
                eprintln!(
                    "{} is no longer the current version of {}: jobs refuse it (exit {})",
                    a.archive.display(),
                    st.dataset,
                    exit::ROLLBACK
                );
            }
        }
    }
    Ok(())
}
