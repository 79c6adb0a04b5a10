"""ipcfast.Ring in one process: round trips, wrap-around, batches, zero-copy, bad input,
closing, pickling and segment lifetime.

Threads, timeouts and signals are in test_threads.py; several processes in
test_processes.py; the shared layout in tests/layout.
"""
from __future__ import annotations

import collections
import gc
import os
import pickle
import queue
import random
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import ipcfast
from ipcfast import IncompatibleSegmentError, Ring
from ipcfast._native import ffi, lib
from tests.support.shm import REC_HDR, SHM, named_by, new_name, rec
from tests.support.procs import run_python
from tests.support.shm import path as shm_path

TAIL_AT = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_ring_ctl", "tail")
HEAD_AT = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_ring_ctl", "head")
VERSION_AT = ffi.offsetof("struct ipcf_seg_hdr", "version")
TOTAL_SIZE_AT = ffi.offsetof("struct ipcf_seg_hdr", "total_size")
CAPACITY_AT = ffi.offsetof("struct ipcf_seg_hdr", "capacity")

HYPOTHESIS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                            HealthCheck.too_slow])


def payload(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def positions(ring: Ring):
    """(head, tail): the free-running byte positions, read from the segment file."""
    with open(shm_path(ring.name), "rb") as f:
        page = f.read(lib.IPCF_HDR_SIZE)
    head = int.from_bytes(page[HEAD_AT:HEAD_AT + 8], "little")
    tail = int.from_bytes(page[TAIL_AT:TAIL_AT + 8], "little")
    return head, tail


def advance_to(ring: Ring, offset: int) -> None:
    """Leave `ring` empty with its next record starting at byte `offset` of the data area."""
    head, tail = positions(ring)
    assert head == tail, "ring must be empty"
    delta = (offset - tail) % ring.capacity
    if delta:
        assert delta >= REC_HDR
        ring.send_bytes(b"\xee" * (delta - REC_HDR), block=False)
        ring.recv_bytes(block=False)
    head, tail = positions(ring)
    assert head == tail and tail % ring.capacity == offset


# --------------------------------------------------------------------------------------
# 1. round trips
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [4096, 8192])
@pytest.mark.parametrize("multi", [True, False], ids=["locked", "spsc"])
def test_every_size_from_zero_to_max_message_round_trips_byte_exact(capacity, multi):
    pool = random.Random(capacity).randbytes(3 * capacity)
    with Ring(capacity, multi_producer=multi, multi_consumer=multi) as ring:
        assert ring.max_message == capacity - REC_HDR
        for n in range(ring.max_message + 1):
            start = (n * 31) % capacity
            msg = pool[start:start + n]
            ring.send_bytes(msg, block=False)
            assert ring.used == rec(n)
            got = ring.recv_bytes(block=False)
            assert got == msg, f"size {n}"
            assert ring.empty()
        head, tail = positions(ring)
        assert head == tail > 100 * capacity        # positions went round many times


@HYPOTHESIS
@given(data=st.data(), capacity=st.sampled_from([4096, 8192, 16384]))
def test_random_sizes_round_trip_in_order_with_wrap_around(data, capacity):
    with Ring(capacity) as ring:
        max_msg = ring.max_message
        size = st.one_of(st.integers(0, 64), st.integers(0, max_msg),
                         st.sampled_from([0, 1, 7, 8, 9, max_msg - 8, max_msg - 1, max_msg]))
        sizes = data.draw(st.lists(size, min_size=1, max_size=60))
        pending = collections.deque()
        seed = data.draw(st.integers(0, 2**32))
        for i, n in enumerate(sizes):
            while ring.used + rec(n) > capacity:     # make room: receive the oldest
                assert ring.recv_bytes(block=False) == pending.popleft()
            msg = payload(seed + i, n)
            ring.send_bytes(msg, block=False)
            pending.append(msg)
            assert ring.used == sum(rec(len(m)) for m in pending)
        while pending:
            assert ring.recv_bytes(block=False) == pending.popleft()
        with pytest.raises(queue.Empty):
            ring.recv_bytes(block=False)


@pytest.mark.parametrize("size", [65535, 65536, 65537, 1 << 20, (1 << 20) + 1, 3 << 20,
                                  (4 << 20) - REC_HDR])
@pytest.mark.parametrize("how", ["recv_bytes", "recv_many", "view"])
def test_large_messages_round_trip_with_every_receive_method(size, how):
    msg = payload(size, size)
    with Ring(4 << 20) as ring:
        assert ring.max_message == (4 << 20) - REC_HDR
        ring.send_bytes(msg)
        after = rec(size) + rec(5) <= ring.capacity
        if after:
            ring.send_bytes(b"after")
        if how == "recv_bytes":
            got = ring.recv_bytes(timeout=5)
        elif how == "recv_many":
            got, = ring.recv_many(max_messages=1, timeout=5)
        else:
            with ring.view(timeout=5) as mv:
                got = mv.tobytes()
        assert got == msg
        if after:
            assert ring.recv_bytes(block=False) == b"after"
        assert ring.empty()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_send_bytes_accepts_any_bytes_like_object(kind):
    with Ring(4096) as ring:
        ring.send_bytes(kind(b"hello"))
        ring.send_bytes(memoryview(b"xxhelloxx")[2:7])
        assert ring.recv_bytes(block=False) == b"hello"
        assert ring.recv_bytes(block=False) == b"hello"


def test_send_bytes_rejects_non_bytes_like_with_type_error_and_writes_nothing():
    with Ring(4096) as ring:
        for bad in (5, "text", None, [1, 2]):
            with pytest.raises(TypeError):
                ring.send_bytes(bad)
        assert ring.empty() and len(ring) == 0


def test_len_used_and_empty_track_contents():
    with Ring(4096) as ring:
        assert len(ring) == 0 and ring.used == 0 and ring.empty()
        ring.send_bytes(b"a")
        ring.send_bytes(b"b" * 9)
        assert len(ring) == 2 and ring.used == rec(1) + rec(9) and not ring.empty()
        ring.recv_bytes()
        assert len(ring) == 1 and ring.used == rec(9)
        ring.recv_bytes()
        assert len(ring) == 0 and ring.used == 0 and ring.empty()


@pytest.mark.parametrize("n", range(0, 17))
def test_records_are_padded_to_eight_bytes(n):
    with Ring(4096) as ring:
        ring.send_bytes(bytes(range(n)))
        assert ring.used == rec(n) == 8 * (1 + (n + 7) // 8)
        head, tail = positions(ring)
        assert tail - head == rec(n)
        assert ring.recv_bytes() == bytes(range(n))


def test_default_ring_is_one_mib_multi_producer_multi_consumer():
    with Ring() as ring:
        assert ring.capacity == 1 << 20
        assert ring.max_message == (1 << 20) - REC_HDR
        assert ring.multi_producer and ring.multi_consumer
        assert ring.name.startswith("ipcf")


def test_explicit_name_is_used_for_the_segment():
    name = new_name()
    with Ring(4096, name=name) as ring:
        assert ring.name == name
        assert os.path.exists(shm_path(name))
    assert not os.path.exists(shm_path(name))


@pytest.mark.parametrize("requested, actual", [(4096, 4096), (4097, 8192), (5000, 8192),
                                               (8192, 8192), (100_000, 131072)])
def test_capacity_is_rounded_up_to_a_power_of_two(requested, actual):
    with Ring(requested) as ring:
        assert ring.capacity == actual
        assert ring.max_message == actual - REC_HDR
        assert os.stat(shm_path(ring.name)).st_size == lib.IPCF_HDR_SIZE + actual


# --------------------------------------------------------------------------------------
# 1b. wrap-around boundaries (the data area is mapped twice, so records never split)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0, 8, 16, 1024, 2048, 4096 - 64, 4096 - 16, 4096 - 8])
def test_record_ending_exactly_at_the_end_of_the_ring(offset):
    with Ring(4096) as ring:
        advance_to(ring, offset)
        n = 4096 - offset - REC_HDR        # record = header + body ends on the last byte
        msg = payload(offset, n)
        ring.send_bytes(msg, block=False)
        head, tail = positions(ring)
        assert head % 4096 == offset and tail % 4096 == 0
        nxt = payload(offset + 1, 40)      # the following record starts at byte 0
        if ring.used + rec(40) > ring.capacity:
            assert ring.recv_bytes(block=False) == msg
            ring.send_bytes(nxt, block=False)
            assert positions(ring)[0] % 4096 == 0
        else:
            ring.send_bytes(nxt, block=False)
            assert ring.recv_bytes(block=False) == msg
        assert ring.recv_bytes(block=False) == nxt
        assert ring.empty()


@pytest.mark.parametrize("offset", [8, 2048, 4096 - 64, 4096 - 16, 4096 - 8])
@pytest.mark.parametrize("extra", [1, 7, 8, 9, 100, 2000])
def test_record_straddling_the_end_of_the_ring(offset, extra):
    with Ring(4096) as ring:
        advance_to(ring, offset)
        n = min(4096 - offset - REC_HDR + extra,   # `extra` bytes past the end
                ring.max_message)
        msg = payload(offset * 7 + extra, n)
        ring.send_bytes(msg)
        head, tail = positions(ring)
        assert head % 4096 + rec(n) > 4096          # really straddles
        assert ring.recv_bytes() == msg


@pytest.mark.parametrize("offset", [0, 8, 1000, 4096 - 8])
def test_max_message_fills_the_whole_ring_from_any_offset(offset):
    offset -= offset % 8
    with Ring(4096) as ring:
        advance_to(ring, offset)
        msg = payload(offset, ring.max_message)
        ring.send_bytes(msg, block=False)
        assert ring.used == ring.capacity
        with pytest.raises(queue.Full):
            ring.send_bytes(b"", block=False)     # not even a header fits now
        assert ring.recv_bytes(block=False) == msg
        ring.send_bytes(b"", block=False)
        assert ring.recv_bytes(block=False) == b""


@pytest.mark.parametrize("offset", [4096 - 8, 4096 - 16, 4096 - 40])
def test_claim_and_view_are_contiguous_across_the_end_of_the_ring(offset):
    with Ring(4096) as ring:
        advance_to(ring, offset)
        msg = payload(offset, 300)
        with ring.claim(300) as mv:
            mv[:] = msg
        head, _ = positions(ring)
        assert head % 4096 + rec(300) > 4096
        with ring.view() as mv:
            assert len(mv) == 300
            assert mv.tobytes() == msg
            assert bytes(mv[-5:]) == msg[-5:]
        assert ring.empty()


@pytest.mark.parametrize("offset", [4096 - 8, 4096 - 24, 2048])
def test_recv_many_across_the_end_of_the_ring(offset):
    with Ring(4096) as ring:
        advance_to(ring, offset)
        msgs = [payload(offset + i, i * 13) for i in range(20)]
        assert ring.send_many(msgs, block=False) == 20
        assert ring.recv_many(block=False) == msgs


# --------------------------------------------------------------------------------------
# 1c. a model-checked random mix of every send / receive form
# --------------------------------------------------------------------------------------

class RingMachine(RuleBasedStateMachine):
    """Every operation is non-blocking, so the model predicts exactly what must happen."""

    def __init__(self):
        super().__init__()
        self.ring = None
        self.model = collections.deque()
        self.seq = 0

    @initialize(capacity=st.sampled_from([4096, 8192]), multi=st.booleans())
    def open_ring(self, capacity, multi):
        self.ring = Ring(capacity, multi_producer=multi, multi_consumer=multi)

    def teardown(self):
        if self.ring is not None:
            self.ring.close()

    # -- helpers --
    def _size(self, size):
        return min(size, self.ring.max_message)

    def _fits(self, n):
        return sum(rec(len(m)) for m in self.model) + rec(n) <= self.ring.capacity

    def _next(self, n):
        self.seq += 1
        return payload(self.seq, n)

    # -- producer rules --
    @rule(size=st.one_of(st.integers(0, 48), st.integers(0, 8184)),
          how=st.sampled_from(["bytes", "bytearray", "memoryview", "claim"]))
    def send(self, size, how):
        n = self._size(size)
        msg = self._next(n)
        fits = self._fits(n)
        try:
            if how == "claim":
                with self.ring.claim(n, block=False) as mv:
                    mv[:] = msg
            else:
                data = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[how](msg)
                self.ring.send_bytes(data, block=False)
        except queue.Full:
            assert not fits, "queue.Full although the message fits"
        else:
            assert fits, "sent although the message does not fit"
            self.model.append(msg)

    @rule(sizes=st.lists(st.integers(0, 1200), max_size=8))
    def send_many(self, sizes):
        msgs = [self._next(self._size(s)) for s in sizes]
        fit = 0
        while fit < len(msgs) and self._fits_after(msgs[:fit], len(msgs[fit])):
            fit += 1
        try:
            sent = self.ring.send_many(msgs, block=False)
        except queue.Full as exc:
            assert fit < len(msgs)
            assert exc.sent == fit
        else:
            assert sent == fit == len(msgs)
        self.model.extend(msgs[:fit])

    def _fits_after(self, extra, n):
        used = sum(rec(len(m)) for m in self.model) + sum(rec(len(m)) for m in extra)
        return used + rec(n) <= self.ring.capacity

    @rule(size=st.integers(0, 100))
    def abandoned_claim_is_never_visible(self, size):
        before = self.ring.used
        try:
            with pytest.raises(ZeroDivisionError):
                with self.ring.claim(size, block=False) as mv:
                    mv[:] = b"\xab" * size
                    1 / 0
        except queue.Full:
            assert not self._fits(size)
        assert self.ring.used == before

    # -- consumer rules --
    @rule(how=st.sampled_from(["recv_bytes", "view", "recv_many1"]))
    def recv(self, how):
        try:
            if how == "recv_bytes":
                got = self.ring.recv_bytes(block=False)
            elif how == "view":
                with self.ring.view(block=False) as mv:
                    assert mv.readonly
                    got = mv.tobytes()
            else:
                got, = self.ring.recv_many(max_messages=1, block=False)
        except queue.Empty:
            assert not self.model
        else:
            assert self.model, "received from an empty ring"
            assert got == self.model.popleft()

    @rule(k=st.integers(1, 10))
    def recv_many(self, k):
        try:
            got = self.ring.recv_many(max_messages=k, block=False)
        except queue.Empty:
            assert not self.model
        else:
            want = [self.model.popleft() for _ in range(min(k, len(self.model)))]
            assert got == want

    @precondition(lambda self: self.ring is not None)
    @rule()
    def abandoned_view_leaves_the_message(self):
        try:
            with pytest.raises(KeyError):
                with self.ring.view(block=False) as mv:
                    assert mv.tobytes() == self.model[0]
                    raise KeyError
        except queue.Empty:
            assert not self.model

    @invariant()
    def counters_match_the_model(self):
        if self.ring is None:
            return
        assert len(self.ring) == len(self.model)
        assert self.ring.used == sum(rec(len(m)) for m in self.model)
        assert self.ring.empty() == (not self.model)


RingMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TestRingMatchesAModelQueue = RingMachine.TestCase


# --------------------------------------------------------------------------------------
# 2. send_many / recv_many
# --------------------------------------------------------------------------------------

def test_send_many_and_recv_many_round_trip_in_order():
    rnd = random.Random(7)
    msgs = [rnd.randbytes(rnd.randrange(0, 500)) for _ in range(1000)]
    with Ring(1 << 20) as ring:
        assert ring.send_many(msgs) == 1000
        assert len(ring) == 1000
        got = []
        while len(got) < 1000:
            got.extend(ring.recv_many(block=False))
        assert got == msgs
        assert ring.empty()


def test_send_many_accepts_any_iterable_of_bytes_like():
    with Ring(4096) as ring:
        items = (x for x in [b"a", bytearray(b"bc"), memoryview(b"def")])
        assert ring.send_many(items) == 3
        assert ring.recv_many() == [b"a", b"bc", b"def"]


def test_send_many_of_nothing_returns_zero():
    with Ring(4096) as ring:
        assert ring.send_many([]) == 0
        assert ring.empty()


def test_send_many_rejects_items_that_are_not_bytes_like():
    """send_bytes(5) raises TypeError; send_many([5]) must not quietly send b'\\0' * 5."""
    with Ring(4096) as ring:
        with pytest.raises(TypeError):
            ring.send_bytes(5)
        with pytest.raises(TypeError):
            ring.send_many([b"ok", 5])
        assert ring.empty(), f"send_many sent {ring.recv_many(block=False)!r}"


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10, 11, 1000])
def test_recv_many_returns_at_most_max_messages(k):
    msgs = [b"m%d" % i for i in range(10)]
    with Ring(4096) as ring:
        ring.send_many(msgs)
        got = []
        while len(got) < 10:
            batch = ring.recv_many(max_messages=k, block=False)
            assert 1 <= len(batch) <= k
            got.extend(batch)
        assert got == msgs


@pytest.mark.parametrize("k", [0, -1])
def test_recv_many_rejects_max_messages_below_one(k):
    with Ring(4096) as ring:
        ring.send_bytes(b"x")
        with pytest.raises(ValueError):
            ring.recv_many(max_messages=k)
        assert ring.recv_bytes() == b"x"


def test_recv_many_moves_more_than_a_batch_buffer_over_several_calls():
    msgs = [payload(i, 100_000) for i in range(30)]      # 3 MB in a 4 MiB ring
    with Ring(4 << 20) as ring:
        ring.send_many(msgs)
        got = []
        calls = 0
        while len(got) < len(msgs):
            got.extend(ring.recv_many(block=False))
            calls += 1
        assert got == msgs
        assert calls >= 2


def test_recv_many_of_zero_length_messages():
    with Ring(4096) as ring:
        ring.send_many([b""] * 50)
        assert ring.recv_many() == [b""] * 50


def test_send_many_without_blocking_on_full_ring_raises_full_with_sent_count():
    msgs = [bytes([i]) * 100 for i in range(50)]
    fit = 4096 // rec(100)          # 36 records of 112 bytes
    with Ring(4096) as ring:
        with pytest.raises(queue.Full) as info:
            ring.send_many(msgs, block=False)
        assert info.value.sent == fit
        assert len(ring) == fit
        assert ring.recv_many(block=False) == msgs[:fit]
        # the rest can be sent now
        assert ring.send_many(msgs[fit:], block=False) == len(msgs) - fit
        assert ring.recv_many(block=False) == msgs[fit:]


def test_send_many_on_an_already_full_ring_reports_zero_sent():
    with Ring(4096) as ring:
        ring.send_bytes(b"x" * ring.max_message)
        with pytest.raises(queue.Full) as info:
            ring.send_many([b"a", b"b"], block=False)
        assert info.value.sent == 0
        assert len(ring) == 1


def test_send_many_with_timeout_on_full_ring_raises_full_with_sent_count():
    msgs = [b"z" * 100] * 50
    with Ring(4096) as ring:
        with pytest.raises(queue.Full) as info:
            ring.send_many(msgs, timeout=0.1)
        assert info.value.sent == 4096 // rec(100)
        assert len(ring) == info.value.sent


def test_send_many_with_an_oversized_message_raises_and_sends_nothing():
    with Ring(4096) as ring:
        with pytest.raises(ValueError) as info:
            ring.send_many([b"ok", b"x" * 4089, b"ok"])
        assert "4089" in str(info.value) and "4088" in str(info.value)
        assert ring.empty()
        assert ring.send_many([b"ok"]) == 1
        assert ring.recv_bytes() == b"ok"


# --------------------------------------------------------------------------------------
# 2b. claim() and view()
# --------------------------------------------------------------------------------------

def test_claim_yields_writable_memoryview_committed_on_exit():
    with Ring(4096) as ring, Ring.attach(ring.name) as other:
        with ring.claim(11) as mv:
            assert isinstance(mv, memoryview)
            assert not mv.readonly
            assert len(mv) == 11
            mv[:5] = b"hello"
            mv[5:] = b" world"
            assert other.empty(), "a claimed message is visible before commit"
            with pytest.raises(queue.Empty):
                other.recv_bytes(block=False)
        assert other.recv_bytes(block=False) == b"hello world"


def test_claim_is_abandoned_and_never_visible_when_the_block_raises():
    with Ring(4096) as ring:
        _, tail_before = positions(ring)
        with pytest.raises(RuntimeError, match="boom"):
            with ring.claim(64) as mv:
                mv[:] = b"\xff" * 64
                raise RuntimeError("boom")
        assert ring.empty() and len(ring) == 0
        assert positions(ring)[1] == tail_before
        with pytest.raises(queue.Empty):
            ring.recv_bytes(block=False)
        ring.send_bytes(b"next")                 # producer side was released
        assert ring.recv_bytes() == b"next"


def test_claim_abandoned_by_keyboard_interrupt_releases_the_producer_side():
    with Ring(4096) as ring:
        with pytest.raises(KeyboardInterrupt):
            with ring.claim(8):
                raise KeyboardInterrupt
        ring.send_bytes(b"ok", timeout=1)
        assert ring.recv_bytes() == b"ok"


def test_claim_memoryview_is_released_after_the_block():
    with Ring(4096) as ring:
        with ring.claim(4) as mv:
            mv[:] = b"abcd"
        with pytest.raises(ValueError):
            mv[0] = 1
        assert ring.recv_bytes() == b"abcd"


def test_claim_of_zero_bytes_sends_an_empty_message():
    with Ring(4096) as ring:
        with ring.claim(0) as mv:
            assert len(mv) == 0
        assert ring.recv_bytes() == b""


def test_claim_larger_than_max_message_raises_value_error():
    with Ring(4096) as ring:
        with pytest.raises(ValueError, match="4089"):
            with ring.claim(4089):
                pass
        with pytest.raises(ValueError):
            with ring.claim(-1):
                pass
        with ring.claim(4088) as mv:
            mv[:] = b"q" * 4088
        assert ring.recv_bytes() == b"q" * 4088


def test_claim_without_blocking_on_full_ring_raises_full():
    with Ring(4096) as ring:
        ring.send_bytes(b"x" * 4000)
        with pytest.raises(queue.Full):
            with ring.claim(200, block=False):
                pytest.fail("claimed on a full ring")
        ring.recv_bytes()
        with ring.claim(200, block=False) as mv:
            mv[:] = b"y" * 200
        assert ring.recv_bytes() == b"y" * 200


def test_view_yields_read_only_memoryview_and_consumes_on_exit():
    with Ring(4096) as ring:
        ring.send_bytes(b"first")
        ring.send_bytes(b"second")
        with ring.view() as mv:
            assert isinstance(mv, memoryview)
            assert mv.readonly
            assert mv.tobytes() == b"first"
            with pytest.raises(TypeError):
                mv[0] = 0
        assert len(ring) == 1
        assert ring.recv_bytes() == b"second"


def test_view_leaves_the_message_for_the_next_reader_when_the_block_raises():
    with Ring(4096) as ring, Ring.attach(ring.name) as other:
        ring.send_bytes(b"keep me")
        with pytest.raises(LookupError):
            with ring.view() as mv:
                assert mv.tobytes() == b"keep me"
                raise LookupError
        assert len(ring) == 1
        assert other.recv_bytes(block=False) == b"keep me"


def test_view_memoryview_is_released_after_the_block():
    with Ring(4096) as ring:
        ring.send_bytes(b"abc")
        with ring.view() as mv:
            pass
        with pytest.raises(ValueError):
            mv.tobytes()


def test_view_of_an_empty_message():
    with Ring(4096) as ring:
        ring.send_bytes(b"")
        with ring.view() as mv:
            assert len(mv) == 0
        assert ring.empty()


def test_view_without_blocking_on_empty_ring_raises_empty():
    with Ring(4096) as ring:
        with pytest.raises(queue.Empty):
            with ring.view(block=False):
                pytest.fail("viewed an empty ring")


def test_view_that_leaks_a_buffer_export_does_not_wedge_the_ring():
    """If the view's memoryview cannot be released (the block kept a buffer export of it),
    view() raises BufferError on exit, the message is consumed all the same (its bytes may
    be overwritten by later messages) and the consumer side is released: the ring stays
    usable."""
    with Ring(4096) as ring:
        ring.send_bytes(b"one")
        keep = None
        with pytest.raises(BufferError, match="still alive"):
            with ring.view() as mv:
                keep = pickle.PickleBuffer(mv)       # holds an export of mv
        assert keep is not None
        del keep
        assert ring.empty(), "the viewed message was left in the ring"
        ring.send_bytes(b"two")
        assert ring.recv_many(block=False) == [b"two"]


def test_claim_that_leaks_a_buffer_export_does_not_wedge_the_ring():
    """If the claim's memoryview cannot be released, the export could still change the
    record after it is published: claim() raises BufferError on exit and the message is NOT
    sent, and the producer side is released for other producers."""
    with Ring(4096) as ring, Ring.attach(ring.name) as other:
        keep = None
        with pytest.raises(BufferError, match="not sent"):
            with ring.claim(3) as mv:
                mv[:] = b"one"
                keep = pickle.PickleBuffer(mv)
        assert keep is not None
        del keep
        assert ring.empty() and ring.used == 0, "the abandoned claim became a record"
        other.send_bytes(b"two", timeout=1)      # the producer lock must not be held
        ring.send_bytes(b"three", timeout=1)
        assert ring.recv_many(block=False) == [b"two", b"three"]


CLOSE_INSIDE = textwrap.dedent("""
    import sys
    from ipcfast import Ring
    r = Ring(4096)
    try:
        if sys.argv[1] == "claim":
            with r.claim(8) as mv:
                mv[:] = b"12345678"
                r.close()
        else:
            r.send_bytes(b"abc")
            with r.view() as mv:
                r.close()
    except ValueError as exc:
        print("ValueError", exc)
    except Exception as exc:
        print("other", type(exc).__name__, exc)
    print("survived")
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", ["claim", "view"])
def test_closing_the_ring_inside_an_open_claim_or_view_does_not_crash(what):
    """The with-block's exit must not call into the freed native handle. Freed memory is
    poisoned (glibc's perturb tunable, tcache off) so a use-after-free is a crash, not luck."""
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.tcache_count=0:glibc.malloc.perturb=165")
    res = subprocess.run([sys.executable, "-c", CLOSE_INSIDE, what], env=env,
                         capture_output=True, text=True, timeout=50)
    assert res.returncode == 0, f"child died with {res.returncode}: {res.stderr[-2000:]}"
    assert "survived" in res.stdout


# --------------------------------------------------------------------------------------
# 6. bad input
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [4096, 8192, 1 << 16])
def test_message_larger_than_max_message_raises_value_error_naming_both_sizes(capacity):
    with Ring(capacity) as ring:
        ring.send_bytes(b"before")
        big = ring.max_message + 1
        with pytest.raises(ValueError) as info:
            ring.send_bytes(b"x" * big)
        text = str(info.value)
        assert str(big) in text and str(ring.max_message) in text, text
        assert len(ring) == 1 and ring.used == rec(6)      # nothing written
        ring.send_bytes(b"after")
        assert ring.recv_many() == [b"before", b"after"]


def test_message_larger_than_capacity_also_raises_value_error_not_full():
    with Ring(4096) as ring:
        with pytest.raises(ValueError):
            ring.send_bytes(b"x" * 10_000, block=False)
        with pytest.raises(ValueError):
            ring.send_bytes(bytearray(10_000), timeout=0.1)
        assert ring.empty()


@pytest.mark.parametrize("capacity", [0, -1, -4096, 1.5, 4096.0, True, False, 2**50, 2**40 + 1,
                                      4095, 1, "4096", None])
def test_invalid_capacity_raises_value_error(capacity):
    before = named_by(os.getpid())          # other test runs may share the machine
    with pytest.raises(ValueError):
        Ring(capacity)
    assert named_by(os.getpid()) <= before


@pytest.mark.parametrize("name", ["", "a/b", "/abs", "x" * 300, "x" * 201, ".hidden", ".", "..",
                                  "has space", "tab\tname", "nonascii-\u00e9", "star*",
                                  "new\nline"])
def test_invalid_name_raises_value_error(name):
    before = set(os.listdir(SHM))
    with pytest.raises(ValueError):
        Ring(4096, name=name)
    with pytest.raises(ValueError):
        Ring.attach(name)
    created = set(os.listdir(SHM)) - before
    assert not created & {name, name.lstrip("/"), name.replace("/", "")}, created


def test_name_with_an_embedded_nul_raises_value_error():
    """C sees only the part before the NUL: the segment would get another name than
    ring.name reports."""
    name = new_name()
    ring = None
    try:
        with pytest.raises(ValueError):
            ring = Ring(4096, name=name + "\x00tail")
        assert not os.path.exists(shm_path(name))
    finally:
        if ring is not None:
            ring.close()
        if os.path.exists(shm_path(name)):
            os.unlink(shm_path(name))


def test_name_of_200_characters_is_accepted():
    name = new_name()
    name += "n" * (200 - len(name))
    with Ring(4096, name=name) as ring:
        with Ring.attach(name) as other:
            ring.send_bytes(b"long")
            assert other.recv_bytes() == b"long"


def test_attach_to_a_missing_name_raises_file_not_found():
    with pytest.raises(FileNotFoundError):
        Ring.attach(new_name())


def test_creating_a_name_that_exists_raises_file_exists():
    with Ring(4096) as ring:
        ring.send_bytes(b"original")
        with pytest.raises(FileExistsError):
            Ring(4096, name=ring.name)
        assert ring.recv_bytes() == b"original"     # the existing ring is untouched
    assert not os.path.exists(shm_path(ring.name))


def test_incompatible_segment_error_is_a_value_error():
    assert issubclass(IncompatibleSegmentError, ValueError)
    assert issubclass(IncompatibleSegmentError, ipcfast.IpcfastError)


@pytest.fixture
def garbage_path():
    path = shm_path(f"ipcf-test-garbage-{os.getpid()}")
    yield path
    if os.path.exists(path):
        os.unlink(path)


@pytest.mark.parametrize("size", [8192, lib.IPCF_HDR_SIZE + 4096, 4096, 100, 1])
def test_attach_to_a_file_that_is_not_an_ipcfast_segment_raises_incompatible(garbage_path, size):
    data = bytearray(random.Random(size).randbytes(size))
    data[:8] = b"NOTIPCF!"[:min(8, size)]
    with open(garbage_path, "wb") as f:
        f.write(data)
    with pytest.raises(IncompatibleSegmentError):
        Ring.attach(os.path.basename(garbage_path))


def test_attach_to_an_empty_file_raises_incompatible(garbage_path):
    open(garbage_path, "wb").close()
    with pytest.raises(IncompatibleSegmentError):
        Ring.attach(os.path.basename(garbage_path))


def test_attach_to_a_zero_filled_file_raises_incompatible(garbage_path):
    with open(garbage_path, "wb") as f:
        f.write(bytes(lib.IPCF_HDR_SIZE + 4096))
    with pytest.raises(IncompatibleSegmentError):
        Ring.attach(os.path.basename(garbage_path))


def test_attach_to_a_segment_with_another_layout_version_raises_incompatible():
    with Ring(4096) as ring:
        with open(shm_path(ring.name), "r+b") as f:
            f.seek(VERSION_AT)
            f.write((lib.IPCF_LAYOUT_VERSION + 1).to_bytes(4, "little"))
        with pytest.raises(IncompatibleSegmentError, match="version"):
            Ring.attach(ring.name)
        with open(shm_path(ring.name), "r+b") as f:
            f.seek(VERSION_AT)
            f.write(lib.IPCF_LAYOUT_VERSION.to_bytes(4, "little"))
        with Ring.attach(ring.name) as other:        # and back: attachable again
            ring.send_bytes(b"v1")
            assert other.recv_bytes() == b"v1"


@pytest.mark.parametrize("keep", [lib.IPCF_HDR_SIZE + 2048, lib.IPCF_HDR_SIZE, 100])
def test_attach_to_a_truncated_segment_raises_incompatible(keep):
    with Ring(4096) as ring:
        os.truncate(shm_path(ring.name), keep)      # the creator never touches its data again
        with pytest.raises(IncompatibleSegmentError):
            Ring.attach(ring.name)


def test_attach_to_a_copy_of_a_header_without_its_data_raises_incompatible(garbage_path):
    with Ring(8192) as ring:
        with open(shm_path(ring.name), "rb") as f:
            page = f.read(lib.IPCF_HDR_SIZE)
    with open(garbage_path, "wb") as f:
        f.write(page + bytes(4096))                 # header says 8192 data bytes, file has 4096
    with pytest.raises(IncompatibleSegmentError):
        Ring.attach(os.path.basename(garbage_path))


def test_attach_to_a_ring_whose_creator_has_not_published_it_yet_says_so(garbage_path):
    """The creator writes the whole header and control block, then stores the magic last.
    A segment caught in between is an ipcfast ring being initialised, not 'not an ipcfast
    segment (bad magic number)' (which is what a racing attach reported)."""
    with Ring(4096) as ring:
        with open(shm_path(ring.name), "rb") as f:
            image = bytearray(f.read())
    image[0:8] = bytes(8)                       # everything but the magic is in place
    with open(garbage_path, "wb") as f:
        f.write(image)
    with pytest.raises(IncompatibleSegmentError, match="initialis"):
        Ring.attach(os.path.basename(garbage_path))


def test_attach_ring_to_a_queue_segment_raises_incompatible():
    q = ipcfast.Queue()
    try:
        with pytest.raises(IncompatibleSegmentError, match="kind"):
            Ring.attach(q.name)
    finally:
        q.close()


def test_attach_to_a_ring_header_claiming_zero_capacity_raises_incompatible(garbage_path):
    """A RING header with capacity 0 (consistent total_size) must be refused: attached, its
    max_message is 0xfffffff0 and data is NULL, so the first send would crash."""
    with Ring(4096) as ring:
        with open(shm_path(ring.name), "rb") as f:
            page = bytearray(f.read(lib.IPCF_HDR_SIZE))
    page[TOTAL_SIZE_AT:TOTAL_SIZE_AT + 8] = lib.IPCF_HDR_SIZE.to_bytes(8, "little")
    page[CAPACITY_AT:CAPACITY_AT + 8] = bytes(8)
    with open(garbage_path, "wb") as f:
        f.write(page)
    ring = None
    try:
        with pytest.raises(IncompatibleSegmentError):
            ring = Ring.attach(os.path.basename(garbage_path))
    finally:
        if ring is not None:      # never use it: sending would write through a NULL pointer
            ring.close()


# --------------------------------------------------------------------------------------
# closing
# --------------------------------------------------------------------------------------

AFTER_CLOSE = {
    "send_bytes": lambda r: r.send_bytes(b"x"),
    "send_bytes_nowait": lambda r: r.send_bytes(b"x", block=False),
    "send_many": lambda r: r.send_many([b"x"]),
    "send_many_empty": lambda r: r.send_many([]),
    "recv_bytes": lambda r: r.recv_bytes(),
    "recv_bytes_nowait": lambda r: r.recv_bytes(block=False),
    "recv_many": lambda r: r.recv_many(),
    "claim": lambda r: r.claim(1).__enter__(),
    "view": lambda r: r.view().__enter__(),
    "len": lambda r: len(r),
    "empty": lambda r: r.empty(),
    "used": lambda r: r.used,
    "pickle": lambda r: pickle.dumps(r),
}


@pytest.mark.parametrize("call", list(AFTER_CLOSE), ids=list(AFTER_CLOSE))
def test_every_call_after_close_raises_value_error_mentioning_closed(call):
    ring = Ring(4096)
    ring.send_bytes(b"pending")
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        AFTER_CLOSE[call](ring)


def test_close_twice_is_fine():
    ring = Ring(4096)
    ring.close()
    ring.close()
    assert ring.closed


def test_closed_property_repr_and_context_manager():
    with Ring(4096) as ring:
        assert not ring.closed
        assert ring.name in repr(ring)
    assert ring.closed
    assert "closed" in repr(ring)
    assert not os.path.exists(shm_path(ring.name))


# --------------------------------------------------------------------------------------
# 7. pickling (across processes: test_processes.py)
# --------------------------------------------------------------------------------------

def test_pickle_round_trip_attaches_to_the_same_segment():
    with Ring(8192) as ring:
        clone = pickle.loads(pickle.dumps(ring))
        try:
            assert isinstance(clone, Ring) and clone is not ring
            assert clone.name == ring.name
            assert clone.capacity == ring.capacity and clone.max_message == ring.max_message
            ring.send_bytes(b"to clone")
            assert clone.recv_bytes(timeout=1) == b"to clone"
            clone.send_bytes(b"to original")
            assert ring.recv_bytes(timeout=1) == b"to original"
        finally:
            clone.close()
        assert os.path.exists(shm_path(ring.name))      # the original still holds it
    assert not os.path.exists(shm_path(ring.name))


@pytest.mark.parametrize("mp, mc", [(False, False), (True, False), (False, True)])
def test_attached_handles_see_the_creators_flags(mp, mc):
    with Ring(4096, multi_producer=mp, multi_consumer=mc) as ring:
        with pickle.loads(pickle.dumps(ring)) as clone:
            assert (clone.multi_producer, clone.multi_consumer) == (mp, mc)


def test_pickling_a_closed_ring_raises_value_error():
    ring = Ring(4096)
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(ring)


# --------------------------------------------------------------------------------------
# 8. lifetime (across processes: test_processes.py)
# --------------------------------------------------------------------------------------

def test_segment_disappears_when_the_last_handle_closes():
    ring = Ring(4096)
    path = shm_path(ring.name)
    a = Ring.attach(ring.name)
    b = pickle.loads(pickle.dumps(ring))
    assert os.path.exists(path)
    ring.close()
    assert os.path.exists(path)
    b.close()
    assert os.path.exists(path)
    a.send_bytes(b"still works")
    assert a.recv_bytes() == b"still works"
    a.close()
    assert not os.path.exists(path)


def test_segment_survives_until_the_last_of_many_handles_in_one_process_closes():
    """More handles in one process than the 64-entry peer table holds (a process takes one
    entry per segment however many handles it opens): closing all but one must not remove
    the segment while that one is still open (other processes could no longer attach by
    name), and closing the last one removes it."""
    ring = Ring(4096)
    path = shm_path(ring.name)
    handles = [Ring.attach(ring.name) for _ in range(lib.IPCF_MAX_PEERS + 8)]
    try:
        ring.close()
        for h in handles[:-1]:
            h.close()
        assert os.path.exists(path), "segment removed while a handle was still open"
        with Ring.attach(ring.name) as late:
            handles[-1].send_bytes(b"still here")
            assert late.recv_bytes() == b"still here"
    finally:
        for h in handles:
            h.close()
    assert not os.path.exists(path)


def test_segment_disappears_when_an_unclosed_ring_is_garbage_collected():
    ring = Ring(4096)
    path = shm_path(ring.name)
    del ring
    gc.collect()
    assert not os.path.exists(path)


def test_unlink_removes_the_name_immediately_and_open_handles_keep_working():
    with Ring(4096) as ring, Ring.attach(ring.name) as other:
        ring.unlink()
        assert not os.path.exists(shm_path(ring.name))
        with pytest.raises(FileNotFoundError):
            Ring.attach(ring.name)
        ring.send_bytes(b"after unlink")
        assert other.recv_bytes() == b"after unlink"
        ring.unlink()                                # already gone: fine


def test_closing_an_unlinked_ring_does_not_remove_a_new_segment_with_the_same_name():
    """unlink(), then somebody creates a new ring under the freed name: the old ring's last
    close must not unlink the *new* segment."""
    name = new_name()
    old = Ring(4096, name=name)
    old.unlink()
    new = Ring(4096, name=name)
    try:
        old.close()
        assert os.path.exists(shm_path(name)), "closing the old ring removed the new one"
        with Ring.attach(name) as again:
            new.send_bytes(b"new ring")
            assert again.recv_bytes() == b"new ring"
    finally:
        new.close()
        if os.path.exists(shm_path(name)):
            os.unlink(shm_path(name))


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_segment_file_mode_is_0600(umask):
    old = os.umask(umask)
    try:
        ring = Ring(4096)
    finally:
        os.umask(old)
    with ring:
        st = os.stat(shm_path(ring.name))
        assert st.st_mode & 0o777 == 0o600
        assert st.st_uid == os.getuid()


# ---------------------------------------------------------------- slices kept past claim/view

def test_a_slice_of_a_claim_kept_past_the_block_stops_the_publish_with_buffer_error():
    with Ring(4096) as ring:
        kept = []
        with pytest.raises(BufferError, match="slice"):
            with ring.claim(8) as mv:
                mv[:] = b"abcdefgh"
                kept.append(mv[2:4])          # not an export of mv: a view of its memory
        assert ring.empty(), "a claim whose memory escaped was published"
        ring.send_bytes(b"next")
        assert ring.recv_bytes(timeout=5) == b"next"
        kept.clear()


def test_a_slice_of_a_view_kept_past_the_block_raises_buffer_error_and_consumes_the_message():
    with Ring(4096) as ring:
        ring.send_bytes(b"hello world")
        ring.send_bytes(b"second")
        with pytest.raises(BufferError, match="slice"):
            with ring.view() as v:
                kept = v[0:5]
        assert ring.recv_bytes(timeout=5) == b"second"
        del kept


def test_reading_a_kept_view_slice_after_the_ring_is_collected_does_not_crash():
    code = (
        "import gc, ipcfast\n"
        "r = ipcfast.Ring(4096); r.send_bytes(b'hello world')\n"
        "try:\n"
        "    with r.view() as v:\n"
        "        s = v[0:5]\n"
        "except BufferError:\n"
        "    pass\n"
        "r.close(); del r, v; gc.collect()\n"
        "print(bytes(s).decode())\n")
    res = run_python(code, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "hello"

