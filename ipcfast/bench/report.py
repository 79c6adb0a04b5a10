"""The report: numbers for people, the per-workload tables and their summaries, the host
description and the chart.

``finish_variant`` turns a workload's repeats into medians, spreads and ratios to the
multiprocessing.Queue baseline; ``format_variant`` prints that as a table.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import time
from typing import List, Optional, Sequence

from .. import __version__
from .._units import fmt_size
from .workloads import BASELINE

NOISY = 0.25                 # spread / median above this flags a row "(noisy)"


def fmt_num(x: Optional[float]) -> str:
    """3 significant digits with a k/M/G suffix."""
    if x is None or not math.isfinite(x):
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.3g}{suf}" if v < 100 else f"{v:.0f}{suf}"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_us(x: Optional[float]) -> str:
    """Microseconds with one decimal below 1000."""
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(x: Optional[float]) -> str:
    """A ratio as "1.23x" ("n/a" when there is none)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def _dist_version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def _summarise(values: List[float]) -> dict:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    spread = (hi - lo) / med if med else 0.0
    q = statistics.quantiles(values, n=4) if len(values) >= 4 else None
    return {"median": med, "min": lo, "max": hi, "spread": spread,
            "iqr": (q[2] - q[0]) if q else None, "noisy": spread > NOISY}


def finish_variant(res: dict) -> None:
    """Medians, spreads and ratios to the baseline for one variant's rows."""
    latency = res["kind"] == "pingpong"
    for row in res["rows"]:
        reps = row["reps"]
        if row["status"] != "ok" or not reps:
            continue
        row["rate"] = _summarise([r["rate"] for r in reps])
        if "bytes_rate" in reps[0]:
            row["bytes_rate"] = _summarise([r["bytes_rate"] for r in reps])
        if latency:
            for k in ("p50_us", "p99_us", "p999_us"):
                row[k] = _summarise([r[k] for r in reps])
        row["noisy"] = (row["p50_us"] if latency else row["rate"])["noisy"]
    baseline = res.get("baseline", BASELINE)
    base = next((r for r in res["rows"] if r["impl"] == baseline and r["status"] == "ok"
                 and r["reps"]), None)
    for row in res["rows"]:
        if row["status"] != "ok" or not row["reps"] or base is None:
            row["ratio"] = None
        elif latency:
            row["ratio"] = base["p50_us"]["median"] / row["p50_us"]["median"]
        else:
            row["ratio"] = row["rate"]["median"] / base["rate"]["median"]
    mc = res.get("memcpy_gbps")
    if mc:
        for row in res["rows"]:
            if row.get("bytes_rate"):
                row["memcpy_fraction"] = row["bytes_rate"]["median"] / (mc * 1e9)


def _table(rows: List[List[str]], right: Sequence[int]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def format_variant(res: dict) -> List[str]:
    """The table of one workload (after finish_variant), as lines."""
    kind = res["kind"]
    lines = [f"== {res['title']} ({res['repeats']} repeats, interleaved) =="]
    latency = kind == "pingpong"
    bytes_ = kind in ("bytes", "arrays")
    if latency:
        head = ["implementation", "p50 us", "p99 us", "p99.9 us", "p50 spread (min..max)",
                "vs mp.Queue", ""]
    elif bytes_:
        head = ["implementation", "msgs/s", "MB/s", "spread (min..max msgs/s)", "of memcpy",
                "vs mp.Queue", ""]
    else:
        head = ["implementation", "msgs/s", "spread (min..max)", "vs mp.Queue", ""]
    baseline = res.get("baseline", BASELINE)
    if baseline != BASELINE:
        head[head.index("vs mp.Queue")] = "vs stock"
    rows = [head]
    for row in res["rows"]:
        name = row["impl"] + (f" ({row['note']})" if row.get("note") else "")
        if row["status"] != "ok" or not row["reps"]:
            why = row.get("reason") or "no result"
            tag = "skipped" if row["status"] == "skipped" else "FAILED"
            rows.append([name] + ["-"] * (len(head) - 2) + [f"{tag}: {why}"])
            continue
        noisy = " ".join(f for f, on in (("(noisy)", row["noisy"]),
                                          ("(unstable pilots)", (row.get("pilot") or {}).get("unstable")))
                         if on)
        ratio = fmt_ratio(row["ratio"]) + (" (baseline)" if row["impl"] == baseline else "")
        if latency:
            p50 = row["p50_us"]
            rows.append([name, fmt_us(p50["median"]), fmt_us(row["p99_us"]["median"]),
                         fmt_us(row["p999_us"]["median"]),
                         f"{fmt_us(p50['min'])}..{fmt_us(p50['max'])} ({p50['spread']:.0%})",
                         ratio, noisy])
            continue
        r = row["rate"]
        spread = f"{fmt_num(r['min'])}..{fmt_num(r['max'])} ({r['spread']:.0%})"
        if bytes_:
            frac = row.get("memcpy_fraction")
            rows.append([name, fmt_num(r["median"]), f"{row['bytes_rate']['median'] / 1e6:,.0f}",
                         spread, f"{frac:.1%}" if frac is not None else "-", ratio, noisy])
        else:
            rows.append([name, fmt_num(r["median"]), spread, ratio, noisy])
    right = {1, 2, 3} if latency else ({1, 2, 4} if bytes_ else {1})
    lines += _table(rows, right)
    if bytes_ and res.get("memcpy_gbps"):
        samples = res.get("memcpy_samples_gbps") or []
        over = (f", median of {len(samples)} samples {min(samples):.1f}..{max(samples):.1f} "
                f"taken between the rounds") if len(samples) > 1 else ""
        lines.append(f"  memcpy reference (1 core, {fmt_size(res['size'])} bytearray -> bytearray, "
                     f"memoryview slice assignment{over}): {res['memcpy_gbps']:.1f} GB/s")
        if res.get("alloc_copy_gbps"):
            lines.append(f"  copy into a new bytes object (1 core, bytes(buf), the least a receiver "
                         f"returning a fresh object pays): {res['alloc_copy_gbps']:.1f} GB/s")
        rings = [r for r in res["rows"] if r["impl"].startswith("ipcfast.Ring")
                 and r.get("memcpy_fraction") is not None]
        if rings:
            best = max(rings, key=lambda r: r["bytes_rate"]["median"])
            lines.append(f"  best ipcfast.Ring ({best['impl'].split(' ', 1)[1]}): "
                         f"{best['bytes_rate']['median'] / 1e9:.2f} GB/s = "
                         f"{best['memcpy_fraction']:.1%} of memcpy")
    if bytes_:
        lines.append("  MB/s = 10^6 payload bytes per second")
    if latency:
        lines.append("  vs mp.Queue = baseline p50 / p50 (bigger is better)")
    return lines


def host_info() -> dict:
    """CPU model, cores, kernel, Python, ipcfast and peer versions."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.lower().startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    peers = {d: _dist_version(d) for d in ("faster-fifo", "posix_ipc", "pyzmq")}
    return {"cpu_model": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "machine": platform.machine(), "kernel": platform.release(),
            "os": platform.platform(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "ipcfast_version": __version__,
            "peers": {k: v for k, v in peers.items() if v}}


def cpu_busy(seconds: float = 0.2) -> Optional[float]:
    """Fraction of all CPU time spent busy over *seconds* (other processes' load)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def plot(results: dict, path: str) -> Optional[str]:
    """Draw ratios to the baseline; returns an error message instead of raising."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return "--plot needs matplotlib, which is not installed (pip install matplotlib)"
    vs = [w for w in results["workloads"] if any(r.get("ratio") for r in w["rows"])]
    if not vs:
        return "--plot: no results to draw"
    cols = 2 if len(vs) > 1 else 1
    nrows = (len(vs) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 2.6 * nrows + 0.4), squeeze=False)
    for ax, w in zip(axes.flat, vs):
        rows = [r for r in w["rows"] if r.get("ratio")]
        names = [r["impl"] for r in rows][::-1]
        ratios = [r["ratio"] for r in rows][::-1]
        colors = ["#888888" if n == BASELINE else ("#1f77b4" if n.startswith("ipcfast") else "#ff7f0e")
                  for n in names]
        lo, hi = [], []
        for r in rows[::-1]:
            if w["kind"] == "pingpong":
                base = next(b for b in w["rows"] if b["impl"] == BASELINE)["p50_us"]["median"]
                a, b = base / r["p50_us"]["max"], base / r["p50_us"]["min"]
            else:
                base = next(b for b in w["rows"] if b["impl"] == BASELINE)["rate"]["median"]
                a, b = r["rate"]["min"] / base, r["rate"]["max"] / base
            lo.append(max(0.0, r["ratio"] - a))
            hi.append(max(0.0, b - r["ratio"]))
        ax.barh(names, ratios, xerr=[lo, hi], color=colors, capsize=2)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(min(ratios + [1.0]) / 1.6, max(ratios + [1.0]) * 2.2)
        fmt = FuncFormatter(lambda x, _pos: f"{x:g}x")
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(FuncFormatter(
            lambda x, _pos: f"{x:g}x" if x > 0 and round(x / 10 ** math.floor(math.log10(x)))
            in (2, 5) else ""))
        for y, (val, err) in enumerate(zip(ratios, hi)):
            ax.text(val + err, y, f" {val:.2f}x", va="center", fontsize=7)
        ax.set_title(w["title"], fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.tick_params(axis="x", which="both", labelsize=7)
        ax.set_xlabel("x multiprocessing.Queue (" + ("p50 latency" if w["kind"] == "pingpong"
                      else "throughput") + "; bigger is better)", fontsize=7)
    for ax in list(axes.flat)[len(vs):]:
        ax.axis("off")
    h = results["host"]
    fig.suptitle(f"ipcfast {h['ipcfast_version']} - {h['cpu_model']}, {h['cores']} cores, "
                 f"Linux {h['kernel']}, Python {h['python']}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))   # room for the suptitle
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


