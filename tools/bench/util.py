"""Small helpers of the benchmark harness: sizes, the log, running commands,
waiting for mounts and daemons, the page cache (drop, warm, prefault) and
the machine's load counters (PSI, CPU steal). No knowledge of what is
measured."""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

REPO = Path(__file__).resolve().parents[2]

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


def wait_gone(pid: int | None, timeout: float = 120.0) -> None:
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


CLK_TCK = os.sysconf("SC_CLK_TCK")


def daemon_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds a process (all its threads, live and exited)
    has used so far, from /proc/PID/stat (10 ms resolution)."""
    if not pid:
        return None
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK


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
# bench.main sets it per mode (as util.DROP): smoke mode turns it off (speed; its
# numbers mean nothing)
DROP = IS_ROOT


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


def target_bench_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "bench"
