//! Header parse + unlock with the golden vectors' keys. Byte 0 chooses
//! whether the key check and MAC are re-computed after mutation (so the
//! fuzzer reaches the length checks, the index and the final chunk), the
//! rest is the archive.

use hpcs::crypto::{Backend, DataKey, Header, SealedArchive};

/// One execution of the target on `input`.
pub fn run(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        crate::fix_header(&mut bytes);
    }
    let _ = Header::parse_prefix(&bytes);
    let _ = Header::parse(&bytes);
    let Ok(sealed) = SealedArchive::open(bytes.clone()) else {
        return;
    };
    let h = sealed.header();
    let _ = (
        h.archive_id_hex(),
        h.data_offset(),
        h.index_offset(),
        h.archive_len(),
    );
    let _ = format!("{h:?}");
    let key = DataKey::from_bytes(crate::key_for(&bytes).unwrap_or(crate::golden_keys()[0]));
    let Ok(archive) = sealed.unlock_with(&key, Backend::RustCrypto) else {
        return;
    };
    // Walk the tree and read every file through the library.
    let tree = archive.tree();
    let mut buf = vec![0u8; 8192];
    for id in 0..tree.len() as u32 {
        let _ = tree.path(id);
        let _ = tree.symlink_target(id);
        let _ = tree.children(id);
        if let Some((_, size)) = archive.extent(id) {
            let mut off = 0;
            while off < size.min(1 << 16) {
                match archive.read_at(id, off, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => off += n as u64,
                }
            }
        }
    }
}
