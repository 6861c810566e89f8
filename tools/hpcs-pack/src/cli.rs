//! Command-line syntax of hpcs-pack (clap derive). Parsing only: checking and
//! running happen in main.rs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pack directories and files into encrypted, authenticated hpcs archives,
/// and inspect, verify, extract and rewrap them.
#[derive(Parser, Debug)]
#[command(name = "hpcs-pack", version, about, long_about = None, after_help = EXIT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Show names, paths and sizes from archives and results in messages.
    #[arg(long, global = true, long_help = hpcs::log::NAMES_HELP)]
    pub log_names: bool,
}

pub const EXIT_HELP: &str =
    "Exit codes are listed in the README (EXIT CODES) and never change meaning.";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pack a directory or a file into an encrypted archive.
    Pack(PackArgs),
    /// Make a reference archive over Crypt4GH (.c4gh) files that stay where
    /// they are (EGA, SD Connect downloads): every segment is authenticated
    /// once, and mounts then refuse any change to the files.
    #[command(name = "c4gh-ref")]
    C4ghRef(C4ghRefArgs),
    /// Show header facts (no key needed); with -i, also the recipients and the tree.
    Inspect(InspectArgs),
    /// Authenticate every chunk of an archive.
    Verify(KeyedArgs),
    /// Extract an archive, or some paths of it, into a directory.
    Extract(ExtractArgs),
    /// Write one file of an archive to standard output.
    Cat(CatArgs),
    /// Change who can open an archive, without re-encrypting its data.
    ///
    /// Rewrap writes a new header over the same data key, archive id and
    /// streams (the pin stays). It is not revocation: a removed recipient who
    /// kept the old header (its first few hundred bytes, or any copy of the
    /// file) or the data key can splice it back and open the rewrapped archive
    /// again. To shut someone out use `rekey` (new data key, archive id and
    /// pin; for archives whose key is in Vault, the Vault record too), then
    /// update the pins that name the archive.
    Rewrap(RewrapArgs),
    /// Re-encrypt an archive under a new data key and archive id (revocation).
    ///
    /// The same recipient arithmetic as rewrap (-r, -R, --remove-recipient),
    /// but the streams are decrypted and sealed again under a fresh data key
    /// and archive id, chunk by chunk in memory (no plaintext on disk), into a
    /// temporary file renamed into place. A removed recipient's old header or
    /// old data key opens nothing of the result. The pin changes: update the
    /// pins that name the archive (hpcs-job, --pin).
    ///
    /// An archive whose key is in Vault must be its dataset's current
    /// version; you log in to Vault as its owner (the key comes from there
    /// unless -i is given), and the dataset's record is replaced with the new
    /// key and archive id for the same SPIFFE IDs before the archive is
    /// renamed into place (put back if that fails). Jobs holding the old key
    /// open nothing of the new archive.
    Rekey(RekeyArgs),
    /// Store an existing archive's key in Vault for SPIFFE IDs (rewrites only the header).
    Register(crate::cli_vault::RegisterArgs),
    /// Change which SPIFFE IDs may fetch a dataset's key from Vault (Vault only).
    Allow(crate::cli_vault::AllowArgs),
    /// Destroy a dataset's key in Vault (crypto-shredding): new mounts fail at once.
    Revoke(crate::cli_vault::RevokeArgs),
    /// Prepare a Vault/OpenBao for hpcs (administrator, once; idempotent).
    VaultSetup(crate::cli_vault::SetupArgs),
    /// Check or decrypt a job's encrypted results (written through
    /// `hpcs-mount --output`).
    #[command(subcommand)]
    Results(ResultsCommand),
}

#[derive(Subcommand, Debug)]
pub enum ResultsCommand {
    /// Check every result in DIR: complete and authentic, incomplete
    /// (interrupted job), or tampered; decrypts nothing to disk.
    Verify(ResultsArgs),
    /// Decrypt the complete, authentic results in DIR into DEST (existing
    /// files are never overwritten) and report the others.
    Decrypt(ResultsDecryptArgs),
}

#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// The directory the job wrote its results into (`hpcs-mount --output
    /// NAME=DIR`), or a copy of it.
    pub dir: PathBuf,

    /// The archive the job mounted first: its key proves the results come
    /// from the job and not from anyone who knows your public key.
    #[arg(long = "archive", value_name = "ARCHIVE")]
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// The Crypt4GH secret key the results were encrypted to (jobs run with
    /// --output-c4gh-recipient); --sk KEY [--passphrase-file FILE].
    #[command(flatten)]
    pub c4gh: C4ghKeyArgs,
    /// Require exactly these runs (repeatable; the run ids hpcs-job printed,
    /// `hpcs-mount --output-run`). Results of any other run, authentic or
    /// not (anybody holding the archive key can write a whole run), or an
    /// expected run without results, end with exit 19 before anything is
    /// decrypted.
    #[arg(long = "expect-run", value_name = "RUN")]
    pub expect_run: Vec<String>,

    /// Print only problems.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ResultsDecryptArgs {
    #[command(flatten)]
    pub common: ResultsArgs,

    /// Directory to write the results into (created if missing). With
    /// results from several mounts (e.g. several nodes), each mount's files
    /// go under run-RUN/.
    #[arg(short = 'o', long = "output", value_name = "DEST")]
    pub output: PathBuf,

    /// Write Crypt4GH results (jobs run with --output-c4gh-recipient) as
    /// checked copies of their Crypt4GH files, at PATH.c4gh, instead of
    /// decrypting them: ready to upload to EGA or SD Connect as they are.
    #[arg(long)]
    pub as_c4gh: bool,
}

#[derive(Args, Debug)]
pub struct C4ghRefArgs {
    /// Crypt4GH files to reference, or directories of them.
    ///
    /// A file becomes an entry at the archive's root, named without .c4gh; a
    /// directory is walked (symlinked directories are not followed) and its
    /// .c4gh files keep their paths below it. The files are read, never
    /// copied: they must stay where they are (see --absolute).
    #[arg(required = true, value_name = "C4GH")]
    pub inputs: Vec<PathBuf>,

    /// Reference archive to write (small: about 16 bytes per 64 KiB of data).
    #[arg(short = 'o', long = "output", value_name = "ARCHIVE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub c4gh: C4ghKeyArgs,

    #[command(flatten)]
    pub new: NewArchiveArgs,

    /// Record absolute paths of the .c4gh files (default: relative to the
    /// archive's directory, so archive and data can move together).
    #[arg(long)]
    pub absolute: bool,

    /// Cipher suite of the archive (the .c4gh files keep theirs).
    #[arg(long, value_name = "SUITE", default_value = "aes-256-gcm",
          value_parser = ["aes-256-gcm", "chacha20-poly1305"])]
    pub cipher: String,
}

/// A Crypt4GH secret key and its passphrase.
#[derive(Args, Debug)]
pub struct C4ghKeyArgs {
    /// Your Crypt4GH secret key file (as crypt4gh-keygen writes it).
    #[arg(long = "sk", value_name = "KEY")]
    pub sk: Option<PathBuf>,

    /// Read the key's passphrase from the first line of this file.
    ///
    /// Default: $C4GH_PASSPHRASE (as the crypt4gh tools read it), else the
    /// terminal is asked. A key without passphrase needs neither.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// Directory or file to pack.
    ///
    /// A directory is packed recursively without following symlinks; a single
    /// file becomes the archive's only entry. Devices, fifos and sockets are
    /// skipped with a warning; hard links are kept as hard links.
    pub src: PathBuf,

    /// Archive to write.
    ///
    /// Written to a temporary file in the same directory and renamed into
    /// place when complete; an existing file is refused unless --force.
    #[arg(short = 'o', long = "output", value_name = "ARCHIVE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub new: NewArchiveArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Who can open a new archive, and how it is written.
#[derive(Args, Debug)]
pub struct NewArchiveArgs {
    /// Encrypt the data key to this recipient (repeatable).
    ///
    /// An age X25519 recipient (age1…, as printed by age-keygen) or an SSH
    /// public key line (ssh-ed25519 … or ssh-rsa …).
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Encrypt the data key to every recipient in this file (repeatable).
    ///
    /// One recipient per line; blank lines and lines starting with # are
    /// ignored (the format of `age -R`).
    #[arg(short = 'R', long = "recipients-file", value_name = "RECIPIENTS_FILE")]
    pub recipients_files: Vec<PathBuf>,

    /// Replace ARCHIVE if it exists.
    #[arg(short = 'f', long)]
    pub force: bool,

    /// No progress bar and no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    #[command(flatten)]
    pub vault: crate::cli_vault::PackVaultArgs,
}

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// Cipher suite for all chunks.
    ///
    /// aes-256-gcm (default) is fastest on CPUs with AES instructions;
    /// chacha20-poly1305 is for CPUs without them.
    #[arg(long, value_name = "SUITE", default_value = "aes-256-gcm",
          value_parser = ["aes-256-gcm", "chacha20-poly1305"])]
    pub cipher: String,

    /// Plaintext bytes per chunk: a power of two from 4K to 16M.
    ///
    /// Accepts a byte count or a K/M suffix (64K, 1M). The default, 64K, keeps
    /// random reads cheap (one small chunk to decrypt) while sequential reads
    /// are coalesced into large backing reads anyway; see FORMAT.md.
    #[arg(long, value_name = "SIZE", default_value = "64K")]
    pub chunk_size: String,
}

#[derive(Args, Debug)]
pub struct IdentityArgs {
    /// Identity file that can open the archive (repeatable).
    ///
    /// An age identity file as written by age-keygen, or an unencrypted
    /// OpenSSH private key (ed25519 or RSA).
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY")]
    pub identities: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Archive to inspect.
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// Print the facts as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct KeyedArgs {
    /// Archive to verify.
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// No progress bar and no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// Archive to extract.
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// Directory to extract into (created if missing; existing files are
    /// never overwritten).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,

    /// Paths inside the archive to extract (default: everything).
    ///
    /// Relative to the archive root; absolute paths and .. are refused.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    /// No progress bar and no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// Archive to read from.
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// Path of a regular file inside the archive.
    #[arg(value_name = "PATH")]
    pub path: String,
}

#[derive(Args, Debug)]
pub struct RewrapArgs {
    /// Archive to rewrap (replaced atomically unless -o is given).
    pub archive: PathBuf,

    #[command(flatten)]
    pub id: IdentityArgs,

    /// Add this recipient (repeatable; same forms as `pack -r`).
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Add every recipient in this file (repeatable).
    #[arg(short = 'R', long = "recipients-file", value_name = "RECIPIENTS_FILE")]
    pub recipients_files: Vec<PathBuf>,

    /// Remove this recipient (repeatable; as it was given when packing).
    /// With rewrap this is not revocation (see `rewrap --help`); with rekey
    /// it is.
    #[arg(long = "remove-recipient", value_name = "RECIPIENT")]
    pub remove: Vec<String>,

    /// Write the rewrapped archive here instead of replacing ARCHIVE.
    #[arg(short = 'o', long = "output", value_name = "ARCHIVE")]
    pub output: Option<PathBuf>,

    /// Replace the -o output if it exists.
    #[arg(short = 'f', long)]
    pub force: bool,

    /// No summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `rekey`: rewrap's arguments, and Vault's for archives whose key is there.
#[derive(Args, Debug)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub w: RewrapArgs,

    #[command(flatten)]
    pub v: crate::cli_vault::VaultArgs,
}

#[cfg(test)]
hpcs_gen_docs::docs_are_current!(Cli, Some(hpcs::exit::TABLE));
