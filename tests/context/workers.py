"""Child-process targets of the context tests (module level, standard library and ipcfast
only, so spawn and forkserver children start fast). No tests live here."""
from __future__ import annotations

import os
import time

from tests.support.procs import CHILD_WAIT


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def fail(x: int) -> int:
    raise ValueError(f"task {x} fails")


def pid_of(_x: int) -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def echo_queue(inq, outq) -> None:
    """Move items from *inq* to *outq*, doubled, until None."""
    while True:
        item = inq.get(timeout=CHILD_WAIT)
        if item is None:
            outq.put(None)
            return
        outq.put(item * 2)


def finish_tasks(jq, n: int) -> None:
    for _ in range(n):
        jq.get(timeout=CHILD_WAIT)
        jq.task_done()


def pipe_echo(conn) -> None:
    conn.send(("echo", conn.recv()))
    conn.close()


def simple_echo(sq_in, sq_out) -> None:
    sq_out.put(("got", sq_in.get()))
