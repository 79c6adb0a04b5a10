"""Queue.get and Mailbox.recv unpickle from a view of their whole receive buffer, which
keeps the bytes of earlier, longer items after the current one (pickle.loads stops at its
stream's STOP). What is read must be the current item, whole, whatever the buffer held."""
from __future__ import annotations

import pickle

import pytest

import ipcfast
from ipcfast._handle import SCRATCH

pytestmark = pytest.mark.timeout(60)

# each a different length, so every get reads a buffer holding the tail of another item
ITEMS = [b"x" * 60_000, "short", (1, 2.5, None), b"", list(range(2000)), {"k": b"y" * 30_000}, 7,
         "z" * (SCRATCH - 64), ()]


def test_queue_get_returns_each_item_whole_after_longer_ones_in_the_scratch_buffer():
    with ipcfast.Queue() as q:
        for item in ITEMS + ITEMS[::-1]:
            q.put(item)
        assert [q.get(timeout=5) for _ in range(2 * len(ITEMS))] == ITEMS + ITEMS[::-1]


def test_mailbox_recv_returns_each_body_whole_after_longer_ones_in_the_receive_buffer():
    small = [m for m in ITEMS if len(pickle.dumps(m, 5)) < 4000]
    with ipcfast.Mailbox(capacity=None) as mb:
        for item in small + small[::-1]:
            mb.send(item)
        assert [mb.recv(timeout=5).body for _ in range(2 * len(small))] == small + small[::-1]
