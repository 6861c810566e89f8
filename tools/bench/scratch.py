"""The encrypted scratch directory (issue 13): hpcs-mount --scratch against
gocryptfs (what HPCS gives jobs for writing), a plain directory on the work
dir's disk and tmpfs. fio, psync, one job, O_DIRECT everywhere (so every
request reaches the filesystem, and for the FUSE systems the daemon):
sequential 1 MiB writes then reads of one file of the run's large-file size,
then random 4 KiB reads and writes over it; and the daemons' CPU seconds per
GB moved. `ScratchPhase` is a part of `bench.Bench` (its phase, its part of
the report and of the targets)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from results import Results, cell, fmt, ratio
from systems import GOCRYPTFS, Mount
from util import BenchError, human_bytes, log, pid_by_mountpoint, prefault, run, wait_mounted

G = "scratch"
G_CPU = "scratch_cpu"
SCRATCH_HPCS = "hpcs --scratch"
PLAIN_DISK = "plain directory, work dir's disk"
TMPFS = "tmpfs (/dev/shm)"
SYSTEMS = [SCRATCH_HPCS, GOCRYPTFS, PLAIN_DISK, TMPFS]
# key -> (label, unit, fio rw, block size, timed)
WL = {
    "seq_w": ("scratch: seq write 1M, O_DIRECT", "GB/s", "write", "1M", False),
    "seq_r": ("scratch: seq read 1M, O_DIRECT", "GB/s", "read", "1M", False),
    "rand_r": ("scratch: random 4K read, O_DIRECT", "IOPS", "randread", "4k", True),
    "rand_w": ("scratch: random 4K write, O_DIRECT", "IOPS", "randwrite", "4k", True),
}


def cpu_label(key: str) -> str:
    return f"{WL[key][0]}: daemon CPU per GB"


def cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


class ScratchPhase:
    """Measures the scratch directory and its peers."""

    def fio_rw(self, path: Path, key: str, size: int) -> tuple[float, float, int]:
        """One fio run: (GB/s, IOPS, bytes moved)."""
        _, _, rw, bs, timed = WL[key]
        cmd = ["fio", "--name=s", f"--filename={path}", f"--rw={rw}", f"--bs={bs}", "--direct=1",
               "--ioengine=psync", "--numjobs=1", f"--size={size}", "--output-format=json",
               "--invalidate=1"]
        if timed:
            cmd += ["--norandommap", "--randrepeat=0", "--time_based",
                    f"--runtime={max(1, int(self.a.rand_runtime * 1000))}ms"]
        p = run(cmd, stdout=subprocess.PIPE, timeout=1200)
        try:
            job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
        except (ValueError, KeyError, IndexError) as e:
            raise BenchError(f"cannot parse fio output: {e}: {p.stdout[:500]}") from e
        if job.get("error"):
            raise BenchError(f"fio error {job['error']}")
        r = job["write" if "write" in rw else "read"]
        if r["io_bytes"] == 0:
            raise BenchError("fio moved nothing")
        return r["bw_bytes"] / 1e9, r["iops"], r["io_bytes"]

    def scratch_setup(self, system: str, rep: int) -> tuple[Path, int | None, Mount | None, Path]:
        """Makes `system`'s directory; returns (directory to write in,
        daemon pid, mount, directory whose page cache the data lands in)."""
        base = self.work / "scratch-phase"
        base.mkdir(exist_ok=True)
        if system == SCRATCH_HPCS:
            back = base / f"hpcs-{rep}"
            back.mkdir()
            pidfile = self.logdir / "scratch.pid"
            pidfile.unlink(missing_ok=True)
            run([self.a.hpcs_mount, "--archive", f"data={self.archive}", str(self.mnt), "-i",
                 str(self.ident), "--daemon", "--pidfile", str(pidfile), "--log-file",
                 str(self.logdir / "hpcs-mount.log"), "--scratch", f"tmp={back}",
                 *self.cache_args], timeout=120)
            m = Mount("hpcs", self.mnt, int(pidfile.read_text().strip()))
            self.mounts.append(m)
            return self.mnt / "tmp", m.pid, m, base
        if system == GOCRYPTFS:
            cipher = base / f"gocryptfs-{rep}"
            cipher.mkdir()
            run(["gocryptfs", "-init", "-q", "-scryptn", "10", "-passfile", str(self.gc_pass),
                 str(cipher)])
            run(["gocryptfs", "-q", "-passfile", str(self.gc_pass), str(cipher), str(self.mnt)],
                timeout=120)
            m = Mount("fuse", self.mnt, None)
            self.mounts.append(m)
            wait_mounted(self.mnt)
            m.pid = pid_by_mountpoint(self.mnt)
            return self.mnt, m.pid, m, base
        if system == PLAIN_DISK:
            d = base / f"plain-{rep}"
            d.mkdir()
            return d, None, None, base
        shm = Path("/dev/shm") / f"hpcs-bench-scratch-{os.getpid()}"
        shm.mkdir()
        self.shm_dir = shm
        return shm, None, None, shm

    def phase_scratch(self) -> None:
        size = self.a.big_size
        if shutil.disk_usage("/dev/shm").free < size + (512 << 20):
            self.res.notes.append("Scratch: tmpfs skipped (not enough room in /dev/shm).")
            systems = SYSTEMS[:-1]
        else:
            systems = SYSTEMS
        self.res.info["scratch_bytes"] = size
        for rep in range(self.a.reps):
            # ABBA: odd repetitions run the systems in reverse order
            for system in (systems if rep % 2 == 0 else systems[::-1]):
                log(f"scratch rep {rep + 1}/{self.a.reps}: {system}")
                m = None
                try:
                    d, pid, m, page_dir = self.scratch_setup(system, rep)
                    f = d / "fio.bin"
                    for key in WL:
                        label, unit = WL[key][:2]
                        if key == "seq_w":
                            # writes land in page cache the VM may not have
                            # touched lately: touch it first, for everyone
                            prefault(page_dir, size)
                        c0 = cpu_seconds(pid)
                        gbps, iops, moved = self.fio_rw(f, key, size)
                        c1 = cpu_seconds(pid)
                        v = gbps if unit == "GB/s" else iops
                        self.res.add(G, label, system, v, unit)
                        log(f"  {system:32s} {label:36s} {fmt(v, unit)} {unit}")
                        if c0 is not None and c1 is not None:
                            self.res.add(G_CPU, cpu_label(key), system,
                                         (c1 - c0) / (moved / 1e9), "s/GB")
                    f.unlink()
                except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                    for key in WL:
                        self.res.fail(G, WL[key][0], system, WL[key][1], str(e))
                finally:
                    if m is not None:
                        self.unmount(m)
                    shutil.rmtree(self.work / "scratch-phase", ignore_errors=True)
                    if self.shm_dir:
                        shutil.rmtree(self.shm_dir, ignore_errors=True)
                        self.shm_dir = None


def scratch_targets(res: Results, add) -> None:
    """The issue's targets for the scratch directory, same run."""
    for key, need, lim in (("seq_w", "≥ 2", 2.0), ("rand_r", "≥ 1", 1.0), ("rand_w", "≥ 1", 1.0)):
        label, unit = WL[key][:2]
        h, g = res.med(G, label, SCRATCH_HPCS), res.med(G, label, GOCRYPTFS)
        r = None if h is None or g is None or g == 0 else h / g
        add(f"{label}: hpcs --scratch {need} × gocryptfs", f"{fmt(h, unit)} vs {fmt(g, unit)} {unit}",
            r, need, lambda x, lim=lim: x >= lim)


def render_scratch(res: Results, info: dict, table) -> list[str]:
    """The report's section on the scratch directory (empty if not measured)."""
    seen = [s for s in SYSTEMS if any((G, WL[k][0], s) in res.units for k in WL)]
    if not seen:
        return []
    L = ["### Encrypted scratch directory (read-write)", ""]
    L.append(f"fio, psync, one job, O_DIRECT, one {human_bytes(info.get('scratch_bytes', 0))} file: "
             "written sequentially in 1 MiB requests, read back, then random 4 KiB reads and "
             f"writes over it for {info['rand_runtime']:g} s each; a fresh directory (and mount) "
             "for every system and repetition. *hpcs --scratch* stores AES-256-GCM blocks in a "
             "nameless file on the work dir's disk, gocryptfs its ciphertext files there; both "
             "go through the host's page cache (nothing is fsynced: scratch needs no "
             "durability). *plain directory* is the same disk without FUSE (O_DIRECT reaches "
             "the disk), *tmpfs* is memory. Before each sequential write the page cache it "
             "fills is touched once (a VM pays a fault on memory it has not used lately). "
             "CPU = the daemon's user + system seconds per GB moved.")
    L.append("")
    hdr = ["system"] + [f"{WL[k][0].removeprefix('scratch: ')} ({WL[k][1]})" for k in WL]
    hdr += ["daemon CPU s/GB, seq write", "daemon CPU s/GB, seq read"]
    rows = []
    for s in seen:
        r = [s] + [cell(res, G, WL[k][0], s) for k in WL]
        r += [cell(res, G_CPU, cpu_label(k), s) if (G_CPU, cpu_label(k), s) in res.units else "—"
              for k in ("seq_w", "seq_r")]
        rows.append(r)
    L.append(table(hdr, rows))
    L.append("")
    L.append("**hpcs --scratch ÷ each system** (medians; above 1 means hpcs is faster):")
    L.append("")
    rows = [[s] + [ratio(res.med(G, WL[k][0], SCRATCH_HPCS), res.med(G, WL[k][0], s)) for k in WL]
            for s in seen if s != SCRATCH_HPCS]
    L.append(table(["hpcs --scratch ÷"] + [WL[k][0].removeprefix("scratch: ") for k in WL], rows))
    L.append("")
    return L
