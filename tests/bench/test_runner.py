"""The comparison runner behind `python -m ipcfast bench`, at tiny message counts."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import ipcfast
from ipcfast import bench
from ipcfast.bench import workloads

pytestmark = pytest.mark.timeout(60)

TINY = ["--repeat", "1", "--scale", "0.01", "--no-progress"]


def own_segments(pid: int) -> list:
    """ipcfast segments named by process *pid* (ipcfast names embed the creator's pid)."""
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith("ipcf") and f"-{pid}-" in n)


def rows_of(workload: dict) -> dict:
    return {r["impl"]: r for r in workload["rows"]}


def test_quick_json_has_ratios_and_host(tmp_path, capsys):
    out = tmp_path / "bench.json"
    png = tmp_path / "bench.png"
    import importlib.util
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    rc = bench.main(["--quick", "--only", "objects", "--json", str(out)]
                    + (["--plot", str(png)] if has_mpl else []) + TINY)
    printed = capsys.readouterr()
    assert rc == 0, printed.out + printed.err
    data = json.loads(out.read_text())
    host = data["host"]
    assert host["ipcfast_version"] == ipcfast.__version__
    assert host["cores"] >= 1 and host["kernel"] and host["python"] and host["cpu_model"]
    assert data["options"]["repeat"] == 1 and data["options"]["mode"] == "quick"
    assert [w["workload"] for w in data["workloads"]] == ["objects"]
    rows = rows_of(data["workloads"][0])
    assert rows[bench.BASELINE]["ratio"] == pytest.approx(1.0)
    for name in ("multiprocessing.SimpleQueue", "multiprocessing.Pipe", "ipcfast.Queue",
                 "ipcfast.SimpleQueue"):
        row = rows[name]
        assert row["status"] == "ok", row
        assert len(row["reps"]) == 1 and row["reps"][0]["messages"] == row["count"]
        assert row["ratio"] > 0 and row["rate"]["median"] > 0
    for row in rows.values():                 # peers: measured, or skipped with a reason
        assert row["status"] in ("ok", "skipped"), row
        assert row["status"] == "ok" or row["reason"]
    assert "vs mp.Queue" in printed.out and "ipcfast.Queue" in printed.out
    if has_mpl:        # without it --plot is a usage error: see the test below
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert own_segments(os.getpid()) == []


def test_every_workload_runs_and_checks(tmp_path, monkeypatch):
    real = bench.runner.build_variants        # up to 4 MiB: the largest are test_sweep's
    monkeypatch.setattr(bench.runner, "build_variants",
                        lambda full: [v for v in real(full) if v.size <= 4 << 20])
    out = tmp_path / "all.json"
    rc = bench.main(["--json", str(out), "--time-limit", "20"] + TINY)
    assert rc == 0
    data = json.loads(out.read_text())
    kinds = {w["kind"] for w in data["workloads"]}
    assert kinds == {"objects", "batched", "bytes", "arrays", "pingpong", "mpmc", "pools"}
    assert [w["size"] for w in data["workloads"] if w["kind"] == "bytes"] == [
        64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20]
    assert [w["size"] for w in data["workloads"] if w["kind"] == "arrays"] == [64 << 10, 1 << 20]
    assert data["targets"]["checks"] and len(data["targets"]["sizes"]) == 8
    for w in data["workloads"]:
        rows = rows_of(w)
        assert rows[w["baseline"]]["ratio"] == pytest.approx(1.0)   # (pools: the stock pool)
        for row in w["rows"]:
            assert row["status"] in ("ok", "skipped"), (w["workload"], row)
            if row["status"] == "ok":
                assert row["ratio"] > 0
        if w["kind"] == "arrays":
            assert w["memcpy_gbps"] > 0
        if w["kind"] == "bytes":
            assert w["memcpy_gbps"] > 0
            ring = rows["ipcfast.Ring claim/view"]
            assert ring["bytes_rate"]["median"] > 0 and 0 < ring["memcpy_fraction"]
        if w["workload"].startswith("pool-map"):   # ipcfast's Pool (its executor needs fileno)
            assert rows["ipcfast Pool.map"]["status"] == "ok"
        if w["kind"] == "pingpong":
            for row in w["rows"]:
                if row["status"] == "ok":
                    assert 0 < row["p50_us"]["median"] <= row["p99_us"]["median"] <= row["p999_us"]["median"]
    assert own_segments(os.getpid()) == []
    assert not [p for p in mp.active_children() if p.name.startswith("ipcfast-bench")]


def test_missing_peers_are_skipped_with_a_reason(monkeypatch, capsys):
    for mod in ("faster_fifo", "posix_ipc", "zmq"):
        monkeypatch.setitem(sys.modules, mod, None)       # import raises ImportError
    rc = bench.main(["--only", "objects"] + TINY)
    out = capsys.readouterr().out
    assert rc == 0, out
    for mod, pip in (("faster_fifo", "faster-fifo"), ("posix_ipc", "posix_ipc"), ("zmq", "pyzmq")):
        assert f"skipping {mod}: {mod} is not importable" in out and f"pip install {pip}" in out
    assert "faster_fifo.Queue" in out and "skipped: faster_fifo not installed" in out


def test_a_wrong_answer_fails_the_row(monkeypatch, tmp_path, capsys):
    real = workloads.produce_objects

    def swapped(put, start, n):           # items 2 and 3 change places
        order = list(range(start, start + n))
        order[2], order[3] = order[3], order[2]
        for i in order:
            put((i, bench.PAYLOAD, bench.PI))

    monkeypatch.setattr(workloads, "produce_objects", swapped)
    out = tmp_path / "bad.json"
    rc = bench.main(["--only", "^ipcfast.SimpleQueue$", "--json", str(out), "--time-limit", "10"] + TINY)
    assert rc == 1
    rows = rows_of(json.loads(out.read_text())["workloads"][0])
    for row in rows.values():
        assert row["status"] == "failed" and row["reason"].startswith("check"), row
        assert "expected item 2" in row["reason"]
    assert "FAILED" in capsys.readouterr().out
    assert real is not workloads.produce_objects
    assert own_segments(os.getpid()) == []


def impl_of(key: str, name: str):
    v = next(v for v in bench.build_variants(full=False) if v.key == key)
    return v, next(i for i in v.impls if i.name == name)


def test_a_consumer_that_checks_too_few_messages_fails_the_count_check(monkeypatch):
    real = workloads.consume_objects

    def one_short(get, start, n):         # every message it takes is right, but it stops early
        return real(get, start, n - 1)

    monkeypatch.setattr(workloads, "consume_objects", one_short)
    v, impl = impl_of("objects", "ipcfast.SimpleQueue")
    with pytest.raises(bench.MeasureError,
                       match=r"^consumer received and checked 99 messages, expected 100$") as e:
        bench.measure(v, impl, 100, time_limit=20)
    assert e.value.kind == "check"
    assert own_segments(os.getpid()) == []


class DropsOne(bench.Channel):
    """ipcfast.Queue that loses producer 0's item 5: no consumer sees anything out of order."""

    def __init__(self, variant) -> None:
        self.inner = impl_of("mpmc-2x2", "ipcfast.Queue")[1].channel(variant)
        self.names = self.inner.names

    def sender(self) -> bench.Ops:
        ops = self.inner.sender()
        put = ops.put

        def lossy(o) -> None:
            if o[:2] != (0, 5):
                put(o)
        ops.put = lossy
        return ops

    def receiver(self) -> bench.Ops:
        return self.inner.receiver()

    def parent_put(self, obj) -> None:
        self.inner.parent_put(obj)

    def close(self) -> None:
        self.inner.close()


def test_a_channel_that_drops_a_message_fails_the_count_check():
    v, _ = impl_of("mpmc-2x2", "ipcfast.Queue")
    with pytest.raises(bench.MeasureError,
                       match=r"^producer 0: 99 items received and checked, expected 100$") as e:
        bench.measure(v, bench.Impl("lossy ipcfast.Queue", DropsOne, "mpmc"), 200, time_limit=20)
    assert e.value.kind == "check"
    assert own_segments(os.getpid()) == []


def test_a_stuck_measurement_is_killed_at_the_time_limit(monkeypatch, tmp_path):
    def short(put, start, n):             # the last item never comes: the consumer blocks
        for i in range(start, start + n - 1):
            put((i, bench.PAYLOAD, bench.PI))

    monkeypatch.setattr(workloads, "produce_objects", short)
    out = tmp_path / "stuck.json"
    t0 = time.monotonic()
    rc = bench.main(["--only", "objects/ipcfast.Queue$", "--json", str(out),
                     "--time-limit", "1"] + TINY)
    assert time.monotonic() - t0 < 20
    assert rc == 1
    rows = rows_of(json.loads(out.read_text())["workloads"][0])
    assert set(rows) == {bench.BASELINE, "ipcfast.Queue"}
    for row in rows.values():
        assert row["status"] == "failed" and row["reason"].startswith("timeout"), row
    assert not [p for p in mp.active_children() if p.name.startswith("ipcfast-bench")]
    assert own_segments(os.getpid()) == []


def _processes_with(marker: str) -> list:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_ctrl_c_stops_cleanly(tmp_path):
    marker = f"bench-sigint-{uuid.uuid4().hex}"
    out = tmp_path / "int.json"
    code = (f"# {marker}\nimport sys\nfrom ipcfast import bench\n"
            f"sys.exit(bench.main(['--only', 'objects|bytes-1MiB', '--no-progress', "
            f"'--json', {str(out)!r}]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(_processes_with(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)              # wait until a measurement's children are running
        assert len(_processes_with(marker)) >= 3, "no measurement started"
        os.kill(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert json.loads(out.read_text())["interrupted"] is True
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == []
    assert own_segments(proc.pid) == []


def test_list_and_bad_pattern(capsys):
    assert bench.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for key in bench.VARIANT_KEYS:
        assert key in listed
    assert bench.main(["--only", "no-such-thing", "--no-progress"]) == 2
    assert "matches no workload" in capsys.readouterr().out
    assert bench.main(["--repeat", "0"]) == 2


def test_plot_without_matplotlib_fails_before_measuring_anything(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    started = []
    monkeypatch.setattr(bench.runner, "calibrate", lambda *a, **k: started.append(a))
    assert bench.main(["--plot", "/tmp/never.png", "--only", "objects", "--no-progress"]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not started, "a measurement ran although the chart could never be drawn"
