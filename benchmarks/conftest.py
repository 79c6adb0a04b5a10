"""Fixtures for the pytest-benchmark suites.

* Like tests/conftest.py: every benchmark must leave /dev/shm as it found it.
* multiprocessing.Queue is the baseline of every group: with benchmarks enabled, each
  result's ``extra_info`` gets ``vs_multiprocessing_Queue`` (baseline mean time / this mean
  time, bigger is better; it lands in --benchmark-json) and a table of those ratios is
  printed after pytest-benchmark's own.

Run them for real with:  python -m pytest benchmarks --benchmark-enable -p no:randomly
"""
from __future__ import annotations

import gc
import os
import re
import time

import pytest

SHM = "/dev/shm"
BASELINE = "multiprocessing.Queue"
_PID_IN_NAME = re.compile(r"^ipcf-[A-Za-z]+-(\d+)-")


def ipcf_segments() -> set:
    try:
        return {n for n in os.listdir(SHM) if n.startswith("ipcf")}
    except FileNotFoundError:  # pragma: no cover
        return set()


def _someone_elses(name: str) -> bool:
    """A segment named by another live process (ipcfast names embed the creator's pid):
    another test run on this machine, not a leak of ours."""
    m = _PID_IN_NAME.match(name)
    if not m:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(autouse=True)
def no_segment_leaks():
    """Fail any benchmark that leaves an ipcfast segment behind in /dev/shm."""
    before = ipcf_segments()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        gc.collect()
        leaked = {n for n in ipcf_segments() - before if not _someone_elses(n)}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)      # child processes may still be exiting
    for name in leaked:       # clean up so one leak does not fail every later test
        try:
            os.unlink(os.path.join(SHM, name))
        except FileNotFoundError:
            pass
    assert not leaked, f"benchmark leaked shared-memory segments: {sorted(leaked)}"


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
