//! Smoke test of the benchmark harness: `tools/bench.sh --smoke` (tiny sizes,
//! one repetition) with this build's binaries must run end to end and write a
//! Markdown page with a measurement for every system and workload, a targets
//! table and a chart, and leave no mount and no scratch data behind.
//!
//! Needs /dev/fuse and the harness's tools (fio, gocryptfs, squashfuse_ll,
//! mksquashfs, age, gnuplot; tools/setup.sh installs them) and the hpcs-pack
//! binary (`cargo test --workspace` builds it). Without them the test prints
//! a line and passes, unless HPCS_REQUIRE_FUSE=1 (CI), where it fails.
//!
//! The harness measures the benchmark ceilings, which only a build with the
//! cargo feature `bench-ceilings` has: the test exists in such a build
//! (`cargo test --features bench-ceilings --test it bench::`, as
//! `tools/test.sh` runs it), not in a default one.

#![cfg(all(feature = "fuse", feature = "bench-ceilings"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::tmpdir;

const MOUNT: &str = env!("CARGO_BIN_EXE_hpcs-mount");

const TOOLS: &[&str] = &[
    "bash",
    "python3",
    "fio",
    "gocryptfs",
    "squashfuse",
    "squashfuse_ll",
    "mksquashfs",
    "age",
    "age-keygen",
    "tar",
    "fusermount3",
    "findmnt",
    "gnuplot",
];

const HOT_WORKLOADS: &[&str] = &[
    "seq read 1M, buffered",
    "seq read 1M, O_DIRECT",
    "random 4K O_DIRECT, 1 job",
    "random 4K O_DIRECT, 2 jobs",
];

const HOT_SYSTEMS: &[&str] = &[
    "hpcs (default)",
    "hpcs --direct-io",
    "hpcs --page-cache",
    "hpcs --readahead 0",
    "hpcs --readahead 2M",
    "hpcs 16K-chunk archive",
    "null ceiling (default)",
    "null ceiling (--direct-io)",
    "null ceiling (--page-cache)",
    "null ceiling (--readahead 0)",
    "null ceiling (--readahead 2M)",
    "no-crypto ceiling (default)",
    "no-crypto ceiling (16K-chunk archive)",
    "gocryptfs",
    "squashfuse_ll",
    "page cache (plain file)",
];

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            f.is_file()
                && std::fs::metadata(&f)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// hpcs-pack next to this build's hpcs-mount (built by `cargo test --workspace`).
fn hpcs_pack() -> PathBuf {
    Path::new(MOUNT).with_file_name("hpcs-pack")
}

/// Why the smoke test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing tools: {} (tools/setup.sh installs them)",
            missing.join(" ")
        ));
    }
    let pack = hpcs_pack();
    if !pack.exists() {
        return Some(format!(
            "{} is not built (run the tests with `cargo test --workspace`, or `cargo build -p hpcs-pack`)",
            pack.display()
        ));
    }
    None
}

/// The "All measurements" table of the generated page.
fn measurement_table(md: &str) -> &str {
    let start = md
        .find("<summary>All measurements</summary>")
        .expect("no 'All measurements' table");
    let end = start + md[start..].find("</details>").expect("unterminated table");
    &md[start..end]
}

/// Rows (workload, system, median cell, unit) of the measurement table;
/// cells escape `|` as `\|`.
fn measurements(table: &str) -> Vec<(String, String, String, String)> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload |"))
        .map(|l| {
            let c: Vec<String> = l
                .split(" | ")
                .map(|s| s.trim_matches(['|', ' ']).replace("\\|", "|"))
                .collect();
            assert!(c.len() >= 5, "bad row {l:?}");
            (c[0].clone(), c[1].clone(), c[2].clone(), c[3].clone())
        })
        .collect()
}

/// The leading number of a cell such as "1.23 (1.10–1.30)", "12.5k", "8.1 ms".
fn number(cell: &str) -> Option<f64> {
    let s: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    s.parse().ok()
}

#[test]
fn bench_smoke_reports_every_system_and_workload() {
    if let Some(why) = missing_prerequisite() {
        if std::env::var("HPCS_REQUIRE_FUSE").as_deref() == Ok("1") {
            panic!("bench smoke test cannot run: {why}, but HPCS_REQUIRE_FUSE=1");
        }
        eprintln!("skipping bench smoke test: {why} (set HPCS_REQUIRE_FUSE=1 to fail instead)");
        return;
    }
    let out = tmpdir();
    let work = tmpdir();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/bench.sh");
    let t = Instant::now();
    let o = Command::new("bash")
        .arg(script)
        .args(["--smoke", "--no-install", "--out"])
        .arg(out.path())
        .arg("--workdir")
        .arg(work.path())
        .env("HPCS_MOUNT_BIN", MOUNT)
        .env("HPCS_PACK_BIN", hpcs_pack())
        .output()
        .expect("run tools/bench.sh");
    let log = String::from_utf8_lossy(&o.stderr);
    eprintln!(
        "tools/bench.sh --smoke took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        o.status.success(),
        "tools/bench.sh --smoke failed ({}):\n{log}",
        o.status
    );

    // nothing left behind: no mount and no scratch data under the work dir
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let w = work.path().to_string_lossy().into_owned();
    assert!(
        !mountinfo.lines().any(|l| l.contains(w.as_str())),
        "a mount under {w} was left behind"
    );
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "scratch data left in {w}"
    );

    let md = std::fs::read_to_string(out.path().join("benchmarks.md")).expect("benchmarks.md");
    assert!(md.contains("<!-- bench:begin -->") && md.contains("<!-- bench:end -->"));
    assert!(
        md.contains("## Chunk crypto"),
        "the hand-written sections were not kept"
    );
    let table = measurement_table(&md);
    let rows = measurements(table);
    let find = |wl: &dyn Fn(&str) -> bool, sys: &dyn Fn(&str) -> bool, what: &str| -> f64 {
        let r = rows
            .iter()
            .find(|(w, s, _, u)| wl(w) && sys(s) && u != "s/GB" && u != "ms/1k reads")
            .unwrap_or_else(|| panic!("no row for {what} in benchmarks.md:\n{table}"));
        let v = number(&r.2).unwrap_or_else(|| panic!("no number for {what}: {:?}", r.2));
        assert!(v > 0.0, "zero measurement for {what}: {r:?}");
        v
    };

    for wl in HOT_WORKLOADS {
        for sys in HOT_SYSTEMS {
            find(&|w| w == *wl, &|s| s == *sys, &format!("{wl} / {sys}"));
        }
        for ms in ["0", "1", "2", "5"] {
            let sys = format!("hpcs (default), +{ms} ms per backing read");
            find(&|w| w == *wl, &|s| s == sys, &format!("{wl} / {sys}"));
        }
    }
    let ttfb = |w: &str| w.starts_with("time to first byte");
    find(
        &ttfb,
        &|s| s.starts_with("hpcs-mount --daemon"),
        "TTFB hpcs",
    );
    find(
        &ttfb,
        &|s| s.starts_with("hpcs-mount exec mode"),
        "TTFB exec",
    );
    find(&ttfb, &|s| s.starts_with("age -d | tar"), "TTFB age | tar");
    for dest in ["output to the work dir's disk", "output to memory"] {
        for tool in ["hpcs-pack pack", "tar -c | age -e"] {
            find(
                &|w| w.starts_with("pack ") && w.contains(dest),
                &|s| s == tool,
                &format!("pack {dest} / {tool}"),
            );
        }
    }
    for sys in [
        "hpcs (default)",
        "null ceiling (default)",
        "gocryptfs",
        "squashfuse_ll",
        "plain files (local fs)",
    ] {
        find(
            &|w| w.starts_with("read all ") && w.contains("small files"),
            &|s| s == sys,
            &format!("small files / {sys}"),
        );
    }
    find(
        &|w| w.starts_with("daemon peak RSS (VmHWM) after the hot reads"),
        &|s| s == "hpcs (default)",
        "RSS after hot reads",
    );
    find(
        &|w| w.starts_with("daemon peak RSS after reading all"),
        &|s| s == "hpcs (default)",
        "RSS after reading the TTFB dataset",
    );
    let hpcs = find(
        &|w| w == "seq read 1M, O_DIRECT",
        &|s| s == "hpcs (default)",
        "hpcs",
    );
    assert!(hpcs > 0.0);

    // CPU per byte (issue 14): the daemon's CPU for every hot system that
    // has a daemon, the floor's two parts and the plain-tool runs. Smoke
    // sizes can round CPU time to zero, so only presence and a number.
    let cpu = |wl: &str, sys: &str, unit: &str| {
        let r = rows
            .iter()
            .find(|(w, s, _, u)| w == wl && s == sys && u == unit)
            .unwrap_or_else(|| panic!("no {unit} row for {wl} / {sys}:\n{table}"));
        assert!(number(&r.2).is_some(), "no number for {wl} / {sys}: {r:?}");
    };
    for wl in HOT_WORKLOADS {
        let unit = if wl.starts_with("seq") {
            "s/GB"
        } else {
            "ms/1k reads"
        };
        for sys in HOT_SYSTEMS.iter().filter(|s| !s.starts_with("page cache")) {
            cpu(wl, sys, unit);
        }
    }
    cpu(
        "copy out of the page cache (pread 1 MiB)",
        "one core",
        "s/GB",
    );
    for tool in ["dd bs=1M", "fio psync 1M", "fio psync 1M O_DIRECT"] {
        for sys in ["hpcs (default)", "null ceiling (default)", "gocryptfs"] {
            find(&|w| w == tool, &|s| s == sys, &format!("{tool} / {sys}"));
            cpu(tool, sys, "s/GB");
        }
    }
    for sys in ["hpcs (default)", "hpcs --page-cache", "squashfuse_ll"] {
        find(
            &|w| w.starts_with("read all ") && w.ends_with(", warm"),
            &|s| s == sys,
            &format!("small files, warm / {sys}"),
        );
    }
    assert!(
        md.contains("### Daemon CPU per byte") && md.contains("### Plain tools"),
        "CPU and plain-tool sections missing"
    );
    assert!(
        md.contains("    dd if=FILE of=/dev/null bs=1M"),
        "the plain commands are not printed"
    );

    // every target of the issue is evaluated
    let targets = md
        .split("### Performance targets")
        .nth(1)
        .expect("no targets table");
    let targets = &targets[..targets.find("\n### ").unwrap_or(targets.len())];
    let judged = targets
        .lines()
        .filter(|l| l.ends_with("| PASS |") || l.ends_with("| **MISS** |"))
        .count();
    assert!(
        judged >= 15 && !targets.contains("| n/a |"),
        "targets not all evaluated:\n{targets}"
    );
    // issue 14's targets: every row there (smoke sizes can round a CPU time
    // to zero, leaving a ratio n/a)
    let t14 = md
        .split("### Performance targets (issue 14")
        .nth(1)
        .expect("no issue-14 targets table");
    let t14 = &t14[..t14.find("\n### ").unwrap_or(t14.len())];
    let rows14 = t14
        .lines()
        .filter(|l| {
            l.ends_with("| PASS |") || l.ends_with("| **MISS** |") || l.ends_with("| n/a |")
        })
        .count();
    assert!(rows14 >= 20, "issue-14 targets missing:\n{t14}");

    let png = std::fs::read(out.path().join("benchmarks.png")).expect("benchmarks.png");
    assert!(png.starts_with(b"\x89PNG"), "benchmarks.png is not a PNG");
    assert!(out.path().join("benchmarks.json").exists());
}
