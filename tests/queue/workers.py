"""Helpers and child-process targets of the queue tests (tests/queue, and the queue tests
of tests/lifetime).

No tests live here. Everything a child process runs is a module-level function of this
module, which imports only the standard library, ipcfast and tests.support, so spawn and
forkserver children start quickly and can unpickle the targets (``tests.queue.workers``).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import sys
import threading
import time
import zlib
from typing import Any

import ipcfast
from tests.support.procs import CHILD_WAIT

STOP = "__stop__"


# ---------------------------------------------------------------- making queues

def make_queue(impl: str, kind: str = "Queue", maxsize: int = 0, ctx=None, **kw):
    """A queue of `kind` (Queue, JoinableQueue, SimpleQueue) from multiprocessing ("mp",
    made by `ctx` so it matches the start method) or from ipcfast."""
    if impl == "mp":
        assert not kw, f"multiprocessing queues take no {sorted(kw)}"
        c = ctx or multiprocessing.get_context()
        if kind == "SimpleQueue":
            return c.SimpleQueue()
        return getattr(c, kind)(maxsize)
    if kind == "SimpleQueue":
        return ipcfast.SimpleQueue(ctx=ctx, **kw)
    return getattr(ipcfast, kind)(maxsize, ctx=ctx, **kw)


def dispose(q) -> None:
    """Close a queue of either kind without ever blocking."""
    if isinstance(q, (ipcfast.Queue, ipcfast.SimpleQueue)):
        q.close()
        return
    if hasattr(q, "cancel_join_thread"):      # multiprocessing.Queue / JoinableQueue
        q.cancel_join_thread()
    q.close()


def is_ipcfast(q) -> bool:
    return isinstance(q, (ipcfast.Queue, ipcfast.SimpleQueue))


def settle(q, timeout: float = 10.0) -> None:
    """Wait until a put made by this process can be got.

    ipcfast's put is synchronous (the item is in shared memory when put returns), so this
    is a no-op for it; multiprocessing hands items to a feeder thread, so its get_nowait()
    right after put() may still raise Empty.
    """
    if is_ipcfast(q):
        return
    deadline = time.monotonic() + timeout
    while q.empty():
        assert time.monotonic() < deadline, "multiprocessing feeder thread did not flush"
        time.sleep(0.005)


# ---------------------------------------------------------------- serialisers

def json_dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def json_loads(data) -> Any:
    return json.loads(bytes(data))


def raw_dumps(obj) -> bytes:
    """Identity serialiser for bytes: the record is exactly the payload."""
    return bytes(obj)


def raw_loads(data) -> bytes:
    return bytes(data)


# ---------------------------------------------------------------- child targets

def echo_worker(q_in, q_out, n: int) -> None:
    """Get n items and put each back as ("echo", item)."""
    for _ in range(n):
        q_out.put(("echo", q_in.get(timeout=CHILD_WAIT)))


def put_items(q, items) -> None:
    for x in items:
        q.put(x)


def get_items_or_fail(_delay, q, expected) -> None:
    """Exit 0 only if the first len(expected) items of q are `expected`."""
    got = [q.get(timeout=10) for _ in expected]
    sys.exit(0 if got == list(expected) else 3)


_POOL_QUEUE = None


def pool_init(q) -> None:
    global _POOL_QUEUE
    _POOL_QUEUE = q


def pool_task(i: int) -> int:
    _POOL_QUEUE.put(("task", i, os.getpid()))
    return i * i


def pool_task_with_queue_argument(q, i: int) -> int:
    q.put(("arg", i))
    return i


def joinable_consumer(jq, n: int) -> None:
    """Get n items, marking each done after a short 'work'."""
    for _ in range(n):
        jq.get(timeout=CHILD_WAIT)
        time.sleep(0.01)
        jq.task_done()


def joinable_joiner(jq, out) -> None:
    """Wait in join() in this process, then say so."""
    out.put("joining")
    jq.join()
    out.put("joined")


def simple_queue_echo(sq_in, sq_out, n: int) -> None:
    """Echo n items, report whether sq_in is then empty, and close both handles."""
    for _ in range(n):
        sq_out.put(("echo", sq_in.get()))
    sq_out.put(("empty", sq_in.empty()))
    sq_in.close()
    sq_out.close()


def producer(q, pid_id: int, n: int, size: int = 0) -> None:
    """Put (pid_id, seq, payload) for seq in 0..n-1."""
    pad = b"x" * size
    for seq in range(n):
        q.put((pid_id, seq, pad))


def consumer(q, out, cid: str) -> None:
    """Get until STOP; report every (pid_id, seq) in the order got."""
    got = []
    while True:
        item = q.get(timeout=CHILD_WAIT)
        if item == STOP:
            break
        got.append((item[0], item[1]))
    out.put((cid, got))


def pattern(n: int) -> bytes:
    """A deterministic payload whose corruption is obvious."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def json_echo(q_in, q_out) -> None:
    item = q_in.get(timeout=CHILD_WAIT)
    q_out.put({"got": item, "type": type(item).__name__})


def send_through_connection(q) -> None:
    """Get a multiprocessing Connection from the queue and send through it."""
    conn = q.get(timeout=CHILD_WAIT)
    conn.send(("hello from", os.getpid()))
    conn.close()


def put_then_wait(q, ev) -> None:
    """Put our pid, then stay alive until the parent sets `ev` (never closes q)."""
    q.put(os.getpid())
    ev.wait(CHILD_WAIT)


def attach_then_get_after_go(q, attached, go, out) -> None:
    """Signal that we hold q, wait for `go`, get one item, report it and close q (so this
    child is the last process to close it)."""
    attached.set()
    go.wait(CHILD_WAIT)
    item = q.get(timeout=CHILD_WAIT)
    out.put(item)
    q.close()


def put_pid_then_sleep(q) -> None:
    q.put(os.getpid())
    time.sleep(CHILD_WAIT * 10)


def put_many_batches(q, n: int, batch: int) -> None:
    """Put 0..n-1 in put_many batches of `batch`."""
    for start in range(0, n, batch):
        q.put_many(range(start, min(n, start + batch)))


# ---------------------------------------------------------------- chaos (kill -9) workers

CHAOS_SIZES = (0, 1, 13, 100, 500, 3000, 4000, 9000)   # 4000+ do not fit a 4 KiB ring


def chaos_message(pid_id: int, seq: int, rng: random.Random):
    size = rng.choice(CHAOS_SIZES)
    payload = rng.randbytes(size)
    return (pid_id, seq, zlib.crc32(payload), payload)


def chaos_producer(q, pid_id: int, n: int, seed: int) -> None:
    """Put n checksummed messages, pausing now and then so kills land anywhere."""
    rng = random.Random(seed)
    for seq in range(n):
        q.put(chaos_message(pid_id, seq, rng), timeout=CHILD_WAIT)
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.002)


def chaos_consumer(q, out, cid: int, seed: int) -> None:
    """Forward (pid_id, seq, checksum ok, cid) of every message until STOP; report anything
    that does not unpickle or has the wrong shape instead of dying."""
    rng = random.Random(seed)
    while True:
        try:
            item = q.get(timeout=CHILD_WAIT)
        except queue.Empty:
            out.put(("ERROR", cid, "consumer starved: get timed out"))
            return
        except Exception as e:                    # a torn record would land here
            out.put(("ERROR", cid, repr(e)))
            return
        if item == STOP:
            return
        try:
            pid_id, seq, crc, payload = item
            ok = zlib.crc32(payload) == crc
        except Exception as e:
            out.put(("ERROR", cid, f"bad item {item!r:.200}: {e!r}"))
            return
        out.put((pid_id, seq, ok, cid))
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.002)


# ---------------------------------------------------------------- thread helpers

def start_thread(target, *args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t

