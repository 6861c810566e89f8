//! Test helpers: temporary directories, binary paths, age keys, sample trees.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A per-test temporary directory (removed on drop).
pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hpcs-test-")
        .tempdir()
        .expect("create temp dir")
}

/// Path of a workspace binary (built by `cargo test --workspace`).
pub fn bin(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps/it-XXXX
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        p.display()
    );
    p
}

/// Runs `cmd`, returning its output (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

/// An age identity (secret, public) generated in-process.
pub fn age_keypair() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_string(),
        id.to_public().to_string(),
    )
}

/// Writes `text` to a new file `path` with mode 0600 (identity files: hpcs
/// refuses one that group or others can read).
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write private file");
}

/// Writes an age identity file (mode 0600) into `dir` and returns (path, recipient).
pub fn identity_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let (secret, public) = age_keypair();
    let p = dir.join(name);
    write_private(&p, &format!("# test identity\n{secret}\n"));
    (p, public)
}

/// Packs `src` into `out` with the library (no CLI), for `recipient`.
/// Returns the archive's data key.
pub fn pack_lib(
    src: &Path,
    out: &Path,
    chunk_size: u32,
    suite: hpcs::crypto::Suite,
    recipient: &str,
) -> hpcs::crypto::DataKey {
    let scan = hpcs::pack::scan(src, chunk_size).expect("scan");
    let key = hpcs::crypto::DataKey::generate().expect("key");
    let r = hpcs::keys::parse_recipient(recipient).expect("recipient");
    let stanza = hpcs::keys::wrap_recipients(&key, std::slice::from_ref(&r)).expect("wrap");
    let id = hpcs::crypto::writer::new_archive_id().expect("id");
    let opts = hpcs::crypto::WriteOptions {
        suite,
        chunk_size,
        ..Default::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    hpcs::pack::write(
        &scan,
        out,
        true,
        &opts,
        &key,
        id,
        vec![stanza],
        &mut |_| {},
        &stop,
    )
    .expect("pack");
    key
}

/// Opens and unlocks an archive file with `key`.
pub fn open_lib(
    path: &Path,
    key: &hpcs::crypto::DataKey,
) -> Result<hpcs::crypto::Archive<hpcs::crypto::FileSource>, hpcs::crypto::Error> {
    let src = hpcs::crypto::FileSource::open(path)?;
    hpcs::crypto::SealedArchive::open(src)?.unlock(key)
}

/// The archive's pin, as `hpcs-pack pack` and `inspect` print it.
pub fn pin_of(path: &Path) -> String {
    let src = hpcs::crypto::FileSource::open(path).expect("open archive");
    let sealed = hpcs::crypto::SealedArchive::open(src).expect("archive header");
    sealed.header().pin().to_string()
}

/// SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hpcs::util::hex(&sha2::Sha256::digest(data))
}

/// A deterministic pseudo-random byte stream (xorshift), for test data.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Every entry under `root` as (relative path, description) where the
/// description covers type, mode bits, size, symlink target and SHA-256.
pub fn describe_tree(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        for p in names {
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let desc = if md.file_type().is_symlink() {
                format!(
                    "link {}",
                    std::fs::read_link(&p).expect("readlink").display()
                )
            } else if md.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", md.mode() & 0o1777)
            } else {
                let data = std::fs::read(&p).expect("read");
                format!(
                    "file {:o} {} {}",
                    md.mode() & 0o1777,
                    data.len(),
                    sha256_hex(&data)
                )
            };
            out.push((rel, desc));
        }
    }
    out.sort();
    out
}
