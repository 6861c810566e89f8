//! The benchmark ceilings exist only in a build with the cargo feature
//! `bench-ceilings` (tools/bench.sh builds one; `tools/test.sh` runs these
//! tests once with it): there they are tested; a default build, which is
//! what users install, must not even know their flags.

use super::*;

/// A default build has no benchmark ceilings: both flags are unknown
/// arguments (exit 2, before any archive is opened), whereas a build that
/// knew them would go on to open the (missing) archive and fail otherwise.
#[cfg(not(feature = "bench-ceilings"))]
#[test]
fn default_build_has_no_bench_ceilings() {
    let dir = tmpdir();
    let archive = dir.path().join("missing.hpcs").display().to_string();
    let mnt = dir.path().display().to_string();
    for flag in ["--bench-nocrypt", "--bench-null"] {
        let out = run_mount(&[archive.clone(), mnt.clone(), flag.to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(hpcs::exit::USAGE as i32), "{err}");
        assert!(
            err.contains(&format!("unexpected argument '{flag}'")),
            "{flag}: {err}"
        );
    }
}

/// The benchmark ceilings: `--bench-nocrypt` serves the stored (encrypted)
/// bytes of each chunk through the usual cache and read-ahead, `--bench-null`
/// zeros; both keep sizes, neither may be combined with the other.
#[cfg(feature = "bench-ceilings")]
#[test]
fn bench_ceilings_serve_stored_bytes_or_zeros() {
    need_fuse!();
    let cs = 16384usize;
    let data = noise(5, 10 * cs + 123);
    let d2 = data.clone();
    let s = Sample::new(cs as u32, move |p| {
        std::fs::write(p.join("f"), &d2).unwrap()
    });
    let stored = std::fs::read(&s.archive).unwrap();
    assert_eq!(
        s.chunk_of("f", 0),
        0,
        "the only file starts the data stream"
    );
    let m = s.mount(&["--bench-nocrypt"]);
    let got = std::fs::read(m.mnt.join("f")).unwrap();
    m.finish();
    assert_eq!(got.len(), data.len());
    assert_ne!(got, data, "no-crypto ceiling served plaintext");
    for k in [0usize, 3, 10] {
        let from = k * cs;
        let to = ((k + 1) * cs).min(data.len());
        let chunk = s.chunk_of("f", from as u64);
        let off = s.chunk_file_offset(chunk) as usize + (from - chunk as usize * cs);
        assert_eq!(got[from..to], stored[off..off + (to - from)], "chunk {k}");
    }
    let m = s.mount(&["--bench-null"]);
    let zeros = std::fs::read(m.mnt.join("f")).unwrap();
    m.finish();
    assert_eq!(zeros, vec![0u8; data.len()]);
    let mut both = s.args();
    both.extend(["--bench-null".to_string(), "--bench-nocrypt".to_string()]);
    let out = run_mount(&both);
    assert_eq!(out.status.code(), Some(hpcs::exit::USAGE as i32));
    assert!(!mounted(&s.mnt));
}
