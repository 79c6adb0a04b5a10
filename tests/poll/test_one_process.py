"""fileno() of every handle kind within one process: readable exactly while a receive would
not block (checked with select's timeout 0), through select, selectors and
multiprocessing.connection.wait; Connection EOF; the cost rule (no sendto while nobody
polls, one per re-arm); slots freed by close and by a dead poller; the slot limit."""
from __future__ import annotations

import errno
import multiprocessing.connection as mpc
import os
import selectors

import pytest

import ipcfast
from ipcfast._native import lib
from tests.poll import workers as W
from tests.poll.workers import KINDS, readable


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    handle, send, recv, made = KINDS[request.param]()
    yield handle, send, recv
    for h in made:
        h.close()


def test_readable_only_while_a_receive_would_not_block(kind):
    h, send, recv = kind
    assert isinstance(h.fileno(), int)
    assert not readable(h)
    send("a")
    send("b")
    assert readable(h)
    assert readable(h)                   # level-triggered: still readable, nothing taken
    assert recv() == "a"
    assert readable(h)                   # one left
    assert recv() == "b"
    assert not readable(h)


def test_the_int_descriptor_follows_receives_without_fileno_calls(kind):
    h, send, recv = kind
    fd = h.fileno()
    send(1)
    assert readable(fd)
    assert recv() == 1
    assert not readable(fd)              # the receive re-armed it
    send(2)
    assert readable(fd)


def test_selectors_and_connection_wait_see_it(kind):
    h, send, recv = kind
    with selectors.DefaultSelector() as sel:
        sel.register(h, selectors.EVENT_READ)
        assert sel.select(0) == []
        assert mpc.wait([h], timeout=0) == []
        send("x")
        assert [k.fileobj for k, _ in sel.select(0)] == [h]
        assert mpc.wait([h], timeout=0) == [h]
        assert recv() == "x"
        assert mpc.wait([h], timeout=0) == []


def test_connection_is_readable_at_eof_like_a_stdlib_connection():
    a, b = ipcfast.Pipe()
    try:
        assert mpc.wait([a], timeout=0) == []
        b.close()
        assert mpc.wait([a], timeout=5) == [a]
        with pytest.raises(EOFError):
            a.recv()
        assert readable(a)               # still at EOF
    finally:
        a.close()


def test_a_handle_nobody_polls_makes_no_sendto():
    q = ipcfast.Queue()
    try:
        before = lib.ipcf_poll_notifies()
        for i in range(200):
            q.put(i)
            assert q.get() == i
        assert lib.ipcf_poll_notifies() == before
    finally:
        q.close()


def test_one_sendto_per_rearm_however_many_wakes():
    q = ipcfast.Queue()
    try:
        q.fileno()                       # empty: armed
        before = lib.ipcf_poll_notifies()
        for i in range(50):
            q.put(i)                     # the first wake disarms; the rest find nobody
        assert lib.ipcf_poll_notifies() - before == 1
        assert readable(q)               # readable: fileno() re-checks, nothing armed
        assert lib.ipcf_poll_notifies() - before == 1
    finally:
        q.close()


def test_close_frees_the_poller_slot_and_closes_the_descriptor():
    q = ipcfast.Queue()
    other = ipcfast.Queue.attach(q.name)
    try:
        fd = other.fileno()
        _, idents = W.poller_words(q.name)
        assert sum(1 for w in idents if w) == 1
        assert idents[[bool(w) for w in idents].index(True)] & 0x3FFFFF == os.getpid()
        other.close()
        assert W.poller_words(q.name) == (0, [0] * lib.IPCF_EVENT_POLLERS)
        with pytest.raises(OSError) as e:
            os.fstat(fd)
        assert e.value.errno == errno.EBADF
    finally:
        other.close()
        q.close()


def test_more_pollers_than_slots_raise_ebusy_and_a_closed_one_makes_room():
    q = ipcfast.Queue()
    handles = [ipcfast.Queue.attach(q.name) for _ in range(lib.IPCF_EVENT_POLLERS)]
    try:
        for h in handles:
            h.fileno()
        with pytest.raises(OSError) as e:
            q.fileno()
        assert e.value.errno == errno.EBUSY and "poller slots" in str(e.value)
        q.put(1)                         # still usable
        assert q.get() == 1
        handles.pop().close()
        q.put(2)
        assert readable(q)
    finally:
        for h in handles:
            h.close()
        q.close()


def test_fileno_on_a_closed_handle_raises_valueerror():
    r = ipcfast.Ring()
    r.close()
    with pytest.raises(ValueError, match="closed"):
        r.fileno()


def test_many_pollers_armed_at_once_each_hear_of_their_put():
    """Every byte a process sends to a poller is charged to its one sender socket until the
    poller drains it: past ~270 armed pollers that buffer was full and the rest were never
    told (a lost wake-up). The waker now retries from a fresh socket."""
    import resource
    n = 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * n), hard))
    qs = []
    try:
        qs = [ipcfast.Queue(capacity=4096) for _ in range(n)]
        fds = [q.fileno() for q in qs]         # all armed: empty
        for q in qs:
            q.put(1)                           # one datagram each, all from this process
        deaf = [i for i, fd in enumerate(fds) if not readable(fd)]
        assert deaf == []
    finally:
        for q in qs:
            q.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_queue_item_its_counts_miss_after_a_kill_still_polls_readable():
    """A producer SIGKILLed between publishing an item and counting it leaves the queue's
    item count one short (until another producer repairs it): a blocking get still finds
    the item in the ring, so fileno() must poll readable for it too, not only by qsize."""
    from ipcfast._native import ffi
    from tests.support.shm import path
    q = ipcfast.Queue()
    try:
        fd = q.fileno()
        q.put("published, not counted")
        off = lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_queue_ctl", "items_put")
        f = os.open(path(q.name), os.O_RDWR)      # the state such a kill leaves
        try:
            n = int.from_bytes(os.pread(f, 8, off), "little")
            os.pwrite(f, (n - 1).to_bytes(8, "little"), off)
        finally:
            os.close(f)
        assert q.qsize() == 0
        q.fileno()                             # re-check (as any receive or fileno() call does)
        assert readable(fd)
        assert q.get_nowait() == "published, not counted"
        assert not readable(fd)
    finally:
        q.close()
