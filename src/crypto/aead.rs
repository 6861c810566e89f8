//! Chunk AEAD: the two cipher suites over the two backends.
//!
//! This module owns the only code that touches an AEAD implementation. A
//! [`ChunkCipher`] is a prepared key for one suite and one backend; it seals a
//! chunk in place and appends the 16-byte tag, or opens `ciphertext || tag` in
//! place. Which backend runs is chosen by [`Backend::default`]: aws-lc-rs when
//! it is compiled in (about 10 GB/s per core for AES-256-GCM on the reference
//! machine), the pure-Rust RustCrypto crates otherwise. Both produce identical
//! bytes; `tests/` checks that differentially.

use super::keys::SubKey;
use super::nonce::ChunkNonce;

/// Bytes of authentication tag appended to every chunk (both suites).
pub const TAG_LEN: usize = 16;

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

/// An AEAD implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// aws-lc-rs (assembly AES-GCM; the default).
    #[cfg(feature = "aws-lc")]
    AwsLc,
    /// RustCrypto `aes-gcm` and `chacha20poly1305` (pure Rust).
    #[cfg(feature = "rustcrypto")]
    RustCrypto,
}

impl Backend {
    /// Every backend compiled into this build.
    pub fn all() -> &'static [Backend] {
        &[
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc,
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto,
        ]
    }

    /// A short name for benchmarks and logs.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc-rs",
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => "rustcrypto",
        }
    }
}

#[allow(clippy::derivable_impls)] // the default depends on enabled features
impl Default for Backend {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        {
            Backend::AwsLc
        }
        #[cfg(all(not(feature = "aws-lc"), feature = "rustcrypto"))]
        {
            Backend::RustCrypto
        }
    }
}

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("hpcs needs at least one AEAD backend: enable feature `aws-lc` or `rustcrypto`");

/// The chunk failed authentication (deliberately says nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// A prepared chunk key for one suite on one backend.
pub struct ChunkCipher {
    inner: Inner,
}

enum Inner {
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    #[cfg(feature = "rustcrypto")]
    RcAes(Box<aes_gcm::Aes256Gcm>),
    #[cfg(feature = "rustcrypto")]
    RcChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
}

impl ChunkCipher {
    /// Prepares `key` for `suite` on `backend`.
    pub fn new(suite: Suite, backend: Backend, key: &SubKey) -> ChunkCipher {
        let inner = match backend {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
                let alg = match suite {
                    Suite::Aes256Gcm => &AES_256_GCM,
                    Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
                };
                // A 32-byte key is valid for both algorithms; this cannot fail.
                let unbound = UnboundKey::new(alg, key.expose())
                    .expect("32-byte key is valid for AES-256-GCM and ChaCha20-Poly1305");
                Inner::AwsLc(LessSafeKey::new(unbound))
            }
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => {
                use aes_gcm::KeyInit;
                match suite {
                    Suite::Aes256Gcm => Inner::RcAes(Box::new(
                        aes_gcm::Aes256Gcm::new_from_slice(key.expose())
                            .expect("32-byte key is valid for AES-256-GCM"),
                    )),
                    Suite::ChaCha20Poly1305 => Inner::RcChaCha(Box::new(
                        chacha20poly1305::ChaCha20Poly1305::new_from_slice(key.expose())
                            .expect("32-byte key is valid for ChaCha20-Poly1305"),
                    )),
                }
            }
        };
        ChunkCipher { inner }
    }

    /// Encrypts `buf[..buf.len() - TAG_LEN]` in place and writes the tag into
    /// the last `TAG_LEN` bytes.
    ///
    /// # Panics
    /// If `buf` is shorter than `TAG_LEN` (a caller bug, never input-driven).
    pub fn seal(&self, nonce: ChunkNonce, buf: &mut [u8]) {
        self.seal_with(nonce.to_bytes(), buf)
    }

    /// [`ChunkCipher::seal`] with raw nonce bytes (sealed stanzas use random
    /// nonces under their own key).
    pub(crate) fn seal_with(&self, n: [u8; 12], buf: &mut [u8]) {
        let split = buf
            .len()
            .checked_sub(TAG_LEN)
            .expect("chunk buffer holds a tag");
        let (data, tag_out) = buf.split_at_mut(split);
        match &self.inner {
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let tag = key
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), data)
                    .expect("chunk is far below the AEAD length limit");
                tag_out.copy_from_slice(tag.as_ref());
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcAes(c) => {
                use aes_gcm::aead::AeadInOut;
                let tag = c
                    .encrypt_inout_detached(&n.into(), &[], data.into())
                    .expect("chunk is far below the AEAD length limit");
                tag_out.copy_from_slice(&tag);
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::AeadInOut;
                let tag = c
                    .encrypt_inout_detached(&n.into(), &[], data.into())
                    .expect("chunk is far below the AEAD length limit");
                tag_out.copy_from_slice(&tag);
            }
        }
    }

    /// Authenticates and decrypts `ciphertext || tag` in place. On success the
    /// plaintext is `buf[..buf.len() - TAG_LEN]`. On failure the buffer holds
    /// no plaintext the caller may use (it is wiped before returning).
    pub fn open(&self, nonce: ChunkNonce, buf: &mut [u8]) -> Result<(), OpenError> {
        self.open_with(nonce.to_bytes(), buf)
    }

    /// Authenticates `stored` (`ciphertext || tag`) and decrypts it into
    /// `out` (exactly the ciphertext's length), leaving `stored` untouched.
    /// On failure `out` holds no plaintext the caller may use (it is wiped
    /// before returning).
    pub fn open_into(
        &self,
        nonce: ChunkNonce,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), OpenError> {
        let Some(split) = stored.len().checked_sub(TAG_LEN) else {
            return Err(OpenError);
        };
        if out.len() != split {
            return Err(OpenError);
        }
        let (ct, tag) = stored.split_at(split);
        let n = nonce.to_bytes();
        let ok = match &self.inner {
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                key.open_separate_gather(
                    Nonce::assume_unique_for_key(n),
                    Aad::empty(),
                    ct,
                    tag,
                    out,
                )
                .is_ok()
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcAes(c) => {
                use aes_gcm::aead::{inout::InOutBuf, AeadInOut};
                match (<&aes_gcm::Tag>::try_from(tag), InOutBuf::new(ct, out)) {
                    (Ok(tag), Ok(buf)) => {
                        c.decrypt_inout_detached(&n.into(), &[], buf, tag).is_ok()
                    }
                    _ => false,
                }
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
                match (
                    <&chacha20poly1305::Tag>::try_from(tag),
                    InOutBuf::new(ct, out),
                ) {
                    (Ok(tag), Ok(buf)) => {
                        c.decrypt_inout_detached(&n.into(), &[], buf, tag).is_ok()
                    }
                    _ => false,
                }
            }
        };
        if ok {
            Ok(())
        } else {
            zeroize::Zeroize::zeroize(out);
            Err(OpenError)
        }
    }

    /// [`ChunkCipher::open`] with raw nonce bytes.
    pub(crate) fn open_with(&self, n: [u8; 12], buf: &mut [u8]) -> Result<(), OpenError> {
        if buf.len() < TAG_LEN {
            return Err(OpenError);
        }
        let ok = match &self.inner {
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                key.open_in_place(Nonce::assume_unique_for_key(n), Aad::empty(), buf)
                    .is_ok()
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcAes(c) => {
                use aes_gcm::aead::AeadInOut;
                let (data, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
                let tag: &[u8] = tag;
                match <&aes_gcm::Tag>::try_from(tag) {
                    Ok(tag) => c
                        .decrypt_inout_detached(&n.into(), &[], data.into(), tag)
                        .is_ok(),
                    Err(_) => false,
                }
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::AeadInOut;
                let (data, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
                let tag: &[u8] = tag;
                match <&chacha20poly1305::Tag>::try_from(tag) {
                    Ok(tag) => c
                        .decrypt_inout_detached(&n.into(), &[], data.into(), tag)
                        .is_ok(),
                    Err(_) => false,
                }
            }
        };
        if ok {
            Ok(())
        } else {
            zeroize::Zeroize::zeroize(buf);
            Err(OpenError)
        }
    }
}
