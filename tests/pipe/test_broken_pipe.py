"""BrokenPipeError in one process: the first send after every reader end closed raises (as
multiprocessing's), wherever the end was made and closed; a reader end closed from another
thread than the one that took it leaves no lock pointing into an unmapped segment (its
header page stays mapped until that thread lets go). Across processes (close, SIGKILL, ends
in transit): tests/pipe/test_processes.py."""
from __future__ import annotations

import gc
import threading

import pytest

import ipcfast


def mapped(name: str) -> bool:
    """Is segment *name* mapped in this process (unlinked or not)?"""
    with open("/proc/self/maps") as f:
        return any(("/dev/shm/" + name.lstrip("/")) in line for line in f)


def test_send_to_a_closed_reader_raises_broken_pipe_on_the_first_send():
    """As multiprocessing: no buffering into a ring nobody will read."""
    r, w = ipcfast.Pipe(False, capacity=4096)
    try:
        w.send_bytes(b"before")           # a reader is there: buffered
        r.close()
        with pytest.raises(BrokenPipeError):
            w.send_bytes(b"q")
        with pytest.raises(BrokenPipeError):   # and every send after it
            w.send(1)
        with pytest.raises(BrokenPipeError):   # a message sent in parts too
            w.send_bytes(b"x" * 100_000)
    finally:
        w.close()


def test_send_after_the_reader_closed_from_another_thread_raises_broken_pipe():
    """The reader end's lock was taken by the thread that made the pipe; another thread
    closes it (it cannot unlock it): the end is still gone at once, and the sends before
    the close succeed."""
    box = []
    t = threading.Thread(target=lambda: box.append(ipcfast.Pipe(False)))
    t.start()
    t.join()
    r, w = box[0]
    try:
        w.send(1)                         # the locking thread exited, the process lives
        w.send(2)
        assert r.recv() == 1
        r.close()
        with pytest.raises(BrokenPipeError):
            w.send(3)
    finally:
        w.close()


def test_duplex_send_raises_broken_pipe_once_the_peer_end_is_closed():
    a, b = ipcfast.Pipe()
    try:
        a.send("x")
        assert b.recv() == "x"
        b.close()
        with pytest.raises(BrokenPipeError):
            a.send("y")
    finally:
        a.close()


def test_reader_closed_by_another_thread_keeps_only_its_header_page_until_let_go():
    """Closed (and freed) from a thread that is not the lock's owner: the send still sees
    the end gone; the owner (this thread, alive) keeps the segment's header page mapped (its
    robust list points into it) until its next pipe hold or close, which lets go and unmaps
    it; this thread's other robust locks keep working meanwhile."""
    r, w = ipcfast.Pipe(False)
    name = r._rx.name
    t = threading.Thread(target=r.close)
    t.start()
    t.join()
    del r
    gc.collect()
    try:
        assert mapped(name)               # the stuck lock's page (the segment is unlinked)
        with pytest.raises(BrokenPipeError):
            w.send(1)
        q = ipcfast.Queue()               # this thread's robust locks: the side locks
        q.put("x")
        assert q.get() == "x"
        q.close()
    finally:
        w.close()                         # a pipe close here: the stuck lock is let go
    assert not mapped(name)
    r2, w2 = ipcfast.Pipe(False)
    try:
        w2.send(2)
        assert r2.recv() == 2
    finally:
        r2.close()
        w2.close()
