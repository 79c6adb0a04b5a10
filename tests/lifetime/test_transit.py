"""Handles in transit: a pickled Queue, Ring, Mailbox or Pipe end keeps its segment alive
until it is unpickled, or for at most the transit time (60 s), so that a parent may close
its own handle right after Process.start(). (Across real processes:
test_queue_lifetime.py, tests/pipe.)"""
from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
import time

import pytest

import ipcfast
import ipcfast._native as N
import ipcfast.pipe
from tests.lifetime.workers import receive_one_or_fail
from tests.support.procs import AfterFile, Delay, join_all
from tests.support.shm import remove_segments, segments

KINDS = ["Queue", "Ring", "Mailbox", "Pipe"]


def make(kind: str):
    """(handle to pickle, every handle to close, names of its segments)"""
    if kind == "Pipe":
        r, w = ipcfast.Pipe(False)
        return w, [r, w], [w._tx.name]        # one ring: w's sending side is r's receiving
    h = {"Queue": ipcfast.Queue, "Ring": lambda: ipcfast.Ring(4096),
         "Mailbox": ipcfast.Mailbox}[kind]()
    return h, [h], [h.name]


def left_of(names) -> list:
    return [n for name in names for n in segments(name)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method, child_closes", [
    ("spawn", True), ("forkserver", True),
    ("fork", False), ("spawn", False), ("forkserver", False),
])
@pytest.mark.parametrize("kind", KINDS)
def test_a_child_opens_the_handle_after_the_parent_closed_it_right_after_start(
        kind, method, child_closes):
    """The parent closes every handle of its own right after start(); a spawn/forkserver
    child unpickles its arguments only half a second later: the handle in transit kept the
    segment and the message is there. The child is then the last user and removes the
    segment when it closes, or when it exits without closing (multiprocessing ends its
    children with os._exit: their handles are closed among its exit finalizers)."""
    ctx = multiprocessing.get_context(method)
    h, handles, names = make(kind)
    if kind == "Pipe":
        r, w = handles
        w.send("hello")
        h = r
    elif kind == "Queue":
        h.put("hello")
    elif kind == "Ring":
        h.send_bytes(b"hello")
    else:
        h.send("hello")
    expected = b"hello" if kind == "Ring" else "hello"
    p = ctx.Process(target=receive_one_or_fail, args=(Delay(0.5), h, expected, child_closes))
    try:
        p.start()
        for x in handles:
            x.close()
        join_all([p], 30)
        deadline = time.monotonic() + 5
        while left_of(names) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = left_of(names)
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)
        for name in names:
            remove_segments(name)
    assert left == [], f"left after the child, the last user, closed: {left}"


@pytest.mark.timeout(90)
def test_a_parent_may_close_right_after_starting_more_children_than_the_transit_table_holds(
        tmp_path):
    ctx = multiprocessing.get_context("spawn")
    n_first, n_late = 8, 3
    q = ipcfast.Queue()
    name = q.name
    go = str(tmp_path / "go")
    for _ in range(n_first + n_late):
        q.put("hello")
    first = [ctx.Process(target=receive_one_or_fail, args=(Delay(0), q, "hello"))
             for _ in range(n_first)]
    late = [ctx.Process(target=receive_one_or_fail, args=(AfterFile(go), q, "hello"))
            for _ in range(n_late)]
    try:
        for p in first + late:
            p.start()
        q.close()                                # as multiprocessing allows
        join_all(first, 60)                      # the first 8 arrived, got theirs and closed
        open(go, "w").close()                    # now the others unpickle their handle
        join_all(late, 30, allowed=(0, 1, 2))
        codes = [p.exitcode for p in late]
    finally:
        for p in first + late:
            if p.is_alive():
                p.kill()
                p.join(10)
        remove_segments(name)
    assert codes == [0] * n_late, f"exit codes of the children that opened it last: {codes}"


LIVE_CHILD = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_a_handle_pickled_for_a_child_that_never_unpickles_it_keeps_the_segment_only_until_its_transit_expires(
        kind, monkeypatch):
    monkeypatch.setattr(N, "TRANSIT_NS", 300_000_000)            # 0.3 s instead of 60 s
    child = subprocess.Popen(LIVE_CHILD)     # a live child, like a forkserver or pool worker
    h, handles, names = make(kind)
    try:
        pickle.dumps(h)                      # for a spawn child killed before it unpickles it
        for x in handles:
            x.close()
        deadline = time.monotonic() + 2.5    # the transit expires after 0.3 s
        while left_of(names) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = left_of(names)
    finally:
        child.kill()
        child.wait()
        for name in names:
            remove_segments(name)
    assert left == [], f"still in /dev/shm 2 s after the transit expired: {left}"

