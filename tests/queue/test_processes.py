"""Queues shared between processes, each test run against multiprocessing ("mp") and
ipcfast for every start method (fork, spawn, forkserver: the `ctx` fixture): handles passed
to Process, Pool and ProcessPoolExecutor, JoinableQueue.join across processes, SimpleQueue,
many producers and consumers, Connections carried on a queue; then ipcfast-only: attach by
name from an unrelated interpreter, messages larger than the ring, custom serialisers and
handles passed where multiprocessing refuses them.

Every child is joined (or killed) before the test's queues are closed, so the parent is the
last process to close and removes the segments.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue

import pytest

import ipcfast
from tests.queue.workers import (CHILD_WAIT, STOP, consumer, dispose, echo_worker,
                                 joinable_consumer, joinable_joiner, json_dumps, json_echo,
                                 json_loads, make_queue, pattern, pool_init, pool_task,
                                 pool_task_with_queue_argument, producer, put_many_batches,
                                 send_through_connection, simple_queue_echo, start_thread)
from tests.support.procs import join_all, run_python, wait_until
from tests.support.shm import new_name


@pytest.fixture
def make(impl):
    """make(kind="Queue", maxsize=0, ctx=None, **kw) -> a queue of `impl`, closed after the
    test (after the test has joined its children)."""
    made = []

    def factory(kind: str = "Queue", maxsize: int = 0, ctx=None, **kw):
        q = make_queue(impl, kind, maxsize, ctx=ctx, **kw)
        made.append(q)
        return q

    yield factory
    for q in made:
        dispose(q)


@pytest.fixture
def closing():
    """closing(q) registers an ipcfast queue to close after the test."""
    qs = []
    yield lambda q: qs.append(q) or q
    for q in qs:
        q.close()


def simple_get(sq, timeout: float = CHILD_WAIT):
    """SimpleQueue.get() has no timeout: wait until there is something first."""
    wait_until(lambda: not sq.empty(), timeout, "an item on the SimpleQueue")
    return sq.get()


# ---------------------------------------------------------------- handles travel

@pytest.mark.timeout(60)
def test_queue_passed_to_a_process_carries_items_both_ways(make, ctx):
    q_in, q_out = make(ctx=ctx), make(ctx=ctx)
    p = ctx.Process(target=echo_worker, args=(q_in, q_out, 5))
    p.start()
    for i in range(5):
        q_in.put(i)
    got = [q_out.get(timeout=CHILD_WAIT) for _ in range(5)]
    join_all([p], 30)
    assert got == [("echo", i) for i in range(5)]


@pytest.mark.timeout(60)
def test_queue_passed_to_pool_initializer_is_usable_by_every_worker(make, ctx):
    q = make(ctx=ctx)
    pool = ctx.Pool(2, initializer=pool_init, initargs=(q,))
    try:
        assert pool.map(pool_task, range(8), chunksize=1) == [i * i for i in range(8)]
        pool.close()
        pool.join()      # workers exit normally: multiprocessing's feeder threads flush
    finally:
        pool.terminate()  # (SIGTERM before that flush loses multiprocessing's items)
        pool.join()
    got = [q.get(timeout=CHILD_WAIT) for _ in range(8)]
    assert sorted(i for _, i, _ in got) == list(range(8))
    assert all(tag == "task" and pid != os.getpid() for tag, _, pid in got)


@pytest.mark.timeout(60)
def test_queue_passed_to_process_pool_executor_initializer_is_usable_by_every_worker(make, ctx):
    q = make(ctx=ctx)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx, initializer=pool_init,
                                                initargs=(q,)) as ex:
        assert list(ex.map(pool_task, range(8))) == [i * i for i in range(8)]
    got = [q.get(timeout=CHILD_WAIT) for _ in range(8)]
    assert sorted(i for _, i, _ in got) == list(range(8))


@pytest.mark.timeout(60)
def test_queue_as_a_pool_task_argument_works_for_ipcfast_only(make, impl, ctx):
    # multiprocessing queues may only travel at process start ("should only be shared
    # between processes through inheritance"); an ipcfast handle pickles by name anywhere.
    q = make(ctx=ctx)
    pool = ctx.Pool(2)
    try:
        if impl == "mp":
            with pytest.raises(RuntimeError, match="inheritance"):
                pool.starmap(pool_task_with_queue_argument, [(q, i) for i in range(4)])
        else:
            assert pool.starmap(pool_task_with_queue_argument,
                                [(q, i) for i in range(4)]) == [0, 1, 2, 3]
            assert sorted(q.get(timeout=CHILD_WAIT) for _ in range(4)) == [("arg", i)
                                                                            for i in range(4)]
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        pool.join()


# ---------------------------------------------------------------- JoinableQueue across processes

@pytest.mark.timeout(60)
def test_join_returns_once_another_process_marked_every_item_done(make, ctx):
    jq = make("JoinableQueue", ctx=ctx)
    for i in range(5):
        jq.put(i)
    p = ctx.Process(target=joinable_consumer, args=(jq, 5))
    p.start()
    t = start_thread(jq.join)
    t.join(CHILD_WAIT)
    assert not t.is_alive(), "join() did not return after the child's task_done() calls"
    join_all([p], 30)
    with pytest.raises(queue.Empty):
        jq.get(timeout=0.1)


@pytest.mark.timeout(60)
def test_join_in_another_process_returns_when_the_tasks_are_done_here(make, ctx):
    jq = make("JoinableQueue", ctx=ctx)
    out = make(ctx=ctx)
    jq.put("a")
    jq.put("b")
    p = ctx.Process(target=joinable_joiner, args=(jq, out))
    p.start()
    assert out.get(timeout=CHILD_WAIT) == "joining"
    with pytest.raises(queue.Empty):
        out.get(timeout=0.3)                     # two tasks pending: the child still waits
    for _ in range(2):
        jq.get(timeout=10)
        jq.task_done()
    assert out.get(timeout=CHILD_WAIT) == "joined"
    join_all([p], 30)


# ---------------------------------------------------------------- SimpleQueue across processes

@pytest.mark.timeout(60)
def test_simple_queue_carries_items_between_processes_and_survives_the_child_closing(make, ctx):
    a, b = make("SimpleQueue", ctx=ctx), make("SimpleQueue", ctx=ctx)
    p = ctx.Process(target=simple_queue_echo, args=(a, b, 3))
    p.start()
    for x in ("x", 2, None):
        a.put(x)
    got = [simple_get(b) for _ in range(4)]
    assert got == [("echo", "x"), ("echo", 2), ("echo", None), ("empty", True)]
    join_all([p], 30)
    a.put("after the child closed its handles")  # our handles are unaffected
    assert simple_get(a) == "after the child closed its handles"
    assert b.empty()


# ---------------------------------------------------------------- many producers, many consumers

@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, 8], ids=["unbounded", "maxsize8"])
def test_many_producers_and_consumers_in_processes_and_threads_get_each_item_once_in_order(
        make, ctx, maxsize):
    # 3 producer processes + 1 producer thread here; 2 consumer processes + 2 consumer
    # threads here sharing one handle. Each consumer reports (producer, seq) in the order
    # it got them; together they must have every item exactly once, and each consumer
    # must have seen each producer's items in the order they were put.
    many_producers_and_consumers(make, ctx, maxsize, n=300)


@pytest.mark.stress
@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, 3], ids=["unbounded", "maxsize3"])
def test_stress_many_producers_and_consumers(make, ctx, maxsize):
    many_producers_and_consumers(make, ctx, maxsize, n=20_000)


def many_producers_and_consumers(make, ctx, maxsize, n):
    q, out = make(maxsize=maxsize, ctx=ctx), make(ctx=ctx)
    prods = [ctx.Process(target=producer, args=(q, pid, n, 40)) for pid in range(3)]
    cons = [ctx.Process(target=consumer, args=(q, out, f"process-{c}")) for c in range(2)]
    for p in prods + cons:
        p.start()
    threads = [start_thread(producer, q, 3, n, 40)]
    threads += [start_thread(consumer, q, out, f"thread-{c}") for c in range(2)]
    join_all(prods, 45)
    threads[0].join(30)
    assert not threads[0].is_alive()
    for _ in range(4):                           # after every item: FIFO puts them last
        q.put(STOP)
    reports = dict(out.get(timeout=CHILD_WAIT) for _ in range(4))
    join_all(cons, 30)
    for t in threads:
        t.join(10)
    assert sorted(reports) == ["process-0", "process-1", "thread-0", "thread-1"]
    everything = [x for got in reports.values() for x in got]
    assert len(everything) == len(set(everything)), "an item was delivered twice"
    assert sorted(everything) == [(p, s) for p in range(4) for s in range(n)]
    for who, got in reports.items():
        for p in range(4):
            seqs = [s for pp, s in got if pp == p]
            assert seqs == sorted(seqs), f"{who} got producer {p}'s items out of order"


# ---------------------------------------------------------------- multiprocessing reducers

@pytest.mark.timeout(60)
def test_connection_put_on_a_queue_still_works_in_the_child(make, ctx):
    # A multiprocessing Connection pickles through ForkingPickler's reducers (its fd is
    # duplicated into the receiver); ipcfast must keep those reducers.
    q = make(ctx=ctx)
    r, w = ctx.Pipe(duplex=False)
    try:
        p = ctx.Process(target=send_through_connection, args=(q,))
        p.start()
        q.put(w)
        assert r.poll(CHILD_WAIT), "nothing came through the Connection"
        assert r.recv() == ("hello from", p.pid)
        join_all([p], 30)
    finally:
        w.close()
        r.close()


# ---------------------------------------------------------------- ipcfast only

@pytest.mark.timeout(60)
def test_unrelated_process_attaches_by_name(closing):
    jobs = closing(ipcfast.Queue(4, name=new_name()))
    results = closing(ipcfast.JoinableQueue(name=new_name()))
    for i in range(3):
        jobs.put(("job", i))
    code = f"""
import ipcfast
jobs = ipcfast.Queue.attach({jobs.name!r})
results = ipcfast.JoinableQueue.attach({results.name!r})
assert jobs.maxsize == 4
for _ in range(3):
    tag, i = jobs.get(timeout=30)
    results.put((tag, i * 10))
jobs.close()
results.close()
print("child done")
"""
    r = run_python(code, timeout=50)
    assert r.returncode == 0 and "child done" in r.stdout, r.stderr[-2000:]
    assert [results.get(timeout=10) for _ in range(3)] == [("job", 0), ("job", 10), ("job", 20)]
    assert jobs.empty()
    for _ in range(3):
        results.task_done()
    results.join()


@pytest.mark.timeout(60)
def test_message_larger_than_the_ring_crosses_processes_in_order(closing, ctx):
    q_in = closing(ipcfast.Queue(capacity=4096))
    q_out = closing(ipcfast.Queue(capacity=4096))
    big = pattern(5 << 20)
    p = ctx.Process(target=echo_worker, args=(q_in, q_out, 4))
    p.start()
    q_in.put("before")
    q_in.put(big)
    q_in.put("after")
    q_in.put(big[:4097])
    got = [q_out.get(timeout=CHILD_WAIT) for _ in range(4)]
    join_all([p], 30)
    assert [g[1] for g in got] == ["before", big, "after", big[:4097]]


@pytest.mark.timeout(60)
def test_custom_dumps_and_loads_travel_with_the_handle_to_another_process(closing, ctx):
    q_in = closing(ipcfast.Queue(dumps=json_dumps, loads=json_loads))
    q_out = closing(ipcfast.Queue(dumps=json_dumps, loads=json_loads))
    p = ctx.Process(target=json_echo, args=(q_in, q_out))
    p.start()
    q_in.put((1, "two", {"three": None}))
    got = q_out.get(timeout=CHILD_WAIT)
    join_all([p], 30)
    # the child decoded JSON (a list, not a tuple) and its reply was JSON-encoded too
    assert got == {"got": [1, "two", {"three": None}], "type": "list"}


@pytest.mark.timeout(60)
def test_child_processes_see_items_the_moment_put_returns(closing, ctx):
    # No feeder thread: a child started after the put finds the item already queued.
    q = closing(ipcfast.Queue())
    out = closing(ipcfast.Queue())
    q.put("waiting")
    p = ctx.Process(target=echo_worker, args=(q, out, 1))
    p.start()
    assert out.get(timeout=CHILD_WAIT) == ("echo", "waiting")
    join_all([p], 30)
    assert q.empty()


@pytest.mark.timeout(60)
def test_put_many_in_a_child_and_get_many_here_keep_order_across_processes(closing, ctx):
    q = closing(ipcfast.Queue(50, capacity=4096))
    p = ctx.Process(target=put_many_batches, args=(q, 5000, 37))
    p.start()
    got = []
    while len(got) < 5000:
        got += q.get_many(timeout=CHILD_WAIT, max_messages_to_get=64)
    join_all([p], 30)
    assert got == list(range(5000))
