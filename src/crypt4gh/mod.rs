//! A Crypt4GH (GA4GH, version 1) codec: header, segments, edit lists, key
//! files. This is not the hpcs format; it reads and writes the files that
//! genomic archives (EGA, SD Connect) already hold, so hpcs can serve them
//! and hand results back in the same form.
//!
//! A Crypt4GH file is a header (`crypt4gh`, version 1, a count of header
//! packets, each packet encrypted to one reader's X25519 key) followed by
//! the data in segments of 65 536 plaintext bytes, each stored as
//! `nonce(12) ‖ ChaCha20-Poly1305 ciphertext ‖ MAC(16)` under a data key
//! carried in the header. See docs/crypt4gh.md for what the format does and
//! does not authenticate.
//!
//! | piece                                  | module     |
//! |----------------------------------------|------------|
//! | X25519 keys and their files            | [`keys`]   |
//! | header packets (parse and build)       | [`header`] |
//! | data keys and one segment's AEAD       | [`segment`]|
//! | offsets, segments, edit lists (no I/O) | [`layout`] |
//! | streaming encryption                   | [`writer`] |
//! | streaming and random-access decryption | [`reader`] |
//!
//! Layering: this module uses the chunk AEAD of [`crate::crypto::aead`]
//! (the one place that touches a cipher implementation) and
//! [`crate::crypto::Source`] for positional reads; it imports nothing from
//! FUSE, Vault or the command line. Every parser takes untrusted bytes and
//! fails with a typed [`Error`], never a panic, with bounds on every count
//! and length ([`MAX_PACKETS`], [`MAX_PACKET_LEN`], [`MAX_HEADER_LEN`],
//! [`MAX_EDIT_LENGTHS`]).

pub mod header;
pub mod keys;
pub mod layout;
pub mod reader;
pub mod segment;
pub mod writer;

pub use header::Header;
pub use keys::{PublicKey, SecretKey};
pub use layout::{EditList, Layout, Piece, PlainMap};
pub use reader::{decrypt_stream, Reader};
pub use segment::{DataKey, DataKeys};
pub use writer::{Writer, WriterOptions};

/// Plaintext bytes in a full segment.
pub const SEGMENT_SIZE: usize = 65536;
/// Bytes of nonce before each segment's ciphertext (and each header packet's).
pub const NONCE_LEN: usize = 12;
/// Bytes of Poly1305 MAC after each segment's ciphertext.
pub const MAC_LEN: usize = 16;
/// Bytes a segment adds to its plaintext (nonce and MAC).
pub const SEGMENT_OVERHEAD: usize = NONCE_LEN + MAC_LEN;
/// Bytes of a full encrypted segment (65 564).
pub const CIPHER_SEGMENT_SIZE: usize = SEGMENT_SIZE + SEGMENT_OVERHEAD;

/// Most header packets a header may declare. A file encrypted to many readers
/// has one data-key packet (and one edit-list packet) per reader; 1024 is far
/// beyond any real header and bounds the X25519 work an untrusted file can
/// ask for.
pub const MAX_PACKETS: u32 = 1024;
/// Largest header packet accepted, length field included (1 MiB: an edit list
/// of [`MAX_EDIT_LENGTHS`] lengths is 64 KiB; the rest allows padding).
pub const MAX_PACKET_LEN: u32 = 1 << 20;
/// Largest header accepted (4 MiB), whatever the packets add up to.
pub const MAX_HEADER_LEN: u64 = 4 << 20;
/// Most lengths an edit list may hold (4096 kept ranges).
pub const MAX_EDIT_LENGTHS: u32 = 8192;

/// Everything that can go wrong reading or writing Crypt4GH files and keys.
/// Messages say what is wrong and, where there is one, what to do; a failed
/// segment or packet is only ever "failed authentication".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not start with `crypt4gh`.
    #[error("not a Crypt4GH file (it does not start with the `crypt4gh` magic)")]
    NotCrypt4gh,
    /// A version other than 1.
    #[error("Crypt4GH version {0} is not supported (this reads version 1)")]
    UnsupportedVersion(u32),
    /// The input ends inside the header.
    #[error("Crypt4GH header is truncated: the file ends inside it")]
    HeaderTruncated,
    /// The header is structurally invalid.
    #[error("Crypt4GH header is malformed ({0})")]
    MalformedHeader(&'static str),
    /// More packets than [`MAX_PACKETS`].
    #[error("Crypt4GH header declares {0} packets; at most {MAX_PACKETS} are accepted")]
    TooManyPackets(u32),
    /// A packet length outside the accepted range.
    #[error("Crypt4GH header packet {index} declares length {len}; a packet is 8..={MAX_PACKET_LEN} bytes (X25519 packets at least 72)")]
    BadPacketLength {
        /// Packet position in the header (from 0).
        index: u32,
        /// Declared length.
        len: u32,
    },
    /// The packets add up to more than [`MAX_HEADER_LEN`].
    #[error("Crypt4GH header is larger than {MAX_HEADER_LEN} bytes")]
    HeaderTooLarge,
    /// No header packet decrypted with the key.
    #[error("no Crypt4GH header packet decrypts with this key: the file is encrypted to another key (or its header was damaged)")]
    NotForThisKey,
    /// Packets decrypted, but none carries a data key.
    #[error("the Crypt4GH header has packets for this key but no data key packet among them")]
    NoDataKey,
    /// A decrypted packet of a type the spec does not define.
    #[error("Crypt4GH header packet {index} has unknown packet type {ty}")]
    UnknownPacketType {
        /// Packet position in the header.
        index: u32,
        /// The type found.
        ty: u32,
    },
    /// A data-encryption method other than 0 (chacha20_ietf_poly1305).
    #[error("Crypt4GH header packet {index} uses data encryption method {method}; only 0 (chacha20_ietf_poly1305) is supported")]
    UnsupportedDataMethod {
        /// Packet position in the header.
        index: u32,
        /// The method found.
        method: u32,
    },
    /// A decrypted packet too short for its type.
    #[error("Crypt4GH header packet {index} is malformed ({what})")]
    MalformedPacket {
        /// Packet position in the header.
        index: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// More than one edit list for this key (the spec says to reject).
    #[error("the Crypt4GH header has more than one edit list; such files must be rejected")]
    TooManyEditLists,
    /// An edit list longer than [`MAX_EDIT_LENGTHS`].
    #[error("Crypt4GH edit list has {0} lengths; at most {MAX_EDIT_LENGTHS} are accepted")]
    EditListTooLong(u64),
    /// The data after the header is not a whole number of segments.
    #[error("Crypt4GH data ends with {0} bytes, too few for a segment (at least 29): the file is truncated or has bytes appended")]
    BadBodyLength(u64),
    /// A segment failed authentication with every data key.
    #[error("Crypt4GH segment {0} failed authentication: the file was modified or damaged")]
    SegmentAuth(u64),
    /// A segment buffer of impossible size (caller bug or truncated input).
    #[error("Crypt4GH segment {index} is {len} bytes; a segment is 29..=65564 bytes")]
    BadSegmentLength {
        /// Segment index.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// A segment index past the end of the file (caller bug).
    #[error("Crypt4GH segment {index} does not exist: the file has {segments} segments")]
    SegmentOutOfRange {
        /// Segment asked for.
        index: u64,
        /// Segments in the file.
        segments: u64,
    },
    /// A recipient public key X25519 cannot use (a low-order point).
    #[error("Crypt4GH public key is invalid (a low-order curve point no secret key matches)")]
    BadPublicKey,
    /// No recipient given to the writer.
    #[error("Crypt4GH: at least one recipient public key is needed")]
    NoRecipients,
    /// A key file that is not in the Crypt4GH key format.
    #[error("not a Crypt4GH {kind} key file ({what})")]
    KeyFormat {
        /// "private" or "public".
        kind: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// A key derivation function the format does not define.
    #[error("Crypt4GH private key uses unknown KDF {0:?} (known: none, scrypt, bcrypt, pbkdf2_hmac_sha256)")]
    UnsupportedKdf(String),
    /// A key cipher the format does not define.
    #[error("Crypt4GH private key uses unknown cipher {0:?} (known: none, chacha20_poly1305)")]
    UnsupportedKeyCipher(String),
    /// KDF parameters out of range.
    #[error("Crypt4GH private key has invalid KDF parameters ({0})")]
    BadKdfParams(&'static str),
    /// The key is encrypted and no passphrase was given.
    #[error("the Crypt4GH private key is protected by a passphrase: supply it")]
    PassphraseRequired,
    /// The passphrase does not open the key.
    #[error("wrong passphrase for the Crypt4GH private key (or the key file is damaged)")]
    WrongPassphrase,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
