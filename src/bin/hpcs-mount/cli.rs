//! Command-line syntax of hpcs-mount (clap derive). Parsing only: main.rs
//! checks the values and turns them into a `MountConfig`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Mount encrypted hpcs archives read-only, decrypting on demand in RAM.
///
///   hpcs-mount ARCHIVE MOUNTPOINT -i KEY -- CMD [ARGS...]
///       exec mode: mount, run CMD, unmount when it exits, exit with its code.
///
///   hpcs-mount ARCHIVE MOUNTPOINT -i KEY [--daemon]
///       serve until unmounted (hpcs-mount --unmount MOUNTPOINT, or
///       fusermount3 -u MOUNTPOINT) or until SIGTERM/SIGINT.
///
///   hpcs-mount --archive data=A.hpcs --archive sif=B.hpcs MOUNTPOINT -i KEY ...
///       several archives under one root, as MOUNTPOINT/data and MOUNTPOINT/sif.
#[derive(Parser, Debug)]
#[command(
    name = "hpcs-mount",
    version,
    about = "Mount encrypted hpcs archives read-only, decrypting on demand in RAM",
    long_about,
    verbatim_doc_comment,
    after_help = EXIT_HELP,
    override_usage = "hpcs-mount [OPTIONS] <ARCHIVE> <MOUNTPOINT> [-- <CMD> [ARGS]...]\n       \
                      hpcs-mount [OPTIONS] --archive NAME=ARCHIVE... <MOUNTPOINT> [-- <CMD> [ARGS]...]\n       \
                      hpcs-mount --unmount <MOUNTPOINT>"
)]
pub struct Cli {
    /// ARCHIVE and MOUNTPOINT (only MOUNTPOINT when --archive is used).
    ///
    /// The mount point must be an existing, empty directory that is not
    /// already a mount point.
    #[arg(value_name = "ARCHIVE MOUNTPOINT", num_args = 0..=2)]
    pub paths: Vec<PathBuf>,

    /// Exec mode: the command to run once the archive is mounted.
    ///
    /// Everything after `--`. hpcs-mount waits for it, forwards SIGTERM,
    /// SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to hpcs-mount,
    /// unmounts when it exits, and exits with its exit code (128 + N if it
    /// was killed by signal N).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,

    /// Age identity file (or unencrypted OpenSSH private key) that opens the
    /// archive (repeatable).
    ///
    /// The file is read once before mounting; the data key is dropped as soon
    /// as the archive is unlocked. Can also be given as HPCS_IDENTITY.
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "IDENTITY",
        env = "HPCS_IDENTITY"
    )]
    pub identities: Vec<PathBuf>,

    /// Mount this archive as directory NAME under the mount point (repeatable).
    ///
    /// Use it for several archives in one mount, e.g. the data set and the
    /// container image of one job: `--archive data=/scratch/d.hpcs --archive
    /// sif=/scratch/c.hpcs`. NAME must be a plain file name.
    #[arg(long = "archive", value_name = "NAME=ARCHIVE")]
    pub archives: Vec<String>,

    /// Refuse the archive unless it has this pin (`hpcs-pack inspect` prints
    /// it): `--pin PIN` for the one ARCHIVE, `--pin NAME=PIN` per --archive
    /// (repeatable).
    ///
    /// The pin names one archive: `hpcs-pack rewrap` keeps it, a new pack,
    /// an older version or an archive packed by someone else to your key has
    /// another. It is checked before the key is fetched, and the key must
    /// then match the pinned header; any other archive ends with exit code
    /// 18 before anything is mounted. hpcs-job always passes it.
    #[arg(long = "pin", value_name = "[NAME=]PIN")]
    pub pins: Vec<String>,

    /// Add a write-only results directory NAME next to the archives; every
    /// file written there is encrypted as it is written, into DIR.
    ///
    /// DIR (typically on shared storage) receives one age file per result,
    /// encrypted to --output-recipient and authenticated with the key of the
    /// first --archive, plus a manifest when the mount ends cleanly. Nothing
    /// written there can be read back on the node; files are written
    /// sequentially and once. On the secure device: `hpcs-pack results
    /// decrypt DIR -o DEST --archive ARCHIVE -i IDENTITY`. Needs --archive.
    #[arg(long = "output", value_name = "NAME=DIR", requires = "archives")]
    pub output: Option<String>,

    /// Recipient of the results (age1…, ssh-ed25519 …, ssh-rsa …; repeatable).
    #[arg(
        long = "output-recipient",
        value_name = "RECIPIENT",
        requires = "output"
    )]
    pub output_recipients: Vec<String>,

    /// Use this run id (32 hex digits) for the results instead of a random
    /// one, so that you know it in advance and can require it with
    /// `hpcs-pack results decrypt --expect-run RUN` (hpcs-job does this).
    /// Refused (39) if DIR already holds a manifest of this run.
    #[arg(long = "output-run", value_name = "RUN", requires = "output")]
    pub output_run: Option<String>,

    /// File of results recipients, one per line (as `age -R` reads; repeatable).
    #[arg(
        long = "output-recipients-file",
        value_name = "FILE",
        requires = "output"
    )]
    pub output_recipients_files: Vec<PathBuf>,

    /// Encrypt the results with Crypt4GH to this public key file instead of
    /// age (repeatable; as crypt4gh-keygen writes it).
    ///
    /// Each result is then a plain Crypt4GH file of exactly the bytes the job
    /// wrote (ready for EGA or SD Connect), with an encrypted receipt that
    /// ties it to the job (RESULTS.md). On the secure device: `hpcs-pack
    /// results decrypt DIR -o DEST --archive ARCHIVE -i IDENTITY --sk KEY`.
    #[arg(
        long = "output-c4gh-recipient",
        value_name = "PUBKEY",
        requires = "output",
        conflicts_with_all = ["output_recipients", "output_recipients_files"]
    )]
    pub output_c4gh_recipients: Vec<PathBuf>,
    /// Add an encrypted, read-write scratch directory NAME next to the
    /// archives, stored in DIR; SIZE (K, M, G, T) limits the data it holds.
    ///
    /// For temporary and intermediate files (sort -T, SQLite, HDF5 written
    /// with seeks): files and directories with the usual POSIX behaviour,
    /// stored in one nameless file in DIR (node-local disk or a parallel
    /// filesystem), 4 KiB blocks each encrypted and authenticated with a key
    /// generated for this mount and never stored; a block changed on
    /// storage reads as EIO. Names and sizes stay in memory. Everything is
    /// gone when the mount ends (however it ends). Copy what you want to
    /// keep into the --output directory. Needs --archive. See
    /// docs/mount.md.
    #[arg(
        long = "scratch",
        value_name = "NAME=DIR[:SIZE]",
        requires = "archives"
    )]
    pub scratch: Option<String>,

    /// Upper bound of the decrypted-chunk cache shared by all open files.
    ///
    /// Held in locked memory (never swapped) and excluded from core dumps;
    /// evicted chunks are wiped. Accepts K, M, G suffixes. If the memlock
    /// limit (ulimit -l) is smaller, the cache, read-ahead and --threads are
    /// reduced to fit, with one warning (docs/mount.md "Memory").
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub cache_size: String,

    /// Mount even if decrypted data cannot be locked in RAM (RISK: plaintext
    /// may be written to swap).
    ///
    /// By default hpcs-mount refuses to mount (exit 54) when the
    /// locked-memory limit (ulimit -l) is too small for even a 1 MiB cache,
    /// or the kernel refuses to lock it; a read that cannot get a locked
    /// buffer later fails with EIO. With this flag it warns and serves from
    /// unlocked memory that the kernel may swap out: use it only where swap
    /// is off or encrypted.
    #[arg(long)]
    pub allow_unlocked_memory: bool,

    /// Read-ahead per sequentially read file (0 turns it off).
    ///
    /// When a file is read sequentially, this much data beyond the current
    /// position is kept loaded: fetched in 1 MiB reads of the archive, several
    /// in flight, and decrypted before it is asked for. Accepts K, M
    /// suffixes. The 16M default keeps sequential reads near full speed with
    /// milliseconds of latency per backing read (Lustre; docs/lustre.md).
    #[arg(long, value_name = "SIZE", default_value = "16M")]
    pub readahead: String,

    /// Always bypass the kernel page cache (FOPEN_DIRECT_IO).
    ///
    /// Requests reach the daemon at the size the application asks for (up to
    /// 1 MiB) and no plaintext is kept in the kernel page cache; re-reads are
    /// served from hpcs-mount's own locked cache. This is the default when
    /// the kernel allows shared mmap of direct-I/O files (Linux 6.6+); on
    /// older kernels forcing it makes MAP_SHARED mmap fail with ENODEV. See
    /// docs/mount.md for the measurements behind the default.
    #[arg(long, conflicts_with = "page_cache")]
    pub direct_io: bool,

    /// Always use the kernel page cache (the default on kernels older than 6.6).
    ///
    /// Re-reads of data still in the page cache never reach the daemon, and
    /// every form of mmap works on any kernel; decrypted data then also sits
    /// in the kernel page cache (not locked, not wiped) until evicted.
    #[arg(long)]
    pub page_cache: bool,

    /// Kernel read-ahead of the mount for buffered reads (root only).
    ///
    /// The kernel's default for FUSE is 128K, which caps buffered sequential
    /// reads at 128K requests. As root, hpcs-mount raises it to this value
    /// through /sys/class/bdi; as a normal user the default stays.
    #[arg(long, value_name = "SIZE", default_value = "1M")]
    pub kernel_readahead: String,

    /// FUSE request threads (default: 2 per CPU, 2 to 16).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Read-ahead threads: backing reads of 1 MiB in flight at once
    /// (default: 8 per CPU, 16 to 64). Raise it on high-latency storage.
    #[arg(long, value_name = "N")]
    pub prefetch_threads: Option<usize>,

    /// Let other users access the mount (FUSE allow_other).
    ///
    /// Off by default: only the mounting user can see the files. For a
    /// normal user this needs `user_allow_other` in /etc/fuse.conf.
    #[arg(long, conflicts_with = "allow_root")]
    pub allow_other: bool,

    /// Let root (but no other user) access the mount.
    #[arg(long)]
    pub allow_root: bool,

    /// Return once the mount is ready and keep serving in the background.
    ///
    /// The exit status tells whether mounting worked (same codes as in the
    /// foreground). Under systemd or Slurm prefer the foreground (Type=notify)
    /// or exec mode. The daemon still watches the process that started
    /// hpcs-mount (see --watch-pid).
    #[arg(long, conflicts_with = "cmd")]
    pub daemon: bool,

    /// Write "ready\n" to this inherited file descriptor when the mount is
    /// ready, then close it.
    #[arg(long, value_name = "FD")]
    pub ready_fd: Option<i32>,

    /// Write the serving process's pid to this file when the mount is ready;
    /// removed on exit.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Unmount and exit when process PID exits.
    ///
    /// Default: the process that started hpcs-mount (its parent at launch),
    /// so a mount started in the background of a job script does not outlive
    /// the job. Not used in exec mode, which ends with CMD.
    #[arg(long, value_name = "PID", conflicts_with = "no_watch")]
    pub watch_pid: Option<i32>,

    /// Do not watch any process (keep serving until unmounted or signalled).
    #[arg(long)]
    pub no_watch: bool,

    /// Send log lines to this file instead of standard error (appended).
    ///
    /// Useful with --daemon when standard error is a pipe someone waits on.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// More log lines (-v info, -vv debug). Log lines name the archive, the
    /// entry number and the chunk, never names, sizes, contents or keys
    /// (see --log-names).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Show names, paths and sizes from the archives and results in log
    /// lines.
    #[arg(long, long_help = hpcs::log::NAMES_HELP)]
    pub log_names: bool,

    /// Unmount an hpcs mount (the daemon serving it then exits 0).
    #[arg(long, value_name = "MOUNTPOINT", exclusive = true)]
    pub unmount: Option<PathBuf>,

    /// With --unmount: detach even if files are still open (lazy unmount).
    #[arg(long, requires = "unmount")]
    pub lazy: bool,

    /// Benchmark only: serve zeros of the right sizes without reading or
    /// decrypting the archive (the FUSE ceiling). Only in builds with the
    /// cargo feature bench-ceilings.
    #[cfg(feature = "bench-ceilings")]
    #[arg(long, hide = true)]
    pub bench_null: bool,

    /// Benchmark only: everything a read does (cache, read-ahead, backing
    /// reads) except decryption and authentication; serves the stored
    /// (encrypted) bytes. The no-crypto ceiling. Only in builds with the
    /// cargo feature bench-ceilings.
    #[cfg(feature = "bench-ceilings")]
    #[arg(long, hide = true, conflicts_with = "bench_null")]
    pub bench_nocrypt: bool,

    #[command(flatten)]
    pub vault: crate::vault_key::VaultMountArgs,
}

pub const EXIT_HELP: &str = "\
Exit codes: in exec mode, CMD's exit code (128+N if killed by signal N).
Before mounting: 2 bad command line, 3 archive unreadable, 8 identity unusable,
10 not an archive, 11 needs newer hpcs, 12 wrong key, 13-15 archive damaged,
18 not the expected archive (--pin, --vault-dataset),
30 no /dev/fuse, 31 mount point missing, 32 mount point busy or not empty,
33 mount failed, 34 CMD could not be started, 35 not an hpcs mount (--unmount),
36 unmount failed, 37 daemon died before ready, 38 watched process exited,
130 interrupted before the mount was ready. Vault: 40 unreachable, 41 denied,
42 SVID expired, 43 wrong audience, 44 unknown dataset, 45 key revoked,
46 not the current version (rollback), 47 no SPIFFE Workload API or identity,
48 bad Vault/SPIFFE configuration. 7 bad --output-recipient, 39 results
directory (--output) unusable or its manifest not written, 50 scratch
directory (--scratch) unusable. Crypt4GH: 63 a .c4gh file of a reference
archive missing or changed.
Full list: README (EXIT CODES).";

#[cfg(test)]
hpcs_gen_docs::docs_are_current!(Cli, Some(hpcs::exit::TABLE));
