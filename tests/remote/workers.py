"""What the remote tests' child processes run (importable under spawn)."""
from __future__ import annotations

import os
import queue
import time


def get_and_report(q, out, n: int) -> None:
    """Get *n* items from the remote queue *q* (a pickled handle) and put them on *out*."""
    for _ in range(n):
        out.put(q.get(timeout=30))
    q.close()


def put_range(q, start: int, n: int) -> None:
    q.put_many(range(start, start + n))
    q.close()


def get_then_hang(q, out) -> None:
    """Get one item, tell the parent which, then wait to be SIGKILLed (no task_done)."""
    out.put(q.get(timeout=30))
    time.sleep(60)


def work_all(q, out) -> None:
    """Get items until none comes for 1.5 s, task_done each, report (pid, item) for each."""
    while True:
        try:
            item = q.get(timeout=1.5)
        except queue.Empty:
            break
        out.put((os.getpid(), item))
        q.task_done()
    q.close()
