//! The write side (RESULTS.md "Directory layout", "Object plaintext",
//! "Crypt4GH results"): a [`Run`] is one mount's stream of results into a
//! directory on shared storage, and hands out one [`ObjectWriter`] per file
//! the job writes. An object is encrypted while it is written, named
//! `<id>.age.partial` until it is finished, then synced and renamed to
//! `<id>.age`; with Crypt4GH recipients `<id>.c4gh.partial` holds only the
//! file's bytes, and its header and trailer go into `<id>.hpcs-receipt`,
//! written before the object is renamed to `<id>.c4gh`. What the mount
//! uses; it knows nothing of FUSE. The run's manifest is written by
//! `manifest.rs`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::Mac;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::cipher::{Kind, Recipients, Sealing};
use super::object::{new_mac, trailer, HmacSha256, ObjectHeader, MAX_PATH, RECEIPT_SUFFIX};
use crate::crypto::keys::SubKey;
use crate::util::{hex, now_secs};

/// Who produced a run of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// Random per mount.
    pub run: [u8; 16],
    /// Id of the archive whose key authenticates the results.
    pub archive_id: [u8; 32],
    /// Host name of the compute node.
    pub host: String,
    /// Slurm job id (or "-").
    pub job: String,
    /// Unix seconds when the output directory was mounted.
    pub started: u64,
}

/// One mount's stream of results into a directory on shared storage.
pub struct Run {
    dir: PathBuf,
    recipients: Arc<Recipients>,
    key: SubKey,
    info: RunInfo,
    seq: AtomicU64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("dir", &self.dir)
            .field("run", &hex(&self.info.run))
            .finish_non_exhaustive()
    }
}

impl Run {
    /// Starts a run writing into `dir` (which must exist), encrypting to
    /// `recipients` (age ones, or Crypt4GH public keys), authenticated with
    /// `key` (an archive's results key).
    pub fn new(
        dir: &Path,
        recipients: impl Into<Recipients>,
        key: &SubKey,
        archive_id: [u8; 32],
        host: String,
        job: String,
    ) -> io::Result<Run> {
        let recipients = recipients.into();
        if recipients.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no recipient for the results",
            ));
        }
        let md = std::fs::metadata(dir)?;
        if !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let mut run = [0u8; 16];
        getrandom::fill(&mut run).map_err(io::Error::other)?;
        Ok(Run {
            dir: dir.to_path_buf(),
            recipients: Arc::new(recipients),
            key: SubKey::from_bytes(*key.expose()),
            info: RunInfo {
                run,
                archive_id,
                host: token(&host),
                job: token(&job),
                started: now_secs(),
            },
            seq: AtomicU64::new(0),
        })
    }

    /// Uses `run` as the run id instead of a random one: the id the user was
    /// given in advance (`hpcs-mount --output-run`, set by hpcs-job) and
    /// requires with `hpcs-pack results ... --expect-run`.
    pub fn with_run_id(mut self, run: [u8; 16]) -> Run {
        self.info.run = run;
        self
    }

    /// Who and when.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The directory on shared storage.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The results key authenticating what this run writes.
    pub(super) fn key(&self) -> &SubKey {
        &self.key
    }

    /// The kind of files the run writes (age or Crypt4GH).
    pub fn kind(&self) -> Kind {
        self.recipients.kind()
    }

    /// An encrypting stream to the run's recipients into `out`.
    pub(super) fn seal<W: Write>(&self, out: W) -> io::Result<Sealing<W>> {
        self.recipients.seal(out)
    }

    /// Starts a new object (`<id>.age.partial` or `<id>.c4gh.partial`,
    /// renamed by [`ObjectWriter::finish`]).
    pub fn create(&self) -> io::Result<ObjectWriter> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(io::Error::other)?;
        let name = hex(&id);
        let kind = self.kind();
        let partial = self.dir.join(format!("{name}{}", kind.partial_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&partial)?;
        let header = ObjectHeader {
            run: self.info.run,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            archive_id: self.info.archive_id,
        }
        .to_bytes();
        let started = self
            .seal(HashingWriter {
                inner: file,
                hash: Sha256::new(),
            })
            .and_then(|mut stream| {
                // A Crypt4GH object holds the file's bytes only: its header
                // goes into the receipt.
                if kind == Kind::Age {
                    stream.write_all(&header)?;
                }
                Ok(stream)
            });
        let stream = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let mut mac = new_mac(&self.key).map_err(|_| io::Error::other("HMAC key"))?;
        mac.update(&header);
        Ok(ObjectWriter {
            name,
            dir: self.dir.clone(),
            recipients: Arc::clone(&self.recipients),
            header,
            stream: Some(stream),
            mac,
            len: 0,
        })
    }

    /// Deletes a finished object (the job deleted or replaced the file),
    /// and its receipt if it has one.
    pub fn remove(&self, object: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(object))?;
        if let Some(id) = object.strip_suffix(Kind::Crypt4gh.object_suffix()) {
            let _ = std::fs::remove_file(self.dir.join(format!("{id}{RECEIPT_SUFFIX}")));
        }
        Ok(())
    }
}

/// A finished object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// File name (`<id>.age`).
    pub object: String,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the object file.
    pub sha256: [u8; 32],
}

/// The object file under the age stream, hashed as it is written (the
/// manifest records the hash).
struct HashingWriter {
    inner: File,
    hash: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One file being encrypted as it is written: memory use is one age chunk
/// (64 KiB) whatever the file's size.
pub struct ObjectWriter {
    name: String,
    dir: PathBuf,
    recipients: Arc<Recipients>,
    header: [u8; super::object::HEADER_LEN],
    stream: Option<Sealing<HashingWriter>>,
    mac: HmacSha256,
    len: u64,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    /// Plaintext bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's file name while it is being written.
    pub fn partial_name(&self) -> String {
        format!("{}{}", self.name, self.recipients.kind().partial_suffix())
    }

    /// Appends plaintext.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let s = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("object already closed"))?;
        s.write_all(data)?;
        self.mac.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Ends the object: writes the authenticated trailer naming `path`
    /// (into the age stream, or with the header into the Crypt4GH object's
    /// receipt), completes the stream, syncs, and renames the object to
    /// `<id>.age` or `<id>.c4gh`.
    pub fn finish(mut self, path: &[u8], mode: u32) -> io::Result<Finished> {
        if path.len() > MAX_PATH {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "path too long"));
        }
        let mut stream = self
            .stream
            .take()
            .ok_or_else(|| io::Error::other("object already closed"))?;
        let tail = trailer(path, mode, self.len, self.mac.clone());
        let kind = self.recipients.kind();
        if kind == Kind::Age {
            stream.write_all(&tail)?;
        }
        let hw = stream.finish()?;
        hw.inner.sync_all()?;
        let sha256: [u8; 32] = hw.hash.finalize().into();
        if kind == Kind::Crypt4gh {
            self.write_receipt(&tail)?;
        }
        let object = format!("{}{}", self.name, kind.object_suffix());
        // Never over a name someone put there (the id is random, so only a
        // planted file can be in the way).
        crate::place::rename_noreplace(
            &self.dir.join(self.partial_name()),
            &self.dir.join(&object),
        )?;
        sync_dir(&self.dir);
        Ok(Finished {
            object,
            size: self.len,
            sha256,
        })
    }

    /// Writes `<id>.hpcs-receipt` (header ‖ trailer, encrypted to the
    /// recipients) through a temporary file and a rename.
    fn write_receipt(&self, tail: &[u8]) -> io::Result<()> {
        let name = format!("{}{RECEIPT_SUFFIX}", self.name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o600)
                .open(&tmp)?;
            let mut w = self.recipients.seal(file)?;
            w.write_all(&self.header)?;
            w.write_all(tail)?;
            w.finish()?.sync_all()
        };
        if let Err(e) = write() {
            // A temporary name already there is someone else's: left alone.
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&tmp);
            }
            return Err(e);
        }
        // Never over a name someone put there (as for the object).
        if let Err(e) = crate::place::rename_noreplace(&tmp, &self.dir.join(name)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// Drops the object and deletes its file (the job deleted the file
    /// before closing it).
    pub fn abandon(mut self) {
        self.stream = None;
        let _ = std::fs::remove_file(self.dir.join(self.partial_name()));
    }
}

/// Makes a rename in `dir` durable (best effort).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A manifest field: printable, no spaces.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}
