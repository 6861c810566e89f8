//! hpcs-pack: the researcher's tool on the secure device. Thin: parses the
//! command line (cli.rs), calls the hpcs library, maps errors to the numbered
//! exit codes of `hpcs::exit` with a message saying what to do.

mod cli;
mod cli_vault;
mod results_cmd;
mod vault_cmd;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use hpcs::crypto::header::{open_note, seal_note, STANZA_AGE, STANZA_RECIPIENTS, STANZA_VAULT};
use hpcs::crypto::index::Kind;
use hpcs::crypto::offsets::valid_chunk_size;
use hpcs::crypto::{Archive, DataKey, FileSource, SealedArchive, Stanza, Suite, WriteOptions};
use hpcs::exit;
use hpcs::keys::{self, Recipient};
use hpcs::util::hex;

use cli::{Cli, Command};

/// A failure: the exit code and the message for the user.
struct Fail {
    code: u8,
    msg: String,
}

impl Fail {
    fn new(code: u8, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
}

impl From<hpcs::pack::PackError> for Fail {
    fn from(e: hpcs::pack::PackError) -> Fail {
        Fail::new(exit::for_pack(&e), e.to_string())
    }
}
impl From<keys::KeyError> for Fail {
    fn from(e: keys::KeyError) -> Fail {
        Fail::new(exit::for_key(&e), e.to_string())
    }
}
impl From<hpcs::extract::ExtractError> for Fail {
    fn from(e: hpcs::extract::ExtractError) -> Fail {
        Fail::new(exit::for_extract(&e), e.to_string())
    }
}

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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hpcs-pack: error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Fail> {
    match cli.command {
        Command::Pack(a) => pack(a),
        Command::Inspect(a) => inspect(a),
        Command::Verify(a) => verify(a),
        Command::Extract(a) => extract(a),
        Command::Cat(a) => cat(a),
        Command::Rewrap(a) => rewrap(a),
        Command::Register(a) => vault_cmd::register(a),
        Command::Allow(a) => vault_cmd::allow(a),
        Command::Revoke(a) => vault_cmd::revoke(a),
        Command::VaultSetup(a) => vault_cmd::setup(a),
        Command::Results(c) => results_cmd::run(c),
    }
}

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

fn collect_recipients(list: &[String], files: &[PathBuf]) -> Result<Vec<Recipient>, Fail> {
    let mut out = Vec::new();
    for r in list {
        out.push(keys::parse_recipient(r)?);
    }
    for f in files {
        let rs = keys::read_recipients_file(f)?;
        if rs.is_empty() {
            return Err(Fail::new(
                exit::BAD_RECIPIENT,
                format!("recipients file {} lists no recipient", f.display()),
            ));
        }
        out.extend(rs);
    }
    // Keep the first of duplicates.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.text().to_string()));
    Ok(out)
}

/// The age stanza plus the sealed recipient list.
fn age_stanzas(
    key: &DataKey,
    archive_id: &[u8; 32],
    suite: Suite,
    recipients: &[Recipient],
) -> Result<Vec<Stanza>, Fail> {
    let mut list = String::new();
    for r in recipients {
        list.push_str(r.text());
        list.push('\n');
    }
    let note = seal_note(key, archive_id, suite, list.as_bytes())
        .map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    Ok(vec![
        keys::wrap_recipients(key, recipients)?,
        Stanza {
            kind: STANZA_RECIPIENTS,
            body: note,
        },
    ])
}

fn progress_bar(quiet: bool, total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
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
    Some(pb)
}

fn pack(a: cli::PackArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let opts = write_options(&a.write)?;
    let recipients = collect_recipients(&a.recipients, &a.recipients_files)?;
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
        eprintln!("hpcs-pack: warning: {}", w.0);
    }
    let key = DataKey::generate().map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let archive_id = hpcs::crypto::writer::new_archive_id()
        .map_err(|e| Fail::new(exit::INTERNAL, e.to_string()))?;
    let mut stanzas = if recipients.is_empty() {
        Vec::new()
    } else {
        age_stanzas(&key, &archive_id, opts.suite, &recipients)?
    };
    if let Some(v) = &vault {
        stanzas.push(v.stanza());
    }
    let pb = progress_bar(a.quiet, scan.data_len, "packing");
    let start = std::time::Instant::now();
    let packed = hpcs::pack::write(
        &scan,
        &a.output,
        a.force,
        &opts,
        &key,
        archive_id,
        stanzas,
        &mut |done| {
            if let Some(pb) = &pb {
                pb.set_position(done)
            }
        },
        &STOP,
    )?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
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

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, no time-zone database needed).
fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn mode_string(kind: &Kind, mode: u16) -> String {
    let t = match kind {
        Kind::Dir { .. } => 'd',
        Kind::File { .. } => '-',
        Kind::Symlink { .. } => 'l',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if mode & 0o1000 != 0 {
        s.pop();
        s.push('t');
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn inspect(a: cli::InspectArgs) -> Result<(), Fail> {
    let sealed = open_sealed(&a.archive)?;
    let h = sealed.header().clone();
    let archive_len = h.archive_len();
    let overhead = if h.data_len > 0 {
        (archive_len as f64 - h.data_len as f64) / h.data_len as f64 * 100.0
    } else {
        0.0
    };
    let stanza_names: Vec<String> = h
        .stanzas
        .iter()
        .map(|s| match s.kind {
            STANZA_AGE => "age".to_string(),
            STANZA_RECIPIENTS => "recipient-list (sealed)".to_string(),
            STANZA_VAULT => "vault".to_string(),
            k => format!("unknown type {k}"),
        })
        .collect();
    let unlocked = if a.id.identities.is_empty() {
        None
    } else {
        let key = load_key(&a.archive, &sealed, &a.id.identities)?;
        let recips = h
            .stanzas
            .iter()
            .find(|s| s.kind == STANZA_RECIPIENTS)
            .and_then(|s| open_note(&key, &h.archive_id, h.suite, &s.body))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let archive = sealed
            .unlock(&key)
            .map_err(|e| archive_fail(&a.archive, &e))?;
        Some((archive, recips))
    };
    let mut out = std::io::stdout().lock();
    let res = if a.json {
        let mut j = format!(
            "{{\"archive\":{},\"format_version\":1,\"cipher\":\"{}\",\"chunk_size\":{},\"archive_id\":\"{}\",\"data_len\":{},\"index_len\":{},\"archive_len\":{},\"stanzas\":[{}]",
            json_str(&a.archive.display().to_string()),
            h.suite.name(),
            h.chunk_size,
            h.archive_id_hex(),
            h.data_len,
            h.index_len,
            archive_len,
            stanza_names.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(",")
        );
        if let Some((archive, recips)) = &unlocked {
            let t = archive.tree();
            j.push_str(&format!(
                ",\"recipients\":[{}],\"entries\":[",
                recips
                    .iter()
                    .map(|s| json_str(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            let mut first = true;
            for id in 1..t.len() as u32 {
                let n = t.node(id).expect("id < len");
                let kind = match n.kind {
                    Kind::Dir { .. } => "dir",
                    Kind::File { .. } => "file",
                    Kind::Symlink { .. } => "symlink",
                };
                if !first {
                    j.push(',');
                }
                first = false;
                j.push_str(&format!(
                    "{{\"path\":{},\"type\":\"{kind}\",\"mode\":{},\"size\":{},\"mtime\":{}",
                    json_str(&String::from_utf8_lossy(&t.path(id))),
                    n.mode,
                    n.size(),
                    n.mtime
                ));
                if let Some(target) = t.symlink_target(id) {
                    j.push_str(&format!(
                        ",\"target\":{}",
                        json_str(&String::from_utf8_lossy(target))
                    ));
                }
                j.push('}');
            }
            j.push(']');
        }
        j.push('}');
        writeln!(out, "{j}")
    } else {
        (|| -> std::io::Result<()> {
            writeln!(out, "archive:      {}", a.archive.display())?;
            writeln!(out, "format:       hpcs archive v1")?;
            writeln!(out, "cipher:       {}", h.suite.name())?;
            writeln!(out, "chunk size:   {} bytes", h.chunk_size)?;
            writeln!(out, "archive id:   {}", h.archive_id_hex())?;
            writeln!(out, "data:         {} bytes", h.data_len)?;
            writeln!(out, "index:        {} bytes (encrypted)", h.index_len)?;
            writeln!(
                out,
                "archive size: {} bytes ({:.3}% over the data)",
                archive_len, overhead
            )?;
            writeln!(out, "key stanzas:  {}", stanza_names.join(", "))?;
            match &unlocked {
                None => writeln!(
                    out,
                    "(pass -i IDENTITY to see the recipients and the file tree)"
                )?,
                Some((archive, recips)) => {
                    writeln!(out, "recipients:   {}", recips.len())?;
                    for r in recips {
                        writeln!(out, "  {r}")?;
                    }
                    let t = archive.tree();
                    writeln!(
                        out,
                        "entries:      {} ({} files)",
                        t.len() - 1,
                        t.file_count()
                    )?;
                    for id in 1..t.len() as u32 {
                        let n = t.node(id).expect("id < len");
                        let path = String::from_utf8_lossy(&t.path(id)).into_owned();
                        let extra = match t.symlink_target(id) {
                            Some(target) => format!(" -> {}", String::from_utf8_lossy(target)),
                            None => String::new(),
                        };
                        writeln!(
                            out,
                            "{} {:>12} {} {}{}",
                            mode_string(&n.kind, n.mode),
                            n.size(),
                            utc_time(n.mtime),
                            path,
                            extra
                        )?;
                    }
                }
            }
            Ok(())
        })()
    };
    res.map_err(|e| Fail::new(exit::OUTPUT, format!("cannot write to stdout: {e}")))
}

fn verify(a: cli::KeyedArgs) -> Result<(), Fail> {
    let archive = unlock(&a.archive, &a.id.identities)?;
    let total = archive.data_geometry().len();
    let pb = progress_bar(a.quiet, total, "verifying");
    let start = std::time::Instant::now();
    archive
        .verify(&mut |done| {
            if let Some(pb) = &pb {
                pb.set_position(done)
            }
        })
        .map_err(|e| archive_fail(&a.archive, &e))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if !a.quiet {
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "{}: OK: header, index and {} data chunks authentic ({} bytes in {:.2}s, {:.0} MB/s)",
            a.archive.display(),
            archive.data_geometry().chunk_count(),
            total,
            secs,
            total as f64 / secs / 1e6
        );
    }
    Ok(())
}

fn extract(a: cli::ExtractArgs) -> Result<(), Fail> {
    for p in &a.paths {
        hpcs::extract::check_request(p)?;
    }
    let archive = unlock(&a.archive, &a.id.identities)?;
    let pb = progress_bar(a.quiet, archive.data_geometry().len(), "extracting");
    let r = hpcs::extract::extract(&archive, &a.output, &a.paths, &mut |done| {
        if let Some(pb) = &pb {
            pb.set_position(done)
        }
    })?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
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
    let id = archive
        .tree()
        .resolve(&a.path)
        .ok_or_else(|| hpcs::extract::ExtractError::NotFound(a.path.clone()))?;
    if archive.extent(id).is_none() {
        return Err(Fail::new(
            exit::BAD_PATH,
            format!("{:?} is not a regular file in the archive", a.path),
        ));
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    hpcs::extract::cat(&archive, id, &mut w)?;
    w.flush()
        .map_err(|e| Fail::new(exit::OUTPUT, format!("cannot write to stdout: {e}")))
}

fn rewrap(a: cli::RewrapArgs) -> Result<(), Fail> {
    install_signal_handlers();
    let sealed = open_sealed(&a.archive)?;
    let key = load_key(&a.archive, &sealed, &a.id.identities)?;
    let h = sealed.header().clone();
    // Authenticate the header and the archive's structure before touching it.
    let archive = sealed
        .unlock(&key)
        .map_err(|e| archive_fail(&a.archive, &e))?;
    drop(archive);
    let current: Vec<String> = h
        .stanzas
        .iter()
        .find(|s| s.kind == STANZA_RECIPIENTS)
        .and_then(|s| open_note(&key, &h.archive_id, h.suite, &s.body))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut keep: Vec<String> = Vec::new();
    for r in &a.remove {
        let r = r.trim();
        if !current.iter().any(|c| c == r) {
            return Err(Fail::new(
                exit::BAD_RECIPIENT,
                format!(
                    "{r:?} is not a recipient of {} (see `hpcs-pack inspect -i …`)",
                    a.archive.display()
                ),
            ));
        }
    }
    for c in &current {
        if !a.remove.iter().any(|r| r.trim() == c) {
            keep.push(c.clone());
        }
    }
    keep.extend(a.recipients.iter().cloned());
    let recipients = collect_recipients(&keep, &a.recipients_files)?;
    let others: Vec<Stanza> = h
        .stanzas
        .iter()
        .filter(|s| s.kind != STANZA_AGE && s.kind != STANZA_RECIPIENTS)
        .cloned()
        .collect();
    if recipients.is_empty() && others.is_empty() {
        return Err(Fail::new(
            exit::BAD_RECIPIENT,
            "refusing to remove the last recipient: nobody could open the archive any more",
        ));
    }
    let mut stanzas = others;
    if !recipients.is_empty() {
        stanzas.extend(age_stanzas(&key, &h.archive_id, h.suite, &recipients)?);
    }
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
    write_with_header(&a.archive, &h, &new_header, &out, replace, &key)?;
    if !a.quiet {
        eprintln!(
            "rewrapped {}: {} recipient(s); data region unchanged (archive id {})",
            out.display(),
            recipients.len(),
            hex(&h.archive_id[..8])
        );
    }
    Ok(())
}

/// Writes `src`'s streams after header `new` (replacing `old`) to `out`
/// atomically: temp file, byte-for-byte copy of the data and index regions,
/// sync, rename (replacing `out` only if `replace`). Then checks the result
/// opens with `key`. Shared by `rewrap` and `register`.
pub(crate) fn write_with_header(
    src: &Path,
    old: &hpcs::crypto::Header,
    new: &hpcs::crypto::Header,
    out: &Path,
    replace: bool,
    key: &DataKey,
) -> Result<(), Fail> {
    let out_err =
        |e: std::io::Error| Fail::new(exit::OUTPUT, format!("cannot write {}: {e}", out.display()));
    let tmp = hpcs::pack::TempOut::create(out).map_err(out_err)?;
    {
        let mut w = tmp.file();
        w.write_all(&new.to_bytes()).map_err(out_err)?;
        let mut file = std::fs::File::open(src)
            .map_err(|e| Fail::new(exit::INPUT, format!("cannot open {}: {e}", src.display())))?;
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(old.data_offset()))
            .map_err(|e| Fail::new(exit::INPUT, e.to_string()))?;
        let want = old.archive_len() - old.data_offset();
        // std::io::copy uses copy_file_range between files on Linux.
        let n = std::io::copy(&mut (&mut file).take(want), &mut w).map_err(out_err)?;
        if n != want {
            return Err(Fail::new(
                exit::LENGTH,
                format!(
                    "{} changed while its header was rewritten; try again",
                    src.display()
                ),
            ));
        }
    }
    if STOP.load(Ordering::Relaxed) {
        return Err(Fail::new(
            exit::INTERRUPTED,
            "interrupted; the archive was not changed",
        ));
    }
    tmp.commit(out, replace).map_err(out_err)?;
    // Check what we wrote opens with the same key before reporting success.
    open_sealed(out)?
        .unlock(key)
        .map_err(|e| archive_fail(out, &e))?;
    Ok(())
}

use std::io::Read;

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn utc() {
        assert_eq!(super::utc_time(0), "1970-01-01 00:00");
        assert_eq!(super::utc_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(super::utc_time(1_795_332_137), "2026-11-22 07:22");
        assert_eq!(super::utc_time(-60), "1969-12-31 23:59");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("8G"), None);
    }
}
