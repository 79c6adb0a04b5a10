"""Fixtures for the pytest-benchmark suites.

* The leak check of the tests (tests/support/leaks.py): every benchmark must leave /dev/shm
  as it found it, counting only the segments this run made.
* multiprocessing.Queue is the baseline of every group: with benchmarks enabled, each
  result's ``extra_info`` gets ``vs_multiprocessing_Queue`` (baseline mean time / this mean
  time, bigger is better; it lands in --benchmark-json) and a table of those ratios is
  printed after pytest-benchmark's own.

Run them for real with:  python -m pytest benchmarks --benchmark-enable -p no:randomly
"""
from __future__ import annotations

import pytest

from tests.support.leaks import install, no_segment_leaks  # noqa: F401 - the autouse fixture

BASELINE = "multiprocessing.Queue"

install()


# ---- multiprocessing.Queue as each group's baseline ----


def _impl_of(bench) -> str:
    return (bench.extra_info or {}).get("impl") or bench.param or bench.name


def _ratios(benchmarks) -> dict:
    """{(group, impl): baseline mean / mean} for groups that have a baseline."""
    base = {}
    for b in benchmarks:
        if _impl_of(b) == BASELINE and b.stats and b.stats.mean:
            base[b.group] = b.stats.mean
    out = {}
    for b in benchmarks:
        if b.group in base and b.stats and b.stats.mean:
            out[(b.group, _impl_of(b))] = base[b.group] / b.stats.mean
    return out


def pytest_benchmark_update_json(config, benchmarks, output_json):
    ratios = _ratios(benchmarks)
    for entry in output_json.get("benchmarks", []):
        impl = (entry.get("extra_info") or {}).get("impl") or entry.get("param")
        r = ratios.get((entry.get("group"), impl))
        if r is not None:
            entry.setdefault("extra_info", {})["vs_multiprocessing_Queue"] = r


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [b for b in getattr(session, "benchmarks", []) or [] if b.stats]
    if not benchmarks:
        return
    ratios = _ratios(benchmarks)
    if not ratios:
        return
    tr = terminalreporter
    tr.write_sep("-", "ratio to multiprocessing.Queue (baseline mean / mean; bigger is better)")
    groups: dict = {}
    for (g, impl), r in ratios.items():
        groups.setdefault(g, []).append((impl, r))
    for g in sorted(groups, key=str):
        tr.write_line(f"{g}:")
        for impl, r in sorted(groups[g], key=lambda x: (x[0] != BASELINE, -x[1])):
            b = next(x for x in benchmarks if x.group == g and _impl_of(x) == impl)
            per = (b.extra_info or {}).get("messages_per_round")
            extra = f"  ({b.stats.mean / per * 1e6:.2f} us/message)" if per else ""
            tr.write_line(f"  {impl:<45} {r:7.2f}x{extra}")
