//! Differential: the data stream read through `Archive` against the
//! reference decrypt in `crate::reference` (written from FORMAT.md on
//! other primitives), on archives the fuzzer mutates from the golden
//! vectors. Byte 0, bit 0: re-compute the key check and MAC after mutation.
//! Both must reject, or both return the same bytes; a chunk that fails
//! authentication in the reference never yields a byte from `Archive`.

use crate::{reference, Verdict};
use hpcs::crypto::{Backend, DataKey, SealedArchive};

/// Chunks compared one by one (archives can hold many small chunks).
const MAX_CHUNKS: u64 = 64;

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        crate::fix_header(&mut bytes);
    }
    let key = crate::key_for(&bytes).unwrap_or(crate::golden_keys()[0]);
    let verdict = reference(&bytes, &key, MAX_CHUNKS);
    let lib = SealedArchive::open(bytes.clone())
        .and_then(|s| s.unlock_with(&DataKey::from_bytes(key), Backend::RustCrypto));
    let archive = match (lib, &verdict) {
        (Err(_), _) => return, // the library may refuse more (index structure)
        (Ok(_), Verdict::Rejected(why)) => {
            panic!("Archive opened what the reference rejects: {why}")
        }
        (
            Ok(a),
            Verdict::Opened {
                index_ok, last_ok, ..
            },
        ) => {
            assert!(
                *index_ok,
                "Archive opened an archive whose index fails authentication"
            );
            assert!(
                *last_ok,
                "Archive opened an archive whose final chunk fails authentication"
            );
            a
        }
    };
    let Verdict::Opened { data, chunks, .. } = verdict else {
        unreachable!()
    };
    assert_eq!(archive.data_geometry().chunk_count(), data.count());
    assert_eq!(archive.data_geometry().len(), data.len);
    for (i, want) in chunks.iter().enumerate() {
        let i = i as u64;
        let mut slot = vec![0u8; archive.chunk_stored_len(i)];
        let got = archive.read_chunks_serial(i, &mut [&mut slot[..]]);
        match (got, want) {
            (Ok(()), Some(plain)) => {
                assert_eq!(&slot[..plain.len()], &plain[..], "chunk {i} differs")
            }
            (Ok(()), None) => panic!("Archive released chunk {i}, which fails authentication"),
            (Err(_), Some(_)) => panic!("Archive refused chunk {i}, which authenticates"),
            (Err(_), None) => {}
        }
        // The same through the byte-range read.
        let start = i * data.chunk;
        let mut out = vec![0u8; data.plain_len(i)];
        match (archive.read_stream(start, &mut out), want) {
            (Ok(()), Some(plain)) => assert_eq!(&out, plain, "read_stream of chunk {i} differs"),
            (Ok(()), None) if out.is_empty() => {}
            (Ok(()), None) => panic!("read_stream released chunk {i}, which fails authentication"),
            (Err(_), Some(p)) if !p.is_empty() => panic!("read_stream refused chunk {i}"),
            (Err(_), _) => {}
        }
    }
    // A run over all compared chunks: whole or nothing.
    let n = chunks.len();
    let mut slots: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| vec![0u8; archive.chunk_stored_len(i)])
        .collect();
    let mut refs: Vec<&mut [u8]> = slots.iter_mut().map(|s| &mut s[..]).collect();
    let run = archive.read_chunks(0, &mut refs);
    let all_ok = chunks.iter().all(Option::is_some);
    assert_eq!(
        run.is_ok(),
        all_ok,
        "a run is released exactly when every chunk authenticates"
    );
}
