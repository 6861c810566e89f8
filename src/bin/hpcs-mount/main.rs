//! hpcs-mount: mounts hpcs archives read-only through FUSE, decrypting on
//! demand in locked memory. Thin: parses the command line (cli.rs), checks
//! everything that can be checked before mounting (settings.rs, so startup
//! errors get a clear message and a documented exit code and nothing is left
//! mounted), obtains the data key in one place ([`obtain_key`]), then hands
//! the plain settings to `hpcs::mount`, which runs the `hpcs::fs` filesystem
//! in one of three modes: exec (run a command, unmount when it exits),
//! foreground (serve until unmounted or signalled, readiness through
//! --ready-fd / --pidfile / sd_notify), or --daemon (fork before any thread
//! exists; the parent returns once the child reports the mount ready). A
//! watched process (default: whoever started us) ending also unmounts.

mod cli;
mod settings;
mod vault_key;

use std::process::ExitCode;

use hpcs::crypto::{DataKey, FileSource, Header, Pin, SealedArchive, Source};
use hpcs::exit::{self, Fail};
#[cfg(feature = "bench-ceilings")]
use hpcs::fs::bench::ShapedSource;
use hpcs::fs::MountedArchive;
use hpcs::keys::{self, Identities};
use hpcs::mount;

use cli::Cli;
use settings::{Settings, Sources};

fn main() -> ExitCode {
    let cli: Cli = match exit::parse_args() {
        Ok(c) => c,
        Err(code) => return code,
    };
    hpcs::log::init("hpcs-mount", cli.verbose);
    exit::finish(run(cli))
}

fn run(cli: Cli) -> Result<u8, Fail> {
    if let Some(m) = &cli.unmount {
        return mount::unmount_hpcs(m, cli.lazy).map(|()| exit::OK);
    }
    let Settings {
        sources,
        launch,
        plan,
    } = settings::check(cli)?;
    mount::start(&launch, |watch, daemon_pipe| {
        mount::serve(plan, || open_archives(&sources), watch, daemon_pipe)
    })
}

/// Where the data key of one archive comes from. Today: the age identities
/// given with -i; this is the one place to add other sources (Vault).
fn obtain_key(
    header: &Header,
    label: &str,
    ids: &[Identities],
    vault: &vault_key::VaultMountArgs,
    dataset: Option<&str>,
) -> Result<DataKey, Fail> {
    if vault_key::wanted(header, vault, !ids.is_empty()) || dataset.is_some() {
        return vault_key::obtain(header, label, vault, dataset);
    }
    if ids.is_empty() {
        return Err(Fail::new(
            exit::BAD_IDENTITY,
            "no identity given: pass -i FILE (an age identity the archive was packed for) or set HPCS_IDENTITY",
        ));
    }
    let mut last = None;
    for set in ids {
        match keys::unwrap_age(&header.stanzas, set) {
            Ok(k) => return Ok(k),
            Err(e @ keys::KeyError::NoMatchingIdentity) => last = Some(e),
            Err(e) => return Err(Fail::new(exit::for_key(&e), format!("{label}: {e}"))),
        }
    }
    let e = last.unwrap_or(keys::KeyError::NoMatchingIdentity);
    Err(Fail::new(exit::for_key(&e), format!("{label}: {e}")))
}

/// Refuses an archive whose header has another pin than expected, before
/// any key is fetched.
fn check_pin(header: &Header, want: &Pin, label: &str) -> Result<(), Fail> {
    let have = header.pin();
    if have.matches(want) {
        return Ok(());
    }
    Err(Fail::new(
        exit::ARCHIVE_PIN,
        format!(
            "{label}: this is not the expected archive: its pin is {have}, expected {want} \
             (replaced, an older version, or packed by someone else); nothing was mounted. \
             If you re-packed it yourself, use the new pin `hpcs-pack inspect` prints"
        ),
    ))
}

type Src = Box<dyn Source>;

/// Opens and unlocks every archive (no mount yet).
fn open_archives(s: &Sources) -> Result<Vec<MountedArchive<Src>>, Fail> {
    let mut ids = Vec::new();
    for p in &s.identities {
        ids.push(keys::load_identities(p)?);
    }
    let mut out = Vec::new();
    for (name, path) in &s.archives {
        let label = path.display().to_string();
        let file = FileSource::open(path)
            .map_err(|e| Fail::new(exit::INPUT, format!("cannot open archive {label}: {e}")))?;
        #[cfg(feature = "bench-ceilings")]
        let src: Src = match s.shape {
            Some((lat, bw)) => Box::new(ShapedSource::new(file, lat, bw)),
            None => Box::new(file),
        };
        #[cfg(not(feature = "bench-ceilings"))]
        let src: Src = Box::new(file);
        let sealed = SealedArchive::open(src)
            .map_err(|e| Fail::new(exit::for_format(&e), format!("{label}: {e}")))?;
        let pin = s.pins.get(name);
        if let Some(want) = pin {
            check_pin(sealed.header(), want, &label)?;
        }
        let dataset = s.datasets.get(name).map(String::as_str);
        let key = obtain_key(sealed.header(), &label, &ids, &s.vault, dataset)?;
        let archive = sealed.unlock(&key).map_err(|e| match e {
            // The header carries the pinned id and key check, but the key
            // its stanza gave does not produce that key check: a copy of
            // another archive's id and key check over someone else's key.
            hpcs::crypto::Error::WrongKey if pin.is_some() => Fail::new(
                exit::ARCHIVE_PIN,
                format!(
                    "{label}: the archive carries the expected pin, but its key does not match it \
                     (an archive id and key check copied over another key): this is not the \
                     expected archive; nothing was mounted"
                ),
            ),
            e => Fail::new(exit::for_format(&e), format!("{label}: {e}")),
        })?;
        drop(key); // wiped; the archive keeps only derived keys
        out.push(MountedArchive {
            name: name.clone(),
            label,
            archive,
        });
    }
    Ok(out)
}
