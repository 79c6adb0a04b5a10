"""Ring's in-place forms beyond one message: claim_many/view_many (one memoryview per
message, one C call each way, published or removed together) and the reuse rules of a
claim/view object. One message at a time: test_one_process.py."""
from __future__ import annotations

import queue

import pytest

import ipcfast


def test_an_open_claim_or_view_cannot_be_entered_again_before_it_ends():
    r = ipcfast.Ring(4096)
    try:
        cm = r.claim(4)
        with cm as mv:
            mv[:] = b"abcd"
            with pytest.raises(RuntimeError, match="already open"):
                cm.__enter__()
        with cm as mv:                     # once ended it may be used again
            mv[:] = b"efgh"
        vw = r.view()
        with vw as m:
            assert bytes(m) == b"abcd"
            with pytest.raises(RuntimeError, match="already open"):
                vw.__enter__()
        with r.view() as m:
            assert bytes(m) == b"efgh"
    finally:
        r.close()


# ---------------------------------------------------------------- batch in-place forms

def test_claim_many_publishes_every_message_together_in_order():
    r = ipcfast.Ring(1 << 16)
    try:
        sizes = [0, 1, 7, 8, 9, 100, 3000]
        with r.claim_many(sizes) as views:
            assert [len(v) for v in views] == sizes
            assert r.empty()                       # nothing visible before the block ends
            for i, v in enumerate(views):
                v[:] = bytes([i]) * len(v)
        assert r.recv_many(100) == [bytes([i]) * n for i, n in enumerate(sizes)]
    finally:
        r.close()


def test_claim_many_that_raises_publishes_nothing_and_frees_the_ring():
    r = ipcfast.Ring(4096)
    try:
        with pytest.raises(KeyError):
            with r.claim_many([10, 20]) as views:
                views[0][:] = b"x" * 10
                raise KeyError("stop")
        assert r.empty()
        r.send_bytes(b"after")
        assert r.recv_bytes() == b"after"
    finally:
        r.close()


def test_claim_many_too_large_for_the_ring_at_once_raises_value_error():
    r = ipcfast.Ring(4096)
    try:
        with pytest.raises(ValueError, match="capacity"):
            with r.claim_many([2000, 2000, 2000]):
                pass
        with pytest.raises(ValueError):
            r.claim_many([])
        with pytest.raises(TypeError):
            r.claim_many([1.5])
        assert r.empty()
    finally:
        r.close()


def test_view_many_reads_messages_in_place_and_removes_them_together():
    r = ipcfast.Ring(1 << 16)
    try:
        msgs = [bytes([i]) * (i * 13) for i in range(20)]
        r.send_many(msgs)
        with r.view_many(8) as views:
            assert [bytes(v) for v in views] == msgs[:8]
            assert views[0].readonly
        with r.view_many() as views:
            assert [bytes(v) for v in views] == msgs[8:]
        assert r.empty()
    finally:
        r.close()


def test_view_many_that_raises_leaves_every_message_for_the_next_reader():
    r = ipcfast.Ring(4096)
    try:
        r.send_many([b"a", b"bb", b"ccc"])
        with pytest.raises(KeyError):
            with r.view_many(2):
                raise KeyError("stop")
        assert r.recv_many(10) == [b"a", b"bb", b"ccc"]
        with pytest.raises(queue.Empty):
            with r.view_many(block=False):
                pass
    finally:
        r.close()


def test_a_slice_kept_past_a_batch_view_or_claim_is_caught():
    r = ipcfast.Ring(4096)
    try:
        with pytest.raises(BufferError):
            with r.claim_many([4, 4]) as views:
                kept = views[1][1:3]
        assert r.empty()                           # the claim was not published
        r.send_many([b"one", b"two"])
        with pytest.raises(BufferError):
            with r.view_many() as views:
                kept = views[0][0:2]
        assert bytes(kept) == b"on"                # still mapped: reading it is safe
        assert r.empty()
    finally:
        r.close()
