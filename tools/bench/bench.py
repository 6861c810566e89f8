#!/usr/bin/env python3
"""Side-by-side benchmark of hpcs-mount against its peers (issue 5).

Run it through tools/bench.sh, which installs the Debian packages, builds the
release binaries (hpcs-mount with the cargo feature bench-ceilings: the
ceilings and the shaper below exist in no other build) and gives this script a
temporary work directory. Python 3.11 standard library only.

In one run, on the same generated data, it measures:

* hot reads of one large random file (fio: sequential 1 MiB buffered and
  O_DIRECT, random 4 KiB O_DIRECT with 1 and 2 jobs), with the daemon's CPU
  time per GB (per 1000 random reads) through hpcs-mount
  (default options, --direct-io, --page-cache, --readahead 0, the 2M
  read-ahead, and the default options over the same file packed with 16 KiB
  chunks), the no-crypto ceiling (hpcs-mount --bench-nocrypt: the same reads
  without decryption or authentication), the FUSE-only ceiling (hpcs-mount
  --bench-null with the same options: zeros, no archive reads), gocryptfs,
  squashfuse_ll over a squashfs image and the plain
  source file in the page cache; the daemons' peak RSS;
* the same sequential reads with the plain commands a reader reruns by hand
  (dd, fio), through hpcs, its FUSE-only ceiling and gocryptfs; and the
  design's CPU floor per GB (FUSE-only ceiling + a copy out of the page
  cache + AES-256-GCM on one core);
* hpcs-mount reading its archive through the Lustre-like shaper
  (HPCS_BENCH_BACKING_LATENCY_US) at 0, 1, 2 and 5 ms per backing read;
* time to first byte of a large dataset: hpcs-mount + open + read one byte in
  the middle, against `age -d | tar -x` (decrypt-then-untar);
* pack throughput: hpcs-pack pack against `tar -c | age -e`;
* reading every file of a small-file tree, cold and with the backing store
  warm;
* the daemon's peak RSS after reading a dataset much larger than its cache;
* Crypt4GH (c4gh.py): one .c4gh file (at most 1 GiB) read through hpcs-mount
  serving a reference archive, through crypt4ghfs and by `crypt4gh decrypt`:
  sequential and random reads, time to first byte, CPU per GB;
* the encrypted scratch directory (hpcs-mount --scratch, issue 13) against
  gocryptfs, a plain directory on the same disk and tmpfs: sequential 1 MiB
  writes and reads, random 4 KiB reads and writes, daemon CPU per GB.

and writes the results between the markers of a Markdown page (a copy of
docs/benchmarks.md, or docs/benchmarks.md itself in full mode), a PNG chart
(gnuplot) and the raw numbers as JSON.

The harness is split by concern: util.py (commands, waiting for mounts, caches),
results.py (measurements), systems.py (the systems compared, mounting them,
setting up the peers), workloads.py (the measuring phases), scratch.py (the
scratch phase and its part of the report), report.py and chart.py
(Markdown, targets, PNG). This file holds the modes, the run and
the command line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import util
from c4gh import C4ghPhase
from report import report
from results import Results
from scratch import ScratchPhase
from systems import Mount, Systems
from util import (IS_ROOT, REPO, GiB, KiB, MiB, BenchError, cpu_times, human_bytes, log,
                  parse_size, psi_totals, run, set_subreaper, steal_pct, target_bench_dir)
from workloads import Workloads

MODES = {
    # tiny sizes, for tests/it/bench.rs: seconds, one repetition
    "smoke": dict(reps=1, big="32M", small=200, ttfb="64M", rand_runtime=0.1,
                  lat_runtime=0.1, seq_cap=10.0, cache="8M", latencies="0,1,2,5", drop=False),
    # a few minutes on 2 cores
    "quick": dict(reps=2, big="1G", small=10000, ttfb="1G", rand_runtime=1.0,
                  lat_runtime=1.0, seq_cap=20.0, cache="", latencies="0,1,2,5", drop=True),
    # the committed numbers (~65 min on 2 cores)
    "full": dict(reps=3, big="4G", small=100000, ttfb="16G", rand_runtime=5.0,
                 lat_runtime=3.0, seq_cap=60.0, cache="", latencies="0,1,2,5", drop=True),
}


class Bench(Systems, Workloads, ScratchPhase, C4ghPhase):
    """One run: its settings, scratch paths, mounts and results, and the
    phases in order."""

    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.work = Path(args.workdir).resolve()
        self.res = Results()
        self.phase = "setup"
        self.checkpoint: Path | None = None
        self.mounts: list[Mount] = []
        self.shm_dir: Path | None = None
        self.logdir = self.work / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.mnt = self.work / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.ident = self.work / "identity.txt"
        self.recipient = ""
        self.gc_pass = self.work / "gocryptfs.pass"
        self.cache_args = ["--cache-size", args.cache_size] if args.cache_size else []
        self.cache_budget = parse_size(args.cache_size or "256M")
        self.data = self.work / "data"
        self.src = self.data / "src"            # big.bin + small/
        self.archive = self.data / "src.hpcs"
        self.archive16k = self.data / "big16k.hpcs"
        self.gc_cipher = self.data / "gocryptfs"
        self.sqfs = self.data / "src.sqfs"
        self.src_bytes = 0
        self.n_small = 0

    def check_space(self) -> None:
        free = shutil.disk_usage(self.work).free
        big, ttfb = self.a.big_size, self.a.ttfb_size
        small = self.a.small_files * 9 * KiB
        main = 5 * (big + small) + big  # source, archive, tar.age, gocryptfs, squashfs; 16K archive
        # the TTFB phase holds one copy of its dataset at a time (archive, then tar.age) and
        # extracts the tarball only if another copy fits (else it measures tar -xO)
        # headroom for the Crypt4GH phase's file (at most 1 GiB or one big file), logs and
        # fio's files: 2 GiB for real runs, less for the tiny sizes of --smoke
        headroom = min(2 * GiB, max(256 * MiB, 4 * big))
        need = max(main, ttfb) + headroom
        if free < max(main, 2 * ttfb) + headroom:
            log(f"disk: not enough room to extract the {human_bytes(ttfb)} tarball; the peer "
                "will be measured with tar -xO (a lower bound)")
        log(f"disk: {human_bytes(free)} free in {self.work}, this run needs ~{human_bytes(need)}")
        if free < need:
            raise BenchError(f"not enough disk in {self.work}: {human_bytes(free)} free, "
                             f"~{human_bytes(need)} needed (use --workdir, --ttfb-size, --big-size)")

    # ---- the whole run

    def machine(self) -> dict:
        info: dict[str, object] = {}
        cpu = "unknown"
        flags: set[str] = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
        ext = [f for f in ("aes", "vaes", "vpclmulqdq", "avx2", "avx512f") if f in flags]
        info["cpu"] = f"{cpu} ({', '.join(ext)})"
        info["cores"] = os.cpu_count()
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["ram"] = f"{int(mem) / 1024 / 1024:.1f} GiB"
        info["kernel"] = platform.release()
        os_name = "Linux"
        try:
            for line in Path("/etc/os-release").read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        info["os"] = os_name
        fs = run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(self.work)], check=False,
                 stdout=subprocess.PIPE).stdout.split()
        info["workdir_fs"] = " on ".join(fs) if fs else "unknown"

        def ver(cmd: list[str], pat: str = r"\d+(?:\.\d+)+[\w+~-]*") -> str:
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=10)
                m = re.search(pat, p.stdout)
                return m.group(0) if m else p.stdout.strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "?"
        info["versions"] = {
            "fio": ver(["fio", "--version"]),
            "gocryptfs": ver(["gocryptfs", "-version"]),
            "squashfuse": ver(["squashfuse", "--version"]),
            "mksquashfs": ver(["mksquashfs", "-version"]),
            "age": ver(["age", "--version"]),
            "tar": ver(["tar", "--version"]),
            "hpcs-mount": ver([self.a.hpcs_mount, "--version"]),
        }
        info["build"] = self.a.build
        try:
            head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                    "--untracked-files=no"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
            if head.returncode == 0:
                info["commit"] = head.stdout.strip() + (" + local changes" if dirty.stdout.strip()
                                                        else "")
        except OSError:
            pass
        return info

    def run(self) -> int:
        res = self.res
        res.info["mode"] = self.a.mode
        res.info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        res.info["reps"] = self.a.reps
        res.info["cache"] = self.a.cache_size or "256M (default)"
        res.info["cache_budget_mib"] = self.cache_budget / MiB
        res.info["rand_runtime"] = self.a.rand_runtime
        res.info["lat_runtime"] = self.a.lat_runtime
        res.info["latencies"] = self.a.latencies
        res.info["backing_mbps"] = self.a.backing_mbps
        res.info["root"] = IS_ROOT
        res.info["drop"] = util.DROP
        res.info["machine"] = self.machine()
        res.info["load_start"] = os.getloadavg()
        stat0 = cpu_times()
        started = time.monotonic()
        self.check_space()
        self.setup_keys()
        phases = [("ttfb", self.phase_ttfb), ("data", self.phase_data), ("pack", self.phase_pack),
                  ("peers", self.phase_peers), ("hot", self.phase_hot),
                  ("plain", self.phase_plain), ("floor", self.phase_floor),
                  ("scratch", self.phase_scratch), ("c4gh", self.phase_c4gh),
                  ("latency", self.phase_latency), ("small", self.phase_small)]
        for name, fn in phases:
            if name in self.a.skip:
                log(f"phase {name}: skipped")
                if name == "pack":
                    run([self.a.hpcs_pack, "pack", str(self.src), "-o", str(self.archive),
                         "-r", self.recipient, "-q"], timeout=7200)
                continue
            log(f"phase {name}")
            self.phase = name
            t = time.monotonic()
            p0 = psi_totals()
            fn()
            dt = time.monotonic() - t
            res.info[f"phase_{name}_s"] = round(dt, 1)
            p1 = psi_totals()
            res.info.setdefault("psi", {})[name] = {
                k: round(100 * (p1[k] - p0[k]) / (dt * 1e6), 1) for k in p1 if k in p0}
            if self.checkpoint:
                # raw results so far: `--from-json` renders them if the run dies later
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.checkpoint.with_suffix(".tmp")
                tmp.write_text(json.dumps(res.to_json(), indent=1) + "\n")
                tmp.replace(self.checkpoint)
        res.info["load_end"] = os.getloadavg()
        res.info["steal_pct"] = steal_pct(stat0, cpu_times())
        res.info["duration_s"] = round(time.monotonic() - started, 1)
        return 0


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    for mname in MODES:
        mode.add_argument(f"--{mname}", dest="mode", action="store_const", const=mname)
    ap.add_argument("--out", help="directory for benchmarks.md/.png/.json "
                    "(default: docs/ in full mode, $CARGO_TARGET_DIR/bench/MODE otherwise)")
    ap.add_argument("--workdir", help="empty scratch directory (bench.sh makes one)")
    ap.add_argument("--hpcs-mount")
    ap.add_argument("--hpcs-pack")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: render the Markdown and chart from a results file "
                    "written by an earlier run (benchmarks.json)")
    ap.add_argument("--build", default="release", help="build profile of the binaries (for the report)")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--big-size", type=parse_size, help="size of the large file (e.g. 4G)")
    ap.add_argument("--small-files", type=int, help="number of small files")
    ap.add_argument("--ttfb-size", type=parse_size, help="time-to-first-byte dataset size")
    ap.add_argument("--cache-size", help="hpcs-mount --cache-size for every hpcs mount")
    ap.add_argument("--runtime", type=float, dest="rand_runtime", help="seconds per random run")
    ap.add_argument("--latencies", help="ms per backing read, comma-separated (default 0,1,2,5)")
    ap.add_argument("--backing-mbps", type=int, default=0,
                    help="also cap backing bandwidth (HPCS_BENCH_BACKING_MBPS, MB/s)")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip "
                    "(ttfb,pack,hot,plain,floor,scratch,c4gh,latency,small; for development)")
    ap.add_argument("--no-chart", action="store_true")
    a = ap.parse_args()
    if a.from_json:
        res = Results.from_json(json.loads(Path(a.from_json).read_text()))
        out = Path(a.out or REPO / "docs").resolve()
        out.mkdir(parents=True, exist_ok=True)
        return report(res, out, Path(a.workdir or out) / ".chart-tmp", a.no_chart, None)
    if not (a.workdir and a.hpcs_mount and a.hpcs_pack):
        ap.error("--workdir, --hpcs-mount and --hpcs-pack are required (tools/bench.sh gives them)")
    a.mode = a.mode or "quick"
    d = MODES[a.mode]
    a.reps = a.reps or d["reps"]
    a.big_size = a.big_size or parse_size(d["big"])
    a.small_files = a.small_files if a.small_files is not None else d["small"]
    a.ttfb_size = a.ttfb_size or parse_size(d["ttfb"])
    a.cache_size = a.cache_size if a.cache_size is not None else d["cache"]
    a.rand_runtime = a.rand_runtime or d["rand_runtime"]
    a.lat_runtime = d["lat_runtime"] if a.rand_runtime == d["rand_runtime"] else a.rand_runtime
    a.seq_cap = d["seq_cap"]
    a.lat_seq_cap = max(a.lat_runtime * 2, 0.5)
    a.latencies = [float(x) for x in (a.latencies or d["latencies"]).split(",") if x.strip()]
    if 0.0 not in a.latencies:
        a.latencies.insert(0, 0.0)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if "data" in a.skip or "peers" in a.skip:
        ap.error("the data and peers phases cannot be skipped")
    if a.out:
        out = Path(a.out)
    elif a.mode == "full":
        out = REPO / "docs"
    else:
        out = target_bench_dir() / a.mode
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    a.hpcs_mount = str(Path(a.hpcs_mount).resolve())
    a.hpcs_pack = str(Path(a.hpcs_pack).resolve())

    missing = [t for t in ("fio", "gocryptfs", "squashfuse", "squashfuse_ll", "mksquashfs", "age",
                           "age-keygen", "tar", "fusermount3", "findmnt", "xargs")
               if not shutil.which(t)]
    if not a.no_chart and not shutil.which("gnuplot"):
        missing.append("gnuplot")
    if missing:
        print(f"bench: missing tools: {' '.join(missing)} (tools/bench.sh installs them)",
              file=sys.stderr)
        return 3
    if not os.path.exists("/dev/fuse"):
        print("bench: /dev/fuse is missing", file=sys.stderr)
        return 3
    for b in (a.hpcs_mount, a.hpcs_pack):
        if not os.access(b, os.X_OK):
            print(f"bench: {b} is not an executable", file=sys.stderr)
            return 3

    util.DROP = IS_ROOT and d["drop"]
    set_subreaper()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    log(f"mode {a.mode}: {a.reps} reps, big file {human_bytes(a.big_size)}, {a.small_files} small "
        f"files, TTFB dataset {human_bytes(a.ttfb_size)}, out {out}, work dir {a.workdir}")
    b = Bench(a)
    b.res.info["lat_seq_cap"] = a.lat_seq_cap
    b.checkpoint = target_bench_dir() / f"{a.mode}-checkpoint.json"
    stopped = None
    try:
        b.run()
    except BenchError as e:
        log(f"run aborted: {e}")
        b.res.errors[("run", "the run", "aborted")] = str(e)
    except (SystemExit, KeyboardInterrupt) as e:
        # A signal (or ^C): keep what was measured. The partial report goes
        # next to the checkpoint, never over a complete docs/benchmarks.md.
        stopped = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
        log(f"run interrupted during phase {b.phase}; writing the partial report")
        b.res.errors[("run", "the run", "interrupted")] = (
            f"interrupted during phase {b.phase}: the results are partial")
        out = target_bench_dir() / f"{a.mode}-interrupted"
        out.mkdir(parents=True, exist_ok=True)
    finally:
        b.cleanup()

    rc = report(b.res, out, Path(a.workdir) / "chart", a.no_chart, a.mode)
    return stopped if stopped is not None else rc


if __name__ == "__main__":
    sys.exit(main())
