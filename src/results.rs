//! Encrypted job results (RESULTS.md): the files a job writes under
//! hpcs-mount's output directory, encrypted while they are written to the
//! user's age recipients and streamed to shared storage; and the
//! secure-device side that checks and decrypts them.
//!
//! Knows nothing of FUSE: [`Run`] hands out one [`ObjectWriter`] per file and
//! writes the run's manifest; [`scan`] reads a results directory back.
//!
//! Each object is an age file whose plaintext is
//! `header (72) || data || path || path_len u32 || mode u32 || data_len u64 || mac (32) || "HPCS-END"`,
//! the MAC being HMAC-SHA256 under the results key of the archive the job
//! mounted, over everything before it. The recipients' public keys are no
//! secret, so age alone would let anyone forge a result; the MAC lets only a
//! holder of the archive key (the job, or the user) write one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::keys::{ct_eq, SubKey};
use crate::keys::{Identities, Recipient};
use crate::util::{hex, now_secs, unhex, unhex_array};

type HmacSha256 = Hmac<Sha256>;

/// First bytes of every object's plaintext.
pub const OBJECT_MAGIC: &[u8; 16] = b"hpcs-results/v1\n";
/// First line of a manifest's plaintext.
pub const MANIFEST_MAGIC: &str = "hpcs-results-manifest/v1";
/// Last bytes of a complete object's plaintext.
const END_MAGIC: &[u8; 8] = b"HPCS-END";
/// magic, run id, sequence number, archive id.
const HEADER_LEN: usize = 16 + 16 + 8 + 32;
/// path_len, mode, data_len, mac, end magic.
const TAIL_FIXED: usize = 4 + 4 + 8 + 32 + 8;
/// Longest path an object records (Linux PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// File name suffix of a finished object.
pub const OBJECT_SUFFIX: &str = ".age";
/// File name suffix of an object still being written (or cut short).
pub const PARTIAL_SUFFIX: &str = ".age.partial";
/// File name prefix of a run's manifest (`manifest-<run>.age`).
pub const MANIFEST_PREFIX: &str = "manifest-";

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

    /// Who and when.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// The directory on shared storage.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let enc = age::Encryptor::with_recipients(self.recipients.iter().map(|r| r.as_age()))
            .map_err(io::Error::other)?;
        let mut stream = enc.wrap_output(HashingWriter {
            inner: file,
            hash: Sha256::new(),
        })?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(OBJECT_MAGIC);
        header.extend_from_slice(&self.info.run);
        header.extend_from_slice(&seq.to_be_bytes());
        header.extend_from_slice(&self.info.archive_id);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.expose())
            .map_err(|_| io::Error::other("HMAC key"))?;
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

    /// Writes the run's manifest (`manifest-<run>.age`, via a temporary file
    /// and a rename), encrypted to the recipients and authenticated.
    pub fn write_manifest(&self, m: &ManifestBody) -> io::Result<PathBuf> {
        let mut text = String::new();
        text.push_str(MANIFEST_MAGIC);
        text.push('\n');
        let i = &self.info;
        text.push_str(&format!(
            "run {}\narchive {}\nhost {}\njob {}\nstarted {}\nfinished {}\n",
            hex(&i.run),
            hex(&i.archive_id),
            i.host,
            i.job,
            i.started,
            now_secs()
        ));
        for d in &m.dirs {
            text.push_str(&format!("dir {:o} {}\n", d.mode, hex(&d.path)));
        }
        for f in &m.files {
            text.push_str(&format!(
                "file {} {} {} {:o} {}\n",
                f.object,
                f.size,
                hex(&f.sha256),
                f.mode,
                hex(&f.path)
            ));
        }
        for o in &m.open {
            text.push_str(&format!("open {} {}\n", o.object, hex(&o.path)));
        }
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.expose())
            .map_err(|_| io::Error::other("HMAC key"))?;
        mac.update(text.as_bytes());
        text.push_str(&format!("mac {}\n", hex(&mac.finalize().into_bytes())));

        let name = format!("{MANIFEST_PREFIX}{}{OBJECT_SUFFIX}", hex(&i.run));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let enc = age::Encryptor::with_recipients(self.recipients.iter().map(|r| r.as_age()))
                .map_err(io::Error::other)?;
            let mut w = enc.wrap_output(file)?;
            w.write_all(text.as_bytes())?;
            let file = w.finish()?;
            file.sync_all()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let dest = self.dir.join(&name);
        std::fs::rename(&tmp, &dest)?;
        sync_dir(&self.dir);
        Ok(dest)
    }
}

/// What a run's manifest lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestBody {
    /// Directories the job created (so empty ones come back too).
    pub dirs: Vec<ManifestDir>,
    /// Finished files.
    pub files: Vec<ManifestFile>,
    /// Files still open when the output was closed (incomplete).
    pub open: Vec<ManifestOpen>,
}

/// A directory in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDir {
    /// Permission bits.
    pub mode: u32,
    /// Path relative to the output directory.
    pub path: Vec<u8>,
}

/// A finished file in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    /// Object file name (`<id>.age`).
    pub object: String,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the object file as stored.
    pub sha256: [u8; 32],
    /// Permission bits.
    pub mode: u32,
    /// Path relative to the output directory (where the job left it).
    pub path: Vec<u8>,
}

/// A file that was still open when the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOpen {
    /// Object file name (`<id>.age.partial`).
    pub object: String,
    /// Path relative to the output directory.
    pub path: Vec<u8>,
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
        let mut tail = Vec::with_capacity(path.len() + TAIL_FIXED);
        tail.extend_from_slice(path);
        tail.extend_from_slice(&(path.len() as u32).to_be_bytes());
        tail.extend_from_slice(&mode.to_be_bytes());
        tail.extend_from_slice(&self.len.to_be_bytes());
        self.mac.update(&tail);
        let tag = self.mac.clone().finalize().into_bytes();
        tail.extend_from_slice(&tag);
        tail.extend_from_slice(END_MAGIC);
        stream.write_all(&tail)?;
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

fn sync_dir(dir: &Path) {
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

// ---------------------------------------------------------------------------
// Reading back, on the secure device.

/// Why an object or manifest could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// None of the identities decrypts it.
    #[error("none of the given identities decrypts it (encrypted to someone else?)")]
    NoIdentity,
    /// It was written with a different archive's key.
    #[error(
        "it was produced by a job that mounted archive {found}, not the archive given ({given})"
    )]
    WrongArchive {
        /// Archive id in the object.
        found: String,
        /// Archive id of the archive given.
        given: String,
    },
    /// Cut short, modified, or not a results file.
    #[error("{0}")]
    Bad(String),
    /// Reading it (or writing the plaintext) failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a finished object says about itself (authenticated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Run that wrote it.
    pub run: [u8; 16],
    /// Order within the run.
    pub seq: u64,
    /// Path when it was closed.
    pub path: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the object file.
    pub sha256: [u8; 32],
}

struct HashingReader {
    inner: File,
    hash: Rc<RefCell<Sha256>>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

fn age_reader<R: Read>(r: R, ids: &Identities) -> Result<age::stream::StreamReader<R>, ReadError> {
    let d = age::Decryptor::new(r).map_err(|e| match e {
        age::DecryptError::Io(e) => ReadError::Io(e),
        e => ReadError::Bad(format!("not an age file: {e}")),
    })?;
    d.decrypt(ids.as_age()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => ReadError::NoIdentity,
        age::DecryptError::Io(e) => ReadError::Io(e),
        e => ReadError::Bad(format!("age header rejected: {e}")),
    })
}

fn stream_error(e: io::Error) -> ReadError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Bad("cut short (truncated)".into()),
        io::ErrorKind::InvalidData => {
            ReadError::Bad("failed authentication (modified or damaged)".into())
        }
        _ => ReadError::Io(e),
    }
}

/// Decrypts and authenticates one object file, streaming its data to `sink`
/// (which sees unauthenticated bytes: write it somewhere temporary and keep
/// it only on `Ok`). `archive_id` is the id of the archive whose results
/// key is `key`.
pub fn decrypt_object(
    file: &Path,
    ids: &Identities,
    key: &SubKey,
    archive_id: &[u8; 32],
    sink: &mut dyn Write,
) -> Result<ObjectMeta, ReadError> {
    let hash = Rc::new(RefCell::new(Sha256::new()));
    let r = HashingReader {
        inner: File::open(file)?,
        hash: Rc::clone(&hash),
    };
    let mut rd = age_reader(r, ids)?;
    let mut header = [0u8; HEADER_LEN];
    rd.read_exact(&mut header).map_err(stream_error)?;
    if &header[..16] != OBJECT_MAGIC {
        return Err(ReadError::Bad("not an hpcs results object".into()));
    }
    let found: [u8; 32] = header[40..72].try_into().expect("32 bytes");
    if &found != archive_id {
        return Err(ReadError::WrongArchive {
            found: hex(&found),
            given: hex(archive_id),
        });
    }
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.expose())
        .map_err(|_| ReadError::Bad("HMAC key".into()))?;
    mac.update(&header);
    // Hold back the longest possible trailer until the end is known.
    const HOLD: usize = MAX_PATH + TAIL_FIXED;
    let mut pending: Vec<u8> = Vec::with_capacity(HOLD + 65536);
    let mut buf = Zeroizing::new(vec![0u8; 65536]);
    let mut written = 0u64;
    loop {
        let n = rd.read(&mut buf).map_err(stream_error)?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        if pending.len() > HOLD {
            let out = pending.len() - HOLD;
            mac.update(&pending[..out]);
            sink.write_all(&pending[..out])?;
            written += out as u64;
            pending.drain(..out);
        }
    }
    let cut = || ReadError::Bad("has no valid trailer (cut short or not finished)".into());
    let p = pending.len();
    if p < TAIL_FIXED || &pending[p - 8..] != END_MAGIC {
        return Err(cut());
    }
    let num = |at: usize, len: usize| -> u64 {
        pending[at..at + len]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b))
    };
    let path_len = num(p - TAIL_FIXED, 4) as usize;
    let mode = num(p - TAIL_FIXED + 4, 4) as u32;
    let size = num(p - TAIL_FIXED + 8, 8);
    if path_len > MAX_PATH || path_len + TAIL_FIXED > p {
        return Err(cut());
    }
    let data_here = p - TAIL_FIXED - path_len;
    if written + data_here as u64 != size {
        return Err(ReadError::Bad("size in the trailer does not match".into()));
    }
    mac.update(&pending[..p - 40]);
    let tag = mac.finalize().into_bytes();
    if !ct_eq(&tag, &pending[p - 40..p - 8]) {
        return Err(ReadError::Bad(
            "failed authentication: not written by a job holding the archive's key, or modified"
                .into(),
        ));
    }
    sink.write_all(&pending[..data_here])?;
    let path = pending[data_here..data_here + path_len].to_vec();
    pending.zeroize();
    let sha256: [u8; 32] = hash.borrow_mut().clone().finalize().into();
    Ok(ObjectMeta {
        run: header[16..32].try_into().expect("16 bytes"),
        seq: u64::from_be_bytes(header[32..40].try_into().expect("8 bytes")),
        path,
        mode,
        size,
        sha256,
    })
}

/// Reads the run id from the first chunk of an object that was never
/// finished (`.age.partial`), if it decrypts that far.
pub fn partial_run(file: &Path, ids: &Identities) -> Option<[u8; 16]> {
    let mut rd = age_reader(File::open(file).ok()?, ids).ok()?;
    let mut header = [0u8; HEADER_LEN];
    rd.read_exact(&mut header).ok()?;
    if &header[..16] != OBJECT_MAGIC {
        return None;
    }
    header[16..32].try_into().ok()
}

/// A decrypted, authenticated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Who and when.
    pub info: RunInfo,
    /// Unix seconds when the output was closed.
    pub finished: u64,
    /// What it lists.
    pub body: ManifestBody,
}

/// Decrypts and authenticates a manifest file.
pub fn read_manifest(
    file: &Path,
    ids: &Identities,
    key: &SubKey,
    archive_id: &[u8; 32],
) -> Result<Manifest, ReadError> {
    let mut rd = age_reader(File::open(file)?, ids)?;
    let mut text = Vec::new();
    rd.read_to_end(&mut text).map_err(stream_error)?;
    let bad = |why: &str| ReadError::Bad(format!("manifest: {why}"));
    let text = String::from_utf8(text).map_err(|_| bad("not text"))?;
    let mac_at = text.rfind("\nmac ").ok_or_else(|| bad("no MAC"))? + 1;
    let tag = unhex(text[mac_at + 4..].trim_end()).ok_or_else(|| bad("bad MAC line"))?;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.expose()).map_err(|_| bad("HMAC key"))?;
    mac.update(&text.as_bytes()[..mac_at]);
    // The archive id first, to say which archive is wrong rather than "bad MAC".
    let mut fields: HashMap<&str, &str> = HashMap::new();
    let mut body = ManifestBody::default();
    let mut lines = text[..mac_at].lines();
    if lines.next() != Some(MANIFEST_MAGIC) {
        return Err(bad("not an hpcs results manifest"));
    }
    let mut rows = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(' ').ok_or_else(|| bad("malformed line"))?;
        match k {
            "dir" | "file" | "open" => rows.push((k, v)),
            _ => {
                fields.insert(k, v);
            }
        }
    }
    let field = |k: &str| fields.get(k).copied().ok_or_else(|| bad("missing field"));
    let found: [u8; 32] = unhex_array(field("archive")?).ok_or_else(|| bad("bad archive id"))?;
    if &found != archive_id {
        return Err(ReadError::WrongArchive {
            found: hex(&found),
            given: hex(archive_id),
        });
    }
    if !ct_eq(&mac.finalize().into_bytes(), &tag) {
        return Err(bad(
            "failed authentication: not written by a job holding the archive's key, or modified",
        ));
    }
    let info = RunInfo {
        run: unhex_array(field("run")?).ok_or_else(|| bad("bad run id"))?,
        archive_id: found,
        host: field("host")?.to_string(),
        job: field("job")?.to_string(),
        started: field("started")?.parse().map_err(|_| bad("bad time"))?,
    };
    let finished = field("finished")?.parse().map_err(|_| bad("bad time"))?;
    for (k, v) in rows {
        let f: Vec<&str> = v.split(' ').collect();
        let mode = |s: &str| u32::from_str_radix(s, 8).map_err(|_| bad("bad mode"));
        let path = |s: &str| unhex(s).ok_or_else(|| bad("bad path"));
        match (k, f.as_slice()) {
            ("dir", [m, p]) => body.dirs.push(ManifestDir {
                mode: mode(m)?,
                path: path(p)?,
            }),
            ("file", [o, s, h, m, p]) => body.files.push(ManifestFile {
                object: (*o).to_string(),
                size: s.parse().map_err(|_| bad("bad size"))?,
                sha256: unhex_array(h).ok_or_else(|| bad("bad hash"))?,
                mode: mode(m)?,
                path: path(p)?,
            }),
            ("open", [o, p]) => body.open.push(ManifestOpen {
                object: (*o).to_string(),
                path: path(p)?,
            }),
            _ => return Err(bad("malformed entry")),
        }
    }
    Ok(Manifest {
        info,
        finished,
        body,
    })
}

/// Checks that a recorded path is relative and stays inside the output
/// directory; returns it as a path.
pub fn safe_relative(path: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    if path.is_empty() || path.contains(&0) {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

/// The verdict on one result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Decrypted, authenticated, and (with a manifest) listed with this hash.
    Complete,
    /// Never finished (job or node interrupted while it was written).
    Incomplete(String),
    /// Failed authentication, or does not match the manifest.
    Tampered(String),
    /// Listed in the manifest, but the object is gone.
    Missing,
    /// Authentic, but not in its run's manifest (deleted by the job later,
    /// or put back by someone): not used.
    Unlisted,
    /// Complete, but not decrypted because this file already exists.
    Exists(PathBuf),
}

/// One result in a report.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// Object file name.
    pub object: String,
    /// Path in the output directory, when known.
    pub path: Option<Vec<u8>>,
    /// Plaintext size, when known.
    pub size: Option<u64>,
    /// Verdict.
    pub status: Status,
    /// Where the plaintext was written (decrypt only).
    pub written: Option<PathBuf>,
}

/// One run (one mount) in a report.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Run id.
    pub run: [u8; 16],
    /// Its manifest: `None` if there is none (the mount did not end
    /// cleanly), `Some(Err)` if it failed authentication.
    pub manifest: Option<Result<Manifest, String>>,
    /// Its results.
    pub files: Vec<FileReport>,
}

impl RunReport {
    /// A run seen for the first time: no manifest yet, no files.
    fn empty(run: [u8; 16]) -> RunReport {
        RunReport {
            run,
            manifest: None,
            files: Vec::new(),
        }
    }
}

/// What a results directory holds.
#[derive(Clone, Debug, Default)]
pub struct DirReport {
    /// Runs, in the order of their ids.
    pub runs: Vec<RunReport>,
    /// Results and manifests that belong to no identifiable run (bad
    /// manifests, objects that fail before their header), with the reason.
    pub unattributed: Vec<FileReport>,
    /// Files in the directory that are not results (ignored).
    pub other: Vec<String>,
}

impl DirReport {
    /// True if anything failed authentication or contradicts a manifest.
    pub fn tampered(&self) -> bool {
        self.unattributed
            .iter()
            .chain(self.runs.iter().flat_map(|r| r.files.iter()))
            .any(|f| matches!(f.status, Status::Tampered(_)))
            || self.runs.iter().any(|r| matches!(r.manifest, Some(Err(_))))
    }

    /// True if anything is incomplete or missing, or a run has no manifest.
    pub fn incomplete(&self) -> bool {
        self.runs.iter().any(|r| {
            r.manifest.is_none()
                || r.files
                    .iter()
                    .any(|f| matches!(f.status, Status::Incomplete(_) | Status::Missing))
        })
    }
}

/// Where a run's files go under the destination: directly when the
/// directory holds one run, else in `<host>-<run id prefix>/`.
fn run_subdir(r: &RunReport, several: bool) -> PathBuf {
    if !several {
        return PathBuf::new();
    }
    let host = r
        .manifest
        .as_ref()
        .and_then(|m| m.as_ref().ok())
        .map_or_else(|| "run".into(), |m| m.info.host.clone());
    PathBuf::from(format!("{host}-{}", &hex(&r.run)[..8]))
}

/// Checks every result in `dir` and, with `dest`, writes the complete ones
/// there (never overwriting: an existing file is an error for that file).
/// `archive_id` and `key` are those of the archive the job mounted first.
/// Fails as a whole only if nothing can be checked (wrong identity or
/// archive, unreadable directory).
pub fn check_dir(
    dir: &Path,
    ids: &Identities,
    key: &SubKey,
    archive_id: &[u8; 32],
    dest: Option<&Path>,
) -> Result<DirReport, ReadError> {
    let mut report = DirReport::default();
    let mut names: Vec<String> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        match e.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => report.other.push(n.to_string_lossy().into_owned()),
        }
    }
    names.sort();
    let mut runs: std::collections::BTreeMap<[u8; 16], RunReport> = Default::default();
    // Manifests first: they say what to expect.
    for n in &names {
        let Some(id) = n
            .strip_prefix(MANIFEST_PREFIX)
            .and_then(|r| r.strip_suffix(OBJECT_SUFFIX))
        else {
            continue;
        };
        match read_manifest(&dir.join(n), ids, key, archive_id) {
            Ok(m) if hex(&m.info.run) == id => {
                let run = m.info.run;
                runs.entry(run)
                    .or_insert_with(|| RunReport::empty(run))
                    .manifest = Some(Ok(m));
            }
            Ok(_) => report.unattributed.push(FileReport {
                object: n.clone(),
                path: None,
                size: None,
                status: Status::Tampered("manifest renamed from another run".into()),
                written: None,
            }),
            Err(
                e @ (ReadError::NoIdentity | ReadError::WrongArchive { .. } | ReadError::Io(_)),
            ) => return Err(e),
            Err(ReadError::Bad(why)) => match unhex_array::<16>(id) {
                Some(run) => {
                    runs.entry(run)
                        .or_insert_with(|| RunReport::empty(run))
                        .manifest = Some(Err(why));
                }
                None => report.unattributed.push(FileReport {
                    object: n.clone(),
                    path: None,
                    size: None,
                    status: Status::Tampered(why),
                    written: None,
                }),
            },
        }
    }
    let tmp = match dest {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            let mut r = [0u8; 8];
            getrandom::fill(&mut r).map_err(io::Error::other)?;
            let t = d.join(format!(".hpcs-results-{}.tmp", hex(&r)));
            std::fs::create_dir(&t)?;
            Some(t)
        }
        None => None,
    };
    let result = check_objects(
        dir,
        ids,
        key,
        archive_id,
        &names,
        &mut runs,
        &mut report,
        tmp.as_deref(),
    );
    let result = result.and_then(|()| {
        report.runs = runs.into_values().collect();
        match dest {
            Some(d) => place(&mut report, d),
            None => Ok(()),
        }
    });
    if let Some(t) = &tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    result.map(|()| report)
}

#[allow(clippy::too_many_arguments)]
fn check_objects(
    dir: &Path,
    ids: &Identities,
    key: &SubKey,
    archive_id: &[u8; 32],
    names: &[String],
    runs: &mut std::collections::BTreeMap<[u8; 16], RunReport>,
    report: &mut DirReport,
    tmp: Option<&Path>,
) -> Result<(), ReadError> {
    let is_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut seen: std::collections::HashSet<String> = Default::default();
    for n in names {
        if n.starts_with(MANIFEST_PREFIX) {
            continue;
        }
        if n.strip_suffix(PARTIAL_SUFFIX).is_some_and(is_id) {
            let fr = FileReport {
                object: n.clone(),
                path: None,
                size: None,
                status: Status::Incomplete(
                    "writing never finished (job or node interrupted)".into(),
                ),
                written: None,
            };
            match partial_run(&dir.join(n), ids) {
                Some(run) => runs
                    .entry(run)
                    .or_insert_with(|| RunReport::empty(run))
                    .files
                    .push(fr),
                None => report.unattributed.push(fr),
            }
            continue;
        }
        if !n.strip_suffix(OBJECT_SUFFIX).is_some_and(is_id) {
            report.other.push(n.clone());
            continue;
        }
        seen.insert(n.clone());
        let tmp_file = tmp.map(|t| t.join(n));
        let outcome = match &tmp_file {
            Some(p) => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(p)?;
                decrypt_object(&dir.join(n), ids, key, archive_id, &mut f)
            }
            None => decrypt_object(&dir.join(n), ids, key, archive_id, &mut io::sink()),
        };
        let meta = match outcome {
            Ok(m) => m,
            Err(ReadError::Io(e)) => return Err(ReadError::Io(e)),
            Err(e) => {
                report.unattributed.push(FileReport {
                    object: n.clone(),
                    path: None,
                    size: None,
                    status: Status::Tampered(e.to_string()),
                    written: None,
                });
                continue;
            }
        };
        let run = runs
            .entry(meta.run)
            .or_insert_with(|| RunReport::empty(meta.run));
        let listed = match &run.manifest {
            Some(Ok(m)) => Some(m.body.files.iter().find(|f| &f.object == n).cloned()),
            _ => None,
        };
        let (path, status) = match listed {
            None => (meta.path.clone(), Status::Complete),
            Some(None) => (meta.path.clone(), Status::Unlisted),
            Some(Some(f)) if f.sha256 == meta.sha256 && f.size == meta.size => {
                (f.path, Status::Complete)
            }
            Some(Some(f)) => (
                f.path,
                Status::Tampered(
                    "does not match the manifest (replaced by another result?)".into(),
                ),
            ),
        };
        let status = if status == Status::Complete && safe_relative(&path).is_none() {
            Status::Tampered("unsafe path".into())
        } else {
            status
        };
        run.files.push(FileReport {
            object: n.clone(),
            path: Some(path),
            size: Some(meta.size),
            status,
            written: tmp_file,
        });
    }
    // What the manifests list but the directory lacks.
    for run in runs.values_mut() {
        let Some(Ok(m)) = &run.manifest else { continue };
        for f in &m.body.files {
            if !seen.contains(&f.object) {
                run.files.push(FileReport {
                    object: f.object.clone(),
                    path: Some(f.path.clone()),
                    size: Some(f.size),
                    status: Status::Missing,
                    written: None,
                });
            }
        }
        for o in &m.body.open {
            if let Some(fr) = run.files.iter_mut().find(|fr| fr.object == o.object) {
                fr.path = Some(o.path.clone());
            } else {
                run.files.push(FileReport {
                    object: o.object.clone(),
                    path: Some(o.path.clone()),
                    size: None,
                    status: Status::Incomplete("still open when the mount ended".into()),
                    written: None,
                });
            }
        }
    }
    Ok(())
}

/// Moves the complete results from the temporary directory to their paths.
fn place(report: &mut DirReport, dest: &Path) -> Result<(), ReadError> {
    let several = report.runs.len() > 1;
    for run in &mut report.runs {
        let base = dest.join(run_subdir(run, several));
        if let Some(Ok(m)) = &run.manifest {
            for d in &m.body.dirs {
                if let Some(rel) = safe_relative(&d.path) {
                    std::fs::create_dir_all(base.join(rel))?;
                }
            }
        }
        for f in &mut run.files {
            let Some(src) = f.written.take() else {
                continue;
            };
            if f.status != Status::Complete {
                continue;
            }
            let Some(rel) = f.path.as_deref().and_then(safe_relative) else {
                continue;
            };
            let to = base.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::symlink_metadata(&to).is_ok() {
                f.status = Status::Exists(to);
                continue;
            }
            std::fs::rename(&src, &to)?;
            let mode = run
                .manifest
                .as_ref()
                .and_then(|m| m.as_ref().ok())
                .and_then(|m| m.body.files.iter().find(|x| x.object == f.object))
                .map_or(0o600, |x| x.mode & 0o777);
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode));
            f.written = Some(to);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{load_identities, parse_recipient};

    fn keypair(dir: &Path) -> (Recipient, Identities) {
        let id = age::x25519::Identity::generate();
        let f = dir.join("id.txt");
        std::fs::write(&f, format!("{}\n", secrecy_str(&id))).unwrap();
        (
            parse_recipient(&id.to_public().to_string()).unwrap(),
            load_identities(&f).unwrap(),
        )
    }

    fn recipient_of(_ids: &Identities, dir: &Path) -> String {
        let text = std::fs::read_to_string(dir.join("id.txt")).unwrap();
        let id: age::x25519::Identity = text.trim().parse().unwrap();
        id.to_public().to_string()
    }

    fn secrecy_str(id: &age::x25519::Identity) -> String {
        use age::secrecy::ExposeSecret;
        id.to_string().expose_secret().to_string()
    }

    fn run(dir: &Path, key: &SubKey) -> (Run, Identities) {
        let (r, ids) = keypair(dir);
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        (
            Run::new(&out, vec![r], key, [7; 32], "node1".into(), "42".into()).unwrap(),
            ids,
        )
    }

    #[test]
    fn object_round_trip_and_tamper() {
        let t = tempfile::tempdir().unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let (run, ids) = run(t.path(), &key);
        let mut w = run.create().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        for c in data.chunks(4096) {
            w.write(c).unwrap();
        }
        let fin = w.finish(b"sub/result.bin", 0o640).unwrap();
        let obj = run.dir().join(&fin.object);
        let mut out = Vec::new();
        let m = decrypt_object(&obj, &ids, &key, &[7; 32], &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(m.path, b"sub/result.bin");
        assert_eq!((m.mode, m.size, m.sha256), (0o640, 200_000, fin.sha256));
        assert_eq!(m.run, run.info().run);
        // Another key (another archive's results key) cannot have written it.
        let other = SubKey::from_bytes([4; 32]);
        assert!(matches!(
            decrypt_object(&obj, &ids, &other, &[7; 32], &mut io::sink()),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            decrypt_object(&obj, &ids, &key, &[8; 32], &mut io::sink()),
            Err(ReadError::WrongArchive { .. })
        ));
        // Truncation and bit flips are refused.
        let bytes = std::fs::read(&obj).unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 17, bytes.len() / 2] {
            std::fs::write(&obj, &bytes[..cut]).unwrap();
            assert!(decrypt_object(&obj, &ids, &key, &[7; 32], &mut io::sink()).is_err());
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 100;
        flipped[at] ^= 1;
        std::fs::write(&obj, &flipped).unwrap();
        assert!(decrypt_object(&obj, &ids, &key, &[7; 32], &mut io::sink()).is_err());
    }

    #[test]
    fn manifest_round_trip_and_forgery() {
        let t = tempfile::tempdir().unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let (run, ids) = run(t.path(), &key);
        let body = ManifestBody {
            dirs: vec![ManifestDir {
                mode: 0o755,
                path: b"empty dir".to_vec(),
            }],
            files: vec![ManifestFile {
                object: "ab.age".into(),
                size: 5,
                sha256: [9; 32],
                mode: 0o644,
                path: b"a\nb".to_vec(),
            }],
            open: vec![ManifestOpen {
                object: "cd.age.partial".into(),
                path: b"log".to_vec(),
            }],
        };
        let f = run.write_manifest(&body).unwrap();
        let m = read_manifest(&f, &ids, &key, &[7; 32]).unwrap();
        assert_eq!(m.body, body);
        assert_eq!(m.info, *run.info());
        // Anyone can encrypt to the recipient; without the key the MAC fails.
        let forger = Run::new(
            run.dir(),
            vec![parse_recipient(&recipient_of(&ids, t.path())).unwrap()],
            &SubKey::from_bytes([5; 32]),
            [7; 32],
            "node1".into(),
            "42".into(),
        )
        .unwrap();
        let forged = forger.write_manifest(&body).unwrap();
        assert!(matches!(
            read_manifest(&forged, &ids, &key, &[7; 32]),
            Err(ReadError::Bad(_))
        ));
        assert!(read_manifest(&forged, &ids, &SubKey::from_bytes([5; 32]), &[7; 32]).is_ok());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_relative(b"a/b").is_some());
        for p in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"", b"a\0b"] {
            assert!(safe_relative(p).is_none(), "{p:?}");
        }
    }
}
