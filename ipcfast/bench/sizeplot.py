"""The throughput-vs-size chart of the payload-size sweep: log-log, message size against
payload bytes per second, one line per transport (median, min..max as error bars) and the
single-core memcpy reference measured per size in the same run.

``--plot PATH`` writes it next to the ratio chart, as :func:`sizes_path` (PATH) names it.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from .._units import fmt_size
from .sweep import QUEUE_ARRAY, QUEUE_BYTES, RING_SEND, RING_VIEW, ZMQ_ARRAY, ZMQ_BYTES
from .workloads import BASELINE

#: (workload kind, row) -> (label, colour, line style, marker); drawn in this order
LINES: List[Tuple[str, str, str, str, str, str]] = [
    ("bytes", QUEUE_BYTES, "ipcfast.Queue put(bytes)", "#1f77b4", "-", "o"),
    ("arrays", QUEUE_ARRAY, "ipcfast.Queue put(numpy float32)", "#17becf", "-", "s"),
    ("bytes", RING_SEND, "ipcfast.Ring send_bytes", "#2ca02c", "-", "^"),
    ("bytes", RING_VIEW, "ipcfast.Ring claim/view", "#9467bd", "-", "v"),
    ("bytes", ZMQ_BYTES, "pyzmq PUSH/PULL bytes", "#ff7f0e", "-", "D"),
    ("arrays", ZMQ_ARRAY, "pyzmq send_array (numpy)", "#ff7f0e", ":", "d"),
    ("bytes", BASELINE, "multiprocessing.Queue bytes", "#7f7f7f", "-", "x"),
    ("arrays", BASELINE, "multiprocessing.Queue numpy", "#7f7f7f", ":", "+"),
]


MEMCPY = "memcpy (1 core, same run)"
ALLOC_COPY = "copy into a new bytes object (1 core, same run)"


def sizes_path(path: str) -> str:
    """Where --plot PATH puts the size chart: "bench.png" -> "bench-sizes.png"."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-sizes{ext or '.png'}"


def series(results: dict) -> Dict[str, List[Tuple[int, float, float, float]]]:
    """{label: [(size, median, min, max) bytes/s, by size]} of every line with a measured
    point, the references of the same run (MEMCPY, ALLOC_COPY) included."""
    out: Dict[str, List[Tuple[int, float, float, float]]] = {}
    ws = sorted((w for w in results.get("workloads", []) if w["kind"] in ("bytes", "arrays")),
                key=lambda w: w["size"])
    for kind, impl, label, *_ in LINES:
        pts = []
        for w in ws:
            if w["kind"] != kind:
                continue
            row = next((r for r in w["rows"] if r["impl"] == impl and r.get("status") == "ok"
                        and r.get("bytes_rate")), None)
            if row:
                b = row["bytes_rate"]
                pts.append((w["size"], b["median"], b["min"], b["max"]))
        if pts:
            out[label] = pts
    mc: Dict[int, float] = {}
    for w in ws:
        if w.get("memcpy_gbps"):
            mc.setdefault(w["size"], w["memcpy_gbps"] * 1e9)
    if mc:
        out[MEMCPY] = [(s, g, g, g) for s, g in sorted(mc.items())]
    ac: Dict[int, float] = {}
    for w in ws:
        if w.get("alloc_copy_gbps"):
            ac.setdefault(w["size"], w["alloc_copy_gbps"] * 1e9)
    if ac:
        out[ALLOC_COPY] = [(s, g, g, g) for s, g in sorted(ac.items())]
    return out


def plot_sizes(results: dict, path: str) -> Optional[str]:
    """Draw the throughput-vs-size chart to *path* (PNG); returns an error message instead
    of raising."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    except ImportError:
        return "--plot needs matplotlib, which is not installed (pip install matplotlib)"
    data = series(results)
    if not data:
        return "--plot: no payload-size results to draw"
    style = {label: (colour, ls, mk) for _k, _i, label, colour, ls, mk in LINES}
    style[MEMCPY] = ("black", "--", "")
    style[ALLOC_COPY] = ("#555555", "-.", "")
    fig, ax = plt.subplots(figsize=(11, 5.6))
    sizes = sorted({s for pts in data.values() for s, *_ in pts})
    for label, pts in data.items():
        colour, ls, mk = style[label]
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, label=label, color=colour, linestyle=ls, marker=mk,
                    markersize=4, linewidth=1.4, capsize=2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: fmt_size(int(round(x)))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(_fmt_rate))
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.6)
    ax.grid(True, which="minor", axis="y", linewidth=0.2, alpha=0.4)
    ax.set_xlabel("message size", fontsize=9)
    ax.set_ylabel("payload bytes per second (median of the repeats, min..max bars)", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    h = results.get("host", {})
    ax.set_title(f"Throughput against message size, 1 producer -> 1 consumer, every message "
                 f"checked\nipcfast {h.get('ipcfast_version', '?')} - {h.get('cpu_model', '?')}, "
                 f"{h.get('cores', '?')} cores, Python {h.get('python', '?')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _fmt_rate(x: float, _pos=None) -> str:
    for div, suf in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")):
        if x >= div:
            return f"{x / div:g} {suf}"
    return f"{x:g} B/s"
