"""Pipe / Connection within one process (threads where something must wait).

Every test taking the ``impl`` fixture runs against both ``multiprocessing.Pipe`` and
``ipcfast.Pipe``: ipcfast's is meant as a drop-in, so the expected behaviour is whatever
multiprocessing does. Tests at the bottom cover what only ipcfast has (or does differently).
Several processes are in test_pipe_processes.py.
"""
from __future__ import annotations

import array
import gc
import os
import pickle
import subprocess
import sys
import threading
import time
from multiprocessing import BufferTooShort

import pytest

import ipcfast
from tests.pipe import workers as W
from tests.pipe.workers import IMPLS, blob, blob_ok

SLACK = 5.0


@pytest.fixture(params=IMPLS)
def impl(request):
    return request.param


@pytest.fixture
def pipe(impl):
    """``pipe(duplex=True)`` -> a pair of ends of the implementation under test, all closed
    at teardown."""
    made = []

    def make(duplex=True, **kw):
        a, b = W.new_pipe(impl, duplex, **kw)
        made.extend((a, b))
        return a, b

    make.impl = impl
    yield make
    for c in made:
        c.close()


class Bg(threading.Thread):
    def __init__(self, fn, *args, delay=0.0):
        super().__init__(daemon=True)
        self.fn, self.args, self.delay = fn, args, delay
        self.result = self.error = None
        self.start()

    def run(self):
        time.sleep(self.delay)
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:        # noqa: BLE001
            self.error = e

    def outcome(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), "background call did not finish"
        if self.error is not None:
            raise self.error
        return self.result


# ====================================================================== basics

def test_duplex_pipe_carries_objects_both_ways(pipe):
    a, b = pipe()
    a.send({"x": [1, 2]})
    assert b.recv() == {"x": [1, 2]}
    b.send(("back", None))
    assert a.recv() == ("back", None)


def test_duplex_ends_are_readable_and_writable(pipe):
    a, b = pipe()
    for c in (a, b):
        assert (c.readable, c.writable, c.closed) == (True, True, False)


def test_simplex_pipe_gives_a_read_only_end_then_a_write_only_end(pipe):
    r, w = pipe(duplex=False)
    assert (r.readable, r.writable) == (True, False)
    assert (w.readable, w.writable) == (False, True)
    w.send("one way")
    assert r.recv() == "one way"


@pytest.mark.parametrize("op", ["send", "send_bytes"])
def test_sending_on_the_read_only_end_raises_oserror(pipe, op):
    r, w = pipe(duplex=False)
    with pytest.raises(OSError):
        getattr(r, op)(b"x")


@pytest.mark.parametrize("op", ["recv", "recv_bytes", "recv_bytes_into", "poll"])
def test_receiving_on_the_write_only_end_raises_oserror(pipe, op):
    r, w = pipe(duplex=False)
    with pytest.raises(OSError):
        if op == "recv_bytes_into":
            w.recv_bytes_into(bytearray(10))
        else:
            getattr(w, op)()


@pytest.mark.parametrize("obj", [None, 0, -7, 2 ** 100, 1.5, "text", b"bytes", bytearray(b"ba"),
                                 [1, [2, [3]]], {"a": (1, 2)}, {1, 2}, frozenset({3}),
                                 "x" * 100_000], ids=lambda o: type(o).__name__)
def test_send_and_recv_round_trip_objects(pipe, obj):
    a, b = pipe()
    a.send(obj)
    assert b.recv() == obj


def test_messages_arrive_in_order(pipe):
    r, w = pipe(duplex=False)
    reader = Bg(lambda: [r.recv() for _ in range(5000)])
    for i in range(5000):
        w.send(i)
    assert reader.outcome() == list(range(5000))


def test_unpicklable_object_raises_in_send_and_sends_nothing(pipe):
    a, b = pipe()
    with pytest.raises(Exception):
        a.send(lambda: None)
    assert not b.poll(0.1)
    a.send("next")
    assert b.recv() == "next"


def test_connection_is_a_context_manager_that_closes(pipe):
    a, b = pipe()
    with a as c:
        assert c is a
    assert a.closed


# ====================================================================== bytes

@pytest.mark.parametrize("size", [0, 1, 7, 4096, 65535, 65536, 65537, 200_000, 500_000])
def test_send_bytes_and_recv_bytes_round_trip_any_size(pipe, size):
    r, w = pipe(duplex=False)
    data = os.urandom(size)
    reader = Bg(r.recv_bytes)             # multiprocessing blocks on big sends until read
    w.send_bytes(data)
    assert reader.outcome() == data


@pytest.mark.parametrize("offset, size, expect", [(0, None, b"0123456789"), (3, None, b"3456789"),
                                                  (3, 4, b"3456"), (10, None, b""), (0, 0, b""),
                                                  (10, 0, b""), (0, 10, b"0123456789")])
def test_send_bytes_sends_the_slice_given_by_offset_and_size(pipe, offset, size, expect):
    a, b = pipe()
    a.send_bytes(b"0123456789", offset, size)
    assert b.recv_bytes() == expect


@pytest.mark.parametrize("kind", [bytearray, memoryview, lambda b: array.array("B", b)],
                         ids=["bytearray", "memoryview", "array"])
def test_send_bytes_accepts_any_bytes_like_object(pipe, kind):
    a, b = pipe()
    a.send_bytes(kind(b"abcdef"), 1, 3)
    assert b.recv_bytes() == b"bcd"


def test_send_bytes_counts_offset_and_size_in_bytes_for_wide_items(pipe):
    a, b = pipe()
    arr = array.array("i", range(10))
    a.send_bytes(arr, 2 * arr.itemsize, 3 * arr.itemsize)
    assert b.recv_bytes() == array.array("i", [2, 3, 4]).tobytes()


@pytest.mark.parametrize("offset, size", [(-1, None), (11, None), (0, -1), (5, 6), (0, 11)])
def test_send_bytes_with_a_bad_offset_or_size_raises_value_error(pipe, offset, size):
    a, b = pipe()
    with pytest.raises(ValueError):
        a.send_bytes(b"0123456789", offset, size)
    assert not b.poll(0.05)


def test_recv_bytes_with_maxlength_large_enough_returns_the_message(pipe):
    a, b = pipe()
    a.send_bytes(b"12345")
    assert b.recv_bytes(5) == b"12345"


def test_recv_bytes_over_maxlength_raises_bad_message_length_and_stops_reading(pipe):
    a, b = pipe()
    a.send_bytes(b"123456")
    with pytest.raises(OSError, match="bad message length"):
        b.recv_bytes(5)
    assert not b.readable and not b.closed        # duplex: reading is over, writing is not
    with pytest.raises(OSError):
        b.recv_bytes()
    b.send("still writable")
    assert a.recv() == "still writable"


def test_recv_bytes_over_maxlength_on_a_read_only_end_closes_it(pipe):
    r, w = pipe(duplex=False)
    w.send_bytes(b"123456")
    with pytest.raises(OSError, match="bad message length"):
        r.recv_bytes(2)
    assert r.closed


def test_recv_bytes_with_negative_maxlength_raises_value_error(pipe):
    a, b = pipe()
    a.send_bytes(b"x")
    with pytest.raises(ValueError):
        b.recv_bytes(-1)
    assert b.recv_bytes() == b"x"


def test_recv_bytes_into_fills_a_buffer_at_an_offset(pipe):
    a, b = pipe()
    a.send_bytes(b"hello")
    buf = bytearray(b"." * 10)
    assert b.recv_bytes_into(buf) == 5
    assert buf == b"hello....."
    a.send_bytes(b"abc")
    assert b.recv_bytes_into(buf, 7) == 3
    assert buf == b"hello..abc"


def test_recv_bytes_into_an_array_uses_a_byte_offset(pipe):
    a, b = pipe()
    src = array.array("i", [7, 8])
    a.send_bytes(src)
    dst = array.array("i", [0, 0, 0, 0])
    assert b.recv_bytes_into(dst, 2 * dst.itemsize) == 2 * dst.itemsize
    assert list(dst) == [0, 0, 7, 8]


def test_recv_bytes_into_a_short_buffer_raises_buffer_too_short_with_the_message(pipe):
    a, b = pipe()
    a.send_bytes(b"0123456789")
    buf = bytearray(4)
    with pytest.raises(BufferTooShort) as e:
        b.recv_bytes_into(buf)
    assert e.value.args[0] == b"0123456789"
    a.send_bytes(b"next")
    assert b.recv_bytes() == b"next"          # the long message was consumed, not left


def test_recv_bytes_into_just_too_short_at_an_offset_raises_buffer_too_short(pipe):
    a, b = pipe()
    a.send_bytes(b"abcd")
    with pytest.raises(BufferTooShort):
        b.recv_bytes_into(bytearray(6), 3)


@pytest.mark.parametrize("offset", [-1, 11])
def test_recv_bytes_into_with_a_bad_offset_raises_value_error(pipe, offset):
    a, b = pipe()
    a.send_bytes(b"x")
    with pytest.raises(ValueError):
        b.recv_bytes_into(bytearray(10), offset)
    assert b.recv_bytes() == b"x"


def test_send_and_send_bytes_interleave(pipe):
    a, b = pipe()
    a.send_bytes(b"raw")
    a.send([1])
    assert b.recv_bytes() == b"raw"
    assert b.recv() == [1]


# ====================================================================== poll

def test_poll_is_false_on_an_empty_pipe_and_true_once_something_is_sent(pipe):
    a, b = pipe()
    assert b.poll() is False
    assert b.poll(0) is False
    a.send(1)
    assert b.poll() is True
    assert b.poll(5) is True              # does not consume
    assert b.recv() == 1
    assert b.poll() is False


def test_poll_with_a_timeout_waits_that_long(pipe):
    a, b = pipe()
    start = time.monotonic()
    assert b.poll(0.3) is False
    assert 0.29 <= time.monotonic() - start <= 0.3 + SLACK


def test_poll_with_a_negative_timeout_does_not_wait(pipe):
    a, b = pipe()
    start = time.monotonic()
    assert b.poll(-1) is False
    assert time.monotonic() - start < SLACK


def test_poll_none_waits_until_something_arrives(pipe):
    a, b = pipe()
    sender = Bg(a.send, "late", delay=0.3)
    start = time.monotonic()
    assert b.poll(None) is True
    assert time.monotonic() - start >= 0.25
    sender.outcome()
    assert b.recv() == "late"


def test_poll_wakes_up_when_the_other_end_is_closed(pipe):
    a, b = pipe()
    closer = Bg(a.close, delay=0.3)
    start = time.monotonic()
    assert b.poll(10) is True
    assert time.monotonic() - start < 10
    closer.outcome()
    with pytest.raises(EOFError):
        b.recv()


# ====================================================================== closing, EOF, broken pipe

CLOSED_OPS = {
    "send": lambda c: c.send(1),
    "send_bytes": lambda c: c.send_bytes(b"1"),
    "recv": lambda c: c.recv(),
    "recv_bytes": lambda c: c.recv_bytes(),
    "recv_bytes_into": lambda c: c.recv_bytes_into(bytearray(4)),
    "poll": lambda c: c.poll(),
}


@pytest.mark.parametrize("op", list(CLOSED_OPS), ids=list(CLOSED_OPS))
def test_using_a_closed_end_raises_oserror(pipe, op):
    a, b = pipe()
    a.close()
    assert a.closed
    with pytest.raises(OSError, match="closed"):
        CLOSED_OPS[op](a)


def test_close_is_idempotent(pipe):
    a, b = pipe()
    a.close()
    a.close()
    assert a.closed


def test_recv_after_the_writer_closed_returns_what_was_sent_then_eof(pipe):
    r, w = pipe(duplex=False)
    for i in range(3):
        w.send(i)
    w.close()
    assert [r.recv() for _ in range(3)] == [0, 1, 2]
    assert r.poll() is True                   # at EOF poll says "readable"
    with pytest.raises(EOFError):
        r.recv()
    with pytest.raises(EOFError):
        r.recv_bytes()                         # and stays at EOF


def test_duplex_end_sees_eof_when_the_other_end_closes(pipe):
    a, b = pipe()
    a.send("bye")
    a.close()
    assert b.recv() == "bye"
    with pytest.raises(EOFError):
        b.recv()


def test_blocked_recv_is_woken_by_eof_when_the_writer_closes(pipe):
    r, w = pipe(duplex=False)
    closer = Bg(w.close, delay=0.3)
    with pytest.raises(EOFError):
        r.recv()
    closer.outcome()


def test_send_raises_broken_pipe_once_the_reader_is_gone(pipe):
    """multiprocessing raises at once; ipcfast once the ring is full (at most its capacity)."""
    r, w = pipe(duplex=False)
    r.close()
    chunk = b"x" * 65536
    with pytest.raises(BrokenPipeError):
        for _ in range(64):                     # 4 MiB: more than a ring or a pipe buffer
            w.send_bytes(chunk)


def test_duplex_send_raises_broken_pipe_once_the_other_end_is_gone(pipe):
    a, b = pipe()
    b.close()
    with pytest.raises(BrokenPipeError):
        for _ in range(64):
            a.send_bytes(b"y" * 65536)


def test_blocked_writer_gets_broken_pipe_when_the_reader_closes(pipe):
    r, w = pipe(duplex=False)

    def flood():
        for _ in range(1000):
            w.send_bytes(b"z" * 65536)

    writer = Bg(flood)
    time.sleep(0.3)
    assert writer.is_alive(), "the writer should be blocked on a full pipe"
    r.close()
    with pytest.raises(BrokenPipeError):
        writer.outcome()


def test_blocked_writer_resumes_when_the_reader_reads(pipe):
    r, w = pipe(duplex=False)
    n, size = 48, 65536                     # 3 MiB: more than either buffer
    writer = Bg(lambda: [w.send_bytes(blob(i, size)) for i in range(n)])
    time.sleep(0.3)
    assert writer.is_alive(), "3 MiB should not fit without a reader"
    got = [r.recv_bytes() for _ in range(n)]
    writer.outcome()
    assert all(blob_ok(g) for g in got)
    assert got == [blob(i, size) for i in range(n)]


def test_garbage_collected_end_counts_as_closed(pipe):
    r, w = W.new_pipe(pipe.impl, False)
    try:
        del w
        gc.collect()
        assert r.poll(10) is True
        with pytest.raises(EOFError):
            r.recv()
    finally:
        r.close()


# ====================================================================== ipcfast only

def test_ipcfast_pipe_returns_ipcfast_connections():
    a, b = ipcfast.Pipe()
    try:
        assert isinstance(a, ipcfast.Connection) and isinstance(b, ipcfast.Connection)
        assert "duplex" in repr(a)
    finally:
        a.close()
        b.close()
    assert "closed" in repr(a)


def test_write_only_end_has_no_file_descriptor_to_wait_on():
    """fileno() of a write-only end raises OSError (readable ends: tests/poll)."""
    a, b = ipcfast.Pipe(duplex=False)
    try:
        with pytest.raises(OSError, match="write-only"):
            b.fileno()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("size", [(1 << 16) - 8, 1 << 16, (1 << 16) + 1, 5 << 20, 3 * 4088])
def test_message_larger_than_the_ring_arrives_whole_as_in_multiprocessing(size):
    r, w = ipcfast.Pipe(False, capacity=1 << 16)
    try:
        done = Bg(lambda: [w.send_bytes(blob(1, size)), w.send(["obj", blob(2, size)]),
                           w.send_bytes(b"after")])
        assert r.recv_bytes() == blob(1, size)
        assert r.recv() == ["obj", blob(2, size)]
        assert r.recv_bytes() == b"after"
        done.outcome()
    finally:
        r.close()
        w.close()


def test_a_large_message_is_refused_by_recv_bytes_maxlength_as_in_multiprocessing():
    r, w = ipcfast.Pipe(False, capacity=4096)
    try:
        done = Bg(lambda: w.send_bytes(b"z" * 50_000))
        with pytest.raises(OSError, match="bad message length"):
            r.recv_bytes(maxlength=40_000)
        done.outcome()
    finally:
        r.close()
        w.close()


def test_threads_sending_large_messages_on_one_end_never_interleave_their_parts():
    r, w = ipcfast.Pipe(False, capacity=4096)
    try:
        senders = [Bg(lambda k=k: [w.send_bytes(blob(k, 20_000 + k)) for _ in range(10)])
                   for k in range(3)]
        got = [r.recv_bytes() for _ in range(30)]
        for s in senders:
            s.outcome()
        assert sorted(got) == sorted([blob(k, 20_000 + k) for k in range(3)] * 10)
    finally:
        r.close()
        w.close()


def test_ipcfast_send_bytes_accepts_a_non_contiguous_view():
    """(multiprocessing raises TypeError for this one.)"""
    a, b = ipcfast.Pipe()
    try:
        a.send_bytes(memoryview(bytearray(b"a1b2c3d4"))[::2])
        assert b.recv_bytes() == b"abcd"
    finally:
        a.close()
        b.close()


def test_ipcfast_small_ring_makes_the_writer_wait_for_the_reader():
    r, w = ipcfast.Pipe(False, capacity=4096)
    try:
        writer = Bg(lambda: [w.send_bytes(blob(i, 1000)) for i in range(100)])
        time.sleep(0.2)
        assert writer.is_alive()
        assert [r.recv_bytes() for _ in range(100)] == [blob(i, 1000) for i in range(100)]
        writer.outcome()
    finally:
        r.close()
        w.close()


@pytest.mark.parametrize("which", ["read-only", "write-only", "duplex"])
def test_ipcfast_end_survives_pickling_with_its_direction(which):
    # regression: Connection.__reduce__ tested `if self._rx`, False for an EMPTY Ring
    if which == "duplex":
        a, b = ipcfast.Pipe()
        end, peer = b, a
    else:
        r, w = ipcfast.Pipe(False)
        end, peer = (r, w) if which == "read-only" else (w, r)
    clone = pickle.loads(pickle.dumps(end))
    try:
        assert (clone.readable, clone.writable) == (end.readable, end.writable)
        if clone.writable:
            clone.send("via clone")
            assert peer.recv() == "via clone"
        if clone.readable:
            peer.send("to clone")
            assert clone.recv() == "to clone"
    finally:
        for c in (clone, end, peer):
            c.close()


def test_ipcfast_end_pickled_for_a_child_survives_the_parent_closing_both_ends():
    # an end in transit keeps its ring alive (multiprocessing allows closing at once)
    r, w = ipcfast.Pipe(False)
    data = pickle.dumps(w)              # as when handed to a Process under spawn
    r_data = pickle.dumps(r)
    r.close()
    w.close()
    w2 = pickle.loads(data)
    r2 = pickle.loads(r_data)
    try:
        assert w2.writable and r2.readable
        w2.send("made it")
        assert r2.recv() == "made it"
    finally:
        w2.close()
        r2.close()


def test_ipcfast_pickled_end_of_a_non_empty_ring_keeps_its_direction():
    """The same round trip works when the ring happens to hold a message."""
    r, w = ipcfast.Pipe(False)
    w.send("pending")
    clone = pickle.loads(pickle.dumps(r))
    try:
        assert clone.readable
        assert clone.recv() == "pending"
    finally:
        for c in (clone, r, w):
            c.close()


@pytest.mark.timeout(60)
def test_ipcfast_pipe_is_removed_when_its_last_holder_is_a_fork_child_exiting_without_close():
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    a, b = ipcfast.Pipe()
    names = {a._rx.name, a._tx.name}
    ready = ctx.Event()
    p = ctx.Process(target=W.child_hold_then_exit, args=(b, ready))
    p.start()
    try:
        assert ready.wait(30)            # the child has attached: it is now a holder
        a.close()
        b.close()
        p.join(30)
        deadline = time.monotonic() + 3
        while any(os.path.exists(f"/dev/shm/{n}") for n in names) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = sorted(n for n in names if os.path.exists(f"/dev/shm/{n}"))
        assert not left, f"left behind: {left}"
    finally:
        if p.is_alive():
            p.kill()
        p.join(10)
        for n in names:                  # do not let the leak fail later tests
            try:
                os.unlink(f"/dev/shm/{n}")
            except FileNotFoundError:
                pass


_PICKLED_THEN_CLOSED = r"""
import os, pickle, time
import ipcfast
r, w = ipcfast.Pipe(duplex=False)
path = "/dev/shm/" + r._rx.name
print(path, flush=True)
pickle.dumps(w)              # as for a child that is never started, or dies before taking it
w.close()
start = time.monotonic()
try:
    r.recv()
    outcome = "recv-returned"
except EOFError:
    outcome = "EOFError"
took = time.monotonic() - start
r.close()
print(outcome, took, os.path.exists(path))
"""


@pytest.mark.timeout(60)
def test_ipcfast_end_pickled_and_closed_with_no_child_to_take_it_gives_eof_at_once():
    """Regression: a process that pickles its only writing end and closes it, with no child
    that could take the end, used to leave the reader waiting out the whole transit time
    (60 s) before EOFError, and the ring in /dev/shm after the reader closed. The end in
    transit counts like a segment handle in transit: only while its sender has a live
    descendant. (In a fresh interpreter: a child of the test process, such as a forkserver
    left by another test, could take the end, and would then rightly keep it open.)"""
    child = subprocess.Popen([sys.executable, "-c", _PICKLED_THEN_CLOSED],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    lines = out.split("\n")
    if lines[0] and os.path.exists(lines[0]):
        os.unlink(lines[0])          # the ring of a child that failed: do not leak it
    assert child.returncode == 0, f"no EOFError within 20 s: {err}"
    outcome, took, left = lines[1].split()
    assert outcome == "EOFError"
    assert float(took) < 2.0, f"EOFError only after {float(took):.1f} s"
    assert left == "False", "the ring was left in /dev/shm after the reader closed"
