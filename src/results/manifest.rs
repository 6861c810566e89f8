//! Run manifests (RESULTS.md "Manifest plaintext"): what a run lists when
//! its mount ends cleanly — directories, finished files with their hashes,
//! files still open — as authenticated UTF-8 lines encrypted to the run's
//! recipients. Writing ([`Run::write_manifest`]) and reading back
//! ([`read_manifest`]) live side by side so the two stay one format.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::Mac;

use super::cipher::{open_c4gh_small, ResultKeys};
use super::object::{new_mac, C4GH_MANIFEST_SUFFIX, MANIFEST_PREFIX};
use super::read::{age_reader, stream_error, ReadError};
use super::writer::{sync_dir, Run, RunInfo};
use crate::crypto::keys::{ct_eq, SubKey};
use crate::util::{hex, now_secs, unhex, unhex_array};

/// First line of a manifest's plaintext.
pub const MANIFEST_MAGIC: &str = "hpcs-results-manifest/v1";

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

impl Run {
    /// Writes the run's manifest (`manifest-<run>.age`, via a temporary file
    /// and a rename), encrypted to the recipients and authenticated.
    pub fn write_manifest(&self, m: &ManifestBody) -> io::Result<PathBuf> {
        let mut text = String::new();
        text.push_str(MANIFEST_MAGIC);
        text.push('\n');
        let i = self.info();
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
        let mut mac = new_mac(self.key()).map_err(|_| io::Error::other("HMAC key"))?;
        mac.update(text.as_bytes());
        text.push_str(&format!("mac {}\n", hex(&mac.finalize().into_bytes())));

        let name = format!(
            "{MANIFEST_PREFIX}{}{}",
            hex(&i.run),
            self.kind().manifest_suffix()
        );
        let tmp = self.dir().join(format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o600)
                .open(&tmp)?;
            let mut w = self.seal(file)?;
            w.write_all(text.as_bytes())?;
            let file = w.finish()?;
            file.sync_all()?;
            Ok(())
        };
        if let Err(e) = write() {
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&tmp);
            }
            return Err(e);
        }
        let dest = self.dir().join(&name);
        if let Err(e) = crate::place::rename_noreplace(&tmp, &dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(self.dir());
        Ok(dest)
    }
}

/// Decrypts and authenticates a manifest file (age or Crypt4GH, by its
/// name).
pub fn read_manifest(
    file: &Path,
    keys: &ResultKeys,
    key: &SubKey,
    archive_id: &[u8; 32],
) -> Result<Manifest, ReadError> {
    let f = File::open(file)?;
    let c4gh = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(C4GH_MANIFEST_SUFFIX));
    let text = if c4gh {
        open_c4gh_small(&f, keys.c4gh()?, u64::MAX)?
    } else {
        let mut rd = age_reader(f, &keys.age)?;
        let mut text = Vec::new();
        rd.read_to_end(&mut text).map_err(stream_error)?;
        text
    };
    let bad = |why: &str| ReadError::Bad(format!("manifest: {why}"));
    let text = String::from_utf8(text).map_err(|_| bad("not text"))?;
    let mac_at = text.rfind("\nmac ").ok_or_else(|| bad("no MAC"))? + 1;
    let tag = unhex(text[mac_at + 4..].trim_end()).ok_or_else(|| bad("bad MAC line"))?;
    let mut mac = new_mac(key).map_err(|_| bad("HMAC key"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_recipient;
    use crate::results::test_util::{recipient_of, run};

    #[test]
    fn manifest_round_trip_and_forgery() {
        let t = tempfile::tempdir().unwrap();
        let key = SubKey::from_bytes([3; 32]);
        let (run, ids) = run(t.path(), &key);
        let ids = ResultKeys {
            age: ids,
            c4gh: None,
        };
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
            vec![parse_recipient(&recipient_of(t.path())).unwrap()],
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
}
