"""The GIL is held through a call into C that does not wait, and handed back as soon as the
call is about to wait (csrc/host.h). These tests call the C entry points directly with one
long timeout, because the public methods wait in slices of 100 ms: a wait that kept the GIL
would only stall the other threads for a slice there, and the tests would still pass.

Each test blocks one thread in C, then lets the main thread do what would end the wait. If
the blocked call kept the GIL, the main thread could not run (not even return from its
sleep) until the call timed out, so the blocked thread would see a timeout instead."""
from __future__ import annotations

import threading
import time

import pytest

import ipcfast
from ipcfast._native import ffi, lib

pytestmark = pytest.mark.timeout(60)

WAIT_NS = 10_000_000_000       # the blocked call's timeout: 10 s


def _block_then_unblock(call, unblock):
    """Run call() in a thread; once it is (very likely) waiting in C, unblock() from this
    one. Returns call()'s result and how long the main thread's part took."""
    out = {}
    started = threading.Event()

    def run():
        started.set()
        out["rc"] = call()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    t0 = time.monotonic()
    time.sleep(0.2)            # needs the GIL back to return: only if the call released it
    unblock()
    took = time.monotonic() - t0
    t.join(WAIT_NS / 1e9 + 5)
    assert not t.is_alive()
    return out["rc"], took


def test_queue_get_waiting_in_c_lets_other_threads_run():
    with ipcfast.Queue() as q:
        buf, need = ffi.new("char[]", 4096), ffi.new("uint64_t *")
        rc, took = _block_then_unblock(lambda: lib.ipcf_queue_get(q._h, buf, 4096, WAIT_NS, need),
                                       lambda: q.put("x"))
        assert rc > 0, f"the waiting get returned {rc}: it kept the GIL until it timed out"
        assert took < WAIT_NS / 1e9


def test_queue_put_waiting_for_room_in_c_lets_other_threads_run():
    with ipcfast.Queue(maxsize=1) as q:
        q.put("first")
        data = ipcfast._pickle.dumps("second")
        rc, took = _block_then_unblock(lambda: lib.ipcf_queue_put(q._h, data, len(data), WAIT_NS),
                                       q.get)
        assert rc == 0, f"the waiting put returned {rc}: it kept the GIL until it timed out"
        assert q.get(timeout=5) == "second"


def test_ring_recv_waiting_in_c_lets_other_threads_run():
    with ipcfast.Ring(1 << 16) as r:
        buf = ffi.new("char[]", 4096)
        rc, took = _block_then_unblock(lambda: lib.ipcf_ring_recv(r._h, buf, 4096, WAIT_NS),
                                       lambda: r.send_bytes(b"abc"))
        assert rc == 3, f"the waiting recv returned {rc}: it kept the GIL until it timed out"
        assert ffi.unpack(buf, 3) == b"abc"


def test_mailbox_take_waiting_in_c_lets_other_threads_run():
    with ipcfast.Mailbox() as m:
        buf = ffi.new("char[]", 4096)
        rc, took = _block_then_unblock(lambda: lib.ipcf_mbox_take(m._h, buf, 4096, WAIT_NS),
                                       lambda: m.send_bytes(b"abc"))
        assert rc > 0, f"the waiting take returned {rc}: it kept the GIL until it timed out"


def test_a_call_that_does_not_wait_keeps_working_from_many_threads():
    """The other half of the rule: calls that do not wait run with the GIL held, so many
    threads hammering one queue with non-blocking calls see every item exactly once."""
    with ipcfast.Queue() as q:
        n, k = 2000, 4
        got = []

        def producer(p):
            for i in range(n):
                q.put((p, i))

        def consumer():
            mine = []
            while len(mine) < n:
                try:
                    mine.append(q.get(timeout=10))
                except Exception:        # pragma: no cover - reported by the count below
                    break
            got.extend(mine)

        threads = [threading.Thread(target=producer, args=(p,)) for p in range(k)]
        threads += [threading.Thread(target=consumer) for _ in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(got) == sorted((p, i) for p in range(k) for i in range(n))


def test_send_waiting_in_c_for_the_producer_lock_held_by_a_claim_lets_the_holder_run():
    # claim() returns to Python holding the ring's producer lock; a send from another thread
    # waits on that lock (in ipcf_lock, not in a futex wait) and must hand the GIL back
    with ipcfast.Ring(1 << 16) as r:
        claim = r.claim(5)
        mv = claim.__enter__()
        mv[:] = b"first"
        data = b"second"
        rc, took = _block_then_unblock(lambda: lib.ipcf_ring_send(r._h, data, len(data), WAIT_NS),
                                       lambda: claim.__exit__(None, None, None))
        assert rc == 0, f"the waiting send returned {rc}: it kept the GIL until it timed out"
        assert r.recv_many(timeout=5) == [b"first", b"second"]


def test_recv_waiting_in_c_for_the_consumer_lock_held_by_a_view_lets_the_holder_run():
    with ipcfast.Ring(1 << 16) as r:
        r.send_bytes(b"first")
        r.send_bytes(b"second")
        view = r.view()
        assert view.__enter__().tobytes() == b"first"
        buf = ffi.new("char[]", 4096)
        rc, took = _block_then_unblock(lambda: lib.ipcf_ring_recv(r._h, buf, 4096, WAIT_NS),
                                       lambda: view.__exit__(None, None, None))
        assert rc == 6, f"the waiting recv returned {rc}: it kept the GIL until it timed out"
        assert ffi.unpack(buf, 6) == b"second"
