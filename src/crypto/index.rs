//! The index: the archive's directory tree, serialised into the index stream.
//!
//! FORMAT.md "Index". Entries are numbered from 0 (the root directory); every
//! entry names its parent, which must be an earlier directory, so a tree can
//! be checked in one pass. The reader keeps the parsed [`Tree`] in memory:
//! per directory a name-sorted child list for `lookup`, per file its extent in
//! the data stream. [`TreeBuilder`] is the writer side and owns the layout
//! policy (small files packed back to back, large files chunk-aligned).

use std::collections::HashSet;

use super::external::External;
use super::le::Le;
use super::Error;

/// Entry kind codes in the serialised index.
const KIND_DIR: u8 = 1;
const KIND_FILE: u8 = 2;
const KIND_SYMLINK: u8 = 3;
const KIND_HARDLINK: u8 = 4;
/// A file whose bytes are an external Crypt4GH file (FORMAT.md "External
/// Crypt4GH files", required feature bit 1).
const KIND_EXTERNAL: u8 = 5;

/// Permission bits an archive may carry: rwx for all, plus sticky. Never
/// setuid or setgid.
pub const MODE_MASK: u16 = 0o1777;
/// Longest name component.
pub const MAX_NAME: usize = 255;
/// Longest symlink target.
pub const MAX_TARGET: usize = 4096;

/// Id of an entry (its position in the index; 0 is the root).
pub type NodeId = u32;
/// The root directory.
pub const ROOT: NodeId = 0;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory; its children are `Tree::children(id)`.
    Dir {
        /// Start of the children in the shared child list.
        first: u32,
        /// Number of children.
        count: u32,
    },
    /// A regular file stored at `offset..offset + size` of the data stream.
    File {
        /// Offset in the data stream.
        offset: u64,
        /// Size in bytes.
        size: u64,
        /// Entry id shared by all hard links of this file (the first one).
        inode: NodeId,
        /// Number of names this file has.
        nlink: u32,
    },
    /// A symbolic link (its target is `Tree::symlink_target`).
    Symlink {
        /// Start of the target in the shared byte buffer.
        start: usize,
        /// Target length.
        len: usize,
    },
    /// A regular file whose bytes are an external Crypt4GH file
    /// (`Tree::external(ext)`), not in the data stream.
    External {
        /// Its ordinal among the external entries (index order).
        ext: u32,
        /// Bytes the file shows (the Crypt4GH plaintext after its edit list).
        size: u64,
    },
}

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Parent directory (the root is its own parent).
    pub parent: NodeId,
    /// Permission bits (within [`MODE_MASK`]).
    pub mode: u16,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// Kind and kind-specific data.
    pub kind: Kind,
    name_start: usize,
    name_len: u16,
}

/// A parsed, validated index.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: Vec<Node>,
    bytes: Vec<u8>,
    children: Vec<NodeId>,
    /// Records of the external files, by ordinal (`Debug` hides their paths
    /// and keys).
    externals: Vec<External>,
}

impl Tree {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true for a parsed tree (it has a root).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The entry `id`, if it exists.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    /// The entry's name (empty for the root).
    pub fn name(&self, id: NodeId) -> &[u8] {
        match self.nodes.get(id as usize) {
            Some(n) => &self.bytes[n.name_start..n.name_start + n.name_len as usize],
            None => &[],
        }
    }

    /// The target of a symlink entry.
    pub fn symlink_target(&self, id: NodeId) -> Option<&[u8]> {
        match self.nodes.get(id as usize)?.kind {
            Kind::Symlink { start, len } => Some(&self.bytes[start..start + len]),
            _ => None,
        }
    }

    /// The children of a directory, sorted by name (empty for non-directories).
    pub fn children(&self, id: NodeId) -> &[NodeId] {
        match self.nodes.get(id as usize).map(|n| &n.kind) {
            Some(Kind::Dir { first, count }) => {
                &self.children[*first as usize..(*first + *count) as usize]
            }
            _ => &[],
        }
    }

    /// Finds `name` in directory `dir`.
    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        let kids = self.children(dir);
        kids.binary_search_by(|&c| self.name(c).cmp(name))
            .ok()
            .map(|i| kids[i])
    }

    /// Resolves a `/`-separated relative path (no symlinks followed).
    pub fn resolve(&self, path: &str) -> Option<NodeId> {
        let mut cur = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            cur = self.lookup(cur, part.as_bytes())?;
        }
        Some(cur)
    }

    /// The path of `id` relative to the root (`""` for the root).
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            parts.push(self.name(cur));
            cur = match self.nodes.get(cur as usize) {
                Some(n) => n.parent,
                None => break,
            };
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// The record of external file `ext` (`Kind::External::ext`).
    pub fn external(&self, ext: u32) -> Option<&External> {
        self.externals.get(ext as usize)
    }

    /// Every external file record, by ordinal.
    pub fn externals(&self) -> &[External] {
        &self.externals
    }

    /// Number of regular-file entries (hard links counted once per name).
    pub fn file_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::File { .. } | Kind::External { .. }))
            .count()
    }

    /// Parses and validates a serialised index against a data stream of
    /// `data_len` bytes.
    pub fn parse(bytes: &[u8], data_len: u64) -> Result<Tree, Error> {
        let bad = |why: &str| Error::IndexInvalid(why.to_string());
        let mut r = Le::new(bytes, 0, || {
            Error::IndexInvalid("index ends inside an entry".into())
        });
        let count = r.u32()? as usize;
        if count == 0 {
            return Err(bad("no root entry"));
        }
        // Each entry takes at least 21 bytes: refuse counts the bytes cannot hold.
        if count > bytes.len() / 21 {
            return Err(bad("entry count larger than the index"));
        }
        let mut tree = Tree {
            nodes: Vec::with_capacity(count),
            bytes: Vec::new(),
            children: Vec::new(),
            externals: Vec::new(),
        };
        // Children per directory, collected in entry order, sorted afterwards.
        let mut kids: Vec<Vec<NodeId>> = Vec::new();
        let mut dir_slot: Vec<u32> = Vec::with_capacity(count);
        let mut nlinks: Vec<(NodeId, NodeId)> = Vec::new();
        for id in 0..count as u32 {
            let kind = r.u8()?;
            let parent = r.u32()?;
            let mode = r.u16()?;
            let mtime = r.u64()? as i64;
            let mtime_nsec = r.u32()?;
            let name_len = r.u16()? as usize;
            let name = r.take(name_len)?;
            if mode & !MODE_MASK != 0 {
                return Err(bad("mode has setuid, setgid or unknown bits"));
            }
            if mtime_nsec >= 1_000_000_000 {
                return Err(bad("mtime nanoseconds out of range"));
            }
            if id == ROOT {
                if kind != KIND_DIR || parent != ROOT || !name.is_empty() {
                    return Err(bad("entry 0 is not the root directory"));
                }
            } else {
                if parent >= id || tree.nodes[parent as usize].kind_code() != KIND_DIR {
                    return Err(bad("parent is not an earlier directory"));
                }
                check_name(name).map_err(&bad)?;
            }
            let name_start = tree.bytes.len();
            tree.bytes.extend_from_slice(name);
            let kind = match kind {
                KIND_DIR => {
                    dir_slot.push(kids.len() as u32);
                    kids.push(Vec::new());
                    Kind::Dir { first: 0, count: 0 }
                }
                KIND_FILE => {
                    dir_slot.push(u32::MAX);
                    let offset = r.u64()?;
                    let size = r.u64()?;
                    if offset.checked_add(size).is_none_or(|e| e > data_len) {
                        return Err(bad("file extent outside the data stream"));
                    }
                    Kind::File {
                        offset,
                        size,
                        inode: id,
                        nlink: 1,
                    }
                }
                KIND_SYMLINK => {
                    dir_slot.push(u32::MAX);
                    let len = r.u32()? as usize;
                    if len == 0 || len > MAX_TARGET {
                        return Err(bad("symlink target empty or too long"));
                    }
                    let t = r.take(len)?;
                    if t.contains(&0) {
                        return Err(bad("symlink target contains NUL"));
                    }
                    let start = tree.bytes.len();
                    tree.bytes.extend_from_slice(t);
                    Kind::Symlink { start, len }
                }
                KIND_EXTERNAL => {
                    dir_slot.push(u32::MAX);
                    let size = r.u64()?;
                    let ext = External::parse(&mut r)?;
                    if ext.tags_offset() + ext.tags_len() > data_len {
                        return Err(bad("segment tag table outside the data stream"));
                    }
                    if size > ext.raw_len() {
                        return Err(bad("external file larger than its Crypt4GH plaintext"));
                    }
                    let n = u32::try_from(tree.externals.len())
                        .map_err(|_| bad("too many external files"))?;
                    tree.externals.push(ext);
                    Kind::External { ext: n, size }
                }
                KIND_HARDLINK => {
                    dir_slot.push(u32::MAX);
                    let target = r.u32()?;
                    let t = tree
                        .nodes
                        .get(target as usize)
                        .filter(|_| target < id)
                        .ok_or_else(|| bad("hard link to a later or missing entry"))?;
                    match t.kind {
                        Kind::File {
                            offset,
                            size,
                            inode,
                            ..
                        } => {
                            nlinks.push((inode, id));
                            Kind::File {
                                offset,
                                size,
                                inode,
                                nlink: 1,
                            }
                        }
                        _ => return Err(bad("hard link to a non-file")),
                    }
                }
                _ => return Err(bad("unknown entry kind")),
            };
            if id != ROOT {
                kids[dir_slot[parent as usize] as usize].push(id);
            }
            tree.nodes.push(Node {
                parent,
                mode,
                mtime,
                mtime_nsec,
                kind,
                name_start,
                name_len: name_len as u16,
            });
        }
        if r.pos() != bytes.len() {
            return Err(bad("trailing bytes after the last entry"));
        }
        // Hard links share mode and mtime with their inode, and count names.
        if !nlinks.is_empty() {
            let mut counts = std::collections::HashMap::<NodeId, u32>::new();
            for &(inode, _) in &nlinks {
                *counts.entry(inode).or_insert(1) += 1;
            }
            for (&inode, &n) in &counts {
                if let Kind::File { nlink, .. } = &mut tree.nodes[inode as usize].kind {
                    *nlink = n;
                }
            }
            for &(inode, link) in &nlinks {
                let t = &tree.nodes[inode as usize];
                let (mode, mtime, mtime_nsec, n) = (t.mode, t.mtime, t.mtime_nsec, counts[&inode]);
                let node = &mut tree.nodes[link as usize];
                node.mode = mode;
                node.mtime = mtime;
                node.mtime_nsec = mtime_nsec;
                if let Kind::File { nlink, .. } = &mut node.kind {
                    *nlink = n;
                }
            }
        }
        // Sort children by name and refuse duplicates.
        for (id, slot) in dir_slot.iter().enumerate() {
            if *slot == u32::MAX {
                continue;
            }
            let mut list = std::mem::take(&mut kids[*slot as usize]);
            list.sort_unstable_by(|&a, &b| tree.name(a).cmp(tree.name(b)));
            if list.windows(2).any(|w| tree.name(w[0]) == tree.name(w[1])) {
                return Err(bad("duplicate name in a directory"));
            }
            let first = tree.children.len() as u32;
            let count = list.len() as u32;
            tree.children.extend_from_slice(&list);
            tree.nodes[id].kind = Kind::Dir { first, count };
        }
        Ok(tree)
    }
}

impl Node {
    fn kind_code(&self) -> u8 {
        match self.kind {
            Kind::Dir { .. } => KIND_DIR,
            Kind::File { .. } => KIND_FILE,
            Kind::Symlink { .. } => KIND_SYMLINK,
            Kind::External { .. } => KIND_EXTERNAL,
        }
    }

    /// Size as `stat` reports it: file size, target length, or 0.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size, .. } | Kind::External { size, .. } => size,
            Kind::Symlink { len, .. } => len as u64,
            Kind::Dir { .. } => 0,
        }
    }
}

/// Checks one path component.
pub fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("name empty or longer than 255 bytes");
    }
    if name == b"." || name == b".." {
        return Err("name is . or ..");
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err("name contains / or NUL");
    }
    Ok(())
}

/// A file's place in the data stream, as the writer must fill it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    /// The file entry.
    pub node: NodeId,
    /// Offset in the data stream.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
}

enum Pending {
    Dir,
    File { size: u64 },
    External { size: u64, ext: Box<External> },
    Symlink { target: Vec<u8> },
    HardLink { target: NodeId },
}

struct PendingEntry {
    parent: NodeId,
    name: Vec<u8>,
    mode: u16,
    mtime: i64,
    mtime_nsec: u32,
    what: Pending,
}

/// Builds an index entry by entry, then lays out the data stream.
pub struct TreeBuilder {
    entries: Vec<PendingEntry>,
    names: Vec<HashSet<Vec<u8>>>,
    dir_of: Vec<u32>,
}

/// Why an entry could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub &'static str);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder::new(0o755, 0, 0)
    }
}

impl TreeBuilder {
    /// A builder whose root directory has `mode` and `mtime`.
    pub fn new(mode: u16, mtime: i64, mtime_nsec: u32) -> TreeBuilder {
        TreeBuilder {
            entries: vec![PendingEntry {
                parent: ROOT,
                name: Vec::new(),
                mode: mode & MODE_MASK,
                mtime,
                mtime_nsec: mtime_nsec.min(999_999_999),
                what: Pending::Dir,
            }],
            names: vec![HashSet::new()],
            dir_of: vec![0],
        }
    }

    fn push(
        &mut self,
        parent: NodeId,
        name: &[u8],
        mode: u16,
        mtime: (i64, u32),
        what: Pending,
    ) -> Result<NodeId, BuildError> {
        check_name(name).map_err(BuildError)?;
        let slot = *self
            .dir_of
            .get(parent as usize)
            .filter(|s| **s != u32::MAX)
            .ok_or(BuildError("parent is not a directory"))?;
        if !self.names[slot as usize].insert(name.to_vec()) {
            return Err(BuildError("duplicate name in directory"));
        }
        let id = u32::try_from(self.entries.len()).map_err(|_| BuildError("too many entries"))?;
        if matches!(what, Pending::Dir) {
            self.dir_of.push(self.names.len() as u32);
            self.names.push(HashSet::new());
        } else {
            self.dir_of.push(u32::MAX);
        }
        self.entries.push(PendingEntry {
            parent,
            name: name.to_vec(),
            mode: mode & MODE_MASK,
            mtime: mtime.0,
            mtime_nsec: mtime.1.min(999_999_999),
            what,
        });
        Ok(id)
    }

    /// Entries added so far, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: the root is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Adds a directory.
    pub fn dir(
        &mut self,
        parent: NodeId,
        name: &[u8],
        mode: u16,
        mtime: (i64, u32),
    ) -> Result<NodeId, BuildError> {
        self.push(parent, name, mode, mtime, Pending::Dir)
    }

    /// Adds a regular file of `size` bytes.
    pub fn file(
        &mut self,
        parent: NodeId,
        name: &[u8],
        mode: u16,
        mtime: (i64, u32),
        size: u64,
    ) -> Result<NodeId, BuildError> {
        self.push(parent, name, mode, mtime, Pending::File { size })
    }

    /// Adds a file of `size` bytes whose bytes are the external Crypt4GH
    /// file `ext` (its tag table is placed by [`TreeBuilder::finish`]).
    pub fn external(
        &mut self,
        parent: NodeId,
        name: &[u8],
        mode: u16,
        mtime: (i64, u32),
        size: u64,
        ext: External,
    ) -> Result<NodeId, BuildError> {
        if size > ext.raw_len() {
            return Err(BuildError(
                "external file larger than its Crypt4GH plaintext",
            ));
        }
        self.push(
            parent,
            name,
            mode,
            mtime,
            Pending::External {
                size,
                ext: Box::new(ext),
            },
        )
    }

    /// Adds a symlink.
    pub fn symlink(
        &mut self,
        parent: NodeId,
        name: &[u8],
        mtime: (i64, u32),
        target: &[u8],
    ) -> Result<NodeId, BuildError> {
        if target.is_empty() || target.len() > MAX_TARGET || target.contains(&0) {
            return Err(BuildError(
                "symlink target empty, too long, or contains NUL",
            ));
        }
        self.push(
            parent,
            name,
            0o777,
            mtime,
            Pending::Symlink {
                target: target.to_vec(),
            },
        )
    }

    /// Adds another name for the file entry `target`.
    pub fn hard_link(
        &mut self,
        parent: NodeId,
        name: &[u8],
        target: NodeId,
    ) -> Result<NodeId, BuildError> {
        match self.entries.get(target as usize).map(|e| &e.what) {
            Some(Pending::File { .. }) => {}
            _ => return Err(BuildError("hard link target is not a file")),
        }
        self.push(parent, name, 0, (0, 0), Pending::HardLink { target })
    }

    /// Lays out the data stream and serialises the index. Returns the index
    /// bytes, the extents in stream order (what the writer must read, in that
    /// order, with zero padding between them), and the data stream length.
    /// The extent of an external file is its segment tag table.
    ///
    /// Layout policy (not part of the format; readers accept any layout):
    /// files smaller than `chunk_size` are packed back to back, in entry order,
    /// so millions of small files cost no chunk each; each larger file then
    /// starts on a chunk boundary, so an aligned read of it touches the fewest
    /// chunks.
    pub fn finish(self, chunk_size: u32) -> (Vec<u8>, Vec<Extent>, u64) {
        let cs = u64::from(chunk_size);
        let mut offsets = vec![0u64; self.entries.len()];
        let mut extents = Vec::new();
        let mut pos = 0u64;
        for small in [true, false] {
            for (id, e) in self.entries.iter().enumerate() {
                if let Pending::File { size } = e.what {
                    if (size < cs) != small || size == 0 {
                        continue;
                    }
                    if !small {
                        pos = pos.div_ceil(cs) * cs;
                    }
                    offsets[id] = pos;
                    extents.push(Extent {
                        node: id as NodeId,
                        offset: pos,
                        size,
                    });
                    pos += size;
                }
            }
        }
        // Then the segment tag tables of external files, in index order.
        for (id, e) in self.entries.iter().enumerate() {
            if let Pending::External { ext, .. } = &e.what {
                offsets[id] = pos;
                if ext.tags_len() > 0 {
                    extents.push(Extent {
                        node: id as NodeId,
                        offset: pos,
                        size: ext.tags_len(),
                    });
                }
                pos += ext.tags_len();
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (id, e) in self.entries.iter().enumerate() {
            let code = match e.what {
                Pending::Dir => KIND_DIR,
                Pending::File { .. } => KIND_FILE,
                Pending::Symlink { .. } => KIND_SYMLINK,
                Pending::HardLink { .. } => KIND_HARDLINK,
                Pending::External { .. } => KIND_EXTERNAL,
            };
            out.push(code);
            out.extend_from_slice(&e.parent.to_le_bytes());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.mtime.to_le_bytes());
            out.extend_from_slice(&e.mtime_nsec.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&e.name);
            match &e.what {
                Pending::Dir => {}
                Pending::File { size } => {
                    out.extend_from_slice(&offsets[id].to_le_bytes());
                    out.extend_from_slice(&size.to_le_bytes());
                }
                Pending::Symlink { target } => {
                    out.extend_from_slice(&(target.len() as u32).to_le_bytes());
                    out.extend_from_slice(target);
                }
                Pending::HardLink { target } => out.extend_from_slice(&target.to_le_bytes()),
                Pending::External { size, ext } => {
                    out.extend_from_slice(&size.to_le_bytes());
                    ext.as_ref()
                        .clone()
                        .with_tags_offset(offsets[id])
                        .encode(&mut out);
                }
            }
        }
        (out, extents, pos)
    }
}

#[cfg(test)]
mod tests;
