//! `hpcs-pack pack`: checks the options and recipients, prepares the Vault
//! registration (if any) before a byte is written, scans the source tree,
//! assembles the key stanzas (`hpcs::keys::stanzas`) and writes the archive
//! (`hpcs::pack`), then registers the key in Vault.

use hpcs::crypto::offsets::valid_chunk_size;
use hpcs::crypto::{DataKey, Stanza, Suite, WriteOptions};
use hpcs::exit::{self, Fail};
use hpcs::keys::stanzas;

use crate::{cli, install_signal_handlers, vault_cmd, Progress, STOP};
use hpcs::pack::Packed;

/// A chunk size: "64K", "1M", "65536" (at most 4 GiB - 1).
fn parse_size(s: &str) -> Option<u32> {
    hpcs::util::parse_size(s).and_then(|v| u32::try_from(v).ok())
}

pub fn write_options(w: &cli::WriteArgs) -> Result<WriteOptions, Fail> {
    let suite = Suite::from_name(&w.cipher)
        .ok_or_else(|| Fail::new(exit::USAGE, format!("unknown cipher {:?}", w.cipher)))?;
    let chunk_size = parse_size(&w.chunk_size)
        .filter(|&c| valid_chunk_size(c))
        .ok_or_else(|| {
            Fail::new(
                exit::USAGE,
                format!(
                    "invalid --chunk-size {:?}: use a power of two from 4K to 16M, e.g. 64K or 1M",
                    w.chunk_size
                ),
            )
        })?;
    Ok(WriteOptions {
        suite,
        chunk_size,
        ..WriteOptions::default()
    })
}

/// Who can open a new archive: its data key and id, wrapped to the age
/// recipients and/or prepared for Vault before a byte is written (shared by
/// `pack` and `c4gh-ref`).
pub struct Keying {
    pub key: DataKey,
    pub archive_id: [u8; 32],
    pub stanzas: Vec<Stanza>,
    vault: Option<vault_cmd::PackVault>,
    has_recipients: bool,
}

impl Keying {
    /// Checks the recipients and the output, logs in to Vault if asked
    /// (before packing: the key is stored after), and makes the key.
    pub fn prepare(
        new: &cli::NewArchiveArgs,
        output: &std::path::Path,
        suite: Suite,
    ) -> Result<Keying, Fail> {
        let (vault, force) = (&new.vault, new.force);
        let recipients = stanzas::collect_recipients(&new.recipients, &new.recipients_files)?;
        if recipients.is_empty() && !vault.vault {
            return Err(Fail::new(
                exit::BAD_RECIPIENT,
                "no recipient: give at least one -r RECIPIENT or -R FILE (or --vault --allow SPIFFE_ID), or nobody could open the archive",
            ));
        }
        if !force && std::fs::symlink_metadata(output).is_ok() {
            return Err(hpcs::pack::PackError::OutputExists(output.to_path_buf()).into());
        }
        let vault = vault_cmd::pack_prepare(vault, output)?;
        let key = DataKey::generate().map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
        let archive_id = hpcs::crypto::writer::new_archive_id()
            .map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
        let mut stanzas = if recipients.is_empty() {
            Vec::new()
        } else {
            stanzas::age_stanzas(&key, &archive_id, suite, &recipients)?
        };
        if let Some(v) = &vault {
            stanzas.push(v.stanza());
        }
        Ok(Keying {
            key,
            archive_id,
            stanzas,
            vault,
            has_recipients: !recipients.is_empty(),
        })
    }

    /// Writes the archive with `write` (given the key, id, stanzas and a
    /// progress callback) under a progress bar saying `what` over `total`;
    /// returns it and the seconds it took.
    pub fn write<E>(
        &self,
        quiet: bool,
        total: u64,
        what: &str,
        write: impl FnOnce(&DataKey, [u8; 32], Vec<Stanza>, &mut dyn FnMut(u64)) -> Result<Packed, E>,
    ) -> Result<(Packed, f64), Fail>
    where
        Fail: From<E>,
    {
        let pb = Progress::new(quiet, total, what);
        let start = std::time::Instant::now();
        let packed = write(
            &self.key,
            self.archive_id,
            self.stanzas.clone(),
            &mut |done| pb.set(done),
        )?;
        pb.finish();
        Ok((packed, start.elapsed().as_secs_f64().max(1e-9)))
    }

    /// After the archive was written: registers the key in Vault, if asked.
    pub fn commit(self, output: &std::path::Path, quiet: bool) -> Result<(), Fail> {
        match self.vault {
            Some(v) => v.commit(
                &self.key,
                &self.archive_id,
                output,
                self.has_recipients,
                quiet,
            ),
            None => Ok(()),
        }
    }
}

pub fn pack(a: cli::PackArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let opts = write_options(&a.write)?;
    let keying = Keying::prepare(&a.new, &a.output, opts.suite)?;
    let scan = hpcs::pack::scan(&a.src, opts.chunk_size)?;
    for w in &scan.warnings {
        hpcs::warn!("{}", w.0);
    }
    let (packed, secs) = keying.write(a.new.quiet, scan.data_len, "packing", |k, id, st, p| {
        hpcs::pack::write(&scan, &a.output, a.new.force, &opts, k, id, st, p, &STOP)
    })?;
    if !a.new.quiet {
        eprintln!(
            "packed {} entries ({} files, {} bytes) into {} ({} bytes, {}) in {:.2}s, {:.0} MB/s",
            scan.entries.saturating_sub(1),
            scan.files,
            scan.data_len,
            a.output.display(),
            packed.archive_len,
            opts.suite.name(),
            secs,
            scan.data_len as f64 / secs / 1e6
        );
        eprintln!(
            "pin: {} (mount it with hpcs-mount --pin PIN, or give hpcs-job ARCHIVE@PIN)",
            packed.header.pin()
        );
    }
    keying.commit(&a.output, a.new.quiet)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("8G"), None);
    }
}
