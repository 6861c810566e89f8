//! What a mount refuses or reports: writes outside a results directory get
//! EROFS, a tampered or truncated archive gives EIO (never wrong bytes) and a
//! log line naming file and chunk, and startup errors have their exit codes
//! and mount nothing.

use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::process::Command;

use super::*;

#[test]
fn writes_get_erofs() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let m = s.mount(&[]);
    let p = |r: &str| m.mnt.join(r);
    let rofs = libc::EROFS;
    assert_eq!(
        errno(std::fs::OpenOptions::new().write(true).open(p("one"))),
        rofs
    );
    assert_eq!(
        errno(std::fs::OpenOptions::new().append(true).open(p("one"))),
        rofs
    );
    assert_eq!(errno(File::create(p("new"))), rofs);
    assert_eq!(errno(std::fs::create_dir(p("newdir"))), rofs);
    assert_eq!(errno(std::fs::remove_file(p("one"))), rofs);
    assert_eq!(errno(std::fs::remove_dir(p("emptydir"))), rofs);
    assert_eq!(errno(std::fs::rename(p("one"), p("two"))), rofs);
    assert_eq!(errno(std::fs::hard_link(p("one"), p("three"))), rofs);
    assert_eq!(errno(std::os::unix::fs::symlink("x", p("sl"))), rofs);
    assert_eq!(
        errno(std::fs::set_permissions(
            p("one"),
            std::fs::Permissions::from_mode(0o777)
        )),
        rofs
    );
    let c = std::ffi::CString::new(p("one").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(c.as_ptr(), 0) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(rofs));
    // The file is untouched.
    assert_eq!(std::fs::read(p("one")).unwrap(), b"x");
    m.finish();
}

#[test]
fn tampered_chunk_gives_eio_and_other_files_still_read() {
    need_fuse!();
    let chunk = 4096u64;
    let s = Sample::new(chunk as u32, |p| {
        std::fs::write(p.join("victim"), noise(1, 40 * 4096)).unwrap();
        std::fs::write(p.join("other"), noise(2, 20 * 4096)).unwrap();
    });
    let m = s.mount(&["--direct-io", "--readahead", "0"]);
    // Flip one byte in data chunk 10 of "victim", under the live mount.
    let k = s.chunk_of("victim", 10 * chunk + 5);
    let off = s.chunk_file_offset(k) + 100;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&s.archive)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], off).unwrap();
    drop(f);

    let victim = File::open(m.mnt.join("victim")).unwrap();
    let want = noise(1, 40 * 4096);
    // Before the bad chunk: fine. Spanning it or inside it: EIO, never zeros
    // or a short read.
    let mut buf = vec![0u8; 8192];
    victim.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, want[..8192]);
    let mut buf = vec![0u8; 3 * 4096];
    assert_eq!(errno(victim.read_at(&mut buf, 9 * chunk)), libc::EIO);
    let mut one = [0u8; 1];
    assert_eq!(
        errno(victim.read_at(&mut one, 10 * chunk + 4000)),
        libc::EIO
    );
    // After it: fine again.
    let mut buf = vec![0u8; 4096];
    victim.read_exact_at(&mut buf, 11 * chunk).unwrap();
    assert_eq!(buf, want[11 * 4096..12 * 4096]);
    // Reading the whole file fails; other files still read.
    assert_eq!(errno(std::fs::read(m.mnt.join("victim"))), libc::EIO);
    assert_eq!(
        std::fs::read(m.mnt.join("other")).unwrap(),
        noise(2, 20 * 4096)
    );
    drop(victim);
    let log = m.log_text();
    assert!(
        log.contains(&format!("/victim: data chunk {k} failed authentication")),
        "log names file and chunk:\n{log}"
    );
    m.finish();
}

#[test]
fn truncated_archive_gives_eio() {
    need_fuse!();
    let s = Sample::new(4096, |p| {
        std::fs::write(p.join("f"), noise(5, 64 * 4096)).unwrap()
    });
    let m = s.mount(&["--direct-io", "--readahead", "0"]);
    let f = File::open(m.mnt.join("f")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    // Cut the archive in the middle of the file's data.
    let cut = s.chunk_file_offset(s.chunk_of("f", 30 * 4096));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.archive)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(errno(f.read_at(&mut buf, 40 * 4096)), libc::EIO);
    // Already cached data stays authentic.
    let mut again = vec![0u8; 4096];
    f.read_exact_at(&mut again, 0).unwrap();
    assert_eq!(again, head);
    drop(f);
    m.finish();
}

#[test]
fn startup_errors_have_their_exit_codes_and_mount_nothing() {
    need_fuse!();
    let s = Sample::new(4096, |p| rich_tree(p, 4096));
    let code = |args: Vec<String>| {
        let out = run_mount(&args);
        assert!(!mounted(&s.mnt), "{args:?} left a mount");
        assert!(!out.stderr.is_empty());
        out.status.code().unwrap()
    };
    let (other_id, _) = identity_file(s.dir.path(), "other.txt");
    let mut wrong = s.args();
    wrong[3] = other_id.display().to_string();
    assert_eq!(code(wrong), hpcs::exit::WRONG_KEY as i32);
    let notarch = s.dir.path().join("not.hpcs");
    std::fs::write(&notarch, b"hello, this is not an archive at all........").unwrap();
    let mut na = s.args();
    na[0] = notarch.display().to_string();
    assert_eq!(code(na), hpcs::exit::NOT_ARCHIVE as i32);
    let mut missing = s.args();
    missing[1] = s.dir.path().join("nope").display().to_string();
    assert_eq!(code(missing), hpcs::exit::MOUNTPOINT_MISSING as i32);
    let full = s.dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let mut busy = s.args();
    busy[1] = full.display().to_string();
    assert_eq!(code(busy), hpcs::exit::MOUNTPOINT_BUSY as i32);
    assert_eq!(
        code(vec![s.archive.display().to_string()]),
        hpcs::exit::USAGE as i32
    );
    for bad in ["--threads", "--prefetch-threads"] {
        let mut zero = s.args();
        zero.extend([bad.to_string(), "0".to_string()]);
        assert_eq!(code(zero), hpcs::exit::USAGE as i32, "{bad} 0");
    }
    let mut noid = s.args();
    noid.truncate(2);
    let out = Command::new(MOUNT)
        .args(&noid)
        .env_remove("HPCS_IDENTITY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(hpcs::exit::BAD_IDENTITY as i32));
    // An identity file others can read is refused (like OpenSSH), before
    // anything is mounted; at 0600 it mounts (below).
    let chmod = |mode| {
        std::fs::set_permissions(&s.identity, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for mode in [0o644, 0o640, 0o604] {
        chmod(mode);
        let out = run_mount(&s.args());
        assert!(!mounted(&s.mnt), "mode {mode:o} mounted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(hpcs::exit::BAD_IDENTITY as i32),
            "mode {mode:o}: {err}"
        );
        assert!(
            err.contains(&format!("chmod 600 {}", s.identity.display())),
            "{err}"
        );
    }
    chmod(0o600);
    // A mount point that is already mounted on.
    let m = s.mount(&[]);
    let out = run_mount(&s.args());
    assert_eq!(out.status.code(), Some(hpcs::exit::MOUNTPOINT_BUSY as i32));
    m.finish();
    // --unmount of something that is not an hpcs mount.
    let out = Command::new(MOUNT)
        .arg("--unmount")
        .arg(&s.mnt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(hpcs::exit::NOT_MOUNTED as i32));
}
