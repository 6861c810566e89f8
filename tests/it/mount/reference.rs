//! Reference archives (`hpcs-pack c4gh-ref`) over `.c4gh` files the Python
//! reference (`crypt4gh`, PyPI) encrypts, served by hpcs-mount and
//! extracted by `hpcs-pack extract`: byte-exact, by whole reads and random
//! preads, with edit lists honoured; keys `crypt4gh-keygen` makes, with and
//! without passphrase, open them. Then the tamper matrix on the `.c4gh`
//! files under a mounted reference archive: every case is refused at mount
//! (exit 63) or EIO, never a wrong byte, and the same through extract.
//! Needs FUSE (HPCS_REQUIRE_FUSE) and the reference CLI (HPCS_REQUIRE_C4GH).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hpcs::crypt4gh::{header, EditList, Header, SecretKey, CIPHER_SEGMENT_SIZE};

use super::*;
use crate::crypt4gh::{
    keygen, peer, reference_decrypt, reference_encrypt, run_with_input, setup, Rng, PASS, SEG,
    SIZES,
};

/// `hpcs-pack c4gh-ref INPUTS -o ARCHIVE -r RECIPIENT ARGS` with `env`,
/// without a controlling terminal (setsid), so a missing passphrase cannot
/// be asked for.
fn c4gh_ref(
    inputs: &[&Path],
    archive: &Path,
    recipient: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut c = Command::new("setsid");
    c.arg(bin("hpcs-pack"))
        .arg("c4gh-ref")
        .args(inputs)
        .arg("-o")
        .arg(archive)
        .args(["-r", recipient, "-q"])
        .args(args)
        .env_remove("C4GH_PASSPHRASE")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A reference archive and the age identity that opens it.
struct Ref {
    dir: PathBuf,
    archive: PathBuf,
    identity: PathBuf,
    mnt: PathBuf,
}

impl Ref {
    /// `ref.hpcs` over `data`, opened with `sk`, for a new age identity;
    /// also the identity's recipient.
    fn pack(dir: &Path, data: &Path, sk: &Path) -> (Ref, String) {
        let (identity, recipient) = identity_file(dir, "id.txt");
        let archive = dir.join("ref.hpcs");
        let sk = ["--sk", sk.to_str().unwrap()];
        let o = c4gh_ref(&[data], &archive, &recipient, &sk, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let r = Ref {
            dir: dir.to_path_buf(),
            archive,
            identity,
            mnt,
        };
        (r, recipient)
    }

    fn args(&self) -> Vec<String> {
        mount_args(&self.archive, &self.mnt, &self.identity)
    }

    fn mount(&self) -> Mounted {
        let args = self.args();
        Mounted::start(&args, &self.mnt, &self.dir.join("mount.log"))
    }

    /// Exit code of `hpcs-pack extract` into a fresh `DEST`, and DEST.
    fn extract(&self, dest: &str) -> (i32, PathBuf, String) {
        let out_dir = self.dir.join(dest);
        let o = run(Command::new(bin("hpcs-pack"))
            .arg("extract")
            .arg(&self.archive)
            .arg("-i")
            .arg(&self.identity)
            .arg("-o")
            .arg(&out_dir)
            .arg("-q"));
        (o.status.code().unwrap_or(-1), out_dir, text(&o))
    }
}

/// Random preads of `f` checked against `want`.
fn random_preads(f: &File, want: &[u8], rng: &mut Rng, what: &str) {
    let n = want.len() as u64;
    for _ in 0..40 {
        let at = rng.below(n + 1);
        let len = rng.below(3 * SEG as u64) as usize + 1;
        let mut buf = vec![0u8; len];
        let got = f.read_at(&mut buf, at).unwrap();
        let end = (at as usize + len).min(want.len());
        assert_eq!(got, end - at as usize, "{what}: pread {at}+{len}");
        assert!(
            buf[..got] == want[at as usize..end],
            "{what}: pread {at}+{len}"
        );
    }
}

#[test]
fn reference_c4gh_files_mount_and_extract_byte_exact() {
    need_fuse!();
    let Some(d) = setup("reference_c4gh_files_mount_and_extract_byte_exact") else {
        return;
    };
    let dir = d.path();
    let (a_sk, a_pk) = keygen(dir, "alice", None);
    let (b_sk, b_pk) = keygen(dir, "bob", Some(PASS));
    let (sender, _) = keygen(dir, "sender", None);
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let mut rng = Rng(77);
    // (name in the archive, what it must show)
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut two: Vec<PathBuf> = Vec::new();
    for len in SIZES {
        let plain = rng.bytes(len);
        let one = reference_encrypt(dir, &plain, &[&a_pk]);
        std::fs::write(data.join(format!("one-{len}.bin.c4gh")), one).unwrap();
        files.push((format!("one-{len}.bin"), plain.clone()));
        let p = data.join(format!("sub/two-{len}.bin.c4gh"));
        std::fs::write(&p, reference_encrypt(dir, &plain, &[&a_pk, &b_pk])).unwrap();
        files.push((format!("sub/two-{len}.bin"), plain));
        two.push(p);
    }
    // edit lists: `crypt4gh rearrange`, several ranges by its library, and
    // segments under three data keys; its own decrypt gives the truth
    let plain = rng.bytes(3 * SEG + 7);
    let whole = reference_encrypt(dir, &plain, &[&a_pk]);
    let mut cmd = Command::new("crypt4gh");
    cmd.args(["rearrange", "--range", "70000-140000", "--sk"])
        .arg(&a_sk);
    let cut = run_with_input(&mut cmd, dir, &whole);
    let lengths = ["5", "10", "65516", "20", "3"];
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"edit", &sender, &a_pk];
    args.extend(lengths.iter().map(|l| l as &dyn AsRef<std::ffi::OsStr>));
    let edited = peer(dir, &args, &plain);
    let multi = peer(dir, &[&"multikey", &sender, &a_pk, &"3"], &plain);
    for (name, file) in [
        ("cut.bin", cut),
        ("edited.bin", edited),
        ("multikey.bin", multi),
    ] {
        let want = reference_decrypt(dir, &file, &a_sk, None, &[]);
        std::fs::write(data.join(format!("{name}.c4gh")), &file).unwrap();
        files.push((name.to_string(), want));
    }
    assert_eq!(files[files.len() - 3].1, plain[70000..139999]);
    assert_eq!(
        files[files.len() - 2].1,
        EditList::new(vec![5, 10, 65516, 20, 3])
            .unwrap()
            .apply(&plain)
    );
    assert_eq!(files[files.len() - 1].1, plain);

    let (r, recipient) = Ref::pack(dir, &data, &a_sk);
    let m = r.mount();
    for (name, want) in &files {
        let p = r.mnt.join(name);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            want.len() as u64,
            "{name}"
        );
        assert!(std::fs::read(&p).unwrap() == *want, "{name}");
        random_preads(&File::open(&p).unwrap(), want, &mut rng, name);
    }
    m.finish();
    let (code, out, t) = r.extract("out");
    assert_eq!(code, 0, "{t}");
    for (name, want) in &files {
        assert!(
            std::fs::read(out.join(name)).unwrap() == *want,
            "extract {name}"
        );
    }

    // bob's key has a passphrase: from a file, from C4GH_PASSPHRASE; without
    // one (and no terminal to ask) or a wrong one, exit 60
    let pf = dir.join("pass.txt");
    std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    let bob_args = ["--sk", b_sk.to_str().unwrap()];
    let two_refs: Vec<&Path> = two.iter().map(PathBuf::as_path).collect();
    let bob = dir.join("bob.hpcs");
    let with_file = [&bob_args[..], &["--passphrase-file", pf.to_str().unwrap()]].concat();
    let o = c4gh_ref(&two_refs, &bob, &recipient, &with_file, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let bob_env = dir.join("bob-env.hpcs");
    let o = c4gh_ref(
        &two_refs,
        &bob_env,
        &recipient,
        &bob_args,
        &[("C4GH_PASSPHRASE", PASS)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = c4gh_ref(&two_refs, &dir.join("x.hpcs"), &recipient, &bob_args, &[]);
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::C4GH_KEY as i32),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("passphrase"), "{}", text(&o));
    let o = c4gh_ref(
        &two_refs,
        &dir.join("x.hpcs"),
        &recipient,
        &bob_args,
        &[("C4GH_PASSPHRASE", "wrong")],
    );
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::C4GH_KEY as i32),
        "{}",
        text(&o)
    );
    assert!(!dir.join("x.hpcs").exists());
    // files not encrypted to the key given are refused (exit 61)
    let o = c4gh_ref(
        &[&data.join("one-1.bin.c4gh")],
        &dir.join("x.hpcs"),
        &recipient,
        &bob_args,
        &[("C4GH_PASSPHRASE", PASS)],
    );
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::C4GH_INPUT as i32),
        "{}",
        text(&o)
    );
    let rb = Ref {
        archive: bob_env,
        ..r
    };
    let m = rb.mount();
    for (k, len) in SIZES.iter().enumerate() {
        let want = &files[2 * k + 1].1;
        let got = std::fs::read(rb.mnt.join(format!("two-{len}.bin"))).unwrap();
        assert!(got == *want, "bob's archive, {len} bytes");
    }
    m.finish();
}

/// The stored segments of a Crypt4GH file (its header length from `key`).
fn split(file: &[u8], key: &SecretKey) -> (Vec<u8>, Vec<Vec<u8>>) {
    let h = Header::parse(file, key).unwrap().byte_len() as usize;
    let segs = file[h..]
        .chunks(CIPHER_SEGMENT_SIZE)
        .map(<[u8]>::to_vec)
        .collect();
    (file[..h].to_vec(), segs)
}

/// The header packets of a Crypt4GH file, as stored.
fn packets(head: &[u8]) -> Vec<Vec<u8>> {
    let n = u32::from_le_bytes(head[12..16].try_into().unwrap());
    let mut at = 16;
    (0..n)
        .map(|_| {
            let len = u32::from_le_bytes(head[at..at + 4].try_into().unwrap()) as usize;
            at += len;
            head[at - len..at].to_vec()
        })
        .collect()
}

fn with_packets(ps: &[Vec<u8>]) -> Vec<u8> {
    let mut h = b"crypt4gh".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&(ps.len() as u32).to_le_bytes());
    for p in ps {
        h.extend_from_slice(p);
    }
    h
}

/// What a tampered file did under the mount and through extract.
#[derive(Debug, PartialEq)]
enum Seen {
    /// hpcs-mount refused to mount (exit 63), extract refused (exit 63).
    Refused,
    /// Mounted; reading the file gave EIO (and nothing wrong), extract exit 62.
    Eio,
}

#[test]
fn tamper_matrix_every_case_eio_or_refused_never_a_wrong_byte() {
    need_fuse!();
    let Some(d) = setup("tamper_matrix_every_case_eio_or_refused_never_a_wrong_byte") else {
        return;
    };
    let dir = d.path();
    let (a_sk, a_pk) = keygen(dir, "alice", None);
    let alice = SecretKey::read_file(&a_sk, None).unwrap();
    let mallory = SecretKey::generate().unwrap(); // knows only alice's public key
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut rng = Rng(4242);
    let big_plain = rng.bytes(3 * SEG + 7);
    let big = reference_encrypt(dir, &big_plain, &[&a_pk]);
    let other_plain = rng.bytes(SEG + 3);
    let cut_src = reference_encrypt(dir, &rng.bytes(3 * SEG + 7), &[&a_pk]);
    let mut cmd = Command::new("crypt4gh");
    cmd.args(["rearrange", "--range", "1000-140000", "--sk"])
        .arg(&a_sk);
    let cut = run_with_input(&mut cmd, dir, &cut_src);
    let cut_plain = reference_decrypt(dir, &cut, &a_sk, None, &[]);
    let paths = [
        data.join("big.bin.c4gh"),
        data.join("cut.bin.c4gh"),
        data.join("other.bin.c4gh"),
    ];
    std::fs::write(&paths[0], &big).unwrap();
    std::fs::write(&paths[1], &cut).unwrap();
    std::fs::write(&paths[2], reference_encrypt(dir, &other_plain, &[&a_pk])).unwrap();
    let (r, _) = Ref::pack(dir, &data, &a_sk);

    // the attacker's pieces: a packet sealed to alice's public key, a
    // segment under a data key of their own, another file to alice
    let theirs = hpcs::crypt4gh::DataKey::generate().unwrap();
    let key_packet = header::build(
        std::slice::from_ref(&theirs),
        None,
        &[alice.public_key()],
        &mallory,
    )
    .unwrap()[16..]
        .to_vec();
    let mut forged = Vec::new();
    hpcs::crypt4gh::DataKeys::new(vec![theirs])
        .seal_segment(&rng.bytes(SEG), &mut forged)
        .unwrap();
    let (head, segs) = split(&big, &alice);
    let cat = |parts: &[&[u8]]| parts.concat();
    let mut injected = packets(&head);
    injected.push(key_packet);
    let replaced = reference_encrypt(dir, &rng.bytes(big_plain.len()), &[&a_pk]);
    assert_eq!(replaced.len(), big.len());
    // the edit list of cut.bin replaced by one that keeps other bytes
    let (chead, csegs) = split(&cut, &alice);
    let lengths = Header::parse(&cut, &alice)
        .unwrap()
        .edit_list()
        .unwrap()
        .lengths()
        .to_vec();
    let mut other_lengths = lengths.clone();
    *other_lengths.last_mut().unwrap() -= 1;
    let new_edit = header::build(
        &[],
        Some(&EditList::new(other_lengths).unwrap()),
        &[alice.public_key()],
        &mallory,
    )
    .unwrap()[16..]
        .to_vec();
    let edited: Vec<Vec<u8>> = packets(&chead)
        .into_iter()
        .map(|p| {
            // the packet that alone yields no data key is the edit list
            let alone = with_packets(std::slice::from_ref(&p));
            match Header::parse(&alone, &alice) {
                Err(hpcs::crypt4gh::Error::NoDataKey) => new_edit.clone(),
                _ => p,
            }
        })
        .collect();
    let cases: Vec<(&str, usize, Vec<u8>, Seen)> = vec![
        (
            "segments swapped",
            0,
            cat(&[&head, &segs[1], &segs[0], &segs[2], &segs[3]]),
            Seen::Eio,
        ),
        (
            "segment duplicated",
            0,
            cat(&[&head, &segs[0], &segs[0], &segs[1], &segs[2], &segs[3]]),
            Seen::Refused,
        ),
        (
            "segment duplicated over the next",
            0,
            cat(&[&head, &segs[0], &segs[0], &segs[2], &segs[3]]),
            Seen::Eio,
        ),
        (
            "segment dropped",
            0,
            cat(&[&head, &segs[0], &segs[2], &segs[3]]),
            Seen::Refused,
        ),
        (
            "truncated at a segment boundary",
            0,
            cat(&[&head, &segs[0], &segs[1]]),
            Seen::Refused,
        ),
        (
            "truncated inside a segment",
            0,
            big[..big.len() - 10].to_vec(),
            Seen::Refused,
        ),
        ("segment appended", 0, cat(&[&big, &forged]), Seen::Refused),
        (
            "header packet injected with the public key",
            0,
            cat(&[&with_packets(&injected), &segs.concat(), &forged]),
            Seen::Refused,
        ),
        (
            "edit list changed",
            1,
            cat(&[&with_packets(&edited), &csegs.concat()]),
            Seen::Refused,
        ),
        (
            "file replaced by another to the same key",
            0,
            replaced,
            Seen::Refused,
        ),
    ];
    let wants = [&big_plain, &cut_plain];
    for (what, k, bytes, want) in cases {
        let orig = std::fs::read(&paths[k]).unwrap();
        std::fs::write(&paths[k], &bytes).unwrap();
        if want == Seen::Eio {
            // Crypt4GH alone accepts it: the reference decrypts other bytes
            let got = reference_decrypt(dir, &bytes, &a_sk, None, &[]);
            assert!(got != *wants[k], "{what}");
        }
        let seen = {
            let o = run_mount(&[r.args(), vec!["--".into(), "true".into()]].concat());
            assert!(!mounted(&r.mnt), "{what}: a mount left behind");
            match o.status.code() {
                Some(0) => {
                    let m = r.mount();
                    let p = r.mnt.join(["big.bin", "cut.bin"][k]);
                    let f = File::open(&p).unwrap();
                    let full = wants[k];
                    assert_eq!(errno(std::fs::read(&p)), libc::EIO, "{what}: whole read");
                    // every pread: EIO, or exactly the original bytes
                    let mut eio = 0;
                    for at in (0..full.len()).step_by(SEG / 2) {
                        let mut buf = vec![0u8; SEG];
                        match f.read_at(&mut buf, at as u64) {
                            Ok(n) => {
                                assert!(buf[..n] == full[at..at + n], "{what}: wrong bytes at {at}")
                            }
                            Err(e) => {
                                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}");
                                eio += 1;
                            }
                        }
                    }
                    assert!(eio > 0, "{what}");
                    // the mount keeps serving the other files
                    assert!(
                        std::fs::read(r.mnt.join("other.bin")).unwrap() == other_plain,
                        "{what}"
                    );
                    drop(f);
                    assert!(
                        m.log_text().contains("external Crypt4GH file"),
                        "{what}: log"
                    );
                    m.finish();
                    Seen::Eio
                }
                Some(c) => {
                    assert_eq!(c, hpcs::exit::C4GH_CHANGED as i32, "{what}: {}", text(&o));
                    Seen::Refused
                }
                None => panic!("{what}: hpcs-mount killed: {}", text(&o)),
            }
        };
        assert_eq!(seen, want, "{what}");
        let (code, out, t) = r.extract(&format!("out-{}", what.replace(' ', "-")));
        let expected = match want {
            Seen::Refused => hpcs::exit::C4GH_CHANGED,
            Seen::Eio => hpcs::exit::C4GH_AUTH,
        };
        assert_eq!(code, expected as i32, "{what}: extract: {t}");
        let name = ["big.bin", "cut.bin"][k];
        assert!(!out.join(name).exists(), "{what}: extract wrote the file");
        if out.exists() {
            let left: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                left.iter()
                    .all(|n| !n.to_string_lossy().contains("hpcs-tmp")),
                "{what}: {left:?}"
            );
        }
        std::fs::write(&paths[k], orig).unwrap();
    }
    // all restored: everything reads again
    let (code, out, t) = r.extract("out-restored");
    assert_eq!(code, 0, "{t}");
    assert!(std::fs::read(out.join("big.bin")).unwrap() == big_plain);
    assert!(std::fs::read(out.join("cut.bin")).unwrap() == cut_plain);
}

/// A reference archive is pinned like any other (issue 11's pins):
/// `c4gh-ref` prints the pin, `inspect` shows the same, `hpcs-mount --pin`
/// mounts it and serves the `.c4gh` file's bytes; another reference archive
/// over the very same `.c4gh` file for the same recipient (what anyone
/// holding the Crypt4GH key could make, e.g. pointing elsewhere) is refused
/// with exit 18 before the command runs, and mounts without the pin.
#[test]
fn a_reference_archive_is_pinned_like_any_other() {
    need_fuse!();
    let Some(d) = setup("a_reference_archive_is_pinned_like_any_other") else {
        return;
    };
    let dir = d.path();
    let (sk, pk) = keygen(dir, "alice", None);
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let plain = Rng(5).bytes(2 * SEG + 99);
    std::fs::write(
        data.join("x.bin.c4gh"),
        reference_encrypt(dir, &plain, &[&pk]),
    )
    .unwrap();
    let (identity, recipient) = identity_file(dir, "id.txt");
    let pack = |out: &Path| {
        let o = run(Command::new(bin("hpcs-pack"))
            .arg("c4gh-ref")
            .arg(&data)
            .arg("--sk")
            .arg(&sk)
            .arg("-o")
            .arg(out)
            .args(["-r", &recipient]));
        assert!(o.status.success(), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        err.lines()
            .find_map(|l| l.strip_prefix("pin: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("c4gh-ref prints the pin: {err}"))
            .to_string()
    };
    let genuine = dir.join("ref.hpcs");
    let other = dir.join("other.hpcs");
    let pin = pack(&genuine);
    let other_pin = pack(&other);
    assert_ne!(pin, other_pin);
    assert_eq!(pin, crate::util::pin_of(&genuine));
    let o = run(Command::new(bin("hpcs-pack"))
        .arg("inspect")
        .arg(&genuine)
        .arg("-i")
        .arg(&identity));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&pin),
        "{}",
        text(&o)
    );

    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let copy = dir.join("copy.bin");
    let exec = |archive: &Path, pin: Option<&str>| {
        let _ = std::fs::remove_file(&copy);
        let mut args = mount_args(archive, &mnt, &identity);
        if let Some(p) = pin {
            args.extend(["--pin".to_string(), p.to_string()]);
        }
        let script = format!("cp {}/x.bin {}", mnt.display(), copy.display());
        args.extend(["--".into(), "sh".into(), "-c".into(), script]);
        let out = run_mount(&args);
        assert!(!mounted(&mnt), "a mount was left behind");
        out
    };
    let o = exec(&genuine, Some(&pin));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        std::fs::read(&copy).unwrap() == plain,
        "pinned mount: wrong bytes"
    );
    // the other reference archive opens with the same identity...
    let o = exec(&other, None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(std::fs::read(&copy).unwrap() == plain);
    // ...but not under the genuine one's pin, and nothing runs
    let o = exec(&other, Some(&pin));
    assert_eq!(
        o.status.code(),
        Some(hpcs::exit::ARCHIVE_PIN as i32),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("not the expected archive"),
        "{}",
        text(&o)
    );
    assert!(!copy.exists(), "the command ran under a wrong pin");
}
