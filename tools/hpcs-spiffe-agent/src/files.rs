//! Files the agent publishes or owns on disk.
//!
//! Small published files (`--jwks-out`, `--jwks-pem-out`, `--ready-file`)
//! are written atomically: a temporary sibling, fsync, then rename, so a
//! reader never sees a partial file. The Workload API socket path is cleared
//! at start-up only when it is a stale socket (nobody accepts on it), and
//! removed at exit only while it is still the socket this process bound.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors about the socket path.
#[derive(Debug, thiserror::Error)]
pub enum SocketPathError {
    #[error("{0}: another process is already serving on this socket")]
    InUse(PathBuf),
    #[error("{0}: exists and is not a socket; refusing to remove it")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A temporary name next to `path` (same directory, so rename is atomic),
/// unique within this process and across processes.
pub fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Replaces `path` with `contents` atomically (temporary sibling + rename).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: do not leave the temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes `path` free for `bind`: nothing there, or a stale socket (removed).
///
/// A socket that still accepts connections belongs to a live server and is
/// left alone; a path that is not a socket is never removed.
pub fn clear_stale_socket(path: &Path) -> Result<(), SocketPathError> {
    let io_err = |source| SocketPathError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketPathError::NotASocket(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketPathError::InUse(path.to_owned())),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        },
        Err(e) => Err(io_err(e)),
    }
}

/// The socket file this process bound, identified by device and inode.
#[derive(Debug)]
pub struct BoundSocket {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundSocket {
    /// Records the identity of the socket file just bound at `path`.
    pub fn record(path: &Path) -> std::io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the socket file if it is still the one this process bound (a
    /// newer agent may have replaced it after a stale-socket cleanup).
    pub fn remove(self) -> std::io::Result<()> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                fs::remove_file(&self.path)
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        write_atomic(&path, b"one", 0o644).expect("write");
        write_atomic(&path, b"two", 0o644).expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn stale_socket_is_removed_live_one_and_regular_file_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        clear_stale_socket(&path).expect("absent is fine");

        let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert!(matches!(
            clear_stale_socket(&path),
            Err(SocketPathError::InUse(_))
        ));
        drop(live);
        // The listener is closed but its file remains: stale.
        assert!(path.exists());
        clear_stale_socket(&path).expect("stale removed");
        assert!(!path.exists());

        fs::write(&path, b"not a socket").expect("write");
        assert!(matches!(
            clear_stale_socket(&path),
            Err(SocketPathError::NotASocket(_))
        ));
        assert!(path.exists());
    }

    #[test]
    fn bound_socket_removes_only_its_own_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let first = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let ours = BoundSocket::record(&path).expect("record");
        drop(first);
        // Move (not delete) the old file so its inode cannot be reused by the new one.
        fs::rename(&path, dir.path().join("old.sock")).expect("mv");
        let _second = std::os::unix::net::UnixListener::bind(&path).expect("rebind");
        ours.remove().expect("remove");
        assert!(path.exists(), "a newer socket must survive");
    }
}
