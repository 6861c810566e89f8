"""The PNG chart of a run (gnuplot): hot reads, the latency shaper, small
files, pack and time to first byte, medians with min-max bars."""

from __future__ import annotations

import shutil
import statistics
import subprocess
from pathlib import Path

from results import Results
from systems import (GOCRYPTFS, HPCS, PLAIN, PLAIN_COLD, SQUASHFUSE, hot_systems, hpcs_label,
                     nocrypt_label, null_label)
from util import human_bytes, log
from workloads import HOT

SHORT = {
    HPCS: "hpcs", "hpcs --direct-io": "hpcs dio", "hpcs --page-cache": "hpcs pc",
    "hpcs --readahead 0": "hpcs ra0", "hpcs --readahead 2M": "hpcs ra2M",
    hpcs_label("c16k"): "hpcs 16K",
    nocrypt_label("default"): "no-crypto", nocrypt_label("c16k"): "no-crypto 16K",
    null_label("default"): "null", null_label("dio"): "null dio", null_label("pc"): "null pc",
    null_label("ra0"): "null ra0", null_label("ra2m"): "null ra2M",
    GOCRYPTFS: "gocryptfs", SQUASHFUSE: "squashfuse", PLAIN: "page cache",
    PLAIN_COLD: "plain fs", "hpcs-pack pack": "hpcs-pack", "tar -c | age -e": "tar|age",
}


def chart(res: Results, out_png: Path, tmp: Path) -> bool:
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no chart")
        return False
    tmp.mkdir(parents=True, exist_ok=True)

    def stats(g, w, s, scale=1.0):
        v = res.values.get((g, w, s)) or [0.0]
        return statistics.median(v) * scale, min(v) * scale, max(v) * scale

    def write(name, rows):
        p = tmp / name
        p.write_text("\n".join("\t".join(str(c) for c in r) for r in rows) + "\n")
        return p

    hot = hot_systems(res)
    if not hot:
        log("no hot-cache measurements (the run stopped before them): no chart")
        return False
    seq = write("seq.dat", [[SHORT.get(s, s), *stats("hot", HOT["seq_buf"][0], s),
                             *stats("hot", HOT["seq_dio"][0], s)] for s in hot])
    rnd = write("rand.dat", [[SHORT.get(s, s), *stats("hot", HOT["rand1"][0], s, 1e-3),
                              *stats("hot", HOT["rand2"][0], s, 1e-3)] for s in hot])
    lat_ms = list(dict.fromkeys(s.split(", +", 1)[1].split(" ")[0]
                                for (g, w, s) in res.order if g == "latency"))

    def lat_sys(variant, ms):
        return f"{variant}, +{ms} ms per backing read"
    ra2 = "hpcs --readahead 2M"
    lat = write("lat.dat", [[ms,
                             stats("latency", HOT["seq_buf"][0], lat_sys(HPCS, ms))[0],
                             stats("latency", HOT["seq_dio"][0], lat_sys(HPCS, ms))[0],
                             stats("latency", HOT["rand2"][0], lat_sys(HPCS, ms), 1e-3)[0],
                             stats("latency", HOT["seq_buf"][0], lat_sys(ra2, ms))[0],
                             stats("latency", HOT["seq_dio"][0], lat_sys(ra2, ms))[0]]
                            for ms in lat_ms] or [[0, 0, 0, 0, 0, 0]])
    sw = next((w for (g, w, s) in res.order if g == "small"), None)
    n = res.info.get("small_files", 1)
    small_rows = []
    if sw:
        for s in dict.fromkeys(s for (g, w, s) in res.order if g == "small"):
            v = res.values.get(("small", sw, s)) or []
            if v:
                small_rows.append([SHORT.get(s, s), n / statistics.median(v) / 1000,
                                   n / max(v) / 1000, n / min(v) / 1000])
    small = write("small.dat", small_rows or [["none", 0, 0, 0]])
    pw = list(dict.fromkeys(w for (g, w, s) in res.order if g == "pack"))
    pack_rows = []
    for w in pw:
        where = "disk" if "disk" in w else "memory"
        for s in dict.fromkeys(s for (g, ww, s) in res.order if g == "pack" and ww == w):
            lab = SHORT.get(s, "gocryptfs cp" if "gocryptfs" in s else
                            "mksquashfs" if "mksquashfs" in s else s)
            pack_rows.append([f"{lab} ({where})", *stats("pack", w, s)])
    pack = write("pack.dat", pack_rows or [["none", 0, 0, 0]])
    tw = next((w for (g, w, s) in res.order if g == "ttfb"), None)
    ttfb_rows = []
    if tw:
        for s in dict.fromkeys(s for (g, w, s) in res.order if g == "ttfb"):
            lab = ("hpcs daemon" if "daemon" in s else "hpcs exec" if "exec" in s
                   else "age -d | tar")
            if res.values.get(("ttfb", tw, s)):
                ttfb_rows.append([lab, *stats("ttfb", tw, s)])
    ttfb = write("ttfb.dat", ttfb_rows or [["none", 1, 1, 1]])
    info = res.info
    title = (f"hpcs benchmarks ({info['mode']} mode, {info['date']}, "
             f"{info['machine']['cores']} cores, median and min-max of {info['reps']} runs)")
    script = f"""
set terminal pngcairo size 1500,1350 font "sans,10" noenhanced
set output '{out_png}'
set datafile separator "\\t"
set multiplot layout 3,2 title "{title}"
set style fill solid 0.8 border -1
set grid ytics
set key top left
set xtics rotate by -35 left nomirror
set style data histograms
set style histogram errorbars gap 1 lw 1
set yrange [0:*]
set title "Sequential read 1 MiB (GB/s)"
plot '{seq}' using 2:3:4:xtic(1) title 'buffered', '' using 5:6:7 title 'O_DIRECT'
set title "Random 4 KiB O_DIRECT (kIOPS, log scale)"
set logscale y
set yrange [*:*]
plot '{rnd}' using 2:3:4:xtic(1) title '1 job', '' using 5:6:7 title '2 jobs'
set title "hpcs with latency per backing read (Lustre-like)"
set key top right
unset logscale y
set yrange [0:*]
set style data linespoints
set xtics norotate
set xlabel "ms per backing read"
set ylabel "GB/s"
set y2label "kIOPS"
set y2tics
set y2range [0:*]
plot '{lat}' using 1:2 title 'seq buffered (GB/s)' lw 2, '' using 1:3 title 'seq O_DIRECT (GB/s)' lw 2, '' using 1:5 title 'seq buffered, --readahead 2M' lw 2 dt 2, '' using 1:6 title 'seq O_DIRECT, --readahead 2M' lw 2 dt 2, '' using 1:4 axes x1y2 title 'random 4K, 2 jobs (kIOPS, right axis)' lw 2
unset y2tics
unset y2label
unset xlabel
unset ylabel
set style data histograms
set style histogram errorbars gap 1 lw 1
set xtics rotate by -35 left nomirror
set title "{n} small files, cold (thousand files/s)"
plot '{small}' using 2:3:4:xtic(1) notitle
set title "Pack (GB/s of source)"
plot '{pack}' using 2:3:4:xtic(1) notitle
set title "Time to first byte, {human_bytes(info.get('ttfb_bytes', 0))} dataset (s, log scale)"
set logscale y
set yrange [*:*]
plot '{ttfb}' using 2:3:4:xtic(1) notitle
unset multiplot
"""
    sp = tmp / "chart.gp"
    sp.write_text(script)
    p = subprocess.run([gp, str(sp)], stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(f"gnuplot failed: {p.stderr.strip()[:1000]}")
        return False
    return out_png.exists()
