"""Who sleeps on a ring's futex words: a sleeper SIGKILLed asleep is reclaimed by the next
wake that wakes nobody (no inspection needed), a live sleeper never is, and more sleepers
than an event has named slots are all still woken (csrc/futex.c)."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading

import pytest

from ipcfast import Ring
from ipcfast._native import lib
from tests.ring.test_processes import IPC
from tests.support.procs import wait_until
from tests.support.shm import event_state, sleepers


@pytest.fixture
def ipc():
    box = IPC()
    yield box
    box.teardown()


def child_sleep_in_recv(name, ready):
    ring = Ring.attach(name)
    ready.set()
    ring.recv_bytes()          # sleeps until killed
    ring.close()


def child_inspect_repeatedly(name, n):
    from tests.support.shm import sleepers as look
    ring = Ring.attach(name)
    for _ in range(n):
        look(ring)             # ipcf_seg_inspect reaps dead sleepers' slots each time
    ring.close()


@pytest.mark.timeout(60)
def test_a_wake_that_wakes_nobody_reclaims_the_slot_of_a_sleeper_killed_asleep(ipc):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    ring = ipc.ring(4096)
    p = ipc.start(child_sleep_in_recv, ring.name, ready)
    assert ready.wait(30)
    wait_until(lambda: event_state(ring.name)[0] != 0, what="child asleep")
    owner = [w for w in event_state(ring.name)[1] if w]
    assert len(owner) == 1 and owner[0] & 0xFFFFFFFF == p.pid
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert event_state(ring.name)[0] != 0          # nobody has looked yet: still named
    ring.send_bytes(b"x")                          # wakes nobody: reclaims the dead slot
    assert event_state(ring.name) == (0, [0] * lib.IPCF_EVENT_SLOTS)
    assert ring.recv_bytes(timeout=5) == b"x"


@pytest.mark.timeout(60)
def test_a_live_sleeper_is_never_reclaimed_however_often_others_look(ipc):
    ring = ipc.ring(4096)
    got = []
    t = threading.Thread(target=lambda: got.append(ring.recv_bytes(timeout=50)))
    t.start()
    wait_until(lambda: event_state(ring.name)[0] != 0, what="thread asleep")
    p = ipc.start(child_inspect_repeatedly, ring.name, 300)
    p.join(50)
    assert p.exitcode == 0
    assert event_state(ring.name)[0] != 0          # still named: its process is alive
    assert sleepers(ring) == (1, 0)
    ring.send_bytes(b"wake")
    t.join(20)
    assert got == [b"wake"]


@pytest.mark.timeout(60)
def test_more_sleepers_than_named_slots_are_all_woken_and_counted():
    n = lib.IPCF_EVENT_SLOTS + 4
    ring = Ring(1 << 16, multi_consumer=True)
    try:
        got = []
        lock = threading.Lock()

        def take():
            m = ring.recv_bytes(timeout=50)
            with lock:
                got.append(m)
        threads = [threading.Thread(target=take) for _ in range(n)]
        for t in threads:
            t.start()
        wait_until(lambda: sleepers(ring)[0] == n, what=f"{n} threads asleep")
        sleeping, owners = event_state(ring.name)
        assert all(owners) and sleeping >> 16 == 4      # 12 named, 4 unnamed
        for i in range(n):
            ring.send_bytes(b"%d" % i)
        for t in threads:
            t.join(20)
        assert sorted(got) == sorted(b"%d" % i for i in range(n))
        assert event_state(ring.name) == (0, [0] * lib.IPCF_EVENT_SLOTS)
        assert sleepers(ring) == (0, 0)
    finally:
        ring.close()
