//! Pure arithmetic of a Crypt4GH file: where each segment lives, how much
//! plaintext there is, and which bytes an edit list keeps. No I/O and no
//! keys here; everything is table-tested.
//!
//! The data after the header is a run of encrypted segments, each
//! [`CIPHER_SEGMENT_SIZE`] bytes except the last, which holds 1..=65 536
//! plaintext bytes (an empty file has no segment at all). The *raw*
//! plaintext is the segments' plaintexts concatenated; the *visible*
//! plaintext is what an edit list keeps of it: lengths alternate skip,
//! keep, skip, keep …; a list that ends on a skip keeps everything after
//! it, one that ends on a keep drops the rest. Ranges that run past the end
//! of the raw plaintext are cut there (the spec's `substr`).

use std::ops::Range;

use super::{Error, CIPHER_SEGMENT_SIZE, MAX_EDIT_LENGTHS, SEGMENT_OVERHEAD, SEGMENT_SIZE};

const SEG: u64 = SEGMENT_SIZE as u64;
const CSEG: u64 = CIPHER_SEGMENT_SIZE as u64;
const OVER: u64 = SEGMENT_OVERHEAD as u64;

/// Where the segments of one file are: the header length and the
/// ciphertext that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    header_len: u64,
    segments: u64,
    raw_len: u64,
}

impl Layout {
    /// The layout of a file whose header is `header_len` bytes and whose
    /// whole length is `file_len`. Fails when the data is not a whole number
    /// of segments (a last segment of 1..=28 bytes cannot exist).
    pub fn new(header_len: u64, file_len: u64) -> Result<Layout, Error> {
        let body = file_len
            .checked_sub(header_len)
            .ok_or(Error::HeaderTruncated)?;
        let (full, rem) = (body / CSEG, body % CSEG);
        let (segments, raw_len) = match rem {
            0 => (full, full * SEG),
            1..=OVER => return Err(Error::BadBodyLength(rem)),
            _ => (full + 1, full * SEG + rem - OVER),
        };
        Ok(Layout {
            header_len,
            segments,
            raw_len,
        })
    }

    /// The layout of `raw_len` plaintext bytes behind a `header_len`-byte
    /// header (what a writer produces).
    pub fn for_plaintext(header_len: u64, raw_len: u64) -> Layout {
        Layout {
            header_len,
            segments: raw_len.div_ceil(SEG),
            raw_len,
        }
    }

    /// Bytes of header before the first segment.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Number of segments.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Raw plaintext bytes (before any edit list).
    pub fn raw_len(&self) -> u64 {
        self.raw_len
    }

    /// Total file length.
    pub fn file_len(&self) -> u64 {
        self.header_len + self.raw_len + self.segments * OVER
    }

    /// Plaintext bytes in segment `i` (0 when `i` is past the end).
    pub fn segment_plain_len(&self, i: u64) -> usize {
        self.raw_len.saturating_sub(i.saturating_mul(SEG)).min(SEG) as usize
    }

    /// File offsets of segment `i`'s `nonce ‖ ciphertext ‖ MAC`
    /// (`i < segments()`).
    pub fn segment_range(&self, i: u64) -> Range<u64> {
        let start = self.header_len + i * CSEG;
        start..start + self.segment_plain_len(i) as u64 + OVER
    }
}

/// A validated edit list: at most [`MAX_EDIT_LENGTHS`] byte counts that
/// alternate skip and keep, starting with a skip. `Debug` shows only how
/// many lengths there are (they reveal sizes of the plaintext).
#[derive(Clone, PartialEq, Eq)]
pub struct EditList(Vec<u64>);

impl std::fmt::Debug for EditList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EditList({} lengths)", self.0.len())
    }
}

impl EditList {
    /// An edit list from its lengths (skip, keep, skip, …).
    pub fn new(lengths: Vec<u64>) -> Result<EditList, Error> {
        if lengths.len() > MAX_EDIT_LENGTHS as usize {
            return Err(Error::EditListTooLong(lengths.len() as u64));
        }
        Ok(EditList(lengths))
    }

    /// The lengths, as stored in the header.
    pub fn lengths(&self) -> &[u64] {
        &self.0
    }

    /// The kept ranges of a raw plaintext of `raw_len` bytes, in order,
    /// non-empty and cut at `raw_len` (pass `u64::MAX` when the length is
    /// not known yet, as when streaming).
    pub fn kept(&self, raw_len: u64) -> Vec<Range<u64>> {
        if self.0.is_empty() {
            return non_empty(0..raw_len).into_iter().collect();
        }
        let mut out = Vec::with_capacity(self.0.len() / 2 + 1);
        let mut pos = 0u64;
        let mut it = self.0.iter();
        while let Some(&skip) = it.next() {
            pos = pos.saturating_add(skip);
            let end = match it.next() {
                Some(&keep) => pos.saturating_add(keep),
                None => u64::MAX,
            };
            out.extend(non_empty(pos.min(raw_len)..end.min(raw_len)));
            pos = end;
        }
        out
    }

    /// The spec's `ApplyEditList`: the bytes of `raw` this list keeps.
    pub fn apply(&self, raw: &[u8]) -> Vec<u8> {
        self.kept(raw.len() as u64)
            .into_iter()
            .flat_map(|r| &raw[r.start as usize..r.end as usize])
            .copied()
            .collect()
    }
}

fn non_empty(r: Range<u64>) -> Option<Range<u64>> {
    (r.start < r.end).then_some(r)
}

/// A run of plaintext inside one segment: `segment`'s decrypted bytes
/// `within` are the next bytes of a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Segment index.
    pub segment: u64,
    /// Byte range in that segment's plaintext.
    pub within: Range<usize>,
}

/// Maps the visible plaintext (after the edit list) to raw plaintext and
/// segments, for random access. `Debug` shows only the extent count.
#[derive(Clone)]
pub struct PlainMap {
    /// `(visible start, raw range)` of every kept range, in order.
    extents: Vec<(u64, Range<u64>)>,
    len: u64,
}

impl std::fmt::Debug for PlainMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainMap({} extents)", self.extents.len())
    }
}

impl PlainMap {
    /// The map of a raw plaintext of `raw_len` bytes under `edits`.
    pub fn new(edits: Option<&EditList>, raw_len: u64) -> PlainMap {
        let kept = match edits {
            Some(e) => e.kept(raw_len),
            None => non_empty(0..raw_len).into_iter().collect(),
        };
        let mut len = 0u64;
        let extents = kept
            .into_iter()
            .map(|r| {
                let start = len;
                len += r.end - r.start;
                (start, r)
            })
            .collect();
        PlainMap { extents, len }
    }

    /// Visible plaintext bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is visible.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces of segments that hold visible bytes `range` (cut at
    /// [`PlainMap::len`]), in order: concatenated they are exactly those
    /// bytes. Two pieces may come from one segment when two kept ranges
    /// share it.
    pub fn pieces(&self, range: Range<u64>) -> Vec<Piece> {
        let (start, end) = (range.start, range.end.min(self.len));
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        // first extent whose visible end is past `start`
        let first = self
            .extents
            .partition_point(|(vs, r)| vs + (r.end - r.start) <= start);
        for (vs, raw) in &self.extents[first..] {
            if *vs >= end {
                break;
            }
            let from = raw.start + start.saturating_sub(*vs);
            let to = raw.start + (end - vs).min(raw.end - raw.start);
            split_at_segments(from..to, &mut out);
        }
        out
    }
}

/// Cuts raw plaintext range `r` at segment boundaries.
fn split_at_segments(r: Range<u64>, out: &mut Vec<Piece>) {
    let mut pos = r.start;
    while pos < r.end {
        let segment = pos / SEG;
        let seg_end = (segment + 1) * SEG;
        let stop = r.end.min(seg_end);
        let base = segment * SEG;
        out.push(Piece {
            segment,
            within: (pos - base) as usize..(stop - base) as usize,
        });
        pos = stop;
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // tables of kept ranges
mod tests {
    use super::*;

    #[test]
    fn layout_from_file_length() {
        // (body length, segments, raw length)
        let ok: &[(u64, u64, u64)] = &[
            (0, 0, 0),
            (29, 1, 1),
            (CSEG, 1, SEG),
            (CSEG + 29, 2, SEG + 1),
            (3 * CSEG + 7 + OVER, 4, 3 * SEG + 7),
        ];
        for &(body, segments, raw) in ok {
            let l = Layout::new(100, 100 + body).unwrap();
            assert_eq!((l.segments(), l.raw_len()), (segments, raw), "body {body}");
            assert_eq!(l.file_len(), 100 + body);
            assert_eq!(Layout::for_plaintext(100, raw), l);
        }
        for body in [1, 28, CSEG + 1, CSEG + 28] {
            let rem = body % CSEG;
            assert!(
                matches!(Layout::new(0, body), Err(Error::BadBodyLength(r)) if r == rem),
                "body {body}"
            );
        }
        assert!(matches!(Layout::new(10, 9), Err(Error::HeaderTruncated)));
    }

    #[test]
    fn segment_ranges() {
        let l = Layout::for_plaintext(50, 2 * SEG + 10);
        assert_eq!(l.segments(), 3);
        assert_eq!(l.segment_range(0), 50..50 + CSEG);
        assert_eq!(l.segment_range(1), 50 + CSEG..50 + 2 * CSEG);
        assert_eq!(l.segment_range(2), 50 + 2 * CSEG..50 + 2 * CSEG + 10 + OVER);
        assert_eq!(l.segment_plain_len(2), 10);
        assert_eq!(l.segment_plain_len(3), 0);
        assert_eq!(l.segment_range(2).end, l.file_len());
    }

    #[test]
    fn edit_list_kept_ranges() {
        // (lengths, raw length, kept)
        type Case = (&'static [u64], u64, &'static [Range<u64>]);
        let cases: &[Case] = &[
            (&[], 10, &[0..10]),
            (&[3], 10, &[3..10]),
            (&[3, 4], 10, &[3..7]),
            (&[0, 4, 2], 10, &[0..4, 6..10]),
            (&[0, 4, 2, 1], 10, &[0..4, 6..7]),
            (&[20], 10, &[]),
            (&[5, 20], 10, &[5..10]),
            (&[2, 0, 3, 1], 10, &[5..6]),
            // the spec's worked example (ChrII), lengths summing past the end
            (
                &[0, 7853, 71721, 307929, 51299, 38],
                65_536 + 327_680 + 45_624,
                &[0..7853, 79_574..387_503, 438_802..438_840],
            ),
            (&[u64::MAX, 1, 1], 10, &[]),
            (&[1, u64::MAX, 5], 10, &[1..10]),
        ];
        for (lengths, raw, kept) in cases {
            let e = EditList::new(lengths.to_vec()).unwrap();
            assert_eq!(e.kept(*raw), *kept, "{lengths:?}");
        }
        assert!(EditList::new(vec![1; MAX_EDIT_LENGTHS as usize]).is_ok());
        assert!(matches!(
            EditList::new(vec![1; MAX_EDIT_LENGTHS as usize + 1]),
            Err(Error::EditListTooLong(_))
        ));
        assert_eq!(
            format!("{:?}", EditList::new(vec![5, 7]).unwrap()),
            "EditList(2 lengths)"
        );
    }

    /// The spec's ApplyEditList pseudo-code, line by line.
    fn spec_apply(edlist: &[u64], input: &[u8]) -> Vec<u8> {
        if edlist.is_empty() {
            return input.to_vec();
        }
        let substr = |pos: u64, n: u64| {
            let a = pos.min(input.len() as u64) as usize;
            let b = pos.saturating_add(n).min(input.len() as u64) as usize;
            input[a..b].to_vec()
        };
        let (mut output, mut pos, len) = (Vec::new(), 0u64, input.len() as u64);
        let mut list = edlist.iter();
        while let Some(&discard) = list.next() {
            pos = pos.saturating_add(discard);
            match list.next() {
                None => output.extend(substr(pos, len.saturating_sub(pos))),
                Some(&keep) => {
                    output.extend(substr(pos, keep));
                    pos = pos.saturating_add(keep);
                }
            }
        }
        output
    }

    #[test]
    fn apply_is_the_spec_algorithm() {
        let raw: Vec<u8> = (0..200u8).collect();
        let lists: &[&[u64]] = &[
            &[],
            &[0],
            &[7],
            &[0, 0],
            &[3, 5],
            &[3, 5, 2],
            &[1, 1, 1, 1, 1, 1, 1],
            &[190, 20],
            &[250],
            &[0, 300, 4],
            &[u64::MAX, 3],
        ];
        for lengths in lists {
            let e = EditList::new(lengths.to_vec()).unwrap();
            for cut in [0, 1, 10, 199, 200] {
                assert_eq!(
                    e.apply(&raw[..cut]),
                    spec_apply(lengths, &raw[..cut]),
                    "{lengths:?} {cut}"
                );
            }
        }
    }

    /// Visible bytes `r` of `raw`, gathered through `m.pieces`.
    fn through_pieces(m: &PlainMap, raw: &[u8], r: Range<u64>) -> Vec<u8> {
        m.pieces(r)
            .into_iter()
            .flat_map(|p| {
                let base = p.segment as usize * SEGMENT_SIZE;
                raw[base + p.within.start..base + p.within.end].to_vec()
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// Random edit lists and reads: the pieces are exactly the bytes `apply` keeps.
        #[test]
        fn pieces_match_apply(
            lengths in proptest::collection::vec(0u64..3 * SEG, 0..7),
            raw_len in 0usize..4 * SEGMENT_SIZE,
            a: u64,
            n in 0u64..3 * SEG,
        ) {
            let raw: Vec<u8> = (0..raw_len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
            let e = EditList::new(lengths).unwrap();
            let visible = e.apply(&raw);
            let m = PlainMap::new(Some(&e), raw_len as u64);
            proptest::prop_assert_eq!(m.len(), visible.len() as u64);
            let a = a % (m.len() + 1);
            let got = through_pieces(&m, &raw, a..a.saturating_add(n));
            let end = (a + n).min(m.len()) as usize;
            proptest::prop_assert_eq!(&got[..], &visible[a as usize..end]);
        }
    }

    #[test]
    fn pieces_without_edit_list() {
        let m = PlainMap::new(None, 3 * SEG + 7);
        assert_eq!(m.len(), 3 * SEG + 7);
        let p = |segment, within: Range<usize>| Piece { segment, within };
        let s = SEGMENT_SIZE;
        assert_eq!(m.pieces(0..1), vec![p(0, 0..1)]);
        assert_eq!(m.pieces(SEG - 1..SEG + 1), vec![p(0, s - 1..s), p(1, 0..1)]);
        assert_eq!(
            m.pieces(10..3 * SEG + 100),
            vec![p(0, 10..s), p(1, 0..s), p(2, 0..s), p(3, 0..7)]
        );
        assert_eq!(m.pieces(3 * SEG + 7..3 * SEG + 9), vec![]);
        assert_eq!(m.pieces(5..5), vec![]);
        assert!(PlainMap::new(None, 0).pieces(0..10).is_empty());
    }

    #[test]
    fn pieces_with_edit_list() {
        // keep raw 2..5 and 65534..65540 and everything from 3·SEG on
        let e = EditList::new(vec![2, 3, SEG - 7, 6, 3 * SEG - 65540]).unwrap();
        let raw = 3 * SEG + 4;
        let m = PlainMap::new(Some(&e), raw);
        assert_eq!(m.len(), 3 + 6 + 4);
        let p = |segment, within: Range<usize>| Piece { segment, within };
        let s = SEGMENT_SIZE;
        assert_eq!(
            m.pieces(0..m.len()),
            vec![p(0, 2..5), p(0, s - 2..s), p(1, 0..4), p(3, 0..4)]
        );
        assert_eq!(m.pieces(4..6), vec![p(0, s - 1..s), p(1, 0..1)]);
        assert_eq!(m.pieces(9..10), vec![p(3, 0..1)]);
        assert_eq!(m.pieces(12..100), vec![p(3, 3..4)]);
        assert_eq!(format!("{m:?}"), "PlainMap(3 extents)");
    }

    #[test]
    fn pieces_cover_every_range_exactly() {
        // brute force against the spec's algorithm on a small plaintext
        let raw: Vec<u8> = (0..3 * SEG + 11).map(|i| (i % 251) as u8).collect();
        let lists: &[&[u64]] = &[&[], &[1], &[SEG - 1, 2, 5], &[0, SEG, SEG, 3, 1, 2, SEG]];
        for lengths in lists {
            let e = EditList::new(lengths.to_vec()).unwrap();
            let visible = e.apply(&raw);
            let m = PlainMap::new(Some(&e), raw.len() as u64);
            assert_eq!(m.len(), visible.len() as u64);
            for (a, b) in [
                (0, m.len()),
                (1, 2),
                (SEG - 3, SEG + 3),
                (m.len() / 2, m.len()),
            ] {
                let got = through_pieces(&m, &raw, a..b);
                let (a, b) = (a.min(m.len()) as usize, b.min(m.len()) as usize);
                assert_eq!(got, visible[a..b.max(a)], "{lengths:?} {a}..{b}");
            }
        }
    }
}
