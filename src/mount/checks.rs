//! What is checked on the node before anything is mounted: FUSE is there,
//! the mount point is an empty directory nobody mounted on, and the cache
//! fits the locked-memory limit. Each failure is a documented exit code with
//! a message saying what to do.

use std::path::{Path, PathBuf};

use crate::exit::{self, Fail};
use crate::fs::MountConfig;
use crate::warn;

use super::mountinfo::mounts;

/// Checks that /dev/fuse can be opened.
pub fn check_dev_fuse() -> Result<(), Fail> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Fail::new(
            exit::NO_FUSE,
            format!("cannot open /dev/fuse: {e}; FUSE is not open to this user here (ask for /dev/fuse mode 0666)"),
        )),
        Err(e) => Err(Fail::new(
            exit::NO_FUSE,
            format!(
                "cannot open /dev/fuse: {e}; FUSE is not available on this node (load the fuse module, or run where /dev/fuse exists)"
            ),
        )),
    }
}

/// Checks the mount point before anything is opened or mounted; returns
/// its canonical path.
pub fn check_mountpoint(p: &Path) -> Result<PathBuf, Fail> {
    let md = std::fs::metadata(p).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTCONN) => Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "{} is a dead FUSE mount (its daemon was killed); remove it with `fusermount3 -u {}` first",
                p.display(),
                p.display()
            ),
        ),
        _ if e.kind() == std::io::ErrorKind::NotFound => Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {} does not exist; create an empty directory first (mkdir -p)", p.display()),
        ),
        _ => Fail::new(exit::MOUNTPOINT_MISSING, format!("cannot use mount point {}: {e}", p.display())),
    })?;
    if !md.is_dir() {
        return Err(Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {} is not a directory", p.display()),
        ));
    }
    let canon = p.canonicalize().map_err(|e| {
        Fail::new(
            exit::MOUNTPOINT_MISSING,
            format!("mount point {}: {e}", p.display()),
        )
    })?;
    if mounts().iter().any(|m| m.point == canon) {
        return Err(Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "{} is already a mount point; unmount it or choose another directory",
                canon.display()
            ),
        ));
    }
    let nonempty = std::fs::read_dir(&canon)
        .map(|mut d| d.next().is_some())
        .map_err(|e| {
            Fail::new(
                exit::MOUNTPOINT_MISSING,
                format!("cannot read mount point {}: {e}", canon.display()),
            )
        })?;
    if nonempty {
        return Err(Fail::new(
            exit::MOUNTPOINT_BUSY,
            format!(
                "mount point {} is not empty; mount on an empty directory so no files are hidden",
                canon.display()
            ),
        ));
    }
    Ok(canon)
}

/// Caps the cache to what may be locked, with a warning.
pub fn fit_cache(cfg: &mut MountConfig) {
    if let Some(w) = fit_cache_to(cfg, crate::secmem::memlock_limit()) {
        warn!("{w}");
    }
}

/// [`fit_cache`] for a given locked-memory limit (`None`: unlimited);
/// returns the warning to log, if any.
fn fit_cache_to(cfg: &mut MountConfig, limit: Option<u64>) -> Option<String> {
    // Locked besides the cache: one reply buffer (1 MiB) per FUSE thread.
    let reserve = (cfg.threads as u64 + 1) << 20;
    let limit = limit?;
    if cfg.cache_bytes + reserve <= limit {
        return None;
    }
    let capped = limit.saturating_sub(reserve);
    if capped >= 1 << 20 {
        let w = format!(
            "--cache-size reduced from {} MiB to {} KiB to fit the locked-memory limit ({} KiB, ulimit -l); raise it (LimitMEMLOCK= in a unit, ulimit -l in a job) for a larger cache",
            cfg.cache_bytes >> 20,
            capped >> 10,
            limit >> 10
        );
        cfg.cache_bytes = capped;
        cfg.readahead_bytes = cfg.readahead_bytes.min(capped / 4);
        Some(w)
    } else {
        Some(format!(
            "the locked-memory limit is only {} KiB (ulimit -l): decrypted data cannot be locked in RAM and may be swapped; raise the limit",
            limit >> 10
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cache_mib: u64, readahead_mib: u64, threads: usize) -> MountConfig {
        MountConfig {
            cache_bytes: cache_mib << 20,
            readahead_bytes: readahead_mib << 20,
            threads,
            ..MountConfig::default()
        }
    }

    #[test]
    fn cache_fits_or_is_capped() {
        // Unlimited, or room for cache + one MiB per thread + one: unchanged.
        let mut c = cfg(256, 16, 4);
        assert_eq!(fit_cache_to(&mut c, None), None);
        assert_eq!(fit_cache_to(&mut c, Some(261 << 20)), None);
        assert_eq!((c.cache_bytes, c.readahead_bytes), (256 << 20, 16 << 20));
        // One byte short: capped to the limit less the reserve, read-ahead
        // to a quarter of the cache.
        let w = fit_cache_to(&mut c, Some((261 << 20) - 1)).expect("a warning");
        assert!(w.starts_with("--cache-size reduced from 256 MiB"), "{w}");
        assert_eq!(c.cache_bytes, (256 << 20) - 1);
        let mut c = cfg(256, 16, 4);
        fit_cache_to(&mut c, Some(13 << 20));
        assert_eq!((c.cache_bytes, c.readahead_bytes), (8 << 20, 2 << 20));
    }

    #[test]
    fn tiny_limit_warns_and_keeps_the_cache() {
        let mut c = cfg(256, 16, 4);
        let w = fit_cache_to(&mut c, Some(64 << 10)).expect("a warning");
        assert!(w.contains("only 64 KiB"), "{w}");
        assert_eq!(c.cache_bytes, 256 << 20);
    }

    #[test]
    fn mountpoint_checks() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope");
        let f = check_mountpoint(&missing).unwrap_err();
        assert_eq!(f.code, exit::MOUNTPOINT_MISSING);
        assert!(f.msg.contains("does not exist"), "{}", f.msg);

        let file = d.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let f = check_mountpoint(&file).unwrap_err();
        assert_eq!(f.code, exit::MOUNTPOINT_MISSING);
        assert!(f.msg.contains("not a directory"), "{}", f.msg);

        let full = d.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("x"), b"x").unwrap();
        let f = check_mountpoint(&full).unwrap_err();
        assert_eq!(f.code, exit::MOUNTPOINT_BUSY);
        assert!(f.msg.contains("is not empty"), "{}", f.msg);

        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let rel = empty.join("..").join("empty");
        assert_eq!(
            check_mountpoint(&rel).unwrap(),
            empty.canonicalize().unwrap()
        );
    }

    #[test]
    fn a_mount_point_is_busy() {
        let f = check_mountpoint(Path::new("/")).unwrap_err();
        assert_eq!(f.code, exit::MOUNTPOINT_BUSY);
        assert!(f.msg.contains("already a mount point"), "{}", f.msg);
    }
}
