//! Crypt4GH decryption: a whole stream in order ([`decrypt_stream`]), or
//! any byte range of a file by positional reads ([`Reader`]). Both apply
//! the edit list and authenticate every segment they decrypt; neither can
//! notice segments that were reordered, dropped or added, nor a file cut at
//! a segment boundary (Crypt4GH does not bind segments to their place).

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::header::Header;
use super::keys::SecretKey;
use super::layout::{Layout, PlainMap};
use super::{Error, CIPHER_SEGMENT_SIZE, NONCE_LEN, SEGMENT_OVERHEAD, SEGMENT_SIZE};
use crate::crypto::source::Source;

/// Decrypts the Crypt4GH stream `input` for `key` into `out`, applying its
/// edit list, in bounded memory (one segment). Returns the bytes written.
/// Every segment is authenticated, also those the edit list skips.
pub fn decrypt_stream<R: Read, W: Write>(
    mut input: R,
    key: &SecretKey,
    mut out: W,
) -> Result<u64, Error> {
    let header = Header::read(&mut input, key)?;
    let kept = header.edit_list().map(|e| e.kept(u64::MAX));
    let mut next_range = 0usize;
    let mut buf = Zeroizing::new(vec![0u8; CIPHER_SEGMENT_SIZE]);
    let mut written = 0u64;
    for index in 0u64.. {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        if n <= SEGMENT_OVERHEAD {
            return Err(Error::BadBodyLength(n as u64));
        }
        let plain = header.data_keys().open_segment(index, &mut buf[..n])?;
        let start = index * SEGMENT_SIZE as u64;
        let end = start + plain.len() as u64;
        let Some(kept) = &kept else {
            out.write_all(plain)?;
            written += plain.len() as u64;
            continue;
        };
        while let Some(r) = kept.get(next_range) {
            if r.start >= end {
                break;
            }
            let (a, b) = (r.start.max(start), r.end.min(end));
            out.write_all(&plain[(a - start) as usize..(b - start) as usize])?;
            written += b - a;
            if r.end > end {
                break;
            }
            next_range += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Random access to one Crypt4GH file through positional reads: the header
/// is read once, then any range of the visible plaintext (after the edit
/// list) is served by decrypting only the segments under it. Shareable
/// between threads: no cursor, every read names its offset.
#[derive(Debug)]
pub struct Reader<S: Source> {
    src: S,
    header: Header,
    layout: Layout,
    map: PlainMap,
}

impl<S: Source> Reader<S> {
    /// Reads the header of `src` with `key` and checks that the data is a
    /// whole number of segments.
    pub fn open(src: S, key: &SecretKey) -> Result<Reader<S>, Error> {
        let len = src.len()?;
        let header = Header::read(
            &mut SourceRead {
                src: &src,
                pos: 0,
                len,
            },
            key,
        )?;
        let layout = Layout::new(header.byte_len(), len)?;
        let map = PlainMap::new(header.edit_list(), layout.raw_len());
        Ok(Reader {
            src,
            header,
            layout,
            map,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where the segments are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Visible plaintext bytes (after the edit list).
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// True when no plaintext is visible.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Reads and decrypts segment `index` into `buf`; returns its plaintext.
    ///
    /// # Panics
    /// If `buf` is shorter than [`CIPHER_SEGMENT_SIZE`] (a caller bug).
    pub fn read_segment<'a>(&self, index: u64, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        if index >= self.layout.segments() {
            return Err(Error::SegmentOutOfRange {
                index,
                segments: self.layout.segments(),
            });
        }
        let range = self.layout.segment_range(index);
        let seg = &mut buf[..(range.end - range.start) as usize];
        self.src.read_exact_at(seg, range.start)?;
        Ok(self.header.data_keys().open_segment(index, seg)?)
    }

    /// Fills `buf` from visible offset `offset`; returns the bytes read
    /// (fewer than `buf.len()` only at the end of the file).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let end = offset.saturating_add(buf.len() as u64);
        let mut scratch = Zeroizing::new(vec![0u8; CIPHER_SEGMENT_SIZE]);
        let mut current = None;
        let mut pos = 0;
        for piece in self.map.pieces(offset..end) {
            if current != Some(piece.segment) {
                self.read_segment(piece.segment, &mut scratch)?;
                current = Some(piece.segment);
            }
            let src = &scratch[NONCE_LEN + piece.within.start..NONCE_LEN + piece.within.end];
            buf[pos..pos + src.len()].copy_from_slice(src);
            pos += src.len();
        }
        Ok(pos)
    }
}

/// A `Read` over a positional source (for the header).
struct SourceRead<'a, S: Source> {
    src: &'a S,
    pos: u64,
    len: u64,
}

impl<S: Source> Read for SourceRead<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        self.src.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt4gh::{header, DataKey, DataKeys, EditList, PublicKey, Writer, WriterOptions};
    use crate::crypto::source::FileSource;

    const SEG: usize = SEGMENT_SIZE;

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 253) as u8 ^ (i / 253) as u8)
            .collect()
    }

    fn encrypt(data: &[u8], to: &PublicKey, edit_list: Option<EditList>) -> Vec<u8> {
        let mut w = Writer::new(
            Vec::new(),
            &[*to],
            WriterOptions {
                sender: None,
                edit_list,
            },
        )
        .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn reader(file: &[u8], key: &SecretKey) -> Result<Reader<FileSource>, Error> {
        let mut t = tempfile::tempfile().unwrap();
        t.write_all(file).unwrap();
        Reader::open(FileSource::new(t), key)
    }

    fn read_all(r: &Reader<FileSource>, at: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let n = r.read_at(at, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn random_access_at_segment_boundaries() {
        let me = SecretKey::generate().unwrap();
        let plain = data(3 * SEG + 7);
        let r = reader(&encrypt(&plain, &me.public_key(), None), &me).unwrap();
        assert_eq!(r.len(), plain.len() as u64);
        assert_eq!(r.layout().segments(), 4);
        for (at, len) in [
            (0, 1),
            (SEG - 1, 2),
            (SEG, SEG),
            (10, 3 * SEG),
            (3 * SEG + 6, 100),
            (0, 4 * SEG),
        ] {
            let end = (at + len).min(plain.len());
            assert_eq!(read_all(&r, at as u64, len), &plain[at..end], "{at}+{len}");
        }
        assert_eq!(read_all(&r, plain.len() as u64, 10), b"");
        assert_eq!(read_all(&r, u64::MAX, 10), b"");
    }

    #[test]
    fn edit_lists_apply_in_both_readers() {
        let me = SecretKey::generate().unwrap();
        let plain = data(2 * SEG + 100);
        let lists: &[&[u64]] = &[&[], &[5], &[5, 10], &[SEG as u64 - 2, 4, 10, 1, SEG as u64]];
        for lengths in lists {
            let e = EditList::new(lengths.to_vec()).unwrap();
            let want = e.apply(&plain);
            let file = encrypt(&plain, &me.public_key(), Some(e));
            let mut out = Vec::new();
            assert_eq!(
                decrypt_stream(&file[..], &me, &mut out).unwrap(),
                want.len() as u64
            );
            assert_eq!(out, want, "{lengths:?}");
            let r = reader(&file, &me).unwrap();
            assert_eq!(r.len(), want.len() as u64);
            assert_eq!(read_all(&r, 0, want.len() + 5), want);
            if want.len() > 3 {
                assert_eq!(read_all(&r, 2, 2), &want[2..4]);
            }
        }
    }

    #[test]
    fn several_data_keys() {
        // segments under alternating keys, both keys in the header
        let me = SecretKey::generate().unwrap();
        let (k1, k2) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
        let mut file =
            header::build(&[k1.clone(), k2.clone()], None, &[me.public_key()], &me).unwrap();
        let plain = data(3 * SEG);
        let by = [DataKeys::new(vec![k1]), DataKeys::new(vec![k2])];
        for (i, seg) in plain.chunks(SEG).enumerate() {
            by[i % 2].seal_segment(seg, &mut file).unwrap();
        }
        let mut out = Vec::new();
        decrypt_stream(&file[..], &me, &mut out).unwrap();
        assert_eq!(out, plain);
        assert_eq!(
            read_all(&reader(&file, &me).unwrap(), SEG as u64 - 1, 2),
            &plain[SEG - 1..SEG + 1]
        );
    }

    #[test]
    fn wrong_key_and_damage_fail() {
        let me = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let plain = data(2 * SEG + 50);
        let file = encrypt(&plain, &me.public_key(), None);
        assert!(matches!(reader(&file, &other), Err(Error::NotForThisKey)));
        assert!(matches!(
            decrypt_stream(&file[..], &other, Vec::new()),
            Err(Error::NotForThisKey)
        ));

        let hlen = Header::parse(&file, &me).unwrap().byte_len() as usize;
        // a flipped byte in segment 1
        let mut bad = file.clone();
        bad[hlen + CIPHER_SEGMENT_SIZE + 100] ^= 1;
        assert!(matches!(
            decrypt_stream(&bad[..], &me, Vec::new()),
            Err(Error::SegmentAuth(1))
        ));
        let r = reader(&bad, &me).unwrap();
        assert!(read_all(&r, 0, 10).len() == 10, "segment 0 is still fine");
        let mut seg = vec![0u8; CIPHER_SEGMENT_SIZE];
        assert!(matches!(
            r.read_segment(3, &mut seg),
            Err(Error::SegmentOutOfRange {
                index: 3,
                segments: 3
            })
        ));
        assert!(matches!(
            r.read_segment(u64::MAX, &mut seg),
            Err(Error::SegmentOutOfRange { .. })
        ));
        let mut buf = [0u8; 10];
        assert!(matches!(
            r.read_at(SEG as u64, &mut buf),
            Err(Error::SegmentAuth(1))
        ));
        // a tail too short for a segment
        for cut in [1, SEGMENT_OVERHEAD] {
            let t = &file[..hlen + 2 * CIPHER_SEGMENT_SIZE + cut];
            assert!(matches!(reader(t, &me), Err(Error::BadBodyLength(c)) if c == cut as u64));
            assert!(
                matches!(decrypt_stream(t, &me, Vec::new()), Err(Error::BadBodyLength(c)) if c == cut as u64)
            );
        }
        // cut inside the last segment: its MAC fails
        let t = &file[..file.len() - 1];
        assert!(matches!(
            decrypt_stream(t, &me, Vec::new()),
            Err(Error::SegmentAuth(2))
        ));
    }

    #[test]
    fn one_reader_serves_threads_at_once() {
        let me = SecretKey::generate().unwrap();
        let plain = data(5 * SEG + 3);
        let r = reader(&encrypt(&plain, &me.public_key(), None), &me).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (r, plain) = (&r, &plain);
                s.spawn(move || {
                    for i in 0..20 {
                        let at = (t * 7919 + i * 65_521) % plain.len();
                        assert_eq!(
                            read_all(r, at as u64, 3000),
                            &plain[at..(at + 3000).min(plain.len())]
                        );
                    }
                });
            }
        });
    }

    /// What Crypt4GH alone lets through (docs/crypt4gh.md): every case below
    /// decrypts without an error. The hpcs reference archive closes them.
    #[test]
    fn what_the_format_does_not_authenticate() {
        let me = SecretKey::generate().unwrap();
        let plain = data(2 * SEG);
        let file = encrypt(&plain, &me.public_key(), None);
        let hlen = Header::parse(&file, &me).unwrap().byte_len() as usize;
        let (head, seg0, seg1) = (
            &file[..hlen],
            &file[hlen..hlen + CIPHER_SEGMENT_SIZE],
            &file[hlen + CIPHER_SEGMENT_SIZE..],
        );
        let open = |f: &[u8]| {
            let mut out = Vec::new();
            decrypt_stream(f, &me, &mut out).expect("Crypt4GH accepts it");
            out
        };
        // segments swapped, duplicated, dropped; a cut at a segment boundary
        assert_eq!(
            open(&[head, seg1, seg0].concat()),
            [&plain[SEG..], &plain[..SEG]].concat()
        );
        assert_eq!(open(&[head, seg0, seg0, seg1].concat()).len(), 3 * SEG);
        assert_eq!(open(&[head, seg1].concat()), &plain[SEG..]);
        assert_eq!(open(&[head, seg0].concat()), &plain[..SEG]);

        // header packets injected by anyone who has only the public key: a
        // data key of their own (and segments under it), or an edit list
        let mallory = SecretKey::generate().unwrap();
        let packets_of = |keys: &[DataKey], e: Option<&EditList>| {
            let h = header::build(keys, e, &[me.public_key()], &mallory).unwrap();
            h[16..].to_vec()
        };
        let with_packet = |extra: &[u8]| {
            let mut h = head.to_vec();
            let count = u32::from_le_bytes(h[12..16].try_into().unwrap()) + 1;
            h[12..16].copy_from_slice(&count.to_le_bytes());
            h.extend_from_slice(extra);
            h
        };
        let theirs = DataKey::generate().unwrap();
        let mut forged = Vec::new();
        DataKeys::new(vec![theirs.clone()])
            .seal_segment(b"not from the writer", &mut forged)
            .unwrap();
        let injected = [
            &with_packet(&packets_of(&[theirs], None))[..],
            seg0,
            seg1,
            &forged,
        ]
        .concat();
        assert_eq!(
            open(&injected),
            [&plain[..], b"not from the writer"].concat()
        );
        let edit = EditList::new(vec![0, 5]).unwrap();
        let cut = [&with_packet(&packets_of(&[], Some(&edit)))[..], seg0, seg1].concat();
        assert_eq!(open(&cut), &plain[..5]);

        // a whole other file for the same key is just as valid
        let other = encrypt(b"another file", &me.public_key(), None);
        assert_eq!(open(&other), b"another file");
    }
}
