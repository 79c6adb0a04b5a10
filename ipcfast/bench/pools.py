"""The ``pools`` workloads: many small tasks through ``Pool.map`` and
``ProcessPoolExecutor.map``, with multiprocessing's own context (the baseline of each table)
against ``ipcfast.get_context()``, whose Pool moves tasks and results through ipcfast queues
and whose SimpleQueue carries the executor's results.

One measurement: a pool of :data:`WORKERS` workers (start method fork) is made and warmed
up (every worker has run a task) untimed; then ``map(_task, range(n), chunksize)`` is timed
from the call to the last result, and the results are checked (each one, in order); the
pool is shut down untimed. Rates are tasks per second. The pool's worker processes are its
own, not the forked producer/consumer of the other workloads (:func:`measure_pool` replaces
:func:`.measurement.measure` for this kind).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time
from typing import List

from .messages import CheckError
from .workloads import Impl, Variant

WORKERS = 2
CHUNKSIZES = (1, 64)
STOCK_POOL = "multiprocessing Pool.map"
STOCK_EXECUTOR = "ProcessPoolExecutor.map"


def _task(x: int) -> int:
    """The trivial task: the cost measured is the pool's, not the work's."""
    return x + 1


def _ctx(impl: Impl):
    if impl.mode.startswith("ipcfast"):
        import ipcfast
        return ipcfast.get_context("fork")
    return multiprocessing.get_context("fork")


def _check(results, n: int) -> None:
    if len(results) != n:
        raise CheckError(f"{len(results)} results for {n} tasks")
    for i, r in enumerate(results):
        if r != i + 1:
            raise CheckError(f"task {i}: result {r!r}, expected {i + 1}")


def measure_pool(v: Variant, impl: Impl, n: int, time_limit: float) -> dict:
    """One measurement of *n* tasks (see the module doc). Raises MeasureError."""
    from .measurement import MeasureError
    chunksize = v.size
    ctx = _ctx(impl)
    try:
        if impl.mode.endswith("pool"):
            with ctx.Pool(WORKERS) as pool:
                pool.map(_task, range(WORKERS * 4), 1)           # every worker up
                t0 = time.perf_counter()
                res = pool.map_async(_task, range(n), chunksize)
                results = res.get(time_limit)
                seconds = time.perf_counter() - t0
                pool.close()          # workers exit on their own: terminate() (SIGTERM)
                pool.join()           # would run the bench's SIGTERM handler in them
        else:
            with cf.ProcessPoolExecutor(WORKERS, mp_context=ctx) as ex:
                list(ex.map(_task, range(WORKERS * 4)))
                t0 = time.perf_counter()
                results = list(ex.map(_task, range(n), timeout=time_limit, chunksize=chunksize))
                seconds = time.perf_counter() - t0
        _check(results, n)
    except (multiprocessing.TimeoutError, cf.TimeoutError):
        raise MeasureError("timeout", f"{n} tasks not done within {time_limit} s") from None
    except CheckError as e:
        raise MeasureError("check", str(e)) from None
    except Exception as e:
        raise MeasureError("error", f"{type(e).__name__}: {e}") from None
    return {"messages": n, "seconds": seconds, "rate": n / max(seconds, 1e-9)}


def pool_variants() -> List[Variant]:
    """Pool.map and ProcessPoolExecutor.map, chunksize 1 and 64, stock against ipcfast."""
    out = []
    for chunk in CHUNKSIZES:
        out.append(Variant(
            f"pool-map-c{chunk}", "pools",
            f"Pool.map of a trivial task, chunksize {chunk}, {WORKERS} workers (tasks/s)",
            [Impl(STOCK_POOL, None, "stock-pool", note="multiprocessing.get_context('fork')"),
             Impl("ipcfast Pool.map", None, "ipcfast-pool", note="ipcfast.get_context('fork')")],
            size=chunk, pilot=2000 if chunk == 1 else 20000, min_count=20000, pilots=2,
            baseline=STOCK_POOL))
    for chunk in CHUNKSIZES:
        out.append(Variant(
            f"executor-map-c{chunk}", "pools",
            f"ProcessPoolExecutor.map of a trivial task, chunksize {chunk}, {WORKERS} workers "
            f"(tasks/s)",
            [Impl(STOCK_EXECUTOR, None, "stock-executor", note="mp_context: multiprocessing"),
             Impl("ProcessPoolExecutor.map (ipcfast)", None, "ipcfast-executor",
                  note="mp_context=ipcfast.get_context('fork')")],
            size=chunk, pilot=1000 if chunk == 1 else 20000, min_count=20000, pilots=2,
            baseline=STOCK_EXECUTOR))
    return out
