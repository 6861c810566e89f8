//! Verdicts (RESULTS.md "Verdicts"): checks every file of a results
//! directory against its run's manifest — complete, incomplete, missing,
//! tampered, unlisted — and, with a destination, decrypts the complete ones
//! through a temporary directory and places them at their paths, never over
//! an existing file (or, for Crypt4GH results, places verified copies of the
//! `.c4gh` files themselves). Age and Crypt4GH results are told apart by
//! their names. This is the secure-device side that
//! `hpcs-pack results verify|decrypt` reports on.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::cipher::{Kind, ResultKeys};
use super::manifest::{read_manifest, Manifest};
use super::object::{safe_relative, MANIFEST_PREFIX, RECEIPT_SUFFIX};
use super::read::{decrypt_c4gh_object, decrypt_object, partial_run, read_receipt, ReadError};
use crate::crypto::keys::SubKey;
use crate::util::{hex, unhex_array};

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
/// directory holds one run, else in `run-<run id>/`. The name is made here
/// from the run id (16 bytes, in hex), never taken from a manifest: a
/// manifest is written by whoever holds the archive key, and a forged
/// `host ../../x` must not choose where files land.
fn run_subdir(r: &RunReport, several: bool) -> PathBuf {
    if several {
        PathBuf::from(format!("run-{}", hex(&r.run)))
    } else {
        PathBuf::new()
    }
}

/// Where [`check_dir`] puts the complete results.
#[derive(Clone, Copy, Debug)]
pub enum Placing<'a> {
    /// Nowhere (verify).
    Nothing,
    /// Decrypted, at their paths under this directory.
    Decrypted(&'a Path),
    /// Crypt4GH results as verified copies of their `.c4gh` files, at
    /// `PATH.c4gh` under this directory (age results are decrypted).
    Crypt4gh(&'a Path),
}

impl<'a> Placing<'a> {
    fn dest(self) -> Option<&'a Path> {
        match self {
            Placing::Nothing => None,
            Placing::Decrypted(d) | Placing::Crypt4gh(d) => Some(d),
        }
    }
}

/// The kind and id of a results file name with `suffix(kind)`.
fn named(n: &str, suffix: fn(Kind) -> &'static str) -> Option<(Kind, &str)> {
    [Kind::Age, Kind::Crypt4gh]
        .into_iter()
        .find_map(|k| n.strip_suffix(suffix(k)).map(|id| (k, id)))
}

/// Checks every result in `dir` and, as `placing` says, writes the complete
/// ones (never overwriting: an existing file is an error for that file).
/// `archive_id` and `key` are those of the archive the job mounted first.
/// Fails as a whole only if nothing can be checked (wrong identity or
/// archive, no Crypt4GH key for Crypt4GH results, unreadable directory).
pub fn check_dir(
    dir: &Path,
    keys: &ResultKeys,
    key: &SubKey,
    archive_id: &[u8; 32],
    placing: Placing<'_>,
) -> Result<DirReport, ReadError> {
    let dest = placing.dest();
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
    let mut runs: BTreeMap<[u8; 16], RunReport> = Default::default();
    // Manifests first: they say what to expect.
    for n in &names {
        let Some((_, id)) = n
            .strip_prefix(MANIFEST_PREFIX)
            .and_then(|r| named(r, Kind::manifest_suffix))
        else {
            continue;
        };
        match read_manifest(&dir.join(n), keys, key, archive_id) {
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
                e @ (ReadError::NoIdentity
                | ReadError::NoCrypt4ghKey
                | ReadError::WrongArchive { .. }
                | ReadError::Io(_)),
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
    let as_c4gh = matches!(placing, Placing::Crypt4gh(_));
    let result = check_objects(
        dir,
        keys,
        (key, archive_id),
        &names,
        &mut runs,
        &mut report,
        tmp.as_deref().map(|t| (t, as_c4gh)),
    );
    let result = result.and_then(|()| {
        report.runs = runs.into_values().collect();
        match dest {
            Some(d) => place(&mut report, d, as_c4gh),
            None => Ok(()),
        }
    });
    if let Some(t) = &tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    result.map(|()| report)
}

/// Checks a Crypt4GH object and its receipt: into `tmp_file` go its
/// plaintext, or (`as_c4gh`) a copy of the object, checked as copied.
fn check_c4gh(
    dir: &Path,
    n: &str,
    keys: &ResultKeys,
    (key, archive_id): (&SubKey, &[u8; 32]),
    tmp_file: Option<(&Path, bool)>,
) -> Result<super::read::ObjectMeta, ReadError> {
    let sk = keys.c4gh()?;
    let id = n.strip_suffix(Kind::Crypt4gh.object_suffix()).unwrap_or(n);
    let receipt = dir.join(format!("{id}{RECEIPT_SUFFIX}"));
    match tmp_file {
        None => decrypt_c4gh_object(&dir.join(n), &receipt, sk, key, archive_id, &mut io::sink()),
        Some((p, true)) => {
            std::fs::copy(dir.join(n), p)?;
            decrypt_c4gh_object(p, &receipt, sk, key, archive_id, &mut io::sink())
        }
        Some((p, false)) => {
            let mut f = new_file(p)?;
            decrypt_c4gh_object(&dir.join(n), &receipt, sk, key, archive_id, &mut f)
        }
    }
}

/// The report on results file `n` that failed with `e` (no path known).
fn tampered(n: &str, e: &ReadError) -> FileReport {
    FileReport {
        object: n.to_string(),
        path: None,
        size: None,
        status: Status::Tampered(e.to_string()),
        written: None,
    }
}

fn new_file(p: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
}

fn check_objects(
    dir: &Path,
    keys: &ResultKeys,
    (key, archive_id): (&SubKey, &[u8; 32]),
    names: &[String],
    runs: &mut BTreeMap<[u8; 16], RunReport>,
    report: &mut DirReport,
    tmp: Option<(&Path, bool)>,
) -> Result<(), ReadError> {
    let is_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let all: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut seen: HashSet<String> = Default::default();
    for n in names {
        if n.starts_with(MANIFEST_PREFIX) {
            continue;
        }
        if let Some(id) = n.strip_suffix(RECEIPT_SUFFIX).filter(|id| is_id(id)) {
            let kind = Kind::Crypt4gh;
            let object = format!("{id}{}", kind.object_suffix());
            if all.contains(object.as_str())
                || all.contains(format!("{id}{}", kind.partial_suffix()).as_str())
            {
                continue; // checked with its object
            }
            // A finished result whose object is gone: the manifest, if any,
            // says whether the job deleted it.
            let (h, r, t) = match read_receipt(&dir.join(n), keys.c4gh()?) {
                Ok(x) => x,
                Err(ReadError::Io(e)) => return Err(ReadError::Io(e)),
                Err(e) => {
                    report.unattributed.push(tampered(n, &e));
                    continue;
                }
            };
            let run = runs.entry(h.run).or_insert_with(|| RunReport::empty(h.run));
            if run.manifest.is_none() {
                run.files.push(FileReport {
                    object,
                    path: Some(r[super::object::HEADER_LEN..][..t.path_len].to_vec()),
                    size: Some(t.size),
                    status: Status::Missing,
                    written: None,
                });
            }
            continue;
        }
        if named(n, Kind::partial_suffix).is_some_and(|(_, id)| is_id(id)) {
            let fr = FileReport {
                object: n.clone(),
                path: None,
                size: None,
                status: Status::Incomplete(
                    "writing never finished (job or node interrupted)".into(),
                ),
                written: None,
            };
            match partial_run(&dir.join(n), keys) {
                Some(run) => runs
                    .entry(run)
                    .or_insert_with(|| RunReport::empty(run))
                    .files
                    .push(fr),
                None => report.unattributed.push(fr),
            }
            continue;
        }
        let Some((kind, _)) = named(n, Kind::object_suffix).filter(|(_, id)| is_id(id)) else {
            report.other.push(n.clone());
            continue;
        };
        seen.insert(n.clone());
        let tmp_file = tmp.map(|(t, as_c4gh)| (t.join(n), as_c4gh));
        let tmp_ref = tmp_file.as_ref().map(|(p, c)| (p.as_path(), *c));
        let outcome = match (kind, tmp_ref) {
            (Kind::Crypt4gh, _) => check_c4gh(dir, n, keys, (key, archive_id), tmp_ref),
            (Kind::Age, Some((p, _))) => {
                let mut f = new_file(p)?;
                decrypt_object(&dir.join(n), &keys.age, key, archive_id, &mut f)
            }
            (Kind::Age, None) => {
                decrypt_object(&dir.join(n), &keys.age, key, archive_id, &mut io::sink())
            }
        };
        let tmp_file = tmp_file.map(|(p, _)| p);
        let meta = match outcome {
            Ok(m) => m,
            Err(e @ (ReadError::Io(_) | ReadError::NoCrypt4ghKey)) => return Err(e),
            Err(e) => {
                report.unattributed.push(tampered(n, &e));
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

/// [`crate::place::open_dir_under`], saying what a symlink on the way means
/// (without naming the result's path: it may be piped to shared files).
fn open_under(base: &Path, rel: &Path) -> io::Result<std::os::fd::OwnedFd> {
    crate::place::open_dir_under(base, rel).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
            e.kind(),
            format!(
                "under {}: a directory on a result's path is a symlink or not a directory; never followed ({e})",
                base.display()
            ),
        ),
        _ => e,
    })
}

/// Moves the complete results from the temporary directory to their paths
/// (`PATH.c4gh` for Crypt4GH objects placed `as_c4gh`).
fn place(report: &mut DirReport, dest: &Path, as_c4gh: bool) -> Result<(), ReadError> {
    let several = report.runs.len() > 1;
    for run in &mut report.runs {
        let base = dest.join(run_subdir(run, several));
        if let Some(Ok(m)) = &run.manifest {
            std::fs::create_dir_all(&base)?;
            for d in &m.body.dirs {
                if let Some(rel) = safe_relative(&d.path) {
                    // Never through a symlink planted under DEST.
                    open_under(&base, &rel)?;
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
            let mut rel = rel;
            if as_c4gh && f.object.ends_with(Kind::Crypt4gh.object_suffix()) {
                rel.as_mut_os_string().push(Kind::Crypt4gh.object_suffix());
            }
            let to = base.join(&rel);
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            // The directories under DEST never through a symlink, and the
            // name taken atomically: an existing name (or a symlink planted
            // in between) is never replaced or followed.
            std::fs::create_dir_all(&base)?;
            let dir = open_under(&base, parent)?;
            match crate::place::rename_noreplace_into(&src, &dir, name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = std::fs::remove_file(&src);
                    f.status = Status::Exists(to);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
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

    #[test]
    fn run_directories_are_made_from_the_run_id_only() {
        let r = RunReport::empty([0xab; 16]);
        assert_eq!(run_subdir(&r, false), PathBuf::new());
        assert_eq!(
            run_subdir(&r, true),
            PathBuf::from(format!("run-{}", "ab".repeat(16)))
        );
    }
}
