//! Streaming Crypt4GH encryption in bounded memory (one segment).
//!
//! [`Writer::new`] writes the header at once: a fresh random data key in one
//! data-key packet (and the optional edit list) for every recipient, sealed
//! by the sender key or, by default, by a one-time writer key that is
//! dropped afterwards (the spec's advice: then only the recipients can open
//! the header). Bytes written go out a segment at a time, each with a fresh
//! random nonce; [`Writer::finish`] writes the last, short segment. A writer
//! dropped without `finish` has lost that segment, and Crypt4GH cannot tell
//! such a file from a whole one: always call `finish` and check its result.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::header;
use super::keys::{PublicKey, SecretKey};
use super::layout::EditList;
use super::segment::{DataKey, DataKeys};
use super::{Error, CIPHER_SEGMENT_SIZE, SEGMENT_SIZE};

/// Choices for a new file.
#[derive(Debug, Default)]
pub struct WriterOptions {
    /// Sealing key of the header packets; `None`: a one-time key.
    pub sender: Option<SecretKey>,
    /// An edit list to put in the header.
    pub edit_list: Option<EditList>,
}

/// Encrypts a stream into a Crypt4GH file written to `W`.
pub struct Writer<W: Write> {
    out: W,
    keys: DataKeys,
    /// Plaintext of the segment being filled (at most [`SEGMENT_SIZE`]).
    plain: Zeroizing<Vec<u8>>,
    /// Ciphertext of one segment.
    sealed: Vec<u8>,
    header_len: u64,
    plain_len: u64,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("crypt4gh::Writer(<redacted>)")
    }
}

impl<W: Write> Writer<W> {
    /// Starts a file for `recipients` (at least one; repeats count once):
    /// writes its header to `out`.
    pub fn new(
        mut out: W,
        recipients: &[PublicKey],
        options: WriterOptions,
    ) -> Result<Writer<W>, Error> {
        let key = DataKey::generate()?;
        let sender = match options.sender {
            Some(s) => s,
            None => SecretKey::generate()?,
        };
        let h = header::build(
            std::slice::from_ref(&key),
            options.edit_list.as_ref(),
            recipients,
            &sender,
        )?;
        out.write_all(&h)?;
        Ok(Writer {
            out,
            keys: DataKeys::new(vec![key]),
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT_SIZE)),
            sealed: Vec::with_capacity(CIPHER_SEGMENT_SIZE),
            header_len: h.len() as u64,
            plain_len: 0,
        })
    }

    /// Bytes of the header written by [`Writer::new`].
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Plaintext bytes taken so far.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    fn emit(&mut self) -> io::Result<()> {
        self.sealed.clear();
        self.keys.seal_segment(&self.plain, &mut self.sealed)?;
        self.out.write_all(&self.sealed)?;
        zeroize::Zeroize::zeroize(&mut *self.plain);
        self.plain.clear();
        Ok(())
    }

    /// Writes the last segment, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, Error> {
        if !self.plain.is_empty() {
            self.emit()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(SEGMENT_SIZE - self.plain.len());
        self.plain.extend_from_slice(&buf[..n]);
        self.plain_len += n as u64;
        if self.plain.len() == SEGMENT_SIZE {
            self.emit()?;
        }
        Ok(n)
    }

    /// Flushes the output; a partly filled segment stays buffered (it can
    /// only be written once, when it is full or at `finish`).
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt4gh::{decrypt_stream, Header, Layout, SEGMENT_OVERHEAD};

    fn encrypt(data: &[u8], to: &[PublicKey], options: WriterOptions) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), to, options).unwrap();
        // odd-sized writes cross segment boundaries
        for chunk in data.chunks(40_000) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn sizes_round_trip() {
        let me = SecretKey::generate().unwrap();
        for len in [
            0,
            1,
            SEGMENT_SIZE - 1,
            SEGMENT_SIZE,
            SEGMENT_SIZE + 1,
            3 * SEGMENT_SIZE + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let file = encrypt(&data, &[me.public_key()], WriterOptions::default());
            let h = Header::parse(&file, &me).unwrap();
            let layout = Layout::new(h.byte_len(), file.len() as u64).unwrap();
            assert_eq!(layout.raw_len(), len as u64);
            assert_eq!(
                file.len() as u64,
                h.byte_len() + len as u64 + layout.segments() * SEGMENT_OVERHEAD as u64
            );
            let mut out = Vec::new();
            assert_eq!(
                decrypt_stream(&file[..], &me, &mut out).unwrap(),
                len as u64
            );
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn several_recipients_and_a_sender() {
        let (a, b, s) = (
            SecretKey::generate().unwrap(),
            SecretKey::generate().unwrap(),
            SecretKey::generate().unwrap(),
        );
        let options = WriterOptions {
            sender: Some(s.clone()),
            edit_list: Some(EditList::new(vec![2, 3]).unwrap()),
        };
        let file = encrypt(b"0123456789", &[a.public_key(), b.public_key()], options);
        for k in [&a, &b] {
            let h = Header::parse(&file, k).unwrap();
            assert!(h.writer_keys().iter().all(|w| *w == s.public_key()));
            let mut out = Vec::new();
            decrypt_stream(&file[..], k, &mut out).unwrap();
            assert_eq!(out, b"234");
        }
        assert!(matches!(
            Writer::new(Vec::new(), &[], WriterOptions::default()),
            Err(Error::NoRecipients)
        ));
    }

    #[test]
    fn a_one_time_writer_key_per_file() {
        let me = SecretKey::generate().unwrap();
        let f1 = encrypt(b"x", &[me.public_key()], WriterOptions::default());
        let f2 = encrypt(b"x", &[me.public_key()], WriterOptions::default());
        let w1 = Header::parse(&f1, &me).unwrap().writer_keys()[0];
        let w2 = Header::parse(&f2, &me).unwrap().writer_keys()[0];
        assert_ne!(w1, w2);
        assert_ne!(f1, f2);
    }
}
