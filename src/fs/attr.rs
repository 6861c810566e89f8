//! Inode numbers and attributes: pure mapping, no I/O.
//!
//! One archive mounted alone: entry `id` is inode `id + 1` (the archive root
//! is FUSE's root inode 1). Several archives under one root: inode 1 is a
//! synthetic read-only directory listing them by name, and archive `k`'s
//! entries follow each other from inode 2 on. Hard links share the inode of
//! their first entry (`Kind::File::inode`). Files appear owned by the
//! mounting user with the archive's permission bits, which never include
//! setuid or setgid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

use crate::crypto::index::{Kind, Node, NodeId, ROOT};

/// What an inode number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ino {
    /// The synthetic root that lists several archives.
    Top,
    /// Entry `id` of archive `archive`.
    Entry {
        /// Archive index (order given at mount).
        archive: usize,
        /// Entry id in that archive's index.
        id: NodeId,
    },
}

/// Inode numbering for one or several archives.
#[derive(Clone, Debug)]
pub struct Inodes {
    /// First inode of each archive.
    bases: Vec<u64>,
    /// Entries per archive.
    lens: Vec<u64>,
    /// Whether inode 1 is the synthetic top directory.
    top: bool,
}

impl Inodes {
    /// Numbering for archives with `lens[k]` entries each; a synthetic top
    /// directory lists them by name unless there is exactly one and
    /// `force_top` is false.
    pub fn new(lens: &[usize], force_top: bool) -> Inodes {
        let top = force_top || lens.len() != 1;
        let mut bases = Vec::with_capacity(lens.len());
        let mut next = if top { 2u64 } else { 1u64 };
        for &l in lens {
            bases.push(next);
            next += l as u64;
        }
        Inodes {
            bases,
            lens: lens.iter().map(|&l| l as u64).collect(),
            top,
        }
    }

    /// True when a synthetic top directory lists several archives.
    pub fn has_top(&self) -> bool {
        self.top
    }

    /// The inode of entry `id` of `archive`.
    pub fn ino(&self, archive: usize, id: NodeId) -> u64 {
        self.bases.get(archive).copied().unwrap_or(0) + u64::from(id)
    }

    /// What inode `ino` names, if anything.
    pub fn resolve(&self, ino: u64) -> Option<Ino> {
        if ino == 1 && self.has_top() {
            return Some(Ino::Top);
        }
        let k = self.bases.partition_point(|&b| b <= ino).checked_sub(1)?;
        let off = ino - self.bases[k];
        if off < self.lens[k] {
            Some(Ino::Entry {
                archive: k,
                id: NodeId::try_from(off).ok()?,
            })
        } else {
            None
        }
    }
}

/// Ownership and block size shown on every entry.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// Owner uid (the mounting user).
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// `st_blksize` (preferred I/O size).
    pub blksize: u32,
}

fn time(secs: i64, nsec: u32) -> SystemTime {
    let nsec = nsec.min(999_999_999);
    if secs >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::new(secs as u64, nsec))
            .unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::new(secs.unsigned_abs(), 0))
            .and_then(|t| t.checked_add(Duration::new(0, nsec)))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// The kind of entry as FUSE names it.
pub fn file_type(kind: &Kind) -> FileType {
    match kind {
        Kind::Dir { .. } => FileType::Directory,
        Kind::File { .. } | Kind::External { .. } => FileType::RegularFile,
        Kind::Symlink { .. } => FileType::Symlink,
    }
}

/// The entry id whose inode a node shows (hard links share the first one's).
pub fn inode_id(id: NodeId, node: &Node) -> NodeId {
    match node.kind {
        Kind::File { inode, .. } => inode,
        _ => id,
    }
}

/// Attributes of archive entry `node`, shown as inode `ino`.
pub fn entry_attr(ino: u64, node: &Node, symlink_len: usize, owner: &Owner) -> FileAttr {
    let (size, nlink) = match node.kind {
        Kind::Dir { .. } => (0, 2),
        Kind::File { size, nlink, .. } => (size, nlink.max(1)),
        Kind::External { size, .. } => (size, 1),
        Kind::Symlink { .. } => (symlink_len as u64, 1),
    };
    let t = time(node.mtime, node.mtime_nsec);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: file_type(&node.kind),
        // Archives never carry setuid/setgid; mask again all the same.
        perm: node.mode & 0o1777,
        nlink,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: owner.blksize,
        flags: 0,
    }
}

/// Attributes of the synthetic top directory (`entries` directories in it).
pub fn top_attr(owner: &Owner, entries: usize) -> FileAttr {
    FileAttr {
        ino: INodeNo(1),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o555,
        nlink: 2 + entries as u32,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: owner.blksize,
        flags: 0,
    }
}

/// The archive root's entry id.
pub const ARCHIVE_ROOT: NodeId = ROOT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_archive_root_is_inode_one() {
        let i = Inodes::new(&[5], false);
        assert!(!i.has_top());
        assert_eq!(i.ino(0, 0), 1);
        assert_eq!(i.ino(0, 4), 5);
        assert_eq!(i.resolve(1), Some(Ino::Entry { archive: 0, id: 0 }));
        assert_eq!(i.resolve(5), Some(Ino::Entry { archive: 0, id: 4 }));
        assert_eq!(i.resolve(6), None);
        assert_eq!(i.resolve(0), None);
    }

    #[test]
    fn several_archives_share_one_numbering() {
        let i = Inodes::new(&[3, 2, 4], false);
        assert!(i.has_top());
        let cases = [
            (0, None),
            (1, Some(Ino::Top)),
            (2, Some(Ino::Entry { archive: 0, id: 0 })),
            (4, Some(Ino::Entry { archive: 0, id: 2 })),
            (5, Some(Ino::Entry { archive: 1, id: 0 })),
            (6, Some(Ino::Entry { archive: 1, id: 1 })),
            (7, Some(Ino::Entry { archive: 2, id: 0 })),
            (10, Some(Ino::Entry { archive: 2, id: 3 })),
            (11, None),
            (u64::MAX, None),
        ];
        for (ino, want) in cases {
            assert_eq!(i.resolve(ino), want, "ino {ino}");
            if let Some(Ino::Entry { archive, id }) = want {
                assert_eq!(i.ino(archive, id), ino);
            }
        }
    }

    #[test]
    fn one_named_archive_can_sit_under_a_top() {
        let i = Inodes::new(&[3], true);
        assert!(i.has_top());
        assert_eq!(i.resolve(1), Some(Ino::Top));
        assert_eq!(i.resolve(2), Some(Ino::Entry { archive: 0, id: 0 }));
        assert_eq!(i.ino(0, 2), 4);
        assert_eq!(i.resolve(5), None);
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        assert!(time(-5, 7) < UNIX_EPOCH);
        assert_eq!(
            time(0, 2_000_000_000),
            UNIX_EPOCH + Duration::new(0, 999_999_999)
        );
        let _ = time(i64::MIN, 0);
        let _ = time(i64::MAX, 0);
    }
}
