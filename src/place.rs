//! Putting a finished file at its name without replacing what is there and
//! without following a symlink someone planted: `renameat2(RENAME_NOREPLACE)`
//! (or `link` + `unlink` where the filesystem lacks it), never "check that
//! the name is free, then rename" (another process can win in between).
//! Leaf module: imports nothing from the crate.

use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// `renameat2(RENAME_NOREPLACE)` of `from` (relative to `from_at`) to `to`
/// (relative to `to_at`); where the filesystem lacks it (EINVAL, ENOSYS), a
/// hard link (which also refuses an existing name, and does not follow
/// `from`) and the removal of `from`.
fn rename_noreplace_raw(
    from_at: libc::c_int,
    from: &CString,
    to_at: libc::c_int,
    to: &CString,
) -> io::Result<()> {
    // SAFETY: both are valid NUL-terminated paths and the descriptors are
    // open directories or AT_FDCWD for the duration of the call; renameat2
    // reads them and returns a status.
    let r = unsafe {
        libc::renameat2(
            from_at,
            from.as_ptr(),
            to_at,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // SAFETY: as above; linkat with flags 0 does not follow `from`.
            if unsafe { libc::linkat(from_at, from.as_ptr(), to_at, to.as_ptr(), 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: as above; unlinkat removes the name `from` only.
            if unsafe { libc::unlinkat(from_at, from.as_ptr(), 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        _ => Err(e),
    }
}

/// Renames `from` to `to` atomically, failing with `AlreadyExists` if `to`
/// exists (a file, a directory or a symlink, which is not followed). Uses
/// `renameat2(RENAME_NOREPLACE)`; where the filesystem does not support it
/// (EINVAL), a hard link (which also refuses an existing name) and the
/// removal of `from`. Never checks and then renames.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rename_noreplace_raw(libc::AT_FDCWD, &cpath(from)?, libc::AT_FDCWD, &cpath(to)?)
}

/// Takes a descriptor openat just returned (or -1 and errno).
fn owned_fd(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir_raw(at: libc::c_int, name: &CString, follow: bool) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY
        | libc::O_DIRECTORY
        | libc::O_CLOEXEC
        | if follow { 0 } else { libc::O_NOFOLLOW };
    // SAFETY: `name` is a valid NUL-terminated path and `at` an open
    // directory or AT_FDCWD; openat returns a new descriptor we own, or -1.
    owned_fd(unsafe { libc::openat(at, name.as_ptr(), flags) })
}

/// Opens the directory `path`; a symlink as its last component is followed
/// only with `follow` (else ELOOP or ENOTDIR).
pub fn open_dir(path: &Path, follow: bool) -> io::Result<OwnedFd> {
    open_dir_raw(libc::AT_FDCWD, &cpath(path)?, follow)
}

/// Opens the directory `name` in the directory `dir` without following a
/// symlink there (ELOOP or ENOTDIR).
pub fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    open_dir_raw(dir.as_raw_fd(), &cname(name)?, false)
}

/// Creates the directory `name` in `dir` (mode 0700: plaintext goes in, and
/// the caller sets the final mode once the content is complete) unless a
/// directory is there already, and opens it as [`open_dir_at`] does: a
/// symlink or anything else at that name, before or meanwhile, is an error
/// (ELOOP or ENOTDIR), never followed.
pub fn make_dir_at(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let n = cname(name)?;
    // SAFETY: a valid directory fd and NUL-terminated name.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), 0o700) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    open_dir_raw(dir.as_raw_fd(), &n, false)
}

/// Opens directory `rel` under the directory `base`, creating missing
/// components (mode 0700) and refusing ones others can write
/// ([`unsafe_dir`]), without following a symlink in any
/// component of `rel`: each is made with `mkdirat` and opened with
/// `openat(O_DIRECTORY|O_NOFOLLOW)` relative to the one before
/// ([`make_dir_at`]), so a symlink planted on the way, before or meanwhile,
/// is an error (ELOOP or ENOTDIR), never a way out of `base`. `base` itself
/// is opened as given. `rel` must be relative with normal components only.
pub fn open_dir_under(base: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let mut dir = private(open_dir(base, true)?)?;
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a plain relative path",
            ));
        };
        dir = private(make_dir_at(&dir, name)?)?;
    }
    Ok(dir)
}

/// `dir`, unless [`unsafe_dir`] says plaintext must not go there
/// (`PermissionDenied`, saying why without naming it).
fn private(dir: OwnedFd) -> io::Result<OwnedFd> {
    match unsafe_dir(&dir)? {
        None => Ok(dir),
        Some(why) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("a directory on the way {why}: others could read, move or replace what is written there; use a directory only you (and your group) can write"),
        )),
    }
}

/// [`rename_noreplace`] of `from` to `name` in the directory `dir` (from
/// [`open_dir_under`]).
pub fn rename_noreplace_into(from: &Path, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    rename_noreplace_raw(
        libc::AT_FDCWD,
        &cpath(from)?,
        dir.as_raw_fd(),
        &cname(name)?,
    )
}

/// [`rename_noreplace`] of `from` to `to`, both names in the directory `dir`.
pub fn rename_noreplace_at(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let fd = dir.as_raw_fd();
    rename_noreplace_raw(fd, &cname(from)?, fd, &cname(to)?)
}

/// Creates the regular file `name` in `dir` for writing, with `mode` (less
/// the umask): `O_CREAT|O_EXCL|O_NOFOLLOW`, so an existing name, a symlink
/// included, is an error (`AlreadyExists`), never followed or truncated.
pub fn create_file_at(dir: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let n = cname(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid directory fd and NUL-terminated name; openat returns a
    // new descriptor we own, or -1.
    let fd = owned_fd(unsafe { libc::openat(dir.as_raw_fd(), n.as_ptr(), flags, mode) })?;
    Ok(File::from(fd))
}

/// Removes the name `name` (not a directory) from `dir`; a symlink is
/// removed, not followed.
pub fn remove_file_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let n = cname(name)?;
    // SAFETY: a valid directory fd and NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when something (a symlink included, not followed) has the name
/// `name` in `dir`.
pub fn exists_at(dir: &OwnedFd, name: &OsStr) -> bool {
    let Ok(n) = cname(name) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid directory fd and NUL-terminated name; fstatat writes
    // one stat into `st` and keeps no pointer.
    unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            n.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
    }
}

/// Creates the symlink `name` in `dir` pointing at `target`
/// (`AlreadyExists` if the name is taken).
pub fn symlink_at(target: &OsStr, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let (t, n) = (cname(target)?, cname(name)?);
    // SAFETY: valid NUL-terminated strings and a valid directory fd.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Hard-links `from` in `from_dir` as `to` in `to_dir`, not following
/// `from` if it is a symlink (`AlreadyExists` if `to` is taken).
pub fn hard_link_at(
    from_dir: &OwnedFd,
    from: &OsStr,
    to_dir: &OwnedFd,
    to: &OsStr,
) -> io::Result<()> {
    let (f, t) = (cname(from)?, cname(to)?);
    // SAFETY: valid directory fds and NUL-terminated names; flags 0 does
    // not follow `from`.
    if unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Why plaintext must not be written into the directory open at `dir`, if
/// it must not: it belongs to another user (root's are allowed) or anybody
/// may write to it (world-writable, sticky or not), so another user could
/// read, move or replace what is written there. Group-writable directories
/// (a project's shared space) are allowed.
pub fn unsafe_dir(dir: &OwnedFd) -> io::Result<Option<&'static str>> {
    let md = File::from(dir.try_clone()?).metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    Ok(if md.uid() != me && md.uid() != 0 {
        Some("belongs to another user")
    } else if md.mode() & 0o002 != 0 {
        Some("is writable by every user")
    } else {
        None
    })
}

/// Writes `bytes` to `path` as a new regular file (mode 0644) without
/// following a symlink: written to a fresh temporary name in the same
/// directory (`O_CREAT|O_EXCL|O_NOFOLLOW`), then renamed onto `path`. An
/// existing `path` is replaced only if it is a regular file owned by us (a
/// stale pidfile); a symlink, anything else or another user's file is
/// refused (`AlreadyExists`). Returns the (device, inode) written, so the
/// caller can later remove only its own file ([`remove_if_ours`]).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<(u64, u64)> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} {why}; not replaced", path.display()),
        ))
    };
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => return refuse("is a symlink"),
        Ok(md) if !md.is_file() => return refuse("exists and is not a regular file"),
        Ok(md) if md.uid() != me => return refuse("belongs to another user"),
        Ok(_) | Err(_) => {}
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(&tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.metadata())
        .map(|md| (md.dev(), md.ino()));
    drop(f);
    let res = written.and_then(|id| {
        // rename replaces the name itself: if a symlink was planted at `path`
        // since the check above, it is replaced, never followed.
        std::fs::rename(&tmp, path).map(|()| id)
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Removes `path` if it is still the file `id` (device, inode) written by
/// [`write_private_file`] and still holds `bytes` (an inode number can be
/// reused by a file created after ours was removed); leaves anything else
/// alone.
pub fn remove_if_ours(path: &Path, id: (u64, u64), bytes: &[u8]) {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.is_file()
            && (md.dev(), md.ino()) == id
            && md.len() == bytes.len() as u64
            && std::fs::read(path).is_ok_and(|b| b == bytes)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        // A dangling symlink is a name too, and is not followed.
        let target = d.path().join("target");
        std::os::unix::fs::symlink(&target, b.with_extension("l")).unwrap();
        let e = rename_noreplace(&a, &b.with_extension("l")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(!target.exists());
        rename_noreplace(&a, &d.path().join("c")).unwrap();
        assert_eq!(std::fs::read(d.path().join("c")).unwrap(), b"new");
        assert!(!a.exists());
    }

    #[test]
    fn dirs_under_a_base_never_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base");
        std::fs::create_dir(&base).unwrap();
        let out = d.path().join("outside");
        std::fs::create_dir(&out).unwrap();
        let dir = open_dir_under(&base, Path::new("a/b")).unwrap();
        assert!(base.join("a/b").is_dir());
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        rename_noreplace_into(&f, &dir, OsStr::new("x")).unwrap();
        assert_eq!(std::fs::read(base.join("a/b/x")).unwrap(), b"x");
        std::fs::write(&f, b"y").unwrap();
        let e = rename_noreplace_into(&f, &dir, OsStr::new("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // A symlink on the way, to a directory outside: refused, nothing made
        // there.
        std::os::unix::fs::symlink(&out, base.join("s")).unwrap();
        assert!(open_dir_under(&base, Path::new("s/c")).is_err());
        assert!(open_dir_under(&base, Path::new("s")).is_err());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        assert!(open_dir_under(&base, Path::new("../x")).is_err());
    }

    #[test]
    fn private_file_refuses_symlinks_and_removes_only_its_own() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, b"precious").unwrap();
        let p = d.path().join("pid");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = write_private_file(&p, b"1\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A dangling symlink is refused too (O_CREAT would create its target).
        std::fs::remove_file(&p).unwrap();
        let nowhere = d.path().join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &p).unwrap();
        assert!(write_private_file(&p, b"1\n").is_err());
        assert!(!nowhere.exists());
        std::fs::remove_file(&p).unwrap();
        // A stale pidfile of ours is replaced; no temp name is left.
        std::fs::write(&p, b"stale\n").unwrap();
        let id = write_private_file(&p, b"2\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        // Replaced by someone else's file: not removed.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"other\n").unwrap();
        remove_if_ours(&p, id, b"2\n");
        assert!(p.exists());
        let id = write_private_file(&p, b"3\n").unwrap();
        remove_if_ours(&p, id, b"3\n");
        assert!(!p.exists());
    }
}
