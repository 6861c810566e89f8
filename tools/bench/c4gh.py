"""Crypt4GH (issue 17): one large `.c4gh` file, encrypted by the Python
`crypt4gh` CLI, read through hpcs-mount serving a reference archive
(`hpcs-pack c4gh-ref`), through `crypt4ghfs` (the reference FUSE file
system, PyPI) and by `crypt4gh decrypt` of the whole file: sequential 1 MiB
reads, random 4 KiB reads, time to first byte, and the daemon's (or the
decrypting process's) CPU seconds per GB. `C4ghPhase` is a part of
`bench.Bench` (its phase and its part of the report).

crypt4ghfs is found in the virtualenv tools/setup.sh makes,
${HPCS_C4GHFS_VENV:-/opt/hpcs-bench/crypt4ghfs} (with crypt4gh 1.5:
crypt4ghfs 1.2 imports functions later crypt4gh releases removed), else on
PATH. Without it, or without the crypt4gh CLI, the
phase records why in the report's notes and measures what it can."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from results import Results, cell
from util import (GiB, BenchError, drop_caches, human_bytes, log, pread1, run, wait_gone,
                  wait_mounted, warm_programs)

G = "c4gh"
G_CPU = "c4gh_cpu"
HPCS = "hpcs-mount, reference archive"
C4GHFS = "crypt4ghfs 1.2"
DECRYPT = "crypt4gh decrypt (whole file)"
SYSTEMS = [HPCS, C4GHFS, DECRYPT]
SEQ = "c4gh: seq read 1M"
RAND = "c4gh: random 4K read"
TTFB = "c4gh: time to first byte (cold)"
CPU_SEQ = "c4gh: seq read 1M: CPU per GB"
MAX_SIZE = 1 * GiB
C4GHFS_VENV = Path(os.environ.get("HPCS_C4GHFS_VENV") or "/opt/hpcs-bench/crypt4ghfs")


def find_crypt4ghfs() -> str | None:
    exe = C4GHFS_VENV / "bin" / "crypt4ghfs"
    return str(exe) if os.access(exe, os.X_OK) else shutil.which("crypt4ghfs")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class C4ghPhase:
    """Measures reading a `.c4gh` file three ways."""

    def c4gh_setup(self) -> None:
        d = self.work / "c4gh"
        d.mkdir(exist_ok=True)
        self.c4gh_dir = d / "files"
        self.c4gh_dir.mkdir(exist_ok=True)
        self.c4gh_sk, self.c4gh_pk = d / "me.sec", d / "me.pub"
        self.c4gh_file = self.c4gh_dir / "big.c4gh"
        self.c4gh_ref = d / "ref.hpcs"
        size = min(self.a.big_size, MAX_SIZE)
        self.res.info["c4gh_bytes"] = size
        run(["crypt4gh-keygen", "--sk", str(self.c4gh_sk), "--pk", str(self.c4gh_pk), "--nocrypt",
             "-f"])
        t = time.monotonic()
        with open(self.src / "big.bin", "rb") as src, open(self.c4gh_file, "wb") as out:
            # the first `size` bytes of the run's random large file
            p = subprocess.Popen(["crypt4gh", "encrypt", "--recipient_pk", str(self.c4gh_pk)],
                                 stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
            left = size
            while left:
                b = src.read(min(left, 8 << 20))
                if not b:
                    raise BenchError("the run's large file is shorter than the Crypt4GH file")
                p.stdin.write(b)
                left -= len(b)
            p.stdin.close()
            err = p.stderr.read().decode(errors="replace")
            if p.wait() != 0:
                raise BenchError(f"crypt4gh encrypt failed: {err.strip()}")
        self.res.info["c4gh_encrypt_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        run([self.a.hpcs_pack, "c4gh-ref", str(self.c4gh_dir), "--sk", str(self.c4gh_sk), "-o",
             str(self.c4gh_ref), "-r", self.recipient, "-q"], timeout=3600)
        self.res.info["c4gh_ref_s"] = round(time.monotonic() - t, 1)
        self.c4gh_plain_size = size

    def c4ghfs_mount(self, exe: str) -> subprocess.Popen:
        conf = self.work / "c4gh" / "fs.conf"
        # [FUSE] options is given: crypt4ghfs 1.2's default is a string that
        # pyfuse3 3.x reads as a list of one-letter options
        conf.write_text(f"[DEFAULT]\nrootdir = {self.c4gh_dir}\n"
                        f"[CRYPT4GH]\nseckey = {self.c4gh_sk}\n"
                        "[FUSE]\noptions = ro,default_permissions\n")
        conf.chmod(0o600)
        log_f = open(self.logdir / "crypt4ghfs.log", "ab")
        p = subprocess.Popen([exe, "--conf", str(conf), "-f", str(self.mnt)],
                             stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f)
        log_f.close()
        try:
            wait_mounted(self.mnt)
        except BenchError:
            p.kill()
            p.wait()
            tail = (self.logdir / "crypt4ghfs.log").read_text(errors="replace")[-500:]
            raise BenchError(f"crypt4ghfs did not mount: {tail.strip()}") from None
        return p

    def c4ghfs_unmount(self, p: subprocess.Popen) -> None:
        run(["fusermount3", "-u", str(self.mnt)], check=False, timeout=60)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        wait_gone(p.pid, 5)

    def c4gh_reads(self, f: Path, system: str, pid: int | None) -> None:
        """Sequential 1 MiB reads (with the daemon's CPU per GB) and random
        4 KiB reads of file `f`, both buffered: crypt4ghfs refuses O_DIRECT
        opens (EACCES)."""
        for label, fn in (
            (SEQ, lambda: self.fio(f, "read", "1M", False, runtime=self.a.seq_cap, pid=pid)),
            (RAND, lambda: self.fio(f, "randread", "4k", False, runtime=self.a.rand_runtime,
                                    time_based=True)),
        ):
            unit = "GB/s" if label == SEQ else "IOPS"
            try:
                r = fn()
            except (BenchError, subprocess.TimeoutExpired) as e:
                self.res.fail(G, label, system, unit, str(e))
                continue
            v = r.gbps if unit == "GB/s" else r.iops
            self.res.add(G, label, system, v, unit)
            if label == SEQ and r.cpu is not None:
                self.res.add(G_CPU, CPU_SEQ, system, r.cpu / (r.nbytes / 1e9), "s/GB")
            log(f"  {system:32s} {label:28s} {v:.3g} {unit}")

    def c4gh_ttfb(self, system: str, mount) -> None:
        """Cold: caches dropped, then mount + open + read one byte in the middle."""
        drop_caches()
        warm_programs(self.a.hpcs_mount, "python3", "crypt4gh")
        t = time.monotonic()
        handle = mount()
        try:
            pread1(self.mnt / "big", self.c4gh_plain_size // 2)
            self.res.add(G, TTFB, system, time.monotonic() - t, "s")
        finally:
            handle()

    def phase_c4gh(self) -> None:
        if not (shutil.which("crypt4gh") and shutil.which("crypt4gh-keygen")):
            self.res.notes.append("Crypt4GH: not measured: the `crypt4gh` CLI is not on PATH "
                                  "(tools/setup.sh installs it).")
            return
        self.c4gh_setup()
        size = self.c4gh_plain_size
        exe = find_crypt4ghfs()
        self.res.info["c4ghfs"] = exe or ""
        if exe is None:
            self.res.notes.append("Crypt4GH: crypt4ghfs not measured: not found in "
                                  f"{C4GHFS_VENV} or on PATH (tools/setup.sh --bench installs "
                                  "it).")
        for rep in range(self.a.reps):
            log(f"c4gh rep {rep + 1}/{self.a.reps}")
            # hpcs-mount serving the reference archive
            try:
                m = self.mount_hpcs(self.c4gh_ref, [], tag="c4gh")
                try:
                    self.c4gh_reads(self.mnt / "big", HPCS, m.pid)
                finally:
                    self.unmount(m)

                def mount_h():
                    mm = self.mount_hpcs(self.c4gh_ref, [], tag="c4gh")
                    return lambda: self.unmount(mm)
                self.c4gh_ttfb(HPCS, mount_h)
            except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                for lab, u in ((SEQ, "GB/s"), (RAND, "IOPS"), (TTFB, "s")):
                    if (G, lab, HPCS) not in self.res.units:
                        self.res.fail(G, lab, HPCS, u, str(e))
            # crypt4ghfs
            if exe is not None:
                try:
                    p = self.c4ghfs_mount(exe)
                    try:
                        self.c4gh_reads(self.mnt / "big", C4GHFS, p.pid)
                    finally:
                        self.c4ghfs_unmount(p)

                    def mount_c():
                        pp = self.c4ghfs_mount(exe)
                        return lambda: self.c4ghfs_unmount(pp)
                    self.c4gh_ttfb(C4GHFS, mount_c)
                except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                    for lab, u in ((SEQ, "GB/s"), (RAND, "IOPS"), (TTFB, "s")):
                        if (G, lab, C4GHFS) not in self.res.units:
                            self.res.fail(G, lab, C4GHFS, u, str(e))
            # crypt4gh decrypt of the whole file, and its first byte
            try:
                drop_caches()
                warm_programs("python3", "crypt4gh")
                c0 = children_cpu()
                t = time.monotonic()
                with open(self.c4gh_file, "rb") as fin:
                    p = subprocess.Popen(["crypt4gh", "decrypt", "--sk", str(self.c4gh_sk)],
                                         stdin=fin, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
                    first = None
                    n = 0
                    while b := p.stdout.read1(1 << 20):
                        if first is None:
                            first = time.monotonic() - t
                        n += len(b)
                    rc = p.wait()
                dt = time.monotonic() - t
                cpu = children_cpu() - c0
                if rc != 0 or n != size:
                    raise BenchError(f"crypt4gh decrypt: exit {rc}, {n} of {size} bytes")
                self.res.add(G, SEQ, DECRYPT, size / dt / 1e9, "GB/s")
                self.res.add(G, TTFB, DECRYPT, first, "s")
                self.res.add(G_CPU, CPU_SEQ, DECRYPT, cpu / (size / 1e9), "s/GB")
                log(f"  {DECRYPT:32s} {size / dt / 1e9:.3g} GB/s, first byte {first:.3f} s")
            except (BenchError, OSError) as e:
                self.res.fail(G, SEQ, DECRYPT, "GB/s", str(e))
        shutil.rmtree(self.work / "c4gh", ignore_errors=True)


def render_c4gh(res: Results, info: dict, table) -> list[str]:
    """The report's section on Crypt4GH (empty if not measured)."""
    seen = [s for s in SYSTEMS if any((G, w, s) in res.units for w in (SEQ, RAND, TTFB))]
    if not seen:
        return []
    size = human_bytes(info.get("c4gh_bytes", 0))
    L = ["### Crypt4GH", ""]
    L.append(f"One {size} `.c4gh` file (random data, encrypted by `crypt4gh encrypt`, "
             f"{info.get('c4gh_encrypt_s', '?')} s), read three ways: through hpcs-mount serving "
             "a reference archive over it (`hpcs-pack c4gh-ref`, "
             f"{info.get('c4gh_ref_s', '?')} s: it authenticates every segment once), through "
             "crypt4ghfs 1.2 (the reference FUSE file system, Python, on crypt4gh 1.5 and "
             "pyfuse3), and by `crypt4gh decrypt` to a pipe. Sequential: fio, 1 MiB buffered "
             "reads after invalidating the page cache; `crypt4gh decrypt` of the whole file. "
             f"Random: fio, 4 KiB buffered reads for {info['rand_runtime']:g} s (crypt4ghfs "
             "refuses O_DIRECT opens with EACCES; fio's default `fadvise_hint` turns the "
             "kernel's read-ahead off for random reads, so each read is one 4 KiB request). "
             "Time to first "
             "byte: caches dropped, then mount + open + read one byte in the middle (for "
             "`crypt4gh decrypt`: the first byte it writes; a byte in the middle comes only "
             "after half the file). CPU = the daemon's (or `crypt4gh decrypt`'s) user + system "
             "seconds per GB of sequential reads.")
    L.append("")
    hdr = ["system", "seq read 1M (GB/s)", "random 4K read (IOPS)", "time to first byte",
           "CPU s/GB, seq read"]
    rows = []
    for s in seen:
        rows.append([s, cell(res, G, SEQ, s),
                     cell(res, G, RAND, s) if (G, RAND, s) in res.units else "—",
                     cell(res, G, TTFB, s),
                     cell(res, G_CPU, CPU_SEQ, s) if (G_CPU, CPU_SEQ, s) in res.units else "—"])
    L.append(table(hdr, rows))
    L.append("")
    return L
