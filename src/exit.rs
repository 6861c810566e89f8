//! Exit codes shared by the hpcs binaries. A code never changes meaning once
//! released; new failures get new numbers. The README's EXIT CODES table is
//! generated from the same list ([`TABLE`]) and a test keeps them equal.
//!
//! [`Fail`] is how a binary's `run` reports a failure (the code and what to
//! do), and [`parse_args`] / [`finish`] are the two ends every binary's
//! `main` shares: a clap error exits 2 (0 for `--help`), a failure prints
//! `PROGRAM: error: MESSAGE` and exits with its code.

use crate::crypto::Error as FormatError;
use crate::extract::ExtractError;
use crate::keys::stanzas::StanzaError;
use crate::keys::KeyError;
use crate::pack::PackError;
use crate::reference::RefError;
use crate::rewrap::RewriteError;

/// Success.
pub const OK: u8 = 0;
/// Unexpected internal error (a bug: please report it).
pub const INTERNAL: u8 = 1;
/// Bad command line (unknown flag, missing argument).
pub const USAGE: u8 = 2;
/// An input file or directory is missing or unreadable.
pub const INPUT: u8 = 3;
/// The output already exists.
pub const OUTPUT_EXISTS: u8 = 4;
/// Writing the output failed (disk full, permission denied).
pub const OUTPUT: u8 = 5;
/// A source file changed while it was being packed.
pub const SOURCE_CHANGED: u8 = 6;
/// A recipient is invalid.
pub const BAD_RECIPIENT: u8 = 7;
/// No identity given, or the identity file is unusable.
pub const BAD_IDENTITY: u8 = 8;
/// A requested path is unsafe or not in the archive.
pub const BAD_PATH: u8 = 9;
/// The file is not an hpcs archive.
pub const NOT_ARCHIVE: u8 = 10;
/// The archive needs a newer hpcs (version, feature, cipher suite).
pub const UNSUPPORTED: u8 = 11;
/// Wrong key: no identity opens the archive, or the key does not match it.
pub const WRONG_KEY: u8 = 12;
/// The header is malformed or failed authentication (tampered).
pub const HEADER: u8 = 13;
/// The archive is truncated or has data appended.
pub const LENGTH: u8 = 14;
/// A chunk of the index or the data failed authentication (tampered).
pub const PAYLOAD: u8 = 15;
/// hpcs-pack results: some results are incomplete or missing (the job was
/// interrupted, or files were deleted from the results directory).
pub const RESULTS_INCOMPLETE: u8 = 16;
/// hpcs-pack results: a result or manifest failed authentication (modified,
/// forged, or from another run).
pub const RESULTS_TAMPERED: u8 = 17;
/// The archive is not the one expected: its pin differs from the expected
/// pin (`--pin`), it names another Vault dataset than `--vault-dataset`, or
/// its key does not match the pinned header (a copied archive id and key
/// check). Nothing was mounted.
pub const ARCHIVE_PIN: u8 = 18;
/// hpcs-pack results: the results hold a run that was not expected
/// (`--expect-run`), or an expected run is missing.
pub const UNEXPECTED_RUN: u8 = 19;
/// hpcs-mount: /dev/fuse is missing or cannot be opened.
pub const NO_FUSE: u8 = 30;
/// hpcs-mount: the mount point does not exist or is not a directory.
pub const MOUNTPOINT_MISSING: u8 = 31;
/// hpcs-mount: the mount point is already a mount point, or is not empty.
pub const MOUNTPOINT_BUSY: u8 = 32;
/// hpcs-mount: the kernel or fusermount3 refused the mount.
pub const MOUNT_FAILED: u8 = 33;
/// hpcs-mount exec mode: CMD could not be started (not found, not executable).
pub const CMD_NOT_STARTED: u8 = 34;
/// hpcs-mount --unmount: the path is not an hpcs mount.
pub const NOT_MOUNTED: u8 = 35;
/// hpcs-mount --unmount: unmounting failed (busy, permission).
pub const UNMOUNT_FAILED: u8 = 36;
/// hpcs-mount --daemon: the background process died before the mount was ready.
pub const DAEMON_FAILED: u8 = 37;
/// hpcs-mount: the watched process (--watch-pid, default the parent) exited,
/// so the mount was removed.
pub const WATCHED_EXITED: u8 = 38;
/// hpcs-mount: the results directory (--output) is unusable, or its
/// manifest could not be written.
pub const RESULTS_WRITE: u8 = 39;
/// Vault: unreachable or unavailable (refused, 5xx, 429) for the whole retry budget.
pub const VAULT_UNREACHABLE: u8 = 40;
/// Vault: access denied (permission denied, login refused, identity not trusted).
pub const VAULT_DENIED: u8 = 41;
/// Vault: the JWT-SVID had expired.
pub const SVID_EXPIRED: u8 = 42;
/// Vault: the JWT-SVID's audience is not the one the Vault role expects.
pub const WRONG_AUDIENCE: u8 = 43;
/// Vault: no key is registered for this dataset (for this identity).
pub const UNKNOWN_DATASET: u8 = 44;
/// Vault: the dataset's key (or this identity's access) was revoked.
pub const KEY_REVOKED: u8 = 45;
/// Vault: the archive is not the current version of its dataset (rollback refused).
pub const ROLLBACK: u8 = 46;
/// SPIFFE: the Workload API is unavailable or gave this process no identity.
pub const SPIFFE_UNAVAILABLE: u8 = 47;
/// Vault/SPIFFE configuration is invalid (config file, address, CA, stanza).
pub const VAULT_CONFIG: u8 = 48;
/// Vault: no usable login on the secure device (no token, or login refused).
pub const VAULT_LOGIN: u8 = 49;
/// hpcs-mount: the scratch directory (--scratch) is unusable.
pub const SCRATCH: u8 = 50;
/// hpcs-mount: memory for plaintext and keys cannot be locked in RAM (the
/// locked-memory limit, `ulimit -l`, is too small), and
/// `--allow-unlocked-memory` was not given.
pub const MEMORY_LOCK: u8 = 54;
/// Crypt4GH: the secret key is unusable (unreadable, not a Crypt4GH key,
/// passphrase missing or wrong).
pub const C4GH_KEY: u8 = 60;
/// Crypt4GH: a file cannot be used (not Crypt4GH, malformed, or not
/// encrypted to the key given).
pub const C4GH_INPUT: u8 = 61;
/// Crypt4GH: a file failed authentication (a segment damaged, moved,
/// duplicated or replaced).
pub const C4GH_AUTH: u8 = 62;
/// Crypt4GH: a file a reference archive names is missing, or changed since
/// the archive was packed (length or header: segments added or cut off, a
/// header packet added, the edit list changed, the file replaced).
pub const C4GH_CHANGED: u8 = 63;
/// Interrupted by SIGINT or SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// Every code with its one-line meaning, in README order.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success"),
    (
        INTERNAL,
        "unexpected internal error (a bug: please report it)",
    ),
    (USAGE, "bad command line"),
    (INPUT, "an input file or directory is missing or unreadable"),
    (
        OUTPUT_EXISTS,
        "the output already exists (use --force to replace it)",
    ),
    (OUTPUT, "writing the output failed"),
    (
        SOURCE_CHANGED,
        "a source file changed while it was being packed",
    ),
    (BAD_RECIPIENT, "a recipient is invalid"),
    (
        BAD_IDENTITY,
        "no identity given, or the identity file is unusable",
    ),
    (BAD_PATH, "a requested path is unsafe or not in the archive"),
    (NOT_ARCHIVE, "the file is not an hpcs archive"),
    (
        UNSUPPORTED,
        "the archive needs a newer hpcs (version, feature, cipher suite)",
    ),
    (
        WRONG_KEY,
        "wrong key: no identity opens the archive, or the key does not match it",
    ),
    (
        HEADER,
        "the archive header is malformed or failed authentication",
    ),
    (LENGTH, "the archive is truncated or has data appended"),
    (PAYLOAD, "a chunk of the archive failed authentication"),
    (
        RESULTS_INCOMPLETE,
        "hpcs-pack results: some results are incomplete or missing (interrupted job)",
    ),
    (
        RESULTS_TAMPERED,
        "hpcs-pack results: a result or manifest failed authentication",
    ),
    (
        ARCHIVE_PIN,
        "the archive is not the expected one (pin or Vault dataset differs); nothing was mounted",
    ),
    (
        UNEXPECTED_RUN,
        "hpcs-pack results: a run was not expected (--expect-run), or an expected run is missing",
    ),
    (
        NO_FUSE,
        "hpcs-mount: /dev/fuse is missing or cannot be opened",
    ),
    (
        MOUNTPOINT_MISSING,
        "hpcs-mount: the mount point does not exist or is not a directory",
    ),
    (
        MOUNTPOINT_BUSY,
        "hpcs-mount: the mount point is already mounted on, or not empty",
    ),
    (
        MOUNT_FAILED,
        "hpcs-mount: the kernel or fusermount3 refused the mount",
    ),
    (
        CMD_NOT_STARTED,
        "hpcs-mount: the command to run could not be started",
    ),
    (
        NOT_MOUNTED,
        "hpcs-mount --unmount: the path is not an hpcs mount",
    ),
    (
        UNMOUNT_FAILED,
        "hpcs-mount --unmount: unmounting failed (busy or not permitted)",
    ),
    (
        DAEMON_FAILED,
        "hpcs-mount --daemon: the background process died before the mount was ready",
    ),
    (
        WATCHED_EXITED,
        "hpcs-mount: the watched process exited, so the mount was removed",
    ),
    (
        RESULTS_WRITE,
        "hpcs-mount: the results directory (--output) is unusable or its manifest was not written",
    ),
    (
        VAULT_UNREACHABLE,
        "Vault is unreachable or unavailable (after retrying)",
    ),
    (
        VAULT_DENIED,
        "Vault denied access (permission, login refused, identity not trusted)",
    ),
    (SVID_EXPIRED, "the JWT-SVID had expired"),
    (
        WRONG_AUDIENCE,
        "the JWT-SVID's audience is not the one Vault expects",
    ),
    (
        UNKNOWN_DATASET,
        "no key is registered in Vault for this dataset and identity",
    ),
    (
        KEY_REVOKED,
        "the dataset's key was revoked in Vault (crypto-shredded)",
    ),
    (
        ROLLBACK,
        "the archive is not the current version of its dataset (rollback refused)",
    ),
    (
        SPIFFE_UNAVAILABLE,
        "the SPIFFE Workload API is unavailable or gave no identity",
    ),
    (VAULT_CONFIG, "the Vault/SPIFFE configuration is invalid"),
    (
        VAULT_LOGIN,
        "no usable Vault login on this device (token missing, expired or refused)",
    ),
    (
        SCRATCH,
        "hpcs-mount: the scratch directory (--scratch) is unusable",
    ),
    (
        MEMORY_LOCK,
        "hpcs-mount: decrypted data cannot be locked in RAM (ulimit -l too small; see --allow-unlocked-memory)",
    ),
    (
        C4GH_KEY,
        "the Crypt4GH secret key is unusable (unreadable, not a key, passphrase missing or wrong)",
    ),
    (
        C4GH_INPUT,
        "a Crypt4GH file cannot be used (not Crypt4GH, malformed, or not encrypted to this key)",
    ),
    (
        C4GH_AUTH,
        "a Crypt4GH file failed authentication (a segment damaged, moved or replaced)",
    ),
    (
        C4GH_CHANGED,
        "a Crypt4GH file a reference archive names is missing or changed since it was packed",
    ),
    (
        INTERRUPTED,
        "interrupted by SIGINT or SIGTERM; nothing was left under the output name",
    ),
];

/// Exit code for a format error.
pub fn for_format(e: &FormatError) -> u8 {
    match e {
        FormatError::NotAnArchive => NOT_ARCHIVE,
        FormatError::UnsupportedVersion(_)
        | FormatError::UnsupportedFeatures(_)
        | FormatError::UnknownSuite(_) => UNSUPPORTED,
        FormatError::WrongKey => WRONG_KEY,
        FormatError::MalformedHeader(_) | FormatError::HeaderTampered => HEADER,
        FormatError::Truncated { .. } | FormatError::TrailingData(_) => LENGTH,
        FormatError::IndexTampered
        | FormatError::IndexInvalid(_)
        | FormatError::ChunkAuth { .. } => PAYLOAD,
        FormatError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => LENGTH,
        FormatError::Io(_) => INPUT,
        FormatError::NotAFile | FormatError::BadRequest => BAD_PATH,
    }
}

/// Exit code for a key error.
pub fn for_key(e: &KeyError) -> u8 {
    match e {
        KeyError::BadRecipient(_) => BAD_RECIPIENT,
        KeyError::RecipientsUnreadable { .. } => INPUT,
        KeyError::IdentityUnreadable { .. }
        | KeyError::IdentityExposed { .. }
        | KeyError::BadIdentity { .. } => BAD_IDENTITY,
        KeyError::NoMatchingIdentity | KeyError::NoAgeStanza => WRONG_KEY,
        KeyError::BadStanza(_) => HEADER,
    }
}

/// Exit code for a key stanza error.
pub fn for_stanza(e: &StanzaError) -> u8 {
    match e {
        StanzaError::Key(e) => for_key(e),
        StanzaError::EmptyRecipientsFile(_)
        | StanzaError::NotARecipient(_)
        | StanzaError::LastRecipient => BAD_RECIPIENT,
        StanzaError::Seal(_) => INTERNAL,
    }
}

/// Exit code for a header rewrite error.
pub fn for_rewrite(e: &RewriteError) -> u8 {
    match e {
        RewriteError::Open { .. } | RewriteError::Seek(_) => INPUT,
        RewriteError::Write { .. } => OUTPUT,
        RewriteError::Changed(_) => LENGTH,
        RewriteError::Interrupted => INTERRUPTED,
        RewriteError::Check { err, .. } => for_format(err),
    }
}

/// Exit code for a pack error.
pub fn for_pack(e: &PackError) -> u8 {
    match e {
        PackError::Source { .. } | PackError::Unsupported { .. } => INPUT,
        PackError::Changed { .. } => SOURCE_CHANGED,
        PackError::OutputExists(_) => OUTPUT_EXISTS,
        PackError::Output { err, .. } if err.kind() == std::io::ErrorKind::AlreadyExists => {
            OUTPUT_EXISTS
        }
        PackError::Output { .. } => OUTPUT,
        PackError::Interrupted(_) => INTERRUPTED,
        PackError::Format(e) => for_format(e),
    }
}

/// Exit code for an extract error.
pub fn for_extract(e: &ExtractError) -> u8 {
    match e {
        ExtractError::UnsafePath(_) | ExtractError::NotFound(_) => BAD_PATH,
        ExtractError::Exists(_) => OUTPUT_EXISTS,
        ExtractError::NotADir(_)
        | ExtractError::UnsafeDir { .. }
        | ExtractError::Write { .. }
        | ExtractError::Dest { .. } => OUTPUT,
        ExtractError::Archive(e) | ExtractError::Entry { err: e, .. } => for_format(e),
        ExtractError::Reference(e) => for_reference(e),
    }
}

/// Exit code for a Crypt4GH key or file error (`crate::crypt4gh`): a file
/// that cannot be read is [`INPUT`], anything else [`C4GH_INPUT`].
pub fn for_crypt4gh_file(e: &crate::crypt4gh::Error) -> u8 {
    use crate::crypt4gh::Error as C;
    match e {
        C::Io(_) => INPUT,
        C::SegmentAuth(_) => C4GH_AUTH,
        _ => C4GH_INPUT,
    }
}

/// Exit code for a reference archive error.
pub fn for_reference(e: &RefError) -> u8 {
    match e {
        RefError::SecretKey { .. } => C4GH_KEY,
        RefError::NotUsable { err, .. } => for_crypt4gh_file(err),
        RefError::InputAuth { .. } | RefError::SegmentAuth { .. } => C4GH_AUTH,
        RefError::BadInput { .. } | RefError::Read { .. } => INPUT,
        RefError::Missing { .. } | RefError::Changed { .. } => C4GH_CHANGED,
        RefError::SegmentRead { err, .. } if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            C4GH_CHANGED
        }
        RefError::SegmentRead { .. } => INPUT,
        RefError::Invalid(_) => PAYLOAD,
        RefError::Format(e) => for_format(e),
        RefError::Pack(e) => for_pack(e),
    }
}

/// Exit code for a Vault/SPIFFE error.
#[cfg(feature = "vault")]
pub fn for_vault(e: &crate::keys::vault::VaultError) -> u8 {
    use crate::keys::vault::VaultError as V;
    match e {
        V::Unreachable { .. } => VAULT_UNREACHABLE,
        V::Denied(_) => VAULT_DENIED,
        V::SvidExpired { .. } => SVID_EXPIRED,
        V::WrongAudience { .. } => WRONG_AUDIENCE,
        V::UnknownDataset(_) => UNKNOWN_DATASET,
        V::WrongDataset(_) => ARCHIVE_PIN,
        V::Revoked { .. } => KEY_REVOKED,
        V::Rollback { .. } => ROLLBACK,
        V::SpiffeUnavailable(_) => SPIFFE_UNAVAILABLE,
        V::Config(_) => VAULT_CONFIG,
        V::Login(_) => VAULT_LOGIN,
        V::DatasetExists(_) => OUTPUT_EXISTS,
    }
}

/// A failure of a command: its exit code and the message for the user,
/// which says what is wrong and what to do.
#[derive(Debug)]
pub struct Fail {
    /// The exit code (one of the constants above, or a child's code).
    pub code: u8,
    /// The message, printed after `PROGRAM: error: `.
    pub msg: String,
}

impl Fail {
    /// A failure with this code and message.
    pub fn new(code: u8, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
}

impl From<KeyError> for Fail {
    fn from(e: KeyError) -> Fail {
        Fail::new(for_key(&e), e.to_string())
    }
}

impl From<StanzaError> for Fail {
    fn from(e: StanzaError) -> Fail {
        Fail::new(for_stanza(&e), e.to_string())
    }
}

impl From<RewriteError> for Fail {
    fn from(e: RewriteError) -> Fail {
        Fail::new(for_rewrite(&e), e.to_string())
    }
}

impl From<PackError> for Fail {
    fn from(e: PackError) -> Fail {
        Fail::new(for_pack(&e), e.to_string())
    }
}

impl From<RefError> for Fail {
    fn from(e: RefError) -> Fail {
        Fail::new(for_reference(&e), e.to_string())
    }
}

impl From<ExtractError> for Fail {
    fn from(e: ExtractError) -> Fail {
        Fail::new(for_extract(&e), e.to_string())
    }
}

#[cfg(feature = "vault")]
impl From<crate::keys::vault::VaultError> for Fail {
    fn from(e: crate::keys::vault::VaultError) -> Fail {
        Fail::new(for_vault(&e), e.to_string())
    }
}

/// Parses the command line. On a clap error (or `--help`, `--version`)
/// prints clap's text and returns the exit code: [`USAGE`] for a bad
/// command line, [`OK`] for help and version.
#[cfg(feature = "cli")]
pub fn parse_args<C: clap::Parser>() -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        std::process::ExitCode::from(clap_code(&e))
    })
}

/// The exit code for a clap error: [`USAGE`] unless it is help or version.
#[cfg(feature = "cli")]
pub fn clap_code(e: &clap::Error) -> u8 {
    if e.use_stderr() {
        USAGE
    } else {
        OK
    }
}

/// Ends `main`: the code of a success, or prints the failure as
/// `PROGRAM: error: MESSAGE` (the name given to [`crate::log::init`]) and
/// returns its code.
pub fn finish(result: Result<u8, Fail>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(f) => {
            eprintln!("{}", error_line(&f));
            std::process::ExitCode::from(f.code)
        }
    }
}

/// The line [`finish`] prints for a failure.
pub fn error_line(f: &Fail) -> String {
    format!("{}: error: {}", crate::log::program(), f.msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_from_library_errors_keeps_code_and_message() {
        let f = Fail::from(KeyError::BadRecipient("x".into()));
        assert_eq!(f.code, BAD_RECIPIENT);
        assert!(f.msg.starts_with("invalid recipient \"x\""), "{}", f.msg);
        let f = Fail::from(PackError::OutputExists("o.hpcs".into()));
        assert_eq!(f.code, OUTPUT_EXISTS);
        let f = Fail::from(ExtractError::NotFound("a/b".into()));
        assert_eq!(f.code, BAD_PATH);
    }

    #[test]
    fn error_line_names_the_program() {
        crate::log::init("hpcs-test", 0);
        let line = error_line(&Fail::new(INPUT, "cannot open x"));
        assert_eq!(line, "hpcs-test: error: cannot open x");
    }

    #[cfg(feature = "cli")]
    #[test]
    fn clap_errors_map_to_usage_and_help_to_ok() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct C {
            #[arg(long)]
            n: u32,
        }
        let e = C::try_parse_from(["c", "--n", "x"]).unwrap_err();
        assert_eq!(clap_code(&e), USAGE);
        let e = C::try_parse_from(["c", "--help"]).unwrap_err();
        assert_eq!(clap_code(&e), OK);
        assert_eq!(C::try_parse_from(["c", "--n", "3"]).unwrap().n, 3);
    }
}
