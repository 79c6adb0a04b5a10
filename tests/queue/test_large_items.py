"""Large items through ipcfast.Queue: one copy in (the pickler's pieces written straight into
the ring), one copy out (unpickled in place), no new segment per item, and what happens when
a peer dies or unpickling fails half-way. numpy arrays: test_numpy_items.py."""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import zlib

import pytest

import ipcfast
from ipcfast import _segments as S
from tests.queue.workers import pattern
from tests.support.procs import CHILD_WAIT
from tests.support.shm import ring_segments, run_with_small_shm

MiB = 1 << 20


@pytest.fixture
def make():
    made = []

    def factory(**kw):
        q = ipcfast.Queue(**kw)
        made.append(q)
        return q

    yield factory
    for q in made:
        q.close()


def generations(q) -> int:
    """How many rings the queue has made so far (its write generation)."""
    return S.inspect(q.name).counters[6]


def ring_sizes(q) -> list:
    return [os.path.getsize(S.path(r)) for r in ring_segments(q.name)]


# ---------------------------------------------------------------- ring reuse

def test_items_larger_than_the_ring_reuse_one_grown_ring_instead_of_a_segment_each(make):
    q = make(capacity=64 << 10)
    for i in range(40):
        item = pattern(MiB + i)
        q.put(item)
        assert q.get(timeout=10) == item
    assert generations(q) == 1, "a new ring per item (or more than one growth)"


def test_a_grown_ring_holds_several_large_items_so_a_producer_can_run_ahead(make):
    q = make(capacity=64 << 10)
    items = [pattern(MiB + i) for i in range(3)]
    for item in items:
        q.put(item)
    assert generations(q) == 1
    assert [q.get(timeout=10) for _ in items] == items


def test_a_grown_ring_is_given_back_once_small_items_have_filled_it_over(make):
    q = make(capacity=64 << 10)
    q.put(pattern(MiB))
    assert q.get(timeout=10) == pattern(MiB)
    grown = max(ring_sizes(q))
    assert grown > 2 * MiB
    small = pattern(1000)
    for _ in range(3 * grown // 1000):
        q.put(small)
        assert q.get(timeout=10) == small
    assert max(ring_sizes(q)) < grown, "the grown ring is kept for small traffic forever"
    assert generations(q) == 2


def test_interleaved_small_and_large_items_keep_fifo_order(make):
    q = make(capacity=16 << 10)
    items = []
    for i in range(30):
        items += [i, pattern((i % 4 + 1) * 300_000), "x" * i]
    for item in items:
        q.put(item)
    assert [q.get(timeout=10) for _ in items] == items


# ---------------------------------------------------------------- one copy each way

def test_a_mutable_payload_changed_right_after_put_arrives_as_it_was_put(make):
    q = make()
    buf = bytearray(pattern(3 * MiB))
    q.put(buf)                      # written into shared memory before put returns
    buf[:4] = b"XXXX"
    got = q.get(timeout=10)
    assert type(got) is bytearray and got == bytearray(pattern(3 * MiB))


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_custom_dumps_may_return_any_bytes_like_object(make, kind):
    q = make(dumps=lambda obj: kind(obj), loads=bytes)
    q.put(pattern(200_000))
    q.put(b"small")
    assert q.get(timeout=10) == pattern(200_000)
    assert q.get(timeout=10) == b"small"


def test_an_item_of_many_pickle_frames_round_trips(make):
    q = make(capacity=64 << 10)
    item = [(i, str(i), float(i)) for i in range(100_000)]      # ~2 MB of small objects
    q.put(item)
    assert q.get(timeout=10) == item


class FailsToUnpickle:
    """Pickles fine; raises when unpickled (the payload makes it go the in-place path)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self):
        return (_refuse, (self.payload,))


def _refuse(payload):
    raise RuntimeError(f"refusing to unpickle {len(payload)} bytes")


def test_an_item_failing_to_unpickle_in_place_raises_and_frees_the_consumer_side(make):
    q = make()
    q.put(FailsToUnpickle(pattern(MiB)))
    q.put("next")
    with pytest.raises(RuntimeError, match="refusing to unpickle"):
        q.get(timeout=10)
    assert q.get(timeout=10) == "next"          # the failed item is gone, as in multiprocessing
    other = ipcfast.Queue.attach(q.name)        # and another handle is not locked out
    try:
        other.put("again")
        assert other.get(timeout=5) == "again"
    finally:
        other.close()


def test_threads_taking_large_items_in_place_each_get_every_item_once(make):
    q = make(capacity=64 << 10)
    n = 40
    for i in range(n):
        q.put((i, pattern(200_000 + i)))
    got, errors = [], []

    def take():
        try:
            while True:
                i, data = q.get(timeout=0.5)
                if data != pattern(200_000 + i):
                    errors.append(i)
                got.append(i)
        except queue.Empty:
            pass

    threads = [threading.Thread(target=take) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(got) == list(range(n))


# ---------------------------------------------------------------- peers killed mid-item

class SlowToUnpickle:
    """Unpickling it signals *flag* and sleeps: a consumer stuck half-way through an item."""

    def __init__(self, payload: bytes, flag_path: str) -> None:
        self.payload, self.flag_path = payload, flag_path

    def __reduce__(self):
        return (_slow, (self.payload, self.flag_path))


def _slow(payload, flag_path):
    if os.environ.get("IPCFAST_TEST_SLOW_UNPICKLE") == flag_path:
        with open(flag_path, "w") as f:
            f.write("in")
        threading.Event().wait(60)
    return zlib.crc32(payload)


def _take_one(name: str, flag_path: str) -> None:
    os.environ["IPCFAST_TEST_SLOW_UNPICKLE"] = flag_path
    q = ipcfast.Queue.attach(name)
    q.get(timeout=CHILD_WAIT)


@pytest.mark.timeout(60)
def test_a_consumer_killed_while_unpickling_in_place_leaves_the_item_to_the_next(make, tmp_path):
    q = make()
    flag = str(tmp_path / "flag")
    q.put(SlowToUnpickle(pattern(MiB), flag))
    q.put("after")
    p = mp.get_context("spawn").Process(target=_take_one, args=(q.name, flag))
    p.start()
    try:
        for _ in range(600):
            if os.path.exists(flag):
                break
            p.join(0.05)
        assert os.path.exists(flag), "the child never started unpickling"
        with pytest.raises(queue.Empty):         # the item is held while it is read...
            q.get(timeout=0.3)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    assert q.get(timeout=10) == zlib.crc32(pattern(MiB))    # ... and not lost with its reader
    assert q.get(timeout=10) == "after"


def _put_big_items_forever(name: str) -> None:
    q = ipcfast.Queue.attach(name)
    i = 0
    while True:
        data = pattern(4 * MiB + i)
        q.put((i, zlib.crc32(data), data))
        i += 1


@pytest.mark.timeout(90)
def test_producers_killed_mid_put_of_large_items_leave_only_whole_items(make):
    q = make(capacity=64 << 10)
    ctx = mp.get_context("fork")
    got = 0
    for round_ in range(6):
        p = ctx.Process(target=_put_big_items_forever, args=(q.name,))
        p.start()
        p.join(0.05 + 0.03 * round_)            # killed somewhere inside a put
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        while True:
            try:
                i, crc, data = q.get(timeout=0.2)
            except queue.Empty:
                break
            assert zlib.crc32(data) == crc and len(data) == 4 * MiB + i
            got += 1
    q.put("still works")
    assert q.get(timeout=5) == "still works"
    assert got > 0


# ---------------------------------------------------------------- limits

NO_ROOM_FOR_A_BIG_ITEM = """
import errno, ipcfast
q = ipcfast.Queue(capacity=1 << 18)     # a 256 KiB ring on a 1 MiB /dev/shm ...
try:
    q.put(b"x" * (3 << 20))              # ... cannot take a 3 MiB item
except OSError as exc:
    print("refused", errno.errorcode.get(exc.errno), exc, flush=True)
q.put("small")
print("then", q.get(timeout=5), q.qsize(), flush=True)
q.close()
"""


@pytest.mark.timeout(60)
def test_an_item_too_large_for_dev_shm_raises_enospc_naming_its_size_and_the_queue_stays_usable():
    res = run_with_small_shm(NO_ROOM_FOR_A_BIG_ITEM)
    if res is None:
        pytest.skip("needs unshare -m and permission to mount a tmpfs")
    assert res.returncode == 0, res.stderr[-800:]
    refused, then = res.stdout.splitlines()
    assert refused.startswith("refused ENOSPC") and "item of 3145" in refused, refused
    assert then == "then small 0"


def test_pickle_protocol_5_out_of_band_objects_travel_in_band(make):
    q = make()
    pb = pickle.PickleBuffer(bytearray(pattern(300_000)))
    q.put(pb)
    got = q.get(timeout=10)
    assert bytes(got) == pattern(300_000)


# ---------------------------------------------------------------- held batches (the bridge's)

def test_held_items_leave_the_queue_only_when_the_block_ends_normally(make):
    q = make(dumps=bytes, loads=bytes)
    q.put_many([b"a", b"bb", pattern(100_000), b"c"])
    with pytest.raises(KeyError):
        with q._held(3, timeout=5) as datas:
            assert datas == [b"a", b"bb", pattern(100_000)]
            raise KeyError("not forwarded")
    assert q.qsize() == 4
    with q._held(2, timeout=5) as datas:
        assert datas == [b"a", b"bb"]
    assert q.get(timeout=5) == pattern(100_000)
    with q._held(2, timeout=5) as datas:
        assert datas == [b"c"]
        seen = []                             # the consumer side is held meanwhile
        t = threading.Thread(target=lambda: seen.append(
            pytest.raises(queue.Empty, q.get, timeout=0.2)))
        t.start()
        t.join(10)
        assert seen
    assert q.empty()
