"""At-least-once delivery: a consumer SIGKILLed between get and task_done has its item
redelivered to another consumer after the visibility timeout; acknowledged items are
never redelivered; join() returns once everything put has been acknowledged."""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time

import pytest

from tests.remote import workers
from tests.support.procs import join_all, kill_all

pytestmark = pytest.mark.timeout(60)
VT = 0.5          # the visibility timeout of these tests, seconds


@pytest.fixture
def R(server):
    import ipcfast.remote as R
    return R


def test_an_item_of_a_consumer_killed_before_task_done_goes_to_another_consumer(R, url, name):
    q = R.JoinableQueue(url, name, visibility_timeout=VT)
    q.put_many(["first", "second"])
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=workers.get_then_hang, args=(q, out))
    p.start()
    try:
        assert out.get(timeout=30) == "first"       # got, never task_done
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    finally:
        kill_all([p])
    assert q.get(timeout=5) == "second"
    t0 = time.monotonic()
    assert q.get(timeout=10) == "first"              # redelivered to this consumer
    assert time.monotonic() - t0 <= 10
    q.task_done(2)
    q.join(timeout=5)
    assert q.unfinished() == 0
    q.close()


def test_a_redelivered_item_waits_its_visibility_timeout(R, url, name):
    a = R.JoinableQueue(url, name, visibility_timeout=VT)
    b = R.JoinableQueue(url, name, visibility_timeout=VT)
    a.put("x")
    t0 = time.monotonic()
    assert a.get(timeout=5) == "x"
    assert b.get(timeout=5) == "x"                   # a never acknowledged it
    assert time.monotonic() - t0 >= VT
    b.task_done()
    a.task_done()                                    # late: counted once, not twice
    assert b.unfinished() == 0
    a.close()
    b.close()


def test_acknowledged_items_are_never_delivered_again(R, url, name):
    j = R.JoinableQueue(url, name, visibility_timeout=VT)
    q = R.Queue(url, name, visibility_timeout=VT)    # Queue.get acknowledges by itself
    j.put_many(range(4))
    assert j.get_many(max_messages_to_get=2) == [0, 1]
    j.task_done(2)
    assert q.get_many() == [2, 3]
    time.sleep(VT * 2)
    with pytest.raises(queue.Empty):
        q.get(timeout=VT)
    with pytest.raises(queue.Empty):
        j.get(timeout=0.1)
    assert j.unfinished() == 0
    j.close()
    q.close()


def test_join_returns_once_every_item_put_has_been_acknowledged(R, url, name):
    q = R.JoinableQueue(url, name, visibility_timeout=VT)
    q.put_many(range(3))
    with pytest.raises(TimeoutError):
        q.join(timeout=0.2)
    got = q.get_many()
    q.task_done(2)
    with pytest.raises(TimeoutError):              # one is got but not acknowledged
        q.join(timeout=0.2)
    threading.Timer(0.2, q.task_done).start()
    q.join(timeout=10)
    assert got == [0, 1, 2] and q.unfinished() == 0
    with pytest.raises(ValueError, match="task_done"):
        q.task_done()                               # more than this handle got
    q.close()


def test_competing_consumers_process_every_item_and_join_sees_them_done(R, url, name):
    q = R.JoinableQueue(url, name, visibility_timeout=10)
    q.put_many(range(300))
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    ps = [ctx.Process(target=workers.work_all, args=(q, out)) for _ in range(3)]
    for p in ps:
        p.start()
    try:
        q.join(timeout=40)
        seen = [out.get(timeout=10) for _ in range(300)]
        join_all(ps, 30)
    finally:
        kill_all(ps)
    assert sorted(item for _, item in seen) == list(range(300))   # each exactly once
    q.close()


def test_a_consumer_killed_mid_batch_loses_nothing_of_a_batch(R, url, name):
    """Many items in flight in a killed consumer: all of them come back."""
    q = R.JoinableQueue(url, name, visibility_timeout=VT)
    q.put_many(range(100))
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=workers.get_then_hang, args=(q, out))
    p.start()
    try:
        first = out.get(timeout=30)
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    finally:
        kill_all([p])
    got = []
    while len(got) < 100:
        batch = q.get_many(timeout=10)
        q.task_done(len(batch))         # within the visibility timeout: not redelivered
        got += batch
    assert sorted(got) == list(range(100)) and first in got
    q.join(timeout=5)
    q.close()
