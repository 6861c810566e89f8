//! age recipients, identities, and the age key stanza.
//!
//! FORMAT.md "Key stanzas": stanza type 1 is a standard binary age file whose
//! payload is the 32-byte data key, encrypted to every recipient at once;
//! stanza type 3 is the list of recipient strings, sealed under the notes key
//! so that only key holders see who else can open the archive (rewrap needs it).
//! [`KeyError`] says why no key came out of them.

use std::io::{BufRead, Read, Write};
use std::str::FromStr;

use zeroize::Zeroize;

use crate::crypto::header::{Stanza, STANZA_AGE};
use crate::crypto::DataKey;

/// Why no data key could be obtained or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A recipient string is not something age understands.
    #[error("invalid recipient {0:?}: expected an age X25519 recipient (age1…) or an SSH public key (ssh-ed25519 / ssh-rsa)")]
    BadRecipient(String),
    /// The identity file could not be read.
    #[error("cannot read identity file {path}: {err}")]
    IdentityUnreadable {
        /// File.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// Other users can access the identity file (OpenSSH refuses such keys too).
    #[error("identity file {path} is accessible by group or others (mode {mode:04o}): anyone who can read it opens every archive packed to it; run `chmod 600 {path}` (and, if others may already have read it, make a new identity and rewrap)")]
    IdentityExposed {
        /// File.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The identity file has no usable identity.
    #[error("identity file {path} is not usable: {why}")]
    BadIdentity {
        /// File.
        path: String,
        /// Why.
        why: String,
    },
    /// No identity decrypted any age stanza.
    #[error("none of the given identities can open this archive (it was not packed for them)")]
    NoMatchingIdentity,
    /// The archive has no age stanza at all.
    #[error("this archive has no age key stanza (it is opened with a key from Vault)")]
    NoAgeStanza,
    /// The age stanza is damaged.
    #[error("the archive's age key stanza is damaged ({0})")]
    BadStanza(String),
    /// A file given with -R could not be read.
    #[error("cannot read recipients file {path}: {err}")]
    RecipientsUnreadable {
        /// File.
        path: String,
        /// Why.
        err: std::io::Error,
    },
}

/// A parsed recipient with the text it came from.
pub struct Recipient {
    text: String,
    inner: Box<dyn age::Recipient + Send + Sync>,
}

impl Recipient {
    /// The recipient as written by the user (public key string).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The recipient for the `age` crate's encryptor.
    pub fn as_age(&self) -> &dyn age::Recipient {
        &*self.inner
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A recipient is a public key: fine to show.
        f.debug_tuple("Recipient").field(&self.text).finish()
    }
}

/// Parses an X25519 (`age1…`) or SSH (`ssh-ed25519 …`, `ssh-rsa …`) recipient.
pub fn parse_recipient(s: &str) -> Result<Recipient, KeyError> {
    let t = s.trim();
    let inner: Box<dyn age::Recipient + Send + Sync> =
        if let Ok(r) = age::x25519::Recipient::from_str(t) {
            Box::new(r)
        } else if let Ok(r) = age::ssh::Recipient::from_str(t) {
            Box::new(r)
        } else {
            return Err(KeyError::BadRecipient(t.to_string()));
        };
    Ok(Recipient {
        text: t.to_string(),
        inner,
    })
}

/// Reads a recipients file: one recipient per line, `#` comments and blank
/// lines ignored (the format `age -R` reads).
pub fn read_recipients_file(path: &std::path::Path) -> Result<Vec<Recipient>, KeyError> {
    let unreadable = |err| KeyError::RecipientsUnreadable {
        path: path.display().to_string(),
        err,
    };
    let f = std::fs::File::open(path).map_err(unreadable)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(unreadable)?;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(parse_recipient(l)?);
    }
    Ok(out)
}

/// Identities loaded from one or more identity files.
pub struct Identities {
    list: Vec<Box<dyn age::Identity>>,
}

impl Identities {
    /// The identities for the `age` crate's decryptor.
    pub fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.list.iter().map(|i| &**i as _)
    }

    /// Adds the identities of `other`.
    pub fn extend(&mut self, other: Identities) {
        self.list.extend(other.list);
    }
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} loaded)", self.list.len())
    }
}

/// Loads an identity file: an age identity file as `age-keygen` writes it, or
/// an unencrypted OpenSSH private key (ed25519 or RSA).
pub fn load_identities(path: &std::path::Path) -> Result<Identities, KeyError> {
    let name = path.display().to_string();
    let unreadable = |err| KeyError::IdentityUnreadable {
        path: name.clone(),
        err,
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    check_identity_file(&file, &name)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(unreadable)?;
    let bad = |why: String| KeyError::BadIdentity {
        path: name.clone(),
        why,
    };
    let result = if data.starts_with(b"-----BEGIN") {
        match age::ssh::Identity::from_buffer(&data[..], Some(name.clone())) {
            Ok(age::ssh::Identity::Unencrypted(k)) => Ok(Identities {
                list: vec![Box::new(age::ssh::Identity::Unencrypted(k))],
            }),
            Ok(age::ssh::Identity::Encrypted(_)) => Err(bad(
                "passphrase-protected SSH keys are not supported; use an age identity (age-keygen) or an unencrypted copy of the key kept on the secure device".into(),
            )),
            Ok(age::ssh::Identity::Unsupported(_)) => {
                Err(bad("unsupported SSH key type (use ssh-ed25519 or ssh-rsa)".into()))
            }
            Err(e) => Err(bad(format!("not a valid SSH private key: {e}"))),
        }
    } else {
        match age::IdentityFile::from_buffer(&data[..]) {
            Ok(f) => match f.into_identities() {
                Ok(list) if !list.is_empty() => Ok(Identities { list }),
                Ok(_) => Err(bad(
                    "it contains no identity (expected AGE-SECRET-KEY-1… lines)".into(),
                )),
                Err(e) => Err(bad(e.to_string())),
            },
            Err(e) => Err(bad(e.to_string())),
        }
    };
    data.zeroize();
    result
}

/// Shared filesystems where a long-term key is readable by whoever administers
/// (or breaks into) the storage: statfs magic numbers and names.
const SHARED_FILESYSTEMS: &[(u32, &str)] = &[
    (0x6969, "NFS"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x1983_0326, "BeeGFS"),
    (0x00C3_6400, "CephFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
];

/// The shared filesystem `file` lives on, if it is one of [`SHARED_FILESYSTEMS`].
pub fn shared_filesystem(file: &std::fs::File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the lifetime of `file`, and `st` is a
    // valid, writable statfs.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    // f_type is a signed word whose width differs by architecture; the magic
    // numbers are its low 32 bits.
    let magic = st.f_type as u64 as u32;
    SHARED_FILESYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| *n)
}

/// Refuses an identity file other users can access (like OpenSSH), and warns
/// when it lives on a shared filesystem.
fn check_identity_file(file: &std::fs::File, name: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|err| KeyError::IdentityUnreadable {
            path: name.to_string(),
            err,
        })?
        .permissions()
        .mode();
    // Character devices and pipes (-i /dev/stdin, <(…)) are not stored keys.
    let stored = mode & libc::S_IFMT == libc::S_IFREG;
    if stored && mode & 0o077 != 0 {
        return Err(KeyError::IdentityExposed {
            path: name.to_string(),
            mode: mode & 0o7777,
        });
    }
    if let Some(fs) = shared_filesystem(file) {
        crate::warn!(
            "identity file {name} is on {fs}: whoever can read that storage (its administrators, a compromised node or server) can copy the key and open every archive packed to it; keep it on the secure device and use Vault mode (--vault) on the cluster"
        );
    }
    Ok(())
}

/// Test helper: writes `text` as a new identity file with mode 0600.
#[cfg(test)]
pub(crate) fn write_test_identity(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write test identity");
}

/// Builds the age stanza: the data key as an age file to all `recipients`.
pub fn wrap_recipients(key: &DataKey, recipients: &[Recipient]) -> Result<Stanza, KeyError> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| &*r.inner as _))
        .map_err(|e| KeyError::BadStanza(e.to_string()))?;
    let mut body = Vec::new();
    let mut w = enc
        .wrap_output(&mut body)
        .map_err(|e| KeyError::BadStanza(e.to_string()))?;
    w.write_all(key.expose())
        .and_then(|()| w.finish().map(|_| ()))
        .map_err(|e| KeyError::BadStanza(e.to_string()))?;
    Ok(Stanza {
        kind: STANZA_AGE,
        body,
    })
}

/// Tries `ids` on every age stanza; returns the first data key recovered.
pub fn unwrap_age(stanzas: &[Stanza], ids: &Identities) -> Result<DataKey, KeyError> {
    let mut saw_age = false;
    for s in stanzas.iter().filter(|s| s.kind == STANZA_AGE) {
        saw_age = true;
        let dec = match age::Decryptor::new_buffered(&s.body[..]) {
            Ok(d) => d,
            Err(e) => return Err(KeyError::BadStanza(e.to_string())),
        };
        match dec.decrypt(ids.list.iter().map(|i| &**i as _)) {
            Ok(mut r) => {
                let mut buf = Vec::with_capacity(32);
                let res = r.read_to_end(&mut buf);
                let key = match res {
                    Ok(_) => DataKey::from_slice(&buf),
                    Err(_) => None,
                };
                buf.zeroize();
                return key
                    .ok_or_else(|| KeyError::BadStanza("payload is not a 32-byte key".into()));
            }
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(e) => return Err(KeyError::BadStanza(e.to_string())),
        }
    }
    if saw_age {
        Err(KeyError::NoMatchingIdentity)
    } else {
        Err(KeyError::NoAgeStanza)
    }
}
