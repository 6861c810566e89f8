#!/usr/bin/env python3
"""Where a FUSE daemon's CPU goes, by kind of work, from `perf record` files.

    perf record -e cpu-clock -F 4999 -g -p $(cat PIDFILE) -o before.data -- sleep 30 &
    fio ... ; kill -INT %1          # one recording per workload and build
    tools/bench/perf_breakdown.py before.data after.data [--label A --label B]

prints one Markdown table: a row per kind of work (the AEAD, the copy out of
the page cache, the FUSE transport, copies in user space, page faults,
scheduling and wake-ups, spinning in a work-stealing pool, the cache's own
bookkeeping, the rest) and a column per recording, in percent of that
recording's samples (`cpu-clock` works in a VM without hardware counters).
Kinds are recognised by symbol name (the rules below, first match wins);
`--symbols` lists the top symbols of each kind instead, to check them.
Python 3.11 standard library only; needs `perf` (Debian linux-perf).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

# (kind, regular expression over the symbol), first match wins
KINDS = [
    ("AES-256-GCM (aws-lc)", r"aes_gcm|gcm_|aesni|aes_hw|aws_lc_.*(aes|gcm|ghash)"),
    ("copy out of the page cache (preadv of the archive)",
     r"^_copy_to_iter$|copy_page_to_iter|filemap_read|filemap_get|folio_mark_accessed"),
    ("FUSE transport (request, reply copy, pinning user pages)",
     r"fuse_|__pi_memcpy|gup_|get_user_pages|__iov_iter_get_pages|iov_iter_extract|"
     r"unpin_user|pin_user|folio_unlock|__get_user|_copy_from_iter"),
    ("copies in user space (cache slot to reply buffer)", r"__mem(move|cpy)_|^memcpy$"),
    ("page faults (first touch of memory)",
     r"page_fault|clear_page|handle_mm_fault|do_anonymous_page|__handle_mm|alloc_pages|"
     r"folio_alloc|mm_fault|lru_add|rmqueue|zap_|free_unref"),
    ("spinning in a work-stealing pool (rayon, sched_yield)",
     r"rayon|crossbeam|sched_yield|do_sched_yield|yield_task"),
    ("scheduling and wake-ups (context switches, futexes)",
     r"finish_task_switch|__schedule|schedule$|futex|try_to_wake_up|wake_up|"
     r"_raw_spin_unlock_irq|pv_queued_spin|enqueue_|dequeue_|select_task_rq|update_curr|"
     r"psi_|__switch_to|ttwu|sched_|Condvar|syscall$|pick_next"),
    ("the cache and read path of hpcs (lookups, claims, locks, allocation)",
     r"hpcs::|malloc|free|_int_|realloc|pthread_mutex|Mutex|__lll_lock"),
    ("system call entry and exit", r"syscall|entry_SYSCALL|irqentry|srso|exit_to_user|"
     r"do_syscall"),
]


def samples(path: str) -> dict[str, float]:
    """Percent of samples per symbol (self time) of one recording."""
    p = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "sym",
                        "--stdio", "-g", "none", "--percent-limit", "0"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
    out: dict[str, float] = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*\S)", line)
        if m:
            out[m.group(2)] = out.get(m.group(2), 0.0) + float(m.group(1))
    return out


def kind(sym: str) -> str:
    for name, rx in KINDS:
        if re.search(rx, sym):
            return name
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+", help="perf.data files")
    ap.add_argument("--label", action="append", default=[], help="column label per file")
    ap.add_argument("--symbols", action="store_true", help="list the top symbols of each kind")
    a = ap.parse_args()
    labels = a.label + a.data[len(a.label):]
    tables = [samples(d) for d in a.data]
    by_kind = []
    for t in tables:
        k: dict[str, float] = defaultdict(float)
        for sym, pct in t.items():
            k[kind(sym)] += pct
        by_kind.append(k)
    if a.symbols:
        for label, t in zip(labels, tables):
            print(f"## {label}")
            for name in [n for n, _ in KINDS] + ["other"]:
                top = sorted(((p, s) for s, p in t.items() if kind(s) == name), reverse=True)[:6]
                if top:
                    print(f"{name}: " + ", ".join(f"{s} {p:.1f}%" for p, s in top))
        return 0
    print("| kind of work | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name in [n for n, _ in KINDS] + ["other"]:
        print(f"| {name} | " + " | ".join(f"{k.get(name, 0.0):.1f} %" for k in by_kind) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
