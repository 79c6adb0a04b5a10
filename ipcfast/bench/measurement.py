"""One measurement: a :class:`Plan` (channels, roles, how to judge the results), forked,
handshaken, collected and checked.

:func:`measure` is the whole of it. Every count, checksum and byte total a consumer role
reports is compared here with what was sent; a difference is a ``check`` failure.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing.connection as mpc
import os
import statistics
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .._units import MiB
from . import roles as R
from . import messages as M
from . import workloads as W
from .channels import CTX, READY_TIMEOUT, Channel, close_channels
from .percall import busy_cpus
from .workloads import Impl, Variant

JOIN_TIMEOUT = 5.0           # seconds for children to exit after reporting


class MeasureError(Exception):
    """A measurement did not produce a valid result. kind: timeout, check or error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Plan:
    """What one measurement forks and how it is judged: *roles* are (name, group, fn, args);
    *evaluate* turns the roles' results (by name) into the measurement; *after_group*
    runs in the parent once every role of a group has reported."""
    channels: List[Channel]
    roles: List[Tuple[str, str, Callable, tuple]]
    evaluate: Callable[[Dict[str, dict]], dict]
    after_group: Dict[str, Callable[[], None]] = field(default_factory=dict)

    def close(self) -> None:
        """Close the channels and remove their segments."""
        close_channels(self.channels)


# --------------------------------------------------------------------------------------------
# forking and collecting


def _kill_all(procs) -> None:
    procs = [p for p in procs if p._popen is not None]     # started
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def _collect(names, procs, conns, expect: str, deadline: float, limit: float,
             on_result: Optional[Callable[[int], None]] = None) -> Dict[str, Any]:
    """Wait until every child sent *expect*; raises MeasureError (timeout past *deadline*,
    a child's error, or a child that died without reporting)."""
    got: Dict[str, Any] = {}
    pending = list(range(len(procs)))
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            late = ", ".join(names[k] for k in pending)
            what = "start" if expect == "ready" else "finish"
            raise MeasureError("timeout", f"{late} did not {what} within {limit:g} s")
        mpc.wait([conns[k] for k in pending] + [procs[k].sentinel for k in pending],
                 timeout=min(left, 0.5))
        for k in list(pending):
            c = conns[k]
            if c.poll():
                try:
                    msg = c.recv()
                except EOFError:
                    procs[k].join(1)
                    raise MeasureError("error", f"{names[k]} died (exit code "
                                       f"{procs[k].exitcode}) before reporting")
                if msg[0] == "error":
                    raise MeasureError(msg[1], f"{names[k]}: {msg[2]}")
                if msg[0] != expect:
                    raise MeasureError("error", f"{names[k]}: unexpected {msg[0]!r}")
                got[names[k]] = msg[1] if len(msg) > 1 else None
                pending.remove(k)
                if on_result:
                    on_result(k)
            elif not procs[k].is_alive():
                if c.poll():
                    continue
                raise MeasureError("error", f"{names[k]} died (exit code "
                                   f"{procs[k].exitcode}) before reporting")
    return got


def run_plan(plan: Plan, time_limit: float, pin: bool = False) -> Dict[str, dict]:
    """Fork one process per role, handshake, collect each role's result dict. With *pin*,
    role k runs on the k-th usable CPU (round robin). Blocks up to READY_TIMEOUT for the
    start and *time_limit* for the results; every child is killed on the way out."""
    procs: list = []
    conns: list = []
    names = [r[0] for r in plan.roles]
    cpus: List[Optional[int]] = [None]
    if pin:
        with contextlib.suppress(OSError, AttributeError):
            cpus = sorted(os.sched_getaffinity(0))
    try:
        for k, (rname, _group, fn, args) in enumerate(plan.roles):
            pc, cc = CTX.Pipe()
            p = CTX.Process(target=R.child_main, args=(cc, fn, args, cpus[k % len(cpus)]),
                            name=f"ipcfast-bench:{rname}", daemon=True)
            conns.append(pc)
            procs.append(p)
            try:
                p.start()
            finally:
                cc.close()

        _collect(names, procs, conns, "ready", time.monotonic() + READY_TIMEOUT, READY_TIMEOUT)
        for c in conns:
            c.send("go")

        groups: Dict[str, int] = {}
        for _n, g, _f, _a in plan.roles:
            groups[g] = groups.get(g, 0) + 1

        def on_result(k: int) -> None:
            g = plan.roles[k][1]
            groups[g] -= 1
            if groups[g] == 0 and g in plan.after_group:
                plan.after_group[g]()

        results = _collect(names, procs, conns, "result", time.monotonic() + time_limit,
                           time_limit, on_result)
        for c in conns:
            with contextlib.suppress(Exception):
                c.send("release")
        for p in procs:
            p.join(JOIN_TIMEOUT)
        return results
    finally:
        _kill_all(procs)
        for c in conns:
            c.close()


# --------------------------------------------------------------------------------------------
# judging the results


def _throughput(results: Dict[str, dict], n: int, size: int = 0) -> dict:
    prod, cons = results["producer"], results["consumer"]
    if cons["count"] != n:
        raise MeasureError("check", f"consumer received and checked {cons['count']} "
                           f"messages, expected {n}")
    if cons["seq_sum"] != n * (n - 1) // 2:
        raise MeasureError("check", f"consumer's sequence-number checksum is "
                           f"{cons['seq_sum']}, expected {n * (n - 1) // 2}")
    if size and cons["bytes"] != n * size:
        raise MeasureError("check", f"consumer got {cons['bytes']} bytes, expected {n * size}")
    secs = cons["t_end"] - prod["t_start"]
    if secs <= 0:
        raise MeasureError("error", "non-positive elapsed time")
    out = {"messages": n, "seconds": secs, "rate": n / secs}
    if size:
        out["bytes_rate"] = n * size / secs
    inner = cons["t_end"] - cons["t_first"]
    if n > 1 and inner > 0:
        out["consumer_rate"] = (n - 1) / inner
    return out


def _percentile(sorted_vals: Sequence[int], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(math.ceil(q * len(sorted_vals))) - 1))
    return float(sorted_vals[k])


def _pingpong_plan(impl: Impl, v: Variant, n: int, chans: List[Channel]) -> Plan:
    ab = impl.channel(v)
    chans.append(ab)
    ba = impl.channel(v)
    chans.append(ba)
    as_bytes = impl.mode == "pp-bytes"
    warm = min(200, max(5, n // 10))
    roles = [("ponger", "pong", R.ponger, (ab, ba, warm + n, as_bytes)),
             ("pinger", "ping", R.pinger, (ab, ba, n, warm, as_bytes))]

    def evaluate(res: Dict[str, dict]) -> dict:
        p = res["pinger"]
        samples = sorted(array("q", p["samples"]))
        if len(samples) != n:
            raise MeasureError("check", f"{len(samples)} round trips, expected {n}")
        if res["ponger"]["count"] != warm + n:
            raise MeasureError("check", f"the ponger echoed {res['ponger']['count']} "
                               f"messages, expected {warm + n}")
        secs = p["t_end"] - p["t_start"]
        return {"messages": n, "seconds": secs, "rate": n / secs,
                "p50_us": _percentile(samples, 0.50) / 1e3,
                "p90_us": _percentile(samples, 0.90) / 1e3,
                "p99_us": _percentile(samples, 0.99) / 1e3,
                "p999_us": _percentile(samples, 0.999) / 1e3,
                "min_us": samples[0] / 1e3, "max_us": samples[-1] / 1e3,
                "mean_us": sum(samples) / len(samples) / 1e3}
    return Plan(chans, roles, evaluate)


def _mpmc_plan(ch: Channel, n: int, chans: List[Channel]) -> Plan:
    np_, nc = W.MPMC
    per = max(1, n // np_)
    roles = [(f"consumer{c}", "c", R.tagged_consumer, (ch, np_)) for c in range(nc)]
    roles += [(f"producer{p}", "p", R.tagged_producer, (ch, p, per)) for p in range(np_)]

    def sentinels() -> None:
        for _ in range(nc):
            ch.parent_put(None)

    def evaluate(res: Dict[str, dict]) -> dict:
        cons = [res[f"consumer{c}"] for c in range(nc)]
        for p in range(np_):
            cnt = sum(c["count"][p] for c in cons)
            if cnt != per:
                raise MeasureError("check", f"producer {p}: {cnt} items received and "
                                   f"checked, expected {per}")
            s1 = sum(c["s1"][p] for c in cons)
            s2 = sum(c["s2"][p] for c in cons)
            if (s1, s2) != (per * (per - 1) // 2, (per - 1) * per * (2 * per - 1) // 6):
                raise MeasureError("check", f"producer {p}: {cnt} items arrived, "
                                   f"expected {per} each exactly once")
        t0 = min(res[f"producer{p}"]["t_start"] for p in range(np_))
        t1 = max(c["t_end"] for c in cons if c["t_end"] is not None)
        total = per * np_
        return {"messages": total, "seconds": t1 - t0, "rate": total / (t1 - t0)}
    return Plan(chans, roles, evaluate, {"p": sentinels})


def plan_for(v: Variant, impl: Impl, n: int) -> Plan:
    """The plan of one measurement of *impl* on *v* with *n* messages (round trips for
    ping-pong). Its channels are made here: close the plan when done."""
    chans: List[Channel] = []
    try:
        if v.kind == "pingpong":
            return _pingpong_plan(impl, v, n, chans)
        ch = impl.channel(v)
        chans.append(ch)
        if v.kind == "mpmc":
            return _mpmc_plan(ch, n, chans)
        if impl.mode not in ("obj", "batch", "send", "many", "claim", "claim-many", "array"):
            raise ValueError(f"unknown mode {impl.mode!r}")
        size = v.size if impl.mode in ("send", "many", "claim", "claim-many", "array") else 0
        roles = [("consumer", "c", R.consumer, (ch, impl.mode, n, size)),
                 ("producer", "p", R.producer, (ch, impl.mode, n, size))]
        return Plan(chans, roles, lambda res: _throughput(res, n, size))
    except BaseException:
        close_channels(chans)
        raise


def measure(v: Variant, impl: Impl, n: int, time_limit: float, pin: bool = False) -> dict:
    """One measurement of *impl* on workload *v* with *n* messages (round trips for
    ping-pong): forks its processes, blocks until they finish (killed after *time_limit*
    seconds) and returns rate, seconds and (ping-pong) latency percentiles. Raises
    MeasureError (kind timeout, check or error)."""
    if v.kind == "pools":                 # a pool's own workers, not forked roles
        from .pools import measure_pool
        return measure_pool(v, impl, n, time_limit)
    plan = plan_for(v, impl, n)
    try:
        with busy_cpus(v.load):
            return plan.evaluate(run_plan(plan, time_limit, pin))
    finally:
        plan.close()


def memcpy_gbps(size: int, seconds: float, repeats: int = 3) -> float:
    """Single-core copy bandwidth (GB/s) of *size*-byte buffers, memoryview slice assignment."""
    src = memoryview(bytearray(M.template(size)))
    dst = memoryview(bytearray(size))
    loops = max(1, int(200 * MiB // size))
    dst[:] = src
    best = []
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while True:
            for _ in range(loops):
                dst[:] = src
            done += loops
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        best.append(done * size / el / 1e9)
    return statistics.median(best)


def alloc_copy_gbps(size: int, seconds: float, repeats: int = 3) -> float:
    """Single-core bandwidth (GB/s) of copying a *size*-byte buffer into a NEW bytes object
    each time (``bytes(buf)``): the least a receiver that returns a fresh object pays.
    From 32 MiB up glibc maps every such block afresh, so its page faults count here."""
    src = bytearray(M.template(size))
    loops = max(1, int(20 * MiB // size))
    bytes(src)
    best = []
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while True:
            for _ in range(loops):
                bytes(src)                # made and freed: its block is unmapped again
            done += loops
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        best.append(done * size / el / 1e9)
    return statistics.median(best)
