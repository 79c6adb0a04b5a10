"""ipcfast.faster_fifo behaves as faster-fifo's Queue where its own suite does not look:
byte accounting, close() as a shared mark, timeouts, errors, pickling, bad arguments."""
from __future__ import annotations

import multiprocessing as mp
import pickle
import queue

import pytest

import ipcfast
from ipcfast import faster_fifo as ff
from tests.faster_fifo import workers as W
from tests.support.procs import CHILD_WAIT, join_all, kill_all


def dumped(obj) -> int:
    return len(ff.Queue().dumps(obj))


def test_module_surface_matches_faster_fifo():
    assert ff.Full is queue.Full and ff.Empty is queue.Empty
    assert ff.DEFAULT_TIMEOUT == 10.0 and ff.DEFAULT_CIRCULAR_BUFFER_SIZE == 1000 * 1000
    q = ff.Queue()
    assert q.max_size_bytes == 1000 * 1000 and q.maxsize == int(1e9)
    assert q.last_error is None and not q.is_closed()
    q.join_thread()          # no-ops, callable before close
    q.cancel_join_thread()


def test_each_message_counts_its_pickle_plus_8_bytes_like_faster_fifo():
    q = ff.Queue(max_size_bytes=1000)
    obj = dict(a=10, b=20)
    q.put_nowait(obj)
    assert q.data_size() == dumped(obj) + 8
    q.put_many_nowait([obj, obj])
    assert q.data_size() == 3 * (dumped(obj) + 8) and q.qsize() == 3
    assert q.get_many_nowait() == [obj] * 3
    assert q.data_size() == 0


def test_full_means_not_even_a_one_byte_message_fits():
    n = dumped((1, 2)) + 8
    q = ff.Queue(max_size_bytes=2 * n + 8)       # room for two, then 8 bytes: a 1-byte message needs 9
    q.put_nowait((1, 2))
    q.put_nowait((1, 2))
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait((1, 2))
    q.get()
    assert not q.full()


def test_a_message_larger_than_max_size_bytes_raises_full_without_waiting():
    q = ff.Queue(max_size_bytes=100)
    with pytest.raises(queue.Full):
        q.put(b"x" * 200, timeout=30)            # would never fit: no 30 s wait
    with pytest.raises(queue.Full):
        q.put_many([b"x" * 40, b"y" * 40], timeout=30)
    q.put(b"ok")
    assert q.get() == b"ok"


def test_close_only_marks_the_queue_closed_for_every_process():
    q = ff.Queue()
    q.close()
    assert q.is_closed()
    q.put(1)                                     # still works, as in faster-fifo
    assert q.get() == 1
    out = ipcfast.Queue()
    q.put("after close")
    p = mp.get_context("spawn").Process(target=W.report_closed_mark, args=(q, out))
    p.start()
    try:
        assert out.get(timeout=CHILD_WAIT) == (True, "after close")
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
    out.close()


def test_nonpositive_timeouts_and_block_false_do_not_wait():
    q = ff.Queue()
    for kw in ({"block": False}, {"timeout": 0}, {"timeout": -1}):
        with pytest.raises(queue.Empty):
            q.get(**kw)
        with pytest.raises(queue.Empty):
            q.get_many(**kw)


def test_put_many_of_a_non_sequence_raises_queue_error_and_sets_last_error():
    q = ff.Queue()
    with pytest.raises(ff.QueueError, match="list or tuple"):
        q.put_many(x for x in range(3))
    assert "list or tuple" in q.last_error
    q.put_many((1, 2))                           # still usable
    assert q.get_many() == [1, 2]


@pytest.mark.parametrize("kw, exc", [({"max_size_bytes": 0}, ValueError),
                                     ({"max_size_bytes": 1.5}, TypeError),
                                     ({"maxsize": 0}, ValueError),
                                     ({"maxsize": "5"}, TypeError)])
def test_bad_sizes_raise_naming_the_argument(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        ff.Queue(**kw)


def test_serializers_per_instance_and_per_subclass():
    class Upper(ff.Queue):
        def dumps(self, obj):
            return obj.upper().encode()

        def loads(self, b):
            return bytes(b).decode()

    q = Upper()
    q.put("abc")
    assert q.get() == "ABC"
    q2 = ff.Queue(dumps=lambda x: bytes([x]), loads=lambda b: b[0])
    q2.put_many([1, 2, 3])
    assert q2.get_many() == [1, 2, 3] and q2.data_size() == 0


def test_a_pickled_queue_is_the_same_queue():
    q = ff.Queue(max_size_bytes=5000, maxsize=7)
    q2 = pickle.loads(pickle.dumps(q))
    q.put("x")
    assert q2.get() == "x" and q2.maxsize == 7 and q2.max_size_bytes == 5000
    a = ff.Queue.attach(q.name)
    assert a.max_size_bytes == 5000 and a.maxsize == 7
    a.put("y")
    assert q.get() == "y"
