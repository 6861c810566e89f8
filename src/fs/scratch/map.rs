//! Where each block of a scratch file is and which version it must have:
//! the in-memory state that makes the backing file's blocks authentic *and
//! fresh* (a block is opened only with the version recorded here).
//!
//! 12 bytes per block (a 64-bit version and a 32-bit slot), kept in a dense
//! vector from block 0 on as long as the file grows without large holes;
//! blocks far beyond the end of the dense part (a `pwrite` at a huge
//! offset) go into a sorted map instead, so a sparse file costs memory for
//! the blocks it has, not for its holes. Pure data structure, no I/O.

use std::collections::BTreeMap;
use std::ops::Range;

/// One block: its version (0: reads as zeros) and its slot (if any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    version: [u32; 2],
    slot: u32,
}

/// "No slot" (slots are `0..u32::MAX`).
const NO_SLOT: u32 = u32::MAX;

impl Entry {
    /// A hole: no slot, reads as zeros.
    pub const HOLE: Entry = Entry {
        version: [0, 0],
        slot: NO_SLOT,
    };

    /// Block data sealed as `version` in `slot`; version 0: the slot is
    /// reserved and the block reads as zeros.
    pub fn new(version: u64, slot: u32) -> Entry {
        Entry {
            version: [version as u32, (version >> 32) as u32],
            slot,
        }
    }

    /// The version the stored block must have (0: none stored).
    pub fn version(self) -> u64 {
        u64::from(self.version[0]) | (u64::from(self.version[1]) << 32)
    }

    /// Its slot, if it has one.
    pub fn slot(self) -> Option<u32> {
        (self.slot != NO_SLOT).then_some(self.slot)
    }
}

/// The blocks of one file.
#[derive(Debug, Default)]
pub struct BlockMap {
    dense: Vec<Entry>,
    sparse: BTreeMap<u64, Entry>,
}

/// The dense part grows to cover a block at most this many blocks (or its
/// own length, if larger) past its end; further blocks are sparse.
const GROW: u64 = 256;

impl BlockMap {
    /// Block `b`'s entry ([`Entry::HOLE`] if it has none).
    pub fn get(&self, b: u64) -> Entry {
        match usize::try_from(b).ok().and_then(|i| self.dense.get(i)) {
            Some(e) => *e,
            None => self.sparse.get(&b).copied().unwrap_or(Entry::HOLE),
        }
    }

    /// Sets block `b`'s entry.
    pub fn set(&mut self, b: u64, e: Entry) {
        let len = self.dense.len() as u64;
        if b < len {
            self.dense[b as usize] = e;
            return;
        }
        if b < len + GROW.max(len) {
            // Grow the dense part over b, taking in sparse entries it now covers.
            self.dense.resize(b as usize + 1, Entry::HOLE);
            let moved: Vec<(u64, Entry)> =
                self.sparse.range(len..=b).map(|(k, v)| (*k, *v)).collect();
            for (k, v) in moved {
                self.sparse.remove(&k);
                self.dense[k as usize] = v;
            }
            self.dense[b as usize] = e;
        } else if e == Entry::HOLE {
            self.sparse.remove(&b);
        } else {
            self.sparse.insert(b, e);
        }
    }

    /// Makes blocks `range` holes; their slots go to `freed`.
    pub fn clear(&mut self, range: Range<u64>, freed: &mut Vec<u32>) {
        let len = self.dense.len() as u64;
        for b in range.start..range.end.min(len) {
            let e = std::mem::replace(&mut self.dense[b as usize], Entry::HOLE);
            freed.extend(e.slot());
        }
        let keys: Vec<u64> = self.sparse.range(range).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(e) = self.sparse.remove(&k) {
                freed.extend(e.slot());
            }
        }
        // Trailing holes of the dense part cost memory for nothing.
        while self.dense.last() == Some(&Entry::HOLE) {
            self.dense.pop();
        }
        if self.dense.capacity() > 2 * self.dense.len() + 16 {
            self.dense.shrink_to_fit();
        }
    }

    /// Drops every block from `b` on (truncation); their slots go to `freed`.
    pub fn truncate(&mut self, b: u64, freed: &mut Vec<u32>) {
        self.clear(b..u64::MAX, freed);
    }

    /// Blocks that have a slot (stored or reserved).
    pub fn slots(&self) -> u64 {
        let d = self.dense.iter().filter(|e| e.slot().is_some()).count();
        (d + self.sparse.len()) as u64
    }

    /// Heap bytes this map holds (for the memory figures in docs/mount.md).
    pub fn heap_bytes(&self) -> usize {
        self.dense.capacity() * std::mem::size_of::<Entry>()
            + self.sparse.len() * (8 + std::mem::size_of::<Entry>() + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_versions_and_slots() {
        assert_eq!(std::mem::size_of::<Entry>(), 12);
        let e = Entry::new(0x1_2345_6789, 42);
        assert_eq!((e.version(), e.slot()), (0x1_2345_6789, Some(42)));
        assert_eq!((Entry::HOLE.version(), Entry::HOLE.slot()), (0, None));
        assert_eq!(Entry::new(0, 3).slot(), Some(3), "reserved");
        assert_eq!(Entry::new(u64::MAX, 0).version(), u64::MAX);
    }

    #[test]
    fn dense_growth_sparse_far_blocks_and_truncation() {
        let mut m = BlockMap::default();
        for b in 0..10 {
            m.set(b, Entry::new(b + 1, b as u32));
        }
        assert_eq!(m.dense.len(), 10);
        // A block a little past the end extends the dense part with holes.
        m.set(100, Entry::new(50, 50));
        assert_eq!(m.dense.len(), 101);
        assert_eq!(m.get(50), Entry::HOLE);
        // A block far away is sparse and costs one map entry.
        m.set(1 << 30, Entry::new(60, 60));
        assert_eq!(m.dense.len(), 101);
        assert_eq!(m.get(1 << 30).version(), 60);
        assert_eq!(m.slots(), 12);
        // Growing over sparse entries moves them into the dense part.
        m.set(300, Entry::new(70, 70));
        m.set(500, Entry::new(80, 80));
        assert_eq!(
            m.sparse.len(),
            1,
            "300 and 500 are within reach of a 301-block dense part"
        );
        assert_eq!(m.get(300).slot(), Some(70));
        assert_eq!(m.get(500).slot(), Some(80));
        // Truncation frees every slot from a block on.
        let mut freed = Vec::new();
        m.truncate(100, &mut freed);
        freed.sort_unstable();
        assert_eq!(freed, [50, 60, 70, 80]);
        assert_eq!(m.dense.len(), 10);
        assert_eq!(m.get(1 << 30), Entry::HOLE);
        // Clearing a range in the middle (punching a hole).
        freed.clear();
        m.clear(2..4, &mut freed);
        assert_eq!(freed, [2, 3]);
        assert_eq!(m.get(2), Entry::HOLE);
        assert_eq!(m.get(4).slot(), Some(4));
        m.truncate(0, &mut freed);
        assert_eq!((m.dense.len(), m.sparse.len(), m.slots()), (0, 0, 0));
    }

    #[test]
    fn holes_set_far_away_cost_nothing() {
        let mut m = BlockMap::default();
        m.set(1 << 40, Entry::HOLE);
        assert_eq!((m.dense.len(), m.sparse.len()), (0, 0));
        m.set(1 << 40, Entry::new(1, 1));
        m.set(1 << 40, Entry::HOLE);
        assert_eq!(m.sparse.len(), 0);
        assert!(m.heap_bytes() < 64);
    }
}
