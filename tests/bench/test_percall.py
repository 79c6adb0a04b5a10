"""The per-message instrument (issue 10): the ping-pong under load, the idle-consumer CPU,
the pickle round-trip limit and the issue-10 target ratios."""
import os
import time

import pytest

from ipcfast._native import lib
from ipcfast.bench import percall, workloads


def test_the_ping_pong_under_load_runs_one_busy_process_per_cpu():
    (v,) = [v for v in workloads.build_variants(False) if v.key == "pingpong-load"]
    assert v.kind == "pingpong"
    assert v.load == percall.load_processes() == len(os.sched_getaffinity(0))
    assert any(i.name == "posix_ipc.MessageQueue" for i in v.impls)


def _children():
    me = os.getpid()
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.add(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


@pytest.mark.timeout(60)
def test_busy_processes_burn_cpu_while_the_block_runs_and_are_gone_after():
    before = _children()
    with percall.busy_cpus(2):
        mine = _children() - before
        assert len(mine) == 2
        time.sleep(0.3)
        ticks = []
        for pid in mine:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks.append(int(fields[11]) + int(fields[12]))     # utime + stime
        assert all(t > 0 for t in ticks)
    assert not (_children() - before)


def test_the_pickle_round_trip_rate_is_a_positive_rate():
    assert percall.pickle_round_trip_rate(seconds=0.02, repeats=1) > 1000


@pytest.mark.timeout(60)
def test_idle_cpu_reports_a_fraction_per_implementation_and_mode():
    rows = percall.idle_cpu(seconds=0.2, repeats=1)
    assert {(r["impl"], r["mode"]) for r in rows} == {
        (i, m) for i in percall.IDLE_IMPLS for m in percall.IDLE_MODES}
    assert all(r["cpu_fraction"] is not None and 0 <= r["cpu_fraction"] < 1 for r in rows)


def _row(impl, rate=None, p50=None):
    r = {"impl": impl, "status": "ok", "rate": {"median": rate or 1.0}}
    if p50 is not None:
        r["p50_us"] = {"median": p50}
    return r


def test_the_targets_are_ratios_of_rows_of_the_same_run():
    results = {
        "pickle_round_trip_rate": 1_000_000.0,
        "idle_cpu": [{"impl": "ipcfast.Queue", "mode": "blocked", "cpu_fraction": 0.002},
                     {"impl": "ipcfast.Queue", "mode": "polling", "cpu_fraction": 0.5}],
        "workloads": [
            {"workload": "objects", "rows": [_row("ipcfast.Queue", 900_000.0),
                                             _row("posix_ipc.MessageQueue", 300_000.0),
                                             _row("zmq PUSH/PULL", 450_000.0)]},
            {"workload": "pingpong-load", "rows": [_row("ipcfast.Queue", p50=20.0),
                                                   _row("posix_ipc.MessageQueue", p50=10.0)]},
        ]}
    by = {c["target"]: c for c in percall.percall_targets(results)}
    assert by["Queue small objects / in-process pickle round trip"]["value"] == pytest.approx(0.9)
    assert by["Queue small objects / in-process pickle round trip"]["met"] is False
    assert by["Queue small objects / posix_ipc"]["value"] == pytest.approx(3.0)
    assert by["Queue small objects / posix_ipc"]["met"] is True
    assert by["Queue small objects / pyzmq"]["met"] is False
    assert by["Queue ping-pong p50 under load / posix_ipc's"]["value"] == pytest.approx(2.0)
    assert by["Queue ping-pong p50 under load / posix_ipc's"]["met"] is False
    assert by["idle Queue consumer CPU, blocked in get"]["value"] == pytest.approx(0.2)
    assert by["idle Queue consumer CPU, blocked in get"]["met"] is True
    assert by["Mailbox with priorities / posix_ipc with priorities"]["met"] is None
    lines = percall.format_percall(list(by.values()), 1e6)
    assert any("MISSED" in ln for ln in lines) and any("not measured" in ln for ln in lines)


def test_a_thread_whose_waits_keep_sleeping_spins_only_the_floor():
    import queue
    import threading

    import ipcfast
    r = ipcfast.Ring(capacity=4096)
    seen = []

    def waits():                       # a fresh thread: its own spin budget
        seen.append(lib.ipcf_spin_budget_ns())
        for _ in range(8):             # each wait spins, finds nothing, then sleeps
            try:
                r.recv_bytes(timeout=0.002)
            except queue.Empty:
                pass
        seen.append(lib.ipcf_spin_budget_ns())
    try:
        t = threading.Thread(target=waits)
        t.start()
        t.join(30)
        assert seen == [50_000, 2_000]
    finally:
        r.close()


def test_instruction_counts_cancel_the_start_up_and_subtract_the_loop_and_pickle(monkeypatch):
    from ipcfast.bench import instructions as I
    per = {"loop": 100, "dumps": 4100, "pickle": 6600, "put": 9600, "put+get": 17600,
           "send": 9000, "pair": 19100, "batch": 9100}
    # Ir(n) = start-up + n * per-iteration: the difference of two runs leaves the latter
    monkeypatch.setattr(I, "run", lambda mode, ns, workdir: [(90_000_000 + n * per[mode], f"{mode}.{n}")
                                                             for n in ns])
    c = I.counts()
    assert c["pickle.dumps"] == 4000 and c["pickle.loads"] == 2500
    assert c["Queue.put"] == 9500 and c["Queue.get"] == 8000
    assert c["Queue.put - dumps"] == 5500 and c["Queue.get - loads"] == 5500
    assert c["Mailbox.send"] == 8900 and c["Mailbox.recv"] == 10100
    assert c["Mailbox send+recv - pickle"] == 12500
    assert c["Mailbox send_many+recv_many (64) - pickle"] == 2500
    assert "Queue.get - loads" in "\n".join(I.format_counts(c))


def test_instruction_counts_say_why_they_are_skipped_without_valgrind(monkeypatch):
    from ipcfast.bench import instructions as I
    monkeypatch.setattr(I.shutil, "which", lambda name: None)
    assert "valgrind" in I.missing()
