//! Read-ahead decisions per open file: pure arithmetic, table-tested.
//!
//! A handle whose reads follow each other (each starting where the previous
//! one ended, give or take a few chunks, since the kernel may send concurrent
//! or split reads slightly out of order) is sequential. For a sequential handle the
//! daemon keeps `window` data chunks beyond the current read loaded: once
//! `step` chunks of the window (at most half of it) are missing, the missing
//! part is handed to the prefetch pool, which loads it in pieces of about
//! `step` chunks, one backing read each, several in flight. A jump elsewhere
//! resets the state. The window is clipped to the file's own chunks.

use std::ops::Range;

use crate::crypto::offsets::Geometry;

/// Per-handle state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sequential {
    /// File offset of the previous read.
    last_start: u64,
    /// File offset just past the furthest read of the current streak.
    last_end: u64,
    /// Stream chunk index up to which prefetch has been requested.
    ahead_until: u64,
    /// Consecutive sequential reads.
    streak: u32,
}

/// Chunks a read may be away from the previous one's end and still count
/// as sequential.
const NEAR_CHUNKS: u64 = 4;

impl Sequential {
    /// Records a read of `len` bytes at file offset `off` of a file stored at
    /// stream offset `base` with `size` bytes; returns the stream chunks to
    /// prefetch now, if any. `window` is the read-ahead in chunks (0 = off);
    /// a refill is due once at least `step` chunks of it are missing (at
    /// least 1, at most half the window).
    /// Forgets that chunks from `chunk` on were requested (the pool refused
    /// them), so the next read asks again.
    pub fn unrequest(&mut self, chunk: u64) {
        self.ahead_until = self.ahead_until.min(chunk);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn on_read(
        &mut self,
        g: &Geometry,
        base: u64,
        size: u64,
        off: u64,
        len: u64,
        window: u64,
        step: u64,
    ) -> Option<Range<u64>> {
        if window == 0 || len == 0 {
            return None;
        }
        // "Near the last read" tolerates a few chunks of reordering (parallel
        // kernel requests) but not the window: with a deep window, random
        // reads would otherwise often look sequential and each start a
        // multi-MiB prefetch.
        // The kernel may also split one large read into two requests that
        // arrive in either order, so a read a little *before* the previous
        // one counts as near too, and never pulls the furthest end back.
        let slack = window.min(NEAR_CHUNKS).saturating_mul(g.chunk_size());
        let end = off.saturating_add(len);
        let near = off >= self.last_start.saturating_sub(slack)
            && off <= self.last_end.saturating_add(slack);
        if near {
            self.streak = self.streak.saturating_add(1);
            self.last_end = self.last_end.max(end);
        } else {
            self.streak = 0;
            self.ahead_until = 0;
            self.last_end = end;
        }
        self.last_start = off;
        if self.streak == 0 {
            return None;
        }
        let file_end = g.chunks_for(base, size).end;
        let cur_end = g
            .chunks_for(base.saturating_add(off), len)
            .end
            .min(file_end);
        let want_end = cur_end.saturating_add(window).min(file_end);
        let step = step.clamp(1, (window / 2).max(1));
        if self.ahead_until > cur_end.saturating_add(window - step).min(want_end) {
            return None;
        }
        let start = self.ahead_until.max(cur_end);
        if start >= want_end {
            return None;
        }
        self.ahead_until = want_end;
        Some(start..want_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u64 = 65536;

    #[test]
    fn sequential_reads_keep_a_window_ahead() {
        let g = Geometry::new(C as u32, 100 * C);
        let mut s = Sequential::default();
        // (offset, len, expected prefetch)
        let steps: &[(u64, u64, Option<Range<u64>>)] = &[
            (0, C, Some(1..5)),
            (C, C, None),           // 3 chunks still ahead, 1 missing
            (2 * C, C, Some(5..7)), // 2 missing = step: refill
            (3 * C, C, None),
            (4 * C, C, Some(7..9)),
            (5 * C, 2 * C, Some(9..11)),
        ];
        for (off, len, want) in steps {
            assert_eq!(
                s.on_read(&g, 0, 100 * C, *off, *len, 4, 2),
                *want,
                "read at {off}"
            );
        }
    }

    #[test]
    fn random_reads_near_each_other_do_not_look_sequential_with_a_deep_window() {
        let g = Geometry::new(C as u32, 10_000 * C);
        let mut s = Sequential::default();
        // 20 chunks apart: inside a 128-chunk window, but not sequential.
        assert!(s
            .on_read(&g, 0, 10_000 * C, 500 * C, 4096, 128, 64)
            .is_none());
        assert!(s
            .on_read(&g, 0, 10_000 * C, 520 * C, 4096, 128, 64)
            .is_none());
        assert!(s
            .on_read(&g, 0, 10_000 * C, 500 * C, 4096, 128, 64)
            .is_none());
        // Truly sequential: prefetch the window.
        assert_eq!(
            s.on_read(&g, 0, 10_000 * C, 500 * C + 4096, 4096, 128, 64),
            Some(501..629)
        );
    }

    #[test]
    fn random_reads_do_not_prefetch() {
        let g = Geometry::new(C as u32, 1000 * C);
        let mut s = Sequential::default();
        assert!(s.on_read(&g, 0, 1000 * C, 500 * C, 4096, 4, 2).is_none());
        assert!(s.on_read(&g, 0, 1000 * C, 100 * C, 4096, 4, 2).is_none());
        assert!(s.on_read(&g, 0, 1000 * C, 900 * C, 4096, 4, 2).is_none());
        // ... until reads become sequential again.
        assert_eq!(
            s.on_read(&g, 0, 1000 * C, 900 * C + 4096, 4096, 4, 2),
            Some(901..905)
        );
    }

    #[test]
    fn window_is_clipped_to_the_file_and_can_be_off() {
        let g = Geometry::new(C as u32, 100 * C);
        // File of 3.5 chunks stored at stream chunk 10.
        let (base, size) = (10 * C, 3 * C + C / 2);
        let mut s = Sequential::default();
        assert_eq!(s.on_read(&g, base, size, 0, C, 8, 4), Some(11..14));
        assert_eq!(s.on_read(&g, base, size, C, C, 8, 4), None);
        assert_eq!(s.on_read(&g, base, size, 3 * C, C / 2, 8, 4), None);
        let mut off = Sequential::default();
        assert_eq!(off.on_read(&g, base, size, 0, C, 0, 0), None);
    }

    #[test]
    fn small_reads_within_one_chunk_do_not_refetch() {
        let g = Geometry::new(C as u32, 100 * C);
        let mut s = Sequential::default();
        assert_eq!(s.on_read(&g, 0, 100 * C, 0, 4096, 2, 1), Some(1..3));
        for k in 1..16 {
            assert_eq!(
                s.on_read(&g, 0, 100 * C, k * 4096, 4096, 2, 1),
                None,
                "read {k}"
            );
        }
        // Chunk 1: one chunk of the window missing (the step).
        assert_eq!(s.on_read(&g, 0, 100 * C, C, 4096, 2, 1), Some(3..4));
        assert_eq!(s.on_read(&g, 0, 100 * C, C + 4096, 4096, 2, 1), None);
        assert_eq!(s.on_read(&g, 0, 100 * C, 2 * C, 4096, 2, 1), Some(4..5));
    }

    #[test]
    fn small_steps_keep_the_window_full() {
        let g = Geometry::new(C as u32, 1000 * C);
        let mut s = Sequential::default();
        // Window 8 chunks, refilled whenever 2 are missing.
        let steps: &[(u64, Option<Range<u64>>)] = &[
            (0, Some(1..9)),
            (1, None),        // 7 ahead: one missing
            (2, Some(9..11)), // 6 ahead: two missing
            (3, None),
            (4, Some(11..13)),
            (8, Some(13..17)), // a skip within 4 chunks is still sequential
        ];
        for (k, want) in steps {
            assert_eq!(
                s.on_read(&g, 0, 1000 * C, k * C, C, 8, 2),
                *want,
                "read of chunk {k}"
            );
        }
    }

    #[test]
    fn a_large_read_split_in_two_and_reordered_stays_sequential() {
        let g = Geometry::new(C as u32, 1000 * C);
        let mut s = Sequential::default();
        let m = 16 * C; // 1 MiB reads
        assert_eq!(s.on_read(&g, 0, 1000 * C, 0, m, 64, 16), Some(16..80));
        // The next 1 MiB read arrives as its second part first, then the first.
        let second = s.on_read(&g, 0, 1000 * C, m + 4096, m - 4096, 64, 16);
        assert_eq!(second, Some(80..96));
        assert_eq!(s.on_read(&g, 0, 1000 * C, m, 4096, 64, 16), None);
        // Reads go on from the furthest end: still sequential, and only the
        // missing piece is asked for (a reset would ask for 48..112 again).
        assert_eq!(s.on_read(&g, 0, 1000 * C, 2 * m, m, 64, 16), Some(96..112));
    }

    #[test]
    fn refused_pieces_are_asked_for_again() {
        let g = Geometry::new(C as u32, 1000 * C);
        let mut s = Sequential::default();
        assert_eq!(s.on_read(&g, 0, 1000 * C, 0, C, 8, 2), Some(1..9));
        s.unrequest(5); // 5..9 could not be queued
        assert_eq!(s.on_read(&g, 0, 1000 * C, C, C, 8, 2), Some(5..10));
    }
}
