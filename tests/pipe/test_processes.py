"""Pipe ends handed to child processes under fork, spawn and forkserver, run against both
``multiprocessing.Pipe`` and ``ipcfast.Pipe``: objects both ways, the classic pattern of
closing the parent's copy of the child's end right after start(), EOF when a writer process
closes, exits or is SIGKILLed, BrokenPipeError when the reader process is gone, and long
streams with back-pressure.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time

import pytest

import ipcfast

from tests.pipe import workers as W
from tests.pipe.workers import CHILD_WAIT, EOF_WAIT, blob, wait_readable
from tests.support.procs import Delay, kill_all


@pytest.fixture
def pipe(impl, ctx):
    made = []

    def make(duplex=True):
        a, b = W.new_pipe(impl, duplex, ctx=ctx)
        made.extend((a, b))
        return a, b

    yield make
    for c in made:
        c.close()


def start(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def finish(*procs) -> None:
    """Give each child CHILD_WAIT to exit, then kill and reap whatever is left."""
    for p in procs:
        p.join(CHILD_WAIT)
    kill_all(procs)


def result(q, timeout=CHILD_WAIT):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no result from the child") from None


# ====================================================================== objects both ways

@pytest.mark.timeout(60)
def test_ends_handed_to_a_child_carry_objects_both_ways(impl, ctx, pipe):
    a, b = pipe()
    p = start(ctx, W.child_echo, b, a)
    try:
        b.close()
        for i in [0, "one", [2], {"three": 3}, b"x" * 100_000]:
            a.send(i)
            assert wait_readable(a, proc=p), "no echo from the child"
            assert a.recv() == ("echo", i)
        a.close()                               # the child sees EOF and exits
    finally:
        finish(p)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_child_reads_until_eof_once_the_parent_closes_its_end(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    results = ctx.Queue()
    p = start(ctx, W.child_drain, r, results, None, w)
    try:
        r.close()
        for i in range(10):
            w.send(i)
        w.close()
        assert result(results) == ("eof", list(range(10)))
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_long_stream_from_a_child_arrives_whole_and_in_order_with_back_pressure(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    n, seed = 300, 11                    # ~22 MB, far more than the pipe or ring holds
    p = start(ctx, W.child_send_blobs, w, n, seed)
    try:
        w.close()
        for i in range(n):
            assert wait_readable(r, proc=p), f"stream stopped after {i} messages"
            assert r.recv_bytes() == blob(i, (i * 7919 + seed) % 150_000)
        assert wait_readable(r, timeout=EOF_WAIT * 2)
        with pytest.raises(EOFError):
            r.recv_bytes()
    finally:
        finish(p)


# ====================================================================== the classic pattern

@pytest.mark.timeout(60)
def test_parent_closing_its_copy_right_after_start_does_not_end_the_pipe(impl, ctx, pipe):
    """Parent closes the child's end at once; the child writes only a second later. The
    parent must get the data (not EOFError), then EOF once the child closes."""
    r, w = pipe(duplex=False)
    p = start(ctx, W.child_send, w, ["late", 1], 1.0, True)
    try:
        w.close()
        assert wait_readable(r, proc=p)
        assert r.recv() == "late"
        assert wait_readable(r, proc=p)
        assert r.recv() == 1
        assert wait_readable(r, timeout=EOF_WAIT * 2)
        with pytest.raises(EOFError):
            r.recv()
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_duplex_end_closed_by_the_parent_right_after_start_keeps_working_in_the_child(impl, ctx, pipe):
    a, b = pipe()
    p = start(ctx, W.child_echo, b, a)
    try:
        b.close()
        time.sleep(0.5)                          # child may not even have attached yet
        a.send("ping")
        assert wait_readable(a, proc=p)
        assert a.recv() == ("echo", "ping")
        a.close()
    finally:
        finish(p)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_both_ends_handed_to_children_while_the_parent_closes_both(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    results = ctx.Queue()
    # each child also gets the other end, to close it (under fork it inherited it anyway)
    consumer = start(ctx, W.child_drain_then_eof, r, 5, results, w)
    producer = start(ctx, W.child_send, w, list(range(5)), 0.0, True, r)
    try:
        r.close()
        w.close()
        assert result(results) == list(range(5))
        assert result(results) is True, "no EOF once the producer closed"
    finally:
        finish(consumer, producer)


# ====================================================================== EOF from dead writers

@pytest.mark.timeout(60)
def test_reader_gets_eof_after_the_writer_process_exits_without_closing(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    p = start(ctx, W.child_send, w, ["a", "b"], 0.0, False)
    try:
        w.close()
        for x in ("a", "b"):
            assert wait_readable(r, proc=p)
            assert r.recv() == x
        # the child has exited (or is about to); its parent has not reaped it yet
        assert wait_readable(r, timeout=CHILD_WAIT, proc=p), "no EOF after the writer exited"
        with pytest.raises(EOFError):
            r.recv()
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_reader_gets_eof_soon_after_the_writer_process_is_sigkilled(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    ready = ctx.Event()
    p = start(ctx, W.child_send_then_hold, w, ready)
    try:
        w.close()
        assert ready.wait(CHILD_WAIT)
        p.kill()
        p.join(CHILD_WAIT)
        killed = time.monotonic()
        assert wait_readable(r, timeout=EOF_WAIT)
        assert r.recv() == "before"              # what it sent before dying is kept
        assert r.poll(EOF_WAIT), "no EOF after the writer was SIGKILLed"
        with pytest.raises(EOFError):
            r.recv()
        assert time.monotonic() - killed < EOF_WAIT
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_reader_gets_eof_when_its_unreaped_writer_child_is_sigkilled(impl, ctx, pipe):
    """The writer dies (SIGKILL) while the parent is busy reading, so nobody reaps it."""
    r, w = pipe(duplex=False)
    p = start(ctx, W.child_send_then_die, w)
    try:
        w.close()
        assert wait_readable(r, proc=p)
        assert r.recv() == "last words"
        assert r.poll(EOF_WAIT), "no EOF after the writer died"
        with pytest.raises(EOFError):
            r.recv()
    finally:
        finish(p)


# ====================================================================== broken pipe

@pytest.mark.timeout(60)
def test_writer_gets_broken_pipe_once_the_reader_process_closed_its_end(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    p = start(ctx, W.child_read_one_then_close, r)
    try:
        r.close()
        w.send("one")
        p.join(CHILD_WAIT)
        assert p.exitcode == 0, "the child did not get the message"
        with pytest.raises(BrokenPipeError):      # the first send, as multiprocessing's
            w.send("two")
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_writer_gets_broken_pipe_once_the_reader_process_is_sigkilled(impl, ctx, pipe):
    r, w = pipe(duplex=False)
    ready = ctx.Event()
    p = start(ctx, W.child_hold, r, ready)
    try:
        r.close()
        assert ready.wait(CHILD_WAIT)
        p.kill()
        p.join(CHILD_WAIT)
        with pytest.raises(BrokenPipeError):      # the first send, as multiprocessing's
            w.send("after")
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_duplex_end_gets_broken_pipe_once_the_peer_process_is_sigkilled(impl, ctx, pipe):
    a, b = pipe()
    ready = ctx.Event()
    p = start(ctx, W.child_hold, b, ready)
    try:
        b.close()
        assert ready.wait(CHILD_WAIT)
        a.send("while it lives")                  # buffered: the peer holds its end
        p.kill()
        p.join(CHILD_WAIT)
        with pytest.raises(BrokenPipeError):
            a.send("after")
    finally:
        finish(p)


@pytest.mark.timeout(60)
def test_sends_to_a_reader_end_in_transit_succeed_and_arrive(impl, ctx, pipe):
    """The parent closes its copy of the reader end while the child has not unpickled it
    yet (spawn/forkserver: a Delay argument first): no BrokenPipeError meanwhile."""
    r, w = pipe(duplex=False)
    results = ctx.Queue()
    p = start(ctx, W.child_drain_late, Delay(0.5), r, results, 3)
    try:
        r.close()
        for item in ("a", "b", "c"):
            w.send(item)                          # the end is on its way: not gone
        assert result(results) == ("n", ["a", "b", "c"])
    finally:
        finish(p)


# ====================================================================== stress

@pytest.mark.stress
@pytest.mark.timeout(300)
def test_stress_echo_many_round_trips_through_a_child(impl, ctx, pipe):
    a, b = pipe()
    p = start(ctx, W.child_echo, b, a)
    try:
        b.close()
        for i in range(20000):
            a.send(i)
            assert wait_readable(a, proc=p)
            assert a.recv() == ("echo", i)
        a.close()
    finally:
        finish(p)
    assert p.exitcode == 0


# ------------------------------------------------------------ a writer killed mid-message

def _send_one_huge_message(w) -> None:
    w.send_bytes(b"h" * (64 << 20))      # parts of ~16 KiB through a 64 KiB ring: blocks


def _wait_for_full_ring(r, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while r._rx.used < r._rx.capacity // 2 and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("another_writer", [False, True])
def test_a_writer_killed_mid_message_leaves_no_torn_message(another_writer):
    r, w = ipcfast.Pipe(False, capacity=1 << 16)
    p = mp.get_context("fork").Process(target=_send_one_huge_message, args=(w,))
    p.start()
    try:
        try:
            if not another_writer:
                w.close()
            _wait_for_full_ring(r)
            assert r._rx.used >= r._rx.capacity // 2, "the writer never filled the ring"
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)
        if another_writer:               # the reader drops the half message for the next
            t = threading.Thread(target=lambda: (w.send_bytes(b"whole"), w.close()))
            t.start()
            assert r.recv_bytes() == b"whole"
            t.join(30)
        t0 = time.monotonic()
        with pytest.raises(EOFError):
            r.recv_bytes()
        assert time.monotonic() - t0 < EOF_WAIT
    finally:
        w.close()
        r.close()
