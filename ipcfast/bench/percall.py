"""The per-message instrument (issue 10): the in-process pickle round trip that bounds
small-object throughput, busy processes for the ping-pong under load, the CPU an idle
waiting consumer uses, and the issue's targets as ratios of rows measured in one run.

Everything here is measured in the same run as the tables it is compared with; nothing is
a timed assertion.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue as stdqueue
import resource
import statistics
import time
from typing import Dict, Iterator, List, Optional, Tuple

from .report import fmt_num, fmt_ratio
from .sweep import RING_SEND, size_key
from .workloads import PAYLOAD, PI

_CTX = mp.get_context("fork")

QUEUE = "ipcfast.Queue"
QUEUE_MANY = "ipcfast.Queue put_many/get_many"
MAILBOX = "ipcfast.Mailbox"
POSIX = "posix_ipc.MessageQueue"
ZMQ = "zmq PUSH/PULL"
RING_MANY = "ipcfast.Ring send_many"


# ---- the in-process limit: pickle.dumps + pickle.loads of the workload's item ----

def pickle_round_trip_rate(seconds: float = 0.3, repeats: int = 5) -> float:
    """Items per second through ``pickle.loads(pickle.dumps(item))`` in this process, for
    the small-object workload's item (median of *repeats*)."""
    dumps, loads, proto = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            for i in range(n, n + 2000):
                loads(dumps((i, PAYLOAD, PI), proto))
            n += 2000
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        rates.append(n / el)
    return statistics.median(rates)


# ---- load: one busy process per CPU, for the ping-pong under load ----

def _spin() -> None:                       # pragma: no cover - runs in a child until killed
    while True:
        pass


@contextlib.contextmanager
def busy_cpus(n: int) -> Iterator[None]:
    """Run *n* CPU-bound processes (killed on exit) while the block runs."""
    procs = [_CTX.Process(target=_spin, daemon=True, name=f"ipcfast-bench-busy-{k}")
             for k in range(n)]
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in procs:
            if p.pid is not None:
                p.kill()
        for p in procs:
            if p.pid is not None:
                p.join(5)


def load_processes() -> int:
    """How many busy processes the under-load workload starts: one per usable CPU."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---- an idle waiting consumer: how much CPU does waiting cost? ----

def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _idle_child(make: str, mode: str, seconds: float, out) -> None:   # pragma: no cover
    q = _make(make)
    try:
        c0, t0 = _cpu_s(), time.monotonic()
        if mode == "blocked":
            with contextlib.suppress(stdqueue.Empty):
                q.get(timeout=seconds)
        else:                                    # polling with short timeouts
            while time.monotonic() - t0 < seconds:
                with contextlib.suppress(stdqueue.Empty):
                    q.get(timeout=0.01)
        out.send((_cpu_s() - c0) / (time.monotonic() - t0))
    finally:
        _close(q)


def _make(what: str):
    if what == "ipcfast.Queue":
        import ipcfast
        return ipcfast.Queue()
    return _CTX.Queue()


def _close(q) -> None:
    q.close()


IDLE_IMPLS = ("multiprocessing.Queue", "ipcfast.Queue")
IDLE_MODES = {"blocked": "one get(timeout) with nothing to get",
              "polling": "get(timeout=0.01) in a loop, nothing to get"}


def idle_cpu(seconds: float = 1.0, repeats: int = 3) -> List[dict]:
    """Fraction of one CPU an idle consumer uses while it waits, per implementation and
    mode (median of *repeats*, each in a fresh process)."""
    rows = []
    for impl in IDLE_IMPLS:
        for mode in IDLE_MODES:
            vals = []
            for _ in range(repeats):
                r, w = _CTX.Pipe(duplex=False)
                p = _CTX.Process(target=_idle_child, args=(impl, mode, seconds, w))
                p.start()
                w.close()
                if r.poll(seconds + 30):
                    vals.append(r.recv())
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
            rows.append({"impl": impl, "mode": mode,
                         "cpu_fraction": statistics.median(vals) if vals else None})
    return rows


def format_idle(rows: List[dict]) -> List[str]:
    lines = ["== An idle waiting consumer: CPU used while nothing arrives (median of 3 "
             "one-second waits, each in a fresh process) =="]
    for r in rows:
        v = r["cpu_fraction"]
        lines.append(f"  {r['impl']:<24} {IDLE_MODES[r['mode']]:<44} "
                     + ("failed" if v is None else f"{100 * v:.2f}% of a CPU"))
    return lines


# ---- the issue-10 targets ----

def _rows(results: dict) -> Dict[Tuple[str, str], dict]:
    out = {}
    for w in results.get("workloads", []):
        for r in w["rows"]:
            if r.get("status") == "ok" and r.get("rate"):
                out[(w["workload"], r["impl"])] = r
    return out


def _median(r: Optional[dict], key: str) -> Optional[float]:
    return r[key]["median"] if r and r.get(key) else None


def _check(what: str, value: Optional[float], goal: float, unit: str = "x",
           at_most: bool = False) -> dict:
    met = None if value is None else (value <= goal if at_most else value >= goal)
    return {"target": what, "value": value, "goal": goal, "unit": unit,
            "at_most": at_most, "met": met}


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def percall_targets(results: dict) -> List[dict]:
    """The issue-10 targets from *results* (None where a row was not measured)."""
    rows = _rows(results)
    rate = lambda w, i: _median(rows.get((w, i)), "rate")      # noqa: E731
    p50 = lambda w, i: _median(rows.get((w, i)), "p50_us")     # noqa: E731
    b64 = size_key("bytes", 64)
    idle = [r["cpu_fraction"] for r in results.get("idle_cpu", [])
            if r["impl"] == QUEUE and r["mode"] == "blocked" and r["cpu_fraction"] is not None]
    return [
        _check("Queue small objects / in-process pickle round trip",
               _div(rate("objects", QUEUE), results.get("pickle_round_trip_rate")), 1.0),
        _check("Queue small objects / posix_ipc", _div(rate("objects", QUEUE), rate("objects", POSIX)), 2.5),
        _check("Queue small objects / pyzmq", _div(rate("objects", QUEUE), rate("objects", ZMQ)), 2.5),
        _check("Queue 2x2 / posix_ipc 2x2", _div(rate("mpmc-2x2", QUEUE), rate("mpmc-2x2", POSIX)), 3.0),
        _check("Mailbox with priorities / posix_ipc with priorities",
               _div(rate("mailbox", MAILBOX), rate("mailbox", POSIX)), 2.0),
        _check("Mailbox ping-pong p50", p50("pingpong", MAILBOX), 3.0, "us", at_most=True),
        _check("Ring 64 B one per call", _div(rate(b64, RING_SEND), 1e6), 3.0, "M/s"),
        _check("Ring 64 B batched (send_many)", _div(rate(b64, RING_MANY), 1e6), 6.0, "M/s"),
        _check("Queue put_many/get_many / one per call",
               _div(rate("batched", QUEUE_MANY), rate("objects", QUEUE)), 3.0),
        _check("Queue ping-pong p50 under load / posix_ipc's",
               _div(p50("pingpong-load", QUEUE), p50("pingpong-load", POSIX)), 1.0, "x",
               at_most=True),
        _check("idle Queue consumer CPU, blocked in get", idle[0] * 100 if idle else None, 1.0,
               "%", at_most=True),
    ]


def format_percall(checks: List[dict], pickle_rate: Optional[float]) -> List[str]:
    lines = ["== Per-message cost: the issue-10 targets from this run (medians) =="]
    if pickle_rate:
        lines.append(f"  in-process pickle.dumps+loads of the small item: {fmt_num(pickle_rate)}/s")
    for c in checks:
        v = c["value"]
        if v is None:
            val, verdict = "-", "not measured"
        else:
            val = fmt_ratio(v) if c["unit"] == "x" else f"{v:.2f} {c['unit']}"
            verdict = "met" if c["met"] else "MISSED"
        goal = ("<= " if c["at_most"] else ">= ") + (f"{c['goal']:g}x" if c["unit"] == "x"
                                                      else f"{c['goal']:g} {c['unit']}")
        lines.append(f"  {c['target']:<58} {goal:>10}  {val:>10}  {verdict}")
    return lines


