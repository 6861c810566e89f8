//! The backing file damaged under a live mount (a flipped byte, two blocks
//! swapped, an older copy of a block put back, the file truncated): the
//! next read of each damaged block is EIO, never other bytes, the kernel
//! page cache cannot hide it (scratch files are opened with direct I/O),
//! and other blocks still read. And the daemon killed with SIGKILL: DIR
//! keeps nothing, and the next mount with the same DIR starts empty.

use std::os::unix::fs::FileExt;
use std::process::Command;

use super::*;

const BLOCK: u64 = 4096;
const STORED: u64 = 4112;

#[test]
fn damaged_blocks_give_eio_on_the_next_read() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    let p = sm.path("victim.bin");
    // One write of 8 blocks into a fresh scratch directory: slots 0..8.
    let data: Vec<u8> = (0..8 * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
    std::fs::write(&p, &data).unwrap();
    let f = File::open(&p).unwrap();
    let backing = sm.backing();
    let read = |k: u64| {
        let mut b = vec![0u8; BLOCK as usize];
        f.read_exact_at(&mut b, k * BLOCK).map(|()| b)
    };
    let stored = |k: u64| {
        let mut b = vec![0u8; STORED as usize];
        backing.read_exact_at(&mut b, k * STORED).unwrap();
        b
    };
    for k in 0..8 {
        assert_eq!(
            read(k).unwrap(),
            vec![k as u8 + 1; BLOCK as usize],
            "block {k}"
        );
    }
    // Every block was just read (and would be cached by a page-cache
    // mount); damage must still show on the next read.
    let mut b1 = stored(1);
    b1[1000] ^= 0x01;
    backing.write_all_at(&b1, STORED).unwrap();
    assert_eq!(errno(read(1)), libc::EIO, "flipped byte");
    assert_eq!(
        read(0).unwrap(),
        vec![1u8; BLOCK as usize],
        "neighbour still reads"
    );
    // Two blocks swapped.
    let (b2, b3) = (stored(2), stored(3));
    backing.write_all_at(&b3, 2 * STORED).unwrap();
    backing.write_all_at(&b2, 3 * STORED).unwrap();
    assert_eq!(errno(read(2)), libc::EIO, "swapped");
    assert_eq!(errno(read(3)), libc::EIO, "swapped");
    // An older copy put back after the block was rewritten.
    let old = stored(4);
    let w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    w.write_all_at(&vec![0xeeu8; BLOCK as usize], 4 * BLOCK)
        .unwrap();
    assert_eq!(read(4).unwrap(), vec![0xeeu8; BLOCK as usize]);
    backing.write_all_at(&old, 4 * STORED).unwrap();
    assert_eq!(errno(read(4)), libc::EIO, "rolled back");
    // The backing file truncated inside block 7.
    backing.set_len(7 * STORED + 10).unwrap();
    assert_eq!(errno(read(7)), libc::EIO, "truncated");
    assert_eq!(read(6).unwrap(), vec![7u8; BLOCK as usize]);
    // A read spanning good and damaged blocks fails whole (no short read).
    let mut two = vec![0u8; 2 * BLOCK as usize - 200];
    assert_eq!(errno(f.read_exact_at(&mut two, 5 * BLOCK + 100)), 0);
    assert_eq!(
        f.read_at(&mut two, 6 * BLOCK).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EIO))
    );
    // Also through a shared mapping of a fresh open: the page fault fails
    // (SIGBUS would kill us), so check with a read of the whole file.
    assert_eq!(errno(std::fs::read(&p)), libc::EIO);
    let log = sm.m.log_text();
    assert!(log.contains("failed authentication"), "{log}");
    assert!(log.contains("truncated"), "{log}");
    assert!(
        !log.contains("victim"),
        "no scratch file name in the log: {log}"
    );
    drop((f, w, backing));
    sm.finish(&["victim.bin"]);
}

#[test]
fn sigkill_leaves_nothing_and_the_next_mount_starts_empty() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    std::fs::create_dir(sm.path("keep")).unwrap();
    std::fs::write(sm.path("keep/secret-results.csv"), canary_data(1, 500_000)).unwrap();
    let fd = backing_fd(sm.m.pid(), &sm.dir);
    let ino = std::fs::metadata(&fd).unwrap().ino();
    assert!(std::fs::metadata(&fd).unwrap().len() >= 500_000);
    assert_eq!(
        listing(&sm.dir),
        Vec::<String>::new(),
        "nothing in DIR even while mounted"
    );
    let ScratchMount { s, dir, mut m, .. } = sm;
    let mut child = m.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The key, the tree and the backing file went with the process.
    assert_eq!(listing(&dir), Vec::<String>::new());
    let dir_dev = std::fs::metadata(&dir).unwrap().dev();
    let still_there = std::fs::read_dir("/proc/self/fd").unwrap().any(|e| {
        std::fs::metadata(e.unwrap().path()).is_ok_and(|md| md.ino() == ino && md.dev() == dir_dev)
    });
    assert!(!still_there);
    let _ = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&s.mnt)
        .status();
    wait_until("the dead mount to go", || !mounted(&s.mnt));
    // A name left by a daemon that died between creating its backing file
    // and unlinking it (filesystems without O_TMPFILE) is removed.
    let leftover = dir.join(format!(".hpcs-scratch-{}", "0f".repeat(16)));
    std::fs::write(&leftover, b"sealed under a key nobody has").unwrap();
    let m2 = Mounted::start(&ScratchMount::args(&s, &dir, "", &["-v"]), &s.mnt, &s.log());
    assert!(!leftover.exists(), "leftover removed");
    assert!(
        m2.log_text().contains("removed 1 leftover backing file"),
        "{}",
        m2.log_text()
    );
    let root = s.mnt.join("tmp");
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "the new scratch starts empty"
    );
    std::fs::write(root.join("again"), b"works").unwrap();
    assert_eq!(std::fs::read(root.join("again")).unwrap(), b"works");
    drop(m);
    m2.finish();
    assert_eq!(listing(&dir), Vec::<String>::new());
}
