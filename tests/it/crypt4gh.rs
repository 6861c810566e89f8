//! Interop tests of the Crypt4GH codec (`hpcs::crypt4gh`) with the Python
//! reference implementation (PyPI `crypt4gh`, installed by tools/setup.sh)
//! as the other side: files and keys its command line makes are read by the
//! codec, files and keys the codec makes are read by its command line. What
//! the command line cannot make (edit lists of several ranges, several data
//! keys, bcrypt/PBKDF2 key files) comes from the reference's own functions
//! through `c4gh_peer.py`. Without `crypt4gh` on PATH the tests print SKIP,
//! unless `HPCS_REQUIRE_C4GH=1` (CI), which makes them fail.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hpcs::crypt4gh::keys::Kdf;
use hpcs::crypt4gh::{
    decrypt_stream, header, DataKey, DataKeys, EditList, Error, Header, PublicKey, Reader,
    SecretKey, Writer, WriterOptions, SEGMENT_SIZE,
};
use hpcs::crypto::FileSource;

use crate::util::tmpdir;

const SEG: usize = SEGMENT_SIZE;
/// Sizes around the segment boundaries, and empty.
const SIZES: [usize; 6] = [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 7];
const PASS: &str = "correct horse battery staple";

// ---------------------------------------------------------------- harness

/// True when the reference CLI is on PATH; otherwise SKIP (false), or fail
/// when HPCS_REQUIRE_C4GH=1.
fn have_reference(test: &str) -> bool {
    let found = ["crypt4gh", "crypt4gh-keygen"].iter().all(|name| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    });
    if !found {
        assert!(
            std::env::var("HPCS_REQUIRE_C4GH").as_deref() != Ok("1"),
            "HPCS_REQUIRE_C4GH=1 but `crypt4gh`/`crypt4gh-keygen` are not on PATH (pip install crypt4gh, or tools/setup.sh)"
        );
        eprintln!("SKIP {test}: `crypt4gh` not on PATH (pip install crypt4gh)");
    }
    found
}

/// A temporary directory for `test`, or `None` (SKIP) without the reference.
fn setup(test: &str) -> Option<tempfile::TempDir> {
    have_reference(test).then(tmpdir)
}

/// A key pair `crypt4gh-keygen` makes without passphrase, and its secret key
/// as the codec loads it.
fn reference_key(dir: &Path, name: &str) -> (PathBuf, PathBuf, SecretKey) {
    let (sk, pk) = keygen(dir, name, None);
    let key = SecretKey::read_file(&sk, None).expect("load the reference's key");
    (sk, pk, key)
}

/// Runs `cmd` with `stdin` from a file holding `input`; returns stdout,
/// panicking with stderr on failure.
fn run_with_input(cmd: &mut Command, dir: &Path, input: &[u8]) -> Vec<u8> {
    let inp = dir.join(format!("stdin-{}", rand_u64()));
    std::fs::write(&inp, input).unwrap();
    let out = cmd
        .stdin(File::open(&inp).unwrap())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn the reference");
    std::fs::remove_file(&inp).unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A key pair from `crypt4gh-keygen`, the private key sealed under
/// `passphrase` (scrypt, the reference's choice) or in the clear.
fn keygen(dir: &Path, name: &str, passphrase: Option<&str>) -> (PathBuf, PathBuf) {
    let (sk, pk) = (
        dir.join(format!("{name}.sec")),
        dir.join(format!("{name}.pub")),
    );
    // setsid: no controlling terminal, so getpass reads the passphrase from stdin
    let mut cmd = Command::new("setsid");
    cmd.args(["crypt4gh-keygen", "-C", name, "--sk"])
        .arg(&sk)
        .arg("--pk")
        .arg(&pk);
    let input = match passphrase {
        Some(p) => format!("{p}\n{p}\n"),
        None => {
            cmd.arg("--nocrypt");
            String::new()
        }
    };
    run_with_input(&mut cmd, dir, input.as_bytes());
    (sk, pk)
}

fn reference_encrypt(dir: &Path, plain: &[u8], recipients: &[&Path]) -> Vec<u8> {
    let mut cmd = Command::new("crypt4gh");
    cmd.arg("encrypt");
    for r in recipients {
        cmd.arg("--recipient_pk").arg(r);
    }
    run_with_input(&mut cmd, dir, plain)
}

fn reference_decrypt(
    dir: &Path,
    file: &[u8],
    sk: &Path,
    passphrase: Option<&str>,
    extra: &[&str],
) -> Vec<u8> {
    let mut cmd = Command::new("crypt4gh");
    cmd.args(["decrypt", "--sk"]).arg(sk).args(extra);
    if let Some(p) = passphrase {
        cmd.env("C4GH_PASSPHRASE", p);
    }
    run_with_input(&mut cmd, dir, file)
}

fn peer(dir: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], input: &[u8]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/c4gh_peer.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    for a in args {
        cmd.arg(a);
    }
    run_with_input(&mut cmd, dir, input)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

/// xorshift64*: reproducible pseudo-random bytes and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn our_decrypt(file: &[u8], key: &SecretKey) -> Vec<u8> {
    let mut out = Vec::new();
    decrypt_stream(file, key, &mut out).expect("decrypt");
    out
}

fn reader(dir: &Path, file: &[u8], key: &SecretKey) -> Reader<FileSource> {
    let p = dir.join(format!("file-{}.c4gh", rand_u64()));
    std::fs::write(&p, file).unwrap();
    Reader::open(FileSource::open(&p).unwrap(), key).expect("open")
}

/// Random-access reads of `r` at segment boundaries and random places, each
/// checked against `want`.
fn check_random_reads(r: &Reader<FileSource>, want: &[u8], rng: &mut Rng) {
    assert_eq!(r.len(), want.len() as u64);
    let n = want.len() as u64;
    let seg = SEG as u64;
    let mut reads: Vec<(u64, u64)> = vec![
        (0, n + 1),
        (seg - 1, 2),
        (seg, seg),
        (n.saturating_sub(1), 5),
        (n, 3),
    ];
    for _ in 0..24 {
        let at = rng.below(n + 1);
        reads.push((at, rng.below(2 * seg) + 1));
    }
    for (at, len) in reads {
        let mut buf = vec![0u8; len as usize];
        let got = r.read_at(at, &mut buf).expect("read_at");
        let end = (at + len).min(n).max(at.min(n));
        assert_eq!(got as u64, end - at.min(n), "read {at}+{len} of {n}");
        assert!(
            buf[..got] == want[at.min(n) as usize..end as usize],
            "read {at}+{len} of {n}"
        );
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn reference_files_decrypt_byte_exact() {
    let Some(d) = setup("reference_files_decrypt_byte_exact") else {
        return;
    };
    let (_, a_pk, alice) = reference_key(d.path(), "alice");
    let (b_sk, b_pk) = keygen(d.path(), "bob", Some(PASS));
    let bob = SecretKey::read_file(&b_sk, Some(PASS.as_bytes())).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in SIZES {
        let plain = rng.bytes(len);
        let one = reference_encrypt(d.path(), &plain, &[&a_pk]);
        assert_eq!(
            our_decrypt(&one, &alice),
            plain,
            "one recipient, {len} bytes"
        );
        check_random_reads(&reader(d.path(), &one, &alice), &plain, &mut rng);
        assert!(matches!(
            decrypt_stream(&one[..], &bob, Vec::new()),
            Err(Error::NotForThisKey)
        ));

        let two = reference_encrypt(d.path(), &plain, &[&a_pk, &b_pk]);
        for k in [&alice, &bob] {
            let h = Header::parse(&two, k).unwrap();
            assert_eq!((h.packet_count(), h.skipped_packets()), (2, 1));
            assert_eq!(our_decrypt(&two, k), plain, "two recipients, {len} bytes");
            let r = reader(d.path(), &two, k);
            assert_eq!(r.layout().raw_len(), len as u64);
            check_random_reads(&r, &plain, &mut rng);
        }
    }
}

#[test]
fn reference_edit_lists_and_several_data_keys() {
    let Some(d) = setup("reference_edit_lists_and_several_data_keys") else {
        return;
    };
    let (sk, pk, key) = reference_key(d.path(), "carol");
    let (sender, _) = keygen(d.path(), "carols-sender", None);
    let mut rng = Rng(42);
    let plain = rng.bytes(3 * SEG + 7);
    let seg = SEG as u64;
    // `crypt4gh rearrange --range S-E` keeps the segments under the range
    // and adds an edit list; what its own `decrypt` gives is the truth (it
    // keeps E-S-1 bytes from S, and refuses an open range "S")
    let whole = reference_encrypt(d.path(), &plain, &[&pk]);
    for range in [
        "70000-140000",
        "1-3",
        "65535-65540",
        "131072-196608",
        "196600-196615",
    ] {
        let mut cmd = Command::new("crypt4gh");
        cmd.args(["rearrange", "--range", range, "--sk"]).arg(&sk);
        let cut = run_with_input(&mut cmd, d.path(), &whole);
        let want = reference_decrypt(d.path(), &cut, &sk, None, &[]);
        let start: usize = range.split('-').next().unwrap().parse().unwrap();
        assert_eq!(
            want[..],
            plain[start..start + want.len()],
            "reference rearrange {range}"
        );
        let h = Header::parse(&cut, &key).unwrap();
        assert!(h.edit_list().is_some(), "{range}: an edit list");
        assert_eq!(our_decrypt(&cut, &key), want, "rearranged {range}");
        check_random_reads(&reader(d.path(), &cut, &key), &want, &mut rng);
    }
    // several kept ranges, an odd count (keep to the end), lengths past the end
    let lists: &[&[u64]] = &[
        &[5, 10, seg - 20, 20, 3],
        &[0, 1, seg, 1, seg - 2, 6],
        &[seg - 1, 2, 2 * seg, 100],
        &[0, 4 * seg],
        &[10],
    ];
    for lengths in lists {
        let mut args: Vec<String> = vec![
            "edit".into(),
            sender.display().to_string(),
            pk.display().to_string(),
        ];
        args.extend(lengths.iter().map(u64::to_string));
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
        let file = peer(d.path(), &refs, &plain);
        let want = reference_decrypt(d.path(), &file, &sk, None, &[]);
        assert_eq!(
            EditList::new(lengths.to_vec()).unwrap().apply(&plain),
            want,
            "{lengths:?}"
        );
        assert_eq!(our_decrypt(&file, &key), want, "{lengths:?}");
        check_random_reads(&reader(d.path(), &file, &key), &want, &mut rng);
    }
    // segments under three data keys in turn, all three in the header
    let plain = rng.bytes(4 * SEG + 3);
    let file = peer(d.path(), &[&"multikey", &sender, &pk, &"3"], &plain);
    assert_eq!(Header::parse(&file, &key).unwrap().data_keys().len(), 3);
    assert_eq!(our_decrypt(&file, &key), plain);
    check_random_reads(&reader(d.path(), &file, &key), &plain, &mut rng);
}

#[test]
fn our_files_decrypt_with_the_reference() {
    let Some(d) = setup("our_files_decrypt_with_the_reference") else {
        return;
    };
    let (a_sk, a_pk) = keygen(d.path(), "erin", None);
    let (b_sk, b_pk) = keygen(d.path(), "frank", Some(PASS));
    let to = [
        PublicKey::read_file(&a_pk).unwrap(),
        PublicKey::read_file(&b_pk).unwrap(),
    ];
    let mut rng = Rng(1234);
    for len in SIZES {
        let plain = rng.bytes(len);
        let write = |to: &[PublicKey], options| {
            let mut w = Writer::new(Vec::new(), to, options).unwrap();
            for part in plain.chunks(40_000) {
                w.write_all(part).unwrap();
            }
            w.finish().unwrap()
        };
        let one = write(&to[..1], WriterOptions::default());
        assert_eq!(
            reference_decrypt(d.path(), &one, &a_sk, None, &[]),
            plain,
            "{len} bytes"
        );
        let two = write(&to, WriterOptions::default());
        assert_eq!(
            reference_decrypt(d.path(), &two, &a_sk, None, &[]),
            plain,
            "{len} bytes"
        );
        assert_eq!(
            reference_decrypt(d.path(), &two, &b_sk, Some(PASS), &[]),
            plain,
            "{len} bytes"
        );
    }
    // an edit list, and a sender key the reference checks with --sender_pk
    let plain = rng.bytes(2 * SEG + 9);
    let sender = SecretKey::generate().unwrap();
    let sender_pk = d.path().join("sender.pub");
    std::fs::write(&sender_pk, sender.public_key().to_file_text()).unwrap();
    let lengths = vec![3, 60_000, 70_000, 5];
    let options = WriterOptions {
        sender: Some(sender),
        edit_list: Some(EditList::new(lengths.clone()).unwrap()),
    };
    let mut w = Writer::new(Vec::new(), &to[..1], options).unwrap();
    w.write_all(&plain).unwrap();
    let file = w.finish().unwrap();
    let sp = sender_pk.display().to_string();
    let got = reference_decrypt(d.path(), &file, &a_sk, None, &["--sender_pk", &sp]);
    assert_eq!(got, EditList::new(lengths).unwrap().apply(&plain));
    assert_eq!(got.len(), 60_005);
    // segments under two data keys, both in the header
    let (k1, k2) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
    let mut file = header::build(
        &[k1.clone(), k2.clone()],
        None,
        &to[..1],
        &SecretKey::generate().unwrap(),
    )
    .unwrap();
    let by = [DataKeys::new(vec![k1]), DataKeys::new(vec![k2])];
    for (i, s) in plain.chunks(SEG).enumerate() {
        by[i % 2].seal_segment(s, &mut file).unwrap();
    }
    assert_eq!(reference_decrypt(d.path(), &file, &a_sk, None, &[]), plain);
}

#[test]
fn keys_cross_between_implementations() {
    let Some(d) = setup("keys_cross_between_implementations") else {
        return;
    };
    // keys the reference makes: the public key we derive matches its file
    for passphrase in [None, Some(PASS)] {
        let (sk, pk) = keygen(d.path(), "gina", passphrase);
        let key = SecretKey::read_file(&sk, passphrase.map(str::as_bytes)).unwrap();
        assert_eq!(key.public_key(), PublicKey::read_file(&pk).unwrap());
        if passphrase.is_some() {
            assert!(matches!(
                SecretKey::read_file(&sk, None),
                Err(Error::PassphraseRequired)
            ));
            assert!(matches!(
                SecretKey::read_file(&sk, Some(b"not it")),
                Err(Error::WrongPassphrase)
            ));
        }
        std::fs::remove_file(&sk).unwrap();
        std::fs::remove_file(&pk).unwrap();
    }
    for kdf in ["bcrypt", "pbkdf2_hmac_sha256", "scrypt"] {
        let (sk, pk) = (
            d.path().join(format!("{kdf}.sec")),
            d.path().join(format!("{kdf}.pub")),
        );
        peer(d.path(), &[&"keyfile", &kdf, &PASS, &sk, &pk], b"");
        let key = SecretKey::read_file(&sk, Some(PASS.as_bytes())).unwrap();
        assert_eq!(
            key.public_key(),
            PublicKey::read_file(&pk).unwrap(),
            "{kdf}"
        );
        assert!(
            matches!(
                SecretKey::read_file(&sk, Some(b"x")),
                Err(Error::WrongPassphrase)
            ),
            "{kdf}"
        );
    }
    // keys we make: the reference encrypts to our public key and opens
    // files with our private key, sealed under every KDF
    let plain = Rng(5).bytes(SEG + 17);
    let protections = [
        None,
        Some(Kdf::Scrypt),
        Some(Kdf::Bcrypt { rounds: 16 }),
        Some(Kdf::Pbkdf2Sha256 { rounds: 10_000 }),
    ];
    for (i, kdf) in protections.into_iter().enumerate() {
        let key = SecretKey::generate().unwrap();
        let (sk, pk) = (
            d.path().join(format!("ours{i}.sec")),
            d.path().join(format!("ours{i}.pub")),
        );
        let text = key
            .to_file_text(kdf.map(|k| (PASS.as_bytes(), k)), Some("made by hpcs"))
            .unwrap();
        std::fs::write(&sk, text.as_bytes()).unwrap();
        std::fs::write(&pk, key.public_key().to_file_text()).unwrap();
        let file = reference_encrypt(d.path(), &plain, &[&pk]);
        assert_eq!(our_decrypt(&file, &key), plain, "{kdf:?}");
        let pass = kdf.map(|_| PASS);
        assert_eq!(
            reference_decrypt(d.path(), &file, &sk, pass, &[]),
            plain,
            "{kdf:?}"
        );
    }
}
