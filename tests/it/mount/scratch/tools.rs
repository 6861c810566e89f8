//! Real tools on the scratch directory: `sort -T` spilling to it, SQLite
//! (Python's sqlite3), a file written with seeks and holes, `cp` and `mv`
//! in and out, directories, rename over, unlink while open, the size limit;
//! and the results directory fed from scratch (the pattern for outputs that
//! need seeks).

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::process::Command;

use super::*;

/// Runs `cmd`, which must succeed; its output.
fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.env("LC_ALL", "C").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sh(script: &str) -> std::process::Output {
    ok(Command::new("sh").args(["-c", script]))
}

/// sort with a 1 MiB buffer spills its runs into the scratch directory (the
/// input is twenty times larger, and larger than the mount's 8 MiB cache);
/// the result equals sorting on a plain disk.
#[test]
fn sort_spills_into_scratch() {
    need_fuse!();
    let sm = ScratchMount::start("", &["--cache-size", "8M"]);
    let input = sm.s.dir.path().join("unsorted.txt");
    let mut text = String::new();
    let mut x = 7u64;
    let mut i = 0;
    while text.len() < 20 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            "{x:016x} {} line {i}\n",
            String::from_utf8_lossy(CANARY)
        ));
        i += 1;
    }
    std::fs::write(&input, &text).unwrap();
    let tmp = sm.path("sort-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let a = sm.path("sorted.txt");
    // Watch sort's temporary files appear in the scratch directory.
    sh(&format!(
        "sort -S 1M -T {} {} -o {}",
        tmp.display(),
        input.display(),
        a.display()
    ));
    let b = sm.s.dir.path().join("sorted-plain.txt");
    sh(&format!("sort {} -o {}", input.display(), b.display()));
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "same order"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "sort removed its runs"
    );
    sm.finish(&["sorted.txt", "sort-tmp"]);
}

/// SQLite creates, fills, indexes, queries and checks a database in
/// scratch, in rollback-journal and in WAL mode (which maps its -shm file).
#[test]
fn sqlite_database_in_scratch() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    let db = sm.path("cohort-results.sqlite");
    let script = format!(
        r#"
import sqlite3
c = sqlite3.connect({db:?})
c.execute("create table t(id integer primary key, name text, v real)")
with c:
    c.executemany("insert into t(name, v) values(?, ?)",
                  [("{canary}-%d" % i, i * 0.5) for i in range(30000)])
c.execute("create index t_v on t(v)")
assert c.execute("select count(*), sum(v) from t").fetchone() == (30000, 224992500.0)
with c:
    c.execute("delete from t where id % 3 = 0")
    c.execute("update t set v = -v where id % 5 = 0")
c.execute("vacuum")
assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
with c:
    c.executemany("insert into t(name, v) values(?, ?)", [("w%d" % i, 1.0) for i in range(5000)])
n = c.execute("select count(*) from t where v < 0").fetchone()[0]
assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
c.close()
c = sqlite3.connect({db:?})
print(c.execute("select count(*) from t").fetchone()[0], n)
"#,
        db = db.display().to_string(),
        canary = String::from_utf8_lossy(CANARY),
    );
    let out = ok(Command::new("python3").args(["-c", &script]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "25000 4000\n");
    sm.finish(&["cohort-results.sqlite"]);
}

/// A file written with seeks and holes: holes read as zeros, take no
/// blocks, and the size is the end of the last write (or of a truncate).
#[test]
fn seeks_and_holes() {
    need_fuse!();
    let sm = ScratchMount::start("", &[]);
    let p = sm.path("sparse-holes.h5");
    let mut f = File::create(&p).unwrap();
    let chunk = canary_data(5, 10_000);
    f.seek(SeekFrom::Start(1 << 30)).unwrap();
    f.write_all(&chunk).unwrap();
    f.seek(SeekFrom::Start(12_345)).unwrap();
    f.write_all(&chunk).unwrap();
    f.write_all_at(b"header", 0).unwrap();
    drop(f);
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!(md.len(), (1 << 30) + 10_000);
    assert!(
        md.blocks() * 512 < 64 << 10,
        "holes take no space: {} blocks",
        md.blocks()
    );
    let f = File::open(&p).unwrap();
    let mut buf = vec![0u8; 30_000];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..6], b"header");
    assert!(buf[6..12_345].iter().all(|&b| b == 0));
    assert!(buf[12_345..22_345] == chunk[..]);
    assert!(buf[22_345..].iter().all(|&b| b == 0));
    let mut mid = vec![1u8; 1 << 20];
    f.read_exact_at(&mut mid, 500 << 20).unwrap();
    assert!(mid.iter().all(|&b| b == 0), "a hole in the middle");
    f.read_exact_at(&mut buf[..10_000], 1 << 30).unwrap();
    assert!(buf[..10_000] == chunk[..]);
    // Truncating into the data and growing again shows zeros past the cut.
    let w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    w.set_len(12_345 + 100).unwrap();
    w.set_len(40_000).unwrap();
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[12_345..12_445] == chunk[..100]);
    assert!(buf[12_445..].iter().all(|&b| b == 0), "zeros after the cut");
    drop((f, w));
    sm.finish(&["sparse-holes.h5"]);
}

/// cp and mv in and out of scratch, within it, directories, rename over a
/// file, unlink while open, and the size limit.
#[test]
fn cp_mv_directories_and_the_limit() {
    need_fuse!();
    let sm = ScratchMount::start(":4M", &[]);
    let input = sm.s.mnt.join("data/input.txt");
    let outside = sm.s.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("local.bin"), canary_data(9, 200_000)).unwrap();
    sh(&format!(
        "set -e; cd {root}; mkdir -p work/deep/er; cp {input} work/in.txt; \
         cp {out}/local.bin work/deep/er/; mv work/in.txt work/deep/moved.txt; \
         mv {out}/local.bin work/moved-in.bin; cp -r work {out}/copied-out; \
         mv work/deep/moved.txt {out}/moved-out.txt",
        root = sm.root.display(),
        input = input.display(),
        out = outside.display()
    ));
    let want_in = std::fs::read(&input).unwrap();
    let want_local = canary_data(9, 200_000);
    assert_eq!(
        std::fs::read(outside.join("moved-out.txt")).unwrap(),
        want_in
    );
    assert!(
        !sm.path("work/deep/moved.txt").exists(),
        "mv out removed the source"
    );
    assert!(std::fs::read(sm.path("work/moved-in.bin")).unwrap() == want_local);
    assert!(!outside.join("local.bin").exists());
    assert!(std::fs::read(outside.join("copied-out/deep/er/local.bin")).unwrap() == want_local);
    assert_eq!(dev(&sm.path("work")), dev(&sm.root));
    // rename over an existing file, and rmdir rules.
    std::fs::write(sm.path("work/a"), b"a").unwrap();
    std::fs::rename(sm.path("work/moved-in.bin"), sm.path("work/a")).unwrap();
    assert_eq!(std::fs::read(sm.path("work/a")).unwrap().len(), 200_000);
    assert_eq!(errno(std::fs::remove_dir(sm.path("work"))), libc::ENOTEMPTY);
    assert_eq!(
        errno(std::fs::rename(sm.path("work/a"), outside.join("x"))),
        libc::EXDEV
    );
    assert_eq!(
        errno(std::os::unix::fs::symlink("a", sm.path("work/l"))),
        libc::EPERM
    );
    // Unlink while open: the data stays readable and writable until closed.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(sm.path("work/a"))
        .unwrap();
    std::fs::remove_file(sm.path("work/a")).unwrap();
    assert!(!sm.path("work/a").exists());
    f.write_all_at(b"still here", 100).unwrap();
    let mut b = [0u8; 10];
    f.read_exact_at(&mut b, 100).unwrap();
    assert_eq!(&b, b"still here");
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    drop(f);
    // The limit: 4 MiB of data in all, ENOSPC past it.
    let big = sm.path("work/big");
    let mut g = File::create(&big).unwrap();
    let mut written = 0usize;
    let chunk = vec![0x5au8; 256 << 10];
    let err = loop {
        match g.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert!(
        (3 << 20..=4 << 20).contains(&written),
        "{written} bytes before ENOSPC"
    );
    drop(g);
    std::fs::remove_file(&big).unwrap();
    std::fs::write(&big, vec![1u8; 1 << 20]).unwrap();
    sm.finish(&["moved-in", "local.bin", "moved.txt"]);
}

/// The pattern for outputs that need seeks: build the file in scratch,
/// then copy it into the results directory, which encrypts it to the user
/// as it is written (sequentially); on the secure device it decrypts to the
/// same bytes.
#[test]
fn results_fed_from_scratch() {
    need_fuse!();
    let s = Sample::new(4096, |p| std::fs::write(p.join("x"), b"x").unwrap());
    let dir = s.dir.path().join("scratch-dir");
    let results = s.dir.path().join("results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    let (_, recipient) = identity_file(s.dir.path(), "res-id.txt");
    let mut args = ScratchMount::args(&s, &dir, "", &[]);
    args.extend([
        "--output".into(),
        format!("out={}", results.display()),
        "--output-recipient".into(),
        recipient,
    ]);
    let mnt = s.mnt.display();
    // A file written backwards with seeks: impossible in the results
    // directory (sequential only), fine in scratch, then copied over.
    let script = format!(
        "set -e; python3 -c \"
f = open('{mnt}/tmp/table.bin', 'wb')
for i in reversed(range(64)):
    f.seek(i * 1000); f.write(bytes([i]) * 1000)
f.close()\"; \
         cp {mnt}/tmp/table.bin {mnt}/out/table.bin; cmp {mnt}/tmp/table.bin <(cat {mnt}/tmp/table.bin)"
    );
    let out = Command::new(super::MOUNT)
        .args(&args)
        .args(["--", "bash", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".age")), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("table")),
        "no plaintext name"
    );
    assert_eq!(listing(&dir), Vec::<String>::new());
}
