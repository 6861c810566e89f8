//! Which encryption a run's results use (RESULTS.md "Keys", "Crypt4GH
//! results"): age to age or SSH recipients (the default), or Crypt4GH to
//! Crypt4GH public keys, so results can go back into EGA or SD Connect as
//! they are. This module owns the choice: the file names of each kind, an
//! encrypting stream ([`Sealing`]) for objects, receipts and manifests, and
//! the keys that read them back ([`ResultKeys`]).

use std::fs::File;
use std::io::{self, Write};

use super::object::{
    C4GH_MANIFEST_SUFFIX, C4GH_PARTIAL_SUFFIX, C4GH_SUFFIX, OBJECT_SUFFIX, PARTIAL_SUFFIX,
};
use super::read::ReadError;
use crate::crypt4gh::{self, PublicKey, SecretKey, WriterOptions};
use crate::keys::{Identities, Recipient};

/// Who can decrypt a run's results, and so how they are encrypted.
pub enum Recipients {
    /// age (X25519 or SSH recipients): `<id>.age` objects, `manifest-<run>.age`.
    Age(Vec<Recipient>),
    /// Crypt4GH public keys: `<id>.c4gh` objects (each a plain Crypt4GH file
    /// of the result's bytes), `<id>.hpcs-receipt`, `manifest-<run>.hpcs-manifest`.
    Crypt4gh(Vec<PublicKey>),
}

impl From<Vec<Recipient>> for Recipients {
    fn from(r: Vec<Recipient>) -> Recipients {
        Recipients::Age(r)
    }
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipients::Age(r) => write!(f, "Recipients::Age({})", r.len()),
            Recipients::Crypt4gh(r) => write!(f, "Recipients::Crypt4gh({})", r.len()),
        }
    }
}

/// What kind of results file a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// age.
    Age,
    /// Crypt4GH.
    Crypt4gh,
}

impl Recipients {
    /// True when nobody could decrypt the results.
    pub fn is_empty(&self) -> bool {
        match self {
            Recipients::Age(r) => r.is_empty(),
            Recipients::Crypt4gh(r) => r.is_empty(),
        }
    }

    /// The kind of file this run writes.
    pub fn kind(&self) -> Kind {
        match self {
            Recipients::Age(_) => Kind::Age,
            Recipients::Crypt4gh(_) => Kind::Crypt4gh,
        }
    }

    /// Starts an encrypted stream into `out`.
    pub(super) fn seal<W: Write>(&self, out: W) -> io::Result<Sealing<W>> {
        match self {
            Recipients::Age(r) => {
                let e = age::Encryptor::with_recipients(r.iter().map(|r| r.as_age()))
                    .map_err(io::Error::other)?;
                Ok(Sealing::Age(e.wrap_output(out)?))
            }
            Recipients::Crypt4gh(r) => crypt4gh::Writer::new(out, r, WriterOptions::default())
                .map(Sealing::Crypt4gh)
                .map_err(io::Error::other),
        }
    }
}

impl Kind {
    /// Suffix of a finished object.
    pub fn object_suffix(self) -> &'static str {
        match self {
            Kind::Age => OBJECT_SUFFIX,
            Kind::Crypt4gh => C4GH_SUFFIX,
        }
    }

    /// Suffix of an object being written.
    pub fn partial_suffix(self) -> &'static str {
        match self {
            Kind::Age => PARTIAL_SUFFIX,
            Kind::Crypt4gh => C4GH_PARTIAL_SUFFIX,
        }
    }

    /// Suffix of a manifest (after `manifest-<run>`).
    pub fn manifest_suffix(self) -> &'static str {
        match self {
            Kind::Age => OBJECT_SUFFIX,
            Kind::Crypt4gh => C4GH_MANIFEST_SUFFIX,
        }
    }
}

/// An encrypting stream: every byte written is encrypted; [`Sealing::finish`]
/// completes the file (a Crypt4GH stream writes its last segment there).
pub(super) enum Sealing<W: Write> {
    Age(age::stream::StreamWriter<W>),
    Crypt4gh(crypt4gh::Writer<W>),
}

impl<W: Write> Write for Sealing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealing::Age(w) => w.write(buf),
            Sealing::Crypt4gh(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealing::Age(w) => w.flush(),
            Sealing::Crypt4gh(w) => w.flush(),
        }
    }
}

impl<W: Write> Sealing<W> {
    /// Completes the encrypted file and returns the output.
    pub(super) fn finish(self) -> io::Result<W> {
        match self {
            Sealing::Age(w) => w.finish(),
            Sealing::Crypt4gh(w) => w.finish().map_err(io::Error::other),
        }
    }
}

/// The secret keys results are read back with.
pub struct ResultKeys {
    /// age identities (also those that open the archive).
    pub age: Identities,
    /// The Crypt4GH secret key, for results written with Crypt4GH.
    pub c4gh: Option<SecretKey>,
}

impl ResultKeys {
    /// The Crypt4GH key, or what to do without it.
    pub(super) fn c4gh(&self) -> Result<&SecretKey, ReadError> {
        self.c4gh.as_ref().ok_or(ReadError::NoCrypt4ghKey)
    }
}

/// Decrypts a small Crypt4GH file (a receipt or a manifest) whole, refusing
/// one that shows more than `max` bytes.
pub(super) fn open_c4gh_small(
    file: &File,
    key: &SecretKey,
    max: u64,
) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let limited = LimitedWriter {
        out: &mut out,
        left: max,
    };
    crypt4gh::decrypt_stream(io::BufReader::new(file), key, limited).map_err(c4gh_error)?;
    Ok(out)
}

/// What a failed Crypt4GH read of a results file means.
pub(super) fn c4gh_error(e: crypt4gh::Error) -> ReadError {
    use crypt4gh::Error as C;
    match e {
        C::NotForThisKey | C::NoDataKey => ReadError::NoIdentity,
        C::Io(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            ReadError::Bad("larger than such a file can be (not written by hpcs)".into())
        }
        C::Io(e) => ReadError::Io(e),
        C::SegmentAuth(_) => ReadError::Bad("failed authentication (modified or damaged)".into()),
        C::BadBodyLength(_) => ReadError::Bad("cut short (truncated)".into()),
        e => ReadError::Bad(format!("not a valid Crypt4GH file: {e}")),
    }
}

struct LimitedWriter<'a> {
    out: &'a mut Vec<u8>,
    left: u64,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.left -= buf.len() as u64;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
