"""What is measured: fio's hot reads, the latency shaper, time to first
byte, pack throughput, the small-file tree, and generating the data they
read. `Workloads` is a part of `bench.Bench` (one method per phase); it uses
the run's settings (`self.a`), paths, mounts (`systems.Systems`) and records
into `self.res`."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from results import fmt
from systems import (GOCRYPTFS, HPCS, HPCS_VARIANTS, NOCRYPT, PLAIN, PLAIN_COLD, SAME_CEILING,
                     SQUASHFUSE, hpcs_label, nocrypt_label, null_label)
from util import (GiB, KiB, MiB, BenchError, daemon_cpu_s, drop_caches, human_bytes, is_mounted,
                  log, pread1, prefault, read_all, run, timed, vm_hwm_mib, warm, warm_programs)

# hot workloads: key -> (label, unit)
HOT = {
    "seq_buf": ("seq read 1M, buffered", "GB/s"),
    "seq_dio": ("seq read 1M, O_DIRECT", "GB/s"),
    "rand1": ("random 4K O_DIRECT, 1 job", "IOPS"),
    "rand2": ("random 4K O_DIRECT, 2 jobs", "IOPS"),
}
RSS_HOT = "daemon peak RSS (VmHWM) after the hot reads"
# units of the daemon's CPU time (group "cpu")
CPU_GB = "s/GB"
CPU_K = "ms/1k reads"


# the plain tools of the "plain" phase: exactly what the page prints
PLAIN_TOOLS = {
    "dd bs=1M": "dd if={f} of=/dev/null bs=1M",
    "fio psync 1M": "fio --name=seq --filename={f} --readonly --rw=read --bs=1M --ioengine=psync",
    "fio psync 1M O_DIRECT": "fio --name=seq --filename={f} --readonly --rw=read --bs=1M "
                             "--ioengine=psync --direct=1",
}
FLOOR_COPY = "copy out of the page cache (pread 1 MiB)"
FLOOR_AEAD = "AES-256-GCM open (hpcs-pack verify, 1 thread, minus pread)"


def plain_gbps(tool: str, out: str) -> float:
    """GB/s from dd's summary ("N bytes ... copied, S s") or fio's READ line
    ("bw=... (N MB/s)")."""
    if tool.startswith("dd"):
        m = re.search(r"(\d+) bytes .* copied, ([\d.e+-]+) s", out)
        if m:
            return int(m.group(1)) / float(m.group(2)) / 1e9
    else:
        m = re.search(r"READ: bw=[^(]*\(([\d.]+)([kMG]?)B/s\)", out)
        if m:
            return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)] / 1e9
    raise BenchError(f"cannot read the throughput of {tool} from: {out[-500:]}")


@dataclass
class Run:
    """One measured run: throughput, IOPS, the daemon's CPU seconds (None
    without a daemon), bytes and reads done."""
    gbps: float
    iops: float
    cpu: float | None
    nbytes: int
    ios: int


class Workloads:
    """The measuring phases of a run."""

    # ---- fio

    def fio(self, path: Path, rw: str, bs: str, direct: bool, *, numjobs=1, runtime=None,
            time_based=False, invalidate=True, pid: int | None = None) -> Run:
        """One fio run; with `pid`, also the CPU time that process (the
        daemon serving `path`) used meanwhile."""
        cmd = ["fio", "--name=b", f"--filename={path}", "--readonly", f"--rw={rw}", f"--bs={bs}",
               f"--direct={int(direct)}", "--ioengine=psync", f"--numjobs={numjobs}",
               "--group_reporting", "--output-format=json", f"--invalidate={int(invalidate)}"]
        if rw == "randread":
            cmd += ["--norandommap", "--randrepeat=0"]
        if runtime:
            cmd.append(f"--runtime={max(1, int(runtime * 1000))}ms")
        if time_based:
            cmd.append("--time_based")
        cpu0 = daemon_cpu_s(pid)
        p = run(cmd, stdout=subprocess.PIPE, timeout=600)
        cpu1 = daemon_cpu_s(pid)
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
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        return Run(r["bw_bytes"] / 1e9, r["iops"], cpu, r["io_bytes"], r["total_ios"])

    def record_cpu(self, group: str, label: str, system: str, r: Run, per_read: bool) -> None:
        """Daemon CPU of run `r`: seconds per GB, or milliseconds per 1000
        reads for random reads."""
        if r.cpu is None:
            return
        if per_read:
            v, unit = r.cpu * 1000 / (r.ios / 1000), CPU_K
        else:
            v, unit = r.cpu / (r.nbytes / 1e9), CPU_GB
        self.res.add(group, label, system, v, unit)

    def hot_workloads(self, f: Path, group: str, system: str, *, runtime: float,
                      seq_cap: float, plain=False, only: tuple[str, ...] = tuple(HOT),
                      pid: int | None = None) -> None:
        """The four fio workloads on file `f`; the plain file is read buffered
        throughout (O_DIRECT cannot be served from the page cache). With the
        daemon's `pid`, its CPU per GB (per 1000 reads) goes to group "cpu"."""
        direct = not plain
        jobs = [
            ("seq_buf", lambda: self.fio(f, "read", "1M", False, runtime=seq_cap,
                                          invalidate=not plain, pid=pid)),
            ("seq_dio", lambda: self.fio(f, "read", "1M", direct, runtime=seq_cap,
                                          invalidate=not plain, pid=pid)),
            ("rand1", lambda: self.fio(f, "randread", "4k", direct, runtime=runtime,
                                        time_based=True, invalidate=not plain, pid=pid)),
            ("rand2", lambda: self.fio(f, "randread", "4k", direct, numjobs=2, runtime=runtime,
                                        time_based=True, invalidate=not plain, pid=pid)),
        ]
        for key, fn in jobs:
            if key not in only:
                continue
            label, unit = HOT[key]
            try:
                r = fn()
            except (BenchError, subprocess.TimeoutExpired) as e:
                self.res.fail(group, label, system, unit, str(e))
                continue
            v = r.gbps if unit == "GB/s" else r.iops
            self.res.add(group, label, system, v, unit)
            extra = ""
            if group == "hot":
                self.record_cpu("cpu", label, system, r, per_read=unit == "IOPS")
                if r.cpu is not None:
                    extra = f", daemon CPU {r.cpu:.2f} s"
            log(f"  {system:32s} {label:28s} {fmt(v, unit)} {unit}{extra}")

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
                        self.hot_workloads(self.mnt / "big.bin", G, name, pid=m.pid,
                                           runtime=self.a.rand_runtime, seq_cap=self.a.seq_cap)
                        hwm = vm_hwm_mib(m.pid)
                        if hwm is not None:
                            self.res.add("rss", RSS_HOT, name, hwm, "MiB")
                    finally:
                        self.unmount(m)
                except (BenchError, subprocess.TimeoutExpired) as e:
                    for key in HOT:
                        self.res.fail(G, HOT[key][0], name, HOT[key][1], str(e))

    def phase_plain(self) -> None:
        """Sequential reads with the plain tools a reader would use (the
        commands in PLAIN_TOOLS, exactly as printed on the page), through
        hpcs (default options), its FUSE-only ceiling and gocryptfs, a fresh
        mount per run with its backing file warm; daemon CPU alongside."""
        G = "plain"
        systems = [(HPCS, self.archive, False), (null_label("default"), self.archive, True),
                   (GOCRYPTFS, "gocryptfs", False)]
        gc_backing = self.gc_big_backing()
        for rep in range(self.a.reps):
            for name, kind, null in (systems if rep % 2 == 0 else systems[::-1]):
                for tool, template in PLAIN_TOOLS.items():
                    try:
                        if kind == "gocryptfs":
                            warm(gc_backing)
                            m = self.mount_gocryptfs()
                        else:
                            warm(kind)
                            m = self.mount_hpcs(kind, [], null=null)
                        try:
                            f = self.mnt / "big.bin"
                            cmd = template.format(f=shlex.quote(str(f)))
                            cpu0 = daemon_cpu_s(m.pid)
                            p = run(["bash", "-c", cmd], stdout=subprocess.PIPE, timeout=600)
                            cpu1 = daemon_cpu_s(m.pid)
                            gbps = plain_gbps(tool, p.stdout + p.stderr)
                        finally:
                            self.unmount(m)
                        self.res.add(G, tool, name, gbps, "GB/s")
                        if cpu0 is not None and cpu1 is not None:
                            self.res.add("plain_cpu", tool, name,
                                         (cpu1 - cpu0) / (self.a.big_size / 1e9), CPU_GB)
                        log(f"  {name:32s} {tool:8s} {gbps:.2f} GB/s")
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        self.res.fail(G, tool, name, "GB/s", str(e))

    def phase_floor(self) -> None:
        """The design's floor per GB, in this run: what a copy out of the page
        cache (pread of the warm archive, 1 MiB at a time) and the AEAD
        (`hpcs-pack verify` on one thread: pread plus authenticated
        decryption of every chunk, minus the pread) cost on one core; added
        to the FUSE-only ceiling's daemon CPU it is the floor of issue 14."""
        G = "floor"
        size = self.archive.stat().st_size
        warm(self.archive)
        for _ in range(self.a.reps):
            buf = bytearray(MiB)
            fd = os.open(self.archive, os.O_RDONLY)
            try:
                t0 = time.thread_time()
                off = 0
                while n := os.preadv(fd, [buf], off):
                    off += n
                copy = (time.thread_time() - t0) / (off / 1e9)
            finally:
                os.close(fd)
            self.res.add(G, FLOOR_COPY, "one core", copy, CPU_GB)
            env = dict(os.environ, RAYON_NUM_THREADS="1")
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            run([self.a.hpcs_pack, "verify", str(self.archive), "-i", str(self.ident), "-q"],
                env=env, timeout=3600)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            verify = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (size / 1e9)
            self.res.add(G, FLOOR_AEAD, "one core", max(verify - copy, 0.0), CPU_GB)
            log(f"  floor: pread {copy:.3f} s/GB, verify {verify:.3f} s/GB")

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
        """Read every file of the small-file tree on a fresh mount: cold
        (caches dropped: what a first pass costs, mostly the disk) and warm
        (backing store in the page cache: what every file costs the FUSE
        path, round trips per file). The warm run also measures hpcs
        --page-cache, the mode trade-off of docs/mount.md."""
        G = "small"
        cold = f"read all {self.n_small} small files (1-16 KiB), cold"
        warm_wl = f"read all {self.n_small} small files (1-16 KiB), warm"
        systems = [(HPCS, "hpcs", [], False), (hpcs_label("pc"), "hpcs", ["--page-cache"], False),
                   (null_label("default"), "hpcs", [], True),
                   (GOCRYPTFS, "gocryptfs", [], False), (SQUASHFUSE, "squashfuse", [], False),
                   (PLAIN_COLD, "plain", [], False)]
        backing = {"hpcs": self.archive, "gocryptfs": self.gc_cipher, "squashfuse": self.sqfs,
                   "plain": self.src / "small"}
        for rep in range(self.a.reps):
            for name, kind, extra, null in (systems if rep % 2 == 0 else systems[::-1]):
                for wl in (cold, warm_wl):
                    if wl == cold and extra:
                        continue  # the mode trade-off is measured warm only
                    try:
                        if wl == cold:
                            drop_caches()
                        else:
                            warm(backing[kind])
                        m = None
                        if kind == "hpcs":
                            m = self.mount_hpcs(self.archive, extra, null=null)
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
                        log(f"  small files {wl.rsplit(', ', 1)[1]} {name}: {dt:.2f} s "
                            f"({self.n_small / dt:.0f} files/s)")
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        self.res.fail(G, wl, name, "s", str(e))
