"""What is measured: fio's hot reads, the latency shaper, time to first
byte, pack throughput, the small-file tree, and generating the data they
read. `Workloads` is a part of `bench.Bench` (one method per phase); it uses
the run's settings (`self.a`), paths, mounts (`systems.Systems`) and records
into `self.res`."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from results import fmt
from systems import (GOCRYPTFS, HPCS, HPCS_VARIANTS, NOCRYPT, PLAIN, PLAIN_COLD, SAME_CEILING,
                     SQUASHFUSE, hpcs_label, nocrypt_label, null_label)
from util import (GiB, KiB, MiB, BenchError, drop_caches, human_bytes, is_mounted, log, pread1,
                  prefault, read_all, run, timed, vm_hwm_mib, warm, warm_programs)

# hot workloads: key -> (label, unit)
HOT = {
    "seq_buf": ("seq read 1M, buffered", "GB/s"),
    "seq_dio": ("seq read 1M, O_DIRECT", "GB/s"),
    "rand1": ("random 4K O_DIRECT, 1 job", "IOPS"),
    "rand2": ("random 4K O_DIRECT, 2 jobs", "IOPS"),
}
RSS_HOT = "daemon peak RSS (VmHWM) after the hot reads"


class Workloads:
    """The measuring phases of a run."""

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
