"""ipcfast.Queue(max_bytes=N): the byte bound kept in the queue's shared control block -
blocking and queue.Full across processes, exact counts after get / get_many / in-place
gets, put_many batches, SIGKILLed consumers, bad arguments."""
from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time

import pytest

import ipcfast
from tests.faster_fifo import workers as W
from tests.support.procs import CHILD_WAIT, join_all, kill_all, wait_for_file, wait_until


def raw_queue(max_bytes, maxsize=0, kind=ipcfast.Queue, **kw):
    """A queue whose items are bytes kept as they are: an item's size is its length."""
    return kind(maxsize, max_bytes=max_bytes, dumps=W.raw, loads=W.raw, **kw)


def test_put_nowait_raises_full_once_the_next_item_would_pass_max_bytes():
    q = raw_queue(100)
    q.put_nowait(b"a" * 60)
    q.put_nowait(b"b" * 40)            # exactly 100 held: allowed
    assert q.data_size() == 100 and q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(b"c")
    with pytest.raises(queue.Full):
        q.put(b"c", timeout=0.05)
    assert q.qsize() == 2 and q.data_size() == 100     # the refused puts left nothing
    q.close()


def test_a_blocked_put_resumes_when_a_get_frees_enough_bytes():
    q = raw_queue(100)
    q.put(b"a" * 70)
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(b"b" * 50, timeout=CHILD_WAIT), done.set()))
    t.start()
    assert not done.wait(0.2)          # 70 + 50 > 100: it waits
    assert q.get() == b"a" * 70
    assert done.wait(CHILD_WAIT)
    t.join()
    assert q.data_size() == 50
    q.close()


def test_byte_count_is_exact_after_get_get_many_and_in_place_gets():
    q = raw_queue(10 << 20)
    sizes = [1, 10, 1000, 100_000, 300_000, 7]         # 100 KB+ items are read in place
    for s in sizes:
        q.put(b"x" * s)
    assert q.data_size() == sum(sizes)
    assert len(q.get()) == 1
    assert q.data_size() == sum(sizes[1:])
    got = q.get_many(max_messages_to_get=2)
    assert [len(x) for x in got] == [10, 1000]
    assert q.data_size() == sum(sizes[3:])
    assert len(q.get()) == 100_000                      # larger than the scratch buffer
    assert q.data_size() == sum(sizes[4:])
    assert [len(x) for x in q.get_many()] == [300_000, 7]
    assert q.data_size() == 0 and q.qsize() == 0
    q.close()


def test_pickled_items_count_their_pickle_size():
    q = ipcfast.Queue(max_bytes=1 << 20)
    obj = {"a": list(range(100))}
    q.put(obj)
    assert q.data_size() == len(ipcfast._pickle.dumps(obj)) > 0
    assert q.get() == obj and q.data_size() == 0
    q.close()


def test_put_many_waits_for_room_for_the_whole_batch_and_refuses_one_that_never_fits():
    q = raw_queue(100)
    q.put(b"a" * 50)
    with pytest.raises(queue.Full):
        q.put_many([b"b" * 30, b"c" * 30], block=False)     # 60 more: not all fit
    assert q.qsize() == 1 and q.data_size() == 50           # all or nothing
    q.put_many([b"b" * 25, b"c" * 25])
    assert q.data_size() == 100
    with pytest.raises(ValueError, match="max_bytes=100"):
        q.put_many([b"d" * 60, b"e" * 60])                 # 120 > 100 even when empty
    with pytest.raises(ValueError, match="max_bytes=100"):
        q.put(b"f" * 101)                                   # one item larger than the bound
    assert q.get_many() == [b"a" * 50, b"b" * 25, b"c" * 25]
    q.put(b"g" * 100)                                       # still usable, bound intact
    assert q.data_size() == 100
    q.close()


def test_joinable_queue_takes_max_bytes():
    q = raw_queue(10, kind=ipcfast.JoinableQueue)
    q.put(b"0123456789")
    with pytest.raises(queue.Full):
        q.put_nowait(b"x")
    q.get()
    q.task_done()
    q.join()
    assert q.max_bytes == 10
    q.close()


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1 << 62, ValueError), (1.5, TypeError),
                                      (True, TypeError), ("10", TypeError), (None, TypeError)])
def test_bad_max_bytes_raises_naming_it(bad, exc):
    with pytest.raises(exc, match="max_bytes"):
        ipcfast.Queue(max_bytes=bad)


def test_max_bytes_is_keyword_only():
    with pytest.raises(TypeError):
        ipcfast.Queue(0, None, 1 << 20, None, None, None, 100)


def test_no_byte_bound_by_default():
    q = raw_queue(0)
    q.put(b"x" * 3_000_000)
    assert q.max_bytes == 0 and not q.full() and q.data_size() == 3_000_000
    q.get()
    q.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_producer_process_is_held_to_max_bytes_until_the_consumer_drains(method):
    import multiprocessing as mp
    ctx = mp.get_context(method)
    q = raw_queue(1000)
    items = [bytes([i]) * 100 for i in range(30)]           # 3000 bytes through a 1000 bound
    p = ctx.Process(target=W.put_all, args=(q, items))
    p.start()
    try:
        wait_until(lambda: q.qsize() == 10, what="the producer filled the bound")
        time.sleep(0.2)
        assert q.qsize() == 10 and q.data_size() == 1000    # blocked, not past the bound
        got = []
        while len(got) < 30:
            got.extend(q.get_many(timeout=CHILD_WAIT, max_messages_to_get=3))
            assert q.data_size() <= 1000
        assert got == items
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
    q.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_put_nowait_in_another_process_raises_full_at_the_shared_bound(method):
    import multiprocessing as mp
    ctx = mp.get_context(method)
    q = ipcfast.Queue(max_bytes=1000)
    size = len(ipcfast._pickle.dumps(b"x" * 90))
    out = ipcfast.Queue()
    p = ctx.Process(target=W.put_nowait_until_full, args=(q, 90, out))
    p.start()
    try:
        assert out.get(timeout=CHILD_WAIT) == 1000 // size
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
    assert q.data_size() == (1000 // size) * size
    q.close()
    out.close()


def test_a_consumer_killed_mid_get_leaves_the_item_and_its_bytes_counted(tmp_path):
    """Killed while unpickling in place (the consumer side held): the item stays, counted
    once; the next get takes it and the bound is whole again."""
    import multiprocessing as mp
    q = raw_queue(300_000)
    big = b"B" * 200_000                         # read in place (larger than the scratch)
    q.put(big)
    flag = str(tmp_path / "in-loads")
    p = mp.get_context("fork").Process(target=W.get_forever_with, args=(q.name, flag))
    p.start()
    try:
        wait_for_file(flag)
        assert os.path.exists(flag), "the consumer never reached loads"
        os.kill(p.pid, signal.SIGKILL)
        p.join(CHILD_WAIT)
    finally:
        kill_all([p])
    assert q.data_size() == 200_000 and q.qsize() == 1
    with pytest.raises(queue.Full):
        q.put_nowait(b"x" * 100_001)
    assert q.get(timeout=CHILD_WAIT) == big
    assert q.data_size() == 0 and q.qsize() == 0
    q.put_nowait(b"y" * 300_000)                # the whole bound is usable again
    assert q.data_size() == 300_000
    q.close()


def test_consumers_killed_at_random_moments_leave_exact_counts():
    """Kill consumers at random points of their get / get_many loops while a producer fills
    the bound; once drained, the count is 0 and a new fill is counted exactly (no byte lost
    from or added to the count, whatever step a consumer died in). A random kill seldom
    lands between counting and moving the head: the tests below put a holder exactly there."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    q = raw_queue(5000)
    rnd = random.Random(1234)
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            try:
                q.put(b"p" * (1 + i % 300), timeout=0.05)
                i += 1
            except queue.Full:
                pass

    t = threading.Thread(target=produce)
    t.start()
    procs = []
    try:
        for _ in range(12):
            p = ctx.Process(target=W.get_many_in_a_loop, args=(q.name,))
            p.start()
            procs.append(p)
            time.sleep(rnd.uniform(0.05, 0.3))
            os.kill(p.pid, signal.SIGKILL)
            p.join(CHILD_WAIT)
            assert q.data_size() <= 5000
    finally:
        stop.set()
        t.join()
        kill_all(procs)
    while True:
        try:
            q.get_many(timeout=0.2)
        except queue.Empty:
            break
    assert q.qsize() == 0 and q.data_size() == 0
    for s in (1000, 2000, 2000):
        q.put_nowait(b"z" * s)
    assert q.data_size() == 5000
    with pytest.raises(queue.Full):
        q.put_nowait(b"z")
    q.close()


# ---- the journal's repair, from a state a killed consumer leaves ----

def _ctl(struct: str, *fields: str) -> int:
    from ipcfast._native import ffi, lib
    off = lib.IPCF_CTL_OFFSET
    for s, f in zip((struct, "struct ipcf_qjournal"), fields):
        off += ffi.offsetof(s, f)
    return off


def _ring_head_offset() -> int:
    from ipcfast._native import ffi, lib
    return lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_ring_ctl", "head")


def _read(name: str, off: int) -> int:
    from tests.support.shm import path
    fd = os.open(path(name), os.O_RDONLY)
    try:
        return int.from_bytes(os.pread(fd, 8, off), "little")
    finally:
        os.close(fd)


def _write(name: str, off: int, value: int) -> None:
    from tests.support.shm import path
    fd = os.open(path(name), os.O_RDWR)      # the same tmpfs pages every mapping sees
    try:
        os.pwrite(fd, value.to_bytes(8, "little"), off)
    finally:
        os.close(fd)


@pytest.mark.parametrize("head_moved", [False, True])
def test_a_consumer_killed_between_counting_and_moving_the_head_is_repaired_exactly(tmp_path, head_moved):
    """Leave the consumer lock to a dead holder with the journal of a consume in progress -
    counted but the head not moved (or moved, counts done) - as SIGKILL at that instruction
    would. The next consumer's repair makes the count exact: the bound is neither looser
    (the item counted twice) nor tighter than what is held."""
    import multiprocessing as mp
    Q = "struct ipcf_queue_ctl"
    L = 100_000                                       # in place: the consumer lock is held in loads
    q = raw_queue(3 * L)
    if head_moved:
        q.put(b"0" * L)
        q.get()                                       # a step that did happen
    q.put(b"1" * L)
    q.put(b"2" * L)
    flag = str(tmp_path / "in-loads")
    p = mp.get_context("fork").Process(target=W.get_forever_with, args=(q.name, flag))
    p.start()
    try:
        wait_for_file(flag)
        assert os.path.exists(flag), "the consumer never reached loads"
        gen = _read(q.name, _ctl(Q, "read_gen"))
        ring = f"{q.name}.{gen}"
        head = _read(ring, _ring_head_offset())
        items, got = _read(q.name, _ctl(Q, "items_got")), _read(q.name, _ctl(Q, "bytes_got"))
        rec = (8 + L + 7) & ~7
        if head_moved:      # the step before ours: the head reached pos, the counts include it
            j = dict(pos=head, items=items - 1, bytes=got - L)
        else:               # ours: counted, head not moved yet
            j = dict(pos=head + rec, items=items, bytes=got)
            _write(q.name, _ctl(Q, "items_got"), items + 1)
            _write(q.name, _ctl(Q, "bytes_got"), got + L)
        for f in ("pos", "items", "bytes"):
            _write(q.name, _ctl(Q, "get_j", f), j[f])
        _write(q.name, _ctl(Q, "get_j", "n"), 1)
        _write(q.name, _ctl(Q, "get_j", "len"), L)
        _write(q.name, _ctl(Q, "get_j", "gen"), gen + 1)
        os.kill(p.pid, signal.SIGKILL)
        p.join(CHILD_WAIT)
    finally:
        kill_all([p])
    assert q.get(timeout=CHILD_WAIT) == b"1" * L      # takes the lock from the dead holder
    assert _read(q.name, _ctl(Q, "get_j", "gen")) == 0
    assert q.qsize() == 1 and q.data_size() == L      # exact: item "2" only
    q.put_nowait(b"3" * (2 * L))                      # the bound is whole ...
    with pytest.raises(queue.Full):
        q.put_nowait(b"4")                            # ... and not one byte looser
    assert [len(x) for x in q.get_many(max_messages_to_get=2)] == [L, 2 * L]
    assert q.data_size() == 0
    q.close()


FUTEX_OWNER_DIED = 0x40000000


def test_a_producer_killed_between_publishing_and_counting_is_repaired_exactly():
    """The producer lock as a producer SIGKILLed after publishing its record but before
    counting it leaves it: its futex word marked owner-died by the kernel (written here),
    the journal of the put, the counts without the item. The next producer's repair counts
    it: the bound stays exact instead of one item looser."""
    Q = "struct ipcf_queue_ctl"
    L = 400
    q = raw_queue(1000)
    q.put(b"1" * L)                                   # published and counted ...
    gen = _read(q.name, _ctl(Q, "write_gen"))
    tail = _read(f"{q.name}.{gen}", _ring_tail_offset())
    items, put = _read(q.name, _ctl(Q, "items_put")), _read(q.name, _ctl(Q, "bytes_put"))
    _write(q.name, _ctl(Q, "items_put"), items - 1)   # ... uncounted, as the killed one left it
    _write(q.name, _ctl(Q, "bytes_put"), put - L)
    for f, v in (("pos", tail), ("items", items - 1), ("bytes", put - L), ("n", 1), ("len", L)):
        _write(q.name, _ctl(Q, "put_j", f), v)
    _write(q.name, _ctl(Q, "put_j", "gen"), gen + 1)
    _write4(q.name, _ctl(Q, "plock"), FUTEX_OWNER_DIED)
    assert q.data_size() == 0                          # the count a kill there leaves
    q.put_nowait(b"2" * L)                             # takes the lock from the "dead" holder
    assert _read(q.name, _ctl(Q, "put_j", "gen")) == 0
    assert q.qsize() == 2 and q.data_size() == 2 * L   # both counted: exact again
    with pytest.raises(queue.Full):
        q.put_nowait(b"3" * L)                         # 1200 > 1000: not one item looser
    assert q.get_many() == [b"1" * L, b"2" * L]
    assert q.data_size() == 0
    q.close()


def _ring_tail_offset() -> int:
    from ipcfast._native import ffi, lib
    return lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_ring_ctl", "tail")


def _write4(name: str, off: int, value: int) -> None:
    from tests.support.shm import path
    fd = os.open(path(name), os.O_RDWR)
    try:
        os.pwrite(fd, value.to_bytes(4, "little"), off)
    finally:
        os.close(fd)
