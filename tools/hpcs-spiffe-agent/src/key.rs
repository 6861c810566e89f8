//! The agent's JWT signing key: one ECDSA P-256 key pair (ES256).
//!
//! This module owns the key's life cycle (generate, load from or create the
//! `--key-file`), its public forms (JWK with an RFC 7638 thumbprint as `kid`,
//! SubjectPublicKeyInfo PEM) and raw signing/verification. The private key
//! never leaves this module except as the PKCS#8 document written to the key
//! file, and nothing here formats it: `Debug` shows the `kid` only.
//!
//! Key file format: PKCS#8 v1 (`-----BEGIN PRIVATE KEY-----` PEM) as written
//! by the agent; raw DER PKCS#8 is accepted when reading.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64ct::{Base64, Base64UrlUnpadded, Encoding as _};
use zeroize::Zeroizing;

/// Length of an uncompressed P-256 point: `0x04 || x (32) || y (32)`.
const UNCOMPRESSED_POINT_LEN: usize = 65;

const PRIVATE_KEY_PEM_LABEL: &str = "PRIVATE KEY";
const PUBLIC_KEY_PEM_LABEL: &str = "PUBLIC KEY";

/// Errors of key generation, parsing and file handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a P-256 key")]
    Generate,
    #[error("{path}: not a PKCS#8 P-256 private key")]
    Parse { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing failed")]
    Sign,
}

/// Where the key came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated in memory; lost at exit (no `--key-file`).
    Ephemeral,
    /// Generated and written to the key file.
    Created,
    /// Read from an existing key file.
    Loaded,
}

/// An ES256 signing key with its derived public identifiers.
///
/// Invariant: `kid`, `x` and `y` are derived from `pair`'s public key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    x: [u8; 32],
    y: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &"ES256")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key that exists only in memory.
    pub fn generate() -> Result<Self, KeyError> {
        let pkcs8 = generate_pkcs8()?;
        Self::from_pkcs8(&pkcs8).ok_or(KeyError::Generate)
    }

    /// Parses an unencrypted PKCS#8 v1/v2 P-256 private key (DER).
    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
        let point = pair.public_key().as_ref();
        if point.len() != UNCOMPRESSED_POINT_LEN || point.first() != Some(&0x04) {
            return None;
        }
        let x: [u8; 32] = point.get(1..33)?.try_into().ok()?;
        let y: [u8; 32] = point.get(33..65)?.try_into().ok()?;
        let kid = jwk_thumbprint(&x, &y);
        Some(Self { pair, kid, x, y })
    }

    /// Reads the key file if it exists, otherwise creates it (mode 0600,
    /// written to a temporary file and linked into place, so a crash never
    /// leaves a half-written key and a concurrent creator is never
    /// overwritten).
    pub fn load_or_create(path: &Path) -> Result<(Self, KeyOrigin), KeyError> {
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let der = decode_private_key_file(&bytes).ok_or_else(|| KeyError::Parse {
                    path: path.to_owned(),
                })?;
                let key = Self::from_pkcs8(&der).ok_or_else(|| KeyError::Parse {
                    path: path.to_owned(),
                })?;
                Ok((key, KeyOrigin::Loaded))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let pkcs8 = generate_pkcs8()?;
                let key = Self::from_pkcs8(&pkcs8).ok_or(KeyError::Generate)?;
                let pem = Zeroizing::new(pem_encode(PRIVATE_KEY_PEM_LABEL, &pkcs8));
                match create_private_file(path, pem.as_bytes()) {
                    Ok(()) => Ok((key, KeyOrigin::Created)),
                    // Someone else created it between our read and our link: use theirs.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Self::load_or_create(path),
                    Err(source) => Err(KeyError::Io {
                        path: path.to_owned(),
                        source,
                    }),
                }
            }
            Err(source) => Err(KeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The JWK key id: the RFC 7638 SHA-256 thumbprint of the public key, so
    /// the same key always has the same `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK with `"use": "jwt-svid"` (SPIFFE bundle format).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": Base64UrlUnpadded::encode_string(&self.x),
            "y": Base64UrlUnpadded::encode_string(&self.y),
            "kid": self.kid,
            "use": "jwt-svid",
        })
    }

    /// The public key as a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Generate)?;
        Ok(pem_encode(PUBLIC_KEY_PEM_LABEL, der.as_ref()))
    }

    /// Signs `message` with ES256; returns the 64-byte JWS signature `r || s`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| KeyError::Sign)?;
        Ok(signature.as_ref().to_vec())
    }

    /// Verifies an ES256 JWS signature (`r || s`) made by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(message, signature)
            .is_ok()
    }
}

fn generate_pkcs8() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| KeyError::Generate)?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

/// RFC 7638 thumbprint of an EC P-256 JWK: base64url(SHA-256 of the
/// lexicographically ordered required members, no whitespace).
fn jwk_thumbprint(x: &[u8; 32], y: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        Base64UrlUnpadded::encode_string(x),
        Base64UrlUnpadded::encode_string(y)
    );
    Base64UrlUnpadded::encode_string(digest(&SHA256, canonical.as_bytes()).as_ref())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 output is ASCII, so splitting bytes at any index is a char boundary.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Accepts a `PRIVATE KEY` PEM or raw DER; returns the DER bytes.
fn decode_private_key_file(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {PRIVATE_KEY_PEM_LABEL}-----");
    let end = format!("-----END {PRIVATE_KEY_PEM_LABEL}-----");
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some(Zeroizing::new(bytes.to_vec()));
    };
    if !text.trim_start().starts_with("-----BEGIN") {
        return Some(Zeroizing::new(bytes.to_vec()));
    }
    let body = text
        .split_once(begin.as_str())?
        .1
        .split_once(end.as_str())?
        .0;
    let b64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    Base64::decode_vec(&b64).ok().map(Zeroizing::new)
}

/// Writes `contents` to a new file at `path` with mode 0600; fails with
/// `AlreadyExists` if `path` exists. The file appears complete or not at all.
fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = crate::files::temp_sibling(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode given to open() is filtered by the umask; 0600 only ever loses bits.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    // Best effort: the temporary name is gone whether or not linking worked.
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_reject_tampering() {
        let key = SigningKey::generate().expect("generate");
        let sig = key.sign(b"header.payload").expect("sign");
        assert_eq!(sig.len(), 64);
        assert!(key.verify(b"header.payload", &sig));
        assert!(!key.verify(b"header.payloae", &sig));
        let other = SigningKey::generate().expect("generate");
        assert!(!other.verify(b"header.payload", &sig));
    }

    #[test]
    fn debug_shows_kid_only() {
        let key = SigningKey::generate().expect("generate");
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains("pair"));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.key");
        let (a, origin_a) = SigningKey::load_or_create(&path).expect("create");
        assert_eq!(origin_a, KeyOrigin::Created);
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, origin_b) = SigningKey::load_or_create(&path).expect("load");
        assert_eq!(origin_b, KeyOrigin::Loaded);
        assert_eq!(a.kid(), b.kid());
        // Only the key file is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn der_key_file_is_accepted_and_garbage_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let der = generate_pkcs8().expect("generate");
        let path = dir.path().join("der.key");
        fs::write(&path, der.as_slice()).expect("write");
        let (_, origin) = SigningKey::load_or_create(&path).expect("load der");
        assert_eq!(origin, KeyOrigin::Loaded);

        let bad = dir.path().join("bad.key");
        fs::write(
            &bad,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        assert!(matches!(
            SigningKey::load_or_create(&bad),
            Err(KeyError::Parse { .. })
        ));
    }

    #[test]
    fn kid_and_pem_have_the_expected_shape() {
        let key = SigningKey::generate().expect("generate");
        // base64url of 32 bytes without padding.
        assert_eq!(key.kid().len(), 43);
        let pem = key.public_key_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
    }
}
