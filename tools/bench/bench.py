#!/usr/bin/env python3
"""Side-by-side benchmark of hpcs-mount against its peers (issue 5).

Run it through tools/bench.sh, which installs the Debian packages, builds the
release binaries (hpcs-mount with the cargo feature bench-ceilings: the
ceilings and the shaper below exist in no other build) and gives this script a
temporary work directory. Python 3.11 standard library only.

In one run, on the same generated data, it measures:

* hot reads of one large random file (fio: sequential 1 MiB buffered and
  O_DIRECT, random 4 KiB O_DIRECT with 1 and 2 jobs) through hpcs-mount
  (default options, --direct-io, --page-cache, --readahead 0, the 2M
  read-ahead, and the default options over the same file packed with 16 KiB
  chunks), the no-crypto ceiling (hpcs-mount --bench-nocrypt: the same reads
  without decryption or authentication), the FUSE-only ceiling (hpcs-mount
  --bench-null with the same options: zeros, no archive reads), gocryptfs,
  squashfuse_ll over a squashfs image and the plain
  source file in the page cache; the daemons' peak RSS;
* hpcs-mount reading its archive through the Lustre-like shaper
  (HPCS_BENCH_BACKING_LATENCY_US) at 0, 1, 2 and 5 ms per backing read;
* time to first byte of a large dataset: hpcs-mount + open + read one byte in
  the middle, against `age -d | tar -x` (decrypt-then-untar);
* pack throughput: hpcs-pack pack against `tar -c | age -e`;
* reading every file of a small-file tree with cold caches;
* the daemon's peak RSS after reading a dataset much larger than its cache.

and writes the results between the markers of a Markdown page (a copy of
docs/benchmarks.md, or docs/benchmarks.md itself in full mode), a PNG chart
(gnuplot) and the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

REPO = Path(__file__).resolve().parents[2]
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

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

# hpcs-mount variants: (key, label, extra arguments); each also runs with
# --bench-null (the FUSE-only ceiling with the same options).
HPCS_VARIANTS = [
    ("default", "default", []),
    ("dio", "--direct-io", ["--direct-io"]),
    ("pc", "--page-cache", ["--page-cache"]),
    ("ra0", "--readahead 0", ["--readahead", "0"]),
    ("ra2m", "--readahead 2M", ["--readahead", "2M"]),
    # same mount options as the default, over an archive packed with 16 KiB
    # chunks (the FORMAT.md advice for random access); its ceiling is the
    # default's
    ("c16k", "16K-chunk archive", []),
]
# variants whose null ceiling is another variant's (same mount options)
SAME_CEILING = {"c16k": "default"}
HPCS = "hpcs (default)"


def variant_label(vkey: str) -> str:
    return next(lab for k, lab, _ in HPCS_VARIANTS if k == vkey)


def hpcs_label(vkey: str) -> str:
    return HPCS if vkey == "default" else f"hpcs {variant_label(vkey)}"


def null_label(vkey: str) -> str:
    return f"null ceiling ({variant_label(SAME_CEILING.get(vkey, vkey))})"


def nocrypt_label(vkey: str) -> str:
    return f"no-crypto ceiling ({variant_label(vkey)})"


# variants measured against the no-crypto ceiling (--bench-nocrypt: the same
# reads, cache and read-ahead without decryption or authentication)
NOCRYPT = ("default", "c16k")

GOCRYPTFS = "gocryptfs"
SQUASHFUSE = "squashfuse_ll"
PLAIN = "page cache (plain file)"
PLAIN_COLD = "plain files (local fs)"

# hot workloads: key -> (label, unit)
HOT = {
    "seq_buf": ("seq read 1M, buffered", "GB/s"),
    "seq_dio": ("seq read 1M, O_DIRECT", "GB/s"),
    "rand1": ("random 4K O_DIRECT, 1 job", "IOPS"),
    "rand2": ("random 4K O_DIRECT, 2 jobs", "IOPS"),
}
RSS_HOT = "daemon peak RSS (VmHWM) after the hot reads"

T0 = time.monotonic()


def log(msg: str) -> None:
    try:
        print(f"[bench {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)
    except OSError:  # stderr closed (a pipe reader went away): keep going, clean up
        pass


class BenchError(Exception):
    pass


def parse_size(s: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", s, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (use e.g. 512M, 4G)")
    mult = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def human_bytes(n: float) -> str:
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= div:
            v = n / div
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(n)} B"


# ---------------------------------------------------------------- results

class Results:
    """Measurements keyed by (group, workload, system); values in the unit's
    base (GB/s, IOPS, seconds, MiB)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], list[float]] = {}
        self.units: dict[tuple[str, str, str], str] = {}
        self.order: list[tuple[str, str, str]] = []
        self.errors: dict[tuple[str, str, str], str] = {}
        self.notes: list[str] = []
        self.info: dict[str, object] = {}

    def add(self, group: str, workload: str, system: str, value: float, unit: str) -> None:
        k = (group, workload, system)
        if k not in self.values:
            self.values[k] = []
            self.units[k] = unit
            self.order.append(k)
        self.values[k].append(float(value))

    def fail(self, group: str, workload: str, system: str, unit: str, err: str) -> None:
        k = (group, workload, system)
        if k not in self.units:
            self.units[k] = unit
            self.order.append(k)
            self.values[k] = []
        self.errors[k] = err
        log(f"FAILED {group} / {workload} / {system}: {err}")

    def med(self, group: str, workload: str, system: str) -> float | None:
        v = self.values.get((group, workload, system))
        return statistics.median(v) if v else None

    @classmethod
    def from_json(cls, d: dict) -> "Results":
        r = cls()
        r.info, r.notes = d["info"], d["notes"]
        for m in d["measurements"]:
            k = (m["group"], m["workload"], m["system"])
            r.order.append(k)
            r.units[k] = m["unit"]
            r.values[k] = m["values"]
            if m.get("error"):
                r.errors[k] = m["error"]
        return r

    def to_json(self) -> dict:
        return {
            "info": self.info,
            "notes": self.notes,
            "measurements": [
                {"group": g, "workload": w, "system": s, "unit": self.units[(g, w, s)],
                 "values": self.values[(g, w, s)], "error": self.errors.get((g, w, s))}
                for (g, w, s) in self.order
            ],
        }


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "GB/s":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if unit == "IOPS":
        return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"
    if unit == "s":
        if v < 1:
            return f"{v * 1000:.1f} ms" if v < 0.1 else f"{v * 1000:.0f} ms"
        return f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
    if unit == "MiB":
        return f"{v:.0f}"
    return f"{v:.3g}"


def cell(res: Results, group: str, workload: str, system: str) -> str:
    k = (group, workload, system)
    if k in res.errors:
        return "failed"
    vals = res.values.get(k)
    if not vals:
        return "—"
    unit = res.units[k]
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m, unit)
    lo, hi = min(vals), max(vals)
    a, b = fmt(lo, unit), fmt(hi, unit)
    if a == b:
        return fmt(m, unit)
    if unit == "s":  # "12 ms (10–14 ms)" -> keep units once
        a = a.replace(" ms", "").replace(" s", "") if a.split()[-1] == b.split()[-1] else a
    return f"{fmt(m, unit)} ({a}–{b})"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×" if r >= 100 else f"{r:.1f}×"


# ---------------------------------------------------------------- processes

def run(cmd, *, check=True, env=None, stdout=subprocess.DEVNULL, timeout=None, shell=False,
        cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, shell=shell, cwd=cwd)
    if check and p.returncode != 0:
        shown = cmd if isinstance(cmd, str) else " ".join(shlex.quote(str(c)) for c in cmd)
        raise BenchError(f"`{shown}` exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def timed(cmd, **kw) -> float:
    t = time.perf_counter()
    run(cmd, **kw)
    return time.perf_counter() - t


def set_subreaper() -> None:
    """Daemons (hpcs-mount --daemon, gocryptfs, squashfuse_ll) detach from
    us; become their reaper so they do not stay zombies (PID 1 of a container
    may not reap them) and so their exit can be waited for."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pid_alive(pid: int) -> bool:
    reap()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int | None, timeout: float = 30.0) -> None:
    if not pid:
        return
    end = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > end:
            raise BenchError(f"daemon {pid} still running {timeout:.0f} s after unmount")
        time.sleep(0.01)


def mountpoints() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split(" ")[4]
        out.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out


def is_mounted(path: Path) -> bool:
    return str(path) in mountpoints()


def wait_mounted(path: Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not is_mounted(path):
        if time.monotonic() > end:
            raise BenchError(f"{path} not mounted after {timeout:.0f} s")
        time.sleep(0.005)


def pid_by_mountpoint(path: Path) -> int | None:
    """The daemon serving `path`: the process whose command line names it."""
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.fsencode(str(path)) in args:
            return int(d.name)
    return None


def vm_hwm_mib(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


IS_ROOT = os.geteuid() == 0
DROP = IS_ROOT  # smoke mode turns it off (speed; its numbers mean nothing)


def drop_caches() -> None:
    if DROP:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def warm(path: Path) -> None:
    """Reads a file (or every file under a directory) so it is in the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    buf = bytearray(8 * MiB)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def warm_programs(*names: str) -> None:
    """After dropping caches: reads the programs (and their ELF interpreter
    and libc) back into the page cache, so a cold run measures the data, not
    paging in a binary, which a compute node has cached or installed locally."""
    for n in names + ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
        p = shutil.which(n) or n
        if os.path.isfile(p):
            warm(Path(os.path.realpath(p)))


def read_all(path: Path) -> int:
    total = 0
    buf = bytearray(1 * MiB)
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(f, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    return total


def pread1(path: Path, off: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        b = os.pread(fd, 1, off)
    finally:
        os.close(fd)
    if len(b) != 1:
        raise BenchError(f"short read of {path} at {off}")
    return b


# ---------------------------------------------------------------- mounts

class Mount:
    def __init__(self, kind: str, path: Path, pid: int | None):
        self.kind, self.path, self.pid = kind, path, pid


class Bench:
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

    # ---- mounting

    def mount_hpcs(self, archive: Path, extra: list[str], *, null=False, latency_us=0,
                   tag="m") -> Mount:
        pidfile = self.logdir / f"{tag}.pid"
        pidfile.unlink(missing_ok=True)
        cmd = [self.a.hpcs_mount, archive, self.mnt, "-i", self.ident, "--daemon",
               "--pidfile", pidfile, "--log-file", self.logdir / "hpcs-mount.log",
               *self.cache_args, *extra]
        if null:
            cmd.append("--bench-null")
        env = dict(os.environ)
        env.pop("HPCS_BENCH_BACKING_LATENCY_US", None)
        env.pop("HPCS_BENCH_BACKING_MBPS", None)
        if latency_us or self.a.backing_mbps:
            env["HPCS_BENCH_BACKING_LATENCY_US"] = str(latency_us)
            if self.a.backing_mbps:
                env["HPCS_BENCH_BACKING_MBPS"] = str(self.a.backing_mbps)
        run([str(c) for c in cmd], env=env, timeout=120)
        m = Mount("hpcs", self.mnt, int(pidfile.read_text().strip()))
        self.mounts.append(m)
        return m

    def mount_gocryptfs(self) -> Mount:
        run(["gocryptfs", "-q", "-passfile", str(self.gc_pass), str(self.gc_cipher),
             str(self.mnt)], timeout=120)
        m = Mount("fuse", self.mnt, None)
        self.mounts.append(m)
        wait_mounted(self.mnt)
        m.pid = pid_by_mountpoint(self.mnt)
        return m

    def mount_squashfuse(self) -> Mount:
        run(["squashfuse_ll", str(self.sqfs), str(self.mnt)], timeout=120)
        m = Mount("fuse", self.mnt, None)
        self.mounts.append(m)
        wait_mounted(self.mnt)
        m.pid = pid_by_mountpoint(self.mnt)
        return m

    def unmount(self, m: Mount) -> None:
        try:
            if is_mounted(m.path):
                if m.kind == "hpcs":
                    p = run([self.a.hpcs_mount, "--unmount", str(m.path)], check=False, timeout=60)
                else:
                    p = run(["fusermount3", "-u", str(m.path)], check=False, timeout=60)
                if p.returncode != 0 and is_mounted(m.path):
                    log(f"unmount of {m.path} failed ({p.stderr.strip()}); detaching lazily")
                    run(["fusermount3", "-u", "-z", str(m.path)], check=False, timeout=60)
            wait_gone(m.pid)
        finally:
            if m in self.mounts:
                self.mounts.remove(m)

    def cleanup(self) -> None:
        for m in list(self.mounts):
            try:
                self.unmount(m)
            except Exception as e:  # noqa: BLE001 - best effort on the way out
                log(f"cleanup: {e}")
        for mp in mountpoints():
            if mp.startswith(str(self.work) + "/"):
                subprocess.run(["fusermount3", "-u", "-z", mp], stderr=subprocess.DEVNULL)
        if self.shm_dir and self.shm_dir.exists():
            shutil.rmtree(self.shm_dir, ignore_errors=True)
        reap()

    # ---- fio

    def fio(self, path: Path, rw: str, bs: str, direct: bool, *, numjobs=1, runtime=None,
            time_based=False, invalidate=True) -> tuple[float, float]:
        cmd = ["fio", "--name=b", f"--filename={path}", "--readonly", f"--rw={rw}", f"--bs={bs}",
               f"--direct={int(direct)}", "--ioengine=psync", f"--numjobs={numjobs}",
               "--group_reporting", "--output-format=json", f"--invalidate={int(invalidate)}"]
        if rw == "randread":
            cmd += ["--norandommap", "--randrepeat=0"]
        if runtime:
            cmd.append(f"--runtime={max(1, int(runtime * 1000))}ms")
        if time_based:
            cmd.append("--time_based")
        p = run(cmd, stdout=subprocess.PIPE, timeout=600)
        try:
            j = json.loads(p.stdout[p.stdout.index("{"):])
            job = j["jobs"][0]
        except (ValueError, KeyError, IndexError) as e:
            raise BenchError(f"cannot parse fio output: {e}: {p.stdout[:500]}") from e
        if job.get("error"):
            raise BenchError(f"fio error {job['error']}")
        r = job["read"]
        if r["io_bytes"] == 0:
            raise BenchError("fio read nothing")
        return r["bw_bytes"] / 1e9, r["iops"]

    def hot_workloads(self, f: Path, group: str, system: str, *, runtime: float,
                      seq_cap: float, plain=False, only: tuple[str, ...] = tuple(HOT)) -> None:
        """The four fio workloads on file `f`; the plain file is read buffered
        throughout (O_DIRECT cannot be served from the page cache)."""
        direct = not plain
        jobs = [
            ("seq_buf", lambda: self.fio(f, "read", "1M", False, runtime=seq_cap,
                                          invalidate=not plain)[0]),
            ("seq_dio", lambda: self.fio(f, "read", "1M", direct, runtime=seq_cap,
                                          invalidate=not plain)[0]),
            ("rand1", lambda: self.fio(f, "randread", "4k", direct, runtime=runtime,
                                        time_based=True, invalidate=not plain)[1]),
            ("rand2", lambda: self.fio(f, "randread", "4k", direct, numjobs=2, runtime=runtime,
                                        time_based=True, invalidate=not plain)[1]),
        ]
        for key, fn in jobs:
            if key not in only:
                continue
            label, unit = HOT[key]
            try:
                v = fn()
            except (BenchError, subprocess.TimeoutExpired) as e:
                self.res.fail(group, label, system, unit, str(e))
                continue
            self.res.add(group, label, system, v, unit)
            log(f"  {system:32s} {label:28s} {fmt(v, unit)} {unit}")

    # ---- phases

    def setup_keys(self) -> None:
        run(["age-keygen", "-o", str(self.ident)])
        self.recipient = run(["age-keygen", "-y", str(self.ident)],
                             stdout=subprocess.PIPE).stdout.strip()
        self.gc_pass.write_text(os.urandom(16).hex() + "\n")
        self.gc_pass.chmod(0o600)

    def check_space(self) -> None:
        free = shutil.disk_usage(self.work).free
        big, ttfb = self.a.big_size, self.a.ttfb_size
        small = self.a.small_files * 9 * KiB
        main = 5 * (big + small) + big  # source, archive, tar.age, gocryptfs, squashfs; 16K archive
        # the TTFB phase holds one copy of its dataset at a time (archive, then tar.age) and
        # extracts the tarball only if another copy fits (else it measures tar -xO)
        need = max(main, ttfb) + 2 * GiB
        if free < max(main, 2 * ttfb) + 2 * GiB:
            log(f"disk: not enough room to extract the {human_bytes(ttfb)} tarball; the peer "
                "will be measured with tar -xO (a lower bound)")
        log(f"disk: {human_bytes(free)} free in {self.work}, this run needs ~{human_bytes(need)}")
        if free < need:
            raise BenchError(f"not enough disk in {self.work}: {human_bytes(free)} free, "
                             f"~{human_bytes(need)} needed (use --workdir, --ttfb-size, --big-size)")

    def phase_ttfb(self) -> None:
        """Time to first byte of a large dataset: hpcs-mount + open + read one
        byte in the middle, against age -d | tar -x before the job can start."""
        size = self.a.ttfb_size
        nfiles = 16
        fsize = max(size // nfiles, 4096)
        base = self.work / "ttfb"
        src = base / "dataset"
        src.mkdir(parents=True)
        for i in range(nfiles):  # sparse: cheap to create; packed and tarred as real bytes
            with open(src / f"part-{i:02d}.bin", "wb") as fh:
                fh.truncate(fsize)
                fh.seek(fsize // 2)
                fh.write(b"\x42")
        total = fsize * nfiles
        mid_file, mid_off = f"part-{nfiles // 2:02d}.bin", fsize // 2
        wl = f"time to first byte, {human_bytes(total)} dataset"
        self.res.info["ttfb_bytes"] = total
        G = "ttfb"

        arch = base / "dataset.hpcs"
        log(f"ttfb: packing {human_bytes(total)} with hpcs-pack")
        t = timed([self.a.hpcs_pack, "pack", str(src), "-o", str(arch), "-r", self.recipient, "-q"],
                  timeout=7200)
        log(f"ttfb: packed in {t:.1f} s")
        for rep in range(self.a.reps):
            # daemon: mount, then open + pread of one byte in the middle
            sysname = "hpcs-mount --daemon, open, read 1 byte"
            try:
                drop_caches()
                warm_programs(self.a.hpcs_mount, str(self.ident))
                t0 = time.perf_counter()
                m = self.mount_hpcs(arch, [], tag="ttfb")
                try:
                    b = pread1(self.mnt / mid_file, mid_off)
                    t1 = time.perf_counter()
                    if b != b"\x42":
                        raise BenchError(f"wrong byte {b!r} read through the mount")
                finally:
                    self.unmount(m)
                self.res.add(G, wl, sysname, t1 - t0, "s")
                log(f"  {sysname}: {fmt(t1 - t0, 's')}")
            except BenchError as e:
                self.res.fail(G, wl, sysname, "s", str(e))
            # exec mode: mount, run dd reading one byte, unmount, exit
            sysname = "hpcs-mount exec mode (mount, dd 1 byte, unmount)"
            try:
                drop_caches()
                warm_programs(self.a.hpcs_mount, str(self.ident), "dd")
                cmd = [self.a.hpcs_mount, str(arch), str(self.mnt), "-i", str(self.ident),
                       *self.cache_args, "--log-file", str(self.logdir / "hpcs-mount.log"), "--",
                       "dd", f"if={self.mnt / mid_file}", "of=/dev/null", "bs=1", "count=1",
                       f"skip={mid_off}", "iflag=skip_bytes", "status=none"]
                dt = timed(cmd, timeout=120)
                self.res.add(G, wl, sysname, dt, "s")
                log(f"  {sysname}: {fmt(dt, 's')}")
            except BenchError as e:
                self.res.fail(G, wl, sysname, "s", str(e))
            finally:
                if is_mounted(self.mnt):
                    run(["fusermount3", "-u", "-z", str(self.mnt)], check=False)

        # peak RSS of a daemon that reads the whole dataset (far more than its cache)
        try:
            drop_caches()
            m = self.mount_hpcs(arch, [], tag="rss")
            try:
                t0 = time.perf_counter()
                n = read_all(self.mnt)
                dt = time.perf_counter() - t0
                hwm = vm_hwm_mib(m.pid)
            finally:
                self.unmount(m)
            if n != total:
                raise BenchError(f"read {n} bytes of {total}")
            self.res.add("rss", f"daemon peak RSS after reading all of a {human_bytes(total)} "
                         "dataset, cold", HPCS, hwm, "MiB")
            self.res.info["rss_big_read_gbps"] = total / dt / 1e9
            log(f"  RSS after reading {human_bytes(total)} ({total / dt / 1e9:.2f} GB/s cold): "
                f"{hwm:.0f} MiB")
        except BenchError as e:
            self.res.fail("rss", "daemon peak RSS after reading the TTFB dataset", HPCS, "MiB",
                          str(e))
        arch.unlink()

        # the peer: decrypt the whole tarball and untar it before the job can start
        tarage = base / "dataset.tar.age"
        log(f"ttfb: tar | age -e of {human_bytes(total)}")
        t = timed(f"tar -cf - -C {shlex.quote(str(base))} dataset | age -e -r {self.recipient} "
                  f"-o {shlex.quote(str(tarage))}", shell=True, timeout=7200)
        log(f"ttfb: tar | age -e took {t:.1f} s")
        free = shutil.disk_usage(self.work).free
        extract = free > total + 2 * GiB
        if extract:
            sysname = "age -d | tar -x, then read 1 byte"
        else:
            sysname = "age -d | tar -xO > /dev/null (lower bound: no room to extract)"
            self.res.notes.append(
                f"Time to first byte: only {human_bytes(free)} free, so the peer was measured "
                "as `age -d | tar -x -O > /dev/null` (no files written): a lower bound for "
                "decrypt-then-untar.")
        dest = base / "extracted"
        for rep in range(self.a.reps):
            try:
                drop_caches()
                warm_programs("age", "tar", "bash", str(self.ident))
                if extract:
                    dest.mkdir()
                    cmd = (f"age -d -i {shlex.quote(str(self.ident))} {shlex.quote(str(tarage))}"
                           f" | tar -xf - -C {shlex.quote(str(dest))}")
                else:
                    cmd = (f"age -d -i {shlex.quote(str(self.ident))} {shlex.quote(str(tarage))}"
                           " | tar -xOf - > /dev/null")
                t0 = time.perf_counter()
                run(["bash", "-o", "pipefail", "-c", cmd], timeout=7200)
                if extract:
                    if pread1(dest / "dataset" / mid_file, mid_off) != b"\x42":
                        raise BenchError("wrong byte after extraction")
                dt = time.perf_counter() - t0
                self.res.add(G, wl, sysname, dt, "s")
                log(f"  {sysname}: {fmt(dt, 's')}")
            except BenchError as e:
                self.res.fail(G, wl, sysname, "s", str(e))
            finally:
                shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(base)
        os.sync()

    def phase_data(self) -> None:
        """One large random file and a tree of small random files."""
        big = self.a.big_size
        self.src.mkdir(parents=True)
        rnd = random.Random(20260)
        pool = os.urandom(64 * MiB + MiB)  # sliding windows over it: incompressible, cheap
        log(f"data: {human_bytes(big)} random file")
        with open(self.src / "big.bin", "wb") as fh:
            left, i = big, 0
            while left:
                n = min(left, MiB)
                o = (i * 40961) % (64 * MiB)
                fh.write(pool[o:o + n])
                left -= n
                i += 1
        n = self.a.small_files
        per_dir = 1000
        log(f"data: {n} small files of 1-16 KiB")
        total = big
        for i in range(n):
            d = self.src / "small" / f"d{i // per_dir:03d}"
            if i % per_dir == 0:
                d.mkdir(parents=True)
            sz = rnd.randint(1 * KiB, 16 * KiB)
            o = rnd.randrange(64 * MiB)
            (d / f"f{i % per_dir:04d}.dat").write_bytes(pool[o:o + sz])
            total += sz
        self.src_bytes = total
        self.n_small = n
        self.res.info["big_bytes"] = big
        self.res.info["small_files"] = n
        self.res.info["src_bytes"] = total
        os.sync()

    def phase_pack(self) -> None:
        """hpcs-pack pack against tar -c | age -e, to the work dir's disk
        (with fsync, as hpcs-pack does) and to memory (/dev/shm)."""
        G = "pack"
        warm(self.src)
        dests = [("disk", self.work / "packout")]
        shm = Path("/dev/shm")
        if shm.is_dir() and shutil.disk_usage(shm).free > 2.5 * self.src_bytes + GiB:
            self.shm_dir = Path(os.path.join(shm, f"hpcs-bench-{os.getpid()}"))
            self.shm_dir.mkdir()
            dests.append(("memory", self.shm_dir))
        else:
            self.res.notes.append("Pack to memory skipped: not enough room in /dev/shm.")
        (self.work / "packout").mkdir()
        what = f"{human_bytes(self.src_bytes)} tree"
        for rep in range(self.a.reps):
            for where, d in dests:
                wl = (f"pack {what}, output to the work dir's disk (fsync)" if where == "disk"
                      else f"pack {what}, output to memory (/dev/shm)")
                out = d / "a.hpcs"
                if where == "memory":
                    prefault(d, self.src_bytes)
                try:
                    dt = timed([self.a.hpcs_pack, "pack", str(self.src), "-o", str(out),
                                "-r", self.recipient, "-q"], timeout=7200)
                    self.res.add(G, wl, "hpcs-pack pack", self.src_bytes / dt / 1e9, "GB/s")
                    log(f"  hpcs-pack pack -> {where}: {self.src_bytes / dt / 1e9:.2f} GB/s")
                except BenchError as e:
                    self.res.fail(G, wl, "hpcs-pack pack", "GB/s", str(e))
                if where == "disk" and rep == self.a.reps - 1 and out.exists():
                    out.rename(self.archive)
                out.unlink(missing_ok=True)
                ta = d / "a.tar.age"
                if where == "memory":
                    prefault(d, self.src_bytes)
                cmd = (f"tar -cf - -C {shlex.quote(str(self.src))} . | age -e -r {self.recipient}"
                       f" -o {shlex.quote(str(ta))} && sync {shlex.quote(str(ta))}")
                try:
                    dt = timed(["bash", "-o", "pipefail", "-c", cmd], timeout=7200)
                    self.res.add(G, wl, "tar -c | age -e", self.src_bytes / dt / 1e9, "GB/s")
                    log(f"  tar | age -e -> {where}: {self.src_bytes / dt / 1e9:.2f} GB/s")
                except BenchError as e:
                    self.res.fail(G, wl, "tar -c | age -e", "GB/s", str(e))
                ta.unlink(missing_ok=True)
        if not self.archive.exists():
            run([self.a.hpcs_pack, "pack", str(self.src), "-o", str(self.archive),
                 "-r", self.recipient, "-q"], timeout=7200)
        shutil.rmtree(self.work / "packout", ignore_errors=True)
        if self.shm_dir:
            shutil.rmtree(self.shm_dir, ignore_errors=True)
            self.shm_dir = None

    def phase_peers(self) -> None:
        """gocryptfs (data copied in through a mount) and a squashfs image."""
        G = "pack"
        wl = f"pack {human_bytes(self.src_bytes)} tree, output to the work dir's disk (fsync)"
        self.gc_cipher.mkdir()
        run(["gocryptfs", "-init", "-q", "-scryptn", "10", "-passfile", str(self.gc_pass),
             str(self.gc_cipher)])
        m = self.mount_gocryptfs()
        try:
            t0 = time.perf_counter()
            run(["cp", "-a", f"{self.src}/.", f"{self.mnt}/"], timeout=7200)
        finally:
            self.unmount(m)
        os.sync()  # hpcs-pack fsyncs its output too
        dt = time.perf_counter() - t0
        self.res.add(G, wl, "cp -a into gocryptfs (reference)", self.src_bytes / dt / 1e9, "GB/s")
        log(f"  gocryptfs copy-in: {self.src_bytes / dt / 1e9:.2f} GB/s")
        t0 = time.perf_counter()
        run(["mksquashfs", str(self.src), str(self.sqfs), "-noappend", "-no-progress", "-quiet"],
            timeout=7200)
        os.sync()
        dt = time.perf_counter() - t0
        self.res.add(G, wl, "mksquashfs, gzip, unencrypted (reference)",
                     self.src_bytes / dt / 1e9, "GB/s")
        log(f"  mksquashfs: {self.src_bytes / dt / 1e9:.2f} GB/s")
        os.sync()

    def gc_big_backing(self) -> Path:
        """gocryptfs's ciphertext of big.bin (the largest file of the cipher dir)."""
        return max((p for p in self.gc_cipher.rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)

    def check_bytes(self, f: Path, null: bool, nocrypt: bool = False) -> None:
        off = self.a.big_size // 2
        with open(f, "rb") as a:
            a.seek(off)
            got = a.read(65536)
        if nocrypt:
            # stored (encrypted) bytes: anything but the plaintext, full length
            with open(self.src / "big.bin", "rb") as b:
                b.seek(off)
                ok = len(got) == 65536 and got != b.read(65536)
        elif null:
            ok = got == bytes(len(got))
        else:
            with open(self.src / "big.bin", "rb") as b:
                b.seek(off)
                ok = got == b.read(65536)
        if not ok or not got:
            raise BenchError(f"{f}: wrong bytes read through the mount")

    def phase_hot(self) -> None:
        G = "hot"
        # each hpcs variant next to its null ceiling, so their ratio sees the
        # same machine; odd repetitions run in reverse order (ABBA), which
        # cancels slow drifts of a shared machine
        systems = []
        for vkey, _, extra in HPCS_VARIANTS:
            arch = self.archive16k if vkey == "c16k" else self.archive
            systems.append((hpcs_label(vkey), arch, extra, False))
            if vkey not in SAME_CEILING:
                systems.append((null_label(vkey), arch, extra, True))
            if vkey in NOCRYPT:
                systems.append((nocrypt_label(vkey), arch, extra + ["--bench-nocrypt"], False))
        systems += [(GOCRYPTFS, "gocryptfs", [], False), (SQUASHFUSE, "squashfuse", [], False),
                    (PLAIN, "plain", [], False)]
        gc_backing = self.gc_big_backing()
        self.pack_16k()
        for rep in range(self.a.reps):
            for name, kind, extra, null in (systems if rep % 2 == 0 else systems[::-1]):
                log(f"hot rep {rep + 1}/{self.a.reps}: {name}")
                try:
                    if kind == "plain":
                        warm(self.src / "big.bin")
                        self.hot_workloads(self.src / "big.bin", G, name, plain=True,
                                           runtime=self.a.rand_runtime, seq_cap=self.a.seq_cap)
                        continue
                    if isinstance(kind, Path):
                        warm(kind)
                        m = self.mount_hpcs(kind, extra, null=null)
                    elif kind == "gocryptfs":
                        warm(gc_backing)
                        m = self.mount_gocryptfs()
                    else:
                        warm(self.sqfs)
                        m = self.mount_squashfuse()
                    try:
                        self.check_bytes(self.mnt / "big.bin", null,
                                         nocrypt="--bench-nocrypt" in extra)
                        self.hot_workloads(self.mnt / "big.bin", G, name,
                                           runtime=self.a.rand_runtime, seq_cap=self.a.seq_cap)
                        hwm = vm_hwm_mib(m.pid)
                        if hwm is not None:
                            self.res.add("rss", RSS_HOT, name, hwm, "MiB")
                    finally:
                        self.unmount(m)
                except (BenchError, subprocess.TimeoutExpired) as e:
                    for key in HOT:
                        self.res.fail(G, HOT[key][0], name, HOT[key][1], str(e))

    def pack_16k(self) -> None:
        """The large file alone, packed with 16 KiB chunks (hot reads only)."""
        d = self.data / "src16k"
        d.mkdir(exist_ok=True)
        if not (d / "big.bin").exists():
            os.link(self.src / "big.bin", d / "big.bin")
        log("hot: packing the large file with --chunk-size 16K")
        run([self.a.hpcs_pack, "pack", str(d), "-o", str(self.archive16k), "--chunk-size", "16K",
             "-r", self.recipient, "-q"], timeout=7200)

    def phase_latency(self) -> None:
        """hpcs-mount with a latency per backing read: default options (every
        workload) and a shallow 2M read-ahead window (sequential only; random
        reads do not use read-ahead)."""
        G = "latency"
        variants = [(HPCS, [], tuple(HOT)),
                    ("hpcs --readahead 2M", ["--readahead", "2M"], ("seq_buf", "seq_dio"))]
        for rep in range(self.a.reps):
            for ms in self.a.latencies:
                for label, extra, only in variants:
                    name = f"{label}, +{ms:g} ms per backing read"
                    log(f"latency rep {rep + 1}/{self.a.reps}: {name}")
                    try:
                        warm(self.archive)
                        m = self.mount_hpcs(self.archive, extra, latency_us=int(ms * 1000))
                        try:
                            self.hot_workloads(self.mnt / "big.bin", G, name, only=only,
                                               runtime=self.a.lat_runtime,
                                               seq_cap=self.a.lat_seq_cap)
                        finally:
                            self.unmount(m)
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        for key in only:
                            self.res.fail(G, HOT[key][0], name, HOT[key][1], str(e))

    def phase_small(self) -> None:
        """Read every file of the small-file tree, caches dropped and remounted."""
        G = "small"
        wl = f"read all {self.n_small} small files (1-16 KiB), cold"
        systems = [(HPCS, "hpcs", False), (null_label("default"), "hpcs", True),
                   (GOCRYPTFS, "gocryptfs", False), (SQUASHFUSE, "squashfuse", False),
                   (PLAIN_COLD, "plain", False)]
        for rep in range(self.a.reps):
            for name, kind, null in (systems if rep % 2 == 0 else systems[::-1]):
                try:
                    drop_caches()
                    m = None
                    if kind == "hpcs":
                        m = self.mount_hpcs(self.archive, [], null=null)
                    elif kind == "gocryptfs":
                        m = self.mount_gocryptfs()
                    elif kind == "squashfuse":
                        m = self.mount_squashfuse()
                    root = (self.src if kind == "plain" else self.mnt) / "small"
                    try:
                        cmd = (f"find {shlex.quote(str(root))} -type f -print0 "
                               "| xargs -0 cat > /dev/null")
                        dt = timed(["bash", "-o", "pipefail", "-c", cmd], timeout=7200)
                    finally:
                        if m:
                            self.unmount(m)
                    self.res.add(G, wl, name, dt, "s")
                    log(f"  small files {name}: {dt:.2f} s ({self.n_small / dt:.0f} files/s)")
                except (BenchError, subprocess.TimeoutExpired) as e:
                    self.res.fail(G, wl, name, "s", str(e))

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
        res.info["drop"] = DROP
        res.info["machine"] = self.machine()
        res.info["load_start"] = os.getloadavg()
        stat0 = cpu_times()
        started = time.monotonic()
        self.check_space()
        self.setup_keys()
        phases = [("ttfb", self.phase_ttfb), ("data", self.phase_data), ("pack", self.phase_pack),
                  ("peers", self.phase_peers), ("hot", self.phase_hot),
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


def prefault(d: Path, size: int) -> None:
    """Writes and deletes `size` bytes in `d` (tmpfs) just before a timed
    write there. On a VM, memory the guest has not touched lately (or handed
    back to the host) costs a fault per page on first write, which made
    whichever tool wrote first 2-4x slower; afterwards both find the pages
    the guest just freed."""
    f = d / "prefault"
    block = bytes(8 * MiB)
    try:
        with open(f, "wb") as fh:
            left = size + 64 * MiB
            while left > 0:
                fh.write(block[:min(left, len(block))])
                left -= len(block)
    finally:
        f.unlink(missing_ok=True)


def psi_totals() -> dict[str, int]:
    """Pressure stall totals (µs some task waited) for CPU and IO, if available."""
    out = {}
    for what in ("cpu", "io"):
        try:
            line = Path(f"/proc/pressure/{what}").read_text().splitlines()[0]
            out[what] = int(line.rsplit("total=", 1)[1])
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_times() -> list[int]:
    return [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]


def steal_pct(a: list[int], b: list[int]) -> float:
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d[:8]) or 1
    return 100.0 * (d[7] if len(d) > 7 else 0) / tot


# ---------------------------------------------------------------- report

def targets(res: Results, budget_mib: float, lat2: str | None) -> list[tuple[str, str, str, str, str]]:
    """(target, measured, ratio, required, PASS/MISS) rows of the issue's targets."""
    rows = []

    def add(name, measured, r, need, ok):
        if r is None:
            rows.append((name, measured, "—", need, "n/a"))
        else:
            rows.append((name, measured, f"{r:.2f}", need, "PASS" if ok(r) else "**MISS**"))

    def m(g, w, s):
        return res.med(g, w, s)

    def q(a, b):
        return None if a is None or b is None or b == 0 else a / b

    def info(name, measured, r):
        rows.append((name, measured, "—" if r is None else f"{r:.2f}", "—", "info"))

    # The ceiling "serves the same bytes without crypto": the
    # no-crypto ceiling (same reads, no AEAD). The FUSE-only ceiling (zeros,
    # no backing read at all) is shown for reference.
    for key in ("seq_buf", "seq_dio"):
        wl, u = HOT[key]
        h, g = m("hot", wl, HPCS), m("hot", wl, GOCRYPTFS)
        nc, n = m("hot", wl, nocrypt_label("default")), m("hot", wl, null_label("default"))
        add(f"{wl}: hpcs ≥ 0.9 × no-crypto ceiling (default options)",
            f"{fmt(h, u)} vs {fmt(nc, u)} GB/s", q(h, nc), "≥ 0.9", lambda r: r >= 0.9)
        info(f"{wl}: hpcs ÷ FUSE-only ceiling (zeros, no backing read)",
             f"{fmt(h, u)} vs {fmt(n, u)} GB/s", q(h, n))
        add(f"{wl}: hpcs ≥ 3 × gocryptfs", f"{fmt(h, u)} vs {fmt(g, u)} GB/s", q(h, g), "≥ 3",
            lambda r: r >= 3)
    wl, u = HOT["rand2"]
    h, g = m("hot", wl, HPCS), m("hot", wl, GOCRYPTFS)
    nc, n = m("hot", wl, nocrypt_label("default")), m("hot", wl, null_label("default"))
    add(f"{wl}: hpcs ≥ 0.7 × no-crypto ceiling", f"{fmt(h, u)} vs {fmt(nc, u)} IOPS", q(h, nc),
        "≥ 0.7", lambda r: r >= 0.7)
    info(f"{wl}: hpcs ÷ FUSE-only ceiling (zeros, no backing read)",
         f"{fmt(h, u)} vs {fmt(n, u)} IOPS", q(h, n))
    add(f"{wl}: hpcs ≥ 2 × gocryptfs", f"{fmt(h, u)} vs {fmt(g, u)} IOPS", q(h, g), "≥ 2",
        lambda r: r >= 2)
    c = m("hot", wl, hpcs_label("c16k"))
    if c is not None:
        c_nc = m("hot", wl, nocrypt_label("c16k"))
        add(f"{wl}, archive packed with --chunk-size 16K: hpcs ≥ 0.7 × its no-crypto ceiling",
            f"{fmt(c, u)} vs {fmt(c_nc, u)} IOPS", q(c, c_nc), "≥ 0.7", lambda r: r >= 0.7)
        info(f"{wl}, archive packed with --chunk-size 16K: hpcs ÷ FUSE-only ceiling",
             f"{fmt(c, u)} vs {fmt(n, u)} IOPS", q(c, n))
        add(f"{wl}, archive packed with --chunk-size 16K: hpcs ≥ 2 × gocryptfs",
            f"{fmt(c, u)} vs {fmt(g, u)} IOPS", q(c, g), "≥ 2", lambda r: r >= 2)
    tw = next((w for (gg, w, s) in res.order if gg == "ttfb"), None)
    if tw:
        h = m("ttfb", tw, "hpcs-mount --daemon, open, read 1 byte")
        peer_name = next((s for (gg, w, s) in res.order if gg == "ttfb" and s.startswith("age")),
                         None)
        p = m("ttfb", tw, peer_name) if peer_name else None
        if res.info.get("ttfb_bytes", 16 * GiB) < 16 * GiB:
            tw_label = f"{tw} (the target is for 16 GiB)"
        else:
            tw_label = tw
        add(f"{tw_label}: ≤ 50 ms with the key at hand", fmt(h, "s"),
            None if h is None else h * 1000 / 50, "≤ 1 (÷ 50 ms)", lambda r: r <= 1)
        add(f"{tw_label}: ≥ 100 × faster than decrypt-then-untar",
            f"{fmt(h, 's')} vs {fmt(p, 's')}",
            q(p, h), "≥ 100", lambda r: r >= 100)
    for (gg, w, s) in res.order:
        if gg == "pack" and s == "hpcs-pack pack":
            h, t = m("pack", w, s), m("pack", w, "tar -c | age -e")
            if "disk" in w:
                # both tools wait for the same disk: a reference, not the target
                info(f"{w}: reference (both tools write at the disk's speed)",
                     f"{fmt(h, 'GB/s')} vs {fmt(t, 'GB/s')} GB/s", q(h, t))
                continue
            add(f"{w}: hpcs-pack ≥ 2 × tar | age -e", f"{fmt(h, 'GB/s')} vs {fmt(t, 'GB/s')} GB/s",
                q(h, t), "≥ 2", lambda r: r >= 2)
    hw = [(max(res.values[k]), k) for k in res.order
          if k[0] == "rss" and (k[2].startswith("hpcs")) and res.values.get(k)]
    if hw:
        worst, k = max(hw)
        lim = budget_mib + 64
        add(f"daemon peak RSS ≤ cache budget + 64 MiB (worst: {k[2]}, {k[1]})",
            f"{worst:.0f} MiB vs {budget_mib:.0f} + 64 MiB", worst / lim, "≤ 1 (÷ budget+64)",
            lambda r: r <= 1)
    sw = next((w for (gg, w, s) in res.order if gg == "small"), None)
    if sw:
        h, g, sq = m("small", sw, HPCS), m("small", sw, GOCRYPTFS), m("small", sw, SQUASHFUSE)
        add(f"{sw}: hpcs no slower than gocryptfs (time gocryptfs ÷ hpcs)",
            f"{fmt(h, 's')} vs {fmt(g, 's')}", q(g, h), "≥ 1", lambda r: r >= 1)
        add(f"{sw}: hpcs within 1.5 × squashfuse_ll (time hpcs ÷ squashfuse_ll)",
            f"{fmt(h, 's')} vs {fmt(sq, 's')}", q(h, sq), "≤ 1.5", lambda r: r <= 1.5)
    if lat2:
        base = f"{HPCS}, +0 ms per backing read"
        for key in ("seq_buf", "seq_dio"):
            wl, u = HOT[key]
            a, b = m("latency", wl, lat2), m("latency", wl, base)
            add(f"{wl} with 2 ms per backing read ≥ 0.8 × no latency",
                f"{fmt(a, u)} vs {fmt(b, u)} GB/s", q(a, b), "≥ 0.8", lambda r: r >= 0.8)
    return rows


def hot_systems(res: Results) -> list[str]:
    """Systems of the hot reads in a fixed order: hpcs variants, their null
    ceilings, peers."""
    canon = ([hpcs_label(k) for k, _, _ in HPCS_VARIANTS] + [nocrypt_label(k) for k in NOCRYPT]
             + [null_label(k) for k, _, _ in HPCS_VARIANTS] + [GOCRYPTFS, SQUASHFUSE, PLAIN])
    seen = list(dict.fromkeys(s for (g, w, s) in res.order if g == "hot"))
    return sorted(seen, key=lambda s: canon.index(s) if s in canon else len(canon))


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if c == "r" else "---" for c in align]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(res: Results, chart: str | None) -> str:
    info = res.info
    mach = info["machine"]
    v = mach["versions"]
    L: list[str] = []
    L.append(f"_Generated by `tools/bench.sh --{info['mode']}` on {info['date']} "
             f"(run time {info.get('duration_s', 0) / 60:.1f} min); the section up to "
             "the `bench:end` marker is rewritten by the next run._")
    L.append("")
    L.append("### Machine and run")
    L.append("")
    la0, la1 = info["load_start"], info.get("load_end", info["load_start"])
    rows = [
        ["CPU", f"{mach['cpu']}, {mach['cores']} cores"],
        ["RAM", mach["ram"]],
        ["OS, kernel", f"{mach['os']}, Linux {mach['kernel']}"],
        ["work dir filesystem", mach["workdir_fs"]],
        ["load average (1/5/15 min) at start / end",
         f"{la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f} / {la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}"],
        ["CPU steal during the run", f"{info.get('steal_pct', 0):.1f} %"],
        ["stall (PSI some) per phase, CPU / IO", ", ".join(
            f"{ph} {v.get('cpu', 0):.0f} / {v.get('io', 0):.0f} %"
            for ph, v in info.get("psi", {}).items()) or "not measured"],
        ["tools", f"fio {v['fio']}, gocryptfs {v['gocryptfs']}, squashfuse {v['squashfuse']}, "
                  f"mksquashfs {v['mksquashfs']}, age {v['age']}, GNU tar {v['tar']}"],
        ["hpcs", f"hpcs-mount {v['hpcs-mount']} ({mach['build']} build)"
                 + (f", commit {mach['commit']}" if mach.get("commit") else "")],
        ["mode", f"{info['mode']}: median (min–max) of {info['reps']} runs; "
                 f"{human_bytes(info.get('big_bytes', 0))} random file, "
                 f"{info.get('small_files', 0)} small files, "
                 f"{human_bytes(info.get('ttfb_bytes', 0))} time-to-first-byte dataset, "
                 f"hpcs cache {info['cache']}, random runs {info['rand_runtime']:g} s"],
        ["caches", "dropped (sync; echo 3 > drop_caches) before cold runs" if info["drop"]
         else "not dropped before cold runs (" + ("smoke mode" if info["root"] else "not root")
         + "): cold numbers are warm"],
    ]
    L.append(table(["", ""], rows, "ll"))
    L.append("")
    if chart:
        L.append(f"![benchmark chart]({chart})")
        L.append("")

    # targets
    lat2 = next((s for (g, w, s) in res.order if g == "latency" and "+2 ms" in s), None)
    L.append("### Performance targets (issue 5)")
    L.append("")
    L.append(table(["target", "measured (medians)", "ratio", "required", "result"],
                   [list(r) for r in targets(res, info["cache_budget_mib"], lat2)], "llrrl"))
    L.append("")

    # hot reads
    sys_hot = hot_systems(res)
    L.append("### Reads of one large file, backing store in the page cache")
    L.append("")
    L.append(f"fio, psync, {human_bytes(info.get('big_bytes', 0))} random file; a fresh mount for "
             "every system and repetition, its backing file (archive, gocryptfs ciphertext, "
             "squashfs image) read once before. GB/s = 10⁹ bytes/s. The random runs cover the "
             "whole file; hpcs's cache holds "
             f"{info['cache']} of it. *page cache (plain file)* is the source file itself, warm, "
             "read buffered in every column (O_DIRECT cannot be served from the page cache).")
    L.append("")
    hdr = ["system"] + [HOT[k][0] + (" (GB/s)" if HOT[k][1] == "GB/s" else " (IOPS)") for k in HOT]
    hdr.append("daemon peak RSS (MiB)")
    rows = []
    for s in sys_hot:
        r = [s] + [cell(res, "hot", HOT[k][0], s) for k in HOT]
        r.append(cell(res, "rss", RSS_HOT, s) if ("rss", RSS_HOT, s) in res.values else "—")
        rows.append(r)
    L.append(table(hdr, rows))
    L.append("")
    L.append("**Ratios against hpcs**: hpcs (default options) ÷ each system, medians; above 1 "
             "means hpcs is faster.")
    L.append("")
    rows = []
    for s in sys_hot:
        if s == HPCS:
            continue
        rows.append([s] + [ratio(res.med("hot", HOT[k][0], HPCS), res.med("hot", HOT[k][0], s))
                           for k in HOT])
    L.append(table(["hpcs ÷"] + [HOT[k][0] for k in HOT], rows))
    L.append("")
    L.append("**hpcs against the no-crypto ceiling** (hpcs-mount `--bench-nocrypt`: the same "
             "backing reads, cache and read-ahead, without decryption or authentication; what "
             "the crypto costs): hpcs ÷ no-crypto.")
    L.append("")

    def vs_ceiling(vkeys, ceiling) -> None:
        """One row per hpcs variant: its medians ÷ its ceiling's."""
        rows = [[variant_label(v)] + [ratio(res.med("hot", HOT[k][0], hpcs_label(v)),
                                            res.med("hot", HOT[k][0], ceiling(v))) for k in HOT]
                for v in vkeys]
        L.append(table(["options"] + [HOT[k][0] for k in HOT], rows))
        L.append("")

    vs_ceiling(NOCRYPT, nocrypt_label)
    L.append("**hpcs against the FUSE-only ceiling with the same options** (hpcs-mount "
             "`--bench-null`: the same FUSE code path serving zeros without reading or "
             "decrypting the archive; what reading, caching and decrypting cost together): "
             "hpcs ÷ null.")
    L.append("")
    vs_ceiling([k for k, _, _ in HPCS_VARIANTS], null_label)

    # latency
    sys_lat = list(dict.fromkeys(s for (g, w, s) in res.order if g == "latency"))
    if sys_lat:
        L.append("### Lustre-like backing store (latency per backing read)")
        L.append("")
        L.append("hpcs-mount (default options; also `--readahead 2M` for the sequential reads) "
                 "reading its archive through the benchmark "
                 "shaper (`HPCS_BENCH_BACKING_LATENCY_US`"
                 + (f", `HPCS_BENCH_BACKING_MBPS={info['backing_mbps']}`"
                    if info.get("backing_mbps") else "")
                 + f"): every backing read (one `preadv` of a run of chunks) first sleeps that "
                 f"long. Sequential runs stop after {human_bytes(info.get('big_bytes', 0))} or "
                 f"{info.get('lat_seq_cap', 0):g} s, random runs last {info['lat_runtime']:g} s. "
                 "See [lustre.md](lustre.md).")
        L.append("")
        hdr = ["options, latency"] + [HOT[k][0] for k in HOT] + ["seq buffered ÷ 0 ms",
                                                        "seq O_DIRECT ÷ 0 ms"]
        rows = []
        for s in sorted(sys_lat, key=lambda x: (x.split(", +")[0] != HPCS, sys_lat.index(x))):
            variant, lab = s.split(", +", 1)
            base = f"{variant}, +0 ms per backing read"
            lab = (variant.replace(HPCS, "default").replace("hpcs ", "") + ", "
                   + lab.replace(" per backing read", ""))
            rows.append([lab] + [cell(res, "latency", HOT[k][0], s) for k in HOT]
                        + [ratio(res.med("latency", HOT[k][0], s),
                                 res.med("latency", HOT[k][0], base))
                           for k in ("seq_buf", "seq_dio")])
        L.append(table(hdr, rows))
        L.append("")

    # ttfb
    tw = next((w for (g, w, s) in res.order if g == "ttfb"), None)
    if tw:
        L.append("### Time to first byte")
        L.append("")
        L.append(f"A {human_bytes(info.get('ttfb_bytes', 0))} dataset of 16 files; caches dropped "
                 "before every run, then the programs (hpcs-mount, dd, age, tar) read back in, so "
                 "the data is cold but the binaries are not. hpcs: from starting `hpcs-mount --daemon` with an age identity "
                 "file until one byte in the middle of the middle file has been read (`open` + "
                 "`pread`). Peer: HPCS's path today, decrypt the whole `tar.age` and untar it "
                 "before the job can start.")
        L.append("")
        hs = "hpcs-mount --daemon, open, read 1 byte"
        rows = [[s, cell(res, "ttfb", tw, s), ratio(res.med("ttfb", tw, s), res.med("ttfb", tw, hs))]
                for s in dict.fromkeys(s for (g, w, s) in res.order if g == "ttfb")]
        L.append(table(["", "time", "÷ hpcs daemon"], rows))
        L.append("")

    # pack
    pw = list(dict.fromkeys(w for (g, w, s) in res.order if g == "pack"))
    if pw:
        L.append("### Pack throughput")
        L.append("")
        L.append("Source tree = the large file plus the small files, warm in the page cache; "
                 "throughput = source bytes ÷ wall time. `tar -c | age -e` ends with `sync FILE` "
                 "because hpcs-pack fsyncs its output before renaming it into place. Output to "
                 "the disk runs at the disk's write speed for both tools, so the target is "
                 "judged on output to memory (`/dev/shm`, pages pre-faulted before every run: "
                 "on this VM a first write to untouched memory is several times slower). The "
                 "gocryptfs copy-in and mksquashfs rows (one run, while preparing the data) are "
                 "references, not targets.")
        L.append("")
        rows = []
        for w in pw:
            hp = res.med("pack", w, "hpcs-pack pack")
            for s in dict.fromkeys(s for (g, ww, s) in res.order if g == "pack" and ww == w):
                rows.append([w, s, cell(res, "pack", w, s), ratio(hp, res.med("pack", w, s))])
        L.append(table(["output", "tool", "GB/s", "hpcs-pack ÷"], rows, "llrr"))
        L.append("")

    # small
    sw = next((w for (g, w, s) in res.order if g == "small"), None)
    if sw:
        n = info.get("small_files", 0)
        L.append(f"### {n} small files, cold")
        L.append("")
        L.append("`find DIR -type f -print0 | xargs -0 cat > /dev/null` on a fresh mount after "
                 "dropping the caches (the backing store is read from the disk).")
        L.append("")
        rows = []
        for s in dict.fromkeys(s for (g, w, s) in res.order if g == "small"):
            md = res.med("small", sw, s)
            rows.append([s, cell(res, "small", sw, s), f"{n / md:,.0f}" if md else "—",
                         ratio(md, res.med("small", sw, HPCS))])
        L.append(table(["system", "time", "files/s", "time ÷ hpcs"], rows))
        L.append("")

    # memory
    hs = hot_systems(res)
    rk = sorted((k for k in res.order if k[0] == "rss"),
                key=lambda k: (k[1] == RSS_HOT, hs.index(k[2]) if k[2] in hs else -1))
    if rk:
        L.append("### Daemon memory")
        L.append("")
        L.append(f"Peak resident set (VmHWM) of the daemon serving the mount; the hpcs cache "
                 f"budget is {info['cache_budget_mib']:.0f} MiB (target: ≤ budget + 64 MiB). "
                 "hpcs-mount locks its cache (and, as root, all its memory).")
        L.append("")
        rows = [[s, w, cell(res, "rss", w, s)] for (g, w, s) in rk]
        L.append(table(["daemon", "after", "peak RSS (MiB)"], rows, "llr"))
        L.append("")

    if res.notes or res.errors:
        L.append("### Notes")
        L.append("")
        for n in res.notes:
            L.append(f"- {n}")
        for (g, w, s), e in res.errors.items():
            L.append(f"- **failed**: {w} / {s}: {e[:300]}")
        L.append("")

    L.append("<details><summary>All measurements</summary>")
    L.append("")
    rows = []
    for k in res.order:
        g, w, s = k
        vals = res.values[k]
        unit = res.units[k]
        rows.append([w, s, cell(res, g, w, s), unit, str(len(vals))])
    L.append(table(["workload", "system", "median (min–max)", "unit", "runs"], rows, "llrlr"))
    L.append("")
    L.append("</details>")
    return "\n".join(L)


# ---------------------------------------------------------------- chart

SHORT = {
    HPCS: "hpcs", "hpcs --direct-io": "hpcs dio", "hpcs --page-cache": "hpcs pc",
    "hpcs --readahead 0": "hpcs ra0", "hpcs --readahead 2M": "hpcs ra2M",
    hpcs_label("c16k"): "hpcs 16K",
    nocrypt_label("default"): "no-crypto", nocrypt_label("c16k"): "no-crypto 16K",
    null_label("default"): "null", null_label("dio"): "null dio", null_label("pc"): "null pc",
    null_label("ra0"): "null ra0", null_label("ra2m"): "null ra2M",
    GOCRYPTFS: "gocryptfs", SQUASHFUSE: "squashfuse", PLAIN: "page cache",
    PLAIN_COLD: "plain fs", "hpcs-pack pack": "hpcs-pack", "tar -c | age -e": "tar|age",
}


def chart(res: Results, out_png: Path, tmp: Path) -> bool:
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no chart")
        return False
    tmp.mkdir(parents=True, exist_ok=True)

    def stats(g, w, s, scale=1.0):
        v = res.values.get((g, w, s)) or [0.0]
        return statistics.median(v) * scale, min(v) * scale, max(v) * scale

    def write(name, rows):
        p = tmp / name
        p.write_text("\n".join("\t".join(str(c) for c in r) for r in rows) + "\n")
        return p

    hot = hot_systems(res)
    seq = write("seq.dat", [[SHORT.get(s, s), *stats("hot", HOT["seq_buf"][0], s),
                             *stats("hot", HOT["seq_dio"][0], s)] for s in hot])
    rnd = write("rand.dat", [[SHORT.get(s, s), *stats("hot", HOT["rand1"][0], s, 1e-3),
                              *stats("hot", HOT["rand2"][0], s, 1e-3)] for s in hot])
    lat_ms = list(dict.fromkeys(s.split(", +", 1)[1].split(" ")[0]
                                for (g, w, s) in res.order if g == "latency"))

    def lat_sys(variant, ms):
        return f"{variant}, +{ms} ms per backing read"
    ra2 = "hpcs --readahead 2M"
    lat = write("lat.dat", [[ms,
                             stats("latency", HOT["seq_buf"][0], lat_sys(HPCS, ms))[0],
                             stats("latency", HOT["seq_dio"][0], lat_sys(HPCS, ms))[0],
                             stats("latency", HOT["rand2"][0], lat_sys(HPCS, ms), 1e-3)[0],
                             stats("latency", HOT["seq_buf"][0], lat_sys(ra2, ms))[0],
                             stats("latency", HOT["seq_dio"][0], lat_sys(ra2, ms))[0]]
                            for ms in lat_ms] or [[0, 0, 0, 0, 0, 0]])
    sw = next((w for (g, w, s) in res.order if g == "small"), None)
    n = res.info.get("small_files", 1)
    small_rows = []
    if sw:
        for s in dict.fromkeys(s for (g, w, s) in res.order if g == "small"):
            v = res.values.get(("small", sw, s)) or []
            if v:
                small_rows.append([SHORT.get(s, s), n / statistics.median(v) / 1000,
                                   n / max(v) / 1000, n / min(v) / 1000])
    small = write("small.dat", small_rows or [["none", 0, 0, 0]])
    pw = list(dict.fromkeys(w for (g, w, s) in res.order if g == "pack"))
    pack_rows = []
    for w in pw:
        where = "disk" if "disk" in w else "memory"
        for s in dict.fromkeys(s for (g, ww, s) in res.order if g == "pack" and ww == w):
            lab = SHORT.get(s, "gocryptfs cp" if "gocryptfs" in s else
                            "mksquashfs" if "mksquashfs" in s else s)
            pack_rows.append([f"{lab} ({where})", *stats("pack", w, s)])
    pack = write("pack.dat", pack_rows or [["none", 0, 0, 0]])
    tw = next((w for (g, w, s) in res.order if g == "ttfb"), None)
    ttfb_rows = []
    if tw:
        for s in dict.fromkeys(s for (g, w, s) in res.order if g == "ttfb"):
            lab = ("hpcs daemon" if "daemon" in s else "hpcs exec" if "exec" in s
                   else "age -d | tar")
            if res.values.get(("ttfb", tw, s)):
                ttfb_rows.append([lab, *stats("ttfb", tw, s)])
    ttfb = write("ttfb.dat", ttfb_rows or [["none", 1, 1, 1]])
    info = res.info
    title = (f"hpcs benchmarks ({info['mode']} mode, {info['date']}, "
             f"{info['machine']['cores']} cores, median and min-max of {info['reps']} runs)")
    script = f"""
set terminal pngcairo size 1500,1350 font "sans,10" noenhanced
set output '{out_png}'
set datafile separator "\\t"
set multiplot layout 3,2 title "{title}"
set style fill solid 0.8 border -1
set grid ytics
set key top left
set xtics rotate by -35 left nomirror
set style data histograms
set style histogram errorbars gap 1 lw 1
set yrange [0:*]
set title "Sequential read 1 MiB (GB/s)"
plot '{seq}' using 2:3:4:xtic(1) title 'buffered', '' using 5:6:7 title 'O_DIRECT'
set title "Random 4 KiB O_DIRECT (kIOPS, log scale)"
set logscale y
set yrange [*:*]
plot '{rnd}' using 2:3:4:xtic(1) title '1 job', '' using 5:6:7 title '2 jobs'
set title "hpcs with latency per backing read (Lustre-like)"
set key top right
unset logscale y
set yrange [0:*]
set style data linespoints
set xtics norotate
set xlabel "ms per backing read"
set ylabel "GB/s"
set y2label "kIOPS"
set y2tics
set y2range [0:*]
plot '{lat}' using 1:2 title 'seq buffered (GB/s)' lw 2, '' using 1:3 title 'seq O_DIRECT (GB/s)' lw 2, '' using 1:5 title 'seq buffered, --readahead 2M' lw 2 dt 2, '' using 1:6 title 'seq O_DIRECT, --readahead 2M' lw 2 dt 2, '' using 1:4 axes x1y2 title 'random 4K, 2 jobs (kIOPS, right axis)' lw 2
unset y2tics
unset y2label
unset xlabel
unset ylabel
set style data histograms
set style histogram errorbars gap 1 lw 1
set xtics rotate by -35 left nomirror
set title "{n} small files, cold (thousand files/s)"
plot '{small}' using 2:3:4:xtic(1) notitle
set title "Pack (GB/s of source)"
plot '{pack}' using 2:3:4:xtic(1) notitle
set title "Time to first byte, {human_bytes(info.get('ttfb_bytes', 0))} dataset (s, log scale)"
set logscale y
set yrange [*:*]
plot '{ttfb}' using 2:3:4:xtic(1) notitle
unset multiplot
"""
    sp = tmp / "chart.gp"
    sp.write_text(script)
    p = subprocess.run([gp, str(sp)], stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(f"gnuplot failed: {p.stderr.strip()[:1000]}")
        return False
    return out_png.exists()


def write_markdown(block: str, template: Path, out: Path) -> None:
    text = template.read_text() if template.exists() else "# Benchmarks\n\n"
    new = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        text = text[:a] + new + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.rename(out)


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
                    "(ttfb,pack,hot,latency,small; for development)")
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

    global DROP
    DROP = IS_ROOT and d["drop"]
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


def target_bench_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "bench"


def report(res: Results, out: Path, tmp: Path, no_chart: bool, mode: str | None) -> int:
    """Writes OUT/benchmarks.md (the generated block between the markers of
    the existing page, or of docs/benchmarks.md), OUT/benchmarks.png and the
    raw results (OUT/benchmarks.json; for docs/, under the target dir)."""
    is_docs = out == (REPO / "docs").resolve()
    png = out / "benchmarks.png"
    has_chart = False if no_chart else chart(res, png, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    block = render(res, "benchmarks.png" if has_chart else None)
    write_markdown(block, (out / "benchmarks.md") if (out / "benchmarks.md").exists()
                   else REPO / "docs" / "benchmarks.md", out / "benchmarks.md")
    if mode:
        js = (target_bench_dir() / f"{mode}-results.json") if is_docs else out / "benchmarks.json"
        js.parent.mkdir(parents=True, exist_ok=True)
        js.write_text(json.dumps(res.to_json(), indent=1) + "\n")
        log(f"wrote {out / 'benchmarks.md'}" + (f", {png}" if has_chart else "") + f", {js}")
    else:
        log(f"wrote {out / 'benchmarks.md'}" + (f", {png}" if has_chart else ""))
    if res.errors:
        log(f"{len(res.errors)} measurement(s) failed; see the Notes section")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
