//! `hpcs-pack pack`: checks the options and recipients, prepares the Vault
//! registration (if any) before a byte is written, scans the source tree,
//! assembles the key stanzas (`hpcs::keys::stanzas`) and writes the archive
//! (`hpcs::pack`), then registers the key in Vault.

use hpcs::crypto::offsets::valid_chunk_size;
use hpcs::crypto::{DataKey, Suite, WriteOptions};
use hpcs::exit::{self, Fail};
use hpcs::keys::stanzas;

use crate::{cli, install_signal_handlers, vault_cmd, Progress, STOP};

/// A chunk size: "64K", "1M", "65536" (at most 4 GiB - 1).
fn parse_size(s: &str) -> Option<u32> {
    hpcs::util::parse_size(s).and_then(|v| u32::try_from(v).ok())
}

fn write_options(w: &cli::WriteArgs) -> Result<WriteOptions, Fail> {
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

pub fn pack(a: cli::PackArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let opts = write_options(&a.write)?;
    let recipients = stanzas::collect_recipients(&a.recipients, &a.recipients_files)?;
    if recipients.is_empty() && !a.vault.vault {
        return Err(Fail::new(
            exit::BAD_RECIPIENT,
            "no recipient: give at least one -r RECIPIENT or -R FILE (or --vault --allow SPIFFE_ID), or nobody could open the archive",
        ));
    }
    if !a.force && std::fs::symlink_metadata(&a.output).is_ok() {
        return Err(hpcs::pack::PackError::OutputExists(a.output.clone()).into());
    }
    // Vault login and checks happen before packing; the key is stored after.
    let vault = vault_cmd::pack_prepare(&a.vault, &a.output)?;
    let scan = hpcs::pack::scan(&a.src, opts.chunk_size)?;
    for w in &scan.warnings {
        hpcs::warn!("{}", w.0);
    }
    let key = DataKey::generate().map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let archive_id = hpcs::crypto::writer::new_archive_id()
        .map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let mut stanzas = if recipients.is_empty() {
        Vec::new()
    } else {
        stanzas::age_stanzas(&key, &archive_id, opts.suite, &recipients)?
    };
    if let Some(v) = &vault {
        stanzas.push(v.stanza());
    }
    let pb = Progress::new(a.quiet, scan.data_len, "packing");
    let start = std::time::Instant::now();
    let packed = hpcs::pack::write(
        &scan,
        &a.output,
        a.force,
        &opts,
        &key,
        archive_id,
        stanzas,
        &mut |done| pb.set(done),
        &STOP,
    )?;
    pb.finish();
    if !a.quiet {
        let secs = start.elapsed().as_secs_f64().max(1e-9);
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
    if let Some(v) = vault {
        v.commit(
            &key,
            &archive_id,
            &a.output,
            !recipients.is_empty(),
            a.quiet,
        )?;
    }
    Ok(())
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
