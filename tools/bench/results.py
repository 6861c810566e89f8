"""Measurements of one run (`Results`, kept as JSON between a run and its
report) and how a value, a median with its range, and a ratio are written."""

from __future__ import annotations

import statistics

from util import log


class Results:
    """Measurements keyed by (group, workload, system); values in the unit's
    base (GB/s, IOPS, seconds, MiB)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], list[float]] = {}
        self.units: dict[tuple[str, str, str], str] = {}
        self.order: list[tuple[str, str, str]] = []
        self.errors: dict[tuple[str, str, str], str] = {}
        self.notes: list[str] = []
        self.info: dict[str, object] = {}

    def add(self, group: str, workload: str, system: str, value: float, unit: str) -> None:
        k = (group, workload, system)
        if k not in self.values:
            self.values[k] = []
            self.units[k] = unit
            self.order.append(k)
        self.values[k].append(float(value))

    def fail(self, group: str, workload: str, system: str, unit: str, err: str) -> None:
        k = (group, workload, system)
        if k not in self.units:
            self.units[k] = unit
            self.order.append(k)
            self.values[k] = []
        self.errors[k] = err
        log(f"FAILED {group} / {workload} / {system}: {err}")

    def med(self, group: str, workload: str, system: str) -> float | None:
        v = self.values.get((group, workload, system))
        return statistics.median(v) if v else None

    @classmethod
    def from_json(cls, d: dict) -> "Results":
        r = cls()
        r.info, r.notes = d["info"], d["notes"]
        for m in d["measurements"]:
            k = (m["group"], m["workload"], m["system"])
            r.order.append(k)
            r.units[k] = m["unit"]
            r.values[k] = m["values"]
            if m.get("error"):
                r.errors[k] = m["error"]
        return r

    def to_json(self) -> dict:
        return {
            "info": self.info,
            "notes": self.notes,
            "measurements": [
                {"group": g, "workload": w, "system": s, "unit": self.units[(g, w, s)],
                 "values": self.values[(g, w, s)], "error": self.errors.get((g, w, s))}
                for (g, w, s) in self.order
            ],
        }


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "GB/s":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if unit == "IOPS":
        return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"
    if unit == "s":
        if v < 1:
            return f"{v * 1000:.1f} ms" if v < 0.1 else f"{v * 1000:.0f} ms"
        return f"{v:.2f} s" if v < 100 else f"{v:.0f} s"
    if unit == "MiB":
        return f"{v:.0f}"
    if unit == "s/GB":
        return f"{v:.3f}"
    if unit == "ms/1k reads":
        return f"{v:.1f}"
    return f"{v:.3g}"


def cell(res: Results, group: str, workload: str, system: str) -> str:
    k = (group, workload, system)
    if k in res.errors:
        return "failed"
    vals = res.values.get(k)
    if not vals:
        return "—"
    unit = res.units[k]
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m, unit)
    lo, hi = min(vals), max(vals)
    a, b = fmt(lo, unit), fmt(hi, unit)
    if a == b:
        return fmt(m, unit)
    if unit == "s":  # "12 ms (10–14 ms)" -> keep units once
        a = a.replace(" ms", "").replace(" s", "") if a.split()[-1] == b.split()[-1] else a
    return f"{fmt(m, unit)} ({a}–{b})"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×" if r >= 100 else f"{r:.1f}×"
