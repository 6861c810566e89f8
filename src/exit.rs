//! Exit codes shared by the hpcs binaries. A code never changes meaning once
//! released; new failures get new numbers. The README's EXIT CODES table is
//! generated from the same list ([`TABLE`]) and a test keeps them equal.

use crate::crypto::Error as FormatError;
use crate::extract::ExtractError;
use crate::keys::KeyError;
use crate::pack::PackError;

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
        KeyError::IdentityUnreadable { .. } | KeyError::BadIdentity { .. } => BAD_IDENTITY,
        KeyError::NoMatchingIdentity | KeyError::NoAgeStanza => WRONG_KEY,
        KeyError::BadStanza(_) => HEADER,
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
        ExtractError::NotADir(_) | ExtractError::Write { .. } => OUTPUT,
        ExtractError::Archive(e) => for_format(e),
    }
}
