"""Process roles: what each forked child of a measurement does, and the child's main.

A role is ``fn(gate, *args) -> dict``: it sets up its side of the channel(s), calls
``gate()`` (which reports "ready" and blocks until the parent says "go", so set-up is never
timed), runs its loop and returns what the parent needs to evaluate the measurement.
Every consumer role reports the number of messages it actually received and checked
(``count``); the parent compares it with the number sent.

The loops are looked up in :mod:`.workloads` at call time (``W.produce``), so a test may
replace one there before the children fork.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from typing import Callable, Optional

from . import channels as C
from . import messages as M
from . import workloads as W
from .channels import Channel, Ops

Gate = Callable[[], None]


def _set_pdeathsig() -> None:
    """Die with the parent (Linux): no orphan keeps running if the runner is killed."""
    with contextlib.suppress(Exception):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)


def child_main(conn, fn: Callable[..., dict], args: tuple, cpu: Optional[int] = None) -> None:
    """The main of a benchmark child: run role *fn* (optionally pinned to *cpu*) and send
    ``("result", dict)`` or ``("error", kind, message, traceback)`` on *conn*; then, if a
    channel deferred its cleanup, wait for the parent's "release" first."""
    C.enter_child()
    if cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {cpu})
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent handles Ctrl-C and kills us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _set_pdeathsig()

    def gate() -> None:
        conn.send(("ready",))
        if conn.recv() != "go":
            raise SystemExit(0)

    try:
        result = fn(gate, *args)
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        kind = "check" if isinstance(exc, M.CheckError) else "error"
        with contextlib.suppress(Exception):
            conn.send(("error", kind, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        return
    conn.send(("result", result))
    later = C.deferred()
    if later:                      # wait for "release" (or the parent going away)
        with contextlib.suppress(Exception):
            conn.poll(C.READY_TIMEOUT + 600)
        for fn_ in later:
            with contextlib.suppress(Exception):
                fn_()
    conn.close()


def _timed_send(gate: Gate, ops: Ops, loop: Callable[[], None]) -> dict:
    """gate, then time *loop*; finish the side once it is done."""
    gate()
    t0 = time.perf_counter()
    loop()
    t1 = time.perf_counter()
    ops.finish()
    return {"t_start": t0, "t_sent": t1}


# --------------------------------------------------------------------------------------------
# 1 producer -> 1 consumer


# Byte and array workloads first move ``ch.warm_up`` messages untimed (sequence numbers
# n.., checked as the others), before the ready/go handshake: the timed run starts from an
# empty channel that is connected, whose threads run, whose memory is touched and whose
# buffers have grown (the ipcfast rings wrap once: 4 messages), as in a long-running
# program, rather than timing the first-touch page faults of a fresh segment.


def producer(gate: Gate, ch: Channel, mode: str, n: int, size: int = 0) -> dict:
    """Send ch.warm_up messages (byte workloads) before the gate, then messages 0..n-1
    the way *mode* does. Returns when sending started and ended."""
    ops = ch.sender()
    if size:
        M.template(size)
        W.produce(mode, ops, n, ch.warm_up, size)
    return _timed_send(gate, ops, lambda: W.produce(mode, ops, 0, n, size))


def consumer(gate: Gate, ch: Channel, mode: str, n: int, size: int = 0) -> dict:
    """Receive and check the ch.warm_up messages (byte workloads) before the gate, then
    messages 0..n-1. Returns the first and last timed receive, the count of timed messages
    received and checked, their sequence-number sum and total bytes."""
    ops = ch.receiver()
    if size:
        M.template(size)
        W.consume(mode, ops, n, ch.warm_up, size)
    gate()
    got = W.consume(mode, ops, 0, n, size)
    ops.finish()
    return {"t_first": got.t_first, "t_end": got.t_last, "count": got.count,
            "seq_sum": got.seq_sum, "bytes": got.nbytes}


# --------------------------------------------------------------------------------------------
# N producers x M consumers


def tagged_producer(gate: Gate, ch: Channel, p: int, n: int) -> dict:
    """Producer *p* of the N x M workload: its items 0..n-1."""
    ops = ch.sender()
    # mp.Queue: finish() flushes into the pipe before the parent's sentinels
    return _timed_send(gate, ops, lambda: W.produce_tagged(ops.put, p, n))


def tagged_consumer(gate: Gate, ch: Channel, producers: int) -> dict:
    """A consumer of the N x M workload: until its sentinel; per producer, the count, sum
    and sum of squares of what it received and checked."""
    ops = ch.receiver()
    gate()
    got = W.consume_tagged(ops.get, producers)
    ops.finish()
    return got


# --------------------------------------------------------------------------------------------
# ping-pong over a pair of channels: ab carries pings, ba the replies


def pinger(gate: Gate, ab: Channel, ba: Channel, n: int, warm: int, as_bytes: bool) -> dict:
    """*warm* untimed round trips, then *n* timed ones (every reply checked)."""
    r = ba.receiver()
    s = ab.sender()
    send, recv = W.ping_ends(s, r, as_bytes)
    gate()
    W.ping(send, recv, 0, warm, as_bytes)
    t0 = time.perf_counter()
    samples = W.ping(send, recv, warm, n, as_bytes)
    t1 = time.perf_counter()
    s.finish()
    r.finish()
    return {"t_start": t0, "t_end": t1, "samples": samples.tobytes()}


def ponger(gate: Gate, ab: Channel, ba: Channel, total: int, as_bytes: bool) -> dict:
    """Echo *total* messages; reports how many it echoed."""
    r = ab.receiver()
    s = ba.sender()
    send, recv = W.ping_ends(s, r, as_bytes)
    gate()
    count = W.pong(send, recv, total)
    s.finish()
    r.finish()
    return {"count": count}
