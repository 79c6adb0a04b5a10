"""ipcfast.bench: ipcfast against multiprocessing (and its peers, when installed).

``python -m ipcfast bench`` runs this module's :func:`main`. Every measurement forks a fresh
producer and consumer process (start method fork), waits until both are set up and have
said so (a ready/go handshake, so process start-up is never timed), and times the transfer
from the producer's first send to the consumer's last receive with ``time.perf_counter``
(CLOCK_MONOTONIC, the same clock in every process). Every message is checked in the
consumer, so that a fast wrong answer cannot win:

* object workloads: each item's sequence number must be the next one expected (count and
  order) and its other fields exact; the sum of the sequence numbers received is the
  checksum, compared with the expected sum by the parent.
* byte workloads: each message carries its sequence number in its first and its last
  8 bytes (count, order, no torn or stale record); its length is checked; messages up to
  4 KiB are compared byte for byte with what the producer wrote, larger ones on every
  8th message (the first and last included); total bytes and the sequence sum are the
  checksum.
* latency: the pinger checks that every reply carries the sequence number it sent.
* N x M: each consumer checks that each producer's items reach it in increasing order;
  the parent checks per producer that count, sum and sum of squares of the sequence
  numbers over all consumers are exactly those of 0..n-1 (each item once).

The message count of each (workload, implementation) is calibrated by short pilots (the
slowest of three decides) so that one measurement takes about 0.45 s (--quick) or 1 s
(--full); the same count is used for every repeat. Measurements are then repeated
INTERLEAVED across implementations (A1 B1 C1 A2 B2 C2 ...) so that a slow drift of the
machine does not favour one of them. Tables report the median, the spread (min..max) and a
ratio to multiprocessing.Queue measured in the same run; a row whose spread exceeds 25% of
its median is flagged "(noisy)".

Every child is killed (SIGKILL) when a measurement overruns --time-limit, Ctrl-C stops the
run cleanly, and every ipcfast segment the run made is closed and removed from /dev/shm
even when it is interrupted.

Programmatic use: ``main(argv) -> exit status`` (0 ok, 1 a measurement failed, 2 usage,
130 interrupted) or ``run(parse_args(argv)) -> results dict`` (what --json writes).
The produce_*/consume_*/ping/pong loops are shared with benchmarks/test_bench_*.py.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import time
import traceback
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import __version__
from . import _segments
from ._units import fmt_size
from .mailbox import Mailbox as _IMailbox
from .pipe import Pipe as _IPipe
from .queue import Queue as _IQueue, SimpleQueue as _ISimpleQueue
from .ring import Ring as _IRing

SHM = _segments.SHM
BASELINE = "multiprocessing.Queue"
NOISY = 0.25                 # spread / median above this flags a row "(noisy)"
READY_TIMEOUT = 20.0         # seconds for the children to start and set up
JOIN_TIMEOUT = 5.0           # seconds for children to exit after reporting

PAYLOAD = "payload"
PI = 3.14
QF = struct.Struct("<Q")
KiB, MiB = 1 << 10, 1 << 20

_CTX = mp.get_context("fork")

__all__ = ["main", "run", "parse_args", "Options", "CheckError", "VARIANT_KEYS"]


# --------------------------------------------------------------------------------------------
# errors and small helpers


class CheckError(Exception):
    """A message arrived wrong (missing, duplicated, reordered, torn or altered)."""


class MeasureError(Exception):
    """A measurement did not produce a valid result. kind: timeout, check or error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _bad(what: str) -> None:
    raise CheckError(what)


def fmt_num(x: Optional[float]) -> str:
    """3 significant digits with a k/M/G suffix."""
    if x is None or not math.isfinite(x):
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.3g}{suf}" if v < 100 else f"{v:.0f}{suf}"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_us(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def fmt_ratio(x: Optional[float]) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


_TEMPLATES: Dict[int, bytes] = {}


def _template(size: int) -> bytes:
    """Deterministic pseudo-random payload of *size* bytes (made once, inherited by fork)."""
    t = _TEMPLATES.get(size)
    if t is None:
        t = _TEMPLATES[size] = random.Random(size).randbytes(size)
    return t


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# --------------------------------------------------------------------------------------------
# segment bookkeeping: everything this run creates is removed, whatever happens

_OWNED: set = set()


def _own(name: str) -> str:
    _OWNED.add(name)
    return name


def _unlink_segments(names) -> List[str]:
    """Remove the segments named *names* and, for queues, their rings. Returns them."""
    return _segments.remove(names)


# --------------------------------------------------------------------------------------------
# peers (optional packages)


def _optional(module: str):
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        pip = {"faster_fifo": "faster-fifo", "zmq": "pyzmq"}.get(module, module)
        return None, f"{module} is not importable ({exc.__class__.__name__}); pip install {pip}"


def _dist_version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# channels: made in the parent before the fork; sender()/receiver() run in a child


class _Ops:
    """The callables one side of a channel uses. Missing ones stay None."""

    def __init__(self, **kw: Any) -> None:
        self.put = self.get = self.put_many = self.get_many = None
        self.send = self.recv = self.send_many = self.recv_many = None
        self.claim = self.view = None
        self.finish: Callable[[], None] = lambda: None
        self.__dict__.update(kw)


class Channel:
    names: Tuple[str, ...] = ()         # ipcfast segments owned

    def sender(self) -> _Ops:
        raise NotImplementedError

    def receiver(self) -> _Ops:
        raise NotImplementedError

    def parent_put(self, obj: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MPQueueCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        self.q = _CTX.Queue()

    def sender(self) -> _Ops:
        q = self.q

        def finish() -> None:          # flush the feeder thread into the pipe before reporting
            q.close()
            q.join_thread()
        return _Ops(put=q.put, put_many=q.put, send=lambda b: q.put(bytes(b)), finish=finish)

    def receiver(self) -> _Ops:
        q = self.q
        return _Ops(get=q.get, get_many=q.get, recv=q.get)

    def parent_put(self, obj: Any) -> None:
        self.q.put(obj)

    def close(self) -> None:
        self.q.cancel_join_thread()
        self.q.close()


class MPSimpleQueueCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        self.q = _CTX.SimpleQueue()

    def sender(self) -> _Ops:
        return _Ops(put=self.q.put)

    def receiver(self) -> _Ops:
        return _Ops(get=self.q.get)

    def close(self) -> None:
        self.q.close()


class PipeCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        self.r, self.w = _CTX.Pipe(duplex=False)

    def sender(self) -> _Ops:
        return _Ops(put=self.w.send, send=self.w.send_bytes)

    def receiver(self) -> _Ops:
        return _Ops(get=self.r.recv, recv=self.r.recv_bytes)

    def close(self) -> None:
        self.r.close()
        self.w.close()


class IQueueCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        self.q = _IQueue()
        self.names = (_own(self.q.name),)

    def sender(self) -> _Ops:
        return _Ops(put=self.q.put, put_many=self.q.put_many)

    def receiver(self) -> _Ops:
        return _Ops(get=self.q.get, get_many=self.q.get_many)

    def parent_put(self, obj: Any) -> None:
        self.q.put(obj)

    def close(self) -> None:
        self.q.close()


class IQueueListCh(IQueueCh):
    """ipcfast.Queue carrying whole lists: put(list) / get() -> list."""

    def sender(self) -> _Ops:
        return _Ops(put_many=self.q.put)

    def receiver(self) -> _Ops:
        return _Ops(get_many=self.q.get)


class ISimpleQueueCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        self.q = _ISimpleQueue()
        self.names = (_own(self.q.name),)

    def sender(self) -> _Ops:
        return _Ops(put=self.q.put)

    def receiver(self) -> _Ops:
        return _Ops(get=self.q.get)

    def close(self) -> None:
        self.q.close()


class RingCh(Channel):
    """One ipcfast.Ring (default flags: any number of producers and consumers)."""

    def __init__(self, variant: "Variant") -> None:
        size = max(variant.size, 64)
        cap = max(1 * MiB, _pow2_at_least(3 * (size + 8)))
        self.ring = _IRing(cap)
        self.names = (_own(self.ring.name),)

    def sender(self) -> _Ops:
        r = self.ring
        return _Ops(send=r.send_bytes, send_many=r.send_many, claim=r.claim)

    def receiver(self) -> _Ops:
        r = self.ring
        return _Ops(recv=r.recv_bytes, recv_many=r.recv_many, view=r.view)

    def close(self) -> None:
        self.ring.close()


class IPipeCh(Channel):
    """ipcfast.Pipe(duplex=False): one lock-free ring with end tracking."""

    def __init__(self, variant: "Variant") -> None:
        size = max(getattr(variant, "size", 0) or 0, 64)
        self.r, self.w = _IPipe(duplex=False, capacity=max(1 * MiB, _pow2_at_least(3 * (size + 8))))
        self.names = (_own(self.r._rx.name),)

    def sender(self) -> _Ops:
        return _Ops(put=self.w.send, send=self.w.send_bytes)

    def receiver(self) -> _Ops:
        return _Ops(get=self.r.recv, recv=self.r.recv_bytes)

    def close(self) -> None:
        self.r.close()
        self.w.close()


class IMailboxCh(Channel):
    """ipcfast.Mailbox, unbounded, every message sent with priority 1 (the priority path is
    exercised; a constant priority keeps FIFO order so every message can be checked)."""

    def __init__(self, variant: "Variant") -> None:
        self.mb = _IMailbox(capacity=None)
        self.names = (_own(self.mb.name),)

    def sender(self) -> _Ops:
        send = self.mb.send
        return _Ops(put=lambda o: send(o, priority=1))

    def receiver(self) -> _Ops:
        recv = self.mb.recv
        return _Ops(get=lambda: recv().body)

    def parent_put(self, obj: Any) -> None:
        self.mb.send(obj, priority=1)

    def close(self) -> None:
        self.mb.close()


class PosixMQPrioCh(Channel):
    """posix_ipc.MessageQueue with priority 1 on every send (as IMailboxCh)."""

    def __init__(self, variant: "Variant") -> None:
        self._inner = PosixMQCh(variant)
        self.mq = self._inner.mq

    def sender(self) -> _Ops:
        send, dumps = self.mq.send, pickle.dumps
        return _Ops(put=lambda o: send(dumps(o, 5), None, 1))

    def receiver(self) -> _Ops:
        return self._inner.receiver()

    def parent_put(self, obj: Any) -> None:
        self.mq.send(pickle.dumps(obj, 5), None, 1)

    def close(self) -> None:
        self._inner.close()


class FasterFifoCh(Channel):
    def __init__(self, variant: "Variant") -> None:
        import faster_fifo
        self.q = faster_fifo.Queue(max_size_bytes=8 * MiB)

    def sender(self) -> _Ops:
        return _Ops(put=self.q.put, put_many=self.q.put_many)

    def receiver(self) -> _Ops:
        return _Ops(get=self.q.get, get_many=self.q.get_many)

    def parent_put(self, obj: Any) -> None:
        self.q.put(obj)

    def close(self) -> None:
        self.q.close()


_POSIX_DEPTH = [None]     # the message queue depth the kernel granted (for the notes)


class PosixMQCh(Channel):
    """posix_ipc.MessageQueue carrying pickled items (bounded by the kernel's mq limits)."""

    def __init__(self, variant: "Variant") -> None:
        import posix_ipc
        name = f"/ipcfast-bench-{os.getpid()}-{random.getrandbits(48):012x}"
        msgsize = 1024
        self.mq = None
        # Unprivileged processes get at most /proc/sys/fs/mqueue/msg_max (10) messages.
        for maxmsg in (256, 64, None):
            try:
                kw = {} if maxmsg is None else {"max_messages": maxmsg}
                self.mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_message_size=msgsize, **kw)
                break
            except (ValueError, OSError, posix_ipc.Error):
                if maxmsg is None:
                    raise
        self.depth = self.mq.max_messages
        _POSIX_DEPTH[0] = self.depth

    def sender(self) -> _Ops:
        send, dumps = self.mq.send, pickle.dumps
        return _Ops(put=lambda o: send(dumps(o, 5)))

    def receiver(self) -> _Ops:
        receive, loads = self.mq.receive, pickle.loads
        return _Ops(get=lambda: loads(receive()[0]))

    def parent_put(self, obj: Any) -> None:
        self.mq.send(pickle.dumps(obj, 5))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.mq.close()
        with contextlib.suppress(Exception):
            self.mq.unlink()


class ZmqCh(Channel):
    """pyzmq PUSH (producer, connects) -> PULL (consumer, binds) over ipc://, pickled items.
    Sockets are made in the child (zmq contexts do not survive fork)."""

    def __init__(self, variant: "Variant") -> None:
        self.dir = tempfile.mkdtemp(prefix="ipcfast-bench-zmq-")
        self.path = os.path.join(self.dir, "s")
        self.endpoint = "ipc://" + self.path

    def sender(self) -> _Ops:
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.IMMEDIATE, 1)
        deadline = time.monotonic() + READY_TIMEOUT / 2
        while not os.path.exists(self.path):     # the consumer binds first
            if time.monotonic() > deadline:
                raise TimeoutError("zmq: the PULL side never bound")
            time.sleep(0.001)
        s.connect(self.endpoint)
        if not s.poll(int(READY_TIMEOUT / 2 * 1000), zmq.POLLOUT):   # connected for real
            raise TimeoutError("zmq: PUSH could not connect")
        send, dumps = s.send, pickle.dumps

        def close() -> None:
            s.close(linger=0)
            ctx.term()

        def finish() -> None:
            # close(linger=-1) + term() loses the last ~1000 messages here (libzmq 4.3.5,
            # ipc://), so a benchmark child keeps its socket open until the parent has the
            # consumer's result; elsewhere the caller has seen every message arrive.
            if _IN_CHILD:
                _DEFERRED.append(close)
            else:
                close()
        return _Ops(put=lambda o: send(dumps(o, 5)), finish=finish)

    def receiver(self) -> _Ops:
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL)
        s.bind(self.endpoint)
        recv, loads = s.recv, pickle.loads

        def finish() -> None:
            s.close(linger=0)
            ctx.term()
        return _Ops(get=lambda: loads(recv()), finish=finish)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the loops that move and check messages (shared with benchmarks/test_bench_*.py)


def produce_objects(put, start: int, n: int) -> None:
    for i in range(start, start + n):
        put((i, PAYLOAD, PI))


def consume_objects(get, start: int, n: int) -> Tuple[float, float, int]:
    """Receive items start..start+n-1 in order; returns (t_first, t_last, seq checksum)."""
    if n <= 0:
        now = time.perf_counter()
        return now, now, 0
    o = get()
    t_first = time.perf_counter()
    if o[0] != start or o[1] != PAYLOAD or o[2] != PI:
        _bad(f"expected item {start}, got {o!r:.80}")
    s = o[0]
    for i in range(start + 1, start + n):
        o = get()
        if o[0] != i or o[1] != PAYLOAD or o[2] != PI:
            _bad(f"expected item {i}, got {o!r:.80}")
        s += o[0]
    return t_first, time.perf_counter(), s


def produce_batches(put_many, start: int, n: int, batch: int) -> None:
    end = start + n
    for b in range(start, end, batch):
        put_many([(i, PAYLOAD, PI) for i in range(b, min(end, b + batch))])


def consume_batches(get_many, start: int, n: int) -> Tuple[float, float, int]:
    i, end, s = start, start + n, 0
    t_first = None
    while i < end:
        items = get_many()
        if t_first is None:
            t_first = time.perf_counter()
        for o in items:
            if o[0] != i or o[1] != PAYLOAD or o[2] != PI:
                _bad(f"expected item {i}, got {o!r:.80}")
            s += o[0]
            i += 1
    if i != end:
        _bad(f"received {i - start} items, expected {n}")
    return t_first or time.perf_counter(), time.perf_counter(), s


def _verify_every(size: int) -> int:
    return 1 if size <= 4 * KiB else 8


def produce_bytes(send, start: int, n: int, size: int) -> None:
    """send(buf) must have copied buf when it returns (the next message reuses it)."""
    buf = bytearray(_template(size))
    pack, last = QF.pack_into, size - 8
    for i in range(start, start + n):
        pack(buf, 0, i)
        pack(buf, last, i)
        send(buf)


def produce_bytes_many(send_many, start: int, n: int, size: int, batch: int) -> None:
    mid = _template(size)[8:size - 8]
    p, end = QF.pack, start + n
    for b in range(start, end, batch):
        send_many([p(i) + mid + p(i) for i in range(b, min(end, b + batch))])


def produce_bytes_claim(claim, start: int, n: int, size: int) -> None:
    tmpl = _template(size)
    pack, last = QF.pack_into, size - 8
    for i in range(start, start + n):
        with claim(size) as mv:
            mv[:] = tmpl
            pack(mv, 0, i)
            pack(mv, last, i)


class _ByteChecker:
    """Checks byte messages: length, seq stamps, and (sampled) the whole content."""

    def __init__(self, size: int, n: int, start: int) -> None:
        self.size, self.start, self.n = size, start, n
        self.exp = bytearray(_template(size))
        self.every = _verify_every(size)
        self.lastseq = start + n - 1

    def full(self, m, i: int) -> None:
        QF.pack_into(self.exp, 0, i)
        QF.pack_into(self.exp, self.size - 8, i)
        if self.exp != m:
            _bad(f"message {i}: content differs from what was sent")

    def fail(self, m, i: int) -> None:
        if len(m) != self.size:
            _bad(f"message {i}: {len(m)} bytes, expected {self.size}")
        _bad(f"message {i}: carries sequence numbers {QF.unpack_from(m, 0)[0]} / "
             f"{QF.unpack_from(m, self.size - 8)[0]}")


def consume_bytes(recv, start: int, n: int, size: int) -> Tuple[float, float, int, int]:
    """Returns (t_first, t_last, seq checksum, bytes)."""
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    t_first = None
    s = nbytes = 0
    for i in range(start, start + n):
        m = recv()
        if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
            fail(m, i)
        if not (i - start) % every or i == ck.lastseq:
            full(m, i)
        s += i
        nbytes += len(m)
        if t_first is None:
            t_first = time.perf_counter()
    return t_first or time.perf_counter(), time.perf_counter(), s, nbytes


def consume_bytes_many(recv_many, start: int, n: int, size: int) -> Tuple[float, float, int, int]:
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    t_first = None
    i, end, s, nbytes = start, start + n, 0, 0
    while i < end:
        batch = recv_many()
        if t_first is None:
            t_first = time.perf_counter()
        for m in batch:
            if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                fail(m, i)
            if not (i - start) % every or i == ck.lastseq:
                full(m, i)
            s += i
            nbytes += len(m)
            i += 1
    if i != end:
        _bad(f"received {i - start} messages, expected {n}")
    return t_first or time.perf_counter(), time.perf_counter(), s, nbytes


def consume_bytes_view(view, start: int, n: int, size: int) -> Tuple[float, float, int, int]:
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    t_first = None
    s = nbytes = 0
    for i in range(start, start + n):
        with view() as m:
            if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                fail(m, i)
            if not (i - start) % every or i == ck.lastseq:
                full(m, i)
            nbytes += len(m)
        s += i
        if t_first is None:
            t_first = time.perf_counter()
    return t_first or time.perf_counter(), time.perf_counter(), s, nbytes


PING_SIZE = 64


def ping(send, recv, start: int, n: int, as_bytes: bool) -> array:
    """n round trips; returns each one's duration in nanoseconds."""
    out = array("q", bytes(8 * n))
    ns = time.perf_counter_ns
    if as_bytes:
        msg = bytearray(PING_SIZE)
        pack, unpack = QF.pack_into, QF.unpack_from
        for k in range(n):
            i = start + k
            pack(msg, 0, i)
            t0 = ns()
            send(msg)
            r = recv()
            t1 = ns()
            if len(r) != PING_SIZE or unpack(r, 0)[0] != i:
                _bad(f"round trip {i}: wrong reply")
            out[k] = t1 - t0
    else:
        for k in range(n):
            i = start + k
            t0 = ns()
            send((i, PAYLOAD, PI))
            r = recv()
            t1 = ns()
            if r[0] != i or r[1] != PAYLOAD:
                _bad(f"round trip {i}: wrong reply {r!r:.60}")
            out[k] = t1 - t0
    return out


def pong(send, recv, n: int) -> None:
    for _ in range(n):
        send(recv())


# --------------------------------------------------------------------------------------------
# child processes


def _set_pdeathsig() -> None:
    """Die with the parent (Linux): no orphan keeps running if the runner is killed."""
    with contextlib.suppress(Exception):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)


_IN_CHILD = False          # set in benchmark children
_DEFERRED: List[Callable[[], None]] = []   # run once the parent releases the child


def _child_main(conn, fn, args, cpu: Optional[int] = None) -> None:
    global _IN_CHILD
    _IN_CHILD = True
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
        kind = "check" if isinstance(exc, CheckError) else "error"
        with contextlib.suppress(Exception):
            conn.send(("error", kind, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.close()
        return
    conn.send(("result", result))
    if _DEFERRED:                  # wait for "release" (or the parent going away)
        with contextlib.suppress(Exception):
            conn.poll(READY_TIMEOUT + 600)
        for fn_ in _DEFERRED:
            with contextlib.suppress(Exception):
                fn_()
    conn.close()


# role functions: fn(gate, ...) -> dict


def _role_obj_producer(gate, ch: Channel, n: int) -> dict:
    ops = ch.sender()
    gate()
    t0 = time.perf_counter()
    produce_objects(ops.put, 0, n)
    t1 = time.perf_counter()
    ops.finish()
    return {"t_start": t0, "t_sent": t1}


def _role_obj_consumer(gate, ch: Channel, n: int) -> dict:
    ops = ch.receiver()
    gate()
    t_first, t_last, s = consume_objects(ops.get, 0, n)
    ops.finish()
    return {"t_first": t_first, "t_end": t_last, "count": n, "seq_sum": s}


def _role_batch_producer(gate, ch: Channel, n: int, batch: int) -> dict:
    ops = ch.sender()
    gate()
    t0 = time.perf_counter()
    produce_batches(ops.put_many, 0, n, batch)
    t1 = time.perf_counter()
    ops.finish()
    return {"t_start": t0, "t_sent": t1}


def _role_batch_consumer(gate, ch: Channel, n: int) -> dict:
    ops = ch.receiver()
    gate()
    t_first, t_last, s = consume_batches(ops.get_many, 0, n)
    ops.finish()
    return {"t_first": t_first, "t_end": t_last, "count": n, "seq_sum": s}


def _role_bytes_producer(gate, ch: Channel, n: int, size: int, mode: str) -> dict:
    ops = ch.sender()
    _template(size)
    gate()
    t0 = time.perf_counter()
    if mode == "many":
        produce_bytes_many(ops.send_many, 0, n, size, _many_batch(size))
    elif mode == "claim":
        produce_bytes_claim(ops.claim, 0, n, size)
    else:
        produce_bytes(ops.send, 0, n, size)
    t1 = time.perf_counter()
    ops.finish()
    return {"t_start": t0, "t_sent": t1}


def _role_bytes_consumer(gate, ch: Channel, n: int, size: int, mode: str) -> dict:
    ops = ch.receiver()
    _template(size)
    gate()
    if mode == "many":
        t_first, t_last, s, nb = consume_bytes_many(ops.recv_many, 0, n, size)
    elif mode == "claim":
        t_first, t_last, s, nb = consume_bytes_view(ops.view, 0, n, size)
    else:
        t_first, t_last, s, nb = consume_bytes(ops.recv, 0, n, size)
    ops.finish()
    return {"t_first": t_first, "t_end": t_last, "count": n, "seq_sum": s, "bytes": nb}


def _role_pinger(gate, ab: Channel, ba: Channel, n: int, warm: int, as_bytes: bool) -> dict:
    r = ba.receiver()
    s = ab.sender()
    send, recv = (s.send, r.recv) if as_bytes else (s.put, r.get)
    gate()
    ping(send, recv, 0, warm, as_bytes)
    t0 = time.perf_counter()
    samples = ping(send, recv, warm, n, as_bytes)
    t1 = time.perf_counter()
    s.finish()
    r.finish()
    return {"t_start": t0, "t_end": t1, "samples": samples.tobytes()}


def _role_ponger(gate, ab: Channel, ba: Channel, total: int, as_bytes: bool) -> dict:
    r = ab.receiver()
    s = ba.sender()
    send, recv = (s.send, r.recv) if as_bytes else (s.put, r.get)
    gate()
    pong(send, recv, total)
    s.finish()
    r.finish()
    return {}


def _role_mpmc_producer(gate, ch: Channel, p: int, n: int) -> dict:
    ops = ch.sender()
    put = ops.put
    gate()
    t0 = time.perf_counter()
    for i in range(n):
        put((p, i, PAYLOAD, PI))
    t1 = time.perf_counter()
    ops.finish()          # mp.Queue: flushed into the pipe before the parent's sentinels
    return {"t_start": t0, "t_sent": t1}


def _role_mpmc_consumer(gate, ch: Channel, producers: int) -> dict:
    ops = ch.receiver()
    get = ops.get
    last = [-1] * producers
    cnt = [0] * producers
    s1 = [0] * producers
    s2 = [0] * producers
    t_end = None
    gate()
    while True:
        o = get()
        if o is None:
            break
        p, i = o[0], o[1]
        if i <= last[p] or o[2] != PAYLOAD or o[3] != PI:
            _bad(f"producer {p}: item {i} after {last[p]} ({o!r:.60})")
        last[p] = i
        cnt[p] += 1
        s1[p] += i
        s2[p] += i * i
        t_end = time.perf_counter()
    ops.finish()
    return {"t_end": t_end, "count": cnt, "s1": s1, "s2": s2}


# --------------------------------------------------------------------------------------------
# running one measurement


@dataclass
class Plan:
    channels: List[Channel]
    roles: List[Tuple[str, str, Callable, tuple]]       # (name, group, fn, args)
    evaluate: Callable[[Dict[str, dict]], dict]
    after_group: Dict[str, Callable[[], None]] = field(default_factory=dict)

    def close(self) -> None:
        names: List[str] = []
        for ch in self.channels:
            names.extend(ch.names)
            with contextlib.suppress(Exception):
                ch.close()
        _unlink_segments(names)     # normally already gone: the last one out removed them
        _OWNED.difference_update(names)


def _kill_all(procs) -> None:
    procs = [p for p in procs if p._popen is not None]     # started
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def _run_plan(plan: Plan, time_limit: float, pin: bool = False) -> Dict[str, dict]:
    """Fork one process per role, handshake, collect each role's result dict. With *pin*,
    role k runs on the k-th usable CPU (round robin)."""
    procs: list = []
    conns: list = []
    names = [r[0] for r in plan.roles]
    cpus: List[Optional[int]] = [None]
    if pin:
        with contextlib.suppress(OSError, AttributeError):
            cpus = sorted(os.sched_getaffinity(0))
    try:
        for k, (rname, _group, fn, args) in enumerate(plan.roles):
            pc, cc = _CTX.Pipe()
            p = _CTX.Process(target=_child_main, args=(cc, fn, args, cpus[k % len(cpus)]),
                             name=f"ipcfast-bench:{rname}", daemon=True)
            conns.append(pc)
            procs.append(p)
            try:
                p.start()
            finally:
                cc.close()

        def collect(expect: str, deadline: float, on_result=None) -> Dict[str, Any]:
            got: Dict[str, Any] = {}
            pending = list(range(len(procs)))
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    late = ", ".join(names[k] for k in pending)
                    what = "start" if expect == "ready" else "finish"
                    raise MeasureError("timeout", f"{late} did not {what} within "
                                       f"{READY_TIMEOUT if expect == 'ready' else time_limit:g} s")
                mpc.wait([conns[k] for k in pending] + [procs[k].sentinel for k in pending],
                         timeout=min(left, 0.5))
                for k in list(pending):
                    c = conns[k]
                    if c.poll():
                        try:
                            msg = c.recv()
                        except EOFError:
                            procs[k].join(1)
                            raise MeasureError("error", f"{names[k]} died (exit code "
                                               f"{procs[k].exitcode}) before reporting")
                        if msg[0] == "error":
                            raise MeasureError(msg[1], f"{names[k]}: {msg[2]}")
                        if msg[0] != expect:
                            raise MeasureError("error", f"{names[k]}: unexpected {msg[0]!r}")
                        got[names[k]] = msg[1] if len(msg) > 1 else None
                        pending.remove(k)
                        if on_result:
                            on_result(k)
                    elif not procs[k].is_alive():
                        if c.poll():
                            continue
                        raise MeasureError("error", f"{names[k]} died (exit code "
                                           f"{procs[k].exitcode}) before reporting")
            return got

        collect("ready", time.monotonic() + READY_TIMEOUT)
        for c in conns:
            c.send("go")

        groups: Dict[str, int] = {}
        for _n, g, _f, _a in plan.roles:
            groups[g] = groups.get(g, 0) + 1

        def on_result(k: int) -> None:
            g = plan.roles[k][1]
            groups[g] -= 1
            if groups[g] == 0 and g in plan.after_group:
                plan.after_group[g]()

        results = collect("result", time.monotonic() + time_limit, on_result)
        for c in conns:
            with contextlib.suppress(Exception):
                c.send("release")
        for p in procs:
            p.join(JOIN_TIMEOUT)
        return results
    finally:
        _kill_all(procs)
        for c in conns:
            c.close()


def _throughput(results: Dict[str, dict], n: int, size: int = 0) -> dict:
    prod, cons = results["producer"], results["consumer"]
    if cons["count"] != n or cons["seq_sum"] != n * (n - 1) // 2:
        raise MeasureError("check", f"consumer got {cons['count']} messages (checksum "
                           f"{cons['seq_sum']}), expected {n} ({n * (n - 1) // 2})")
    if size and cons.get("bytes") != n * size:
        raise MeasureError("check", f"consumer got {cons.get('bytes')} bytes, expected {n * size}")
    secs = cons["t_end"] - prod["t_start"]
    if secs <= 0:
        raise MeasureError("error", "non-positive elapsed time")
    out = {"messages": n, "seconds": secs, "rate": n / secs}
    if size:
        out["bytes_rate"] = n * size / secs
    inner = cons["t_end"] - cons["t_first"]
    if n > 1 and inner > 0:
        out["consumer_rate"] = (n - 1) / inner
    return out


def _percentile(sorted_vals: Sequence[int], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(math.ceil(q * len(sorted_vals))) - 1))
    return float(sorted_vals[k])


# --------------------------------------------------------------------------------------------
# workloads


@dataclass
class Impl:
    name: str
    channel: Callable[["Variant"], Channel]
    mode: str                            # obj, batch, send, many, claim, pp-obj, pp-bytes, mpmc
    requires: Optional[str] = None       # module that must import
    note: str = ""


@dataclass
class Variant:
    key: str
    kind: str                            # objects, batched, bytes, pingpong, mpmc
    title: str
    impls: List[Impl]
    size: int = 0
    pilot: int = 1000
    min_count: int = 20
    max_count: Optional[int] = None      # before --scale


BATCH = 256                # items per put_many in the batched workload
MPMC = (2, 2)              # producers x consumers


def _many_batch(size: int) -> int:
    return max(1, min(256, (256 * KiB) // max(size, 1)))


def _bytes_impls(size: int) -> List[Impl]:
    out = [
        Impl(BASELINE, MPQueueCh, "send", note="put(bytes)"),
        Impl("multiprocessing.Pipe send_bytes", PipeCh, "send"),
        Impl("ipcfast.Pipe send_bytes", IPipeCh, "send"),
        Impl("ipcfast.Ring send_bytes", RingCh, "send"),
    ]
    if size <= 4 * KiB:
        out.append(Impl("ipcfast.Ring send_many", RingCh, "many",
                        note=f"batches of {_many_batch(size)}"))
    out.append(Impl("ipcfast.Ring claim/view", RingCh, "claim", note="zero-copy"))
    return out


def build_variants(full: bool) -> List[Variant]:
    obj_impls = [
        Impl(BASELINE, MPQueueCh, "obj"),
        Impl("multiprocessing.SimpleQueue", MPSimpleQueueCh, "obj"),
        Impl("multiprocessing.Pipe", PipeCh, "obj", note="send/recv"),
        Impl("ipcfast.Queue", IQueueCh, "obj"),
        Impl("ipcfast.SimpleQueue", ISimpleQueueCh, "obj"),
        Impl("ipcfast.Pipe", IPipeCh, "obj", note="send/recv"),
        Impl("faster_fifo.Queue", FasterFifoCh, "obj", requires="faster_fifo"),
        Impl("posix_ipc.MessageQueue", PosixMQCh, "obj", requires="posix_ipc", note="pickled"),
        Impl("zmq PUSH/PULL", ZmqCh, "obj", requires="zmq", note="ipc://, pickled"),
    ]
    batch_impls = [
        Impl(BASELINE, MPQueueCh, "obj", note="one per call"),
        Impl("multiprocessing.Queue put(list)", MPQueueCh, "batch", note=f"a list of {BATCH} per put"),
        Impl("ipcfast.Queue put_many/get_many", IQueueCh, "batch"),
        Impl("ipcfast.Queue put(list)", IQueueListCh, "batch", note=f"a list of {BATCH} per put"),
        Impl("faster_fifo.Queue put_many/get_many", FasterFifoCh, "batch", requires="faster_fifo"),
    ]
    pp_impls = [
        Impl(BASELINE, MPQueueCh, "pp-obj", note="a pair"),
        Impl("multiprocessing.Pipe", PipeCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Ring", RingCh, "pp-bytes", note=f"a pair, {PING_SIZE} B"),
        Impl("ipcfast.Queue", IQueueCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Pipe", IPipeCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Mailbox", IMailboxCh, "pp-obj", note="a pair"),
        Impl("faster_fifo.Queue", FasterFifoCh, "pp-obj", requires="faster_fifo", note="a pair"),
        Impl("posix_ipc.MessageQueue", PosixMQCh, "pp-obj", requires="posix_ipc", note="a pair"),
        Impl("zmq PUSH/PULL", ZmqCh, "pp-obj", requires="zmq", note="a pair"),
    ]
    mpmc_impls = [
        Impl(BASELINE, MPQueueCh, "mpmc"),
        Impl("ipcfast.Queue", IQueueCh, "mpmc"),
        Impl("faster_fifo.Queue", FasterFifoCh, "mpmc", requires="faster_fifo"),
        Impl("posix_ipc.MessageQueue", PosixMQCh, "mpmc", requires="posix_ipc"),
    ]
    mailbox_impls = [
        Impl(BASELINE, MPQueueCh, "obj"),
        Impl("ipcfast.Mailbox", IMailboxCh, "obj", note="priority 1"),
        Impl("posix_ipc.MessageQueue", PosixMQPrioCh, "obj", requires="posix_ipc",
             note="priority 1, pickled"),
    ]
    sizes = [64, 4 * KiB, 64 * KiB, 1 * MiB] + ([16 * MiB] if full else [])
    out = [
        Variant("objects", "objects",
                "Small objects, one per call: (seq, 'payload', 3.14), 1 producer -> 1 consumer",
                obj_impls, pilot=2000),
        Variant("batched", "batched",
                f"Small objects, batched ({BATCH} per put_many), 1 producer -> 1 consumer",
                batch_impls, pilot=5000),
    ]
    for s in sizes:
        out.append(Variant(f"bytes-{fmt_size(s).replace(' ', '')}", "bytes",
                           f"Raw bytes, {fmt_size(s)} messages, 1 producer -> 1 consumer",
                           _bytes_impls(s), size=s,
                           pilot=max(4, min(5000, int(20e6 // (s + 200)))), min_count=4))
    out.append(Variant("mailbox", "objects",
                       "Mailbox: small pickled tuples sent with a priority, one per call, 1 sender -> 1 receiver",
                       mailbox_impls, pilot=2000))
    out.append(Variant("pingpong", "pingpong",
                       "Ping-pong round trip: 2 processes bounce a small message",
                       pp_impls, pilot=300, min_count=2000,
                       max_count=60000 if full else 20000))
    out.append(Variant(f"mpmc-{MPMC[0]}x{MPMC[1]}", "mpmc",
                       f"{MPMC[0]} producers x {MPMC[1]} consumers, small objects",
                       mpmc_impls, pilot=2000))
    return out


VARIANT_KEYS = [v.key for v in build_variants(True)]


def _plan(v: Variant, impl: Impl, n: int) -> Plan:
    chans: List[Channel] = []
    try:
        if v.kind == "pingpong":
            ab, ba = impl.channel(v), None
            chans.append(ab)
            ba = impl.channel(v)
            chans.append(ba)
            as_bytes = impl.mode == "pp-bytes"
            warm = min(200, max(5, n // 10))
            roles = [("ponger", "pong", _role_ponger, (ab, ba, warm + n, as_bytes)),
                     ("pinger", "ping", _role_pinger, (ab, ba, n, warm, as_bytes))]

            def evaluate(res: Dict[str, dict]) -> dict:
                p = res["pinger"]
                samples = sorted(array("q", p["samples"]))
                if len(samples) != n:
                    raise MeasureError("check", f"{len(samples)} round trips, expected {n}")
                secs = p["t_end"] - p["t_start"]
                return {"messages": n, "seconds": secs, "rate": n / secs,
                        "p50_us": _percentile(samples, 0.50) / 1e3,
                        "p90_us": _percentile(samples, 0.90) / 1e3,
                        "p99_us": _percentile(samples, 0.99) / 1e3,
                        "p999_us": _percentile(samples, 0.999) / 1e3,
                        "min_us": samples[0] / 1e3, "max_us": samples[-1] / 1e3,
                        "mean_us": sum(samples) / len(samples) / 1e3}
            return Plan(chans, roles, evaluate)

        ch = impl.channel(v)
        chans.append(ch)
        if v.kind == "mpmc":
            np_, nc = MPMC
            per = max(1, n // np_)
            roles = [(f"consumer{c}", "c", _role_mpmc_consumer, (ch, np_)) for c in range(nc)]
            roles += [(f"producer{p}", "p", _role_mpmc_producer, (ch, p, per)) for p in range(np_)]

            def sentinels() -> None:
                for _ in range(nc):
                    ch.parent_put(None)

            def evaluate(res: Dict[str, dict]) -> dict:
                cons = [res[f"consumer{c}"] for c in range(nc)]
                for p in range(np_):
                    cnt = sum(c["count"][p] for c in cons)
                    s1 = sum(c["s1"][p] for c in cons)
                    s2 = sum(c["s2"][p] for c in cons)
                    if (cnt, s1, s2) != (per, per * (per - 1) // 2,
                                         (per - 1) * per * (2 * per - 1) // 6):
                        raise MeasureError("check", f"producer {p}: {cnt} items arrived, "
                                           f"expected {per} each exactly once")
                t0 = min(res[f"producer{p}"]["t_start"] for p in range(np_))
                t1 = max(c["t_end"] for c in cons if c["t_end"] is not None)
                total = per * np_
                return {"messages": total, "seconds": t1 - t0, "rate": total / (t1 - t0)}
            return Plan(chans, roles, evaluate, {"p": sentinels})

        if impl.mode == "obj":
            roles = [("consumer", "c", _role_obj_consumer, (ch, n)),
                     ("producer", "p", _role_obj_producer, (ch, n))]
            return Plan(chans, roles, lambda res: _throughput(res, n))
        if impl.mode == "batch":
            roles = [("consumer", "c", _role_batch_consumer, (ch, n)),
                     ("producer", "p", _role_batch_producer, (ch, n, BATCH))]
            return Plan(chans, roles, lambda res: _throughput(res, n))
        if impl.mode in ("send", "many", "claim"):
            roles = [("consumer", "c", _role_bytes_consumer, (ch, n, v.size, impl.mode)),
                     ("producer", "p", _role_bytes_producer, (ch, n, v.size, impl.mode))]
            return Plan(chans, roles, lambda res: _throughput(res, n, v.size))
        raise ValueError(f"unknown mode {impl.mode!r}")
    except BaseException:
        Plan(chans, [], lambda r: {}).close()
        raise


def measure(v: Variant, impl: Impl, n: int, time_limit: float, pin: bool = False) -> dict:
    """One measurement of *n* messages (round trips for ping-pong)."""
    plan = _plan(v, impl, n)
    try:
        return plan.evaluate(_run_plan(plan, time_limit, pin))
    finally:
        plan.close()


def memcpy_gbps(size: int, seconds: float, repeats: int = 3) -> float:
    """Single-core copy bandwidth (GB/s) of *size*-byte buffers, memoryview slice assignment."""
    src = memoryview(bytearray(_template(size)))
    dst = memoryview(bytearray(size))
    loops = max(1, int(200 * MiB // size))
    dst[:] = src
    best = []
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while True:
            for _ in range(loops):
                dst[:] = src
            done += loops
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        best.append(done * size / el / 1e9)
    return statistics.median(best)


# --------------------------------------------------------------------------------------------
# options


@dataclass
class Options:
    full: bool = False
    only: Optional[str] = None
    repeat: Optional[int] = None
    json_path: Optional[str] = None
    plot_path: Optional[str] = None
    time_limit: Optional[float] = None
    scale: float = 1.0
    verbose: bool = False
    list_only: bool = False
    pin: bool = False
    progress: Optional[bool] = None          # None: a live indicator when stdout is a TTY

    @property
    def repeats(self) -> int:
        return self.repeat if self.repeat else (5 if self.full else 3)

    @property
    def target(self) -> float:
        """Seconds one measurement should take."""
        return (1.0 if self.full else 0.45) * self.scale

    @property
    def limit(self) -> float:
        return self.time_limit if self.time_limit else (120.0 if self.full else 60.0)


def parse_args(argv: Optional[Sequence[str]] = None) -> Options:
    ap = argparse.ArgumentParser(
        prog="python -m ipcfast bench",
        description="Compare ipcfast with multiprocessing (and faster_fifo, posix_ipc, pyzmq "
                    "when installed) on small objects, batches, raw bytes, ping-pong latency "
                    "and N x M queues. Every message is checked.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="~0.45 s per measurement, 3 repeats (default; about a minute)")
    mode.add_argument("--full", action="store_true",
                      help="~1 s per measurement, 5 repeats, adds 16 MiB messages")
    ap.add_argument("--only", metavar="PATTERN",
                    help="run only workloads or implementations matching PATTERN (regular "
                         "expression or substring, case-insensitive); the multiprocessing.Queue "
                         "baseline always runs with them. See --list.")
    ap.add_argument("--repeat", type=int, metavar="N", help="repeats per measurement")
    ap.add_argument("--json", dest="json_path", metavar="PATH",
                    help="write results and a host description to PATH as JSON")
    ap.add_argument("--plot", dest="plot_path", metavar="PATH",
                    help="draw a PNG chart to PATH (needs matplotlib)")
    ap.add_argument("--time-limit", type=float, metavar="SECONDS",
                    help="kill a measurement's processes after this long (default 60, --full 120)")
    ap.add_argument("--list", dest="list_only", action="store_true",
                    help="list workloads and implementations, then exit")
    ap.add_argument("--pin", action="store_true",
                    help="pin each process of a measurement to its own CPU (consumer on the "
                         "first, producer on the second, ...); default: the scheduler decides")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per measurement")
    ap.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                    help=argparse.SUPPRESS)
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.repeat is not None and a.repeat < 1:
        ap.error("--repeat must be >= 1")
    if a.time_limit is not None and a.time_limit <= 0:
        ap.error("--time-limit must be > 0")
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    return Options(full=a.full, only=a.only, repeat=a.repeat, json_path=a.json_path,
                   plot_path=a.plot_path, time_limit=a.time_limit, scale=a.scale,
                   verbose=a.verbose, list_only=a.list_only, pin=a.pin, progress=a.progress)


def _matcher(pattern: Optional[str]) -> Callable[[str], bool]:
    if not pattern:
        return lambda s: True
    try:
        rx = re.compile(pattern, re.I)
    except re.error:
        rx = re.compile(re.escape(pattern), re.I)
    return lambda s: bool(rx.search(s))


def select(variants: List[Variant], pattern: Optional[str]) -> List[Variant]:
    """Variants and implementations matching *pattern* (the baseline kept alongside)."""
    match = _matcher(pattern)
    out = []
    for v in variants:
        if match(v.key):
            out.append(v)
            continue
        picked = [i for i in v.impls if match(i.name) or match(f"{v.key}/{i.name}")]
        if picked:
            keep = [i for i in v.impls if i.name == BASELINE or i in picked]
            out.append(Variant(v.key, v.kind, v.title, keep, v.size, v.pilot, v.min_count,
                               v.max_count))
    return out


# --------------------------------------------------------------------------------------------
# output


class Reporter:
    """Permanent lines to stdout; a live progress indicator when stdout is a TTY."""

    def __init__(self, total: int, live: bool, verbose: bool) -> None:
        self.total, self.done, self.verbose = total, 0, verbose
        self.bar = None
        self.rich = None
        self.simple = False
        if not live:
            return
        try:
            import tqdm
            tqdm.tqdm.monitor_interval = 0      # no monitor thread: we fork
            self.bar = tqdm.tqdm(total=total, leave=False, dynamic_ncols=True, unit="run",
                                 file=sys.stdout, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                 "[{elapsed}<{remaining}]")
            return
        except ImportError:
            pass
        try:
            from rich.progress import Progress
            self.rich = Progress(transient=True, auto_refresh=False)
            self.rich.start()
            self.rich_task = self.rich.add_task("bench", total=total)
            return
        except ImportError:
            pass
        self.simple = True

    def line(self, text: str = "") -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        elif self.rich is not None:
            self.rich.console.print(text, markup=False, highlight=False)
            self.rich.refresh()
        else:
            if self.simple:
                sys.stdout.write("\r\033[K")
            print(text, flush=True)

    def status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text[:60], refresh=True)
        elif self.rich is not None:
            self.rich.update(self.rich_task, description=text[:60])
            self.rich.refresh()
        elif self.simple:
            sys.stdout.write(f"\r\033[K[{self.done}/{self.total}] {text[:70]}")
            sys.stdout.flush()

    def advance(self, detail: Optional[str] = None) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.rich is not None:
            self.rich.update(self.rich_task, advance=1)
            self.rich.refresh()
        if detail and self.verbose:
            self.line(f"  [{self.done}/{self.total}] {detail}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.rich is not None:
            self.rich.stop()
            self.rich = None
        if self.simple:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
            self.simple = False


def _summarise(values: List[float]) -> dict:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    spread = (hi - lo) / med if med else 0.0
    q = statistics.quantiles(values, n=4) if len(values) >= 4 else None
    return {"median": med, "min": lo, "max": hi, "spread": spread,
            "iqr": (q[2] - q[0]) if q else None, "noisy": spread > NOISY}


def _finish_variant(res: dict) -> None:
    """Medians, spreads and ratios to the baseline for one variant's rows."""
    latency = res["kind"] == "pingpong"
    for row in res["rows"]:
        reps = row["reps"]
        if row["status"] != "ok" or not reps:
            continue
        row["rate"] = _summarise([r["rate"] for r in reps])
        if "bytes_rate" in reps[0]:
            row["bytes_rate"] = _summarise([r["bytes_rate"] for r in reps])
        if latency:
            for k in ("p50_us", "p99_us", "p999_us"):
                row[k] = _summarise([r[k] for r in reps])
        row["noisy"] = (row["p50_us"] if latency else row["rate"])["noisy"]
    base = next((r for r in res["rows"] if r["impl"] == BASELINE and r["status"] == "ok"
                 and r["reps"]), None)
    for row in res["rows"]:
        if row["status"] != "ok" or not row["reps"] or base is None:
            row["ratio"] = None
        elif latency:
            row["ratio"] = base["p50_us"]["median"] / row["p50_us"]["median"]
        else:
            row["ratio"] = row["rate"]["median"] / base["rate"]["median"]
    mc = res.get("memcpy_gbps")
    if mc:
        for row in res["rows"]:
            if row.get("bytes_rate"):
                row["memcpy_fraction"] = row["bytes_rate"]["median"] / (mc * 1e9)


def _table(rows: List[List[str]], right: Sequence[int]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    return out


def format_variant(res: dict) -> List[str]:
    kind = res["kind"]
    lines = [f"== {res['title']} ({res['repeats']} repeats, interleaved) =="]
    latency = kind == "pingpong"
    bytes_ = kind == "bytes"
    if latency:
        head = ["implementation", "p50 us", "p99 us", "p99.9 us", "p50 spread (min..max)",
                "vs mp.Queue", ""]
    elif bytes_:
        head = ["implementation", "msgs/s", "MB/s", "spread (min..max msgs/s)", "of memcpy",
                "vs mp.Queue", ""]
    else:
        head = ["implementation", "msgs/s", "spread (min..max)", "vs mp.Queue", ""]
    rows = [head]
    for row in res["rows"]:
        name = row["impl"] + (f" ({row['note']})" if row.get("note") else "")
        if row["status"] != "ok" or not row["reps"]:
            why = row.get("reason") or "no result"
            tag = "skipped" if row["status"] == "skipped" else "FAILED"
            rows.append([name] + ["-"] * (len(head) - 2) + [f"{tag}: {why}"])
            continue
        noisy = " ".join(f for f, on in (("(noisy)", row["noisy"]),
                                          ("(unstable pilots)", (row.get("pilot") or {}).get("unstable")))
                         if on)
        ratio = fmt_ratio(row["ratio"]) + (" (baseline)" if row["impl"] == BASELINE else "")
        if latency:
            p50 = row["p50_us"]
            rows.append([name, fmt_us(p50["median"]), fmt_us(row["p99_us"]["median"]),
                         fmt_us(row["p999_us"]["median"]),
                         f"{fmt_us(p50['min'])}..{fmt_us(p50['max'])} ({p50['spread']:.0%})",
                         ratio, noisy])
            continue
        r = row["rate"]
        spread = f"{fmt_num(r['min'])}..{fmt_num(r['max'])} ({r['spread']:.0%})"
        if bytes_:
            frac = row.get("memcpy_fraction")
            rows.append([name, fmt_num(r["median"]), f"{row['bytes_rate']['median'] / 1e6:,.0f}",
                         spread, f"{frac:.1%}" if frac is not None else "-", ratio, noisy])
        else:
            rows.append([name, fmt_num(r["median"]), spread, ratio, noisy])
    right = {1, 2, 3} if latency else ({1, 2, 4} if bytes_ else {1})
    lines += _table(rows, right)
    if bytes_ and res.get("memcpy_gbps"):
        lines.append(f"  memcpy reference (1 core, {fmt_size(res['size'])} bytearray -> bytearray, "
                     f"memoryview slice assignment): {res['memcpy_gbps']:.1f} GB/s")
        rings = [r for r in res["rows"] if r["impl"].startswith("ipcfast.Ring")
                 and r.get("memcpy_fraction") is not None]
        if rings:
            best = max(rings, key=lambda r: r["bytes_rate"]["median"])
            lines.append(f"  best ipcfast.Ring ({best['impl'].split(' ', 1)[1]}): "
                         f"{best['bytes_rate']['median'] / 1e9:.2f} GB/s = "
                         f"{best['memcpy_fraction']:.1%} of memcpy")
    if bytes_:
        lines.append("  MB/s = 10^6 payload bytes per second")
    if latency:
        lines.append("  vs mp.Queue = baseline p50 / p50 (bigger is better)")
    return lines


def host_info() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.lower().startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    peers = {d: _dist_version(d) for d in ("faster-fifo", "posix_ipc", "pyzmq")}
    return {"cpu_model": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "machine": platform.machine(), "kernel": platform.release(),
            "os": platform.platform(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "ipcfast_version": __version__,
            "peers": {k: v for k, v in peers.items() if v}}


def cpu_busy(seconds: float = 0.2) -> Optional[float]:
    """Fraction of all CPU time spent busy over *seconds* (other processes' load)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else None


def _options_json(o: Options) -> dict:
    return {"mode": "full" if o.full else "quick", "only": o.only, "repeat": o.repeats,
            "pin": o.pin,
            "time_limit": o.limit, "target_seconds": o.target, "scale": o.scale}


def plot(results: dict, path: str) -> Optional[str]:
    """Draw ratios to the baseline; returns an error message instead of raising."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return "--plot needs matplotlib, which is not installed (pip install matplotlib)"
    vs = [w for w in results["workloads"] if any(r.get("ratio") for r in w["rows"])]
    if not vs:
        return "--plot: no results to draw"
    cols = 2 if len(vs) > 1 else 1
    nrows = (len(vs) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 2.6 * nrows + 0.4), squeeze=False)
    for ax, w in zip(axes.flat, vs):
        rows = [r for r in w["rows"] if r.get("ratio")]
        names = [r["impl"] for r in rows][::-1]
        ratios = [r["ratio"] for r in rows][::-1]
        colors = ["#888888" if n == BASELINE else ("#1f77b4" if n.startswith("ipcfast") else "#ff7f0e")
                  for n in names]
        lo, hi = [], []
        for r in rows[::-1]:
            if w["kind"] == "pingpong":
                base = next(b for b in w["rows"] if b["impl"] == BASELINE)["p50_us"]["median"]
                a, b = base / r["p50_us"]["max"], base / r["p50_us"]["min"]
            else:
                base = next(b for b in w["rows"] if b["impl"] == BASELINE)["rate"]["median"]
                a, b = r["rate"]["min"] / base, r["rate"]["max"] / base
            lo.append(max(0.0, r["ratio"] - a))
            hi.append(max(0.0, b - r["ratio"]))
        ax.barh(names, ratios, xerr=[lo, hi], color=colors, capsize=2)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(min(ratios + [1.0]) / 1.6, max(ratios + [1.0]) * 2.2)
        fmt = FuncFormatter(lambda x, _pos: f"{x:g}x")
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(FuncFormatter(
            lambda x, _pos: f"{x:g}x" if x > 0 and round(x / 10 ** math.floor(math.log10(x)))
            in (2, 5) else ""))
        for y, (val, err) in enumerate(zip(ratios, hi)):
            ax.text(val + err, y, f" {val:.2f}x", va="center", fontsize=7)
        ax.set_title(w["title"], fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.tick_params(axis="x", which="both", labelsize=7)
        ax.set_xlabel("x multiprocessing.Queue (" + ("p50 latency" if w["kind"] == "pingpong"
                      else "throughput") + "; bigger is better)", fontsize=7)
    for ax in list(axes.flat)[len(vs):]:
        ax.axis("off")
    h = results["host"]
    fig.suptitle(f"ipcfast {h['ipcfast_version']} - {h['cpu_model']}, {h['cores']} cores, "
                 f"Linux {h['kernel']}, Python {h['python']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------------------------
# the run


def _calibrate(v: Variant, impl: Impl, o: Options) -> Tuple[int, dict]:
    """A message count for which one measurement takes about o.target seconds.

    Pilots grow until one lasts a few tens of milliseconds; two more of that size follow
    and the slowest of the three sets the count, so that an implementation whose speed
    depends on where the scheduler puts its processes is not given a count that takes
    ten times the target on its next run."""
    n = max(int(v.min_count * min(1.0, o.scale)), int(v.pilot * min(1.0, o.scale)), 1)
    short = 0.04 * min(1.0, o.scale)
    for attempt in range(4):
        m = measure(v, impl, n, o.limit, o.pin)
        if m["seconds"] >= short or attempt == 3:
            break
        n = int(n * min(20.0, max(2.0, 2 * short / max(m["seconds"], 1e-6))))
    pilots = [m] + [measure(v, impl, n, o.limit, o.pin) for _ in range(2)]
    slow = max(pilots, key=lambda p: p["seconds"])
    fast = min(pilots, key=lambda p: p["seconds"])
    count = int(n * o.target / max(slow["seconds"], 1e-9))
    if v.max_count:
        count = min(count, max(1, int(v.max_count * o.scale)))
    count = max(int(v.min_count * min(1.0, o.scale)), count, 1)
    slow = dict(slow, unstable=slow["seconds"] > 3 * fast["seconds"],
                pilot_seconds=[p["seconds"] for p in pilots])
    m = slow
    if v.kind == "mpmc":
        count -= count % MPMC[0]
        count = max(count, MPMC[0])
    return count, m


def _row(impl: Impl) -> dict:
    return {"impl": impl.name, "note": impl.note, "mode": impl.mode, "status": "ok",
            "reason": None, "count": None, "reps": []}


def run(options: Options) -> dict:
    """Run the comparison described by *options*; print tables; return the results."""
    o = options
    t_run = time.perf_counter()
    variants = select(build_variants(o.full), o.only)
    live = o.progress if o.progress is not None else sys.stdout.isatty()
    results: Dict[str, Any] = {"host": host_info(), "options": _options_json(o),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "workloads": [], "skipped": [], "interrupted": False,
                               "failures": 0}
    avail: Dict[str, Tuple[bool, str]] = {}
    for v in variants:
        for i in v.impls:
            if i.requires and i.requires not in avail:
                mod, why = _optional(i.requires)
                if mod is not None and i.requires == "posix_ipc" and not getattr(
                        mod, "MESSAGE_QUEUES_SUPPORTED", True):
                    mod, why = None, "posix_ipc: message queues are not supported here"
                avail[i.requires] = (mod is not None, why)
    for mod, (ok, why) in sorted(avail.items()):
        if not ok:
            results["skipped"].append({"module": mod, "reason": why})
    runnable = {(v.key, i.name) for v in variants for i in v.impls
                if not i.requires or avail[i.requires][0]}
    total = sum((o.repeats + 1) for _ in runnable)
    busy = cpu_busy()
    with contextlib.suppress(OSError, AttributeError):
        results["host"]["loadavg_start"] = list(os.getloadavg())
    results["host"]["cpu_busy_before"] = busy
    rep = Reporter(total, live, o.verbose)
    h = results["host"]
    rep.line(f"ipcfast {h['ipcfast_version']} benchmark ({'full' if o.full else 'quick'}"
             f"{', pinned' if o.pin else ''}): "
             f"{h['cpu_model']}, {h['cores']} cores ({h['usable_cores']} usable), "
             f"Linux {h['kernel']}, Python {h['python']}")
    if busy is not None and busy > 0.15:
        rep.line(f"warning: {busy:.0%} of the CPU time was already in use before the run "
                 f"started; other processes will make these results noisy")
    for s in results["skipped"]:
        rep.line(f"skipping {s['module']}: {s['reason']}")
    if not variants:
        rep.line(f"--only {o.only!r} matches no workload or implementation; see --list")
    rep.line("")
    res: Optional[dict] = None
    try:
        for v in variants:
            res = {"workload": v.key, "kind": v.kind, "title": v.title, "size": v.size,
                   "repeats": o.repeats, "baseline": BASELINE, "rows": []}
            results["workloads"].append(res)
            rows = {}
            active: List[Impl] = []
            for impl in v.impls:
                row = rows[impl.name] = _row(impl)
                res["rows"].append(row)
                if impl.requires and not avail[impl.requires][0]:
                    row["status"], row["reason"] = "skipped", f"{impl.requires} not installed"
                else:
                    active.append(impl)
            if not live:
                rep.line(f"running {v.key}: {len(active)} implementations x {o.repeats} repeats ...")
            if v.kind == "bytes":
                rep.status(f"{v.key}: memcpy reference")
                res["memcpy_gbps"] = memcpy_gbps(v.size, max(0.005, 0.1 * min(1.0, o.scale)))
            for impl in active:
                row = rows[impl.name]
                rep.status(f"{v.key}: calibrating {impl.name}")
                try:
                    row["count"], pilot = _calibrate(v, impl, o)
                    row["pilot"] = pilot
                    rep.advance(f"{v.key} / {impl.name}: calibrated to {row['count']} "
                                f"(pilots of {pilot['messages']}: " + ", ".join(
                                    f"{x:.3f}" for x in pilot["pilot_seconds"]) + " s)")
                except MeasureError as e:
                    row["status"], row["reason"] = "failed", f"{e.kind}: {e}"
                    rep.advance(f"{v.key} / {impl.name}: FAILED {e}")
            for r in range(o.repeats):
                for impl in active:
                    row = rows[impl.name]
                    if row["status"] != "ok":
                        rep.advance()
                        continue
                    rep.status(f"{v.key}: {impl.name} {r + 1}/{o.repeats}")
                    try:
                        m = measure(v, impl, row["count"], o.limit, o.pin)
                        row["reps"].append(m)
                        what = (f"p50 {m['p50_us']:.1f} us" if v.kind == "pingpong"
                                else f"{fmt_num(m['rate'])} msgs/s")
                        rep.advance(f"{v.key} / {impl.name} #{r + 1}: {what} "
                                    f"({m['messages']} in {m['seconds']:.3f} s)")
                    except MeasureError as e:
                        row["status"], row["reason"] = "failed", f"{e.kind}: {e}"
                        rep.advance(f"{v.key} / {impl.name} #{r + 1}: FAILED {e}")
            for row in res["rows"]:
                if row["impl"].startswith("posix_ipc") and row["reps"] and _POSIX_DEPTH[0]:
                    row["note"] = ", ".join(filter(None, [row["note"],
                                                          f"depth {_POSIX_DEPTH[0]}"]))
            _finish_variant(res)
            for ln in format_variant(res):
                rep.line(ln)
            rep.line("")
            res = None
    except KeyboardInterrupt:
        results["interrupted"] = True
        rep.close()
        if res is not None:            # what the interrupted workload had measured so far
            res["interrupted"] = True
            with contextlib.suppress(Exception):
                _finish_variant(res)
                if any(r["reps"] for r in res["rows"]):
                    res["title"] += " [INTERRUPTED, partial]"
                    print("\n".join(format_variant(res)), flush=True)
        print("interrupted: stopped all benchmark processes", flush=True)
    finally:
        rep.close()
        leftovers = _unlink_segments(_OWNED)
        _OWNED.clear()
        if leftovers:
            results["removed_leftover_segments"] = leftovers
        results["failures"] = sum(1 for w in results["workloads"] for r in w["rows"]
                                  if r["status"] == "failed")
        results["duration_s"] = time.perf_counter() - t_run
        with contextlib.suppress(OSError, AttributeError):
            results["host"]["loadavg_end"] = list(os.getloadavg())
        if o.json_path:
            with open(o.json_path, "w") as f:
                json.dump(results, f, indent=1, default=str)
    if not results["interrupted"]:
        print(f"total time {results['duration_s']:.1f} s"
              + (f"; {results['failures']} measurement(s) FAILED" if results["failures"] else ""),
              flush=True)
    if o.json_path:
        print(f"results written to {o.json_path}", flush=True)
    if o.plot_path and results["workloads"]:
        err = plot(results, o.plot_path)
        print(err if err else f"chart written to {o.plot_path}", file=sys.stderr if err else sys.stdout,
              flush=True)
        results["plot_error"] = err
    return results


def list_variants(full: bool = True) -> List[str]:
    lines = []
    for v in build_variants(full):
        lines.append(f"{v.key}: {v.title}")
        for i in v.impls:
            extra = f"  [needs {i.requires}]" if i.requires else ""
            lines.append(f"    {i.name}{' (' + i.note + ')' if i.note else ''}{extra}")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m ipcfast bench``. Returns the exit status."""
    try:
        opts = parse_args(argv)
    except SystemExit as exc:          # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if opts.list_only:
        with contextlib.suppress(BrokenPipeError):
            print("\n".join(list_variants(True)), flush=True)
        return 0
    restore = None
    if hasattr(signal, "SIGTERM"):
        with contextlib.suppress(ValueError):      # not the main thread: leave signals alone

            def _term(signum, frame):
                raise KeyboardInterrupt
            restore = signal.signal(signal.SIGTERM, _term)
    try:
        results = run(opts)
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    if results["interrupted"]:
        return 130
    if opts.only and not results["workloads"]:
        return 2
    return 1 if results["failures"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
