#!/usr/bin/env python3
"""Where a FUSE daemon's CPU goes, by kind of work, from `perf record` files.

    hpcs-mount ARCHIVE MNT -i ID --daemon --pidfile PIDFILE
    perf record -e cpu-clock -F 1999 -g -a -o dd.data &   # system-wide (see below)
    dd if=MNT/FILE of=/dev/null bs=1M; kill -INT %1
    tools/bench/perf_breakdown.py dd.data:$(cat PIDFILE) [more.data:PID ...] [--label A ...]

prints one Markdown table: a row per kind of work (the AEAD, the copy out of
the page cache, the FUSE transport, copies in user space, page faults,
locking, scheduling and wake-ups, allocation, the read path's own code,
system call entry and exit, the rest) and a column per recording, in percent
of the samples of process PID (all its threads) in that recording; `FILE`
without `:PID` counts every sample. `cpu-clock` works in a VM without
hardware counters. Record system-wide (`-a`) and filter here by PID: `perf
record -p PID` on this machine (perf 6.1, kernel 6.18) woke perf up once per
few samples and slowed a `dd` through the mount 5-20 fold.

A sample's kind comes from its innermost frame (the rules below, first match
wins); a copy in the kernel is split by the system call it runs under
(`preadv` of the archive or the FUSE device's `writev`/`read`).
`--symbols` lists the top symbols of each kind instead, to check them.
Python 3.11 standard library only; needs `perf` (Debian linux-perf).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

AEAD = "AES-256-GCM (aws-lc)"
ARCHIVE_COPY = "copy out of the page cache (preadv of the archive)"
FUSE = "FUSE transport (device read/writev, reply copy, pinning user pages)"

# (kind, regular expression over the innermost symbol), first match wins
KINDS = [
    (AEAD, r"aes_gcm|gcm_|ghash|aesni|aes_hw|aws_lc_.*(aes|gcm|ghash)|aead_aes_gcm"),
    (ARCHIVE_COPY, r"copy_page_to_iter|filemap_read|filemap_get|folio_mark_accessed"),
    (FUSE, r"fuse_|gup_|get_user_pages|__iov_iter_get_pages|iov_iter_extract|"
     r"iov_iter_get_pages|unpin_user|pin_user|follow_page|folio_unlock|__get_user|"
     r"_copy_from_iter"),
    ("copies in user space", r"__mem(move|cpy)_|^memcpy$|^memmove$"),
    ("page faults (first touch of memory)",
     r"page_fault|clear_page|handle_mm_fault|do_anonymous_page|__handle_mm|alloc_pages|"
     r"folio_alloc|mm_fault|lru_add|rmqueue|zap_|free_unref|do_wp_page|pte_|mlock_|"
     r"get_page_from_freelist|mem_cgroup"),
    ("locking (futex, mutexes, spinlocks)",
     r"futex|Mutex|lock_contended|__lll_lock|pthread_mutex|_raw_spin_lock|"
     r"queued_spin|RwLock"),
    ("scheduling and wake-ups (context switches, yields, condvars)",
     r"finish_task_switch|__schedule|schedule$|try_to_wake_up|wake_up|sched_yield|"
     r"_raw_spin_unlock_irq|enqueue_|dequeue_|select_task_rq|update_curr|psi_|"
     r"__switch_to|ttwu|sched_|Condvar|pick_next|update_load|rseq"),
    ("allocation (malloc, free, the slot arena)",
     r"malloc|^free$|cfree|_int_|realloc|SlotArena|__rust_(alloc|dealloc)"),
    ("the read path and cache of hpcs (lookups, claims, bookkeeping)", r"hpcs::|fuser::"),
    ("system call entry and exit", r"^syscall$|entry_SYSCALL|irqentry|srso|exit_to_user|"
     r"do_syscall|syscall_exit|__x64_sys|fdget|__GI___(readv|writev|read|preadv)"),
]
ORDER = [n for n, _ in KINDS] + ["other"]


def stacks(path: str, pid: int | None):
    """Yields (innermost symbol, whole call chain) per sample of `pid`."""
    p = subprocess.run(["perf", "script", "-i", path, "-F", "pid,ip,sym"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    for block in p.stdout.split("\n\n"):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or not lines[0].isdigit():
            continue
        if pid is not None and int(lines[0]) != pid:
            continue
        frames = [ln.split(None, 1)[1] if " " in ln else "[unknown]" for ln in lines[1:]]
        yield (frames[0] if frames else "[unknown]"), frames


def kind(sym: str, chain: list[str]) -> str:
    # A kernel copy (_copy_to_iter, rep_movs, __pi_memcpy) belongs to its system call.
    if re.search(r"_copy_to_iter|rep_movs|__pi_memcpy|copy_user", sym):
        calls = " ".join(chain)
        if re.search(r"fuse_", calls):
            return FUSE
        if re.search(r"preadv|filemap_read|pread64", calls):
            return ARCHIVE_COPY
    for name, rx in KINDS:
        if re.search(rx, sym):
            return name
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+", help="perf.data files, each as FILE or FILE:PID")
    ap.add_argument("--label", action="append", default=[], help="column label per file")
    ap.add_argument("--symbols", action="store_true", help="list the top symbols of each kind")
    a = ap.parse_args()
    labels = a.label + a.data[len(a.label):]
    per_sym: list[dict[tuple[str, str], int]] = []
    totals: list[int] = []
    for d in a.data:
        path, _, pid = d.rpartition(":") if re.search(r":\d+$", d) else (d, "", "")
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for sym, chain in stacks(path, int(pid) if pid else None):
            counts[(kind(sym, chain), sym)] += 1
        per_sym.append(counts)
        totals.append(max(1, sum(counts.values())))
    if a.symbols:
        for label, t, n in zip(labels, per_sym, totals):
            print(f"## {label} ({n} samples)")
            for name in ORDER:
                top = sorted(((c, s) for (k, s), c in t.items() if k == name), reverse=True)[:6]
                if top:
                    print(f"{name}: " + ", ".join(f"{s} {100 * c / n:.1f}%" for c, s in top))
        return 0
    print("| kind of work | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name in ORDER:
        cells = []
        for t, n in zip(per_sym, totals):
            c = sum(v for (k, _), v in t.items() if k == name)
            cells.append(f"{100 * c / n:.1f} %")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| samples of the daemon | " + " | ".join(str(n) for n in totals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
