//! Golden test vectors (`tests/vectors/`): one archive per case, named
//! `<area>_<case>.hpcs`, with `<area>_<case>.expect` stating the outcome.
//!
//! `.expect` format, one `key: value` per line:
//! - `expect: success | not an archive | unsupported | wrong key | header failure | length failure | payload failure | external changed`
//! - `identity: <file in tests/vectors/>`
//! - for success, one `file: <path> <size> <sha256>` per regular file, and
//!   `link: <path> <target>` / `dir: <path>` for the other entries;
//! - for payload failure, `released: <path> <sha256 of the bytes released
//!   before the failure>`: reading the file chunk by chunk must release
//!   exactly those bytes (all from authentic chunks) and then fail.
//! - `first-release: unsupported` for an archive the first release of
//!   format v1 (which knew no feature bit) must refuse with exit code 11.
//!
//! A reference archive (FORMAT.md "External Crypt4GH files") names `.c4gh`
//! files next to it, in `tests/vectors/<area>_<case>.files/`.
//!
//! The vectors are generated once (`cargo test --test it -- --ignored
//! generate_vectors`, which refuses to overwrite) and committed; archives of
//! a released format version must keep decrypting forever.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hpcs::crypto::index::Kind;
use hpcs::crypto::{Error, FileSource, SealedArchive};

use crate::util::*;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Success,
    NotAnArchive,
    Unsupported,
    WrongKey,
    Header,
    Length,
    Payload,
    ExternalChanged,
}

fn parse_outcome(s: &str) -> Outcome {
    match s {
        "success" => Outcome::Success,
        "not an archive" => Outcome::NotAnArchive,
        "unsupported" => Outcome::Unsupported,
        "wrong key" => Outcome::WrongKey,
        "header failure" => Outcome::Header,
        "length failure" => Outcome::Length,
        "payload failure" => Outcome::Payload,
        "external changed" => Outcome::ExternalChanged,
        other => panic!("unknown expectation {other:?}"),
    }
}

fn classify(e: &Error) -> Outcome {
    match e {
        Error::NotAnArchive => Outcome::NotAnArchive,
        Error::UnsupportedVersion(_) | Error::UnsupportedFeatures(_) | Error::UnknownSuite(_) => {
            Outcome::Unsupported
        }
        Error::WrongKey => Outcome::WrongKey,
        Error::MalformedHeader(_) | Error::HeaderTampered => Outcome::Header,
        Error::Truncated { .. } | Error::TrailingData(_) => Outcome::Length,
        Error::IndexTampered | Error::IndexInvalid(_) | Error::ChunkAuth { .. } => Outcome::Payload,
        other => panic!("unexpected error class: {other}"),
    }
}

fn classify_ref(e: &hpcs::reference::RefError) -> Outcome {
    use hpcs::reference::RefError as R;
    match e {
        R::Format(e) => classify(e),
        R::Missing { .. } | R::Changed { .. } => Outcome::ExternalChanged,
        R::SegmentAuth { .. } | R::Invalid(_) => Outcome::Payload,
        other => panic!("unexpected error class: {other}"),
    }
}

struct Expect {
    outcome: Outcome,
    first_release_refuses: bool,
    identity: String,
    entries: BTreeMap<String, String>,
    released: BTreeMap<String, String>,
}

fn read_expect(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap();
    let mut e = Expect {
        outcome: Outcome::Success,
        first_release_refuses: false,
        identity: String::new(),
        entries: BTreeMap::new(),
        released: BTreeMap::new(),
    };
    let mut saw = false;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        match k {
            "expect" => {
                e.outcome = parse_outcome(v);
                saw = true;
            }
            "identity" => e.identity = v.to_string(),
            "first-release" if v == "unsupported" => e.first_release_refuses = true,
            "file" | "link" | "dir" => {
                let (p, rest) = v.split_once(' ').unwrap_or((v, ""));
                e.entries
                    .insert(p.to_string(), format!("{k} {rest}").trim().to_string());
            }
            "released" => {
                let (p, h) = v.split_once(' ').unwrap();
                e.released.insert(p.to_string(), h.to_string());
            }
            _ => panic!("unknown key {k:?} in {}", path.display()),
        }
    }
    assert!(saw, "{} has no expect line", path.display());
    e
}

/// Opens a vector and describes its outcome.
fn evaluate(
    archive: &Path,
    identity: &Path,
) -> (
    Result<BTreeMap<String, String>, Outcome>,
    BTreeMap<String, String>,
) {
    let mut released = BTreeMap::new();
    let sealed = match SealedArchive::open(FileSource::open(archive).unwrap()) {
        Ok(s) => s,
        Err(e) => return (Err(classify(&e)), released),
    };
    // A git checkout leaves the (public on purpose) identity at mode 0644,
    // which hpcs refuses: load a private copy.
    let copy = tmpdir();
    let private = copy.path().join("identity.txt");
    write_private(&private, &std::fs::read_to_string(identity).unwrap());
    let ids = hpcs::keys::load_identities(&private).unwrap();
    let key = match hpcs::keys::unwrap_age(&sealed.header().stanzas, &ids) {
        Ok(k) => k,
        Err(hpcs::keys::KeyError::NoMatchingIdentity) => return (Err(Outcome::WrongKey), released),
        Err(e) => panic!("unexpected key error {e}"),
    };
    let a = match sealed.unlock(&key) {
        Ok(a) => a,
        Err(e) => return (Err(classify(&e)), released),
    };
    let externals = match hpcs::reference::ExternalFiles::open(&a, archive, true) {
        Ok(x) => x,
        Err(e) => return (Err(classify_ref(&e)), released),
    };
    let t = a.tree();
    let cs = a.header().chunk_size as usize;
    let mut entries = BTreeMap::new();
    for id in 1..t.len() as u32 {
        let path = String::from_utf8_lossy(&t.path(id)).into_owned();
        let n = t.node(id).unwrap();
        let desc = match n.kind {
            Kind::Dir { .. } => "dir".to_string(),
            Kind::Symlink { .. } => format!(
                "link {}",
                String::from_utf8_lossy(t.symlink_target(id).unwrap())
            ),
            Kind::File { size, .. } => {
                let mut got = Vec::new();
                let mut buf = vec![0u8; cs];
                let mut off = 0u64;
                while off < size {
                    match a.read_at(id, off, &mut buf) {
                        Ok(n) => {
                            assert!(n > 0);
                            got.extend_from_slice(&buf[..n]);
                            off += n as u64;
                        }
                        Err(e) => {
                            released.insert(path.clone(), sha256_hex(&got));
                            return (Err(classify(&e)), released);
                        }
                    }
                }
                format!("file {} {}", size, sha256_hex(&got))
            }
            Kind::External { ext, size } => {
                let f = externals.get(ext).unwrap();
                let mut got = vec![0u8; size as usize];
                match f.read_at(&a, 0, &mut got) {
                    Ok(n) => assert_eq!(n as u64, size),
                    Err(e) => return (Err(classify_ref(&e)), released),
                }
                format!("file {} {}", size, sha256_hex(&got))
            }
        };
        entries.insert(path, desc);
    }
    if let Err(e) = a.verify(&mut |_| {}) {
        return (Err(classify(&e)), released);
    }
    if let Err(e) = externals.verify(&a, &mut |_| {}) {
        return (Err(classify_ref(&e)), released);
    }
    (Ok(entries), released)
}

#[test]
fn vectors_have_their_expected_outcome() {
    let dir = vectors_dir();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hpcs"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected the committed vectors, found {}",
        cases.len()
    );
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            name.contains('_'),
            "{name}: vectors are named <area>_<case>"
        );
        let exp = read_expect(&case.with_extension("expect"));
        if exp.first_release_refuses {
            // What the first v1 release does with the header: check the
            // features against those it knew, and exit 11.
            let h = SealedArchive::open(FileSource::open(&case).unwrap()).unwrap();
            let e = hpcs::crypto::header::check_features(
                h.header().features,
                hpcs::crypto::header::V1_FIRST_RELEASE_FEATURES,
            )
            .unwrap_err();
            assert_eq!(
                hpcs::exit::for_format(&e),
                hpcs::exit::UNSUPPORTED,
                "{name}"
            );
        }
        let (result, released) = evaluate(&case, &dir.join(&exp.identity));
        match (exp.outcome, result) {
            (Outcome::Success, Ok(entries)) => assert_eq!(entries, exp.entries, "{name}"),
            (want, Err(got)) => {
                assert_eq!(got, want, "{name}");
                assert_eq!(released, exp.released, "{name}: released bytes");
            }
            (want, Ok(_)) => panic!("{name}: expected {want:?}, but it opened and read fine"),
        }
    }
}

// ---------------------------------------------------------------------------
// Generator (run once; refuses to overwrite committed vectors).

fn write_case(dir: &Path, name: &str, bytes: &[u8], expect: &str) {
    let a = dir.join(format!("{name}.hpcs"));
    assert!(
        !a.exists(),
        "{} exists: vectors are never regenerated",
        a.display()
    );
    std::fs::write(&a, bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.expect")), expect).unwrap();
}

fn describe(archive_bytes: &[u8], dir: &Path, identity: &Path) -> String {
    let tmp = dir.join(".probe.hpcs");
    std::fs::write(&tmp, archive_bytes).unwrap();
    let (r, released) = evaluate(&tmp, identity);
    std::fs::remove_file(&tmp).unwrap();
    let mut s = String::new();
    match r {
        Ok(entries) => {
            s.push_str("expect: success\n");
            for (p, d) in entries {
                let (k, rest) = d.split_once(' ').unwrap_or((&d, ""));
                s.push_str(&format!("{k}: {p} {rest}\n").replace(" \n", "\n"));
            }
        }
        Err(o) => {
            let word = match o {
                Outcome::NotAnArchive => "not an archive",
                Outcome::Unsupported => "unsupported",
                Outcome::WrongKey => "wrong key",
                Outcome::Header => "header failure",
                Outcome::Length => "length failure",
                Outcome::Payload => "payload failure",
                Outcome::ExternalChanged => "external changed",
                Outcome::Success => unreachable!(),
            };
            s.push_str(&format!("expect: {word}\n"));
            for (p, h) in released {
                s.push_str(&format!("released: {p} {h}\n"));
            }
        }
    }
    s
}

#[test]
#[ignore = "generates tests/vectors once; run by hand with --ignored"]
fn generate_vectors() {
    use hpcs::crypto::Suite;
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let id_path = dir.join("identity.txt");
    let recipient = if id_path.exists() {
        let text = std::fs::read_to_string(&id_path).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_string()
    } else {
        let (secret, public) = age_keypair();
        write_private(&id_path, &format!("# TEST VECTOR KEY, PUBLIC ON PURPOSE: never use it for data\n# public key: {public}\n{secret}\n"));
        public
    };
    let (other_secret, _) = age_keypair();
    let other_id = dir.join("other-identity.txt");
    if !other_id.exists() {
        write_private(
            &other_id,
            &format!("# TEST VECTOR KEY that opens none of the vectors\n{other_secret}\n"),
        );
    }
    let work = tmpdir();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("big.bin"), noise(42, 4096 * 3 + 1234)).unwrap();
    std::fs::write(src.join("dir/small.txt"), b"small file\n").unwrap();
    std::fs::write(src.join("dir/sub/empty"), b"").unwrap();
    std::fs::write(src.join("dir/unicode-名前.txt"), "ünïcødé\n").unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("dir/link")).unwrap();
    std::fs::hard_link(src.join("big.bin"), src.join("dir/hardlink.bin")).unwrap();

    let pack = |suite: Suite, chunk: u32, src: &Path| -> (Vec<u8>, hpcs::crypto::DataKey) {
        let out = work.path().join("tmp.hpcs");
        let key = pack_lib(src, &out, chunk, suite, &recipient);
        (std::fs::read(&out).unwrap(), key)
    };
    let ident = "identity: identity.txt\n";
    let case = |name: &str, bytes: Vec<u8>, note: &str| {
        let exp = format!("# {note}\n{ident}{}", describe(&bytes, &dir, &id_path));
        write_case(&dir, name, &bytes, &exp);
    };

    let (tree, _) = pack(Suite::Aes256Gcm, 4096, &src);
    let (chacha, _) = pack(Suite::ChaCha20Poly1305, 4096, &src);
    let empty_dir = work.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let (empty, _) = pack(Suite::Aes256Gcm, 65536, &empty_dir);
    let one = work.path().join("one-byte");
    std::fs::write(&one, b"x").unwrap();
    let (single, _) = pack(Suite::Aes256Gcm, 65536, &one);
    let h = SealedArchive::open(tree.clone()).unwrap().header().clone();
    let hl = h.header_len as usize;
    let stride = 4096 + 16;

    case(
        "format_tree-aes",
        tree.clone(),
        "v1 golden: tree with big file over 4 chunks, small files, symlink, hard link, unicode",
    );
    case(
        "format_tree-chacha",
        chacha,
        "v1 golden: same tree, ChaCha20-Poly1305",
    );
    case("format_empty-dir", empty, "v1 golden: empty directory");
    case(
        "format_single-file",
        single,
        "v1 golden: a single 1-byte file as the source",
    );

    let mut b = tree.clone();
    b[0] = b'X';
    case("header_bad-magic", b, "first magic byte changed");
    let mut b = tree.clone();
    b[8] = 2;
    case("header_version-2", b, "version field set to 2");
    let mut b = tree.clone();
    b[12] = 1;
    case(
        "header_unknown-feature",
        b,
        "required feature bit 0 (compression) set",
    );
    let mut b = tree.clone();
    b[10] = 9;
    case("header_unknown-suite", b, "suite 9");
    let mut b = tree.clone();
    b[hl - 1] ^= 1;
    case("header_flipped-mac", b, "last MAC byte flipped");
    let mut b = tree.clone();
    b[60] ^= 1;
    case("header_flipped-data-len", b, "data_len changed");
    let mut b = tree.clone();
    b[17] = 0x20; // chunk size 4096 -> 8192
    case(
        "header_changed-chunk-size",
        b,
        "chunk size 4096 changed to 8192 (still valid)",
    );

    // A stanza for the same identity but a different key, with the header re-MACed
    // under that key: the key check catches it.
    {
        let sealed = SealedArchive::open(tree.clone()).unwrap();
        let h = sealed.header().clone();
        let evil = hpcs::crypto::DataKey::generate().unwrap();
        let r = hpcs::keys::parse_recipient(&recipient).unwrap();
        let st = hpcs::keys::wrap_recipients(&evil, std::slice::from_ref(&r)).unwrap();
        let mut stanzas = h.stanzas.clone();
        stanzas[0] = st;
        // Same header bytes except the stanza, MAC left as is.
        let forged = hpcs::crypto::Header::seal(
            &evil,
            h.suite,
            h.chunk_size,
            h.archive_id,
            h.data_len,
            h.index_len,
            stanzas,
        )
        .unwrap();
        let mut fb = forged.to_bytes();
        // Keep the real key check, so only the key check can object.
        fb[72..104].copy_from_slice(&h.key_check);
        let mut b = fb;
        b.extend_from_slice(&tree[hl..]);
        case(
            "key_substituted-stanza",
            b,
            "age stanza replaced by one for the same identity holding another data key",
        );
    }
    {
        let (foreign, _) = {
            let out = work.path().join("foreign.hpcs");
            let (_, pubk) = age_keypair();
            let key = pack_lib(&src, &out, 4096, Suite::Aes256Gcm, &pubk);
            (std::fs::read(&out).unwrap(), key)
        };
        case(
            "key_foreign-archive",
            foreign,
            "packed for another recipient: no identity matches",
        );
    }

    case(
        "length_truncated-mid-chunk",
        tree[..hl + stride + 100].to_vec(),
        "cut inside data chunk 1",
    );
    case(
        "length_truncated-at-boundary",
        tree[..hl + 2 * stride].to_vec(),
        "cut after data chunk 1",
    );
    let mut b = tree.clone();
    b.extend_from_slice(b"appended");
    case("length_appended", b, "8 bytes appended");

    let io = h.index_offset() as usize;
    let mut b = tree.clone();
    b[io + 3] ^= 0x10;
    case("index_flipped", b, "a byte of the index stream flipped");

    // Payload: the big file starts at a chunk boundary after the small files.
    let mut b = tree.clone();
    b[hl + 2 * stride + 7] ^= 0x01;
    case(
        "payload_flipped-chunk-2",
        b,
        "a byte of data chunk 2 flipped",
    );
    let mut b = tree.clone();
    let (c1, c2) = (hl + stride, hl + 2 * stride);
    let tmp = b[c1..c2].to_vec();
    let tmp2 = b[c2..c2 + stride].to_vec();
    b[c1..c2].copy_from_slice(&tmp2);
    b[c2..c2 + stride].copy_from_slice(&tmp);
    case(
        "payload_swapped-chunks-1-2",
        b,
        "data chunks 1 and 2 swapped",
    );
    let mut b = tree.clone();
    let tag_pos = hl + 3 * stride - 1;
    b[tag_pos] ^= 0x80;
    case(
        "payload_flipped-tag-2",
        b,
        "last tag byte of data chunk 2 flipped",
    );
}

/// Reference archives (FORMAT.md "External Crypt4GH files"): a golden one
/// over `.c4gh` files made by the codec (its Crypt4GH key, public on
/// purpose, is `c4gh-identity.sec`), one with an unknown feature bit, and
/// two whose `.c4gh` files were tampered with after packing.
#[test]
#[ignore = "generates the reference-archive vectors once; run by hand with --ignored"]
fn generate_reference_vectors() {
    use hpcs::crypt4gh::{EditList, SecretKey, WriterOptions};
    let dir = vectors_dir();
    let id_path = dir.join("identity.txt");
    let recipient = std::fs::read_to_string(&id_path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap();
    let sk_path = dir.join("c4gh-identity.sec");
    assert!(!sk_path.exists(), "vectors are never regenerated");
    let sk = SecretKey::generate().unwrap();
    let text = sk
        .to_file_text(None, Some("TEST VECTOR KEY, PUBLIC ON PURPOSE"))
        .unwrap();
    std::fs::write(&sk_path, text.as_bytes()).unwrap();
    let c4gh = |plain: &[u8], edit_list: Option<EditList>| {
        let options = WriterOptions {
            sender: None,
            edit_list,
        };
        hpcs::crypt4gh::encrypt(plain, &[sk.public_key()], options).unwrap()
    };
    let seg = hpcs::crypt4gh::SEGMENT_SIZE;
    let pack = |case: &str, note: &str, tamper: &dyn Fn(&std::path::Path)| {
        let files = dir.join(format!("{case}.files"));
        std::fs::create_dir(&files).unwrap();
        std::fs::create_dir(files.join("sub")).unwrap();
        std::fs::write(files.join("hello.txt.c4gh"), c4gh(b"hello, world\n", None)).unwrap();
        std::fs::write(
            files.join("sub/two.bin.c4gh"),
            c4gh(&noise(7, 2 * seg + 3), None),
        )
        .unwrap();
        let e = EditList::new(vec![10, seg as u64, 5, 20]).unwrap();
        std::fs::write(
            files.join("sub/cut.bin.c4gh"),
            c4gh(&noise(8, 2 * seg), Some(e)),
        )
        .unwrap();
        std::fs::write(files.join("empty.c4gh"), c4gh(b"", None)).unwrap();
        let out = dir.join(format!("{case}.hpcs"));
        let scan = hpcs::reference::scan(
            std::slice::from_ref(&files),
            &out,
            &sk,
            hpcs::reference::Placement::Relative,
        )
        .unwrap();
        let key = hpcs::crypto::DataKey::generate().unwrap();
        let r = hpcs::keys::parse_recipient(&recipient).unwrap();
        let stanza = hpcs::keys::wrap_recipients(&key, std::slice::from_ref(&r)).unwrap();
        let id = hpcs::crypto::writer::new_archive_id().unwrap();
        hpcs::reference::write(
            &scan,
            &out,
            false,
            &hpcs::crypto::WriteOptions::default(),
            &key,
            id,
            vec![stanza],
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
        tamper(&files);
        let bytes = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        let exp = format!(
            "# {note}\nidentity: identity.txt\nfirst-release: unsupported\n{}",
            describe(&bytes, &dir, &id_path)
        );
        write_case(&dir, case, &bytes, &exp);
        bytes
    };
    let golden = pack(
        "reference_c4gh",
        "v1 golden reference archive (feature bit 1): four .c4gh files in reference_c4gh.files/, one with an edit list, one empty",
        &|_| {},
    );
    let mut b = golden.clone();
    b[15] |= 0x80;
    let exp = format!(
        "# the golden reference archive with required feature bit 31 also set\nidentity: identity.txt\n{}",
        describe(&b, &dir, &id_path)
    );
    write_case(&dir, "reference_unknown-feature", &b, &exp);
    let me = sk.clone();
    pack(
        "reference_swapped-segments",
        "segments 0 and 1 of sub/two.bin.c4gh swapped after packing (Crypt4GH alone accepts it)",
        &move |files| {
            let p = files.join("sub/two.bin.c4gh");
            let f = std::fs::read(&p).unwrap();
            let h = hpcs::crypt4gh::Header::parse(&f, &me).unwrap().byte_len() as usize;
            let c = hpcs::crypt4gh::CIPHER_SEGMENT_SIZE;
            let swapped = [&f[..h], &f[h + c..h + 2 * c], &f[h..h + c], &f[h + 2 * c..]].concat();
            std::fs::write(&p, swapped).unwrap();
        },
    );
    let me = sk.clone();
    pack(
        "reference_injected-packet",
        "a data-key packet sealed to the reader's public key added to hello.txt.c4gh after packing",
        &move |files| {
            let p = files.join("hello.txt.c4gh");
            let f = std::fs::read(&p).unwrap();
            let k = hpcs::crypt4gh::DataKey::generate().unwrap();
            let extra = hpcs::crypt4gh::header::build(
                &[k],
                None,
                &[me.public_key()],
                &SecretKey::generate().unwrap(),
            )
            .unwrap();
            let mut out = f[..16].to_vec();
            let n = u32::from_le_bytes(out[12..16].try_into().unwrap()) + 1;
            out[12..16].copy_from_slice(&n.to_le_bytes());
            let h = hpcs::crypt4gh::Header::parse(&f, &me).unwrap().byte_len() as usize;
            out.extend_from_slice(&f[16..h]);
            out.extend_from_slice(&extra[16..]);
            out.extend_from_slice(&f[h..]);
            std::fs::write(&p, out).unwrap();
        },
    );
}
