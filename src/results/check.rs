//! Verdicts (RESULTS.md "Verdicts"): checks every file of a results
//! directory against its run's manifest — complete, incomplete, missing,
//! tampered, unlisted — and, with a destination, decrypts the complete ones
//! through a temporary directory and places them at their paths, never over
//! an existing file. This is the secure-device side that
//! `hpcs-pack results verify|decrypt` reports on.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::manifest::{read_manifest, Manifest};
use super::object::{safe_relative, MANIFEST_PREFIX, OBJECT_SUFFIX, PARTIAL_SUFFIX};
use super::read::{decrypt_object, partial_run, ReadError};
use crate::crypto::keys::SubKey;
use crate::keys::Identities;
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
    let mut runs: BTreeMap<[u8; 16], RunReport> = Default::default();
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
    runs: &mut BTreeMap<[u8; 16], RunReport>,
    report: &mut DirReport,
    tmp: Option<&Path>,
) -> Result<(), ReadError> {
    let is_id = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut seen: HashSet<String> = Default::default();
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
