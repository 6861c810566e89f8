//! hpcs-pack: the researcher's tool on the secure device. Thin: parses the
//! command line (cli.rs), calls the hpcs library, maps errors to the numbered
//! exit codes of `hpcs::exit` with a message saying what to do. One file per
//! command that needs more than a screen (pack_cmd, inspect, rewrap_cmd, rekey_cmd,
//! vault_cmd, results_cmd); here the opening of an archive they share, and
//! verify, extract and cat.

mod c4gh_cmd;
mod cli;
mod cli_vault;
mod inspect;
mod pack_cmd;
mod rekey_cmd;
mod results_cmd;
mod rewrap_cmd;
mod secret_input;
mod vault_cmd;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use hpcs::crypto::{Archive, DataKey, FileSource, SealedArchive};
use hpcs::exit::{self, Fail};
use hpcs::keys;
use hpcs::reference::ExternalFiles;

use cli::{Cli, Command};

/// Set by SIGINT/SIGTERM; long operations poll it and clean up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` is given a valid function pointer.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = match exit::parse_args() {
        Ok(c) => c,
        Err(code) => return code,
    };
    hpcs::log::init("hpcs-pack", 0);
    hpcs::log::set_names(cli.log_names);
    exit::finish(run(cli).map(|()| exit::OK))
}

fn run(cli: Cli) -> Result<(), Fail> {
    match cli.command {
        Command::Pack(a) => pack_cmd::pack(a),
        Command::C4ghRef(a) => c4gh_cmd::c4gh_ref(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Verify(a) => verify(a),
        Command::Extract(a) => extract(a),
        Command::Cat(a) => cat(a),
        Command::Rewrap(a) => rewrap_cmd::rewrap(a),
        Command::Rekey(a) => rekey_cmd::rekey(a),
        Command::Register(a) => vault_cmd::register(a),
        Command::Allow(a) => vault_cmd::allow(a),
        Command::Revoke(a) => vault_cmd::revoke(a),
        Command::VaultSetup(a) => vault_cmd::setup(a),
        Command::Results(c) => results_cmd::run(c),
    }
}

/// A progress bar on stderr; nothing with -q or when stderr is not a terminal.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(quiet: bool, total: u64, what: &str) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Progress(Some(pb))
    }

    /// Bytes done so far.
    fn set(&self, done: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(done)
        }
    }

    /// Removes the bar.
    fn finish(self) {
        if let Some(pb) = self.0 {
            pb.finish_and_clear();
        }
    }
}

fn open_sealed(path: &Path) -> Result<SealedArchive<FileSource>, Fail> {
    let src = FileSource::open(path)
        .map_err(|e| Fail::new(exit::INPUT, format!("cannot open {}: {e}", path.display())))?;
    SealedArchive::open(src).map_err(|e| archive_fail(path, &e))
}

fn archive_fail(path: &Path, e: &hpcs::crypto::Error) -> Fail {
    let hint = match exit::for_format(e) {
        exit::NOT_ARCHIVE => "; is this the right file?",
        exit::HEADER | exit::LENGTH | exit::PAYLOAD => {
            "; do not use it: fetch a fresh copy from where it was packed"
        }
        _ => "",
    };
    Fail::new(
        exit::for_format(e),
        format!("{}: {e}{hint}", path.display()),
    )
}

/// An extract or cat failure, naming the archive first.
fn in_archive(path: &Path, e: hpcs::extract::ExtractError) -> Fail {
    let mut f = Fail::from(e);
    f.msg = format!("{}: {}", path.display(), f.msg);
    f
}

fn load_key(
    path: &Path,
    sealed: &SealedArchive<FileSource>,
    ids: &[PathBuf],
) -> Result<DataKey, Fail> {
    if ids.is_empty() {
        return Err(Fail::new(
            exit::BAD_IDENTITY,
            format!(
                "no identity given: pass -i IDENTITY_FILE to open {}",
                path.display()
            ),
        ));
    }
    let mut last = None;
    for id in ids {
        let idents = keys::load_identities(id)?;
        match keys::unwrap_age(&sealed.header().stanzas, &idents) {
            Ok(k) => return Ok(k),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one identity").into())
}

fn unlock(path: &Path, ids: &[PathBuf]) -> Result<Archive<FileSource>, Fail> {
    let sealed = open_sealed(path)?;
    let key = load_key(path, &sealed, ids)?;
    sealed.unlock(&key).map_err(|e| archive_fail(path, &e))
}

/// The external Crypt4GH files of a reference archive (none for a plain
/// one), checked against their records.
fn externals(path: &Path, archive: &Archive<FileSource>) -> Result<ExternalFiles, Fail> {
    Ok(ExternalFiles::open(archive, path, true)?)
}

fn verify(a: cli::KeyedArgs) -> Result<(), Fail> {
    let archive = unlock(&a.archive, &a.id.identities)?;
    let ext = externals(&a.archive, &archive)?;
    let data = archive.data_geometry().len();
    let stored: u64 = archive
        .tree()
        .externals()
        .iter()
        .map(|e| e.c4gh_len())
        .sum();
    let pb = Progress::new(a.quiet, data + stored, "verifying");
    let start = std::time::Instant::now();
    archive
        .verify(&mut |done| pb.set(done))
        .map_err(|e| archive_fail(&a.archive, &e))?;
    ext.verify(&archive, &mut |done| pb.set(data + done))?;
    pb.finish();
    if !a.quiet {
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let total = data + stored;
        let c4gh = if ext.is_empty() {
            String::new()
        } else {
            format!(
                ", and every segment of {} external Crypt4GH files",
                ext.len()
            )
        };
        eprintln!(
            "{}: OK: header, index and {} data chunks authentic{c4gh} ({} bytes in {:.2}s, {:.0} MB/s)",
            a.archive.display(),
            archive.data_geometry().chunk_count(),
            total,
            secs,
            total as f64 / secs / 1e6
        );
    }
    Ok(())
}

/// Bytes the external files of `archive` show.
fn ext_shown(archive: &Archive<FileSource>) -> u64 {
    let t = archive.tree();
    (0..t.len() as u32)
        .filter_map(|id| t.node(id))
        .filter(|n| matches!(n.kind, hpcs::crypto::Kind::External { .. }))
        .map(|n| n.size())
        .sum()
}

fn extract(a: cli::ExtractArgs) -> Result<(), Fail> {
    for p in &a.paths {
        hpcs::extract::check_request(p)?;
    }
    let archive = unlock(&a.archive, &a.id.identities)?;
    let ext = externals(&a.archive, &archive)?;
    let total = archive.data_geometry().len() + ext_shown(&archive);
    let pb = Progress::new(a.quiet, total, "extracting");
    let r = hpcs::extract::extract(&archive, &ext, &a.output, &a.paths, &mut |done| {
        pb.set(done)
    })
    .map_err(|e| in_archive(&a.archive, e))?;
    pb.finish();
    if !a.quiet {
        eprintln!(
            "extracted {} files ({} bytes) into {}",
            r.files,
            r.bytes,
            a.output.display()
        );
    }
    Ok(())
}

fn cat(a: cli::CatArgs) -> Result<(), Fail> {
    hpcs::extract::check_request(&a.path)?;
    let archive = unlock(&a.archive, &a.id.identities)?;
    let ext = externals(&a.archive, &archive)?;
    let id = archive
        .tree()
        .resolve(&a.path)
        .ok_or_else(|| hpcs::extract::ExtractError::NotFound(a.path.clone()))?;
    let is_file = archive.tree().node(id).is_some_and(|n| {
        matches!(
            n.kind,
            hpcs::crypto::Kind::File { .. } | hpcs::crypto::Kind::External { .. }
        )
    });
    if !is_file {
        return Err(Fail::new(
            exit::BAD_PATH,
            format!(
                "{}: {} is not a regular file in the archive",
                a.archive.display(),
                hpcs::log::Name(a.path.as_bytes())
            ),
        ));
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    hpcs::extract::cat(&archive, &ext, id, &mut w).map_err(|e| in_archive(&a.archive, e))?;
    w.flush()
        .map_err(|e| Fail::new(exit::OUTPUT, format!("cannot write to stdout: {e}")))
}
