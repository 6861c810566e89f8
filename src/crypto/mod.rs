//! The archive format (FORMAT.md): keys, chunks, header, index, reader, writer.
//!
//! This layer knows nothing of FUSE, Vault, SPIFFE, async or the command
//! line. It owns every byte of the on-disk format and every use of a cipher.
//! One module per FORMAT.md section:
//!
//! | FORMAT.md      | module                    |
//! |----------------|---------------------------|
//! | Keys           | [`keys`]                  |
//! | Chunks         | [`aead`], [`nonce`], [`offsets`], [`stream`] |
//! | Header         | [`header`]                |
//! | Index          | [`index`]                 |
//! | Archive pin    | [`pin`]                   |
//! | Reading        | [`reader`], [`source`]    |
//! | Writing        | [`writer`]                |

pub mod aead;
pub mod header;
pub mod index;
pub mod keys;
mod le;
pub mod nonce;
pub mod offsets;
pub mod pin;
pub mod reader;
pub mod source;
pub mod stream;
pub mod suite;
pub mod writer;

pub use aead::{Backend, Suite};
pub use header::{Header, Stanza};
pub use index::{Kind, Node, NodeId, Tree, TreeBuilder, ROOT};
pub use keys::DataKey;
pub use pin::Pin;
pub use reader::{Archive, SealedArchive};
pub use source::{FileSource, MmapSource, Source};
pub use stream::StreamKind;
pub use writer::{write_archive, WriteOptions};

/// Everything that can go wrong reading or writing an archive. Messages are
/// precise for the operator (which chunk) but never say why a chunk failed
/// beyond "failed authentication".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The magic bytes are missing.
    #[error("not an hpcs archive (no hpcs magic at the start of the file)")]
    NotAnArchive,
    /// A format version this build cannot read.
    #[error("archive format version {0} is not supported by this hpcs (it reads version 1); upgrade hpcs")]
    UnsupportedVersion(u16),
    /// Required feature bits this build does not know.
    #[error("archive needs format features this hpcs does not have (bits {0:#x}); upgrade hpcs")]
    UnsupportedFeatures(u32),
    /// A cipher suite this build does not know.
    #[error("archive uses unknown cipher suite {0}; upgrade hpcs")]
    UnknownSuite(u16),
    /// Structurally invalid header.
    #[error("archive header is malformed ({0})")]
    MalformedHeader(&'static str),
    /// The key does not match the header's key check.
    #[error("wrong key: the key does not match this archive's key commitment")]
    WrongKey,
    /// The key matches but the header MAC does not.
    #[error("archive header failed authentication: it was modified after packing")]
    HeaderTampered,
    /// The archive is shorter than its header says.
    #[error("archive is truncated: it should be {expected} bytes but is {actual}")]
    Truncated {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The archive is longer than its header says.
    #[error("archive has {0} unexpected bytes after its end (appended or spliced data)")]
    TrailingData(u64),
    /// An index chunk failed authentication.
    #[error("archive index failed authentication: the archive was modified")]
    IndexTampered,
    /// The index authenticated but is inconsistent (a writer bug).
    #[error("archive index is invalid ({0})")]
    IndexInvalid(String),
    /// A chunk failed authentication.
    #[error(
        "{stream:?} chunk {chunk} failed authentication: the archive was modified or is damaged"
    )]
    ChunkAuth {
        /// Which stream.
        stream: StreamKind,
        /// Chunk index.
        chunk: u64,
    },
    /// The entry is not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// A read outside the stream or with wrongly sized buffers (caller bug).
    #[error("read request outside the archive")]
    BadRequest,
    /// Reading or writing the archive failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
