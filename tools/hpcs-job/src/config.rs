//! Turns raw command-line flags into a checked [`JobSpec`]: archives exist
//! and carry the hpcs magic, scripts are executable, paths are absolute,
//! names are unique, and every value written into an `#SBATCH` line or the
//! script is free of characters that could break out of it. The script
//! generator (`script.rs`) takes only a `JobSpec` and does no checking.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hpcs::crypto::{pin, FileSource, Pin, SealedArchive};
use hpcs::keys::vault::VaultRef;

use crate::cli::Cli;
use crate::error::{invalid, Error};

/// First 8 bytes of every hpcs archive (FORMAT.md, header offset 0).
pub const MAGIC: [u8; 8] = *b"\x89HPCS\r\n\x1a";

/// Placeholder replaced by the mount root at run time.
pub const ROOT: &str = "{root}";

/// What an archive is mounted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    Container,
    Secret,
}

impl Kind {
    /// The environment variable naming the first mount of this kind.
    pub fn env_var(self) -> &'static str {
        match self {
            Kind::Data => "HPCS_DATA",
            Kind::Container => "HPCS_CONTAINER",
            Kind::Secret => "HPCS_SECRET",
        }
    }
}

/// One archive to mount at `<mount root>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: Kind,
    /// Absolute path of the archive.
    pub archive: String,
    pub name: String,
    /// The expected pin (hpcs-mount --pin); `None` only with --insecure-no-pins.
    pub pin: Option<String>,
    /// With --vault: the dataset the archive names (hpcs-mount --vault-dataset).
    pub dataset: Option<String>,
}

/// Where hpcs-mount gets the archive keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `-i FILE` (absolute path).
    Identity(String),
    /// `--vault [--audience AUD]`.
    Vault { audience: Option<String> },
}

/// A fully checked job description.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// `#SBATCH` option words, one per line, already checked.
    pub sbatch: Vec<String>,
    pub mounts: Vec<MountSpec>,
    pub key: KeySource,
    /// Application argv (may contain {root}).
    pub app: Vec<String>,
    /// For a secret script: its path template, checked at run time.
    pub secret_entry: Option<String>,
    pub verify_input: Vec<String>,
    pub verify_output: Vec<String>,
    /// Mount root template (absolute; may contain %j and %u).
    pub mount_root: String,
    pub hpcs_mount: String,
    pub mount_args: Vec<String>,
    /// Results directory template (absolute; may contain %j and %u).
    pub results: Option<String>,
    /// Their recipients.
    pub results_recipients: Vec<String>,
    /// Or their Crypt4GH public key files (absolute paths).
    pub results_c4gh_recipients: Vec<String>,
    /// Scratch directory template and size (`DIR[:SIZE]`; DIR absolute, may
    /// contain %j and %u).
    pub scratch: Option<String>,
    /// Paths in scratch copied into the results after the application.
    pub scratch_keep: Vec<String>,
    /// With results: the run id of each node's mount (index SLURM_NODEID),
    /// fixed now so the user can require them (`--expect-run`).
    pub results_runs: Vec<String>,
    /// Mount through an srun step on every node.
    pub srun: bool,
    pub mount_timeout: u32,
}

impl JobSpec {
    /// Checks `cli` and builds the spec.
    pub fn from_cli(cli: &Cli) -> Result<JobSpec, Error> {
        let mut mounts = Vec::new();
        let pins = Pins {
            off: cli.insecure_no_pins,
            vault: cli.vault,
        };
        for d in &cli.data {
            mounts.push(mount_spec(Kind::Data, d, None, pins)?);
        }
        if let Some(c) = &cli.container {
            mounts.push(mount_spec(Kind::Container, c, Some("container"), pins)?);
        }
        let mut secret_entry = None;
        let app = if let Some(s) = &cli.secret_script {
            let m = mount_spec(Kind::Secret, s, Some("job"), pins)?;
            let entry = relative_entry(&cli.secret_entry)?;
            let path = format!("{ROOT}/{}/{entry}", m.name);
            mounts.push(m);
            secret_entry = Some(path.clone());
            let mut argv = vec![path];
            argv.extend(cli.app_args.iter().cloned());
            argv
        } else {
            let app = cli
                .app
                .clone()
                .ok_or_else(|| invalid("give --app CMD or --secret-script ARCHIVE"))?;
            if app.is_empty() {
                return Err(invalid("--app is empty"));
            }
            let mut argv = vec![app];
            argv.extend(cli.app_args.iter().cloned());
            argv
        };
        for a in &app {
            no_control("--app/--app-arg", a)?;
        }
        if mounts.is_empty() {
            return Err(invalid(
                "nothing to mount: give at least one --data, --container or --secret-script",
            ));
        }
        for (i, m) in mounts.iter().enumerate() {
            if mounts[..i].iter().any(|o| o.name == m.name) {
                return Err(invalid(format!(
                    "two archives would be mounted under the same name '{}': give distinct names with ARCHIVE:NAME",
                    m.name
                )));
            }
        }

        let key = match (&cli.identity, cli.vault) {
            (Some(id), false) => KeySource::Identity(identity_path(id)?),
            (None, true) => {
                if let Some(a) = &cli.audience {
                    word("--audience", a, |c| {
                        c.is_ascii_graphic() && c != '\'' && c != '"'
                    })?;
                }
                KeySource::Vault {
                    audience: cli.audience.clone(),
                }
            }
            (None, false) => {
                return Err(invalid(
                    "give --identity FILE or --vault so that hpcs-mount can open the archives",
                ))
            }
            (Some(_), true) => return Err(invalid("--identity and --vault exclude each other")),
        };

        let verify_input = cli
            .verify_input
            .iter()
            .map(|s| script_path("--verify-input", s))
            .collect::<Result<_, _>>()?;
        let verify_output = cli
            .verify_output
            .iter()
            .map(|s| script_path("--verify-output", s))
            .collect::<Result<_, _>>()?;

        let mount_root = mount_root(&cli.mount_root)?;
        let results = match &cli.results {
            None if !cli.results_recipients.is_empty() => {
                return Err(invalid("--results-recipient needs --results DIR"))
            }
            None if !cli.results_c4gh_recipients.is_empty() => {
                return Err(invalid("--results-c4gh-recipient needs --results DIR"))
            }
            None => None,
            Some(r) => {
                if cli.results_recipients.is_empty() && cli.results_c4gh_recipients.is_empty() {
                    return Err(invalid(
                        "--results needs --results-recipient RECIPIENT or --results-c4gh-recipient PUBKEY: the results are encrypted to you",
                    ));
                }
                for r in &cli.results_recipients {
                    let ok = (r.starts_with("age1") || r.starts_with("ssh-"))
                        && r.chars().all(|c| c.is_ascii_graphic() || c == ' ');
                    if !ok {
                        return Err(invalid(format!(
                            "--results-recipient {r:?}: expected an age recipient (age1…) or an SSH public key (ssh-ed25519 …)"
                        )));
                    }
                }
                if mounts.iter().any(|m| m.name == RESULTS_NAME) {
                    return Err(invalid(format!(
                        "an archive is mounted as '{RESULTS_NAME}', the name of the results directory: give it another name with ARCHIVE:NAME"
                    )));
                }
                Some(results_dir(r)?)
            }
        };
        let scratch = match &cli.scratch {
            None => None,
            Some(sc) => {
                if mounts.iter().any(|m| m.name == SCRATCH_NAME) {
                    return Err(invalid(format!(
                        "an archive is mounted as '{SCRATCH_NAME}', the name of the scratch directory: give it another name with ARCHIVE:NAME"
                    )));
                }
                Some(scratch_dir(sc)?)
            }
        };
        if !cli.scratch_keep.is_empty() && (scratch.is_none() || results.is_none()) {
            return Err(invalid(
                "--scratch-keep copies from the scratch directory into the results directory: it needs --scratch and --results",
            ));
        }
        let scratch_keep = cli
            .scratch_keep
            .iter()
            .map(|k| {
                relative_path(
                    "--scratch-keep",
                    k,
                    "a path inside the scratch directory, like out/table.h5",
                )
                .map(str::to_string)
            })
            .collect::<Result<_, _>>()?;
        let hpcs_mount = program("--hpcs-mount", &cli.hpcs_mount)?;
        for a in &cli.mount_args {
            no_control("--mount-arg", a)?;
        }
        if cli.nodes == 0 {
            return Err(invalid("--nodes must be at least 1"));
        }
        if cli.mount_timeout == 0 {
            return Err(invalid("--mount-timeout must be at least 1 second"));
        }

        let results_runs = match &results {
            None => Vec::new(),
            Some(_) => (0..cli.nodes)
                .map(|_| new_run_id())
                .collect::<Result<_, _>>()?,
        };
        Ok(JobSpec {
            sbatch: sbatch_lines(cli)?,
            mounts,
            key,
            app,
            secret_entry,
            verify_input,
            verify_output,
            mount_root,
            hpcs_mount,
            mount_args: cli.mount_args.clone(),
            results,
            results_recipients: cli.results_recipients.clone(),
            results_c4gh_recipients: cli
                .results_c4gh_recipients
                .iter()
                .map(|p| c4gh_public_key(p))
                .collect::<Result<_, _>>()?,
            scratch,
            scratch_keep,
            results_runs,
            srun: cli.srun || cli.nodes > 1,
            mount_timeout: cli.mount_timeout,
        })
    }
}

/// The `#SBATCH` words for the scheduling flags, in a fixed order.
fn sbatch_lines(cli: &Cli) -> Result<Vec<String>, Error> {
    let mut v = Vec::new();
    let simple = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    word("--job-name", &cli.job_name, simple)?;
    v.push(format!("--job-name={}", cli.job_name));
    v.push(format!("--nodes={}", cli.nodes));
    if let Some(p) = &cli.partition {
        word("--partition", p, |c| simple(c) || c == ',')?;
        v.push(format!("--partition={p}"));
    }
    if let Some(t) = &cli.time {
        word("--time", t, |c| c.is_ascii_digit() || c == ':' || c == '-')?;
        v.push(format!("--time={t}"));
    }
    if let Some(a) = &cli.account {
        word("--account", a, simple)?;
        v.push(format!("--account={a}"));
    }
    if let Some(n) = &cli.nodelist {
        word("--nodelist", n, |c| simple(c) || ",[]".contains(c))?;
        v.push(format!("--nodelist={n}"));
    }
    if let Some(w) = &cli.workdir {
        let abs = std::path::absolute(w)
            .map_err(|e| invalid(format!("--workdir {}: {e}", w.display())))?;
        if !abs.is_dir() {
            return Err(invalid(format!(
                "--workdir {}: not a directory (it must exist, on shared storage)",
                abs.display()
            )));
        }
        let s = utf8("--workdir", &abs)?;
        word("--workdir", &s, |c| {
            !c.is_whitespace() && !c.is_control() && !"'\"\\#".contains(c)
        })?;
        v.push(format!("--chdir={s}"));
    }
    for f in &cli.sbatch_flags {
        if !f.starts_with('-') {
            return Err(invalid(format!("--sbatch-flag {f:?}: an sbatch option starts with '-', e.g. --sbatch-flag=--mem=4G")));
        }
        if f.chars().any(|c| c.is_control()) || f.contains("  ") || f.ends_with(' ') {
            return Err(invalid(format!(
                "--sbatch-flag {f:?}: no control characters or runs of spaces allowed"
            )));
        }
        v.push(f.clone());
    }
    Ok(v)
}

/// A fresh random results run id (16 bytes, hex), as hpcs-mount would pick.
fn new_run_id() -> Result<String, Error> {
    let r = hpcs::crypto::writer::new_archive_id()
        .map_err(|e| invalid(format!("no randomness for a run id: {e}")))?;
    Ok(hpcs::util::hex(&r[..16]))
}

/// How archives are pinned: `off` with --insecure-no-pins; `vault`: also
/// take the Vault dataset the archive names.
#[derive(Clone, Copy)]
struct Pins {
    off: bool,
    vault: bool,
}

/// Parses `ARCHIVE[:NAME][@PIN]` and checks the archive.
fn mount_spec(
    kind: Kind,
    arg: &str,
    default_name: Option<&str>,
    pins: Pins,
) -> Result<MountSpec, Error> {
    let (arg, given_pin) = match arg.rsplit_once('@') {
        Some((a, p)) if p.to_ascii_lowercase().starts_with(pin::PREFIX) => {
            let parsed = Pin::parse(p).ok_or_else(|| {
                invalid(format!(
                    "{arg}: {p:?} is not a valid pin ({}... and 26 letters/digits, as `hpcs-pack pack` and `inspect` print it)",
                    pin::PREFIX
                ))
            })?;
            (a, Some(parsed))
        }
        _ => (arg, None),
    };
    let (path, name) = match arg.rsplit_once(':') {
        Some((p, n)) if !p.is_empty() && valid_name(n) => (p, Some(n.to_string())),
        _ => (arg, None),
    };
    let path = Path::new(path);
    let abs = path
        .canonicalize()
        .map_err(|e| invalid(format!("archive {}: {e}", path.display())))?;
    if !abs.is_file() {
        return Err(invalid(format!(
            "archive {}: not a regular file",
            abs.display()
        )));
    }
    let mut head = [0u8; 8];
    File::open(&abs)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| {
            invalid(format!(
                "archive {}: cannot read its header: {e}",
                abs.display()
            ))
        })?;
    if head != MAGIC {
        return Err(invalid(format!(
            "{} is not an hpcs archive (wrong magic bytes); pack data with `hpcs-pack pack`",
            abs.display()
        )));
    }
    let (pin, dataset) = pin_of(&abs, given_pin, pins)?;
    let name = match (name, default_name) {
        (Some(n), _) => n,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            let stem = abs
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if !valid_name(&stem) {
                return Err(invalid(format!(
                    "cannot derive a mount name from {}: give one as ARCHIVE:NAME (letters, digits, . _ -)",
                    abs.display()
                )));
            }
            stem
        }
    };
    let archive = utf8("archive", &abs)?;
    no_control("archive path", &archive)?;
    Ok(MountSpec {
        kind,
        archive,
        name,
        pin,
        dataset,
    })
}

/// The pin the job will require of the archive at `abs` (the one given, if it
/// still matches, else the archive's own), and with --vault its dataset.
fn pin_of(
    abs: &Path,
    given: Option<Pin>,
    pins: Pins,
) -> Result<(Option<String>, Option<String>), Error> {
    let shown = abs.display();
    let header = FileSource::open(abs)
        .map_err(hpcs::crypto::Error::from)
        .and_then(SealedArchive::open)
        .map_err(|e| invalid(format!("archive {shown}: {e}")))?
        .header()
        .clone();
    let dataset = if pins.vault {
        match VaultRef::find(&header.stanzas) {
            Some(Ok(r)) => Some(r.dataset),
            Some(Err(e)) => return Err(invalid(format!("archive {shown}: {e}"))),
            None => {
                return Err(invalid(format!(
                    "archive {shown} names no Vault dataset: pack it with `hpcs-pack pack --vault`, or use --identity"
                )))
            }
        }
    } else {
        None
    };
    let have = header.pin();
    let pin = match (given, pins.off) {
        (Some(_), true) => {
            return Err(invalid(format!(
                "archive {shown}: a @PIN and --insecure-no-pins exclude each other"
            )))
        }
        (None, true) => None,
        (Some(want), false) if !want.matches(&have) => {
            return Err(invalid(format!(
                "archive {shown} is not the archive you pinned: its pin is {have}, not {want}. \
                 It was replaced (or re-packed) since you took the pin; check it, or give its new pin"
            )))
        }
        (Some(want), false) => Some(want.to_string()),
        (None, false) => {
            eprintln!(
                "hpcs-job: pinned {shown} to {have} (the archive as it is now; pass ARCHIVE@PIN with the pin `hpcs-pack pack` printed to pin what you packed)"
            );
            Some(have.to_string())
        }
    };
    Ok((pin, dataset))
}

/// A mount name: 1..=64 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A relative path inside an archive, without `..` or empty components.
fn relative_entry(e: &str) -> Result<&str, Error> {
    relative_path(
        "--secret-entry",
        e,
        "a relative path inside the archive, like run.sh",
    )
}

/// A relative path with no empty, `.` or `..` component and no control
/// character.
fn relative_path<'a>(flag: &str, e: &'a str, what: &str) -> Result<&'a str, Error> {
    let ok = !e.is_empty()
        && !e.starts_with('/')
        && e.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && !e.chars().any(|c| c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(invalid(format!("{flag} {e:?}: give {what}")))
    }
}

/// An identity file: exists, is a file, only its owner can access it (like
/// OpenSSH, and as hpcs-mount checks again on the node); absolute path.
/// Warns when it lives on a shared filesystem.
fn identity_path(p: &Path) -> Result<String, Error> {
    let abs = p
        .canonicalize()
        .map_err(|e| invalid(format!("--identity {}: {e}", p.display())))?;
    let md = abs
        .metadata()
        .map_err(|e| invalid(format!("--identity {}: {e}", abs.display())))?;
    if !md.is_file() {
        return Err(invalid(format!(
            "--identity {}: not a regular file",
            abs.display()
        )));
    }
    let mode = md.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "--identity {0}: accessible by group or others (mode {1:04o}): anyone who can read it opens every archive packed to it; run `chmod 600 {0}` (and, if others may already have read it, make a new identity and rewrap)",
            abs.display(),
            mode & 0o7777
        )));
    }
    if let Some(fs) = shared_filesystem(&abs) {
        eprintln!(
            "hpcs-job: warning: identity file {} is on {fs}: whoever can read that storage (its administrators, a compromised node or server) can copy the key and open every archive packed to it; keep it on the secure device and use --vault",
            abs.display()
        );
    }
    let s = utf8("--identity", &abs)?;
    no_control("--identity", &s)?;
    Ok(s)
}

/// A Crypt4GH public key file (as crypt4gh-keygen writes it), by its
/// absolute path.
fn c4gh_public_key(p: &Path) -> Result<String, Error> {
    let flag = "--results-c4gh-recipient";
    let abs = p
        .canonicalize()
        .map_err(|e| invalid(format!("{flag} {}: {e}", p.display())))?;
    let text = std::fs::read_to_string(&abs)
        .map_err(|e| invalid(format!("{flag} {}: {e}", abs.display())))?;
    if text.trim_start().lines().next() != Some("-----BEGIN CRYPT4GH PUBLIC KEY-----") {
        return Err(invalid(format!(
            "{flag} {}: not a Crypt4GH public key file (-----BEGIN CRYPT4GH PUBLIC KEY-----); give the .pub file crypt4gh-keygen wrote",
            abs.display()
        )));
    }
    let s = utf8(flag, &abs)?;
    no_control(flag, &s)?;
    Ok(s)
}

/// The shared filesystem `p` is on (statfs magic; the same list as
/// `hpcs::keys::age_keys::shared_filesystem`), if any.
fn shared_filesystem(p: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // f_type's width differs by architecture; the magic is its low 32 bits.
    match st.f_type as u64 as u32 {
        0x6969 => Some("NFS"),
        0x0BD0_0BD0 => Some("Lustre"),
        0x4750_4653 => Some("GPFS"),
        0x1983_0326 => Some("BeeGFS"),
        0x00C3_6400 => Some("CephFS"),
        0xFF53_4D42 => Some("CIFS"),
        0xFE53_4D42 => Some("SMB2"),
        _ => None,
    }
}

/// A verification script: an executable file (absolute path), or a path
/// containing {root} (inside a mount; checked at run time).
fn script_path(flag: &str, s: &str) -> Result<String, Error> {
    no_control(flag, s)?;
    if s.contains(ROOT) {
        return Ok(s.to_string());
    }
    let abs = Path::new(s)
        .canonicalize()
        .map_err(|e| invalid(format!("{flag} {s}: {e}")))?;
    let md = abs
        .metadata()
        .map_err(|e| invalid(format!("{flag} {}: {e}", abs.display())))?;
    if !md.is_file() {
        return Err(invalid(format!(
            "{flag} {}: not a regular file",
            abs.display()
        )));
    }
    if md.permissions().mode() & 0o111 == 0 {
        return Err(invalid(format!(
            "{flag} {}: not executable (chmod +x it)",
            abs.display()
        )));
    }
    utf8(flag, &abs)
}

/// The mount root template: absolute, plain characters, not `/`.
fn mount_root(r: &str) -> Result<String, Error> {
    let ok_chars = r
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-%+".contains(c));
    let r = r.trim_end_matches('/');
    if !r.starts_with('/') || r.is_empty() || !ok_chars || r.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "--mount-root {r:?}: give an absolute local directory made of letters, digits, / . _ - + and %j/%u"
        )));
    }
    Ok(r.to_string())
}

/// Name of the results directory under the mount root.
pub const RESULTS_NAME: &str = "results";

/// The results directory template: absolute (relative paths are made
/// absolute here), letters, digits, / . _ - + and %j/%u.
fn results_dir(r: &str) -> Result<String, Error> {
    let abs = if r.starts_with('/') {
        r.to_string()
    } else {
        std::path::absolute(r)
            .map_err(|e| invalid(format!("--results {r}: {e}")))?
            .display()
            .to_string()
    };
    let ok_chars = abs
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-%+".contains(c));
    let abs = abs.trim_end_matches('/');
    if abs.is_empty() || !ok_chars || abs.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "--results {r:?}: give a directory made of letters, digits, / . _ - + and %j/%u"
        )));
    }
    Ok(abs.to_string())
}

/// A program: a name in PATH, or a path that must exist and be executable here.
/// The scratch directory's name under the mount root.
pub const SCRATCH_NAME: &str = "scratch";

/// `DIR[:SIZE]`: an absolute directory template (letters, digits, / . _ -
/// + and %j/%u) and an optional size such as 100G.
fn scratch_dir(v: &str) -> Result<String, Error> {
    let (dir, size) = match v.rsplit_once(':') {
        Some((d, s)) => (d, Some(s)),
        None => (v, None),
    };
    let ok_chars = dir
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-%+".contains(c));
    let dir = dir.trim_end_matches('/');
    if !dir.starts_with('/') || !ok_chars || dir.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "--scratch {v:?}: give an absolute directory made of letters, digits, / . _ - + and %j/%u, optionally :SIZE"
        )));
    }
    if let Some(s) = size {
        let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || s.len() > digits.len() + 1
        {
            return Err(invalid(format!(
                "--scratch {v:?}: SIZE {s:?} is not a size such as 500M or 100G"
            )));
        }
        return Ok(format!("{dir}:{s}"));
    }
    Ok(dir.to_string())
}

fn program(flag: &str, p: &str) -> Result<String, Error> {
    no_control(flag, p)?;
    if p.is_empty() {
        return Err(invalid(format!("{flag} is empty")));
    }
    if !p.contains('/') {
        return Ok(p.to_string());
    }
    let abs = std::path::absolute(p).map_err(|e| invalid(format!("{flag} {p}: {e}")))?;
    let ok = abs
        .metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if !ok {
        return Err(invalid(format!(
            "{flag} {}: not an executable file",
            abs.display()
        )));
    }
    utf8(flag, &abs)
}

fn utf8(flag: &str, p: &Path) -> Result<String, Error> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{flag} {}: path is not valid UTF-8", p.display())))
}

fn no_control(flag: &str, s: &str) -> Result<(), Error> {
    if s.chars().any(|c| c.is_control()) {
        return Err(invalid(format!(
            "{flag} {s:?}: control characters (newline, tab, ...) are not allowed"
        )));
    }
    Ok(())
}

fn word(flag: &str, s: &str, ok: impl Fn(char) -> bool) -> Result<(), Error> {
    if s.is_empty() || !s.chars().all(ok) {
        return Err(invalid(format!(
            "{flag} {s:?}: contains characters that are not allowed there"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
