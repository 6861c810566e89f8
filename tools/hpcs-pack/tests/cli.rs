//! hpcs-pack command-line contract: the forms scripts rely on, interop with
//! the real `age` tools, and the exit code and message of every bad input.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "cli/rewrap.rs"]
mod rewrap;

const BIN: &str = env!("CARGO_BIN_EXE_hpcs-pack");

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hpcs-cli-")
        .tempdir()
        .unwrap()
}

fn pack_cmd(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails_with(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    assert_eq!(err.trim().lines().count(), 1, "one-line message: {err:?}");
}

/// `age-keygen` output: (identity file, recipient).
fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let p = dir.join(name);
    let out = Command::new("age-keygen").arg("-o").arg(&p).output();
    match out {
        Ok(o) if o.status.success() => {
            let text = std::fs::read_to_string(&p).unwrap();
            let r = text
                .lines()
                .find_map(|l| l.strip_prefix("# public key: "))
                .unwrap()
                .to_string();
            (p, r)
        }
        _ => {
            assert!(
                std::env::var_os("HPCS_REQUIRE_AGE").is_none(),
                "age-keygen (Debian package age) is required"
            );
            // Fallback without the age tools: generate in-process.
            use age::secrecy::ExposeSecret;
            let id = age::x25519::Identity::generate();
            std::fs::write(&p, format!("{}\n", id.to_string().expose_secret())).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            (p, id.to_public().to_string())
        }
    }
}

fn sample_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 200_000]).unwrap();
    std::fs::write(src.join("sub/deeper/c"), b"").unwrap();
    std::os::unix::fs::symlink("../a.txt", src.join("sub/link")).unwrap();
    std::fs::hard_link(src.join("sub/b.bin"), src.join("b-hardlink.bin")).unwrap();
    std::fs::set_permissions(src.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    src
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Like OpenSSH, an identity file group or others can access is refused
/// (exit 8, with the chmod to run); at 0600 the same file works.
#[test]
fn identity_file_readable_by_others_is_refused() {
    let d = tmp();
    let src = sample_tree(d.path());
    let (id, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(mode)).unwrap();
        for cmd in ["verify", "inspect"] {
            fails_with(
                &pack_cmd(&[cmd, s(&a), "-i", s(&id)]),
                8,
                &format!("run `chmod 600 {}`", id.display()),
            );
        }
    }
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&pack_cmd(&["verify", s(&a), "-i", s(&id)]));
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o400)).unwrap();
    ok(&pack_cmd(&["verify", s(&a), "-i", s(&id)]));
}

#[test]
fn pack_inspect_verify_extract_cat_with_age_keygen_keys() {
    let d = tmp();
    let src = sample_tree(d.path());
    let (id, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));

    // inspect without a key: header facts, no names.
    let out = ok(&pack_cmd(&["inspect", s(&a)])).stdout.clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("aes-256-gcm") && text.contains("archive id"));
    assert!(
        !text.contains("a.txt") && !text.contains("b.bin"),
        "names leak: {text}"
    );
    let raw = std::fs::read(&a).unwrap();
    assert!(
        !raw.windows(5).any(|w| w == b"a.txt"),
        "names visible in the archive bytes"
    );
    // with a key: the tree and the recipient.
    let out = ok(&pack_cmd(&["inspect", s(&a), "-i", s(&id)]))
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("sub/deeper/c") && text.contains("sub/link -> ../a.txt"));
    assert!(text.contains(&r));
    let json = ok(&pack_cmd(&["inspect", s(&a), "-i", s(&id), "--json"]))
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&json).contains("\"path\":\"sub/b.bin\""));

    ok(&pack_cmd(&["verify", s(&a), "-i", s(&id), "-q"]));

    let out_dir = d.path().join("out");
    ok(&pack_cmd(&[
        "extract",
        s(&a),
        "-i",
        s(&id),
        "-o",
        s(&out_dir),
        "-q",
    ]));
    for rel in ["a.txt", "sub/b.bin", "sub/deeper/c", "b-hardlink.bin"] {
        assert_eq!(
            std::fs::read(src.join(rel)).unwrap(),
            std::fs::read(out_dir.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read_link(out_dir.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
    let md = std::fs::metadata(out_dir.join("a.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(
        md.mtime(),
        std::fs::metadata(src.join("a.txt")).unwrap().mtime()
    );
    // Hard links come back as hard links.
    assert_eq!(
        std::fs::metadata(out_dir.join("sub/b.bin")).unwrap().ino(),
        std::fs::metadata(out_dir.join("b-hardlink.bin"))
            .unwrap()
            .ino()
    );

    // Partial extract.
    let part = d.path().join("part");
    ok(&pack_cmd(&[
        "extract",
        s(&a),
        "-i",
        s(&id),
        "-o",
        s(&part),
        "sub/deeper",
        "-q",
    ]));
    assert!(part.join("sub/deeper/c").exists());
    assert!(!part.join("a.txt").exists());

    let out = ok(&pack_cmd(&["cat", s(&a), "-i", s(&id), "a.txt"]))
        .stdout
        .clone();
    assert_eq!(out, b"alpha\n");
}

#[test]
fn age_decrypts_the_age_stanza_interop() {
    // The age stanza is a standard age file: the real `age` CLI can open it.
    let d = tmp();
    let (id, r) = age_keygen(d.path(), "id.txt");
    let src = sample_tree(d.path());
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));
    let bytes = std::fs::read(&a).unwrap();
    // Stanza 0 starts at offset 106: type u16, len u32, body.
    assert_eq!(u16::from_le_bytes([bytes[106], bytes[107]]), 1);
    let len = u32::from_le_bytes(bytes[108..112].try_into().unwrap()) as usize;
    let stanza = d.path().join("stanza.age");
    std::fs::write(&stanza, &bytes[112..112 + len]).unwrap();
    match Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&id)
        .arg(&stanza)
        .output()
    {
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(o.stdout.len(), 32, "payload is the 32-byte data key");
        }
        Err(_) => assert!(
            std::env::var_os("HPCS_REQUIRE_AGE").is_none(),
            "age CLI required"
        ),
    }
}

#[test]
fn ssh_ed25519_and_recipients_file() {
    let d = tmp();
    let key = d.path().join("id_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&key)
        .status();
    if st.is_err() {
        assert!(
            std::env::var_os("HPCS_REQUIRE_AGE").is_none(),
            "ssh-keygen required"
        );
        return;
    }
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (id2, r2) = age_keygen(d.path(), "id2.txt");
    let rfile = d.path().join("recipients.txt");
    std::fs::write(&rfile, format!("# team\n\n{}\n{r2}\n", pubkey.trim())).unwrap();
    let src = sample_tree(d.path());
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&[
        "pack",
        s(&src),
        "-o",
        s(&a),
        "-R",
        s(&rfile),
        "-q",
    ]));
    ok(&pack_cmd(&["verify", s(&a), "-i", s(&key), "-q"]));
    ok(&pack_cmd(&["verify", s(&a), "-i", s(&id2), "-q"]));
}

#[test]
fn bad_inputs_have_clear_messages_and_stable_codes() {
    let d = tmp();
    let (id, r) = age_keygen(d.path(), "id.txt");
    let (other, _) = age_keygen(d.path(), "other.txt");
    let src = sample_tree(d.path());
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));
    let good = std::fs::read(&a).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // Usage.
    assert_eq!(pack_cmd(&["pack"]).status.code(), Some(2));
    fails_with(
        &pack_cmd(&[
            "pack",
            s(&src),
            "-o",
            s(&d.path().join("x")),
            "-r",
            &r,
            "--chunk-size",
            "3000",
        ]),
        2,
        "--chunk-size",
    );
    // Missing source, bad recipient, no recipient, output exists.
    fails_with(
        &pack_cmd(&[
            "pack",
            "/nonexistent/src",
            "-o",
            s(&d.path().join("x")),
            "-r",
            &r,
        ]),
        3,
        "/nonexistent/src",
    );
    fails_with(
        &pack_cmd(&[
            "pack",
            s(&src),
            "-o",
            s(&d.path().join("x")),
            "-r",
            "age1bogus",
        ]),
        7,
        "invalid recipient",
    );
    fails_with(
        &pack_cmd(&["pack", s(&src), "-o", s(&d.path().join("x"))]),
        7,
        "no recipient",
    );
    fails_with(
        &pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r]),
        4,
        "already exists",
    );
    ok(&pack_cmd(&[
        "pack",
        s(&src),
        "-o",
        s(&a),
        "-r",
        &r,
        "--force",
        "-q",
    ]));
    // Identity problems.
    fails_with(&pack_cmd(&["verify", s(&a)]), 8, "no identity given");
    fails_with(
        &pack_cmd(&["verify", s(&a), "-i", "/nonexistent/id"]),
        8,
        "/nonexistent/id",
    );
    let junk = write("junk-id.txt", b"not a key\n");
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    fails_with(
        &pack_cmd(&["verify", s(&a), "-i", s(&junk)]),
        8,
        "junk-id.txt",
    );
    fails_with(
        &pack_cmd(&["verify", s(&a), "-i", s(&other)]),
        12,
        "none of the given identities",
    );
    // Archive problems.
    let good = std::fs::read(&a).unwrap_or(good);
    let not = write("not.hpcs", b"hello, this is not an archive at all");
    fails_with(
        &pack_cmd(&["verify", s(&not), "-i", s(&id)]),
        10,
        "not an hpcs archive",
    );
    let mut v2 = good.clone();
    v2[8] = 2;
    let v2 = write("v2.hpcs", &v2);
    fails_with(&pack_cmd(&["inspect", s(&v2)]), 11, "version 2");
    let hl = u32::from_le_bytes(good[20..24].try_into().unwrap()) as usize;
    let trunc = write("trunc.hpcs", &good[..good.len() - 100]);
    fails_with(
        &pack_cmd(&["verify", s(&trunc), "-i", s(&id)]),
        14,
        "truncated",
    );
    let mut mac = good.clone();
    mac[hl - 1] ^= 1;
    let mac = write("mac.hpcs", &mac);
    fails_with(
        &pack_cmd(&["verify", s(&mac), "-i", s(&id)]),
        13,
        "header failed authentication",
    );
    let mut chunk = good.clone();
    chunk[hl + 70_000] ^= 1;
    let chunk = write("chunk.hpcs", &chunk);
    fails_with(
        &pack_cmd(&["verify", s(&chunk), "-i", s(&id)]),
        15,
        "failed authentication",
    );
    // Extract: unsafe paths, missing paths, existing files.
    fails_with(
        &pack_cmd(&[
            "extract",
            s(&a),
            "-i",
            s(&id),
            "-o",
            s(&d.path().join("o1")),
            "../etc",
        ]),
        9,
        "unsafe path",
    );
    fails_with(
        &pack_cmd(&[
            "extract",
            s(&a),
            "-i",
            s(&id),
            "-o",
            s(&d.path().join("o2")),
            "/etc/passwd",
        ]),
        9,
        "unsafe path",
    );
    fails_with(
        &pack_cmd(&[
            "extract",
            s(&a),
            "-i",
            s(&id),
            "-o",
            s(&d.path().join("o3")),
            "nope",
        ]),
        9,
        "not in the archive",
    );
    let o4 = d.path().join("o4");
    ok(&pack_cmd(&[
        "extract",
        s(&a),
        "-i",
        s(&id),
        "-o",
        s(&o4),
        "-q",
    ]));
    fails_with(
        &pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&o4)]),
        4,
        "already exists",
    );
    fails_with(
        &pack_cmd(&["cat", s(&a), "-i", s(&id), "sub"]),
        9,
        "not a regular file",
    );
}

#[test]
fn unreadable_source_file_is_named() {
    // Root reads anything: run as nobody to get EACCES.
    let d = tempfile::Builder::new()
        .prefix("hpcs-cli-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("ok"), b"fine").unwrap();
    std::fs::write(src.join("secret"), b"no").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(src.join("ok"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let (_, r) = age_keygen(d.path(), "id.txt");
    let out = d.path().join("a.hpcs");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let o = cmd
        .args(["pack", s(&src), "-o", s(&out), "-r", &r])
        .output()
        .unwrap();
    fails_with(&o, 3, "secret");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp file left behind");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn fifos_are_skipped_with_a_warning() {
    let d = tmp();
    let src = sample_tree(d.path());
    let fifo = src.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (id, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    let o = ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r]))
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&o).contains("warning: skipped"),
        "{}",
        String::from_utf8_lossy(&o)
    );
    let list = ok(&pack_cmd(&["inspect", s(&a), "-i", s(&id)]))
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&list).contains("pipe"));
}

#[test]
fn extract_never_writes_through_a_symlink() {
    let d = tmp();
    let src = sample_tree(d.path());
    let (id, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));
    let out = d.path().join("out");
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("sub")).unwrap();
    let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&out)]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("symlink"));
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "wrote through the symlink"
    );
    // A symlink at a file's name is refused too, and its target untouched.
    let out2 = d.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, out2.join("a.txt")).unwrap();
    let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&out2)]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    // A symlink deeper down, at a directory name the archive holds inside a
    // real directory of DEST: refused (exit 5), nothing written outside.
    let out3 = d.path().join("out3");
    std::fs::create_dir_all(out3.join("sub")).unwrap();
    let elsewhere3 = d.path().join("elsewhere3");
    std::fs::create_dir_all(&elsewhere3).unwrap();
    std::os::unix::fs::symlink(&elsewhere3, out3.join("sub/deeper")).unwrap();
    let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&out3)]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("symlink"), "{err}");
    assert!(
        !err.contains("deeper"),
        "names a path without --log-names: {err}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere3).unwrap().count(), 0);
    assert!(std::fs::symlink_metadata(out3.join("sub/deeper"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Existing directories others can write (or, as root, another user's) are
/// refused as destinations of plaintext, and the directories extract makes
/// stay private (0700) until their content is complete: an extraction that
/// fails halfway leaves nothing readable by others.
#[test]
fn extract_keeps_plaintext_out_of_directories_others_can_reach() {
    let d = tmp();
    let src = sample_tree(d.path());
    let (id, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    ok(&pack_cmd(&["pack", s(&src), "-o", s(&a), "-r", &r, "-q"]));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    // DEST writable by every user.
    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&open)]);
    fails_with(&o, 5, "writable by every user");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);

    // A directory of the tree already there, writable by every user: refused
    // without naming it.
    let out = d.path().join("out");
    std::fs::create_dir_all(out.join("sub")).unwrap();
    std::fs::set_permissions(out.join("sub"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&out)]);
    fails_with(&o, 5, "writable by every user");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("sub"),
        "names a path without --log-names: {err}"
    );
    assert_eq!(std::fs::read_dir(out.join("sub")).unwrap().count(), 0);

    // Another user's directory (needs root to make one).
    if is_root() {
        let theirs = d.path().join("theirs");
        std::fs::create_dir_all(theirs.join("sub")).unwrap();
        std::os::unix::fs::chown(theirs.join("sub"), Some(65534), Some(65534)).unwrap();
        let o = pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&theirs)]);
        fails_with(&o, 5, "belongs to another user");
    }

    // A chunk of d/big.bin changed on storage: extract fails halfway, and
    // d/ (made before the failure) is still 0700 with nothing in it.
    let src2 = d.path().join("src2");
    std::fs::create_dir_all(src2.join("d")).unwrap();
    std::fs::write(src2.join("d/big.bin"), vec![7u8; 200_000]).unwrap();
    std::fs::set_permissions(src2.join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let a2 = d.path().join("a2.hpcs");
    ok(&pack_cmd(&["pack", s(&src2), "-o", s(&a2), "-r", &r, "-q"]));
    let header_len = hpcs::crypto::SealedArchive::open(hpcs::crypto::FileSource::open(&a2).unwrap())
        .unwrap()
        .header()
        .header_len as u64;
    let mut bytes = std::fs::read(&a2).unwrap();
    let off = (header_len + (65536 + 16) + 100) as usize; // chunk 1 of 4
    bytes[off] ^= 1;
    let bad = d.path().join("bad.hpcs");
    std::fs::write(&bad, &bytes).unwrap();
    let half = d.path().join("half");
    let o = pack_cmd(&["extract", s(&bad), "-i", s(&id), "-o", s(&half)]);
    assert_eq!(
        o.status.code(),
        Some(15),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(mode(&half), 0o700, "DEST made by extract");
    assert_eq!(
        mode(&half.join("d")),
        0o700,
        "a directory left by a failed extract"
    );
    assert_eq!(std::fs::read_dir(half.join("d")).unwrap().count(), 0);
    let good2 = d.path().join("good2");
    ok(&pack_cmd(&[
        "extract",
        s(&a2),
        "-i",
        s(&id),
        "-o",
        s(&good2),
    ]));
    assert_eq!(
        mode(&good2.join("d")),
        0o755,
        "the archive's mode, once complete"
    );

    // On success the archive's modes are set at the end.
    let good = d.path().join("good");
    ok(&pack_cmd(&["extract", s(&a), "-i", s(&id), "-o", s(&good)]));
    assert_eq!(mode(&good.join("sub")), mode(&src.join("sub")));
}

#[test]
fn interrupted_pack_leaves_nothing() {
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // A large sparse file: cheap to create, takes a while to encrypt.
    let f = std::fs::File::create(src.join("big")).unwrap();
    f.set_len(8 << 30).unwrap();
    let (_, r) = age_keygen(d.path(), "id.txt");
    let a = d.path().join("a.hpcs");
    let mut child = Command::new(BIN)
        .args(["pack", s(&src), "-o", s(&a), "-r", &r, "-q"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the temp file exists and has grown.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let grown = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name().to_string_lossy().contains(".tmp-")
                    && e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false)
            });
        if grown {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "pack finished before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "temp file never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill(2) with our own child's pid and SIGTERM; no memory involved.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!a.exists(), "partial archive under the final name");
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn help_documents_every_flag() {
    for sub in ["pack", "inspect", "verify", "extract", "cat", "rewrap"] {
        let o = ok(&pack_cmd(&[sub, "--help"])).stdout.clone();
        let text = String::from_utf8_lossy(&o);
        assert!(text.contains("Usage:"), "{sub}");
        // Every long option listed has some explanation after it.
        for line in text.lines().filter(|l| l.trim_start().starts_with("-")) {
            assert!(
                !line.trim().ends_with(']') || line.len() > 30,
                "{sub}: bare flag {line:?}"
            );
        }
    }
}
