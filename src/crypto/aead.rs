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

pub use super::suite::Suite;

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

    /// The tag of an empty message with associated data `aad` under nonce
    /// `n`: a keyed MAC of `aad` (GMAC for AES-256-GCM, Poly1305 for
    /// ChaCha20-Poly1305). Like any tag it is unforgeable without the key
    /// only while each nonce is used for one message; callers derive `n`
    /// from a unique position (FORMAT.md "External Crypt4GH files").
    pub(crate) fn tag_of(&self, n: [u8; 12], aad: &[u8]) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        match &self.inner {
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(n),
                        Aad::from(aad),
                        &mut [],
                    )
                    .expect("associated data is far below the AEAD length limit");
                out.copy_from_slice(tag.as_ref());
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcAes(c) => {
                use aes_gcm::aead::AeadInOut;
                let tag = c
                    .encrypt_inout_detached(&n.into(), aad, (&mut [][..]).into())
                    .expect("associated data is far below the AEAD length limit");
                out.copy_from_slice(&tag);
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::AeadInOut;
                let tag = c
                    .encrypt_inout_detached(&n.into(), aad, (&mut [][..]).into())
                    .expect("associated data is far below the AEAD length limit");
                out.copy_from_slice(&tag);
            }
        }
        out
    }

    /// Encrypts `plaintext` into `out[..plaintext.len()]` and writes the tag
    /// into the `TAG_LEN` bytes after it, leaving `plaintext` untouched
    /// (out of place: the plaintext is never copied, so it stays only where
    /// the caller keeps it; the scratch directory seals straight from the
    /// FUSE request into a ciphertext buffer). Same bytes as
    /// [`ChunkCipher::seal_with`] over a copy of `plaintext`.
    ///
    /// # Panics
    /// If `out.len() != plaintext.len() + TAG_LEN` (a caller bug).
    // Only the scratch directory (src/fs, feature `fuse`) seals this way.
    #[cfg_attr(not(feature = "fuse"), allow(dead_code))]
    pub(crate) fn seal_into(&self, n: [u8; 12], plaintext: &[u8], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            plaintext.len() + TAG_LEN,
            "ciphertext buffer holds the plaintext and a tag"
        );
        let (ct, tag_out) = out.split_at_mut(plaintext.len());
        match &self.inner {
            #[cfg(feature = "aws-lc")]
            Inner::AwsLc(key) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                key.seal_out_of_place_scatter(
                    Nonce::assume_unique_for_key(n),
                    Aad::empty(),
                    plaintext,
                    ct,
                    &[],
                    tag_out,
                )
                .expect("buffer lengths checked above");
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcAes(c) => {
                use aes_gcm::aead::{inout::InOutBuf, AeadInOut};
                let buf = InOutBuf::new(plaintext, ct).expect("equal lengths");
                let tag = c
                    .encrypt_inout_detached(&n.into(), &[], buf)
                    .expect("block is far below the AEAD length limit");
                tag_out.copy_from_slice(&tag);
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
                let buf = InOutBuf::new(plaintext, ct).expect("equal lengths");
                let tag = c
                    .encrypt_inout_detached(&n.into(), &[], buf)
                    .expect("block is far below the AEAD length limit");
                tag_out.copy_from_slice(&tag);
            }
        }
    }

    /// Authenticates `sealed` (`ciphertext || tag`) and decrypts it into
    /// `out` (`sealed.len() - TAG_LEN` bytes), leaving `sealed` untouched:
    /// the plaintext appears only in `out` (locked memory for the scratch
    /// directory). On failure `out` is wiped.
    pub(crate) fn open_into_raw(
        &self,
        n: [u8; 12],
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), OpenError> {
        let Some(split) = sealed.len().checked_sub(TAG_LEN) else {
            return Err(OpenError);
        };
        if out.len() != split {
            return Err(OpenError);
        }
        let (ct, tag) = sealed.split_at(split);
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
                match (InOutBuf::new(ct, out), <&aes_gcm::Tag>::try_from(tag)) {
                    (Ok(buf), Ok(tag)) => {
                        c.decrypt_inout_detached(&n.into(), &[], buf, tag).is_ok()
                    }
                    _ => false,
                }
            }
            #[cfg(feature = "rustcrypto")]
            Inner::RcChaCha(c) => {
                use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
                match (
                    InOutBuf::new(ct, out),
                    <&chacha20poly1305::Tag>::try_from(tag),
                ) {
                    (Ok(buf), Ok(tag)) => {
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
        self.open_into_raw(nonce.to_bytes(), stored, out)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Out-of-place sealing gives the bytes in-place sealing gives, on every
    /// backend and suite; opening into another buffer restores the
    /// plaintext, leaves the input alone, and wipes the output on failure.
    #[test]
    fn out_of_place_matches_in_place() {
        let key = SubKey::from_bytes([9; 32]);
        let pt: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let n = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let mut first: Option<Vec<u8>> = None;
            for &backend in Backend::all() {
                let c = ChunkCipher::new(suite, backend, &key);
                let mut inplace = pt.clone();
                inplace.extend_from_slice(&[0; TAG_LEN]);
                c.seal_with(n, &mut inplace);
                let mut sealed = vec![0u8; pt.len() + TAG_LEN];
                c.seal_into(n, &pt, &mut sealed);
                assert_eq!(sealed, inplace, "{suite:?} {backend:?}");
                let first = first.get_or_insert_with(|| sealed.clone());
                assert_eq!(&sealed, first, "backends agree");
                let mut out = vec![0u8; pt.len()];
                c.open_into_raw(n, &sealed, &mut out).unwrap();
                assert_eq!(out, pt);
                let mut bad = sealed.clone();
                bad[100] ^= 1;
                assert_eq!(c.open_into_raw(n, &bad, &mut out), Err(OpenError));
                assert!(out.iter().all(|&b| b == 0), "wiped after a failure");
                let mut other = n;
                other[11] ^= 1;
                assert_eq!(c.open_into_raw(other, &sealed, &mut out), Err(OpenError));
                assert_eq!(c.open_into_raw(n, &sealed[..10], &mut out), Err(OpenError));
                assert_eq!(c.open_into_raw(n, &sealed, &mut out[1..]), Err(OpenError));
            }
        }
    }
}
