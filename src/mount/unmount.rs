//! Unmounting: the `--unmount` command (only ever an hpcs mount) and the
//! lazy detach the server falls back to when its mount is busy at shutdown.
//! As root through `umount2`; as a normal user through `fusermount3 -u`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use crate::exit::{self, Fail};

use super::mountinfo::mounts;

/// Unmounts `mnt`: plainly, or lazily (detach) if `lazy`.
pub fn unmount_path(mnt: &Path, lazy: bool) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mnt.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error().to_string());
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mnt)
        .output()
        .map_err(|e| format!("cannot run fusermount3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `hpcs-mount --unmount MNT [--lazy]`: unmounts `mnt` if (and only if) it
/// is an hpcs mount; the daemon serving it then exits 0.
pub fn unmount_hpcs(mnt: &Path, lazy: bool) -> Result<(), Fail> {
    let abs = std::path::absolute(mnt).unwrap_or_else(|_| mnt.to_path_buf());
    let canon = abs.canonicalize().unwrap_or(abs);
    let found = mounts().into_iter().rev().find(|m| m.point == canon);
    match found {
        Some(m) if m.is_hpcs() => {}
        Some(m) => {
            return Err(Fail::new(
                exit::NOT_MOUNTED,
                format!(
                    "{} is a {} mount, not an hpcs mount; not touching it",
                    canon.display(),
                    m.fstype
                ),
            ))
        }
        None => {
            return Err(Fail::new(
                exit::NOT_MOUNTED,
                format!("{} is not a mount point", canon.display()),
            ))
        }
    }
    unmount_path(&canon, lazy).map_err(|e| {
        Fail::new(
            exit::UNMOUNT_FAILED,
            format!(
                "cannot unmount {}: {e}; close the files open under it, or use --lazy to detach it now",
                canon.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_mount_point() {
        let d = tempfile::tempdir().unwrap();
        let f = unmount_hpcs(d.path(), false).unwrap_err();
        assert_eq!(f.code, exit::NOT_MOUNTED);
        assert!(f.msg.ends_with("is not a mount point"), "{}", f.msg);
        assert!(d.path().is_dir());
    }

    #[test]
    fn refuses_a_mount_that_is_not_hpcs() {
        let root = mounts()
            .into_iter()
            .rev()
            .find(|m| m.point == Path::new("/"))
            .expect("/ is mounted");
        assert!(!root.is_hpcs(), "this test needs / not to be an hpcs mount");
        let f = unmount_hpcs(Path::new("/"), true).unwrap_err();
        assert_eq!(f.code, exit::NOT_MOUNTED);
        assert_eq!(
            f.msg,
            format!(
                "/ is a {} mount, not an hpcs mount; not touching it",
                root.fstype
            )
        );
    }
}
