"""ipcfast.remote.Queue keeps the local Queue's API: blocking and timeouts, the _nowait
forms, batches, sizes and the bound, close, serializer hooks, pickled handles in children."""
from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import threading
import time

import pytest

from tests.support.procs import join_all, kill_all
from tests.remote import workers

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def R(server):
    import ipcfast.remote as R
    return R


@pytest.fixture
def q(R, url, name):
    q = R.Queue(url, name)
    yield q
    q.close()


def test_items_come_out_in_the_order_they_were_put(q):
    for i in range(20):
        q.put(("item", i))
    assert [q.get(timeout=5) for _ in range(20)] == [("item", i) for i in range(20)]


def test_put_many_and_get_many_move_a_batch_in_order(q):
    q.put_many(range(1000))
    got = []
    while len(got) < 1000:
        got += q.get_many(timeout=5)
    assert got == list(range(1000))
    q.put_many([1, 2, 3])
    assert q.get_many(max_messages_to_get=2) == [1, 2] and q.get_many() == [3]


def test_get_on_an_empty_queue_raises_empty_after_its_timeout(q):
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get_many(timeout=-1)          # multiprocessing's rule: negative = do not wait


def test_a_blocked_get_wakes_when_an_item_is_put(q, R, url, name):
    p = R.Queue(url, name)
    threading.Timer(0.2, lambda: p.put("late")).start()
    assert q.get(timeout=10) == "late"
    p.close()


def test_maxsize_bounds_the_undelivered_items_and_put_blocks_until_there_is_room(R, url, name):
    q = R.Queue(url, name, maxsize=3)
    q.put_many([1, 2])
    q.put(3)
    assert q.full() and q.qsize() == 3
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(4, timeout=0.2)
    assert time.monotonic() - t0 >= 0.2
    with pytest.raises(queue.Full):      # all or nothing
        q.put_many([4, 5], block=False)
    with pytest.raises(ValueError, match="maxsize 3"):
        q.put_many([0] * 4)
    threading.Timer(0.2, q.get).start()
    q.put(4, timeout=10)                # room after the get
    assert q.get_many() == [2, 3, 4] and q.empty() and not q.full()
    q.close()


def test_qsize_counts_undelivered_items_only(R, url, name):
    q = R.JoinableQueue(url, name)
    q.put_many(range(5))
    assert q.qsize() == 5 and not q.empty()
    assert q.get_many(max_messages_to_get=2) == [0, 1]
    assert q.qsize() == 3 and q.unfinished() == 5
    q.task_done(2)
    assert q.qsize() == 3 and q.unfinished() == 3
    q.close()


def test_every_call_raises_valueerror_after_close(q):
    q.close()
    q.close()                            # idempotent
    assert q.closed
    for call in (lambda: q.put(1), lambda: q.get(), lambda: q.put_many([1]), q.get_many,
                 q.qsize, q.empty, q.full, lambda: q.get_nowait()):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_bad_arguments_raise_naming_the_argument(R, url):
    with pytest.raises(ValueError, match="name"):
        R.Queue(url, "")
    with pytest.raises(ValueError, match="name"):
        R.Queue(url, "a{b}")
    with pytest.raises(TypeError, match="maxsize"):
        R.Queue(url, "x", maxsize="3")
    with pytest.raises(ValueError, match="visibility_timeout"):
        R.Queue(url, "x", visibility_timeout=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        R.Queue(url, "x", connect_timeout=-1)
    with pytest.raises(ValueError, match="not a Redis URL"):
        R.Queue("http://127.0.0.1:1/", "x")
    with pytest.raises(TypeError, match="url"):
        R.Queue(None, "x")
    q = R.Queue(url, "x")
    with pytest.raises(TypeError, match="timeout"):
        q.get(timeout="1")
    with pytest.raises(ValueError, match="max_messages_to_get"):
        q.get_many(max_messages_to_get=0)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        q.put(lambda: 0)                # unpicklable: raises in put, nothing reaches the server
    assert q.qsize() == 0
    q.put(1)
    assert q.get(timeout=5) == 1        # still usable
    q.close()


def test_custom_serializer_hooks_are_used_on_both_ends(R, url, name):
    import json
    dumps = lambda o: json.dumps(o).encode()          # noqa: E731
    q = R.Queue(url, name, dumps=dumps, loads=json.loads)
    q.put({"a": [1, 2]})
    q.put_many([[3], "x"])
    assert q.get(timeout=5) == {"a": [1, 2]} and q.get_many() == [[3], "x"]
    q.close()


def test_a_pickled_handle_reconnects_by_url_in_a_spawned_child(q):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=workers.get_and_report, args=(q, out, 3))
    p.start()
    try:
        q.put_many(["a", "b", "c"])
        assert sorted(out.get(timeout=30) for _ in range(3)) == ["a", "b", "c"]
        join_all([p], 30)
    finally:
        kill_all([p])
    assert pickle.loads(pickle.dumps(q)).name == q.name


def test_a_forked_child_is_a_consumer_of_its_own(R, url, name):
    q = R.JoinableQueue(url, name)
    q.put_many(range(4))
    assert q.get() == 0              # pending for the parent's consumer
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=workers.get_and_report, args=(q, out, 3))
    p.start()
    try:
        assert sorted(out.get(timeout=30) for _ in range(3)) == [1, 2, 3]
        join_all([p], 30)
    finally:
        kill_all([p])
    q.task_done()                    # the parent's item is still the parent's to finish
    assert q.unfinished() == 3       # the child's Queue-style gets did not ack (Joinable)
    q.close()


def test_producers_in_children_and_the_parent_each_item_arrives_once(R, url, name):
    q = R.Queue(url, name)
    ctx = mp.get_context("fork")
    ps = [ctx.Process(target=workers.put_range, args=(q, k * 500, 500)) for k in range(3)]
    for p in ps:
        p.start()
    try:
        got = []
        while len(got) < 1500:
            got += q.get_many(timeout=30)
        join_all(ps, 30)
    finally:
        kill_all(ps)
    assert sorted(got) == list(range(1500))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    q.close()


def test_a_unix_socket_url_works(R, server_factory, name):
    s = server_factory(unix=True)
    assert s.url.startswith("unix://")
    with R.Queue(s.url, name) as q:
        q.put_many(range(10))
        assert q.get_many() == list(range(10))


def test_delete_removes_the_queue_from_the_server(R, url, name):
    q = R.Queue(url, name)
    q.put_many(range(3))
    q.delete()
    assert q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    q.close()


def test_large_items_on_an_unbounded_queue_keep_order_and_counts(R, url, name):
    j = R.JoinableQueue(url, name)          # large items go by MULTI/EXEC, not the Lua script
    blobs = [bytes([k]) * (64 << 10) for k in range(8)]
    j.put_many(blobs[:4])
    j.put(blobs[4])
    j.put_many(blobs[5:])
    assert j.qsize() == 8 and j.unfinished() == 8
    got = []
    while len(got) < 8:
        got += j.get_many(max_messages_to_get=3)
    assert got == blobs and j.qsize() == 0
    j.task_done(8)
    j.join(timeout=5)
    j.close()
