"""Child-process targets of tests/faster_fifo (module-level, so spawn children can unpickle
them; imports only the standard library, ipcfast and tests.support). No tests here."""
from __future__ import annotations

import os
import queue
import time

from tests.support.procs import CHILD_WAIT


def raw(x):
    """A serializer that keeps bytes as they are: an item's size is exactly its length."""
    return x


def put_all(q, items) -> None:
    """Put every item (blocking while the byte bound holds the queue full)."""
    for x in items:
        q.put(x, timeout=CHILD_WAIT)


def put_nowait_until_full(q, size: int, out) -> None:
    """Put items of `size` bytes until queue.Full; report how many fitted on `out`."""
    n = 0
    while True:
        try:
            q.put_nowait(b"x" * size)
        except queue.Full:
            break
        n += 1
    out.put(n)


class SlowLoads:
    """Picklable form of slow_loads_then_done (spawn children get it as an argument)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, data):
        with open(self.path, "w"):
            pass
        time.sleep(CHILD_WAIT * 10)
        return data


def get_forever_with(q_name: str, path: str) -> None:
    """Attach to queue `q_name` with a loads that hangs in the middle of a get."""
    import ipcfast
    q = ipcfast.Queue.attach(q_name, dumps=raw, loads=SlowLoads(path))
    q.get(timeout=CHILD_WAIT)


def get_many_in_a_loop(q_name: str) -> None:
    """Attach and consume until killed (the caller SIGKILLs it at a random moment)."""
    import ipcfast
    q = ipcfast.Queue.attach(q_name, dumps=raw, loads=raw)
    deadline = time.monotonic() + CHILD_WAIT
    while time.monotonic() < deadline:
        try:
            if os.getpid() % 2:
                q.get_many(timeout=0.05, max_messages_to_get=7)
            else:
                q.get(timeout=0.05)
        except queue.Empty:
            pass


def report_closed_mark(q, out) -> None:
    """faster-fifo's is_closed() as this process sees it, then the next item."""
    out.put((q.is_closed(), q.get(timeout=CHILD_WAIT)))
