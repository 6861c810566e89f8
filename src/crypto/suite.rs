//! The cipher suites an archive can name (FORMAT.md, header field `suite`):
//! a leaf both the key schedule ([`super::keys`]) and the AEAD
//! ([`super::aead`]) read.

/// The cipher suite recorded in the archive header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-256-GCM (header value 1, the default).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (header value 2), for CPUs without AES instructions.
    ChaCha20Poly1305,
}

impl Suite {
    /// Header encoding.
    pub fn id(self) -> u16 {
        match self {
            Suite::Aes256Gcm => 1,
            Suite::ChaCha20Poly1305 => 2,
        }
    }

    /// Parses the header encoding; `None` for a suite this version does not know.
    pub fn from_id(id: u16) -> Option<Suite> {
        match id {
            1 => Some(Suite::Aes256Gcm),
            2 => Some(Suite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The name used on the command line and in `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "aes-256-gcm",
            Suite::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Suite> {
        match name {
            "aes-256-gcm" => Some(Suite::Aes256Gcm),
            "chacha20-poly1305" => Some(Suite::ChaCha20Poly1305),
            _ => None,
        }
    }
}
