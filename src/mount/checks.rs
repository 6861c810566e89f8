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

/// Sizes the cache, read-ahead and FUSE threads to what may be locked, and
/// says so once; refuses ([`exit::MEMORY_LOCK`]) when not even a small cache
/// fits, unless `allow_unlocked` (`--allow-unlocked-memory`). Returns
/// whether it warned that memory is not locked.
pub fn fit_cache(cfg: &mut MountConfig, allow_unlocked: bool) -> Result<bool, Fail> {
    match fit_cache_to(cfg, crate::secmem::memlock_limit()) {
        Fit::Fits => Ok(false),
        Fit::Reduced(w) => {
            warn!("{w}");
            Ok(false)
        }
        Fit::TooSmall(limit) if allow_unlocked => {
            warn!(
                "--allow-unlocked-memory: the locked-memory limit is only {} KiB (ulimit -l), so decrypted data and keys are NOT locked in RAM and may be written to swap",
                limit >> 10
            );
            Ok(true)
        }
        Fit::TooSmall(limit) => Err(unlockable(&format!(
            "the locked-memory limit is only {} KiB (ulimit -l); hpcs-mount needs at least {} KiB",
            limit >> 10,
            MIN_LOCKED >> 10
        ))),
    }
}

/// The [`exit::MEMORY_LOCK`] failure: what is wrong, then what to do.
pub fn unlockable(what: &str) -> Fail {
    Fail::new(
        exit::MEMORY_LOCK,
        format!(
            "{what}: decrypted data and keys cannot be locked in RAM and could reach swap, so nothing is mounted. Raise the limit (ulimit -l in the job; LimitMEMLOCK= for a systemd unit; /etc/security/limits.d and Slurm PropagateResourceLimits on a cluster; see docs/mount.md \"Memory\"), use fewer --threads or a smaller --cache-size, or accept the risk with --allow-unlocked-memory"
        ),
    )
}

/// One reply buffer per FUSE thread is locked besides the cache.
const REPLY_BUF: u64 = 1 << 20;
/// Smallest locked budget that still mounts: one thread's reply buffer, one
/// spare, and a 1 MiB cache.
const MIN_LOCKED: u64 = 3 * REPLY_BUF;

/// What [`fit_cache_to`] did.
#[derive(Debug, PartialEq)]
enum Fit {
    /// Unchanged.
    Fits,
    /// Cache, read-ahead or threads reduced; the line to log once.
    Reduced(String),
    /// Not even [`MIN_LOCKED`] may be locked (the limit in bytes).
    TooSmall(u64),
}

/// [`fit_cache`] for a given locked-memory limit (`None`: unlimited).
fn fit_cache_to(cfg: &mut MountConfig, limit: Option<u64>) -> Fit {
    let Some(limit) = limit else {
        return Fit::Fits;
    };
    let reserve = |threads: usize| (threads as u64 + 1) * REPLY_BUF;
    if cfg.cache_bytes + reserve(cfg.threads) <= limit {
        return Fit::Fits;
    }
    if limit < MIN_LOCKED {
        return Fit::TooSmall(limit);
    }
    // Reply buffers take at most 5/8 of the limit, the cache the rest.
    let max_threads = ((limit * 5 / 8) / REPLY_BUF).saturating_sub(1).max(1) as usize;
    let threads = cfg.threads.min(max_threads);
    let capped = cfg.cache_bytes.min(limit.saturating_sub(reserve(threads)));
    let w = format!(
        "the locked-memory limit is {} KiB (ulimit -l): cache {} KiB (asked {} KiB), read-ahead {} KiB, {} FUSE threads, all locked; raise the limit for a larger cache (docs/mount.md \"Memory\")",
        limit >> 10,
        capped >> 10,
        cfg.cache_bytes >> 10,
        cfg.readahead_bytes.min(capped / 4) >> 10,
        threads
    );
    cfg.threads = threads;
    cfg.cache_bytes = capped;
    cfg.readahead_bytes = cfg.readahead_bytes.min(capped / 4);
    Fit::Reduced(w)
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
        assert_eq!(fit_cache_to(&mut c, None), Fit::Fits);
        assert_eq!(fit_cache_to(&mut c, Some(261 << 20)), Fit::Fits);
        assert_eq!((c.cache_bytes, c.readahead_bytes), (256 << 20, 16 << 20));
        // One byte short: capped to the limit less the reserve, read-ahead
        // to a quarter of the cache, threads kept.
        let Fit::Reduced(w) = fit_cache_to(&mut c, Some((261 << 20) - 1)) else {
            panic!("not reduced")
        };
        assert!(w.contains("cache 262143 KiB (asked 262144 KiB)"), "{w}");
        assert_eq!((c.cache_bytes, c.threads), ((256 << 20) - 1, 4));
        // The default ulimit -l of 8 MiB with 4 threads: a 3 MiB cache.
        let mut c = cfg(256, 16, 4);
        assert!(matches!(
            fit_cache_to(&mut c, Some(8 << 20)),
            Fit::Reduced(_)
        ));
        assert_eq!(
            (c.cache_bytes, c.readahead_bytes, c.threads),
            (3 << 20, 768 << 10, 4)
        );
    }

    #[test]
    fn many_threads_are_cut_to_leave_room_for_the_cache() {
        // 64 threads (a big node's default) under 8 MiB: 4 threads, 3 MiB.
        let mut c = cfg(256, 16, 64);
        assert!(matches!(
            fit_cache_to(&mut c, Some(8 << 20)),
            Fit::Reduced(_)
        ));
        assert_eq!((c.cache_bytes, c.threads), (3 << 20, 4));
        // The smallest limit that mounts: one thread, a 1 MiB cache.
        let mut c = cfg(256, 16, 8);
        assert!(matches!(
            fit_cache_to(&mut c, Some(MIN_LOCKED)),
            Fit::Reduced(_)
        ));
        assert_eq!((c.cache_bytes, c.threads), (1 << 20, 1));
    }

    #[test]
    fn tiny_limit_is_refused_unless_allowed() {
        let mut c = cfg(256, 16, 4);
        assert_eq!(
            fit_cache_to(&mut c, Some(64 << 10)),
            Fit::TooSmall(64 << 10)
        );
        assert_eq!(fit_cache_to(&mut c, Some(0)), Fit::TooSmall(0));
        assert_eq!(c.cache_bytes, 256 << 20);
        let f = unlockable("x");
        assert_eq!(f.code, exit::MEMORY_LOCK);
        assert!(f.msg.contains("--allow-unlocked-memory"), "{}", f.msg);
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
