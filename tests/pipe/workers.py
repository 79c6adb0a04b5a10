"""Helpers and child-process targets of the pipe tests.

No tests live here. The same tests run against ``multiprocessing.Pipe`` ("mp") and
``ipcfast.Pipe`` ("ipcfast"). Every function a child runs is at module level, and this module
imports only the standard library, ipcfast and tests.support, so spawn/forkserver children
start fast (``tests.pipe.workers``). No one waits forever: children poll with CHILD_WAIT,
and the parent's waits give up early when the child they wait on is gone.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import zlib

import ipcfast
from tests.support.procs import CHILD_WAIT, IMPLS, gone  # noqa: F401 - IMPLS for the tests

#: how long a reader may take to notice that a SIGKILLed writer is gone (generous: the
#: requirement is "a few hundred ms"; the machine is shared and loaded)
EOF_WAIT = 3.0


def new_pipe(impl: str, duplex: bool = True, ctx=None, **kw):
    if impl == "mp":
        return (ctx or multiprocessing).Pipe(duplex)
    return ipcfast.Pipe(duplex, **kw)


def wait_readable(conn, timeout: float = CHILD_WAIT, proc=None, grace: float = EOF_WAIT) -> bool:
    """conn.poll(timeout), but give up *grace* seconds after *proc* (if given) has exited,
    without reaping it, so a child that crashed fails the test fast."""
    deadline = time.monotonic() + timeout
    dead_since = None
    while True:
        if conn.poll(0.05):
            return True
        now = time.monotonic()
        if now > deadline:
            return False
        if proc is not None and proc.pid is not None and gone(proc.pid):
            dead_since = dead_since or now
            if now - dead_since > grace:
                return False


def blob(i: int, n: int) -> bytes:
    """Deterministic bytes with a crc32 of the rest in front."""
    body = (i.to_bytes(4, "little") * (n // 4 + 1))[:n]
    return zlib.crc32(body).to_bytes(4, "little") + body


def blob_ok(b: bytes) -> bool:
    return len(b) >= 4 and zlib.crc32(b[4:]) == int.from_bytes(b[:4], "little")


# ------------------------------------------------------------------ child targets

def _close(*conns) -> None:
    for c in conns:
        if c is not None:
            c.close()


def child_echo(conn, other=None) -> None:
    """Echo ("echo", obj) for every object until EOF."""
    _close(other)
    while conn.poll(CHILD_WAIT):
        try:
            obj = conn.recv()
        except EOFError:
            break
        conn.send(("echo", obj))
    conn.close()


def child_send(w, items, delay: float = 0.0, close: bool = True, other=None) -> None:
    _close(other)
    time.sleep(delay)
    for x in items:
        w.send(x)
    if close:
        w.close()


def child_send_blobs(w, count: int, seed: int, other=None) -> None:
    """Send `count` checksummed byte blobs of varied sizes (some > 64 KiB), then close."""
    _close(other)
    for i in range(count):
        w.send_bytes(blob(i, (i * 7919 + seed) % 150_000))
    w.close()


def child_drain(r, results, n=None, other=None) -> None:
    """Receive until EOF (or n objects); report ("eof"|"timeout"|"n", items); close."""
    _close(other)
    got = []
    outcome = "n"
    while n is None or len(got) < n:
        if not r.poll(CHILD_WAIT):
            outcome = "timeout"
            break
        try:
            got.append(r.recv())
        except EOFError:
            outcome = "eof"
            break
    results.put((outcome, got))
    r.close()


def child_drain_then_eof(r, n: int, results, other=None) -> None:
    """Receive n objects, report them, then report whether EOF follows within EOF_WAIT."""
    _close(other)
    got = []
    for _ in range(n):
        if not r.poll(CHILD_WAIT):
            break
        got.append(r.recv())
    results.put(got)
    eof = False
    if r.poll(EOF_WAIT):
        try:
            r.recv()
        except EOFError:
            eof = True
    results.put(eof)
    r.close()


def child_hold_then_exit(conn, ready) -> None:
    """Say we are here, then return without closing (a fork child then ends in os._exit)."""
    ready.set()
    time.sleep(0.3)


def child_hold(conn, ready) -> None:
    """Hold the end (doing nothing) until killed."""
    ready.set()
    time.sleep(CHILD_WAIT)


def child_send_then_hold(w, ready) -> None:
    w.send("before")
    ready.set()
    time.sleep(CHILD_WAIT)


def child_send_then_die(w) -> None:
    w.send("last words")
    os.kill(os.getpid(), signal.SIGKILL)


def child_read_one_then_close(r) -> None:
    """Exit 0 after receiving "one" and closing; 1 otherwise."""
    ok = r.poll(CHILD_WAIT) and r.recv() == "one"
    r.close()
    os._exit(0 if ok else 1)


def child_drain_late(_delay, r, results, n: int) -> None:
    """child_drain, with an argument before the end that delays its unpickling
    (tests.support.procs.Delay): the parent's copy may close while the end is in transit."""
    child_drain(r, results, n)
