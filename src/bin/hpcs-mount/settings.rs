//! "Parse, then check" for hpcs-mount: turns the parsed command line
//! ([`Cli`]) into checked [`Settings`], the plain structs `hpcs::mount` takes
//! ([`Launch`], [`Plan`]) plus what the binary needs to obtain the keys.
//! Every bad value fails here with exit code 2 (or the code of the bad
//! recipient or results directory) before anything is opened or mounted.

use std::collections::HashMap;
use std::path::PathBuf;
#[cfg(feature = "bench-ceilings")]
use std::time::Duration;

use hpcs::crypto::Pin;
use hpcs::exit::{self, Fail};
use hpcs::fs::MountConfig;
use hpcs::keys;
use hpcs::mount::{Launch, OutputDir, Plan, ScratchDir};

use crate::cli::Cli;
use crate::vault_key;

/// Checked settings.
pub struct Settings {
    /// The archives and where their keys come from.
    pub sources: Sources,
    /// How the serving process starts.
    pub launch: Launch,
    /// What to mount and how to run it.
    pub plan: Plan,
}

/// The archives to open and where their keys come from.
pub struct Sources {
    /// (name under a shared root, archive path).
    pub archives: Vec<(String, PathBuf)>,
    /// Expected pin per archive name ("" for the single positional ARCHIVE).
    pub pins: HashMap<String, Pin>,
    /// Expected Vault dataset per archive name (`--vault-dataset`).
    pub datasets: HashMap<String, String>,
    /// Age identity files (-i).
    pub identities: Vec<PathBuf>,
    /// Benchmark shaping of the backing file (HPCS_BENCH_BACKING_LATENCY_US,
    /// HPCS_BENCH_BACKING_MBPS).
    #[cfg(feature = "bench-ceilings")]
    pub shape: Option<(Duration, Option<u64>)>,
    /// Vault/SPIFFE key source options.
    pub vault: vault_key::VaultMountArgs,
}

fn size_arg(flag: &str, v: &str) -> Result<u64, Fail> {
    hpcs::util::parse_size(v).ok_or_else(|| {
        Fail::new(
            exit::USAGE,
            format!("invalid {flag} {v:?}: give a size such as 256M, 1G or 0"),
        )
    })
}

/// Checks the parsed command line (everything but the keys and the node).
pub fn check(cli: Cli) -> Result<Settings, Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let (archives, mountpoint) = if cli.archives.is_empty() {
        match <[PathBuf; 2]>::try_from(cli.paths) {
            Ok([a, m]) => (vec![(String::new(), a)], m),
            Err(_) => {
                return Err(usage(
                    "give ARCHIVE and MOUNTPOINT (or --archive NAME=ARCHIVE ... and MOUNTPOINT); see --help".into(),
                ))
            }
        }
    } else {
        let m = match <[PathBuf; 1]>::try_from(cli.paths) {
            Ok([m]) => m,
            Err(_) => {
                return Err(usage(
                    "with --archive, give only MOUNTPOINT as a positional argument".into(),
                ))
            }
        };
        let mut list: Vec<(String, PathBuf)> = Vec::new();
        for a in &cli.archives {
            let (name, path) = a.split_once('=').ok_or_else(|| {
                usage(format!(
                    "--archive {a:?}: expected NAME=ARCHIVE, e.g. data=/scratch/data.hpcs"
                ))
            })?;
            if !plain_name(name) {
                return Err(usage(format!(
                    "--archive {a:?}: NAME must be a plain file name (no '/', not '.' or '..')"
                )));
            }
            if list.iter().any(|(n, _)| n == name) {
                return Err(usage(format!("--archive: the name {name:?} is used twice")));
            }
            list.push((name.to_string(), PathBuf::from(path)));
        }
        (list, m)
    };
    let pins = per_archive("--pin", &cli.pins, &archives, |p| {
        Pin::parse(p).ok_or_else(|| {
            format!(
                "not a pin; a pin is {}... with 26 letters/digits, as `hpcs-pack inspect` prints it",
                hpcs::crypto::pin::PREFIX
            )
        })
    })?;
    let datasets = per_archive(
        "--vault-dataset",
        &cli.vault.vault_dataset,
        &archives,
        |d| {
            let ok = d.split_once('/').is_some_and(|(o, n)| {
                [o, n].iter().all(|p| {
                    !p.is_empty()
                        && !p.starts_with('.')
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
                })
            });
            ok.then(|| d.to_string())
                .ok_or_else(|| "expected a dataset OWNER/NAME".to_string())
        },
    )?;
    let output = match &cli.output {
        None => None,
        Some(o) => Some(output_settings(
            o,
            &cli.output_recipients,
            &cli.output_recipients_files,
            &archives,
            cli.output_run.as_deref(),
        )?),
    };
    let scratch = match &cli.scratch {
        None => None,
        Some(sc) => Some(scratch_settings(sc, &archives, output.as_ref())?),
    };
    let cache_bytes = size_arg("--cache-size", &cli.cache_size)?;
    let readahead_bytes = size_arg("--readahead", &cli.readahead)?;
    let kernel_readahead = size_arg("--kernel-readahead", &cli.kernel_readahead)?;
    // Read-ahead beyond a quarter of the cache would evict itself.
    let readahead_bytes = readahead_bytes.min(cache_bytes / 4);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = cli.threads.unwrap_or(2 * cpus).clamp(1, 64);
    if cli.threads == Some(0) {
        return Err(usage("--threads must be at least 1".into()));
    }
    let prefetch_threads = match cli.prefetch_threads {
        Some(0) => return Err(usage("--prefetch-threads must be at least 1".into())),
        Some(n) => n.min(64),
        None => (8 * cpus).clamp(16, 64),
    };
    if let Some(fd) = cli.ready_fd {
        // SAFETY: F_GETFD only queries the descriptor table.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(usage(format!(
                "--ready-fd {fd} is not an open file descriptor"
            )));
        }
    }
    let watch = if !cli.cmd.is_empty() || cli.no_watch {
        None
    } else {
        // SAFETY: getppid cannot fail.
        let ppid = unsafe { libc::getppid() };
        match cli.watch_pid {
            Some(p) if p <= 0 => return Err(usage(format!("--watch-pid {p}: give a process id"))),
            Some(p) => Some(p),
            None if ppid > 1 => Some(ppid),
            None => None,
        }
    };
    #[cfg(feature = "bench-ceilings")]
    let shape = std::env::var("HPCS_BENCH_BACKING_LATENCY_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| {
            let mbps = std::env::var("HPCS_BENCH_BACKING_MBPS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(|m| m * 1_000_000);
            (Duration::from_micros(us), mbps)
        });
    let fs = MountConfig {
        cache_bytes,
        readahead_bytes,
        direct_io: if cli.direct_io {
            Some(true)
        } else if cli.page_cache {
            Some(false)
        } else {
            None
        },
        threads,
        prefetch_threads,
        allow_other: cli.allow_other,
        allow_root: cli.allow_root,
        #[cfg(feature = "bench-ceilings")]
        null_data: cli.bench_null,
        #[cfg(feature = "bench-ceilings")]
        no_crypt: cli.bench_nocrypt,
        verbosity: cli.verbose,
        force_top: !cli.archives.is_empty(),
        ..MountConfig::default()
    };
    Ok(Settings {
        sources: Sources {
            archives,
            pins,
            datasets,
            identities: cli.identities,
            #[cfg(feature = "bench-ceilings")]
            shape,
            vault: cli.vault,
        },
        launch: Launch {
            daemon: cli.daemon,
            watch,
            log_file: cli.log_file,
        },
        plan: Plan {
            mountpoint,
            cmd: cli.cmd,
            fs,
            kernel_readahead,
            ready_fd: cli.ready_fd,
            pidfile: cli.pidfile,
            output,
            scratch,
        },
    })
}

/// Checks a per-archive flag (`--pin`, `--vault-dataset`): `VALUE` for the
/// one positional ARCHIVE, `NAME=VALUE` per `--archive NAME`; `parse` checks
/// VALUE. At most one per archive.
fn per_archive<T>(
    flag: &str,
    args: &[String],
    archives: &[(String, PathBuf)],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<HashMap<String, T>, Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let mut out = HashMap::new();
    let single = archives.len() == 1 && archives[0].0.is_empty();
    for a in args {
        let (name, value) = match a.split_once('=') {
            Some((n, v)) => (n, v),
            None if single => ("", a.as_str()),
            None => {
                return Err(usage(format!(
                    "{flag} {a:?}: with --archive, give NAME=VALUE"
                )))
            }
        };
        if !archives.iter().any(|(n, _)| n == name) {
            return Err(usage(format!(
                "{flag} {a:?}: no archive is named {name:?} (give {flag} VALUE for a single ARCHIVE, NAME=VALUE for --archive NAME=...)"
            )));
        }
        let v = parse(value).map_err(|why| usage(format!("{flag} {a:?}: {why}")))?;
        if out.insert(name.to_string(), v).is_some() {
            return Err(usage(format!(
                "{flag}: given twice for the archive {name:?}"
            )));
        }
    }
    Ok(out)
}

/// A name that can be one directory entry under the mount root.
fn plain_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255)
}

/// Checks `--scratch NAME=DIR[:SIZE]`: a plain name no archive or results
/// directory has, an existing directory, and a size if one is given (the
/// last `:` starts a size only if what follows it is one, so a DIR with a
/// colon still works).
fn scratch_settings(
    sc: &str,
    archives: &[(String, PathBuf)],
    output: Option<&OutputDir>,
) -> Result<ScratchDir, Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let (name, rest) = sc.split_once('=').ok_or_else(|| {
        usage(format!(
            "--scratch {sc:?}: expected NAME=DIR[:SIZE], e.g. tmp=/local/scratch:100G"
        ))
    })?;
    if !plain_name(name) {
        return Err(usage(format!(
            "--scratch {sc:?}: NAME must be a plain file name (no '/', not '.' or '..')"
        )));
    }
    if archives.iter().any(|(n, _)| n == name) || output.is_some_and(|o| o.name == name) {
        return Err(usage(format!(
            "--scratch: the name {name:?} is already an --archive or --output name"
        )));
    }
    let (dir, limit) = match rest.rsplit_once(':') {
        Some((d, size)) if !d.is_empty() => match hpcs::util::parse_size(size) {
            Some(0) => {
                return Err(usage(format!(
                    "--scratch {sc:?}: SIZE must be more than 0 (leave it out for no limit)"
                )))
            }
            Some(n) => (d, Some(n)),
            None if size.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                return Err(usage(format!(
                    "--scratch {sc:?}: invalid SIZE {size:?}: give a size such as 100G"
                )))
            }
            None => (rest, None),
        },
        _ => (rest, None),
    };
    if dir.is_empty() {
        return Err(usage(format!("--scratch {sc:?}: DIR is empty")));
    }
    let dir = PathBuf::from(dir);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Fail::new(
                exit::SCRATCH,
                format!("--scratch: {} is not a directory", dir.display()),
            ))
        }
        Err(e) => {
            return Err(Fail::new(
                exit::SCRATCH,
                format!(
                    "--scratch: cannot use {}: {e} (create it first, e.g. mkdir -p {})",
                    dir.display(),
                    dir.display()
                ),
            ))
        }
    }
    Ok(ScratchDir {
        name: name.to_string(),
        dir,
        limit,
    })
}

/// Checks `--output NAME=DIR` and its recipients.
fn output_settings(
    o: &str,
    recipient_args: &[String],
    recipient_files: &[PathBuf],
    archives: &[(String, PathBuf)],
    run: Option<&str>,
) -> Result<OutputDir, Fail> {
    let usage = |m: String| Fail::new(exit::USAGE, m);
    let (name, dir) = o.split_once('=').ok_or_else(|| {
        usage(format!(
            "--output {o:?}: expected NAME=DIR, e.g. output=$HOME/results/$SLURM_JOB_ID"
        ))
    })?;
    if !plain_name(name) {
        return Err(usage(format!(
            "--output {o:?}: NAME must be a plain file name (no '/', not '.' or '..')"
        )));
    }
    if archives.iter().any(|(n, _)| n == name) {
        return Err(usage(format!(
            "--output: the name {name:?} is already an --archive name"
        )));
    }
    let mut recipients = Vec::new();
    for r in recipient_args {
        recipients.push(keys::parse_recipient(r)?);
    }
    for f in recipient_files {
        recipients.extend(keys::read_recipients_file(f)?);
    }
    if recipients.is_empty() {
        return Err(usage(
            "--output needs --output-recipient RECIPIENT or --output-recipients-file FILE: the results are encrypted to you".into(),
        ));
    }
    let dir = PathBuf::from(dir);
    let unusable = |why: String| {
        Fail::new(
            exit::RESULTS_WRITE,
            format!(
                "--output: cannot write results into {}: {why}",
                dir.display()
            ),
        )
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(unusable("not a directory".into())),
        Err(e) => {
            return Err(unusable(format!(
                "{e} (create it first, e.g. mkdir -p {})",
                dir.display()
            )))
        }
    }
    let run = match run {
        None => None,
        Some(r) => {
            let id = hpcs::util::unhex_array::<16>(r).ok_or_else(|| {
                usage(format!(
                    "--output-run {r:?}: give a run id of 32 hex digits (e.g. from hpcs-job)"
                ))
            })?;
            let manifest = dir.join(format!(
                "{}{}{}",
                hpcs::results::MANIFEST_PREFIX,
                hpcs::util::hex(&id),
                hpcs::results::OBJECT_SUFFIX
            ));
            if std::fs::symlink_metadata(&manifest).is_ok() {
                return Err(unusable(format!(
                    "run {} already has a manifest there (a run id is used once: rerun hpcs-job for a new one)",
                    hpcs::util::hex(&id)
                )));
            }
            Some(id)
        }
    };
    // Probe: a results directory that cannot take a file fails now, not
    // after the job has run.
    let probe = dir.join(format!(".hpcs-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| unusable(e.to_string()))?;
    Ok(OutputDir {
        name: name.to_string(),
        dir,
        recipients,
        run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check_args(args: &[&str]) -> Result<Settings, Fail> {
        let mut argv = vec!["hpcs-mount", "--no-watch"];
        argv.extend_from_slice(args);
        check(Cli::try_parse_from(argv).expect("parses"))
    }

    fn usage(args: &[&str]) -> String {
        let f = check_args(args).err().expect("refused");
        assert_eq!(f.code, exit::USAGE, "{}", f.msg);
        f.msg
    }

    #[test]
    fn names_under_the_root() {
        for ok in ["data", "a.b", "x y", "..."] {
            assert!(plain_name(ok), "{ok}");
        }
        let long = "n".repeat(256);
        for bad in ["", ".", "..", "a/b", "/", long.as_str()] {
            assert!(!plain_name(bad), "{bad}");
        }
    }

    #[test]
    fn positional_and_named_archives() {
        let s = check_args(&["a.hpcs", "/mnt"]).unwrap();
        assert_eq!(
            s.sources.archives,
            [(String::new(), PathBuf::from("a.hpcs"))]
        );
        assert_eq!(s.plan.mountpoint, PathBuf::from("/mnt"));
        assert!(!s.plan.fs.force_top);
        let s = check_args(&["--archive", "d=a.hpcs", "--archive", "s=b.hpcs", "/mnt"]).unwrap();
        assert_eq!(s.sources.archives.len(), 2);
        assert!(s.plan.fs.force_top);

        assert!(usage(&["/mnt"]).starts_with("give ARCHIVE and MOUNTPOINT"));
        assert!(usage(&["--archive", "d=a", "x", "/mnt"]).contains("only MOUNTPOINT"));
        assert!(usage(&["--archive", "a.hpcs", "/mnt"]).contains("expected NAME=ARCHIVE"));
        assert!(usage(&["--archive", "../x=a", "/mnt"]).contains("plain file name"));
        assert!(usage(&["--archive", "d=a", "--archive", "d=b", "/mnt"]).contains("used twice"));
    }

    #[test]
    fn pins_name_their_archive() {
        let p = hpcs::crypto::Pin::compute(&[1; 32], &[2; 32]).to_string();
        let s = check_args(&["a.hpcs", "/m", "--pin", &p]).unwrap();
        assert!(s.sources.pins[""].matches(&Pin::parse(&p).unwrap()));
        let named = format!("d={p}");
        let s = check_args(&[
            "--archive",
            "d=a",
            "--archive",
            "e=b",
            "/m",
            "--pin",
            &named,
        ])
        .unwrap();
        assert_eq!(s.sources.pins.len(), 1);
        assert!(s.sources.pins.contains_key("d"));
        assert!(usage(&["--archive", "d=a", "/m", "--pin", &p]).contains("give NAME=VALUE"));
        let other = format!("x={p}");
        assert!(usage(&["--archive", "d=a", "/m", "--pin", &other]).contains("no archive is named"));
        assert!(usage(&["a", "/m", "--pin", "hpcspin1-xyz"]).contains("not a pin"));
        assert!(usage(&["a", "/m", "--pin", &p, "--pin", &p]).contains("given twice"));
        let s = check_args(&["a", "/m", "--vault-dataset", "alice/genome"]).unwrap();
        assert_eq!(s.sources.datasets[""], "alice/genome");
        let s = check_args(&["--archive", "d=a", "/m", "--vault-dataset", "d=bob/x.1"]).unwrap();
        assert_eq!(s.sources.datasets["d"], "bob/x.1");
        for bad in ["alice", "alice/", "/x", "a/.b", "a/b/c", "a b/c"] {
            assert!(
                usage(&["a", "/m", "--vault-dataset", bad]).contains("OWNER/NAME"),
                "{bad}"
            );
        }
    }

    #[test]
    fn sizes_and_threads() {
        let s = check_args(&["a", "/m", "--cache-size", "64M", "--readahead", "32M"]).unwrap();
        // Read-ahead is capped at a quarter of the cache.
        assert_eq!(
            (s.plan.fs.cache_bytes, s.plan.fs.readahead_bytes),
            (64 << 20, 16 << 20)
        );
        assert_eq!(s.plan.kernel_readahead, 1 << 20);
        assert!(usage(&["a", "/m", "--cache-size", "lots"]).starts_with("invalid --cache-size"));
        assert_eq!(
            usage(&["a", "/m", "--threads", "0"]),
            "--threads must be at least 1"
        );
        assert_eq!(
            usage(&["a", "/m", "--prefetch-threads", "0"]),
            "--prefetch-threads must be at least 1"
        );
        let s = check_args(&["a", "/m", "--threads", "500"]).unwrap();
        assert_eq!(s.plan.fs.threads, 64);
    }

    #[test]
    fn scratch_names_dirs_and_sizes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let colon = d.path().join("a:b");
        std::fs::create_dir(&colon).unwrap();
        let base = ["--archive", "d=a.hpcs", "/m", "--scratch"];
        let ok = |v: String| {
            let mut args = base.to_vec();
            args.push(&v);
            check_args(&args).unwrap().plan.scratch.expect("scratch")
        };
        let s = ok(format!("tmp={dir}"));
        assert_eq!(
            (s.name.as_str(), s.dir.as_path(), s.limit),
            ("tmp", d.path(), None)
        );
        assert_eq!(ok(format!("tmp={dir}:10G")).limit, Some(10 << 30));
        // A colon in DIR that does not start a size stays in DIR.
        let s = ok(format!("tmp={}", colon.display()));
        assert_eq!((s.dir.as_path(), s.limit), (colon.as_path(), None));
        let s = ok(format!("tmp={}:1M", colon.display()));
        assert_eq!((s.dir.as_path(), s.limit), (colon.as_path(), Some(1 << 20)));
        let bad = |v: String| {
            let mut args = base.to_vec();
            args.push(&v);
            check_args(&args).err().expect("refused")
        };
        for (v, code, msg) in [
            (dir.clone(), exit::USAGE, "expected NAME=DIR[:SIZE]"),
            (format!("a/b={dir}"), exit::USAGE, "plain file name"),
            (format!("d={dir}"), exit::USAGE, "already an --archive"),
            (format!("tmp={dir}:0"), exit::USAGE, "more than 0"),
            (format!("tmp={dir}:12Q"), exit::USAGE, "invalid SIZE"),
            (format!("tmp={dir}/none"), exit::SCRATCH, "create it first"),
            (
                "tmp=/etc/hostname".to_string(),
                exit::SCRATCH,
                "not a directory",
            ),
        ] {
            let f = bad(v.clone());
            assert_eq!(f.code, code, "{v}: {}", f.msg);
            assert!(f.msg.contains(msg), "{v}: {}", f.msg);
        }
        // Needs --archive (a top directory to sit in).
        assert!(Cli::try_parse_from(["hpcs-mount", "a", "/m", "--scratch", "t=/tmp"]).is_err());
    }

    #[test]
    fn ready_fd_must_be_open() {
        assert!(usage(&["a", "/m", "--ready-fd", "987654"]).contains("not an open file descriptor"));
    }

    #[test]
    fn output_needs_a_recipient_and_a_usable_directory() {
        let d = tempfile::tempdir().unwrap();
        let out = format!("out={}", d.path().display());
        let base = ["--archive", "d=a.hpcs", "/m", "--output"];
        let mut args = base.to_vec();
        args.push(&out);
        assert!(usage(&args).contains("--output needs --output-recipient"));
        let r = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        args.extend(["--output-recipient", r]);
        let s = check_args(&args).unwrap();
        let o = s.plan.output.expect("output");
        assert_eq!((o.name.as_str(), o.dir.as_path()), ("out", d.path()));
        assert_eq!(o.recipients.len(), 1);
        assert_eq!(o.run, None);
        let run = "0123456789abcdef0123456789abcdef";
        let mut with_run = args.clone();
        with_run.extend(["--output-run", run]);
        let o = check_args(&with_run).unwrap().plan.output.unwrap();
        assert_eq!(o.run.map(|r| hpcs::util::hex(&r)).as_deref(), Some(run));
        let mut bad_run = args.clone();
        bad_run.extend(["--output-run", "xyz"]);
        assert!(usage(&bad_run).contains("32 hex digits"));
        std::fs::write(d.path().join(format!("manifest-{run}.age")), b"x").unwrap();
        assert_eq!(
            check_args(&with_run).err().unwrap().code,
            exit::RESULTS_WRITE
        );

        let missing = format!("out={}", d.path().join("none").display());
        let args = [
            "--archive",
            "d=a",
            "/m",
            "--output",
            &missing,
            "--output-recipient",
            r,
        ];
        let f = check_args(&args).err().unwrap();
        assert_eq!(f.code, exit::RESULTS_WRITE);
        let args = [
            "--archive",
            "d=a",
            "/m",
            "--output",
            "d=/tmp",
            "--output-recipient",
            r,
        ];
        assert!(usage(&args).contains("already an --archive name"));
        let args = [
            "--archive",
            "d=a",
            "/m",
            "--output",
            &out,
            "--output-recipient",
            "bad",
        ];
        assert_eq!(check_args(&args).err().unwrap().code, exit::BAD_RECIPIENT);
    }
}
