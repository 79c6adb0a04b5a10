"""ipcfast.Queue features multiprocessing does not have, in one process: the chain of rings
that grows when consumers lag and is given back as they catch up, messages larger than a
ring, errors raised in the caller's put, custom serialisers, put_many/get_many, names,
attach and pickled handles.
"""
from __future__ import annotations

import collections
import os
import pickle
import queue
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ipcfast
from tests.queue.workers import (json_dumps, json_loads, pattern, raw_dumps, raw_loads,
                                 start_thread)
from tests.support.procs import REPO_ROOT, run_python
from tests.support.shm import new_name, remove_segments, ring_segments, segments

HYPOTHESIS = settings(deadline=None, max_examples=60,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
SMALL = 4096            # the smallest ring: a few dozen small items fill it


@pytest.fixture
def make():
    """make(maxsize=0, **kw) / make(cls=..., ...) -> an ipcfast queue closed after the test."""
    made = []

    def factory(*args, cls=ipcfast.Queue, **kw):
        q = cls(*args, **kw)
        made.append(q)
        return q

    yield factory
    for q in made:
        q.close()


# ---------------------------------------------------------------- unbounded growth

def test_unbounded_queue_with_small_rings_never_blocks_or_raises_full(make):
    q = make(capacity=SMALL)
    n = 3000                                     # ~700 KB of records: ~170 rings of 4 KiB
    for i in range(n):
        q.put((i, b"v" * 200), block=False)
    for i in range(n, n + 500):
        q.put((i, b"v" * 200), timeout=0)
    assert q.qsize() == n + 500 and not q.full()
    assert len(ring_segments(q.name)) > 100
    assert [q.get_nowait()[0] for _ in range(n + 500)] == list(range(n + 500))


def test_drained_rings_are_removed_from_dev_shm_as_consumers_catch_up(make):
    q = make(capacity=SMALL)
    for i in range(2000):
        q.put((i, b"w" * 200))
    grown = len(ring_segments(q.name))
    assert grown > 50
    assert [q.get_nowait()[0] for _ in range(1000)] == list(range(1000))
    half = len(ring_segments(q.name))
    assert half < grown * 0.6, f"{grown} rings before draining half, {half} after"
    assert [q.get_nowait()[0] for _ in range(1000, 2000)] == list(range(1000, 2000))
    # what is left: the control segment and the one ring producers append to
    left = segments(q.name)
    assert len(left) == 2 and q.name in left and len(ring_segments(q.name)) == 1, left
    q.put("again")                                # and it keeps working
    assert q.get_nowait() == "again"


def test_ring_capacity_is_rounded_up_to_a_power_of_two(make):
    assert make(capacity=5000).capacity == 8192
    assert make(capacity=SMALL).capacity == SMALL
    assert make().capacity == 1 << 20


@pytest.mark.parametrize("capacity", [0, -1, 4095, 1.5, "4096", True, 2**41])
def test_invalid_capacity_raises_value_error(capacity):
    with pytest.raises(ValueError):
        ipcfast.Queue(capacity=capacity)


@pytest.mark.parametrize("maxsize", [1.5, "3", None, True])
def test_maxsize_that_is_not_an_int_raises_type_error(maxsize):
    with pytest.raises(TypeError):
        ipcfast.Queue(maxsize)


@pytest.mark.parametrize("maxsize", [2**63, 2**64 - 1])
def test_huge_maxsize_raises_value_error(maxsize):
    # Queue(): a maxsize of 2**62 or more is refused ("use 0 for an unbounded queue")
    with pytest.raises(ValueError, match="too large"):
        ipcfast.Queue(maxsize)


def test_maxsize_property_reports_the_bound_and_zero_for_unbounded(make):
    assert make(7).maxsize == 7
    assert make(0).maxsize == 0
    assert make(-3).maxsize == 0


# ---------------------------------------------------------------- messages larger than a ring

@pytest.mark.parametrize("size", [
    SMALL - 8 - 40,              # fits the ring with its header and pickle framing
    SMALL, SMALL + 1, 3 * SMALL,
    (5 << 20) + 3,               # 5 MiB into a 4 KiB ring
])
def test_message_larger_than_the_ring_gets_through_in_order_with_its_neighbours(make, size):
    q = make(capacity=SMALL)
    big = pattern(size)
    q.put("before")
    q.put(big)
    q.put("after")
    q.put(big[::-1])
    assert q.get(timeout=10) == "before"
    assert q.get(timeout=10) == big
    assert q.get(timeout=10) == "after"
    assert q.get(timeout=10) == big[::-1]
    assert len(ring_segments(q.name)) == 1       # the big message's own ring is gone


def test_big_messages_in_a_bounded_queue_count_as_one_item_each(make):
    q = make(2, capacity=SMALL)
    q.put(pattern(100_000))
    q.put(pattern(3))
    with pytest.raises(queue.Full):
        q.put_nowait("x")
    assert q.get_nowait() == pattern(100_000)
    q.put_nowait(pattern(50_000))
    assert q.get_nowait() == pattern(3)
    assert q.get_nowait() == pattern(50_000)


FITS = SMALL - 8                 # the largest payload a ring of SMALL bytes holds
raw_size = st.one_of(
    st.integers(0, 64),
    st.sampled_from([FITS - 1, FITS, FITS + 1, SMALL, 2 * SMALL - 8, 2 * SMALL + 1]),
    st.integers(0, 3 * SMALL),
)
# put_many batches only of items that fit a ring: a batch with a larger item after a smaller
# one corrupts the queue and crashes the process (see
# test_put_many_of_a_small_item_then_one_larger_than_the_ring_round_trips); single puts of
# such items are covered here.
fitting_size = st.one_of(st.integers(0, 64), st.sampled_from([FITS - 1, FITS]),
                         st.integers(0, FITS))
op = st.one_of(
    st.tuples(st.just("put"), raw_size),
    st.tuples(st.just("put_many"), st.lists(fitting_size, min_size=1, max_size=6)),
    st.tuples(st.just("get"), st.just(0)),
    st.tuples(st.just("get_many"), st.integers(1, 8)),
)


@HYPOTHESIS
@given(ops=st.lists(op, max_size=60), seed=st.integers(0, 2**32 - 1))
def test_any_mix_of_sizes_and_calls_comes_out_byte_exact_and_in_order(ops, seed):
    # Raw serialiser, so the record is exactly the payload: sizes hit the ring's edges,
    # zero-length records, records wrapping the end, oversized rings and chain growth.
    run_ops_against_a_model(ops, seed)


@pytest.mark.stress
@settings(HYPOTHESIS, max_examples=2000)
@given(ops=st.lists(op, max_size=200), seed=st.integers(0, 2**32 - 1))
def test_stress_any_mix_of_sizes_and_calls_comes_out_byte_exact_and_in_order(ops, seed):
    run_ops_against_a_model(ops, seed)


def run_ops_against_a_model(ops, seed):
    q = ipcfast.Queue(capacity=SMALL, dumps=raw_dumps, loads=raw_loads)
    model = collections.deque()
    counter = [seed]

    def payload(n):                              # exactly n bytes, each payload distinct
        counter[0] += 1
        return os.urandom(n) if n < 64 else pattern(n - 8)[::-1] + counter[0].to_bytes(8, "little")

    try:
        for kind, arg in ops:
            if kind == "put":
                p = payload(arg)
                q.put(p)
                model.append(p)
            elif kind == "put_many":
                ps = [payload(n) for n in arg]
                q.put_many(ps)
                model.extend(ps)
            elif kind == "get":
                if model:
                    assert q.get_nowait() == model.popleft()
                else:
                    with pytest.raises(queue.Empty):
                        q.get_nowait()
            else:
                if model:
                    got = q.get_many(block=False, max_messages_to_get=arg)
                    assert 1 <= len(got) <= arg
                    assert got == [model.popleft() for _ in got]
                else:
                    with pytest.raises(queue.Empty):
                        q.get_many(block=False, max_messages_to_get=arg)
            assert q.qsize() == len(model)
        while model:
            assert q.get_nowait() == model.popleft()
        with pytest.raises(queue.Empty):
            q.get_nowait()
        assert len(ring_segments(q.name)) == 1
    finally:
        q.close()


# ---------------------------------------------------------------- errors raised where they happen

UNPICKLABLE = [
    pytest.param(lambda: None, id="lambda"),
    pytest.param(threading.Lock(), id="lock"),
    pytest.param((b"x" * 100_000, "ok", threading.Lock()), id="lock-after-100kB-pickled"),
    pytest.param({"gen": (i for i in range(3))}, id="generator-in-dict"),
]


@pytest.mark.parametrize("bad", UNPICKLABLE)
def test_putting_an_unpicklable_object_raises_in_put_and_nothing_reaches_the_queue(make, bad):
    # multiprocessing raises this later, in its feeder thread, and drops the item
    q = make(1)
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        q.put(bad)
    assert q.qsize() == 0 and q.empty()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait(["fine", 1])                    # the failed put took no room either
    assert q.get_nowait() == ["fine", 1]


@pytest.mark.parametrize("bad", UNPICKLABLE)
def test_put_many_with_one_unpicklable_object_raises_and_puts_none_of_them(make, bad):
    q = make()
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        q.put_many(["a", "b", bad, "c"])
    assert q.qsize() == 0
    q.put_many(["d", "e"])
    assert q.get_many(block=False) == ["d", "e"]


def test_a_failed_pickle_does_not_corrupt_the_next_put(make):
    q = make()
    shared = ["shared"]
    for _ in range(3):
        with pytest.raises((pickle.PicklingError, TypeError)):
            q.put([shared, b"y" * 70_000, threading.Lock()])
        q.put([shared, shared, 1])
    for _ in range(3):
        got = q.get_nowait()
        assert got == [["shared"], ["shared"], 1] and got[0] is got[1]


def test_objects_with_a_failing_reduce_raise_their_own_error_in_put(make):
    class Boom:
        def __reduce__(self):
            raise RuntimeError("no pickling today")

    q = make()
    with pytest.raises(RuntimeError, match="no pickling today"):
        q.put(Boom())
    assert q.empty()


def test_custom_dumps_and_loads_are_used_for_every_item(make):
    q = make(dumps=json_dumps, loads=json_loads)
    q.put((1, 2))
    q.put({"a": None})
    q.put_many([[3], "s"])
    assert q.get_nowait() == [1, 2]              # JSON: the tuple comes back as a list
    assert q.get_many(block=False) == [{"a": None}, [3], "s"]
    with pytest.raises(TypeError):
        q.put({1, 2})                            # JSON cannot encode a set: raised in put
    assert q.empty()


def test_identity_serialiser_carries_empty_and_binary_messages(make):
    q = make(dumps=raw_dumps, loads=raw_loads)
    msgs = [b"", b"\x00", b"\x00" * 7, os.urandom(70_000), b""]
    for m in msgs:
        q.put(m)
    assert [q.get_nowait() for _ in msgs] == msgs


# ---------------------------------------------------------------- put_many / get_many

def test_put_many_then_get_many_preserve_order(make):
    q = make()
    q.put_many(range(100))
    q.put("tail")
    got = []
    while len(got) < 101:
        got += q.get_many(timeout=10)
    assert got == list(range(100)) + ["tail"]


def test_put_many_accepts_any_iterable(make):
    q = make()
    q.put_many(i * i for i in range(5))
    q.put_many({"k": 1})
    q.put_many(())
    assert q.get_many(block=False) == [0, 1, 4, 9, 16, "k"]


def test_put_many_of_nothing_puts_nothing_even_on_a_full_queue(make):
    q = make(1)
    q.put(0)
    q.put_many([], block=False)
    assert q.qsize() == 1


@pytest.mark.parametrize("k", [1, 2, 7, 50, 1000])
def test_get_many_returns_at_most_max_messages_to_get(make, k):
    q = make()
    q.put_many(range(50))
    got = q.get_many(block=False, max_messages_to_get=k)
    assert got == list(range(min(k, 50)))
    assert q.qsize() == 50 - len(got)


@pytest.mark.parametrize("k", [0, -1])
def test_get_many_with_max_messages_to_get_below_one_raises_value_error(make, k):
    q = make()
    q.put(1)
    with pytest.raises(ValueError):
        q.get_many(max_messages_to_get=k)
    assert q.qsize() == 1


def test_get_many_on_an_empty_queue_raises_empty_at_once_or_after_the_timeout(make):
    q = make()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_many(block=False)
    assert time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.2)
    assert 0.2 <= time.monotonic() - t0 < 5.0


@pytest.mark.timeout(60)
def test_get_many_blocks_until_an_item_arrives(make):
    q = make()
    got = []
    t = start_thread(lambda: got.append(q.get_many(timeout=30)))
    time.sleep(0.2)
    assert not got
    q.put_many(["a", "b"])
    t.join(10)
    assert got and got[0] in (["a", "b"], ["a"])


def test_get_many_moves_more_than_its_batch_buffer_over_several_calls(make):
    q = make()
    items = [pattern(300_000 + i) for i in range(6)]      # ~1.8 MB in all
    q.put_many(items)
    got, calls = [], 0
    while len(got) < len(items):
        got += q.get_many(block=False)
        calls += 1
    assert got == items and calls >= 2


@pytest.mark.timeout(60)
def test_blocking_get_many_keeps_waiting_when_another_consumer_wins_its_big_item(make):
    # The race is made deterministic by holding this handle's get() (which get_many falls
    # back to for an item bigger than its buffer) until another handle has taken the item.
    q = make()
    other = make(cls=ipcfast.Queue.attach, name=q.name)
    big = pattern(2 << 20)
    q.put(big)
    entered, taken = threading.Event(), threading.Event()
    real_get = q.get

    def get_after_the_other_consumer(*args, **kwargs):
        entered.set()
        taken.wait(10)
        return real_get(*args, **kwargs)

    q.get = get_after_the_other_consumer
    result = []

    def consumer():
        try:
            result.append(q.get_many(timeout=10))
        except queue.Empty:
            result.append("Empty")

    t = start_thread(consumer)
    try:
        assert entered.wait(5), "get_many did not fall back to get() for an item bigger " \
                                "than its batch buffer"
        assert other.get(timeout=5) == big       # ... and another consumer won the race
    finally:
        taken.set()
    time.sleep(0.3)
    other.put("later")
    t.join(20)
    assert result == [["later"]], result


def test_get_many_returns_an_item_larger_than_its_batch_buffer_alone(make):
    q = make()
    big = pattern(3 << 20)
    q.put_many([big, "small"])
    assert q.get_many(block=False) == [big]
    assert q.get_many(block=False) == ["small"]


def test_put_many_filling_several_small_rings_in_one_call_keeps_order(make):
    q = make(capacity=SMALL, dumps=raw_dumps, loads=raw_loads)
    items = [pattern(n) for n in (10, 3000, 1, 4000, 2000, 3, 0, FITS)] * 3
    q.put_many(items)
    assert len(ring_segments(q.name)) >= 3       # the one call crossed from ring to ring
    got = []
    while len(got) < len(items):
        got += q.get_many(block=False, max_messages_to_get=3)
    assert got == items


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sizes", [(1000, 5000), (1537, 4363), (10, 5000, 1, 20_000, 3)])
def test_put_many_of_a_small_item_then_one_larger_than_the_ring_round_trips(sizes):
    # in a fresh interpreter: the bug crashes the process
    name = new_name()
    code = f"""
import ipcfast
from tests.queue.workers import pattern
q = ipcfast.Queue(capacity={SMALL}, name={name!r})
items = [pattern(n) for n in {sizes!r}]
q.put_many(items)
got = [q.get(timeout=10) for _ in items]
q.close()
print("OK" if got == items else "MISMATCH")
"""
    try:
        r = run_python(code, timeout=30, env={"PYTHONPATH": REPO_ROOT})
    finally:
        left = remove_segments(name)
    assert r.returncode == 0 and r.stdout.strip() == "OK", (r.returncode, r.stdout,
                                                              r.stderr[-2000:])
    assert not left


def test_put_many_of_more_items_than_maxsize_raises_value_error_and_puts_nothing(make):
    q = make(3)
    with pytest.raises(ValueError):
        q.put_many(range(4))
    with pytest.raises(ValueError):
        q.put_many(range(4), block=False)
    assert q.qsize() == 0
    q.put_many(range(3), block=False)             # exactly maxsize fits an empty queue
    assert q.full()


def test_put_many_that_does_not_fit_raises_full_at_once_and_puts_none(make):
    q = make(4)
    q.put_many([0, 1])
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put_many([2, 3, 4], block=False)
    assert time.monotonic() - t0 < 1.0
    assert q.qsize() == 2
    q.put_many([2, 3], block=False)               # what does fit goes in
    assert q.get_many(block=False) == [0, 1, 2, 3]


def test_put_many_that_does_not_fit_raises_full_after_the_timeout_and_puts_none(make):
    q = make(4)
    q.put_many([0, 1, 2])
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put_many([3, 4], timeout=0.2)
    assert 0.2 <= time.monotonic() - t0 < 5.0
    assert q.get_many(block=False) == [0, 1, 2]


@pytest.mark.timeout(60)
def test_put_many_waits_until_every_item_fits_then_puts_them_all(make):
    q = make(4)
    q.put_many([0, 1, 2])
    done = threading.Event()
    t = start_thread(lambda: (q.put_many(["a", "b", "c"], timeout=30), done.set()))
    assert not done.wait(0.2)
    assert q.get_nowait() == 0                    # 2 queued + 3 > 4: still waiting
    assert not done.wait(0.3), "put_many went in before all of its items fitted"
    assert q.qsize() == 2
    assert q.get_nowait() == 1                    # 1 + 3 <= 4: now it fits
    assert done.wait(10)
    t.join(10)
    assert q.get_many(block=False) == [2, "a", "b", "c"]


@pytest.mark.parametrize("call", ["put_many", "get_many", "qsize", "empty", "put", "get"])
def test_every_call_after_close_raises_value_error_mentioning_closed(make, call):
    q = make()
    q.put(1)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        {"put_many": lambda: q.put_many([1]), "get_many": lambda: q.get_many(block=False),
         "qsize": q.qsize, "empty": q.empty, "put": lambda: q.put(2),
         "get": lambda: q.get(block=False)}[call]()


# ---------------------------------------------------------------- names, attach, pickled handles

def test_queue_created_with_a_name_keeps_its_segments_under_that_name(make):
    name = new_name()
    q = make(name=name)
    assert q.name == name
    assert name in segments(name) and len(ring_segments(name)) == 1


def test_attach_by_name_shares_the_items_both_ways(make):
    name = new_name()
    a = make(3, name=name)
    b = make(cls=ipcfast.Queue.attach, name=name)
    assert b.maxsize == 3 and b.capacity == a.capacity
    a.put("from a")
    b.put("from b")
    assert b.get_nowait() == "from a"
    assert a.get_nowait() == "from b"


def test_attach_to_a_missing_name_raises_file_not_found():
    with pytest.raises(FileNotFoundError):
        ipcfast.Queue.attach(new_name())


def test_creating_a_queue_whose_name_exists_raises_file_exists(make):
    q = make(name=new_name())
    with pytest.raises(FileExistsError):
        ipcfast.Queue(name=q.name)
    q.put(1)
    assert q.get_nowait() == 1


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "sp ace", "x" * 300])
def test_invalid_name_raises_value_error(name):
    with pytest.raises(ValueError):
        ipcfast.Queue(name=name)


@pytest.mark.parametrize("suffix", [".0", ".1", ".42", ".007"])
@pytest.mark.parametrize("make_it", [
    pytest.param(lambda n: ipcfast.Queue(name=n), id="Queue"),
    pytest.param(lambda n: ipcfast.JoinableQueue(name=n), id="JoinableQueue"),
    pytest.param(lambda n: ipcfast.SimpleQueue(name=n), id="SimpleQueue"),
    pytest.param(lambda n: ipcfast.Queue.attach(n), id="Queue.attach"),
    pytest.param(lambda n: ipcfast.Ring(4096, name=n), id="Ring"),
    pytest.param(lambda n: ipcfast.Ring.attach(n), id="Ring.attach"),
    pytest.param(lambda n: ipcfast.Mailbox(n), id="Mailbox"),
    pytest.param(lambda n: ipcfast.Mailbox.open(n), id="Mailbox.open"),
])
def test_names_ending_in_dot_digits_are_reserved_for_queue_rings(make_it, suffix):
    # "<queue>.<gen>" names a queue's ring: such a name would alias another queue's ring
    with pytest.raises(ValueError, match="reserved"):
        make_it(new_name() + suffix)


@pytest.mark.parametrize("name_suffix", [".x1", ".1x", "-1", "1", ".v2.beta"])
def test_names_with_dots_not_ending_in_dot_digits_are_still_fine(name_suffix):
    q = ipcfast.Queue(name=new_name() + name_suffix)
    try:
        q.put(1)
        assert q.get_nowait() == 1
    finally:
        q.close()


@pytest.mark.timeout(60)
def test_a_queue_named_like_another_queues_ring_does_not_destroy_either():
    # "<queue>.<gen>" names are reserved for a queue's rings (README): a queue, ring or
    # mailbox of such a name is refused, before and after the queue has grown a ring of that
    # name, and the queue keeps every item. In a fresh interpreter: the bug (both segments
    # created) ended in a get_nowait() that never returns.
    base = new_name()
    code = f"""
import ipcfast

def refused(name):
    for make in (lambda: ipcfast.Queue(name=name), lambda: ipcfast.Ring(4096, name=name),
                 lambda: ipcfast.Mailbox(name)):
        try:
            h = make()
        except ValueError as e:
            assert "reserved" in str(e), e
            continue
        h.close()
        return False
    return True

assert refused({base + ".1"!r}), "created before the queue exists"
q = ipcfast.Queue(name={base!r}, capacity={SMALL})
for i in range(100):          # q grows to rings .1, .2, ...
    q.put((i, b"x" * 300))
assert refused({base + ".1"!r}), "created while it is the queue's ring"
got = [q.get(timeout=2)[0] for _ in range(100)]
assert got == list(range(100)), got
q.close()
print("OK")
"""
    try:
        r = run_python(code, timeout=20)
    finally:
        remove_segments(base)
    assert r.returncode == 0 and r.stdout.strip() == "OK", (
        r.returncode, r.stdout, r.stderr[-2000:])


def test_attach_to_a_segment_of_another_kind_raises_incompatible(make):
    ring = ipcfast.Ring(capacity=SMALL, name=new_name())
    try:
        with pytest.raises(ipcfast.IncompatibleSegmentError):
            ipcfast.Queue.attach(ring.name)
    finally:
        ring.close()


def test_the_last_handle_to_close_removes_the_segments():
    q = ipcfast.Queue(capacity=SMALL)
    name = q.name
    other = ipcfast.Queue.attach(name)
    for i in range(100):
        q.put(b"z" * 300)                       # several rings
    assert len(ring_segments(name)) > 3
    q.close()
    assert name in segments(name), "closed while another handle was open"
    assert other.get_nowait() == b"z" * 300      # items stay for the other handle
    other.close()
    assert segments(name) == []


def test_pickled_handle_reopens_the_same_queue(make):
    q = make(5, capacity=8192)
    q.put("one")
    clone = pickle.loads(pickle.dumps(q))
    try:
        assert type(clone) is ipcfast.Queue
        assert (clone.name, clone.maxsize, clone.capacity) == (q.name, 5, 8192)
        assert clone.get_nowait() == "one"
        clone.put("two")
        assert q.get_nowait() == "two"
    finally:
        clone.close()


def test_pickled_handle_carries_the_name_not_the_items(make):
    q = make()
    q.put_many([b"x" * 10_000] * 20)
    data = pickle.dumps(q)
    assert len(data) < 1000
    # a pickled handle keeps the queue "in transit" until it is unpickled (or for 60 s)
    pickle.loads(data).close()


def test_pickled_handle_keeps_the_custom_serialiser(make):
    q = make(dumps=json_dumps, loads=json_loads)
    clone = pickle.loads(pickle.dumps(q))
    try:
        clone.put((1, 2))
        assert q.get_nowait() == [1, 2]
    finally:
        clone.close()


@pytest.mark.parametrize("cls", [ipcfast.JoinableQueue, ipcfast.SimpleQueue])
def test_pickled_joinable_and_simple_queues_keep_their_type(make, cls):
    q = make(cls=cls)
    clone = pickle.loads(pickle.dumps(q))
    try:
        assert type(clone) is cls and clone.name == q.name
        q.put("x")
        assert clone.get() == "x"
    finally:
        clone.close()


def test_pickling_a_closed_queue_raises_value_error():
    q = ipcfast.Queue()
    q.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(q)


def test_queue_can_be_put_on_another_queue(make):
    # multiprocessing.Queue refuses to be pickled outside process start-up; an ipcfast
    # handle travels by name anywhere, even through another queue.
    inner = make()
    outer = make()
    outer.put(inner)
    got = outer.get_nowait()
    try:
        inner.put("through")
        assert got.get_nowait() == "through"
    finally:
        got.close()


def test_joinable_queue_attached_by_name_shares_the_task_count(make):
    jq = make(cls=ipcfast.JoinableQueue, name=new_name())
    other = make(cls=ipcfast.JoinableQueue.attach, name=jq.name)
    jq.put(1)
    assert other.get_nowait() == 1
    other.task_done()
    jq.join()
    with pytest.raises(ValueError):
        jq.task_done()


def test_simple_queue_put_many_and_get_many(make):
    sq = make(cls=ipcfast.SimpleQueue)
    sq.put_many(range(10))
    assert sq.get_many(max_messages_to_get=4) == [0, 1, 2, 3]
    assert sq.get_many() == list(range(4, 10))
    assert sq.empty()


@pytest.mark.timeout(60)
def test_threads_using_put_many_and_get_many_on_small_rings_get_each_item_once_in_order(make):
    q = make(capacity=SMALL, dumps=raw_dumps, loads=raw_loads)
    n_prod, per = 3, 300
    sizes = [0, 7, 100, 1500, 3000, FITS]
    got = [[] for _ in range(3)]

    def produce(pid):
        seq = 0
        while seq < per:
            k = min(per - seq, 1 + seq % 5)
            q.put_many(pid.to_bytes(1, "little") + s.to_bytes(4, "little") +
                       b"q" * max(0, sizes[s % len(sizes)] - 5) for s in range(seq, seq + k))
            seq += k

    def consume(cid):
        while True:
            batch = q.get_many(timeout=30, max_messages_to_get=1 + cid * 3)
            stops = batch.count(b"stop")
            for m in batch:
                if m != b"stop":
                    got[cid].append((m[0], int.from_bytes(m[1:5], "little"), len(m)))
            if stops:
                q.put_many([b"stop"] * (stops - 1))   # the others' stops go back
                return

    consumers = [start_thread(consume, c) for c in range(3)]
    producers = [start_thread(produce, p) for p in range(n_prod)]
    for t in producers:
        t.join(30)
    for _ in consumers:
        q.put(b"stop")
    for t in consumers:
        t.join(30)
    assert not any(t.is_alive() for t in producers + consumers)
    everything = [(p, s) for g in got for (p, s, _) in g]
    assert sorted(everything) == [(p, s) for p in range(n_prod) for s in range(per)]
    for g in got:
        for p, s, n in g:
            assert n == max(5, sizes[s % len(sizes)])
        for p in range(n_prod):
            seqs = [s for pp, s, _ in g if pp == p]
            assert seqs == sorted(seqs)


# ---------------------------------------------------------------- squatted ring names

def _squat(name: str) -> str:
    """Pre-create /dev/shm/<name> as another process would (a plain file, not a ring of
    ours); returns its path."""
    from tests.support.shm import path
    p = path(name)
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, b"not yours")
    os.close(fd)
    return p


def test_a_squatted_next_ring_name_is_stepped_over_and_left_alone(make):
    # Regression: pre-creating <queue>.<next gen> made every put that needed a new ring raise
    # FileExistsError (naming the queue), and other paths deleted the squatter's file.
    name = new_name()
    squatted = [_squat(f"{name}.1"), _squat(f"{name}.2")]
    try:
        q = make(name=name, capacity=SMALL)
        items = [("item", i, "x" * 100) for i in range(200)]      # many 4 KiB rings' worth
        for it in items:
            q.put(it, timeout=5)
        assert [q.get(timeout=5) for _ in items] == items
        q.close()
        for p in squatted:
            with open(p, "rb") as f:
                assert f.read() == b"not yours", "the squatter's file was changed"
        assert ring_segments(name) == [f"{name}.1", f"{name}.2"], "a ring of ours was left"
    finally:
        for p in squatted:
            os.unlink(p)


def test_a_squatted_first_ring_name_does_not_stop_creation_nor_get_deleted(make):
    # Regression: creating a queue silently deleted a same-user file named <queue>.0
    name = new_name()
    p = _squat(f"{name}.0")
    try:
        q = make(name=name, capacity=SMALL)
        q.put("first", timeout=5)
        assert q.get(timeout=5) == "first"
        q.close()
        with open(p, "rb") as f:
            assert f.read() == b"not yours"
    finally:
        os.unlink(p)


def test_put_many_of_items_pickled_in_pieces_among_small_ones_round_trips_each_whole(make):
    # put_many pickles a batch with one pickler (memo cleared per item); items of 64 KiB or
    # more reach its file in several pieces, which must be joined per item, not per batch
    q = make()
    shared = ["shared"]
    big = bytes(range(256)) * 300                         # 76,800 bytes: in pieces
    items = ["a", (big, big), [shared, shared], bytearray(big), 7, [shared]]
    q.put_many(iter(items))                               # a one-shot iterable
    got = q.get_many(timeout=5)
    while len(got) < len(items):
        got += q.get_many(timeout=5)
    assert got == items
    assert got[2][0] is got[2][1]                         # references kept within an item
    assert got[2][0] is not got[5][0]                     # each item its own stream
