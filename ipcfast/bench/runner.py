"""The run: calibrate each implementation, measure the repeats interleaved, print each
workload's table as it completes, write the JSON and the chart; :func:`main` is
``python -m ipcfast bench``."""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import channels as C
from . import instructions as INS
from . import remote as RM
from .measurement import MeasureError, alloc_copy_gbps, measure, memcpy_gbps
from .options import Options, _matcher, list_variants, options_json, parse_args, select, wants_remote
from .percall import format_idle, format_percall, idle_cpu, percall_targets, pickle_round_trip_rate
from .progress import Reporter
from .report import cpu_busy, finish_variant, fmt_num, format_variant, host_info, plot
from .sizeplot import plot_sizes, sizes_path
from .targets import format_targets, sweep_targets
from .workloads import BATCH, MPMC, Impl, Variant, build_variants


def _optional(module: str):
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        pip = {"faster_fifo": "faster-fifo", "zmq": "pyzmq"}.get(module, module)
        return None, f"{module} is not importable ({exc.__class__.__name__}); pip install {pip}"


def _available(variants: Sequence[Variant]) -> Dict[str, Tuple[bool, str]]:
    """{module: (importable, why not)} for every optional module *variants* need."""
    avail: Dict[str, Tuple[bool, str]] = {}
    for v in variants:
        for i in v.impls:
            for need in i.needs():
                if need in avail:
                    continue
                mod, why = _optional(need)
                if mod is not None and need == "posix_ipc" and not getattr(
                        mod, "MESSAGE_QUEUES_SUPPORTED", True):
                    mod, why = None, "posix_ipc: message queues are not supported here"
                if mod is not None and need == RM.REQUIRES and RM.missing():
                    mod, why = None, RM.missing()
                avail[need] = (mod is not None, why)
    return avail


def _missing(impl: Impl, avail: Dict[str, Tuple[bool, str]]) -> List[str]:
    """The modules *impl* needs that do not import here."""
    return [m for m in impl.needs() if not avail[m][0]]


def calibrate(v: Variant, impl: Impl, o: Options) -> Tuple[int, dict]:
    """A message count for which one measurement takes about o.target seconds, and the
    slowest pilot. Raises MeasureError when a pilot fails.

    Pilots grow until one lasts a few tens of milliseconds; two more of that size follow
    (v.pilots - 1: one for the largest messages) and the slowest sets the count, so that an implementation whose speed
    depends on where the scheduler puts its processes is not given a count that takes
    ten times the target on its next run."""
    n = max(int(v.min_count * min(1.0, o.scale)), int(v.pilot * min(1.0, o.scale)), 1)
    short = 0.04 * min(1.0, o.scale)
    for attempt in range(4):
        m = measure(v, impl, n, o.limit, o.pin)
        if m["seconds"] >= short or attempt == 3:
            break
        n = int(n * min(20.0, max(2.0, 2 * short / max(m["seconds"], 1e-6))))
    pilots = [m] + [measure(v, impl, n, o.limit, o.pin) for _ in range(v.pilots - 1)]
    slow = max(pilots, key=lambda p: p["seconds"])
    fast = min(pilots, key=lambda p: p["seconds"])
    count = int(n * o.target / max(slow["seconds"], 1e-9))
    if v.max_count:
        count = min(count, max(1, int(v.max_count * o.scale)))
    count = max(int(v.min_count * min(1.0, o.scale)), count, 1)
    slow = dict(slow, unstable=slow["seconds"] > 3 * fast["seconds"],
                pilot_seconds=[p["seconds"] for p in pilots])
    if v.kind == "mpmc":
        count -= count % MPMC[0]
        count = max(count, MPMC[0])
    return count, slow


def _row(impl: Impl) -> dict:
    return {"impl": impl.name, "note": impl.note, "mode": impl.mode, "status": "ok",
            "reason": None, "count": None, "reps": []}


def _header(o: Options, results: dict, variants: List[Variant], busy: Optional[float],
            rep: Reporter) -> None:
    h = results["host"]
    rep.line(f"ipcfast {h['ipcfast_version']} benchmark ({'full' if o.full else 'quick'}"
             f"{', pinned' if o.pin else ''}): "
             f"{h['cpu_model']}, {h['cores']} cores ({h['usable_cores']} usable), "
             f"Linux {h['kernel']}, Python {h['python']}")
    if busy is not None and busy > 0.15:
        rep.line(f"warning: {busy:.0%} of the CPU time was already in use before the run "
                 f"started; other processes will make these results noisy")
    for s in results["skipped"]:
        rep.line(f"skipping {s['module']}: {s['reason']}")
    if not variants:
        rep.line(f"--only {o.only!r} matches no workload or implementation; see --list")
    rep.line("")


def _run_variant(v: Variant, res: dict, o: Options, avail: Dict[str, Tuple[bool, str]],
                 live: bool, rep: Reporter) -> None:
    """Calibrate and measure every available implementation of *v* into *res*'s rows."""
    rows = {}
    active: List[Impl] = []
    for impl in v.impls:
        row = rows[impl.name] = _row(impl)
        res["rows"].append(row)
        missing = _missing(impl, avail)
        if missing:
            row["status"], row["reason"] = "skipped", f"{' and '.join(missing)} not installed"
        elif impl.skip:
            row["status"], row["reason"] = "skipped", impl.skip
        else:
            active.append(impl)
    if not live:
        rep.line(f"running {v.key}: {len(active)} implementations x {o.repeats} repeats ...")
    if v.kind in ("bytes", "arrays"):
        rep.status(f"{v.key}: memcpy reference")
        # three samples now and one before each interleaved round: the reference is the
        # median, taken over the same stretch of time as the rows (a shared machine's
        # memory bandwidth drifts)
        mc = [memcpy_gbps(v.size, max(0.005, 0.1 * min(1.0, o.scale)), repeats=1)
              for _ in range(3)]
        res["memcpy_gbps"] = statistics.median(mc)      # (so far: an interrupted run has it)
        res["alloc_copy_gbps"] = alloc_copy_gbps(v.size, max(0.005, 0.05 * min(1.0, o.scale)))
    for impl in active:
        row = rows[impl.name]
        rep.status(f"{v.key}: calibrating {impl.name}")
        try:
            row["count"], pilot = calibrate(v, impl, o)
            row["pilot"] = pilot
            rep.advance(f"{v.key} / {impl.name}: calibrated to {row['count']} "
                        f"(pilots of {pilot['messages']}: " + ", ".join(
                            f"{x:.3f}" for x in pilot["pilot_seconds"]) + " s)")
        except MeasureError as e:
            row["status"], row["reason"] = "failed", f"{e.kind}: {e}"
            rep.advance(f"{v.key} / {impl.name}: FAILED {e}")
    for r in range(o.repeats):            # interleaved: A1 B1 C1 A2 B2 C2 ...
        if v.kind in ("bytes", "arrays"):
            mc.append(memcpy_gbps(v.size, max(0.005, 0.05 * min(1.0, o.scale)), repeats=1))
        for impl in active:
            row = rows[impl.name]
            if row["status"] != "ok":
                rep.advance()
                continue
            rep.status(f"{v.key}: {impl.name} {r + 1}/{o.repeats}")
            try:
                m = measure(v, impl, row["count"], o.limit, o.pin)
                row["reps"].append(m)
                what = (f"p50 {m['p50_us']:.1f} us" if v.kind == "pingpong"
                        else f"{fmt_num(m['rate'])} msgs/s")
                rep.advance(f"{v.key} / {impl.name} #{r + 1}: {what} "
                            f"({m['messages']} in {m['seconds']:.3f} s)")
            except MeasureError as e:
                row["status"], row["reason"] = "failed", f"{e.kind}: {e}"
                rep.advance(f"{v.key} / {impl.name} #{r + 1}: FAILED {e}")
    if v.kind in ("bytes", "arrays"):
        res["memcpy_samples_gbps"] = mc
        res["memcpy_gbps"] = statistics.median(mc)
    depth = C.PosixMQCh.granted_depth
    for row in res["rows"]:
        if row["impl"].startswith("posix_ipc") and row["reps"] and depth:
            row["note"] = ", ".join(filter(None, [row["note"], f"depth {depth}"]))


def run(options: Options) -> dict:
    """Run the comparison described by *options*; print tables; return the results (what
    --json writes). Ctrl-C (KeyboardInterrupt) stops it: the partial results are returned
    with ``interrupted`` set, every child killed and every segment removed."""
    o = options
    t_run = time.perf_counter()
    variants = select(build_variants(o.full) + (RM.variants(BATCH) if wants_remote(o) else []),
                      o.only)
    live = o.progress if o.progress is not None else sys.stdout.isatty()
    results: Dict[str, Any] = {"host": host_info(), "options": options_json(o),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "workloads": [], "skipped": [], "interrupted": False,
                               "failures": 0}
    avail = _available(variants)
    for mod, (ok, why) in sorted(avail.items()):
        if not ok:
            results["skipped"].append({"module": mod, "reason": why})
    runnable = {(v.key, i.name) for v in variants for i in v.impls
                if not i.skip and not _missing(i, avail)}
    last_sweep = max((k for k, v in enumerate(variants) if v.kind in ("bytes", "arrays")),
                     default=None)
    total = sum((o.repeats + 1) for _ in runnable)
    busy = cpu_busy()
    with contextlib.suppress(OSError, AttributeError):
        results["host"]["loadavg_start"] = list(os.getloadavg())
    results["host"]["cpu_busy_before"] = busy
    rep = Reporter(total, live, o.verbose)
    _header(o, results, variants, busy, rep)
    res: Optional[dict] = None
    try:
        for k, v in enumerate(variants):
            res = {"workload": v.key, "kind": v.kind, "title": v.title, "size": v.size,
                   "repeats": o.repeats, "baseline": v.baseline, "rows": []}
            results["workloads"].append(res)
            t_v = time.perf_counter()
            _run_variant(v, res, o, avail, live, rep)
            res["duration_s"] = time.perf_counter() - t_v
            finish_variant(res)
            for ln in format_variant(res) + (RM.summary(res) if v.key.startswith("remote") else []):
                rep.line(ln)
            rep.line("")
            res = None
            if k == last_sweep:            # the payload-size sweep is complete
                results["targets"] = sweep_targets(results)
                for ln in format_targets(results["targets"]):
                    rep.line(ln)
                rep.line("")
        if _matcher(o.only)("idle"):
            results["idle_cpu"] = idle_cpu()
            for ln in format_idle(results["idle_cpu"]) + [""]:
                rep.line(ln)
        if o.instructions:
            why = INS.missing()
            if why:
                results["instructions"] = {"skipped": why}
                rep.line(f"instruction counts skipped: {why}")
            else:
                results["instructions"] = INS.counts()
                for ln in INS.format_counts(results["instructions"]):
                    rep.line(ln)
            rep.line("")
        if any(v.key == "objects" for v in variants):
            results["pickle_round_trip_rate"] = pickle_round_trip_rate()
        results["percall_targets"] = percall_targets(results)
        for ln in format_percall(results["percall_targets"], results.get("pickle_round_trip_rate")):
            rep.line(ln)
        rep.line("")
    except KeyboardInterrupt:
        results["interrupted"] = True
        rep.close()
        if res is not None:            # what the interrupted workload had measured so far
            res["interrupted"] = True
            with contextlib.suppress(Exception):
                finish_variant(res)
                if any(r["reps"] for r in res["rows"]):
                    res["title"] += " [INTERRUPTED, partial]"
                    print("\n".join(format_variant(res)), flush=True)
        print("interrupted: stopped all benchmark processes", flush=True)
    finally:
        rep.close()
        RM.stop_server()
        leftovers = C.remove_leftovers()
        if leftovers:
            results["removed_leftover_segments"] = leftovers
        results["failures"] = sum(1 for w in results["workloads"] for r in w["rows"]
                                  if r["status"] == "failed")
        results["duration_s"] = time.perf_counter() - t_run
        with contextlib.suppress(OSError, AttributeError):
            results["host"]["loadavg_end"] = list(os.getloadavg())
        if o.json_path:
            with open(o.json_path, "w") as f:
                json.dump(results, f, indent=1, default=str)
    if not results["interrupted"]:
        print(f"total time {results['duration_s']:.1f} s"
              + (f"; {results['failures']} measurement(s) FAILED" if results["failures"] else ""),
              flush=True)
    if o.json_path:
        print(f"results written to {o.json_path}", flush=True)
    if o.plot_path and results["workloads"]:
        err = plot(results, o.plot_path)
        print(err if err else f"chart written to {o.plot_path}", file=sys.stderr if err else sys.stdout,
              flush=True)
        results["plot_error"] = err
        if any(w["kind"] in ("bytes", "arrays") for w in results["workloads"]):
            spath = sizes_path(o.plot_path)
            err = plot_sizes(results, spath)
            print(err if err else f"throughput-vs-size chart written to {spath}",
                  file=sys.stderr if err else sys.stdout, flush=True)
            results["plot_sizes_error"] = err
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m ipcfast bench``. Returns the exit status: 0 ok, 1 a
    measurement failed, 2 usage (or --only matched nothing), 130 interrupted (Ctrl-C or
    SIGTERM)."""
    try:
        opts = parse_args(argv)
    except SystemExit as exc:          # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if opts.list_only:
        with contextlib.suppress(BrokenPipeError):
            print("\n".join(list_variants(True)), flush=True)
        return 0
    restore = None
    if hasattr(signal, "SIGTERM"):
        with contextlib.suppress(ValueError):      # not the main thread: leave signals alone

            def _term(signum, frame):
                raise KeyboardInterrupt
            restore = signal.signal(signal.SIGTERM, _term)
    try:
        results = run(opts)
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    if results["interrupted"]:
        return 130
    if opts.only and not results["workloads"]:
        return 2
    return 1 if results["failures"] else 0
