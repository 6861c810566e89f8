//! The Crypt4GH codec (src/crypt4gh): header packets, segments and edit
//! lists (parsed with a fixed reader key the seeds were made for), and the
//! key-file parsers. Byte 0 picks the parser, the rest is its input.

use hpcs::crypt4gh::{decrypt_stream, Header, PublicKey, Reader, SecretKey};

/// The reader's secret key of the seed files.
pub const READER: [u8; 32] = [0x11; 32];

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let key = SecretKey::from_bytes(READER);
    match mode % 5 {
        0 => {
            if let Ok(h) = Header::parse(rest, &key) {
                assert!(h.byte_len() <= rest.len() as u64);
                let _ = (h.packet_count(), h.skipped_packets(), h.writer_keys().len());
                if let Some(e) = h.edit_list() {
                    let _ = e.kept(rest.len() as u64);
                }
            }
        }
        1 => {
            let mut out = Vec::new();
            if let Ok(n) = decrypt_stream(rest, &key, &mut out) {
                assert_eq!(n, out.len() as u64);
            }
        }
        2 => {
            if let Ok(r) = Reader::open(rest.to_vec(), &key) {
                let len = r.len();
                let mut buf = vec![0u8; 70000];
                let mut off = 0;
                while off < len {
                    match r.read_at(off, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => off += n as u64,
                    }
                }
                let _ = r.read_at(len, &mut buf);
                let _ = r.read_at(u64::MAX, &mut buf);
            }
        }
        3 => {
            if let Ok(k) = SecretKey::from_file_text(rest, None) {
                let text = k.to_file_text(None, None).expect("serialises");
                let back = SecretKey::from_file_text(text.as_bytes(), None).expect("round-trips");
                assert_eq!(*back.to_bytes(), *k.to_bytes());
            }
        }
        _ => {
            if let Ok(k) = PublicKey::from_file_text(rest) {
                let back =
                    PublicKey::from_file_text(k.to_file_text().as_bytes()).expect("round-trips");
                assert_eq!(back.as_bytes(), k.as_bytes());
            }
        }
    }
}
