//! Directory operations: opendir and readdir, for the synthetic top
//! directory, archive directories and the results directory.
//!
//! Archive directories never change, so the kernel may cache their listings
//! (`FOPEN_CACHE_DIR`); the results and scratch directories' may not be
//! cached. A listing
//! is ".", "..", then the children in index order; offset `k` resumes after
//! entry `k - 1`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{FileHandle, FileType, FopenFlags, INodeNo, ReplyDirectory};

use crate::crypto::index::Kind;
use crate::crypto::Source;

use super::attr::{self, Ino};
use super::errors::FsError;
use super::output::{is_output, OUTPUT_INO};
use super::scratch::{is_scratch, SCRATCH_INO};
use super::Inner;

impl<S: Source + 'static> Inner<S> {
    pub(super) fn opendir(&self, ino: INodeNo) -> Result<(FileHandle, FopenFlags), FsError> {
        if self.getattr(ino)?.kind != FileType::Directory {
            return Err(FsError::NotDir);
        }
        let flags = if is_output(ino.0) || is_scratch(ino.0) {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
        };
        Ok((FileHandle(0), flags))
    }

    /// Adds the entries of directory `ino` from `offset` on to `reply`, as
    /// many as fit.
    pub(super) fn readdir(
        &self,
        ino: INodeNo,
        offset: u64,
        reply: &mut ReplyDirectory,
    ) -> Result<(), FsError> {
        let listed = match (self.output_of(ino.0), self.scratch_of(ino.0)) {
            (Some(o), _) => Some(o.readdir(ino.0, offset)?),
            (_, Some(s)) => Some(s.readdir(ino.0, offset)?),
            _ => None,
        };
        if let Some(entries) = listed {
            let end = offset + entries.len() as u64;
            fill(reply, offset, end, |idx| {
                let (i, kind, name) = entries.get((idx - offset) as usize)?;
                Some((*i, *kind, name.as_slice()))
            });
            return Ok(());
        }
        match self.resolve(ino)? {
            Ino::Top => {
                let out = self.output.as_ref().map(|o| o.name().as_bytes());
                let scratch = self.scratch.as_ref().map(|s| s.name().as_bytes());
                let extra: Vec<(u64, &[u8])> = [(OUTPUT_INO, out), (SCRATCH_INO, scratch)]
                    .into_iter()
                    .filter_map(|(i, n)| Some((i, n?)))
                    .collect();
                let total = 2 + self.names.len() as u64 + extra.len() as u64;
                fill(reply, offset, total, |idx| match idx {
                    0 => Some((1, FileType::Directory, b".")),
                    1 => Some((1, FileType::Directory, b"..")),
                    k => match self.names.get((k - 2) as usize) {
                        Some(n) => Some((
                            self.inodes.ino((k - 2) as usize, attr::ARCHIVE_ROOT),
                            FileType::Directory,
                            n.as_bytes(),
                        )),
                        None => extra
                            .get((k - 2) as usize - self.names.len())
                            .map(|&(i, n)| (i, FileType::Directory, n)),
                    },
                });
            }
            Ino::Entry { archive, id } => {
                let a = self.data.archives().get(archive).ok_or(FsError::NotFound)?;
                let tree = a.tree();
                let node = tree.node(id).ok_or(FsError::NotFound)?;
                if !matches!(node.kind, Kind::Dir { .. }) {
                    return Err(FsError::NotDir);
                }
                let kids = tree.children(id);
                let parent = if id == attr::ARCHIVE_ROOT && self.inodes.has_top() {
                    1
                } else {
                    self.inodes.ino(archive, node.parent)
                };
                fill(reply, offset, 2 + kids.len() as u64, |idx| match idx {
                    0 => Some((ino.0, FileType::Directory, b".")),
                    1 => Some((parent, FileType::Directory, b"..")),
                    k => {
                        let c = *kids.get((k - 2) as usize)?;
                        let cn = tree.node(c)?;
                        Some((
                            self.inodes.ino(archive, attr::inode_id(c, cn)),
                            attr::file_type(&cn.kind),
                            tree.name(c),
                        ))
                    }
                });
            }
        }
        Ok(())
    }
}

/// Adds entries `offset..total` as `entry` gives them (`None` ends the
/// listing early), each with the offset that resumes after it, until the
/// reply is full.
fn fill<'a>(
    reply: &mut ReplyDirectory,
    offset: u64,
    total: u64,
    entry: impl Fn(u64) -> Option<(u64, FileType, &'a [u8])>,
) {
    for idx in offset..total {
        let Some((ino, kind, name)) = entry(idx) else {
            break;
        };
        if reply.add(INodeNo(ino), idx + 1, kind, OsStr::from_bytes(name)) {
            break;
        }
    }
}
