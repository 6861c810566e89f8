//! Integration tests: the archive format through the library — round trips
//! over random trees, both suites and backends, the tamper sweep, uniqueness
//! of ids, and the golden test vectors in `tests/vectors/`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

use hpcs::crypto::index::{Kind, ROOT};
use hpcs::crypto::{Archive, Backend, DataKey, Error, FileSource, SealedArchive, Source, Suite};

use crate::util::*;

/// Reads every file of an archive into (path → bytes), plus symlinks and dirs.
/// Files are read in growing odd-sized pieces that cross chunk boundaries.
fn read_all<S: Source>(a: &Archive<S>) -> BTreeMap<String, String> {
    read_all_with(a, true)
}

fn read_all_with<S: Source>(a: &Archive<S>, pieces: bool) -> BTreeMap<String, String> {
    let t = a.tree();
    let mut out = BTreeMap::new();
    for id in 1..t.len() as u32 {
        let n = t.node(id).unwrap();
        let path = String::from_utf8_lossy(&t.path(id)).into_owned();
        let desc = match n.kind {
            Kind::Dir { .. } => format!("dir {:o}", n.mode),
            Kind::Symlink { .. } => format!(
                "link {}",
                String::from_utf8_lossy(t.symlink_target(id).unwrap())
            ),
            Kind::File { size, .. } => {
                let mut buf = vec![0u8; size as usize];
                // Read in odd-sized pieces to cross chunk boundaries.
                let mut off = 0usize;
                let mut step = if pieces { 1usize } else { usize::MAX / 4 };
                while off < buf.len() {
                    let end = (off + step).min(buf.len());
                    let got = a.read_at(id, off as u64, &mut buf[off..end]).unwrap();
                    assert_eq!(got, end - off, "short read inside {path}");
                    off = end;
                    step = step * 3 + 7;
                }
                let mut extra = [0u8; 4];
                assert_eq!(a.read_at(id, size, &mut extra).unwrap(), 0, "read past EOF");
                format!("file {:o} {} {}", n.mode, size, sha256_hex(&buf))
            }
            Kind::External { .. } => panic!("{path}: no external file in a plain archive"),
        };
        out.insert(path, desc);
    }
    out
}

fn describe_source(root: &Path) -> BTreeMap<String, String> {
    describe_tree(root).into_iter().collect()
}

#[derive(Debug, Clone)]
enum Item {
    File(Vec<String>, usize, u64),
    Link(Vec<String>, String),
    Dir(Vec<String>),
}

fn name() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-z]{1,8}",
        "[a-zA-Z0-9 _.-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != ".."),
        Just("ünïcødé-名前".to_string()),
        Just("emoji-🙂".to_string()),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let path = || prop::collection::vec(name(), 1..6);
    // Sizes at and around the 4 KiB test chunk size, and some larger.
    let size = prop_oneof![
        Just(0usize),
        Just(1),
        Just(4095),
        Just(4096),
        Just(4097),
        Just(8192),
        Just(8193),
        0usize..20_000,
    ];
    prop_oneof![
        4 => (path(), size, any::<u64>()).prop_map(|(p, s, seed)| Item::File(p, s, seed)),
        1 => (path(), "[a-z/.]{1,20}").prop_map(|(p, t)| Item::Link(p, t)),
        1 => path().prop_map(Item::Dir),
    ]
}

/// Materialises items under `root`, skipping ones that clash with earlier ones.
fn build(root: &Path, items: &[Item]) {
    std::fs::create_dir_all(root).unwrap();
    for it in items {
        let (parts, leaf) = match it {
            Item::File(p, ..) | Item::Link(p, _) | Item::Dir(p) => {
                (&p[..p.len() - 1], &p[p.len() - 1])
            }
        };
        let mut dir = root.to_path_buf();
        let mut ok = true;
        for part in parts {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    ok = false;
                    break;
                }
                Err(_) => std::fs::create_dir(&dir).unwrap(),
            }
        }
        let target = dir.join(leaf);
        if !ok || std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        match it {
            Item::File(_, size, seed) => {
                std::fs::write(&target, noise(*seed, *size)).unwrap();
                let mode = 0o600 | (*seed as u32 & 0o1077);
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            Item::Link(_, t) => std::os::unix::fs::symlink(t, &target).unwrap(),
            Item::Dir(_) => std::fs::create_dir(&target).unwrap(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(items in prop::collection::vec(item(), 0..40), chacha in any::<bool>()) {
        let dir = tmpdir();
        let src = dir.path().join("src");
        build(&src, &items);
        let (_, public) = age_keypair();
        let out = dir.path().join("a.hpcs");
        let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
        let key = pack_lib(&src, &out, 4096, suite, &public);
        for &backend in Backend::all() {
            let a = SealedArchive::open(FileSource::open(&out).unwrap())
                .unwrap()
                .unlock_with(&key, backend)
                .unwrap();
            prop_assert_eq!(read_all(&a), describe_source(&src));
        }
    }
}

#[test]
fn ten_thousand_small_files_share_chunks() {
    let dir = tmpdir();
    let src = dir.path().join("src");
    for d in 0..20 {
        let sub = src.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..520 {
            std::fs::write(
                sub.join(format!("f{f:04}")),
                noise(d * 1000 + f, (f % 97) as usize),
            )
            .unwrap();
        }
    }
    let (_, public) = age_keypair();
    let out = dir.path().join("a.hpcs");
    let key = pack_lib(&src, &out, 65536, Suite::Aes256Gcm, &public);
    let a = open_lib(&out, &key).unwrap();
    assert_eq!(a.tree().file_count(), 10_400);
    // Small files are packed: the data stream is just their bytes.
    let total: u64 = (0..520u64).map(|f| f % 97).sum::<u64>() * 20;
    assert_eq!(a.data_geometry().len(), total);
    assert!(
        a.data_geometry().chunk_count() < 10,
        "small files must share chunks"
    );
    assert_eq!(read_all_with(&a, false), describe_source(&src));
}

#[test]
fn deep_directories() {
    let dir = tmpdir();
    let src = dir.path().join("src");
    let mut p = src.clone();
    for i in 0..100 {
        p.push(format!("level{i}"));
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("leaf"), b"deep").unwrap();
    let (_, public) = age_keypair();
    let out = dir.path().join("a.hpcs");
    let key = pack_lib(&src, &out, 4096, Suite::Aes256Gcm, &public);
    let a = open_lib(&out, &key).unwrap();
    assert_eq!(read_all(&a), describe_source(&src));
}

#[test]
fn ids_keys_and_ciphertexts_are_unique() {
    let mut ids = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for _ in 0..2000 {
        assert!(ids.insert(hpcs::crypto::writer::new_archive_id().unwrap()));
        assert!(keys.insert(*DataKey::generate().unwrap().expose()));
    }
    // Packing the same tree twice gives different ids and different bytes.
    let dir = tmpdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), noise(1, 10_000)).unwrap();
    let (_, public) = age_keypair();
    let mut seen_ids = std::collections::HashSet::new();
    let mut seen_data = std::collections::HashSet::new();
    for i in 0..20 {
        let out = dir.path().join(format!("a{i}.hpcs"));
        pack_lib(&src, &out, 4096, Suite::Aes256Gcm, &public);
        let bytes = std::fs::read(&out).unwrap();
        let h = SealedArchive::open(bytes.clone()).unwrap().header().clone();
        assert!(seen_ids.insert(h.archive_id));
        assert!(seen_data.insert(bytes[h.header_len as usize..].to_vec()));
    }
}

/// A small archive with files spanning several 4 KiB chunks.
struct Fixture {
    _dir: tempfile::TempDir,
    bytes: Vec<u8>,
    key: DataKey,
    header_len: usize,
    index_offset: usize,
    chunks: u64,
}

fn fixture(seed: u64) -> Fixture {
    let dir = tmpdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big"), noise(seed, 4096 * 5 + 100)).unwrap();
    std::fs::write(src.join("small"), noise(seed + 1, 300)).unwrap();
    let (_, public) = age_keypair();
    let out = dir.path().join("a.hpcs");
    let key = pack_lib(&src, &out, 4096, Suite::Aes256Gcm, &public);
    let bytes = std::fs::read(&out).unwrap();
    let h = SealedArchive::open(bytes.clone()).unwrap().header().clone();
    Fixture {
        _dir: dir,
        header_len: h.header_len as usize,
        index_offset: h.index_offset() as usize,
        chunks: h.data_geometry().chunk_count(),
        bytes,
        key,
    }
}

/// Opens `bytes` and reads every file completely; Ok(contents) only if every
/// step authenticated.
fn try_read_all(bytes: Vec<u8>, key: &DataKey) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let a = SealedArchive::open(bytes)?.unlock(key)?;
    let t = a.tree();
    let mut out = BTreeMap::new();
    for id in 1..t.len() as u32 {
        if let Some((_, size)) = a.extent(id) {
            let mut buf = vec![0u8; size as usize];
            let n = a.read_at(id, 0, &mut buf)?;
            assert_eq!(n, size as usize, "never a short read");
            out.insert(String::from_utf8_lossy(&t.path(id)).into_owned(), buf);
        }
    }
    a.verify(&mut |_| {})?;
    Ok(out)
}

#[test]
fn tamper_sweep_header_and_index_bytes() {
    let f = fixture(7);
    let good = try_read_all(f.bytes.clone(), &f.key).unwrap();
    assert_eq!(good.len(), 2);
    // Every header byte and every index byte, flipped: refused at open.
    let index_end = f.bytes.len();
    for i in (0..f.header_len).chain(f.index_offset..index_end) {
        let mut b = f.bytes.clone();
        b[i] ^= 0x01;
        let r = SealedArchive::open(b).and_then(|s| s.unlock(&f.key));
        assert!(r.is_err(), "flipped byte {i} accepted at open");
    }
}

#[test]
fn tamper_sweep_data_chunks() {
    let f = fixture(8);
    let good = try_read_all(f.bytes.clone(), &f.key).unwrap();
    let stride = 4096 + 16;
    let chunk = |b: &[u8], i: u64| -> Vec<u8> {
        let s = f.header_len + i as usize * stride;
        let e = (s + stride).min(f.index_offset);
        b[s..e].to_vec()
    };
    let put = |b: &mut Vec<u8>, i: u64, data: &[u8]| {
        let s = f.header_len + i as usize * stride;
        b[s..s + data.len()].copy_from_slice(data);
    };
    let check = |what: String, b: Vec<u8>| match try_read_all(b, &f.key) {
        Err(_) => {}
        Ok(got) => panic!("{what}: accepted (same bytes: {})", got == good),
    };
    let full = f.chunks - 1; // all chunks but the last are full-sized
    for i in 0..f.chunks {
        // One bit flipped in the chunk (ciphertext and tag).
        for off in [0usize, 100, stride - 1] {
            let mut b = f.bytes.clone();
            let pos = (f.header_len + i as usize * stride + off).min(f.index_offset - 1);
            b[pos] ^= 0x80;
            check(format!("flip chunk {i} +{off}"), b);
        }
        // Deleted (the archive shrinks by one chunk).
        let mut b = f.bytes.clone();
        let s = f.header_len + i as usize * stride;
        let e = (s + stride).min(f.index_offset);
        b.drain(s..e);
        check(format!("delete chunk {i}"), b);
        // Duplicated (inserted again after itself).
        let mut b = f.bytes.clone();
        let c = chunk(&f.bytes, i);
        b.splice(e..e, c);
        check(format!("duplicate chunk {i}"), b);
        // Replaced by its neighbour (same length for full chunks).
        if i + 1 < full {
            let mut b = f.bytes.clone();
            let next = chunk(&f.bytes, i + 1);
            put(&mut b, i, &next);
            check(format!("overwrite chunk {i} with {}", i + 1), b);
            // Swapped with its neighbour.
            let mut b = f.bytes.clone();
            let this = chunk(&f.bytes, i);
            put(&mut b, i, &next);
            put(&mut b, i + 1, &this);
            check(format!("swap chunks {i} and {}", i + 1), b);
        }
        // Truncated at its start (a chunk boundary) and in its middle.
        check(format!("truncate at chunk {i}"), f.bytes[..s].to_vec());
        check(
            format!("truncate inside chunk {i}"),
            f.bytes[..s + 10].to_vec(),
        );
    }
    // Spliced in from another archive with the same recipients and layout
    // (its header may differ in length: the age header carries a random
    // grease stanza, so its chunks are cut at its own offsets).
    let other = fixture(8);
    assert_eq!(other.chunks, f.chunks);
    for i in 0..f.chunks {
        let mut b = f.bytes.clone();
        let s = other.header_len + i as usize * stride;
        let e = (s + stride).min(other.index_offset);
        let c = other.bytes[s..e].to_vec();
        put(&mut b, i, &c);
        check(format!("splice chunk {i} from another archive"), b);
    }
    // Appended garbage.
    let mut b = f.bytes.clone();
    b.extend_from_slice(&[0; 32]);
    check("appended bytes".into(), b);
}

#[test]
fn failed_chunk_releases_nothing_of_its_read() {
    let f = fixture(9);
    let mut b = f.bytes.clone();
    // Corrupt chunk 2 of the data stream.
    let pos = f.header_len + 2 * (4096 + 16) + 5;
    b[pos] ^= 1;
    let a = SealedArchive::open(b).unwrap().unlock(&f.key).unwrap();
    let big = a.tree().resolve("big").unwrap();
    let (start, _) = a.extent(big).unwrap();
    assert_eq!(start % 4096, 0, "large files are chunk-aligned");
    let first_chunk = start / 4096;
    // A read spanning chunks first..first+4 fails as a whole, buffer untouched.
    let mut buf = vec![0xAAu8; 4096 * 4];
    let bad = 2 - first_chunk;
    let r = a.read_at(big, 0, &mut buf);
    if bad < 4 {
        match r {
            Err(Error::ChunkAuth { chunk, .. }) => assert_eq!(chunk, 2),
            other => panic!("expected ChunkAuth, got {other:?}"),
        }
        assert!(buf.iter().all(|&x| x == 0xAA), "no byte released");
    }
    // A read of other chunks still works.
    let mut one = vec![0u8; 100];
    assert_eq!(a.read_at(big, 4096 * 4, &mut one).unwrap(), 100);
}

#[test]
fn truncation_under_a_live_reader_is_an_error() {
    let f = fixture(10);
    let dir = tmpdir();
    let path = dir.path().join("a.hpcs");
    std::fs::write(&path, &f.bytes).unwrap();
    let a = open_lib(&path, &f.key).unwrap();
    let big = a.tree().resolve("big").unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(f.header_len as u64 + 4096).unwrap();
    let mut buf = vec![0u8; 4096 * 3];
    assert!(a.read_at(big, 4096, &mut buf).is_err());
}

#[test]
fn wrong_key_is_reported_before_any_chunk() {
    let f = fixture(11);
    let other = DataKey::generate().unwrap();
    match SealedArchive::open(f.bytes.clone()).unwrap().unlock(&other) {
        Err(Error::WrongKey) => {}
        r => panic!("expected WrongKey, got {:?}", r.err()),
    }
}

#[cfg(all(feature = "aws-lc", feature = "rustcrypto"))]
#[test]
fn backends_agree_byte_for_byte() {
    use hpcs::crypto::aead::{ChunkCipher, TAG_LEN};
    use hpcs::crypto::keys::SubKey;
    use hpcs::crypto::nonce::ChunkNonce;
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for (len, idx, last) in [
            (0usize, 0u64, true),
            (1, 5, false),
            (4096, 1 << 40, true),
            (65536, 3, false),
        ] {
            let k = SubKey::from_bytes([idx as u8 ^ 0x5a; 32]);
            let a = ChunkCipher::new(suite, Backend::AwsLc, &k);
            let b = ChunkCipher::new(suite, Backend::RustCrypto, &k);
            let plain = noise(idx ^ len as u64, len);
            let mut x = plain.clone();
            x.resize(len + TAG_LEN, 0);
            let mut y = x.clone();
            a.seal(ChunkNonce::new(idx, last), &mut x);
            b.seal(ChunkNonce::new(idx, last), &mut y);
            assert_eq!(
                x, y,
                "{suite:?} {len}: both backends seal to the same bytes"
            );
            // Each opens what the other sealed.
            let mut xa = x.clone();
            b.open(ChunkNonce::new(idx, last), &mut xa).unwrap();
            assert_eq!(&xa[..len], &plain[..]);
            a.open(ChunkNonce::new(idx, last), &mut y).unwrap();
            assert_eq!(&y[..len], &plain[..]);
            // And both reject the wrong finality.
            let mut z = x.clone();
            assert!(a.open(ChunkNonce::new(idx, !last), &mut z).is_err());
            let mut z = x.clone();
            assert!(b.open(ChunkNonce::new(idx, !last), &mut z).is_err());
        }
    }
}

#[cfg(all(feature = "aws-lc", feature = "rustcrypto"))]
#[test]
fn archives_cross_backends() {
    use std::sync::atomic::AtomicBool;
    let dir = tmpdir();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), noise(3, 100_000)).unwrap();
    let scan = hpcs::pack::scan(&src, 4096).unwrap();
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for (w, r) in [
            (Backend::AwsLc, Backend::RustCrypto),
            (Backend::RustCrypto, Backend::AwsLc),
        ] {
            let key = DataKey::generate().unwrap();
            let out = dir.path().join("x.hpcs");
            let opts = hpcs::crypto::WriteOptions {
                suite,
                chunk_size: 4096,
                backend: w,
                features: 0,
            };
            hpcs::pack::write(
                &scan,
                &out,
                true,
                &opts,
                &key,
                [4; 32],
                vec![],
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .unwrap();
            let a = SealedArchive::open(FileSource::open(&out).unwrap())
                .unwrap()
                .unlock_with(&key, r)
                .unwrap();
            a.verify(&mut |_| {}).unwrap();
            let id = a.tree().resolve("f").unwrap();
            let mut buf = vec![0u8; 100_000];
            a.read_at(id, 0, &mut buf).unwrap();
            assert_eq!(buf, noise(3, 100_000));
        }
    }
}

#[cfg(not(all(feature = "aws-lc", feature = "rustcrypto")))]
#[test]
fn differential_tests_need_both_backends() {
    // CI builds with both backends; fail there rather than skip silently.
    assert!(
        std::env::var_os("HPCS_REQUIRE_BOTH_BACKENDS").is_none(),
        "build with --features rustcrypto to run the backend differential tests"
    );
    eprintln!("SKIP: differential backend tests need --features rustcrypto");
}

#[test]
fn root_of_single_file_archive() {
    let dir = tmpdir();
    let f = dir.path().join("only.txt");
    std::fs::write(&f, b"hello").unwrap();
    let (_, public) = age_keypair();
    let out = dir.path().join("a.hpcs");
    let key = pack_lib(&f, &out, 4096, Suite::Aes256Gcm, &public);
    let a = open_lib(&out, &key).unwrap();
    assert_eq!(a.tree().children(ROOT).len(), 1);
    let id = a.tree().resolve("only.txt").unwrap();
    let mut b = [0u8; 5];
    a.read_at(id, 0, &mut b).unwrap();
    assert_eq!(&b, b"hello");
}
