"""The targets of issue 9 as ratios of rows measured side by side in one run: computed from
a results dict (what --json writes, under "targets") and printed after the payload-size
sweep.

Every ratio is of medians; its range is the worst and best pairing of the two rows'
min..max, so a target whose range straddles the goal is within this run's noise.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .._units import KiB, MiB, fmt_size
from .report import fmt_ratio
from .sweep import QUEUE_ARRAY, QUEUE_BYTES, RING_SEND, RING_VIEW, ZMQ_BYTES, size_key
from .workloads import BASELINE

Stats = Optional[dict]                    # a row's bytes_rate summary: median, min, max, noisy


def _index(results: dict) -> Tuple[Dict[str, dict], Dict[Tuple[str, str], Stats]]:
    works = {w["workload"]: w for w in results.get("workloads", [])}
    rates: Dict[Tuple[str, str], Stats] = {}
    for key, w in works.items():
        for r in w["rows"]:
            if r.get("status") == "ok" and r.get("bytes_rate"):
                rates[(key, r["impl"])] = r["bytes_rate"]
    return works, rates


def _memcpy(works: Dict[str, dict], key: str) -> Stats:
    g = (works.get(key) or {}).get("memcpy_gbps")
    return {"median": g * 1e9, "min": g * 1e9, "max": g * 1e9, "noisy": False} if g else None


def _ratio(what: str, a: Stats, b: Stats, goal: float) -> dict:
    out = {"target": what, "goal": goal, "value": None, "low": None, "high": None,
           "met": None, "noisy": False}
    if a and b and b["median"] > 0 and b["min"] > 0:
        out.update(value=a["median"] / b["median"], low=a["min"] / b["max"],
                   high=a["max"] / b["min"], noisy=bool(a.get("noisy") or b.get("noisy")))
        out["met"] = out["value"] >= goal
    return out


def sweep_targets(results: dict) -> dict:
    """The issue's targets from *results*: ``checks`` (one ratio each, None where a row
    was not measured), ``sizes`` (per size of the bytes sweep: each core row's bytes/s, the
    memcpy reference, Queue/Ring, claim/view / send_bytes, Queue / the previous size) and
    ``drops`` (sizes where Queue bytes/s fell below the next smaller size's)."""
    works, rates = _index(results)
    b64k, b1m, n8m = size_key("bytes", 64 * KiB), size_key("bytes", 1 * MiB), size_key("numpy", 8 * MiB)
    checks = [
        _ratio("Queue / Ring send_bytes, 1 MiB bytes", rates.get((b1m, QUEUE_BYTES)),
               rates.get((b1m, RING_SEND)), 0.6),
        _ratio("Queue / pyzmq, 1 MiB bytes", rates.get((b1m, QUEUE_BYTES)),
               rates.get((b1m, ZMQ_BYTES)), 4.0),
        _ratio("Queue / Ring send_bytes, 64 KiB bytes", rates.get((b64k, QUEUE_BYTES)),
               rates.get((b64k, RING_SEND)), 0.6),
        _ratio("Queue numpy float32 8 MiB / memcpy (1 core, 8 MiB)",
               rates.get((n8m, QUEUE_ARRAY)), _memcpy(works, n8m), 0.4),
        _ratio("Ring claim/view / memcpy (1 core), 1 MiB", rates.get((b1m, RING_VIEW)),
               _memcpy(works, b1m), 0.8),
    ]
    sizes = []
    prev: Stats = None
    prev_size = 0
    drops = []
    for w in sorted((w for w in works.values() if w["kind"] == "bytes"), key=lambda w: w["size"]):
        key, s = w["workload"], w["size"]
        q = rates.get((key, QUEUE_BYTES))
        view_send = _ratio(f"claim/view / send_bytes, {fmt_size(s)}", rates.get((key, RING_VIEW)),
                           rates.get((key, RING_SEND)), 1.0)
        step = _ratio(f"Queue {fmt_size(s)} / Queue {fmt_size(prev_size)}", q, prev, 1.0) \
            if prev else None
        if step and step["value"] is not None and not step["met"]:
            drops.append({"size": s, "smaller": prev_size, "ratio": step["value"],
                          "within_noise": step["high"] >= 1.0})
        sizes.append({"size": s, "workload": key,
                      "rates": {n: (rates.get((key, n)) or {}).get("median")
                                for n in (BASELINE, ZMQ_BYTES, QUEUE_BYTES, RING_SEND, RING_VIEW)},
                      "memcpy": (_memcpy(works, key) or {}).get("median"),
                      "alloc_copy": (w.get("alloc_copy_gbps") or 0) * 1e9 or None,
                      "queue_ring": _ratio("", q, rates.get((key, RING_SEND)), 0.6)["value"],
                      "view_send": view_send, "queue_step": step})
        if q:
            prev, prev_size = q, s
    vs = [x["view_send"] for x in sizes if x["view_send"]["value"] is not None]
    below = [x for x in vs if not x["met"]]
    checks.append({"target": "Ring claim/view >= send_bytes at every size", "goal": 1.0,
                   "value": min((x["value"] for x in vs), default=None),
                   "low": None, "high": None, "met": not below if vs else None,
                   "noisy": any(x["noisy"] for x in vs),
                   "within_noise": bool(below) and all(x["high"] >= 1.0 for x in below),
                   "detail": ", ".join(f"{x['target'].rsplit(', ', 1)[1]} {fmt_ratio(x['value'])}"
                                       + (" (within noise)" if x["high"] >= 1.0 else "")
                                       for x in below)})
    queue_sizes = [x["size"] for x in sizes if x["rates"][QUEUE_BYTES]]
    checks.append({"target": "Queue bytes/s never below the next smaller size's", "goal": None,
                   "value": None, "low": None, "high": None,
                   "met": (not drops) if len(queue_sizes) > 1 else None, "noisy": False,
                   "within_noise": bool(drops) and all(d["within_noise"] for d in drops),
                   "drops": len(drops),
                   "detail": ", ".join(f"{fmt_size(d['size'])} {fmt_ratio(d['ratio'])} of "
                                       f"{fmt_size(d['smaller'])}"
                                       + (" (within noise)" if d["within_noise"] else "")
                                       for d in drops)})
    return {"checks": checks, "sizes": sizes, "drops": drops}


def _verdict(c: dict) -> str:
    if c["met"] is None:
        return "not measured"
    if c["met"]:
        return "met" + (" (noisy)" if c["noisy"] else "")
    near = c.get("within_noise") or (c.get("high") is not None and c["high"] >= c["goal"])
    return "MISSED" + (" (within noise)" if near else "") + (" (noisy)" if c["noisy"] else "")


def _mbs(x: Optional[float]) -> str:
    return "-" if not x else f"{x / 1e6:,.0f}"


def format_targets(t: dict) -> List[str]:
    """The summary block: the targets, then the per-size sweep table, as lines."""
    lines = ["== Payload-size sweep: the issue-9 targets from this run (medians; range = "
             "min..max pairings) =="]
    rows = [["target", "goal", "this run", "range", "", ""]]
    for c in t["checks"]:
        if c["goal"] is None:          # monotonic in size
            val = "-" if c["met"] is None else f"{c['drops']} drop(s)"
            rows.append([c["target"], "no drop", val, "", _verdict(c), c["detail"]])
            continue
        val = fmt_ratio(c["value"]) if c["value"] is not None else "-"
        if "detail" in c:              # the minimum over the sizes
            val = f"min {val}" if c["value"] is not None else val
        rng = (f"{c['low']:.2f}..{c['high']:.2f}" if c.get("low") is not None else "")
        rows.append([c["target"], f">= {c['goal']:g}x", val, rng, _verdict(c),
                     c.get("detail") or ""])
    lines += _table(rows)
    head = ["size", "mp.Queue", "zmq", "Queue", "Ring send", "Ring view", "memcpy",
            "new+copy", "Queue/Ring", "view/send", "Queue/prev"]
    rows = [head]
    for x in t["sizes"]:
        r = x["rates"]
        step = x["queue_step"]
        rows.append([fmt_size(x["size"]), _mbs(r[BASELINE]), _mbs(r[ZMQ_BYTES]),
                     _mbs(r[QUEUE_BYTES]), _mbs(r[RING_SEND]), _mbs(r[RING_VIEW]),
                     _mbs(x["memcpy"]), _mbs(x.get("alloc_copy")), fmt_ratio(x["queue_ring"]),
                     fmt_ratio(x["view_send"]["value"]),
                     fmt_ratio(step["value"]) if step else "-"])
    if len(rows) > 1:
        lines.append("  bytes sweep, MB/s (10^6 payload bytes per second); memcpy and new+copy "
                     "(bytes(buf)) of the same run, 1 core:")
        lines += _table(rows, right=set(range(1, len(head))))
    return lines


def _table(rows: List[List[str]], right=frozenset({1, 2, 3})) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
