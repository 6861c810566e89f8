//! The Crypt4GH header: parse it with a reader's secret key, or build one
//! for a set of recipients.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "crypt4gh" | version u32 = 1 | packet_count u32 | packets…
//! packet:    length u32 (includes itself) | method u32
//!            method 0: writer_pk[32] | nonce[12] | ChaCha20-Poly1305(payload) | MAC[16]
//! payload:   type u32 = 0 (data key): method u32 = 0 | key[32] | padding…
//!            type u32 = 1 (edit list): count u32 | count × u64 | padding…
//! ```
//!
//! A reader decrypts what it can and skips the rest, as the spec says:
//! packets under another header method, packets for other readers (MAC
//! fails), and packets from a degenerate (low-order) writer key. At least
//! one data key must result. A decrypted packet of unknown type, a data
//! method other than 0, or a second edit list rejects the file (as the
//! reference does). Bounds: [`MAX_PACKETS`], [`MAX_PACKET_LEN`],
//! [`MAX_HEADER_LEN`], [`MAX_EDIT_LENGTHS`].

use std::io::{self, Read};

use zeroize::Zeroizing;

use super::keys::{cipher, packet_key, PublicKey, SecretKey, KEY_LEN};
use super::layout::EditList;
use super::segment::{DataKey, DataKeys};
use super::{
    Error, MAC_LEN, MAX_EDIT_LENGTHS, MAX_HEADER_LEN, MAX_PACKETS, MAX_PACKET_LEN, NONCE_LEN,
};

/// The magic at the start of every Crypt4GH file.
pub const MAGIC: &[u8; 8] = b"crypt4gh";
/// The version this codec reads and writes.
pub const VERSION: u32 = 1;

const PREFIX_LEN: usize = 16;
const PACKET_DATA_KEY: u32 = 0;
const PACKET_EDIT_LIST: u32 = 1;
const METHOD_X25519_CHACHA: u32 = 0;
const DATA_CHACHA: u32 = 0;
/// length + method + writer key + nonce + MAC, and a 4-byte packet type.
const MIN_X25519_PACKET: u32 = (4 + 4 + KEY_LEN + NONCE_LEN + MAC_LEN + 4) as u32;

/// What a reader learns from a header: its data keys, its edit list, and
/// where the data starts. `Debug` shows no key and no length of the edit
/// list's ranges.
#[derive(Debug)]
pub struct Header {
    keys: DataKeys,
    edit_list: Option<EditList>,
    len: u64,
    packets: u32,
    skipped: u32,
    writers: Vec<PublicKey>,
}

impl Header {
    /// Reads a header from `r` (left positioned at the first segment) and
    /// decrypts the packets meant for `key`.
    pub fn read<R: Read>(r: &mut R, key: &SecretKey) -> Result<Header, Error> {
        let mut prefix = [0u8; PREFIX_LEN];
        read_exact(r, &mut prefix)?;
        if &prefix[..8] != MAGIC {
            return Err(Error::NotCrypt4gh);
        }
        let version = u32_at(&prefix, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let count = u32_at(&prefix, 12);
        if count == 0 {
            return Err(Error::MalformedHeader("it has no packets"));
        }
        if count > MAX_PACKETS {
            return Err(Error::TooManyPackets(count));
        }
        let ours = key.public_key();
        let mut p = Parsed::default();
        let mut len = PREFIX_LEN as u64;
        for index in 0..count {
            let mut lb = [0u8; 4];
            read_exact(r, &mut lb)?;
            let plen = u32::from_le_bytes(lb);
            if !(8..=MAX_PACKET_LEN).contains(&plen) {
                return Err(Error::BadPacketLength { index, len: plen });
            }
            len += u64::from(plen);
            if len > MAX_HEADER_LEN {
                return Err(Error::HeaderTooLarge);
            }
            let mut body = Zeroizing::new(vec![0u8; plen as usize - 4]);
            read_exact(r, &mut body)?;
            if u32_at(&body, 0) != METHOD_X25519_CHACHA {
                p.skipped += 1;
                continue;
            }
            if plen < MIN_X25519_PACKET {
                return Err(Error::BadPacketLength { index, len: plen });
            }
            match open_packet(&mut body, key, &ours) {
                Some((writer, payload)) => {
                    p.writers.push(writer);
                    p.take(index, payload)?;
                }
                None => p.skipped += 1,
            }
        }
        if p.keys.is_empty() {
            return Err(if p.writers.is_empty() {
                Error::NotForThisKey
            } else {
                Error::NoDataKey
            });
        }
        Ok(Header {
            keys: DataKeys::new(p.keys),
            edit_list: p.edit_list,
            len,
            packets: count,
            skipped: p.skipped,
            writers: p.writers,
        })
    }

    /// Parses the header at the start of `bytes` (anything after it is
    /// ignored; see [`Header::byte_len`]).
    pub fn parse(bytes: &[u8], key: &SecretKey) -> Result<Header, Error> {
        Header::read(&mut &bytes[..], key)
    }

    /// The data keys, in header order.
    pub fn data_keys(&self) -> &DataKeys {
        &self.keys
    }

    /// The edit list, if the header has one for this key.
    pub fn edit_list(&self) -> Option<&EditList> {
        self.edit_list.as_ref()
    }

    /// Bytes of header: the first segment starts here.
    pub fn byte_len(&self) -> u64 {
        self.len
    }

    /// Packets in the header.
    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    /// Packets not decrypted (meant for other readers, or of another method).
    pub fn skipped_packets(&self) -> u32 {
        self.skipped
    }

    /// The writer public key of every packet decrypted, in header order.
    pub fn writer_keys(&self) -> &[PublicKey] {
        &self.writers
    }

    /// Takes the header apart: data keys, edit list, header length.
    pub fn into_parts(self) -> (DataKeys, Option<EditList>, u64) {
        (self.keys, self.edit_list, self.len)
    }
}

/// Packets decrypted so far.
#[derive(Default)]
struct Parsed {
    keys: Vec<DataKey>,
    edit_list: Option<EditList>,
    skipped: u32,
    writers: Vec<PublicKey>,
}

impl Parsed {
    /// Takes one decrypted payload.
    fn take(&mut self, index: u32, payload: &[u8]) -> Result<(), Error> {
        let bad = |what| Error::MalformedPacket { index, what };
        match u32_at(payload, 0) {
            PACKET_DATA_KEY => {
                let method = payload
                    .get(4..8)
                    .map(|_| u32_at(payload, 4))
                    .ok_or(bad("data key packet without a method"))?;
                if method != DATA_CHACHA {
                    return Err(Error::UnsupportedDataMethod { index, method });
                }
                let key: [u8; 32] = payload
                    .get(8..8 + 32)
                    .ok_or(bad("data key packet shorter than its 32-byte key"))?
                    .try_into()
                    .expect("32 bytes");
                self.keys.push(DataKey::from_bytes(key));
            }
            PACKET_EDIT_LIST => {
                if self.edit_list.is_some() {
                    return Err(Error::TooManyEditLists);
                }
                let n = payload
                    .get(4..8)
                    .map(|_| u32_at(payload, 4))
                    .ok_or(bad("edit list packet without a count"))?;
                if n > MAX_EDIT_LENGTHS {
                    return Err(Error::EditListTooLong(u64::from(n)));
                }
                let raw = payload
                    .get(8..8 + 8 * n as usize)
                    .ok_or(bad("edit list packet shorter than its lengths"))?;
                let lengths = raw
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                self.edit_list = Some(EditList::new(lengths)?);
            }
            ty => return Err(Error::UnknownPacketType { index, ty }),
        }
        Ok(())
    }
}

/// Decrypts an X25519 packet body (`method ‖ writer_pk ‖ nonce ‖ sealed`)
/// in place; `None` if it is not for `key`.
fn open_packet<'a>(
    body: &'a mut [u8],
    key: &SecretKey,
    ours: &PublicKey,
) -> Option<(PublicKey, &'a [u8])> {
    let (head, sealed) = body.split_at_mut(4 + KEY_LEN + NONCE_LEN);
    let writer = PublicKey::from_bytes(head[4..4 + KEY_LEN].try_into().expect("32 bytes"));
    let nonce: [u8; NONCE_LEN] = head[4 + KEY_LEN..].try_into().expect("12 bytes");
    let shared = packet_key(key, &writer, ours, &writer)?;
    cipher(&shared).open_with(nonce, sealed).ok()?;
    let n = sealed.len() - MAC_LEN;
    Some((writer, &sealed[..n]))
}

/// A header for `recipients` carrying `keys` (one data-key packet each) and
/// `edit_list`, every packet encrypted by `writer` to every recipient
/// (repeated recipients once).
pub fn build(
    keys: &[DataKey],
    edit_list: Option<&EditList>,
    recipients: &[PublicKey],
    writer: &SecretKey,
) -> Result<Vec<u8>, Error> {
    let mut readers: Vec<PublicKey> = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !readers.contains(r) {
            readers.push(*r);
        }
    }
    if readers.is_empty() {
        return Err(Error::NoRecipients);
    }
    let mut payloads: Vec<Zeroizing<Vec<u8>>> = keys.iter().map(data_key_payload).collect();
    payloads.extend(edit_list.map(edit_list_payload));
    if payloads.is_empty() {
        return Err(Error::MalformedHeader("a header needs at least one packet"));
    }
    let count = payloads.len() * readers.len();
    if count > MAX_PACKETS as usize {
        return Err(Error::TooManyPackets(count as u32));
    }
    let mut packets = Vec::with_capacity(count);
    for payload in &payloads {
        for r in &readers {
            packets.push(seal_packet(payload, writer, r)?);
        }
    }
    Ok(serialize(&packets))
}

fn data_key_payload(key: &DataKey) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::with_capacity(40));
    p.extend_from_slice(&PACKET_DATA_KEY.to_le_bytes());
    p.extend_from_slice(&DATA_CHACHA.to_le_bytes());
    p.extend_from_slice(key.expose());
    p
}

fn edit_list_payload(e: &EditList) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::with_capacity(8 + 8 * e.lengths().len()));
    p.extend_from_slice(&PACKET_EDIT_LIST.to_le_bytes());
    p.extend_from_slice(&(e.lengths().len() as u32).to_le_bytes());
    for l in e.lengths() {
        p.extend_from_slice(&l.to_le_bytes());
    }
    p
}

/// One packet (with its length) carrying `payload` from `writer` to `reader`.
fn seal_packet(payload: &[u8], writer: &SecretKey, reader: &PublicKey) -> Result<Vec<u8>, Error> {
    let writer_pk = writer.public_key();
    let shared = packet_key(writer, reader, reader, &writer_pk).ok_or(Error::BadPublicKey)?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(io::Error::other)?;
    let len = 4 + 4 + KEY_LEN + NONCE_LEN + payload.len() + MAC_LEN;
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&(len as u32).to_le_bytes());
    p.extend_from_slice(&METHOD_X25519_CHACHA.to_le_bytes());
    p.extend_from_slice(writer_pk.as_bytes());
    p.extend_from_slice(&nonce);
    let start = p.len();
    p.extend_from_slice(payload);
    p.resize(len, 0);
    cipher(&shared).seal_with(nonce, &mut p[start..]);
    Ok(p)
}

fn serialize(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut h = Vec::with_capacity(PREFIX_LEN + packets.iter().map(Vec::len).sum::<usize>());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(packets.len() as u32).to_le_bytes());
    for p in packets {
        h.extend_from_slice(p);
    }
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes in range"))
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::HeaderTruncated,
        _ => Error::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sk(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    fn dk(b: u8) -> DataKey {
        DataKey::from_bytes([b; 32])
    }

    /// A header of the given payloads, all from `writer` to `reader`.
    fn custom(payloads: &[&[u8]], reader: &SecretKey) -> Vec<u8> {
        let packets: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| seal_packet(p, &sk(99), &reader.public_key()).unwrap())
            .collect();
        serialize(&packets)
    }

    fn payload(ty: u32, rest: &[u8]) -> Vec<u8> {
        [&ty.to_le_bytes()[..], rest].concat()
    }

    #[test]
    fn round_trip_one_and_several_recipients() {
        let (a, b, c) = (sk(1), sk(2), sk(3));
        let e = EditList::new(vec![3, 10, 5]).unwrap();
        let h = build(
            &[dk(7), dk(8)],
            Some(&e),
            &[a.public_key(), b.public_key(), a.public_key()],
            &sk(50),
        )
        .unwrap();
        for (reader, skipped) in [(&a, 3), (&b, 3)] {
            let mut tail = h.clone();
            tail.extend_from_slice(b"segments follow");
            let p = Header::parse(&tail, reader).unwrap();
            assert_eq!(p.byte_len(), h.len() as u64);
            assert_eq!(p.packet_count(), 6);
            assert_eq!(p.skipped_packets(), skipped);
            let keys: Vec<[u8; 32]> = p.data_keys().keys().map(|k| *k.expose()).collect();
            assert_eq!(keys, vec![[7; 32], [8; 32]]);
            assert_eq!(p.edit_list().unwrap().lengths(), &[3, 10, 5]);
            assert_eq!(p.writer_keys(), &[sk(50).public_key(); 3]);
        }
        assert!(matches!(Header::parse(&h, &c), Err(Error::NotForThisKey)));
        let plain = build(&[dk(7)], None, &[c.public_key()], &c).unwrap();
        let p = Header::parse(&plain, &c).unwrap();
        assert!(p.edit_list().is_none());
        assert_eq!(p.skipped_packets(), 0);
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("7, 7, 7"), "{dbg}");
    }

    #[test]
    fn build_refuses_bad_recipients() {
        assert!(matches!(
            build(&[dk(1)], None, &[], &sk(1)),
            Err(Error::NoRecipients)
        ));
        assert!(matches!(
            build(&[], None, &[sk(2).public_key()], &sk(1)),
            Err(Error::MalformedHeader(_))
        ));
        assert!(matches!(
            build(&[dk(1)], None, &[PublicKey::from_bytes([0; 32])], &sk(1)),
            Err(Error::BadPublicKey)
        ));
        let many: Vec<PublicKey> = (0..=MAX_PACKETS / 2)
            .map(|i| {
                let mut b = [0u8; 32];
                b[4..8].copy_from_slice(&i.to_le_bytes());
                b[31] = 1;
                SecretKey::from_bytes(b).public_key()
            })
            .collect();
        assert!(matches!(
            build(
                &[dk(1)],
                Some(&EditList::new(vec![1]).unwrap()),
                &many,
                &sk(1)
            ),
            Err(Error::TooManyPackets(_))
        ));
    }

    #[test]
    fn skips_what_it_cannot_decrypt() {
        let me = sk(1);
        let mut packets = vec![
            // another header method
            [&20u32.to_le_bytes()[..], &9u32.to_le_bytes(), &[0; 12]].concat(),
            // for someone else
            seal_packet(&data_key_payload(&dk(4)), &sk(9), &sk(2).public_key()).unwrap(),
            // from a low-order writer key
            {
                let mut p =
                    seal_packet(&data_key_payload(&dk(5)), &sk(9), &me.public_key()).unwrap();
                p[8..40].fill(0);
                p
            },
            seal_packet(&data_key_payload(&dk(6)), &sk(9), &me.public_key()).unwrap(),
        ];
        // spec: a packet may be longer than its content (padding, encrypted)
        let padded = [&data_key_payload(&dk(7))[..], &[0; 24]].concat();
        packets.push(seal_packet(&padded, &sk(9), &me.public_key()).unwrap());
        let p = Header::parse(&serialize(&packets), &me).unwrap();
        assert_eq!(p.skipped_packets(), 3);
        let keys: Vec<[u8; 32]> = p.data_keys().keys().map(|k| *k.expose()).collect();
        assert_eq!(keys, vec![[6; 32], [7; 32]]);
    }

    #[test]
    fn every_parse_error() {
        let me = sk(1);
        let good = build(&[dk(1)], None, &[me.public_key()], &sk(2)).unwrap();
        let err = |b: &[u8]| Header::parse(b, &me).unwrap_err();

        assert!(matches!(
            err(b"crypt4gX\x01\0\0\0\x01\0\0\0"),
            Error::NotCrypt4gh
        ));
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(matches!(err(&v2), Error::UnsupportedVersion(2)));
        for cut in [0, 5, 15, 16, 19, 20, good.len() - 1] {
            assert!(
                matches!(err(&good[..cut]), Error::HeaderTruncated),
                "cut {cut}"
            );
        }
        let with_count = |n: u32| {
            let mut h = good.clone();
            h[12..16].copy_from_slice(&n.to_le_bytes());
            h
        };
        assert!(matches!(err(&with_count(0)), Error::MalformedHeader(_)));
        assert!(matches!(
            err(&with_count(MAX_PACKETS + 1)),
            Error::TooManyPackets(_)
        ));
        assert!(matches!(
            err(&with_count(u32::MAX)),
            Error::TooManyPackets(_)
        ));
        let with_len = |n: u32| {
            let mut h = good.clone();
            h[16..20].copy_from_slice(&n.to_le_bytes());
            h
        };
        for bad in [0, 4, 7, MAX_PACKET_LEN + 1, u32::MAX] {
            assert!(
                matches!(err(&with_len(bad)), Error::BadPacketLength { index: 0, len } if len == bad),
                "{bad}"
            );
        }
        // an X25519 packet too short to hold its fields
        let short = [
            &[0u8; 0][..],
            MAGIC,
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &71u32.to_le_bytes(),
            &[0; 67],
        ]
        .concat();
        assert!(matches!(
            err(&short),
            Error::BadPacketLength { index: 0, len: 71 }
        ));
        // packets that add up past the header limit
        let big = MAX_PACKET_LEN;
        let mut huge = [MAGIC.as_slice(), &1u32.to_le_bytes(), &5u32.to_le_bytes()].concat();
        for _ in 0..4 {
            huge.extend_from_slice(&big.to_le_bytes());
            huge.extend_from_slice(&7u32.to_le_bytes()); // skipped method
            huge.resize(huge.len() + big as usize - 8, 0);
        }
        huge.extend_from_slice(&big.to_le_bytes());
        assert!(matches!(err(&huge), Error::HeaderTooLarge));

        let e = |payloads: &[&[u8]]| err(&custom(payloads, &me));
        let key_packet = payload(0, &[&0u32.to_le_bytes()[..], &[3; 32]].concat());
        let edit = payload(
            1,
            &[
                &2u32.to_le_bytes()[..],
                &5u64.to_le_bytes(),
                &6u64.to_le_bytes(),
            ]
            .concat(),
        );
        assert!(matches!(e(&[&edit]), Error::NoDataKey));
        assert!(matches!(
            e(&[&key_packet, &edit, &edit]),
            Error::TooManyEditLists
        ));
        assert!(matches!(
            e(&[&key_packet, &payload(2, &[0; 40])]),
            Error::UnknownPacketType { index: 1, ty: 2 }
        ));
        for method in [1u32, 7] {
            let p = payload(0, &[&method.to_le_bytes()[..], &[3; 40]].concat());
            assert!(
                matches!(e(&[&p]), Error::UnsupportedDataMethod { index: 0, method: m } if m == method)
            );
        }
        for p in [
            payload(0, &[]),
            payload(0, &[0; 4 + 31]),
            payload(1, &[]),
            payload(1, &[&1u32.to_le_bytes()[..], &[0; 7]].concat()),
        ] {
            assert!(
                matches!(
                    e(&[&key_packet, &p]),
                    Error::MalformedPacket { index: 1, .. }
                ),
                "{} bytes",
                p.len()
            );
        }
        let long = payload(1, &(MAX_EDIT_LENGTHS + 1).to_le_bytes());
        assert!(matches!(
            e(&[&key_packet, &long]),
            Error::EditListTooLong(_)
        ));
        // the edit list as parsed, padding ignored
        let padded = [&edit[..], &[9; 5]].concat();
        let h = Header::parse(&custom(&[&key_packet, &padded], &me), &me).unwrap();
        assert_eq!(h.edit_list().unwrap().lengths(), &[5, 6]);
        // an empty packet type field is malformed, not a panic
        let tiny = custom(&[&[0u8; 0]], &me);
        assert!(matches!(err(&tiny), Error::BadPacketLength { .. }));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Arbitrary bytes, after a valid prefix or not: an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(0u8.., 0..400), prefixed: bool) {
            let input = if prefixed {
                [&MAGIC[..], &1u32.to_le_bytes(), &bytes].concat()
            } else {
                bytes
            };
            let _ = Header::parse(&input, &sk(1));
        }

        /// A valid header with one byte changed and cut anywhere.
        #[test]
        fn mutated_headers_never_panic(at: usize, byte: u8, cut: usize) {
            let e = EditList::new(vec![1, 2, 3]).unwrap();
            let mut h = build(&[dk(1), dk(2)], Some(&e), &[sk(1).public_key(), sk(3).public_key()], &sk(2)).unwrap();
            let n = h.len();
            h[at % n] = byte;
            h.truncate(cut % (n + 1));
            let _ = Header::parse(&h, &sk(1));
        }

        /// Any payload a packet for us may carry: an error or a header, never a panic.
        #[test]
        fn arbitrary_payloads_never_panic(ty in 0u32..3, body in proptest::collection::vec(0u8.., 0..120)) {
            let me = sk(1);
            let _ = Header::parse(&custom(&[&payload(ty, &body)], &me), &me);
        }
    }

    #[test]
    fn io_errors_pass_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        assert!(matches!(
            Header::read(&mut Failing, &sk(1)),
            Err(Error::Io(_))
        ));
    }
}
