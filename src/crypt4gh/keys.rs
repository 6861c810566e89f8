//! Crypt4GH keys: X25519 key pairs, the header packets' shared key, and the
//! key file formats of the reference implementation.
//!
//! Shared key of a header packet (spec "X25519_chacha20_ietf_poly1305"):
//! `Blake2b-512(X25519(secret, peer) ‖ reader_pk ‖ writer_pk)[..32]`: the
//! same bytes on both sides (libsodium's `crypto_kx` with the reader as
//! client and the writer as server).
//!
//! Key files are PEM-like: `-----BEGIN CRYPT4GH PUBLIC KEY-----`, base64 of
//! the 32-byte key, `-----END …`; and for the private key, base64 of
//! `"c4gh-v1" ‖ string kdfname ‖ [string (rounds_be32 ‖ salt)] ‖ string
//! ciphername ‖ string blob ‖ [string comment]`, where a string is a
//! big-endian u16 length and its bytes. With KDF and cipher `none` the blob
//! is the raw secret key; otherwise the KDF (`scrypt` N=2^14 r=8 p=1,
//! `bcrypt` (OpenSSH bcrypt_pbkdf), or `pbkdf2_hmac_sha256`) turns the
//! passphrase into a 32-byte key and the blob is `nonce(12) ‖
//! ChaCha20-Poly1305(secret key) ‖ MAC(16)`. The caller passes the
//! passphrase; nothing here prompts.
//!
//! Secret material lives in zeroizing types and no `Debug` shows it.

use std::path::Path;

use base64::Engine as _;
use blake2::{Blake2b512, Digest};
use zeroize::{Zeroize, Zeroizing};

use super::{Error, NONCE_LEN};
use crate::crypto::aead::{Backend, ChunkCipher, Suite, TAG_LEN};
use crate::crypto::keys::SubKey;

/// Bytes of an X25519 key (public or secret).
pub const KEY_LEN: usize = 32;
/// Largest key file read (a Crypt4GH key file is under 300 bytes).
pub const MAX_KEY_FILE: u64 = 64 << 10;
/// Most bcrypt rounds a key file may ask for (the reference writes 100).
pub const MAX_BCRYPT_ROUNDS: u32 = 10_000;
/// Most PBKDF2 iterations a key file may ask for (the reference uses 100 000).
pub const MAX_PBKDF2_ROUNDS: u32 = 100_000_000;

const MAGIC: &[u8] = b"c4gh-v1";
const CIPHER: &[u8] = b"chacha20_poly1305";
const NONE: &[u8] = b"none";
const SALT_LEN: usize = 16;

/// An X25519 public key (a Crypt4GH recipient or writer).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", b64().encode(self.0))
    }
}

impl PublicKey {
    /// A public key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses a public key file (`-----BEGIN CRYPT4GH PUBLIC KEY-----`).
    pub fn from_file_text(text: &[u8]) -> Result<PublicKey, Error> {
        let body = pem_body(text, "PUBLIC")?;
        let bytes: [u8; KEY_LEN] = body.as_slice().try_into().map_err(|_| Error::KeyFormat {
            kind: "public",
            what: "the key is not 32 bytes",
        })?;
        Ok(PublicKey(bytes))
    }

    /// Reads a public key file.
    pub fn read_file(path: &Path) -> Result<PublicKey, Error> {
        PublicKey::from_file_text(&read_small(path)?)
    }

    /// The public key file text.
    pub fn to_file_text(&self) -> String {
        pem("PUBLIC", &self.0).as_str().to_owned()
    }
}

/// An X25519 secret key. Wiped on drop; `Debug` shows only the public key.
#[derive(Clone)]
pub struct SecretKey(x25519_dalek::StaticSecret);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(<redacted>, {:?})", self.public_key())
    }
}

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> std::io::Result<SecretKey> {
        let mut b = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut *b).map_err(std::io::Error::other)?;
        Ok(SecretKey::from_bytes(*b))
    }

    /// A secret key from its 32 bytes (clamped when used, as X25519 does).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> SecretKey {
        let k = SecretKey(x25519_dalek::StaticSecret::from(bytes));
        bytes.zeroize();
        k
    }

    /// The 32 secret bytes, for writing a key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*x25519_dalek::PublicKey::from(&self.0).as_bytes())
    }

    /// Parses a private key file; `passphrase` opens an encrypted one
    /// ([`Error::PassphraseRequired`] when it is needed and `None`).
    pub fn from_file_text(text: &[u8], passphrase: Option<&[u8]>) -> Result<SecretKey, Error> {
        let body = pem_body(text, "PRIVATE")?;
        parse_private_blob(&body, passphrase)
    }

    /// Reads a private key file.
    pub fn read_file(path: &Path, passphrase: Option<&[u8]>) -> Result<SecretKey, Error> {
        SecretKey::from_file_text(&read_small(path)?, passphrase)
    }

    /// The private key file text: in the clear when `protect` is `None`,
    /// else encrypted under `protect`'s passphrase with its KDF (the
    /// reference uses [`Kdf::Scrypt`]). `comment` is stored in the clear.
    pub fn to_file_text(
        &self,
        protect: Option<(&[u8], Kdf)>,
        comment: Option<&str>,
    ) -> Result<Zeroizing<String>, Error> {
        let mut blob = Zeroizing::new(MAGIC.to_vec());
        match protect {
            None => {
                put_string(&mut blob, NONE);
                put_string(&mut blob, NONE);
                put_string(&mut blob, &*self.to_bytes());
            }
            Some((pass, kdf)) => {
                let mut salt = [0u8; SALT_LEN];
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
                getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
                let key = kdf.derive(pass, &salt)?;
                let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + KEY_LEN + TAG_LEN));
                sealed.extend_from_slice(&nonce);
                sealed.extend_from_slice(&*self.to_bytes());
                sealed.resize(NONCE_LEN + KEY_LEN + TAG_LEN, 0);
                cipher(&key).seal_with(nonce, &mut sealed[NONCE_LEN..]);
                let mut options = kdf.rounds().to_be_bytes().to_vec();
                options.extend_from_slice(&salt);
                put_string(&mut blob, kdf.name().as_bytes());
                put_string(&mut blob, &options);
                put_string(&mut blob, CIPHER);
                put_string(&mut blob, &sealed);
            }
        }
        if let Some(c) = comment {
            if c.len() > usize::from(u16::MAX) {
                return Err(Error::KeyFormat {
                    kind: "private",
                    what: "the comment is longer than 65535 bytes",
                });
            }
            put_string(&mut blob, c.as_bytes());
        }
        Ok(pem("PRIVATE", &blob))
    }
}

/// The shared key of a header packet, seen from `secret`'s side of the
/// exchange with `peer`; `None` when the exchange is degenerate (a
/// low-order peer key gives an all-zero result, which libsodium refuses).
pub(crate) fn packet_key(
    secret: &SecretKey,
    peer: &PublicKey,
    reader: &PublicKey,
    writer: &PublicKey,
) -> Option<SubKey> {
    let dh = secret
        .0
        .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
    if !dh.was_contributory() {
        return None;
    }
    let mut h = Blake2b512::new();
    h.update(dh.as_bytes());
    h.update(reader.0);
    h.update(writer.0);
    let mut out = h.finalize();
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&out[..KEY_LEN]);
    out.as_mut_slice().zeroize();
    Some(SubKey::from_bytes(key))
}

/// A ChaCha20-Poly1305 cipher under a 32-byte key (the one AEAD of the format).
pub(crate) fn cipher(key: &SubKey) -> ChunkCipher {
    ChunkCipher::new(Suite::ChaCha20Poly1305, Backend::default(), key)
}

/// How a private key file derives its encryption key from the passphrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt, N = 2^14, r = 8, p = 1 (the reference's choice; its rounds
    /// field is written as 0 and ignored).
    Scrypt,
    /// OpenSSH's bcrypt_pbkdf with this many rounds (the reference: 100).
    Bcrypt {
        /// Rounds, 1..=[`MAX_BCRYPT_ROUNDS`].
        rounds: u32,
    },
    /// PBKDF2-HMAC-SHA256 with this many iterations (the reference: 100 000).
    Pbkdf2Sha256 {
        /// Iterations, 1..=[`MAX_PBKDF2_ROUNDS`].
        rounds: u32,
    },
}

impl Kdf {
    fn name(self) -> &'static str {
        match self {
            Kdf::Scrypt => "scrypt",
            Kdf::Bcrypt { .. } => "bcrypt",
            Kdf::Pbkdf2Sha256 { .. } => "pbkdf2_hmac_sha256",
        }
    }

    fn rounds(self) -> u32 {
        match self {
            Kdf::Scrypt => 0,
            Kdf::Bcrypt { rounds } | Kdf::Pbkdf2Sha256 { rounds } => rounds,
        }
    }

    fn from_name(name: &[u8], rounds: u32) -> Result<Kdf, Error> {
        match name {
            b"scrypt" => Ok(Kdf::Scrypt),
            b"bcrypt" => Ok(Kdf::Bcrypt { rounds }),
            b"pbkdf2_hmac_sha256" => Ok(Kdf::Pbkdf2Sha256 { rounds }),
            _ => Err(Error::UnsupportedKdf(
                String::from_utf8_lossy(name).into_owned(),
            )),
        }
    }

    /// The 32-byte key for `passphrase` and `salt`.
    fn derive(self, passphrase: &[u8], salt: &[u8]) -> Result<SubKey, Error> {
        let mut out = [0u8; KEY_LEN];
        match self {
            Kdf::Scrypt => {
                let params = scrypt::Params::new(14, 8, 1, KEY_LEN)
                    .expect("N=2^14, r=8, p=1 are valid scrypt parameters");
                scrypt::scrypt(passphrase, salt, &params, &mut out)
                    .expect("32 bytes is a valid scrypt output length");
            }
            Kdf::Bcrypt { rounds } => {
                if !(1..=MAX_BCRYPT_ROUNDS).contains(&rounds) {
                    return Err(Error::BadKdfParams("bcrypt rounds must be 1..=10000"));
                }
                bcrypt_pbkdf::bcrypt_pbkdf(passphrase, salt, rounds, &mut out).map_err(|_| {
                    Error::BadKdfParams("bcrypt needs a non-empty passphrase and salt")
                })?;
            }
            Kdf::Pbkdf2Sha256 { rounds } => {
                if !(1..=MAX_PBKDF2_ROUNDS).contains(&rounds) {
                    return Err(Error::BadKdfParams(
                        "pbkdf2_hmac_sha256 iterations must be 1..=100000000",
                    ));
                }
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase, salt, rounds, &mut out);
            }
        }
        Ok(SubKey::from_bytes(out))
    }
}

fn parse_private_blob(blob: &[u8], passphrase: Option<&[u8]>) -> Result<SecretKey, Error> {
    const BAD: fn(&'static str) -> Error = |what| Error::KeyFormat {
        kind: "private",
        what,
    };
    let mut b = blob.strip_prefix(MAGIC).ok_or(BAD("no c4gh-v1 magic"))?;
    let truncated = || BAD("the key data is truncated");
    let kdf_name = take_string(&mut b).ok_or_else(truncated)?;
    let kdf = if kdf_name == NONE {
        None
    } else {
        let options = take_string(&mut b).ok_or_else(truncated)?;
        let (rounds, salt) = options.split_first_chunk::<4>().ok_or(Error::BadKdfParams(
            "the KDF options are shorter than 4 bytes",
        ))?;
        Some((Kdf::from_name(kdf_name, u32::from_be_bytes(*rounds))?, salt))
    };
    let cipher_name = take_string(&mut b).ok_or_else(truncated)?;
    let secret = take_string(&mut b).ok_or_else(truncated)?;
    if !b.is_empty() {
        take_string(&mut b).ok_or(BAD("bytes after the key are not a comment"))?;
        if !b.is_empty() {
            return Err(BAD("unexpected bytes after the comment"));
        }
    }
    let (kdf, salt) = match (kdf, cipher_name) {
        (None, NONE) => {
            let bytes: [u8; KEY_LEN] = secret
                .try_into()
                .map_err(|_| BAD("the clear key is not 32 bytes"))?;
            return Ok(SecretKey::from_bytes(bytes));
        }
        (None, _) | (Some(_), NONE) => {
            return Err(BAD("KDF and cipher must both be none or both be set"))
        }
        (Some(_), c) if c != CIPHER => {
            return Err(Error::UnsupportedKeyCipher(
                String::from_utf8_lossy(c).into_owned(),
            ))
        }
        (Some(k), _) => k,
    };
    if secret.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
        return Err(BAD("the encrypted key is not 60 bytes"));
    }
    let pass = passphrase.ok_or(Error::PassphraseRequired)?;
    let key = kdf.derive(pass, salt)?;
    let (nonce, sealed) = secret.split_at(NONCE_LEN);
    let mut buf = Zeroizing::new(sealed.to_vec());
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    cipher(&key)
        .open_with(nonce, &mut buf)
        .map_err(|_| Error::WrongPassphrase)?;
    let bytes: [u8; KEY_LEN] = buf[..KEY_LEN].try_into().expect("60 - 12 - 16 = 32");
    Ok(SecretKey::from_bytes(bytes))
}

/// The next big-endian-u16-prefixed string of `b`.
fn take_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = b.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let s = rest.get(..len)?;
    *b = &rest[len..];
    Some(s)
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).expect("key file strings are short");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn pem(kind: &str, body: &[u8]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(format!("-----BEGIN CRYPT4GH {kind} KEY-----\n"));
    s.push_str(&Zeroizing::new(b64().encode(body)));
    s.push_str(&format!("\n-----END CRYPT4GH {kind} KEY-----\n"));
    s
}

/// The decoded body of a `-----BEGIN CRYPT4GH <kind> KEY-----` block.
fn pem_body(text: &[u8], kind: &'static str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let lower = if kind == "PUBLIC" {
        "public"
    } else {
        "private"
    };
    let bad = |what| Error::KeyFormat { kind: lower, what };
    let text = std::str::from_utf8(text).map_err(|_| bad("it is not text"))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or(bad("the file is empty"))?;
    if first != format!("-----BEGIN CRYPT4GH {kind} KEY-----") {
        return Err(bad(
            if first.starts_with("-----BEGIN OPENSSH") || first.starts_with("ssh-") {
                "an OpenSSH key; use a key made by crypt4gh-keygen"
            } else if first.starts_with("-----BEGIN CRYPT4GH") {
                "a Crypt4GH key of the other kind (public/private)"
            } else {
                "no -----BEGIN CRYPT4GH ... KEY----- line"
            },
        ));
    }
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if ended {
            return Err(bad("text after the END line"));
        }
        if line == format!("-----END CRYPT4GH {kind} KEY-----") {
            ended = true;
        } else {
            body.push_str(line);
        }
    }
    if !ended {
        return Err(bad("no -----END CRYPT4GH ... KEY----- line"));
    }
    b64()
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| bad("the key is not valid base64"))
}

fn read_small(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_KEY_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(Error::KeyFormat {
            kind: "private or public",
            what: "the file is larger than 64 KiB",
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes([7; 32])
    }

    #[test]
    fn packet_key_is_symmetric_and_ordered() {
        let (w, r) = (
            SecretKey::from_bytes([1; 32]),
            SecretKey::from_bytes([2; 32]),
        );
        let (wp, rp) = (w.public_key(), r.public_key());
        let writer_side = packet_key(&w, &rp, &rp, &wp).unwrap();
        let reader_side = packet_key(&r, &wp, &rp, &wp).unwrap();
        assert_eq!(writer_side.expose(), reader_side.expose());
        // swapping the roles gives another key: the order of the hash inputs matters
        let swapped = packet_key(&r, &wp, &wp, &rp).unwrap();
        assert_ne!(swapped.expose(), reader_side.expose());
        // a low-order point is refused
        assert!(packet_key(&r, &PublicKey([0; 32]), &rp, &rp).is_none());
    }

    #[test]
    fn packet_key_matches_libsodium_kx() {
        // crypto_kx_client_session_keys(rx, tx, client_pk, client_sk, server_pk)
        // gives rx = BLAKE2b-512(q ‖ client_pk ‖ server_pk)[..32]; computed
        // independently here from RFC 7748's X25519 test vector (section 6.1).
        let alice = SecretKey::from_bytes(
            crate::util::unhex_array(
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            )
            .unwrap(),
        );
        let bob_pk = PublicKey(
            crate::util::unhex_array(
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            )
            .unwrap(),
        );
        let q: [u8; 32] = crate::util::unhex_array(
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
        )
        .unwrap();
        let mut h = Blake2b512::new();
        h.update(q);
        h.update(alice.public_key().0);
        h.update(bob_pk.0);
        let want = h.finalize();
        let got = packet_key(&alice, &bob_pk, &alice.public_key(), &bob_pk).unwrap();
        assert_eq!(got.expose()[..], want[..32]);
        assert_eq!(
            crate::util::hex(&alice.public_key().0),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn blake2b_known_answer() {
        // RFC 7693 appendix A: BLAKE2b-512("abc")
        let d = Blake2b512::digest(b"abc");
        assert_eq!(
            crate::util::hex(&d),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
    }

    #[test]
    fn public_key_file_round_trip() {
        let pk = key().public_key();
        let text = pk.to_file_text();
        assert!(text.starts_with("-----BEGIN CRYPT4GH PUBLIC KEY-----\n"));
        assert_eq!(PublicKey::from_file_text(text.as_bytes()).unwrap(), pk);
        // blank lines and CRLF are tolerated
        let loose = format!("\r\n{}\r\n\r\n", text.replace('\n', "\r\n"));
        assert_eq!(PublicKey::from_file_text(loose.as_bytes()).unwrap(), pk);
    }

    #[test]
    fn private_key_file_round_trips() {
        let k = key();
        let plain = k.to_file_text(None, Some("me@example")).unwrap();
        let back = SecretKey::from_file_text(plain.as_bytes(), None).unwrap();
        assert_eq!(*back.to_bytes(), *k.to_bytes());
        for kdf in [
            Kdf::Scrypt,
            Kdf::Bcrypt { rounds: 2 },
            Kdf::Pbkdf2Sha256 { rounds: 1000 },
        ] {
            let text = k.to_file_text(Some((b"pass", kdf)), None).unwrap();
            let back = SecretKey::from_file_text(text.as_bytes(), Some(b"pass")).unwrap();
            assert_eq!(*back.to_bytes(), *k.to_bytes(), "{kdf:?}");
            assert!(matches!(
                SecretKey::from_file_text(text.as_bytes(), Some(b"wrong")),
                Err(Error::WrongPassphrase)
            ));
            assert!(matches!(
                SecretKey::from_file_text(text.as_bytes(), None),
                Err(Error::PassphraseRequired)
            ));
        }
        // a passphrase given for a clear key is ignored
        assert!(SecretKey::from_file_text(plain.as_bytes(), Some(b"x")).is_ok());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let k = key();
        let d = format!("{k:?}");
        assert!(d.contains("redacted"));
        assert!(!d.contains(&b64().encode(*k.to_bytes())));
        assert!(!d.contains(&crate::util::hex(&*k.to_bytes())));
    }

    /// A private key file text around `blob`.
    fn wrap(blob: &[u8]) -> String {
        pem("PRIVATE", blob).as_str().to_owned()
    }

    fn blob(parts: &[&[u8]]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for p in parts {
            put_string(&mut b, p);
        }
        b
    }

    #[test]
    fn private_key_parse_errors() {
        let none_ok = blob(&[NONE, NONE, &[1; 32]]);
        assert!(SecretKey::from_file_text(wrap(&none_ok).as_bytes(), None).is_ok());
        let fmt = |text: &str| SecretKey::from_file_text(text.as_bytes(), Some(b"p"));
        let is_format = |r: Result<SecretKey, Error>, want: &str| match r {
            Err(Error::KeyFormat { what, .. }) => assert!(what.contains(want), "{what}"),
            other => panic!("expected a key-format error about {want:?}, got {other:?}"),
        };
        is_format(fmt(""), "empty");
        is_format(fmt("hello\n"), "BEGIN");
        is_format(
            fmt("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
            "OpenSSH",
        );
        is_format(fmt(&key().public_key().to_file_text()), "other kind");
        is_format(fmt("-----BEGIN CRYPT4GH PRIVATE KEY-----\nAAAA\n"), "END");
        is_format(
            fmt("-----BEGIN CRYPT4GH PRIVATE KEY-----\n!!!!\n-----END CRYPT4GH PRIVATE KEY-----\n"),
            "base64",
        );
        is_format(fmt(&format!("{}extra\n", wrap(&none_ok))), "after the END");
        is_format(SecretKey::from_file_text(&[0xff, 0xfe], None), "not text");
        is_format(fmt(&wrap(b"c4gh-v2")), "magic");
        is_format(fmt(&wrap(&blob(&[NONE, NONE])[..])), "truncated");
        let mut short = blob(&[NONE, NONE]);
        short.extend_from_slice(&[0, 32, 1, 2]);
        is_format(fmt(&wrap(&short)), "truncated");
        is_format(fmt(&wrap(&blob(&[NONE, NONE, &[1; 31]]))), "32 bytes");
        is_format(fmt(&wrap(&blob(&[NONE, CIPHER, &[1; 32]]))), "both");
        is_format(
            fmt(&wrap(&blob(&[b"scrypt", &[0; 20], NONE, &[1; 32]]))),
            "both",
        );
        let mut trailing = blob(&[NONE, NONE, &[1; 32], b"comment"]);
        trailing.push(0);
        is_format(fmt(&wrap(&trailing)), "after the comment");
        let mut odd = blob(&[NONE, NONE, &[1; 32]]);
        odd.push(9);
        is_format(fmt(&wrap(&odd)), "not a comment");
        is_format(
            fmt(&wrap(&blob(&[b"scrypt", &[0; 20], CIPHER, &[1; 59]]))),
            "60 bytes",
        );
        assert!(matches!(
            fmt(&wrap(&blob(&[b"argon2", &[0; 20], CIPHER, &[1; 60]]))),
            Err(Error::UnsupportedKdf(n)) if n == "argon2"
        ));
        assert!(matches!(
            fmt(&wrap(&blob(&[b"scrypt", &[0; 20], b"aes256-gcm", &[1; 60]]))),
            Err(Error::UnsupportedKeyCipher(n)) if n == "aes256-gcm"
        ));
        assert!(matches!(
            fmt(&wrap(&blob(&[b"scrypt", &[0; 3], CIPHER, &[1; 60]]))),
            Err(Error::BadKdfParams(_))
        ));
        let rounds = |r: u32| [r.to_be_bytes().as_slice(), &[5; 16]].concat();
        for (kdf, r) in [
            (&b"bcrypt"[..], 0),
            (b"bcrypt", MAX_BCRYPT_ROUNDS + 1),
            (b"pbkdf2_hmac_sha256", 0),
            (b"pbkdf2_hmac_sha256", MAX_PBKDF2_ROUNDS + 1),
        ] {
            assert!(
                matches!(
                    fmt(&wrap(&blob(&[kdf, &rounds(r), CIPHER, &[1; 60]]))),
                    Err(Error::BadKdfParams(_))
                ),
                "{r}"
            );
        }
        // a well-formed encrypted key whose MAC fails
        assert!(matches!(
            fmt(&wrap(&blob(&[
                b"pbkdf2_hmac_sha256",
                &rounds(1),
                CIPHER,
                &[1; 60]
            ]))),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn public_key_parse_errors() {
        let bad = |t: &str| PublicKey::from_file_text(t.as_bytes());
        assert!(matches!(
            bad("-----BEGIN CRYPT4GH PUBLIC KEY-----\nAAAA\n-----END CRYPT4GH PUBLIC KEY-----\n"),
            Err(Error::KeyFormat { what, .. }) if what.contains("32 bytes")
        ));
        assert!(matches!(
            bad("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me"),
            Err(Error::KeyFormat { what, .. }) if what.contains("OpenSSH")
        ));
        let sk_text = key().to_file_text(None, None).unwrap();
        assert!(matches!(
            bad(&sk_text),
            Err(Error::KeyFormat { what, .. }) if what.contains("other kind")
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Arbitrary key data, as a whole file or inside valid armour.
        #[test]
        fn arbitrary_key_files_never_panic(bytes in proptest::collection::vec(0u8.., 0..300), magic: bool) {
            let _ = SecretKey::from_file_text(&bytes, Some(b"p"));
            let _ = PublicKey::from_file_text(&bytes);
            let body = if magic { [MAGIC, &bytes[..]].concat() } else { bytes };
            let _ = SecretKey::from_file_text(wrap(&body).as_bytes(), Some(b"p"));
        }
    }

    #[test]
    fn oversized_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'A'; MAX_KEY_FILE as usize + 1]).unwrap();
        assert!(matches!(
            PublicKey::read_file(&p),
            Err(Error::KeyFormat { what, .. }) if what.contains("64 KiB")
        ));
        assert!(matches!(
            SecretKey::read_file(&dir.path().join("missing"), None),
            Err(Error::Io(_))
        ));
    }
}
