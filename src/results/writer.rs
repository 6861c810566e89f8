//! The write side (RESULTS.md "Directory layout", "Object plaintext"): a
//! [`Run`] is one mount's stream of results into a directory on shared
//! storage, and hands out one [`ObjectWriter`] per file the job writes.
//! An object is encrypted while it is written, named `<id>.age.partial`
//! until it is finished, then synced and renamed to `<id>.age`. What the
//! mount uses; it knows nothing of FUSE. The run's manifest is written by
//! `manifest.rs`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::object::{
    new_mac, trailer, HmacSha256, ObjectHeader, MAX_PATH, OBJECT_SUFFIX, PARTIAL_SUFFIX,
};
use crate::crypto::keys::SubKey;
use crate::keys::Recipient;
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
    recipients: Vec<Recipient>,
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
    /// `recipients`, authenticated with `key` (an archive's results key).
    pub fn new(
        dir: &Path,
        recipients: Vec<Recipient>,
        key: &SubKey,
        archive_id: [u8; 32],
        host: String,
        job: String,
    ) -> io::Result<Run> {
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
            recipients,
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

    /// An age encryptor to the run's recipients.
    pub(super) fn encryptor(&self) -> io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.recipients.iter().map(|r| r.as_age()))
            .map_err(io::Error::other)
    }

    /// Starts a new object (`<id>.age.partial`, renamed to `<id>.age` by
    /// [`ObjectWriter::finish`]).
    pub fn create(&self) -> io::Result<ObjectWriter> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(io::Error::other)?;
        let name = hex(&id);
        let partial = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        let mut stream = self.encryptor()?.wrap_output(HashingWriter {
            inner: file,
            hash: Sha256::new(),
        })?;
        let header = ObjectHeader {
            run: self.info.run,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            archive_id: self.info.archive_id,
        }
        .to_bytes();
        let mut mac = new_mac(&self.key).map_err(|_| io::Error::other("HMAC key"))?;
        mac.update(&header);
        if let Err(e) = stream.write_all(&header) {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        Ok(ObjectWriter {
            name,
            dir: self.dir.clone(),
            stream: Some(stream),
            mac,
            len: 0,
        })
    }

    /// Deletes a finished object (the job deleted or replaced the file).
    pub fn remove(&self, object: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(object))
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
    stream: Option<age::stream::StreamWriter<HashingWriter>>,
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
        format!("{}{PARTIAL_SUFFIX}", self.name)
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

    /// Ends the object: writes the authenticated trailer naming `path`,
    /// completes the age stream, syncs, and renames it to `<id>.age`.
    pub fn finish(mut self, path: &[u8], mode: u32) -> io::Result<Finished> {
        if path.len() > MAX_PATH {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "path too long"));
        }
        let mut stream = self
            .stream
            .take()
            .ok_or_else(|| io::Error::other("object already closed"))?;
        stream.write_all(&trailer(path, mode, self.len, self.mac.clone()))?;
        let hw = stream.finish()?;
        hw.inner.sync_all()?;
        let sha256: [u8; 32] = hw.hash.finalize().into();
        let object = format!("{}{OBJECT_SUFFIX}", self.name);
        std::fs::rename(self.dir.join(self.partial_name()), self.dir.join(&object))?;
        sync_dir(&self.dir);
        Ok(Finished {
            object,
            size: self.len,
            sha256,
        })
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
