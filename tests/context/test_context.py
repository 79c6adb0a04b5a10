"""ipcfast.get_context: its Queue, SimpleQueue, JoinableQueue and Pipe are ipcfast's and carry
items between processes of every start method; everything else is multiprocessing's own."""
from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import pickle

import pytest

import ipcfast
import ipcfast.context
from tests.context import workers as W
from tests.support.procs import CHILD_WAIT, START_METHODS, kill_all


@pytest.fixture(params=START_METHODS)
def method(request):
    return request.param


def run(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def finish(p):
    p.join(CHILD_WAIT)
    exitcode = p.exitcode
    kill_all([p])
    assert exitcode == 0, f"child exited with {exitcode}"


def test_queues_and_pipes_of_the_context_are_ipcfasts(method):
    ctx = ipcfast.get_context(method)
    made = [ctx.Queue(), ctx.Queue(5), ctx.JoinableQueue(), ctx.SimpleQueue()]
    a, b = ctx.Pipe()
    r, w = ctx.Pipe(duplex=False)
    try:
        assert type(made[0]) is ipcfast.Queue and made[1].maxsize == 5
        assert type(made[2]) is ipcfast.JoinableQueue
        assert isinstance(made[3], ipcfast.SimpleQueue)
        assert all(type(c) is ipcfast.Connection for c in (a, b, r, w))
        assert (r.readable, r.writable, w.readable, w.writable) == (True, False, False, True)
    finally:
        for x in made + [a, b, r, w]:
            x.close()


def test_everything_else_of_the_context_is_multiprocessings(method):
    ctx = ipcfast.get_context(method)
    stock = multiprocessing.get_context(method)
    assert ctx.get_start_method() == method
    assert ctx.Process is stock.Process
    assert ctx.cpu_count() == stock.cpu_count()
    assert isinstance(ctx.Lock(), multiprocessing.synchronize.Lock)
    assert isinstance(ctx.Event(), multiprocessing.synchronize.Event)
    assert ctx.Manager.__func__ is stock.Manager.__func__
    assert ctx.get_context() is ctx
    assert ctx.get_context("spawn").Process is multiprocessing.get_context("spawn").Process
    assert "Process" in dir(ctx) and "Queue" in dir(ctx)


def test_get_context_rejects_an_unknown_start_method():
    with pytest.raises(ValueError):
        ipcfast.get_context("telepathy")


def test_default_context_follows_multiprocessings_start_method():
    ctx = ipcfast.get_context()
    assert ctx.get_start_method() == multiprocessing.get_start_method()
    assert ipcfast.get_start_method() == multiprocessing.get_start_method()
    assert ipcfast.get_start_method(allow_none=True) == multiprocessing.get_start_method(True)


def test_context_pickles_to_one_of_the_same_start_method(method):
    ctx = pickle.loads(pickle.dumps(ipcfast.get_context(method)))
    assert isinstance(ctx, ipcfast.context.Context) and ctx.get_start_method() == method


def test_context_queue_carries_items_to_and_from_a_child(method):
    ctx = ipcfast.get_context(method)
    inq, outq = ctx.Queue(), ctx.Queue()
    try:
        p = run(ctx, W.echo_queue, inq, outq)
        for i in range(100):
            inq.put(i)
        inq.put(None)
        got = [outq.get(timeout=CHILD_WAIT) for _ in range(101)]
        finish(p)
        assert got == [i * 2 for i in range(100)] + [None]
    finally:
        inq.close()
        outq.close()


def test_context_joinable_queue_joins_after_a_child_finishes_its_tasks(method):
    ctx = ipcfast.get_context(method)
    jq = ctx.JoinableQueue()
    try:
        for i in range(20):
            jq.put(i)
        p = run(ctx, W.finish_tasks, jq, 20)
        jq.join()
        finish(p)
    finally:
        jq.close()


def test_context_pipe_and_simple_queue_reach_a_child(method):
    ctx = ipcfast.get_context(method)
    a, b = ctx.Pipe()
    sin, sout = ctx.SimpleQueue(), ctx.SimpleQueue()
    try:
        p = run(ctx, W.pipe_echo, b)
        q = run(ctx, W.simple_echo, sin, sout)
        b.close()
        a.send([1, 2])
        sin.put("x")
        assert a.poll(CHILD_WAIT) and a.recv() == ("echo", [1, 2])
        assert sout.get() == ("got", "x")
        finish(p)
        finish(q)
    finally:
        for x in (a, sin, sout):
            x.close()


def test_simple_queue_private_ends_are_views_of_the_one_queue():
    """The attributes multiprocessing's Pool and ProcessPoolExecutor use."""
    sq = ipcfast.get_context().SimpleQueue()
    try:
        assert sq._reader is sq._reader and sq._writer is sq._writer
        assert not sq._reader.poll()
        sq._writer.send({"a": 1})
        assert sq._reader.poll() and sq._reader.poll(1.0)
        assert sq._reader.recv() == {"a": 1}
        assert not sq._reader.poll(0.05)
        with sq._rlock:
            pass
        sq._writer.close()                # only that view: the queue stays open
        with pytest.raises(OSError):
            sq._writer.send(1)
        sq.put(2)
        assert sq._reader.recv() == 2
    finally:
        sq.close()


def test_simple_queue_reader_fileno_is_the_queues_own_or_a_clear_oserror():
    sq = ipcfast.get_context().SimpleQueue()
    try:
        own = getattr(ipcfast.SimpleQueue, "fileno", None)
        if own is None:
            with pytest.raises(OSError, match="fileno"):
                sq._reader.fileno()
        else:
            assert sq._reader.fileno() == sq.fileno()
    finally:
        sq.close()
