"""The systems compared (hpcs-mount variants with their ceilings, gocryptfs,
squashfuse_ll, the page cache) and their names in the report; mounting and
unmounting them; setting up the peers (gocryptfs directory, squashfs image)
and the age identity. `Systems` is a part of `bench.Bench`: it uses the
run's settings (`self.a`), paths and `self.res`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from results import Results
from util import (BenchError, human_bytes, is_mounted, log, mountpoints, pid_by_mountpoint,
                  reap, run, wait_gone, wait_mounted)

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


def hot_systems(res: Results) -> list[str]:
    """Systems of the hot reads in a fixed order: hpcs variants, their null
    ceilings, peers."""
    canon = ([hpcs_label(k) for k, _, _ in HPCS_VARIANTS] + [nocrypt_label(k) for k in NOCRYPT]
             + [null_label(k) for k, _, _ in HPCS_VARIANTS] + [GOCRYPTFS, SQUASHFUSE, PLAIN])
    seen = list(dict.fromkeys(s for (g, w, s) in res.order if g == "hot"))
    return sorted(seen, key=lambda s: canon.index(s) if s in canon else len(canon))


class Mount:
    def __init__(self, kind: str, path: Path, pid: int | None):
        self.kind, self.path, self.pid = kind, path, pid


class Systems:
    """Mounting, unmounting and setting up the systems compared."""

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

    def setup_keys(self) -> None:
        run(["age-keygen", "-o", str(self.ident)])
        self.recipient = run(["age-keygen", "-y", str(self.ident)],
                             stdout=subprocess.PIPE).stdout.strip()
        self.gc_pass.write_text(os.urandom(16).hex() + "\n")
        self.gc_pass.chmod(0o600)

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
