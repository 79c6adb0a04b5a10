"""Opening a mailbox whose control block disagrees with what create writes -- a parameter,
a list head, the tail cache, a count, the lock -- raises IncompatibleSegmentError ("segment
'x' is corrupt: ..."), at open, instead of failing later or crashing. One fast case per
field; each restores the bytes afterwards so the creator's close stays clean."""
from __future__ import annotations

import pytest

from ipcfast import IncompatibleSegmentError, Mailbox
from ipcfast._native import ffi, lib
from tests.support.shm import path

pytestmark = pytest.mark.timeout(60)

NSLOTS = 8


def _where(struct, base, field, index=None):
    """(file offset, size) of *field* (element *index* of an array) of *struct* at *base*."""
    t = dict(ffi.typeof(struct).fields)[field].type
    if index is not None:
        return base + ffi.offsetof(struct, field, index), ffi.sizeof(t.item)
    return base + ffi.offsetof(struct, field), ffi.sizeof(t)


def hdr(field, index=None):
    return _where("struct ipcf_seg_hdr", 0, field, index)


def ctl(field, index=None):
    return _where("struct ipcf_mbox_ctl", lib.IPCF_CTL_OFFSET, field, index)


# (what, (offset, size), value): each value is one that ipcfast never writes there
CASES = [
    ("header capacity", hdr("param", 0), 12345),
    ("header max_message", hdr("param", 1), 100),
    ("capacity", ctl("capacity"), 100),                  # below max_message
    ("nslots", ctl("nslots"), NSLOTS + 1),               # slots past the file
    ("nslots smaller", ctl("nslots"), NSLOTS - 1),       # disagrees with the file's size
    ("stride", ctl("stride"), 8192),                     # not header + max_message, paged
    ("max_message", ctl("max_message"), 1 << 31),
    ("policy", ctl("policy"), 7),
    ("high_water", ctl("high_water"), NSLOTS + 1),
    ("free_head", ctl("free_head"), NSLOTS + 5),
    ("ready_head", ctl("ready_head"), 0xFFFFFFFF),
    ("ready_tail", ctl("ready_tail"), 0),                # head without a tail
    ("tail_slot", ctl("tail_slot", 3), 1000),            # priority tail cache out of range
    ("count", ctl("count"), NSLOTS + 1),
    ("inflight", ctl("inflight"), NSLOTS * 2),
    ("tails_partial", ctl("tails_partial"), 2),
    ("next_seq", ctl("next_seq"), 0),
    ("holder of a shared mailbox", ctl("holder"), 12345),
    ("lock type word", (lib.IPCF_CTL_OFFSET + 16, 4), 0x7F),   # glibc __kind: not our mutex
]


@pytest.fixture
def mailbox():
    mb = Mailbox(capacity=1 << 16, max_message=2048, max_messages=NSLOTS)
    mb.send_bytes(b"first", priority=2)
    mb.send_bytes(b"second")
    mb.send_bytes(b"third", priority=2)
    mb.recv_bytes(timeout=5)                # a free list and a READY list, both nonempty
    yield mb
    mb.close()


@pytest.mark.parametrize("what, where, value", CASES, ids=[c[0] for c in CASES])
def test_open_refuses_a_mailbox_whose_control_block_disagrees(mailbox, what, where, value):
    off, size = where
    with open(path(mailbox.name), "r+b") as f:
        f.seek(off)
        orig = f.read(size)
        f.seek(off)
        f.write(value.to_bytes(size, "little"))
        f.flush()
        try:
            with pytest.raises(IncompatibleSegmentError, match=f"{mailbox.name}.*is corrupt"):
                Mailbox.open(mailbox.name)
        finally:
            f.seek(off)
            f.write(orig)
    # restored: opening works again and the mailbox is intact
    other = Mailbox.open(mailbox.name)
    try:
        assert other.recv_bytes(timeout=5).body == b"third"
    finally:
        other.close()


def test_open_accepts_an_intact_mailbox_in_every_state(mailbox):
    """No false alarm: empty, full, after receipts and with large bodies in slots."""
    for _ in range(3):
        other = Mailbox.open(mailbox.name)
        other.close()
        while len(mailbox):
            mailbox.recv_bytes(timeout=5)
        other = Mailbox.open(mailbox.name)
        other.close()
        for i in range(NSLOTS):
            mailbox.send_bytes(bytes(2000 if i % 2 else 10), priority=i % 3)
        other = Mailbox.open(mailbox.name)
        other.close()
