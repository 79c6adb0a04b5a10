"""Child-process targets of the asyncio tests (no tests here; spawn-friendly imports)."""
from __future__ import annotations

import os
import pickle
import time

from tests.support.procs import CHILD_WAIT


def put_after_go(q, go, items) -> None:
    """Wait for "go" on *go*, then put *items* on *q*."""
    assert go.get(timeout=CHILD_WAIT) == "go"
    for x in items:
        q.put(x)
    q.close()
    go.close()


def put_items(q, n: int) -> None:
    for i in range(n):
        q.put(i)
        if i % 8 == 0:
            time.sleep(0.003)             # gaps in which the consumer's waits time out
    q.close()


def drain_slowly(q, out, n: int) -> None:
    """Get *n* items (a little slowly, so the producer meets a full queue) and report them."""
    got = []
    for _ in range(n):
        got.append(q.get(timeout=CHILD_WAIT))
        time.sleep(0.002)
    out.put(got)
    q.close()
    out.close()


def work_and_task_done(q, n: int) -> None:
    for _ in range(n):
        q.get(timeout=CHILD_WAIT)
        q.task_done()
    q.close()


def echo(conn, n: int) -> None:
    """Receive *n* objects and send each back; then close (the peer sees EOF)."""
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def send_then_hang(conn, report) -> None:
    conn.send("before")
    report.put(os.getpid())
    time.sleep(CHILD_WAIT)


def ring_and_mailbox(ring, mb) -> None:
    ring.send_bytes(pickle.dumps("ring"))
    mb.send("mailbox", priority=3)
    ring.close()
    mb.close()


def send_typed(mb, body, mtype: int) -> None:
    mb.send(body, type=mtype)
    mb.close()
