#!/usr/bin/env python3
"""Concurrent Vault key releases for tools/slurm/test.sh and bench.sh.

Starts one `hpcs-mount ARCHIVE MOUNTPOINT --vault --spiffe-socket S -v --
sha256sum MOUNTPOINT/FILE` per entry of a JSON spec (a list of objects with
archive, mountpoint, socket, file, want = the expected sha256), all at once,
each as a simulated node with its own SPIFFE agent socket. For each it
records the exit status, the time from its start to hpcs-mount's "released by
Vault to ID" line (the release latency: SVID, login, read, token revocation)
and to its exit, the SPIFFE ID the key was released to, whether the file
read through the mount has the expected hash, and how often it retried
(hpcs-mount's "retrying in" notices). A process still running after
--timeout seconds is killed and reported as hung (its mount detached).

Prints a JSON report on stdout ({"results": [...], "summary": {...}}) and a
one-line summary on stderr. Exit code 0 (the caller judges the report), 2 on
bad usage.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

RELEASED = re.compile(r"released by Vault to (spiffe://[^ ;]+)")


def percentile(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def run_one(i, job, args, out):
    os.makedirs(job["mountpoint"], exist_ok=True)
    argv = [args.hpcs_mount, job["archive"], job["mountpoint"], "--vault",
            "--spiffe-socket", "unix://" + job["socket"], "-v"] + args.extra + \
           ["--", "sha256sum", os.path.join(job["mountpoint"], job["file"])]
    t0 = time.monotonic()
    wall0 = time.time()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    rec = {"i": i, "start": wall0, "rc": None, "release_s": None, "total_s": None, "spiffe_id": None,
           "hash_ok": False, "hung": False, "retries": 0, "first_retry": None,
           "stderr_tail": []}
    timer = threading.Timer(args.timeout, lambda: (rec.update(hung=True), p.kill()))
    timer.start()
    for raw in p.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        m = RELEASED.search(line)
        if m and rec["release_s"] is None:
            rec["release_s"] = time.monotonic() - t0
            rec["spiffe_id"] = m.group(1)
        elif "retrying in" in line:
            rec["retries"] += 1
            rec["first_retry"] = rec["first_retry"] or line
        elif "info:" not in line:
            rec["stderr_tail"] = (rec["stderr_tail"] + [line])[-3:]
    stdout = p.stdout.read().decode("utf-8", "replace")
    rec["rc"] = p.wait()
    rec["total_s"] = time.monotonic() - t0
    timer.cancel()
    rec["hash_ok"] = stdout.split()[:1] == [job["want"]]
    if rec["hung"]:
        subprocess.run(["fusermount3", "-u", "-z", job["mountpoint"]],
                       stderr=subprocess.DEVNULL, check=False)
    out[i] = rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hpcs-mount", required=True)
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--extra", action="append", default=[],
                    help="extra hpcs-mount argument (repeatable)")
    ap.add_argument("spec")
    args = ap.parse_args()
    with open(args.spec) as f:
        jobs = json.load(f)
    out = [None] * len(jobs)
    threads = [threading.Thread(target=run_one, args=(i, j, args, out)) for i, j in enumerate(jobs)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    rel = [r["release_s"] for r in out if r["release_s"] is not None]
    tot = [r["total_s"] for r in out]
    codes = {}
    for r in out:
        codes[str(r["rc"])] = codes.get(str(r["rc"]), 0) + 1
    summary = {
        "n": len(out),
        "ok": sum(1 for r in out if r["rc"] == 0 and r["hash_ok"]),
        "exit_codes": codes,
        "hung": sum(1 for r in out if r["hung"]),
        "retried": sum(1 for r in out if r["retries"]),
        "released": len(rel),
        "release_p50_s": percentile(rel, 50) if rel else None,
        "release_p99_s": percentile(rel, 99) if rel else None,
        "release_max_s": max(rel) if rel else None,
        "total_max_s": max(tot) if tot else None,
        "wall_s": wall,
    }
    json.dump({"results": out, "summary": summary}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    fmt = lambda x: "-" if x is None else f"{x:.3f}s"
    print(f"vault_load: {summary['n']} mounts: {summary['ok']} ok, exit codes {codes}, "
          f"{summary['hung']} hung, {summary['retried']} retried; release p50 {fmt(summary['release_p50_s'])} "
          f"p99 {fmt(summary['release_p99_s'])} max {fmt(summary['release_max_s'])}; "
          f"slowest mount {fmt(summary['total_max_s'])}; wall {wall:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
