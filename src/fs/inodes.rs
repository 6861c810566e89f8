//! The inode numbers of the three trees one mount serves: archive entries
//! from 1 up, then the scratch directory's from [`SCRATCH_INO`], then the
//! results directory's from [`OUTPUT_INO`]. A leaf module, so that every
//! part of the filesystem can tell the trees apart without importing them.

/// Inode of the output directory itself; its entries follow.
pub const OUTPUT_INO: u64 = 1 << 56;

/// Inode of the scratch directory itself; its entries follow (below the
/// results directory's numbers, far above any archive's).
pub const SCRATCH_INO: u64 = 1 << 55;

/// True if `ino` belongs to the output tree.
pub fn is_output(ino: u64) -> bool {
    ino >= OUTPUT_INO
}

/// True if `ino` belongs to the scratch tree.
pub fn is_scratch(ino: u64) -> bool {
    (SCRATCH_INO..OUTPUT_INO).contains(&ino)
}
