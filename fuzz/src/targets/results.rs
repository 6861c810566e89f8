//! Results objects and manifests (RESULTS.md). Byte 0: bit 0 picks a
//! manifest (else an object); bit 2 says the rest is the age file itself
//! (the age header, stanzas and stream are reached); otherwise the rest is
//! the plaintext, which the target encrypts to the golden recipient (as a
//! job would), after re-computing the MAC if bit 1 is set (so the fields
//! behind it are reached). The file goes to `decrypt_object` /
//! `read_manifest`.

use std::io::Write;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use hpcs::crypto::keys::SubKey;
use sha2::Sha256;

/// The results key and archive id the seeds were made with.
const KEY: [u8; 32] = [0x5a; 32];
const ARCHIVE: [u8; 32] = [0xa5; 32];

fn mac(msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&KEY).unwrap();
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn encrypt(plain: &[u8]) -> tempfile::NamedTempFile {
    let r = age::x25519::Recipient::from_str(crate::GOLDEN_RECIPIENT).unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&out).unwrap();
    f
}

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut plain = rest.to_vec();
    let ids = crate::golden_identities();
    let rkeys = crate::golden_result_keys();
    let key = SubKey::from_bytes(KEY);
    if mode & 4 != 0 {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(rest).unwrap();
        if mode & 1 == 0 {
            let mut sink = Vec::new();
            if let Ok(meta) =
                hpcs::results::decrypt_object(f.path(), ids, &key, &ARCHIVE, &mut sink)
            {
                assert_eq!(
                    meta.size,
                    sink.len() as u64,
                    "the sink holds exactly the size"
                );
            }
            let _ = hpcs::results::partial_run(f.path(), rkeys);
        } else if let Ok(m) = hpcs::results::read_manifest(f.path(), rkeys, &key, &ARCHIVE) {
            assert_eq!(m.info.archive_id, ARCHIVE);
        }
        return;
    }
    if mode & 1 == 0 {
        // Object: the MAC sits 40..8 bytes before the end.
        if mode & 2 != 0 && plain.len() >= 72 + 56 && plain.ends_with(b"HPCS-END") {
            let p = plain.len();
            let m = mac(&plain[..p - 40]);
            plain[p - 40..p - 8].copy_from_slice(&m);
        }
        let f = encrypt(&plain);
        let mut sink = Vec::new();
        let got = hpcs::results::decrypt_object(f.path(), ids, &key, &ARCHIVE, &mut sink);
        if let Ok(meta) = got {
            assert_eq!(
                meta.size,
                sink.len() as u64,
                "the sink holds exactly the size"
            );
            assert_eq!(
                &sink[..],
                &plain[72..72 + sink.len()],
                "the data follows the header"
            );
        }
        let _ = hpcs::results::partial_run(f.path(), rkeys);
    } else {
        if mode & 2 != 0 {
            if let Some(at) = plain.windows(5).rposition(|w| w == b"\nmac ") {
                let m = mac(&plain[..at + 1]);
                plain.truncate(at + 1);
                plain.extend_from_slice(format!("mac {}\n", hex(&m)).as_bytes());
            }
        }
        let f = encrypt(&plain);
        if let Ok(m) = hpcs::results::read_manifest(f.path(), rkeys, &key, &ARCHIVE) {
            assert_eq!(m.info.archive_id, ARCHIVE);
        }
    }
}
