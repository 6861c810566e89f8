//! Crypt4GH reference archives: hpcs archives whose files are `.c4gh`
//! files left where they are (EGA, SD Connect downloads), with the integrity
//! Crypt4GH lacks (FORMAT.md "External Crypt4GH files", docs/crypt4gh.md).
//!
//! [`pack`] runs on the secure device: it opens each `.c4gh` file with the
//! user's Crypt4GH secret key, authenticates every segment once, and writes
//! an archive whose encrypted index records where each file lives, its exact
//! length, its header's SHA-256, its data keys and edit list, and whose data
//! stream holds one tag per segment, keyed by the archive. [`files`] is the
//! reading side: it opens the external files of an unlocked archive (refusing
//! one whose length or header changed), and serves segments only after their
//! tag matched, so a segment reordered, duplicated, dropped or replaced, a
//! header packet added, an edit list changed or a file replaced fails closed.
//! Nodes need the archive's key only, never the Crypt4GH secret key.
//!
//! Layering: above [`crate::crypto`] (the archive and its record format,
//! `crypto::external`) and [`crate::crypt4gh`] (the codec); below the FUSE
//! layer and the binaries. Log lines and errors name an external file by its
//! ordinal; its path only when the caller asks for it (`show_paths`), since a
//! path comes from the archive's hidden index.

pub mod files;
pub mod pack;

pub use files::{BoundFile, ExternalFiles, SegmentError};
pub use pack::{scan, write, Placement, RefScan};

use std::io;
use std::path::PathBuf;

use crate::crypto;

/// How an external file is named in messages: by ordinal, and by path only
/// when paths may be shown.
#[derive(Clone, Debug)]
pub struct Named {
    /// Ordinal of the external file in the archive (index order, from 0).
    pub ordinal: u32,
    /// Its path, when it may be shown.
    pub path: Option<PathBuf>,
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(
                f,
                "external Crypt4GH file {} ({})",
                self.ordinal,
                p.display()
            ),
            None => write!(
                f,
                "external Crypt4GH file {} (run with -v to see its path)",
                self.ordinal
            ),
        }
    }
}

/// Why a reference archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// The Crypt4GH secret key cannot be used.
    #[error("Crypt4GH secret key {path}: {err}")]
    SecretKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        err: crate::crypt4gh::Error,
    },
    /// An input is not a Crypt4GH file this key opens.
    #[error("{path}: {err}")]
    NotUsable {
        /// The input.
        path: PathBuf,
        /// Why.
        err: crate::crypt4gh::Error,
    },
    /// An input segment failed authentication while packing.
    #[error("{path}: Crypt4GH segment {segment} failed authentication: the file is damaged or was modified; fetch it again")]
    InputAuth {
        /// The input.
        path: PathBuf,
        /// The segment.
        segment: u64,
    },
    /// An input cannot be packed as given (not a file, name clash, …).
    #[error("{path}: {why}")]
    BadInput {
        /// The input.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// An input cannot be read.
    #[error("cannot read {path}: {err}")]
    Read {
        /// The input.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// An external file named by the archive cannot be opened.
    #[error(
        "{file} cannot be opened: {err}; it must stay where it was when the archive was packed"
    )]
    Missing {
        /// Which file.
        file: Named,
        /// Why.
        err: io::Error,
    },
    /// An external file is not the one the archive was packed from.
    #[error("{file} changed since the archive was packed ({what}); refusing it: fetch the original file again, or pack a new reference archive")]
    Changed {
        /// Which file.
        file: Named,
        /// What differs.
        what: &'static str,
    },
    /// A segment of an external file failed its tag or its Crypt4GH MAC.
    #[error("{file}: segment {segment} failed authentication (the file was modified: segments reordered, replaced or damaged)")]
    SegmentAuth {
        /// Which file.
        file: Named,
        /// The segment.
        segment: u64,
    },
    /// Reading an external file failed (truncated under us, I/O error).
    #[error("{file}: reading segment {segment} failed: {err} (file truncated or unreadable?)")]
    SegmentRead {
        /// Which file.
        file: Named,
        /// The segment.
        segment: u64,
        /// Why.
        err: io::Error,
    },
    /// The archive's index is inconsistent with its records (a writer bug).
    #[error("archive index is invalid ({0})")]
    Invalid(&'static str),
    /// The archive failed (format, key, chunk authentication).
    #[error(transparent)]
    Format(#[from] crypto::Error),
    /// Writing the archive failed, or was interrupted.
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
}

#[cfg(test)]
mod tests;
