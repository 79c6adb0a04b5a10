"""The batch calls (send_many, recv_many) and the fast paths (send/recv with the defaults)
on a live mailbox whose segment another process rewrote: derived state (a list link, a
head, the tail) is mended by a repair with no message lost, duplicated or reordered; a
slot no sender could have written (a length past max_message) is IncompatibleSegmentError
("is corrupt"). Each case writes one field through the mailbox's /dev/shm file; what the
repair does not rewrite itself is restored afterwards so the close stays clean."""
from __future__ import annotations

import contextlib
import mmap

import pytest

from ipcfast import IncompatibleSegmentError, Mailbox
from ipcfast._native import ffi, lib
from tests.support.shm import path, poke

pytestmark = pytest.mark.timeout(60)

NSLOTS = 8
MAX_MESSAGE = 2048


@pytest.fixture
def mb():
    m = Mailbox(capacity=1 << 16, max_message=MAX_MESSAGE, max_messages=NSLOTS)
    yield m
    m.close()


def _slot_field(i: int, field: str):
    stride = lib.ipcf_mbox_stride(MAX_MESSAGE)
    return lib.IPCF_HDR_SIZE + i * stride + ffi.offsetof("struct ipcf_mbox_slot", field), 4


def _ctl_field(field: str):
    return lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_mbox_ctl", field), 4


def _write(m: Mailbox, where, value: int) -> bytes:
    """Write *value* at *where* (offset, size) of *m*'s file; the bytes that were there."""
    return poke(m.name, where, value)


@contextlib.contextmanager
def _rewritten(m: Mailbox, where, value: int):
    orig = _write(m, where, value)
    try:
        yield
    finally:
        _write(m, where, int.from_bytes(orig, "little"))


def _repairs(m: Mailbox) -> int:
    st = ffi.new("struct ipcf_mbox_stats *")
    lib.ipcf_mbox_stats(m._h, st)
    return st.repairs


def _ready_list(m: Mailbox):
    """The READY list as the segment holds it: (slot indexes from the head, each slot's
    prev link matching, ending at the tail), or None where it contradicts itself."""
    with open(path(m.name), "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        base = ffi.from_buffer(mm)
        c = ffi.cast("struct ipcf_mbox_ctl *", base + lib.IPCF_CTL_OFFSET)
        stride = lib.ipcf_mbox_stride(MAX_MESSAGE)
        out, at, prev = [], c.ready_head, 0
        while at:
            if len(out) >= NSLOTS or not 0 < at <= NSLOTS:
                return None
            s = ffi.cast("struct ipcf_mbox_slot *", base + lib.IPCF_HDR_SIZE + (at - 1) * stride)
            if s.state != lib.IPCF_SLOT_READY or s.prev != prev:
                return None
            out.append(at - 1)
            prev, at = at, s.next
        ok = c.ready_tail == prev and c.count == len(out)
        del c, s, base
        return out if ok else None
    finally:
        mm.close()


def test_send_many_over_a_free_list_rewritten_into_a_cycle_takes_no_slot_twice(mb):
    """A free list slot2 -> slot1 -> slot0 -> slot2: the batch must not give one slot two of
    its messages (it reported success while only 3 of 5 were delivered)."""
    for i in range(3):
        mb.send_bytes(b"m%d" % i)
    for _ in range(3):
        mb.recv_bytes(timeout=5)              # freed in order: free list slot2, slot1, slot0
    _write(mb, _slot_field(0, "next"), 3)     # slot0 links back to slot2 (the repair rewrites it)
    before = _repairs(mb)
    objs = [("batch", i) for i in range(5)]
    mb.send_many(objs, timeout=5)
    assert len(mb) == 5
    assert _repairs(mb) == before + 1         # found and mended, once
    assert [m.body for m in mb.recv_many(timeout=5)] == objs


def test_send_many_does_not_link_after_its_own_unpublished_slot_named_by_a_rewritten_tail(mb):
    """ready_tail rewritten to name the slot the batch takes second: the first insert must
    not follow it (the batch's slots are not READY until linked), and send_many leaves a
    list the segment agrees with (it left one cut after the first slot)."""
    mb.send("head")                           # slot 0, the whole READY list
    _write(mb, _ctl_field("ready_tail"), 3)   # slot 2: the batch's second (mended by a repair)
    mb.send_many(["x", "y"], timeout=5)
    assert _ready_list(mb) == [0, 1, 2]
    assert [m.body for m in mb.recv_many(timeout=5)] == ["head", "x", "y"]


@pytest.mark.parametrize("receive", ["recv_bytes fast path", "recv fast path", "recv_many"])
def test_a_first_message_longer_than_max_message_is_reported_by_every_receive(mb, receive):
    mb.send("one")
    mb.send("two")
    call = {"recv_bytes fast path": lambda: mb.recv_bytes(block=False),
            "recv fast path": lambda: mb.recv(block=False),
            "recv_many": lambda: mb.recv_many(timeout=5)}[receive]
    with _rewritten(mb, _slot_field(0, "length"), MAX_MESSAGE + 1):
        with pytest.raises(IncompatibleSegmentError, match=f"{mb.name}.*is corrupt"):
            call()
    # the bad slot was dropped (freed by the repair); the other message is intact
    assert mb.recv(timeout=5).body == "two"
    assert len(mb) == 0


def test_recv_many_leaves_a_later_message_longer_than_max_message_to_the_next_call(mb):
    """A bad length past a batch's first is not copied: the batch ends before it and the
    next receive reports it; the messages after it are still delivered."""
    for body in ("one", "two", "three"):
        mb.send(body)
    with _rewritten(mb, _slot_field(1, "length"), 0xFFFFFFFF):
        assert [m.body for m in mb.recv_many(timeout=5)] == ["one"]
        with pytest.raises(IncompatibleSegmentError, match=f"{mb.name}.*is corrupt"):
            mb.recv_many(timeout=5)
    assert [m.body for m in mb.recv_many(timeout=5)] == ["three"]


def test_fast_path_send_and_send_many_mend_a_wild_free_head(mb):
    """free_head past the slots: each send rebuilds the free list and sends, nothing lost."""
    mb.send("a")
    mb.recv(timeout=5)                        # slot 0 on the free list
    _write(mb, _ctl_field("free_head"), 0xFFFFFFFF)
    mb.send_bytes(b"fast", block=False)       # the fast path
    _write(mb, _ctl_field("free_head"), NSLOTS + 1)
    mb.send_many(["b", "c"], timeout=5)
    assert mb.recv_bytes(block=False).body == b"fast"
    assert [m.body for m in mb.recv_many(timeout=5)] == ["b", "c"]


@pytest.mark.parametrize("send", ["send fast path", "send_bytes fast path", "send_many"])
def test_a_send_that_finds_a_slot_in_no_state_reports_it(mb, send):
    """A wild free_head makes the send repair; the repair drops a slot whose state no
    process writes and the send must say so (the fast path retried the general way, which
    found the state mended, and returned as if nothing had happened)."""
    mb.send("a")
    mb.send("b")
    mb.recv(timeout=5)                        # slot 0 free, slot 1 READY
    _write(mb, _slot_field(1, "state"), 99)   # (the repair frees it: nothing to restore)
    _write(mb, _ctl_field("free_head"), 0xFFFFFFFF)
    call = {"send fast path": lambda: mb.send("x", block=False),
            "send_bytes fast path": lambda: mb.send_bytes(b"x", block=False),
            "send_many": lambda: mb.send_many(["x", "y"], timeout=5)}[send]
    with pytest.raises(IncompatibleSegmentError, match=f"{mb.name}.*is corrupt"):
        call()
    assert len(mb) == 0                       # the bad slot dropped, nothing sent
    mb.send("after")                          # mended: the mailbox works on
    assert mb.recv(timeout=5).body == "after"



@pytest.mark.parametrize("send", [lambda m, o: m.send(o), lambda m, o: m.send_many([o])],
                         ids=["send", "send_many"])
def test_a_send_without_timeout_to_a_mailbox_whose_bytes_held_was_rewritten_full_goes_in(send):
    # nothing is held, but the counter says the mailbox is full: a send with no timeout
    # must not wait forever (a recount mends the counter and the message goes in). Five
    # slots have been used, so the rewritten count (4096) stays within what used slots
    # could hold (5 x 1024), and fewer than all the slots: only "bytes held with nothing
    # READY" tells that the count is wrong
    with Mailbox(capacity=4096, max_message=1024, max_messages=NSLOTS) as m:
        for k in range(5):
            m.send(k)
        assert [m.recv(timeout=5).body for _ in range(5)] == list(range(5))
        before = _repairs(m)
        off = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_mbox_ctl", "bytes_held")
        _write(m, (off, 8), 4096)
        send(m, "second")
        assert m.recv(timeout=5).body == "second"
        assert _repairs(m) > before
