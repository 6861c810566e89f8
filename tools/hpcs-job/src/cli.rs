//! Command-line syntax of hpcs-job (clap derive). Parsing only: every value is
//! checked in `config.rs`, which turns these raw flags into a [`crate::config::JobSpec`].

use std::path::PathBuf;

use clap::Parser;

/// Write a Slurm batch script that mounts hpcs archives, verifies the inputs,
/// runs an application on the decrypted data, verifies the outputs and
/// unmounts on every path (success, failure, scancel); optionally submit it.
///
/// The script uses `hpcs-mount` in exec mode: each archive is mounted
/// read-only at MOUNT_ROOT/NAME (decrypted in RAM only) for as long as the job
/// needs it. Paths in --app, --app-arg, --verify-input and --verify-output may
/// contain `{root}`, replaced at run time by the job's mount root; the
/// application and the verification scripts also get HPCS_MOUNT_ROOT (and
/// HPCS_DATA, HPCS_CONTAINER, HPCS_SECRET: the first mount of each kind) in
/// their environment, and the verification scripts get the mount root as $1.
#[derive(Parser, Debug)]
#[command(name = "hpcs-job", version, about, long_about, after_long_help = EXIT_HELP)]
pub struct Cli {
    /// Data archive to mount, as ARCHIVE[:NAME][@PIN] (repeatable).
    ///
    /// Mounted at MOUNT_ROOT/NAME; NAME defaults to the archive's file name
    /// without its extension (data.hpcs -> data). The archive must exist and
    /// be a readable hpcs archive. Its absolute path is written into the
    /// script, so it must be readable at the same path on the compute nodes
    /// (shared storage).
    ///
    /// Every archive is pinned (hpcs-mount --pin): the job mounts this
    /// archive and no other (exit 201, hpcs-mount 18, otherwise). Give the
    /// pin `hpcs-pack pack` printed on your secure device as @PIN (then the
    /// archive must still have it now); without @PIN, hpcs-job takes the pin
    /// of the archive as it is now and prints it. Same for --container and
    /// --secret-script.
    #[arg(long = "data", value_name = "ARCHIVE[:NAME][@PIN]")]
    pub data: Vec<String>,

    /// Container archive to mount (a packed SIF image or root filesystem), as
    /// ARCHIVE or ARCHIVE:NAME (default NAME: container).
    ///
    /// Mounted like a data archive; run it with e.g.
    /// `--app apptainer --app-arg exec --app-arg '{root}/container/image.sif'`
    /// or `--app bwrap --app-arg --ro-bind --app-arg '{root}/container' ...`.
    #[arg(long = "container", value_name = "ARCHIVE[:NAME][@PIN]")]
    pub container: Option<String>,

    /// Archive holding the real (secret) job script, as ARCHIVE or ARCHIVE:NAME
    /// (default NAME: job).
    ///
    /// Pack a directory containing an executable `run.sh` (see --secret-entry)
    /// with `hpcs-pack pack job-dir -o job.hpcs -r <recipient>`. The generated
    /// script mounts it and runs MOUNT_ROOT/NAME/run.sh with the --app-arg
    /// arguments, so the submitted script contains none of its lines. Replaces
    /// --app.
    #[arg(
        long = "secret-script",
        value_name = "ARCHIVE[:NAME][@PIN]",
        conflicts_with = "app"
    )]
    pub secret_script: Option<String>,

    /// INSECURE: do not pin the archives. The job then mounts (and, for
    /// --container and --secret-script, runs) whatever archive its key opens
    /// at those paths when it starts: one packed by anybody to your public
    /// key, or an older version. Only for archives you re-pack between
    /// submitting and running; --vault jobs still check the dataset.
    #[arg(long = "insecure-no-pins")]
    pub insecure_no_pins: bool,

    /// Path of the script to run inside the --secret-script archive.
    #[arg(
        long = "secret-entry",
        value_name = "PATH",
        default_value = "run.sh",
        requires = "secret_script"
    )]
    pub secret_entry: String,

    /// age identity file that opens the archives (passed to hpcs-mount -i).
    ///
    /// It must be readable by the job on the compute nodes; prefer --vault on
    /// shared systems, so that no long-lived key sits on shared storage.
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "FILE",
        conflicts_with = "vault"
    )]
    pub identity: Option<PathBuf>,

    /// Fetch the archive keys from Vault/OpenBao with the job's JWT-SVID
    /// (passed to hpcs-mount as --vault), for archives packed with
    /// `hpcs-pack pack --vault --allow <SPIFFE ID>`.
    ///
    /// The job needs SPIFFE_ENDPOINT_SOCKET and BAO_ADDR/VAULT_ADDR (or the
    /// site's /etc/hpcs/config.toml) in its environment; sbatch passes the
    /// submitting shell's environment on by default. If Vault refuses, the
    /// job ends with 201 and hpcs-mount's reason before anything runs.
    #[arg(long = "vault")]
    pub vault: bool,

    /// Audience of the JWT-SVID used with --vault (passed to hpcs-mount as
    /// --audience; default: hpcs-mount's).
    #[arg(long = "audience", value_name = "AUD", requires = "vault")]
    pub audience: Option<String>,

    /// Application to run once the archives are mounted and verified.
    ///
    /// A command name (looked up in PATH on the compute node) or a path; may
    /// contain {root}. With --nodes > 1 it runs under `srun` on every task of
    /// the allocation.
    #[arg(
        long = "app",
        value_name = "CMD",
        required_unless_present = "secret_script"
    )]
    pub app: Option<String>,

    /// One argument of the application (repeatable, in order; may contain {root}).
    #[arg(long = "app-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub app_args: Vec<String>,

    /// Input verification script (repeatable, run in order before the
    /// application, with the archives mounted).
    ///
    /// Called as `SCRIPT MOUNT_ROOT`. If one exits non-zero the job stops
    /// with exit code 202 and a clear message; the application never starts.
    /// Must be an executable file, unless the path contains {root} (a script
    /// inside an archive, checked at run time).
    #[arg(long = "verify-input", value_name = "SCRIPT")]
    pub verify_input: Vec<String>,

    /// Output verification script (repeatable, run in order after the
    /// application succeeded).
    ///
    /// Called as `SCRIPT MOUNT_ROOT`. If one exits non-zero the job exits
    /// with code 203. Same path rules as --verify-input.
    #[arg(long = "verify-output", value_name = "SCRIPT")]
    pub verify_output: Vec<String>,

    /// Number of nodes (#SBATCH --nodes).
    ///
    /// Above 1, every node of the allocation mounts the archives (one
    /// `srun --ntasks-per-node=1 --overlap` step that holds the mounts) and
    /// the application runs under srun.
    #[arg(long = "nodes", value_name = "N", default_value_t = 1)]
    pub nodes: u32,

    /// Mount with an srun step on every node even for a single node (what
    /// --nodes > 1 does; useful to test that path on one node).
    #[arg(long = "srun")]
    pub srun: bool,

    /// Partition (#SBATCH --partition).
    #[arg(long = "partition", value_name = "P")]
    pub partition: Option<String>,

    /// Time limit (#SBATCH --time), e.g. 30, 1:00:00 or 1-00:00:00.
    #[arg(long = "time", value_name = "T")]
    pub time: Option<String>,

    /// Account to charge (#SBATCH --account).
    #[arg(long = "account", value_name = "A")]
    pub account: Option<String>,

    /// Nodes to run on (#SBATCH --nodelist), e.g. node[01-04].
    #[arg(long = "nodelist", value_name = "LIST")]
    pub nodelist: Option<String>,

    /// Working directory of the job (#SBATCH --chdir); relative paths are
    /// made absolute.
    #[arg(long = "workdir", value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    /// Job name (#SBATCH --job-name).
    #[arg(long = "job-name", value_name = "NAME", default_value = "hpcs-job")]
    pub job_name: String,

    /// Extra sbatch option, written as one `#SBATCH` line (repeatable), e.g.
    /// --sbatch-flag=--output=job-%j.out or --sbatch-flag=--mem=4G.
    ///
    /// Must start with '-' and contain no whitespace other than single
    /// spaces between words.
    #[arg(long = "sbatch-flag", value_name = "FLAG", allow_hyphen_values = true)]
    pub sbatch_flags: Vec<String>,

    /// Directory under which the archives are mounted (one subdirectory per
    /// archive), e.g. /sd-container.
    ///
    /// `%j` is replaced by the job id and `%u` by the user name at run time.
    /// It must be a local directory on each node; the job creates it (mode
    /// 0700) on every node and removes it at the end. An existing one is used
    /// only if it is a real directory (not a symbolic link) owned by the
    /// job's user with mode 0700, in a parent that no other user can write
    /// (or a sticky one such as /tmp); otherwise the job stops with exit 200
    /// before anything is mounted, since another user may have planted it.
    /// The default keeps concurrent jobs apart.
    #[arg(
        long = "mount-root",
        value_name = "DIR",
        default_value = "/tmp/hpcs-%u-%j"
    )]
    pub mount_root: String,

    /// The hpcs-mount program on the compute nodes (a name in PATH or an
    /// absolute path).
    #[arg(long = "hpcs-mount", value_name = "PATH", default_value = "hpcs-mount")]
    pub hpcs_mount: String,

    /// Extra argument for every hpcs-mount call (repeatable), e.g.
    /// --mount-arg=--cache-size=1G.
    #[arg(long = "mount-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub mount_args: Vec<String>,

    /// Encrypt what the job writes into $HPCS_RESULTS ({root}/results) into
    /// this directory on shared storage (hpcs-mount --output).
    ///
    /// Every file is encrypted as it is written, to --results-recipient; the
    /// nodes cannot read results back. `%j` and `%u` are replaced at run
    /// time; the job creates the directory (mode 0700). On your secure
    /// device: `hpcs-pack results decrypt DIR -o DEST --archive
    /// FIRST_ARCHIVE -i IDENTITY`, where FIRST_ARCHIVE is the first --data
    /// (else the container, else the secret script) archive (add `--sk KEY`
    /// for --results-c4gh-recipient).
    #[arg(long = "results", value_name = "DIR")]
    pub results: Option<String>,

    /// Recipient of the results: age1…, ssh-ed25519 …, ssh-rsa …
    /// (repeatable; needed with --results).
    #[arg(long = "results-recipient", value_name = "RECIPIENT")]
    pub results_recipients: Vec<String>,

    /// Encrypt the results as Crypt4GH to this public key file instead
    /// (repeatable; as crypt4gh-keygen writes it; the nodes read it at this
    /// path): each result is then a plain .c4gh file for EGA or SD Connect
    /// (hpcs-mount --output-c4gh-recipient; RESULTS.md "Crypt4GH results").
    #[arg(
        long = "results-c4gh-recipient",
        value_name = "PUBKEY",
        conflicts_with = "results_recipients"
    )]
    pub results_c4gh_recipients: Vec<PathBuf>,
    /// Give the job an encrypted, read-write scratch directory,
    /// $HPCS_SCRATCH ({root}/scratch), stored in DIR on each node
    /// (hpcs-mount --scratch); SIZE (e.g. 100G) limits it.
    ///
    /// For temporary and intermediate files (sort -T, SQLite, HDF5 written
    /// with seeks, spill files): every block is encrypted with a key that
    /// exists only in hpcs-mount's memory, so whatever the job leaves in DIR
    /// is unreadable, and nothing is left once the mount ends. TMPDIR is set
    /// to it for the verification scripts and the application. DIR is
    /// typically node-local disk (e.g. /local/scratch/%u-%j; `%j` and `%u`
    /// are replaced at run time); each node creates it (mode 0700) if
    /// missing and removes it if it created it; an existing DIR must be a
    /// directory of the job's user that nobody else can write (else 200).
    #[arg(long = "scratch", value_name = "DIR[:SIZE]")]
    pub scratch: Option<String>,

    /// After the application succeeded, copy PATH (relative to the scratch
    /// directory; a file or a directory) into the results directory, which
    /// encrypts it to --results-recipient (repeatable).
    ///
    /// The pattern for outputs written with seeks (the results directory
    /// takes sequential writes only): build them in $HPCS_SCRATCH, keep
    /// them with this option. Needs --scratch and --results. With several
    /// nodes, the batch node's scratch directory is copied.
    #[arg(long = "scratch-keep", value_name = "PATH")]
    pub scratch_keep: Vec<String>,

    /// Seconds to wait for the archives to be mounted on every node.
    #[arg(long = "mount-timeout", value_name = "SECONDS", default_value_t = 120)]
    pub mount_timeout: u32,

    /// Write the batch script here (mode 0700) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Submit the script with `sbatch --parsable` and print the job id.
    ///
    /// The sbatch program is taken from $HPCS_SBATCH if set, else `sbatch`
    /// in PATH. Without -o, the script goes to sbatch's standard input and
    /// is not written anywhere else.
    #[arg(long = "submit")]
    pub submit: bool,
}

/// Exit codes of hpcs-job and of the generated job scripts (never reused).
pub const EXIT_HELP: &str = "\
EXIT CODES of hpcs-job:
  0  the script was written (and submitted with --submit)
  1  unexpected internal error
  2  bad usage (unknown flag, missing or conflicting flags)
  3  invalid input: an archive, script, identity or value failed its check
     (including an archive that no longer has the @PIN given for it)
  4  the script could not be written
  5  sbatch could not be run or refused the job

EXIT CODES of the generated job script (the Slurm job's exit code):
  0    the application and every verification script succeeded
  N    the application's own non-zero exit code (output verification skipped)
  143  stopped by SIGTERM/SIGINT (scancel); the archives were unmounted
  200  setup failed: the mount root could not be created, or it already
       existed and is not a directory (e.g. a symbolic link), not owned by
       the job's user, not mode 0700, or in a parent directory other users
       can write without the sticky bit; or the private state directory or
       the results directory could not be created
  201  an archive could not be mounted (see hpcs-mount's message above it;
       hpcs-mount status 18: not the pinned archive or Vault dataset)
  202  an input verification script failed: the application was NOT started
  203  an output verification script failed
  204  the secret job script is missing or not executable in its archive
  205  a node's mount ended while the application ran (hpcs-mount killed or
       out of memory): the application was stopped, its results are incomplete
  206  copying a --scratch-keep path into the results directory failed";

// hpcs-job has exit codes of its own (EXIT_HELP), not hpcs's.
#[cfg(test)]
hpcs_gen_docs::docs_are_current!(Cli, None);
