"""The payload-size sweep of `python -m ipcfast bench`: its workloads, its numpy
measurements, the issue-9 targets summary and the throughput-vs-size chart."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

from ipcfast import bench
from ipcfast._units import KiB, MiB
from ipcfast.bench import byteloops, sweep
from ipcfast.bench.sizeplot import plot_sizes, series, sizes_path
from ipcfast.bench.targets import format_targets, sweep_targets

pytestmark = pytest.mark.timeout(60)

TINY = ["--repeat", "1", "--scale", "0.01", "--no-progress"]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
HAS_NUMPY = importlib.util.find_spec("numpy") is not None
PNG = b"\x89PNG\r\n\x1a\n"


def own_segments(pid: int) -> list:
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith("ipcf") and f"-{pid}-" in n)


def variants(full: bool) -> dict:
    return {v.key: v for v in bench.build_variants(full)}


@pytest.mark.parametrize("full", [False, True])
def test_the_bytes_sweep_runs_from_64B_to_64MiB_with_the_core_rows_at_every_size(full):
    vs = variants(full)
    keys = ["bytes-64B", "bytes-1KiB", "bytes-4KiB", "bytes-16KiB", "bytes-64KiB",
            "bytes-256KiB", "bytes-1MiB", "bytes-4MiB", "bytes-16MiB", "bytes-64MiB"]
    assert [k for k in vs if k.startswith("bytes-")] == keys
    assert [vs[k].size for k in keys] == [64, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB,
                                          MiB, 4 * MiB, 16 * MiB, 64 * MiB]
    for k in keys:
        v = vs[k]
        impls = {i.name: i for i in v.impls}
        for name in sweep.CORE:
            assert name in impls and not impls[name].skip, (k, name)
        skipped = [i for i in v.impls if i.skip]
        if full or v.size in sweep.FIELD_SIZES:
            assert not skipped, k
        else:
            assert {i.name for i in skipped} >= {"multiprocessing.Pipe send_bytes",
                                                 "ipcfast.Pipe send_bytes"}
            assert all("--full" in i.skip for i in skipped)
        assert v.min_count >= 2 and v.pilot >= v.min_count
    assert vs["bytes-64MiB"].pilot == vs["bytes-64MiB"].min_count == 2


def test_the_numpy_sweep_has_queue_mp_queue_and_zmq_at_four_sizes():
    vs = variants(False)
    keys = [k for k in vs if k.startswith("numpy-")]
    assert keys == ["numpy-64KiB", "numpy-1MiB", "numpy-8MiB", "numpy-64MiB"]
    for k in keys:
        v = vs[k]
        assert v.kind == "arrays" and v.size % 4 == 0
        assert [i.name for i in v.impls] == [bench.BASELINE, sweep.QUEUE_ARRAY, sweep.ZMQ_ARRAY]
        assert all("numpy" in i.needs() for i in v.impls)
        assert v.impls[2].needs() == ["numpy", "zmq"]


def test_only_keeps_a_sweep_rows_skip_and_counts():
    (v,) = bench.select(bench.build_variants(False), "bytes-16MiB/ipcfast.Pipe")
    assert [i.name for i in v.impls] == [bench.BASELINE, "ipcfast.Pipe send_bytes"]
    assert v.impls[1].skip and (v.pilot, v.min_count, v.size) == (2, 2, 16 * MiB)


@pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
@pytest.mark.parametrize("name", [bench.BASELINE, sweep.QUEUE_ARRAY, sweep.ZMQ_ARRAY])
def test_numpy_arrays_are_measured_and_checked(name):
    v = variants(False)["numpy-64KiB"]
    impl = next(i for i in v.impls if i.name == name)
    if "zmq" in impl.needs() and importlib.util.find_spec("zmq") is None:
        pytest.skip("pyzmq is not installed")
    m = bench.measure(v, impl, 30, time_limit=20)
    assert m["messages"] == 30 and m["bytes_rate"] > 0
    assert own_segments(os.getpid()) == []


@pytest.mark.parametrize("key,name", [("bytes-64MiB", sweep.QUEUE_BYTES),
                                      ("bytes-64MiB", sweep.RING_VIEW),
                                      ("numpy-64MiB", sweep.QUEUE_ARRAY)])
def test_the_largest_messages_are_measured_and_checked(key, name):
    v = variants(False)[key]
    impl = next(i for i in v.impls if i.name == name)
    if "numpy" in impl.needs() and not HAS_NUMPY:
        pytest.skip("numpy is not installed")
    m = bench.measure(v, impl, 2, time_limit=30)
    assert m["messages"] == 2 and m["bytes_rate"] > 0
    assert own_segments(os.getpid()) == []


@pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
def test_a_wrong_array_fails_the_measurement(monkeypatch):
    from ipcfast.bench import arrays
    real = arrays.produce_arrays

    def stale(put, start, n, size):        # the 3rd timed array repeats the 2nd
        if start:                           # the warm-up (sequence numbers from n) is right
            return real(put, start, n, size)
        real(put, 0, 2, size)
        real(put, 1, n - 2, size)
    monkeypatch.setattr(arrays, "produce_arrays", stale)
    v = variants(False)["numpy-64KiB"]
    with pytest.raises(bench.MeasureError, match="array 2: carries sequence numbers 1.0") as e:
        bench.measure(v, v.impls[1], 20, time_limit=20)
    assert e.value.kind == "check"
    assert own_segments(os.getpid()) == []


def test_the_untimed_warm_up_messages_are_checked_too(monkeypatch):
    real = byteloops.produce_bytes

    def bad_warm_up(send, start, n, size):  # the warm-up (sequence numbers from n) is short
        if start:
            for _ in range(n):
                send(bytes(size - 1))
        else:
            real(send, start, n, size)
    monkeypatch.setattr(byteloops, "produce_bytes", bad_warm_up)
    v = variants(False)["bytes-4KiB"]
    ring = next(i for i in v.impls if i.name == sweep.RING_SEND)
    with pytest.raises(bench.MeasureError, match=r"message 50: 4095 bytes, expected 4096") as e:
        bench.measure(v, ring, 50, time_limit=20)
    assert e.value.kind == "check"
    assert own_segments(os.getpid()) == []


def test_a_sweep_run_prints_skips_and_the_targets_and_draws_both_charts(tmp_path, capsys):
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    rc = bench.main(["--only", "bytes-1KiB$", "--json", str(out)]
                    + (["--plot", str(png)] if HAS_MPL else []) + TINY)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "skipped: quick run: measured at 64 B, 4 KiB, 64 KiB, 1 MiB" in printed
    assert "the issue-9 targets from this run" in printed
    data = json.loads(out.read_text())
    (w,) = data["workloads"]
    assert w["workload"] == "bytes-1KiB" and w["memcpy_gbps"] > 0 and w["alloc_copy_gbps"] > 0
    assert len(w["memcpy_samples_gbps"]) == 3 + 1          # 3 first, 1 per interleaved round
    rows = {r["impl"]: r for r in w["rows"]}
    assert rows["ipcfast.Pipe send_bytes"]["status"] == "skipped"
    assert rows[sweep.QUEUE_BYTES]["status"] == "ok"
    (size_row,) = data["targets"]["sizes"]
    assert size_row["size"] == KiB and size_row["rates"][sweep.QUEUE_BYTES] > 0
    if HAS_MPL:
        assert png.read_bytes()[:8] == PNG
        assert (tmp_path / "s-sizes.png").read_bytes()[:8] == PNG
    assert own_segments(os.getpid()) == []


# --------------------------------------------------------------------------------------------
# the targets and the chart, from synthetic results


def stats(median: float, lo: float = None, hi: float = None, noisy: bool = False) -> dict:
    return {"median": median, "min": lo if lo is not None else median,
            "max": hi if hi is not None else median, "noisy": noisy}


def workload(kind: str, key: str, size: int, memcpy_gbps: float, rates: dict) -> dict:
    return {"workload": key, "kind": kind, "size": size, "memcpy_gbps": memcpy_gbps,
            "rows": [{"impl": n, "status": "ok", "bytes_rate": s} for n, s in rates.items()]
            + [{"impl": "skipped one", "status": "skipped", "reason": "x"}]}


def synthetic() -> dict:
    G = 1e9
    data = {"host": {"ipcfast_version": "t", "cpu_model": "cpu", "cores": 2, "python": "3"},
            "workloads": [
        workload("bytes", "bytes-64KiB", 64 * KiB, 30.0, {
            bench.BASELINE: stats(0.5 * G), sweep.ZMQ_BYTES: stats(0.7 * G),
            sweep.QUEUE_BYTES: stats(3 * G), sweep.RING_SEND: stats(6 * G),
            sweep.RING_VIEW: stats(5.4 * G, 5 * G, 6.1 * G)}),
        workload("bytes", "bytes-1MiB", MiB, 40.0, {
            bench.BASELINE: stats(0.4 * G), sweep.ZMQ_BYTES: stats(2 * G),
            sweep.QUEUE_BYTES: stats(20 * G, 18 * G, 22 * G), sweep.RING_SEND: stats(25 * G, 24 * G, 26 * G),
            sweep.RING_VIEW: stats(34 * G)}),
        workload("bytes", "bytes-4MiB", 4 * MiB, 20.0, {
            sweep.QUEUE_BYTES: stats(10 * G, 9 * G, 11 * G), sweep.RING_SEND: stats(12 * G),
            sweep.RING_VIEW: stats(8 * G)}),
        workload("arrays", "numpy-8MiB", 8 * MiB, 20.0, {
            bench.BASELINE: stats(0.6 * G), sweep.QUEUE_ARRAY: stats(9 * G),
            sweep.ZMQ_ARRAY: stats(2 * G)}),
    ]}
    data["workloads"][1]["alloc_copy_gbps"] = 30.0
    return data


def test_the_targets_are_the_issues_ratios_of_the_runs_medians():
    t = sweep_targets(synthetic())
    c = {x["target"]: x for x in t["checks"]}
    q_ring = c["Queue / Ring send_bytes, 1 MiB bytes"]
    assert q_ring["value"] == pytest.approx(0.8) and q_ring["met"] is True
    assert (q_ring["low"], q_ring["high"]) == (pytest.approx(18 / 26), pytest.approx(22 / 24))
    assert c["Queue / pyzmq, 1 MiB bytes"]["value"] == pytest.approx(10.0)
    q64 = c["Queue / Ring send_bytes, 64 KiB bytes"]
    assert q64["value"] == pytest.approx(0.5) and q64["met"] is False
    np8 = c["Queue numpy float32 8 MiB / memcpy (1 core, 8 MiB)"]
    assert np8["value"] == pytest.approx(0.45) and np8["met"] is True
    assert c["Ring claim/view / memcpy (1 core), 1 MiB"]["value"] == pytest.approx(0.85)
    every = c["Ring claim/view >= send_bytes at every size"]
    assert every["value"] == pytest.approx(8 / 12) and every["met"] is False
    assert every["detail"] == "64 KiB 0.90x (within noise), 4 MiB 0.67x"
    mono = c["Queue bytes/s never below the next smaller size's"]
    assert mono["met"] is False and mono["drops"] == 1
    assert t["drops"] == [{"size": 4 * MiB, "smaller": MiB, "ratio": pytest.approx(0.5),
                           "within_noise": False}]
    assert [x["size"] for x in t["sizes"]] == [64 * KiB, MiB, 4 * MiB]
    assert t["sizes"][1]["queue_step"]["value"] == pytest.approx(20 / 3)
    assert t["sizes"][2]["rates"][bench.BASELINE] is None
    assert (t["sizes"][1]["memcpy"], t["sizes"][1]["alloc_copy"]) == (40e9, 30e9)
    text = "\n".join(format_targets(t))
    assert "Queue / pyzmq, 1 MiB bytes" in text and "10.00x" in text and "MISSED" in text
    assert "4 MiB 0.50x of 1 MiB" in text


def test_targets_not_measured_in_a_run_say_so():
    data = synthetic()
    data["workloads"] = [w for w in data["workloads"] if w["workload"] == "bytes-64KiB"]
    t = sweep_targets(data)
    c = {x["target"]: x for x in t["checks"]}
    assert c["Queue / Ring send_bytes, 1 MiB bytes"]["met"] is None
    assert c["Queue numpy float32 8 MiB / memcpy (1 core, 8 MiB)"]["value"] is None
    assert c["Queue bytes/s never below the next smaller size's"]["met"] is None
    assert "not measured" in "\n".join(format_targets(t))
    assert sweep_targets({"workloads": []})["sizes"] == []


def test_the_size_chart_has_one_line_per_transport_and_the_runs_memcpy():
    s = series(synthetic())
    assert s["ipcfast.Queue put(bytes)"] == [(64 * KiB, 3e9, 3e9, 3e9), (MiB, 20e9, 18e9, 22e9),
                                            (4 * MiB, 10e9, 9e9, 11e9)]
    assert [p[0] for p in s["ipcfast.Queue put(numpy float32)"]] == [8 * MiB]
    assert [p[0] for p in s["multiprocessing.Queue bytes"]] == [64 * KiB, MiB]
    assert s["memcpy (1 core, same run)"] == [(64 * KiB, 30e9, 30e9, 30e9), (MiB, 40e9, 40e9, 40e9),
                                              (4 * MiB, 20e9, 20e9, 20e9), (8 * MiB, 20e9, 20e9, 20e9)]
    assert s["copy into a new bytes object (1 core, same run)"] == [(MiB, 30e9, 30e9, 30e9)]
    assert sizes_path("/x/bench.png") == "/x/bench-sizes.png"
    assert sizes_path("bench") == "bench-sizes.png"


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib is not installed")
def test_the_size_chart_is_written_as_a_png(tmp_path):
    path = tmp_path / "sizes.png"
    assert plot_sizes(synthetic(), str(path)) is None
    assert path.read_bytes()[:8] == PNG
    assert plot_sizes({"workloads": []}, str(tmp_path / "none.png")) == \
        "--plot: no payload-size results to draw"
    assert not (tmp_path / "none.png").exists()
