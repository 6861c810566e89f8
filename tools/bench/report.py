"""The report: the Markdown block (machine, targets of issues 5 and 13, one table
per group of measurements) written between the markers of a page, the
chart (chart.py) and the raw results as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chart import chart
from results import Results, cell, fmt, ratio
from c4gh import render_c4gh
from scratch import render_scratch, scratch_targets
from systems import (GOCRYPTFS, HPCS, HPCS_VARIANTS, NOCRYPT, SQUASHFUSE, hot_systems, hpcs_label,
                     nocrypt_label, null_label, variant_label)
from util import GiB, REPO, human_bytes, log, target_bench_dir
from workloads import CPU_GB, CPU_K, FLOOR_AEAD, FLOOR_COPY, HOT, PLAIN_TOOLS, RSS_HOT

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def verdict(name: str, measured: str, r: float | None, need: str,
            ok) -> tuple[str, str, str, str, str]:
    """One row of a targets table: the ratio `r` judged by `ok`."""
    if r is None:
        return (name, measured, "—", need, "n/a")
    return (name, measured, f"{r:.2f}", need, "PASS" if ok(r) else "**MISS**")


def quot(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def targets(res: Results, budget_mib: float, lat2: str | None) -> list[tuple[str, str, str, str, str]]:
    """(target, measured, ratio, required, PASS/MISS) rows of the issue's targets."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(name, measured, r, need, ok):
        rows.append(verdict(name, measured, r, need, ok))

    def m(g, w, s):
        return res.med(g, w, s)

    q = quot

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
    scratch_targets(res, add)
    if lat2:
        base = f"{HPCS}, +0 ms per backing read"
        for key in ("seq_buf", "seq_dio"):
            wl, u = HOT[key]
            a, b = m("latency", wl, lat2), m("latency", wl, base)
            add(f"{wl} with 2 ms per backing read ≥ 0.8 × no latency",
                f"{fmt(a, u)} vs {fmt(b, u)} GB/s", q(a, b), "≥ 0.8", lambda r: r >= 0.8)
    return rows


def floor(res: Results, wl: str) -> float | None:
    """The issue-14 floor of workload `wl` in s/GB: the FUSE-only ceiling's
    daemon CPU plus one copy out of the page cache plus the AEAD."""
    parts = [res.med("cpu", wl, null_label("default")), res.med("floor", FLOOR_COPY, "one core"),
             res.med("floor", FLOOR_AEAD, "one core")]
    return None if None in parts else sum(parts)


def targets14(res: Results) -> list[tuple[str, str, str, str, str]]:
    """(target, measured, ratio, required, PASS/MISS) rows of issue 14: CPU
    per byte, plain-tool throughput, random reads, small files."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(name, measured, r, need, ok):
        rows.append(verdict(name, measured, r, need, ok))

    q = quot

    def f3(v):
        return "—" if v is None else f"{v:.3f}"

    for key in ("seq_buf", "seq_dio"):
        wl = HOT[key][0]
        h, g = res.med("cpu", wl, HPCS), res.med("cpu", wl, GOCRYPTFS)
        fl = floor(res, wl)
        add(f"{wl}: daemon CPU ≤ 0.45 s/GB", f"{f3(h)} s/GB", q(h, 0.45), "≤ 1 (÷ 0.45)",
            lambda r: r <= 1)
        add(f"{wl}: daemon CPU ≤ 1.15 × floor (FUSE-only + copy + AEAD)",
            f"{f3(h)} vs {f3(fl)} s/GB", q(h, fl), "≤ 1.15", lambda r: r <= 1.15)
        add(f"{wl}: daemon CPU ≤ 0.4 × gocryptfs's", f"{f3(h)} vs {f3(g)} s/GB", q(h, g), "≤ 0.4",
            lambda r: r <= 0.4)
    for tool in PLAIN_TOOLS:
        h, n, g = (res.med("plain", tool, s) for s in (HPCS, null_label("default"), GOCRYPTFS))
        add(f"`{tool}` sequential: hpcs ≥ 0.7 × FUSE-only ceiling",
            f"{fmt(h, 'GB/s')} vs {fmt(n, 'GB/s')} GB/s", q(h, n), "≥ 0.7", lambda r: r >= 0.7)
        add(f"`{tool}` sequential: hpcs ≥ 2.5 × gocryptfs",
            f"{fmt(h, 'GB/s')} vs {fmt(g, 'GB/s')} GB/s", q(h, g), "≥ 2.5", lambda r: r >= 2.5)
    for key, need in (("rand1", 1.0), ("rand2", 1.5)):
        wl = HOT[key][0]
        h, nc = res.med("cpu", wl, HPCS), res.med("cpu", wl, nocrypt_label("default"))
        add(f"{wl}: daemon CPU per read ≤ 1.3 × no-crypto ceiling's",
            f"{fmt(h, CPU_K)} vs {fmt(nc, CPU_K)} ms per 1000 reads", q(h, nc), "≤ 1.3",
            lambda r: r <= 1.3)
        h, g = res.med("hot", wl, HPCS), res.med("hot", wl, GOCRYPTFS)
        add(f"{wl}: hpcs ≥ {need:g} × gocryptfs", f"{fmt(h, 'IOPS')} vs {fmt(g, 'IOPS')} IOPS",
            q(h, g), f"≥ {need:g}", lambda r, need=need: r >= need)
    for sw in dict.fromkeys(w for (gg, w, s) in res.order if gg == "small"):
        h, g, sq = (res.med("small", sw, s) for s in (HPCS, GOCRYPTFS, SQUASHFUSE))
        add(f"{sw}: hpcs ≤ 1.1 × squashfuse_ll (time)", f"{fmt(h, 's')} vs {fmt(sq, 's')}",
            q(h, sq), "≤ 1.1", lambda r: r <= 1.1)
        add(f"{sw}: hpcs ≤ 0.6 × gocryptfs (time)", f"{fmt(h, 's')} vs {fmt(g, 's')}",
            q(h, g), "≤ 0.6", lambda r: r <= 0.6)
    return rows


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if c == "r" else "---" for c in align]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def cpu_section(res: Results, L: list[str]) -> None:
    """Daemon CPU per GB (per 1000 random reads) next to throughput, the
    floor, and the plain-tool runs with their commands."""
    cpu_sys = [s for s in hot_systems(res) if any(("cpu", HOT[k][0], s) in res.values
                                                   for k in HOT)]
    if cpu_sys:
        L.append("### Daemon CPU per byte")
        L.append("")
        L.append("CPU time (user + system, all threads, from `/proc/PID/stat`) of the daemon "
                 "serving the mount during each fio run of the table above, per GB read "
                 "(sequential) or per 1000 reads (random), with the run's throughput in "
                 "brackets: what the mount takes from the job's cores.")
        L.append("")
        hdr = ["system"] + [f"{HOT[k][0]} ({CPU_GB if HOT[k][1] == 'GB/s' else 'ms per 1000 reads'})"
                            for k in HOT]
        rows = []
        for s in cpu_sys:
            r = [s]
            for k in HOT:
                wl, unit = HOT[k]
                c = res.med("cpu", wl, s)
                t = res.med("hot", wl, s)
                r.append("—" if c is None else
                         f"{fmt(c, CPU_GB if unit == 'GB/s' else CPU_K)} ({fmt(t, unit)})")
            rows.append(r)
        L.append(table(hdr, rows))
        L.append("")
    copy = res.med("floor", FLOOR_COPY, "one core")
    aead = res.med("floor", FLOOR_AEAD, "one core")
    if copy is not None and aead is not None:
        L.append("**The floor** (issue 14): the FUSE-only ceiling's daemon CPU (zeros, no "
                 "archive read) plus what the design cannot avoid per byte, measured in this run "
                 f"on one core: a copy out of the page cache ({copy:.3f} s/GB, `pread` of the warm "
                 f"archive 1 MiB at a time) and AES-256-GCM authenticated decryption "
                 f"({aead:.3f} s/GB, `hpcs-pack verify` on one thread minus that copy).")
        L.append("")
        rows = []
        for k in ("seq_buf", "seq_dio"):
            wl = HOT[k][0]
            fl, h = floor(res, wl), res.med("cpu", wl, HPCS)
            n = res.med("cpu", wl, null_label("default"))
            nc = res.med("cpu", wl, nocrypt_label("default"))
            rows.append([wl, fmt(n, CPU_GB), fmt(fl, CPU_GB), fmt(nc, CPU_GB), fmt(h, CPU_GB),
                         ratio(h, fl)])
        L.append(table(["workload", "FUSE-only ceiling", "floor", "no-crypto ceiling", "hpcs",
                        "hpcs ÷ floor"], rows))
        L.append("")
    tools = [t for t in PLAIN_TOOLS if any(g == "plain" and w == t for (g, w, s) in res.order)]
    if tools:
        L.append("### Plain tools")
        L.append("")
        L.append("The same large file read once from start to end by the commands below, exactly "
                 "as a reader would rerun them (`FILE` = `MNT/big.bin`), on a fresh mount with "
                 "its backing file warm; daemon CPU per GB in brackets.")
        L.append("")
        for t in tools:
            L.append(f"    {PLAIN_TOOLS[t].format(f='FILE')}")
        L.append("")
        systems = list(dict.fromkeys(s for (g, w, s) in res.order if g == "plain"))
        rows = []
        for t in tools:
            r = [f"`{t}`"]
            for s in systems:
                c = res.med("plain_cpu", t, s)
                r.append(cell(res, "plain", t, s) + ("" if c is None else f" ({fmt(c, CPU_GB)})"))
            r += [ratio(res.med("plain", t, HPCS), res.med("plain", t, s))
                  for s in systems if s != HPCS]
            rows.append(r)
        L.append(table(["command"] + [f"{s} GB/s" for s in systems]
                       + [f"hpcs ÷ {s}" for s in systems if s != HPCS], rows))
        L.append("")


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
    L.append("### Performance targets (issues 5 and 13)")
    L.append("")
    L.append(table(["target", "measured (medians)", "ratio", "required", "result"],
                   [list(r) for r in targets(res, info["cache_budget_mib"], lat2)], "llrrl"))
    L.append("")
    if any(g == "cpu" for (g, w, s) in res.order):
        L.append("### Performance targets (issue 14: CPU per byte, plain tools, small files)")
        L.append("")
        L.append(table(["target", "measured (medians)", "ratio", "required", "result"],
                       [list(r) for r in targets14(res)], "llrrl"))
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
    cpu_section(res, L)

    L.extend(render_scratch(res, info, table))
    L.extend(render_c4gh(res, info, table))

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
    sws = list(dict.fromkeys(w for (g, w, s) in res.order if g == "small"))
    if sws:
        n = info.get("small_files", 0)
        L.append(f"### {n} small files")
        L.append("")
        L.append("`find DIR -type f -print0 | xargs -0 cat > /dev/null` on a fresh mount, *cold* "
                 "after dropping the caches (the backing store is read from the disk), *warm* "
                 "with the backing store (archive, gocryptfs directory, squashfs image, the "
                 "tree itself) in the page cache: there the time is what each file costs the "
                 "FUSE path.")
        L.append("")
        rows = []
        for sw in sws:
            for s in dict.fromkeys(s for (g, w, s) in res.order if g == "small" and w == sw):
                md = res.med("small", sw, s)
                rows.append([sw.rsplit(", ", 1)[1], s, cell(res, "small", sw, s),
                             f"{n / md:,.0f}" if md else "—",
                             ratio(md, res.med("small", sw, HPCS))])
        L.append(table(["", "system", "time", "files/s", "time ÷ hpcs"], rows, "llrrr"))
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
