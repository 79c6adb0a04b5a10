"""Queue, JoinableQueue and SimpleQueue in one process (threads, timeouts, close), each test
run against multiprocessing's queues ("mp") and ipcfast's ("ipcfast"): ipcfast's are
drop-in replacements, so wherever the two are meant to agree one test checks both.

Several processes: test_processes.py. ipcfast-only features (ring growth, big messages,
put_many/get_many, errors in put, names): test_ipcfast_only.py. Segment lifetime across
processes and SIGKILL chaos: tests/lifetime.
"""
from __future__ import annotations

import queue
import signal
import threading
import time

import pytest

from tests.queue.workers import dispose, make_queue, settle, start_thread

#: generous upper bounds: these tests check behaviour, never speed
AT_ONCE = 1.0
SLACK = 5.0


@pytest.fixture
def make(impl):
    """make(kind="Queue", maxsize=0) -> a queue of `impl`, closed after the test."""
    made = []

    def factory(kind: str = "Queue", maxsize: int = 0, **kw):
        q = make_queue(impl, kind, maxsize, **kw)
        made.append(q)
        return q

    yield factory
    for q in made:
        dispose(q)


def earliest(impl: str, timeout: float) -> float:
    """The least time a call with `timeout` may take. ipcfast waits on CLOCK_MONOTONIC, so never
    less than `timeout`. multiprocessing's put waits in sem_timedwait against CLOCK_REALTIME
    (a deadline taken from gettimeofday), which can end a millisecond or two early on the
    monotonic clock this file measures with (seen under TSan in CI: 0.2989 s for 0.3 s)."""
    return timeout if impl == "ipcfast" else timeout * 0.98 - 0.002


def elapsed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


# ---------------------------------------------------------------- put / get

SAMPLE_ITEMS = [0, -1, 2**100, 3.5, "str", "ünïcode", b"bytes", b"", bytearray(b"ba"), None,
                True, (1, (2, 3)), [4, [5]], {"k": {"n": [1]}}, {1, 2}, frozenset({3}),
                ValueError("boom"), range(3), "x" * 200_000, b"\xff" * (2 << 20)]


def test_put_then_get_returns_items_in_fifo_order(make):
    q = make()
    for i in range(100):
        q.put(i)
    assert [q.get(timeout=10) for _ in range(100)] == list(range(100))


def test_items_of_many_types_and_sizes_round_trip_equal(make):
    q = make()
    for x in SAMPLE_ITEMS:
        q.put(x)
    got = [q.get(timeout=10) for _ in SAMPLE_ITEMS]
    for a, b in zip(got, SAMPLE_ITEMS):
        assert type(a) is type(b)
        if isinstance(b, Exception):
            assert a.args == b.args
        else:
            assert a == b


def test_each_get_returns_a_distinct_object_equal_to_what_was_put(make):
    q = make()
    item = {"a": [1, 2, 3]}
    q.put(item)
    q.put(item)
    a, b = q.get(timeout=10), q.get(timeout=10)
    assert a == b == item and a is not b and a is not item


def test_put_nowait_and_get_nowait(make):
    q = make(maxsize=2)
    q.put_nowait("a")
    q.put_nowait("b")
    with pytest.raises(queue.Full):
        q.put_nowait("c")
    settle(q)
    assert q.get_nowait() == "a"
    settle(q)
    assert q.get_nowait() == "b"
    with pytest.raises(queue.Empty):
        q.get_nowait()


@pytest.mark.parametrize("call", [
    pytest.param(lambda q: q.get(block=False), id="get-block-False"),
    pytest.param(lambda q: q.get(False, 30.0), id="get-block-False-timeout-ignored"),
    pytest.param(lambda q: q.get_nowait(), id="get_nowait"),
    pytest.param(lambda q: q.get(timeout=0), id="get-timeout-0"),
])
def test_get_without_blocking_on_empty_queue_raises_empty_at_once(make, call):
    q = make()

    def attempt():
        with pytest.raises(queue.Empty):
            call(q)

    assert elapsed(attempt) < AT_ONCE


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_get_with_timeout_on_empty_queue_raises_empty_after_about_the_timeout(make, impl, timeout):
    q = make()

    def attempt():
        with pytest.raises(queue.Empty):
            q.get(timeout=timeout)

    took = elapsed(attempt)
    assert earliest(impl, timeout) <= took < timeout + SLACK


@pytest.mark.parametrize("call", [
    pytest.param(lambda q: q.put("x", block=False), id="put-block-False"),
    pytest.param(lambda q: q.put("x", False, 30.0), id="put-block-False-timeout-ignored"),
    pytest.param(lambda q: q.put_nowait("x"), id="put_nowait"),
    pytest.param(lambda q: q.put("x", timeout=0), id="put-timeout-0"),
])
def test_put_without_blocking_on_full_bounded_queue_raises_full_at_once(make, call):
    q = make(maxsize=2)
    q.put(1)
    q.put(2)

    def attempt():
        with pytest.raises(queue.Full):
            call(q)

    assert elapsed(attempt) < AT_ONCE
    assert q.qsize() == 2


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_put_with_timeout_on_full_bounded_queue_raises_full_after_about_the_timeout(make, impl, timeout):
    q = make(maxsize=1)
    q.put(1)

    def attempt():
        with pytest.raises(queue.Full):
            q.put(2, timeout=timeout)

    took = elapsed(attempt)
    assert earliest(impl, timeout) <= took < timeout + SLACK
    assert q.qsize() == 1


@pytest.mark.parametrize("op", ["get", "put"])
def test_blocking_call_with_timeout_does_not_wait_much_longer_than_the_timeout(make, op):
    # Regression: ipcfast's get/put used to wait a first slice of min(timeout, 100 ms) in C
    # and only then start the caller's clock (_get_slow/_put_slow), so a timed-out call took
    # timeout + min(timeout, 0.1 s); fixed in d65b51d (first_slice returns 0 for timed calls).
    timeout = 0.1                     # that bug made every such call take >= 2 * timeout
    q = make(maxsize=1)
    if op == "put":
        q.put(0)
        call, exc = (lambda: q.put(1, timeout=timeout)), queue.Full
    else:
        call, exc = (lambda: q.get(timeout=timeout)), queue.Empty

    def attempt():
        with pytest.raises(exc):
            call()

    best = min(elapsed(attempt) for _ in range(5))   # the best of five absorbs scheduling noise
    assert best < 2 * timeout - 0.01, f"{op}(timeout={timeout}) took {best:.3f}s at best"


def test_maxsize_bounds_the_number_of_items_not_their_size(make):
    q = make(maxsize=3)
    for i in range(3):
        q.put_nowait(b"x" * (300_000 if i == 1 else 1))
    with pytest.raises(queue.Full):
        q.put_nowait(b"")
    settle(q)
    q.get(timeout=10)
    q.put_nowait(b"y")


@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_maxsize_zero_or_negative_is_unbounded(make, maxsize):
    q = make(maxsize=maxsize)
    for i in range(2000):
        q.put_nowait(i)
    assert not q.full()
    assert q.qsize() == 2000
    assert [q.get(timeout=10) for _ in range(2000)] == list(range(2000))


def test_qsize_empty_and_full_track_the_contents(make):
    q = make(maxsize=3)
    assert (q.qsize(), q.empty(), q.full()) == (0, True, False)
    q.put(1)
    settle(q)
    assert (q.qsize(), q.empty(), q.full()) == (1, False, False)
    q.put(2)
    q.put(3)
    assert (q.qsize(), q.full()) == (3, True)
    assert q.get(timeout=10) == 1
    assert (q.qsize(), q.full()) == (2, False)
    q.get(timeout=10)
    q.get(timeout=10)
    assert (q.qsize(), q.empty(), q.full()) == (0, True, False)


def test_ipcfast_put_is_visible_as_soon_as_put_returns():
    # multiprocessing's put hands the item to a feeder thread, so there empty() can stay
    # True for a while after put(); ipcfast's put returns once the item is in shared memory.
    q = make_queue("ipcfast", "Queue")
    try:
        for i in range(200):
            q.put(i)
            assert not q.empty() and q.qsize() == 1
            assert q.get_nowait() == i
    finally:
        q.close()


# ---------------------------------------------------------------- threads

@pytest.mark.timeout(60)
def test_blocked_put_is_released_when_a_consumer_gets(make):
    q = make(maxsize=1)
    q.put("first")
    done = threading.Event()

    def blocked_producer():
        q.put("second", timeout=30)
        done.set()

    t = start_thread(blocked_producer)
    assert not done.wait(0.3), "put on a full queue did not block"
    settle(q)
    assert q.get(timeout=10) == "first"
    assert done.wait(10), "blocked put was not released by get"
    assert q.get(timeout=10) == "second"
    t.join(10)


@pytest.mark.timeout(60)
def test_blocked_get_is_released_when_a_producer_puts(make):
    q = make()
    got = []
    t = start_thread(lambda: got.append(q.get(timeout=30)))
    time.sleep(0.2)
    assert not got
    q.put("hello")
    t.join(10)
    assert got == ["hello"]


@pytest.mark.timeout(60)
def test_several_blocked_getters_each_get_one_item(make):
    q = make()
    got = []
    lock = threading.Lock()

    def getter():
        x = q.get(timeout=30)
        with lock:
            got.append(x)

    threads = [start_thread(getter) for _ in range(4)]
    time.sleep(0.1)
    for i in range(4):
        q.put(i)
    for t in threads:
        t.join(15)
    assert sorted(got) == [0, 1, 2, 3]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, 5])
def test_threads_sharing_one_queue_get_every_item_exactly_once_in_per_producer_order(
        make, maxsize):
    # One queue object shared by 3 producer and 3 consumer threads; item sizes straddle
    # ipcfast's 64 KiB get() scratch buffer, so gets of big items race on the regrow path.
    q = make(maxsize=maxsize)
    n_prod, n_cons, n = 3, 3, 150
    sizes = [0, 10, 70_000, 1000, 65_600]
    per_consumer = [[] for _ in range(n_cons)]

    def produce(pid):
        for seq in range(n):
            q.put((pid, seq, b"p" * sizes[seq % len(sizes)]), timeout=30)

    def consume(cid):
        while True:
            item = q.get(timeout=30)
            if item is None:
                return
            pid, seq, pad = item
            assert pad == b"p" * sizes[seq % len(sizes)]
            per_consumer[cid].append((pid, seq))

    consumers = [start_thread(consume, c) for c in range(n_cons)]
    producers = [start_thread(produce, p) for p in range(n_prod)]
    for t in producers:
        t.join(30)
    for _ in consumers:
        q.put(None)
    for t in consumers:
        t.join(30)
    assert not any(t.is_alive() for t in producers + consumers)
    everything = [x for got in per_consumer for x in got]
    assert sorted(everything) == [(p, s) for p in range(n_prod) for s in range(n)]
    for got in per_consumer:                    # each consumer sees a producer's items in order
        for p in range(n_prod):
            seqs = [s for (pp, s) in got if pp == p]
            assert seqs == sorted(seqs)


# ---------------------------------------------------------------- close

@pytest.mark.parametrize("op", ["put", "put_nowait", "put_timeout", "get", "get_nowait",
                                "get_timeout"])
def test_put_and_get_after_close_raise_value_error_mentioning_closed(make, op):
    q = make()
    q.put("left")
    settle(q)
    q.close()
    call = {
        "put": lambda: q.put(1),
        "put_nowait": lambda: q.put_nowait(1),
        "put_timeout": lambda: q.put(1, timeout=1),
        "get": lambda: q.get(),
        "get_nowait": lambda: q.get_nowait(),
        "get_timeout": lambda: q.get(timeout=1),
    }[op]
    with pytest.raises(ValueError, match="closed"):
        call()


def test_close_is_idempotent(make):
    q = make()
    q.close()
    q.close()


def test_join_thread_after_close_returns(make):
    q = make()
    q.put("x")
    q.close()
    assert elapsed(q.join_thread) < SLACK


def test_join_thread_before_close_is_an_assertion_error(make):
    q = make()
    with pytest.raises(AssertionError):
        q.join_thread()


def test_cancel_join_thread_then_close_and_join_thread_return(make):
    q = make()
    q.cancel_join_thread()
    q.put("x")
    q.close()
    q.join_thread()


def test_joinable_queue_put_after_close_raises_value_error(make):
    jq = make("JoinableQueue")
    jq.put(1)
    settle(jq)
    jq.get(timeout=10)
    jq.close()
    with pytest.raises(ValueError, match="closed"):
        jq.put(2)


# ---------------------------------------------------------------- JoinableQueue

@pytest.mark.timeout(60)
def test_join_on_a_queue_with_no_pending_task_returns_at_once(make):
    jq = make("JoinableQueue")
    assert elapsed(jq.join) < AT_ONCE
    jq.put(1)
    jq.get(timeout=10)
    jq.task_done()
    assert elapsed(jq.join) < AT_ONCE


@pytest.mark.timeout(60)
def test_join_waits_until_every_item_put_is_got_and_marked_done(make):
    jq = make("JoinableQueue")
    for i in range(3):
        jq.put(i)
    joined = threading.Event()
    t = start_thread(lambda: (jq.join(), joined.set()))
    assert not joined.wait(0.2)
    for i in range(3):
        assert jq.get(timeout=10) == i
        assert not joined.wait(0.05), "join returned before every item was marked done"
        jq.task_done()
    assert joined.wait(10), "join did not return after the last task_done"
    t.join(10)


def test_task_done_on_a_fresh_queue_raises_value_error(make):
    jq = make("JoinableQueue")
    with pytest.raises(ValueError):
        jq.task_done()


def test_task_done_more_times_than_items_raises_value_error(make):
    jq = make("JoinableQueue")
    jq.put(1)
    jq.put(2)
    jq.get(timeout=10)
    jq.get(timeout=10)
    jq.task_done()
    jq.task_done()
    with pytest.raises(ValueError):
        jq.task_done()
    jq.put(3)                        # still usable
    assert jq.get(timeout=10) == 3
    jq.task_done()
    jq.join()


def test_task_done_counts_against_items_put_as_multiprocessing_documents(make):
    # multiprocessing.JoinableQueue.task_done(): "Raises a ValueError if called more times
    # than there were items placed in the queue" (so does queue.Queue): a task_done for an
    # item put but not yet got is valid, one more is not.
    jq = make("JoinableQueue")
    jq.put("a")
    jq.task_done()
    with pytest.raises(ValueError):
        jq.task_done()
    settle(jq)
    assert jq.get(timeout=10) == "a"


# ---------------------------------------------------------------- SimpleQueue

def test_simple_queue_put_get_and_empty(make):
    sq = make("SimpleQueue")
    assert sq.empty()
    for x in ["a", b"b", (1, 2), None]:
        sq.put(x)
    wait = time.monotonic() + 10
    while sq.empty() and time.monotonic() < wait:    # mp: the put is flushed synchronously,
        time.sleep(0.005)                            # but be lenient
    assert not sq.empty()
    assert [sq.get() for _ in range(4)] == ["a", b"b", (1, 2), None]
    assert sq.empty()


@pytest.mark.parametrize("op", ["get", "put", "empty"])
def test_simple_queue_after_close_raises_saying_closed(make, impl, op):
    # Both raise, with "closed" in the message: multiprocessing raises OSError("handle is
    # closed") from the closed pipe, ipcfast raises ValueError like Queue does.
    sq = make("SimpleQueue")
    sq.put(1)
    sq.close()
    with pytest.raises((ValueError, OSError), match="closed") as info:
        {"get": sq.get, "put": lambda: sq.put(2), "empty": sq.empty}[op]()
    assert info.type is (ValueError if impl == "ipcfast" else OSError)


# ---------------------------------------------------------------- signals

class Interrupted(Exception):
    pass


@pytest.fixture
def alarm():
    """alarm(seconds): raise Interrupted in the main thread after `seconds`, from a signal
    handler (as Ctrl-C would raise KeyboardInterrupt)."""
    def handler(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, handler)
    yield lambda s: signal.setitimer(signal.ITIMER_REAL, s)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("op", ["get", "get_timeout", "put", "join"])
def test_a_signal_handler_interrupts_a_blocked_call_promptly_and_the_queue_still_works(
        make, alarm, op):
    if op == "join":
        q = make("JoinableQueue")
        q.put("pending")
        call = q.join
    elif op == "put":
        q = make(maxsize=1)
        q.put("full")
        call = lambda: q.put("blocked")          # noqa: E731
    else:
        q = make()
        call = (lambda: q.get(timeout=30)) if op == "get_timeout" else q.get
    alarm(0.2)
    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        call()
    assert time.monotonic() - t0 < 5.0
    # nothing was left locked or half done
    if op == "put":
        assert q.get(timeout=10) == "full"
        q.put("again", timeout=10)
        assert q.get(timeout=10) == "again"
    elif op == "join":
        assert q.get(timeout=10) == "pending"
        q.task_done()
        q.join()
    else:
        q.put("after")
        assert q.get(timeout=10) == "after"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


# ---------------------------------------------------------------- timeouts as multiprocessing reads them

def test_negative_timeout_get_returns_an_available_item_or_raises_empty_at_once(make):
    # multiprocessing's rule (queue.Queue would raise ValueError): do not wait
    q = make()
    q.put("kept")
    settle(q)
    assert q.get(timeout=-1) == "kept"
    assert elapsed(lambda: pytest.raises(queue.Empty, q.get, timeout=-0.5)) < 0.5


def test_negative_timeout_put_puts_if_there_is_room_else_raises_full_at_once(make):
    q = make(maxsize=1)
    q.put("a", timeout=-1)
    settle(q)
    assert elapsed(lambda: pytest.raises(queue.Full, q.put, "b", timeout=-1)) < 0.5
    assert q.get(timeout=5) == "a"


@pytest.mark.parametrize("bad, exc", [(float("nan"), ValueError), ("1", TypeError),
                                      ([1], TypeError)], ids=["nan", "str", "list"])
def test_a_timeout_that_is_not_a_number_raises_and_leaves_the_queue_usable(impl, make, bad, exc):
    if impl == "mp":
        pytest.skip("multiprocessing has no rule here (what its internals raise, or NaN as 0)")
    q = make()
    q.put("kept")
    with pytest.raises(exc, match="timeout"):
        q.get(timeout=bad)
    with pytest.raises(exc, match="timeout"):
        q.put("x", timeout=bad)
    assert q.get(timeout=5) == "kept"


def test_an_infinite_timeout_waits_like_none(impl, make):
    if impl == "mp":
        pytest.skip("multiprocessing.Queue.get(timeout=inf) raises OverflowError")
    q = make()
    q.put("kept", timeout=float("inf"))
    assert q.get(timeout=float("inf")) == "kept"
    q.put_many(["a"], timeout=float("inf"))
    assert q.get_many(timeout=float("inf")) == ["a"]
