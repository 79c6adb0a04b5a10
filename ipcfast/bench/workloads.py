"""Workloads: the object, batch, N x M and ping-pong loops, and the variants the runner
measures (the byte-message loops are in :mod:`.byteloops`).

The loops are shared by the runner's processes and benchmarks/test_bench_*.py. Every
consumer loop checks every message (see the package docstring for what is checked) and
returns a :class:`Received` whose ``count`` is the number of messages it received and
checked; it raises :class:`CheckError` on the first wrong one. The per-message checks are
written out inside each loop on purpose: a helper call per message would be measured.
"""
from __future__ import annotations

import time
from array import array
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .._units import KiB
from . import byteloops as B
from . import channels as C
from .channels import Ops
from .messages import QF, Received, _bad

BASELINE = "multiprocessing.Queue"

PAYLOAD = "payload"
PI = 3.14
BATCH = 256                # items per put_many in the batched workload
MPMC = (2, 2)              # producers x consumers
PING_SIZE = 64             # bytes of a ping-pong message in the byte form


def many_batch(size: int) -> int:
    """Messages per ``send_many`` call for *size*-byte messages (at most 256 KiB a call)."""
    return max(1, min(256, (256 * KiB) // max(size, 1)))


# --------------------------------------------------------------------------------------------
# small objects: (seq, PAYLOAD, PI)


def produce_objects(put, start: int, n: int) -> None:
    """put() items start..start+n-1, one per call."""
    for i in range(start, start + n):
        put((i, PAYLOAD, PI))


def consume_objects(get, start: int, n: int) -> Received:
    """get() items start..start+n-1, checking each in order (blocks until all came)."""
    if n <= 0:
        now = time.perf_counter()
        return Received(now, now, 0, 0)
    o = get()
    t_first = time.perf_counter()
    if o[0] != start or o[1] != PAYLOAD or o[2] != PI:
        _bad(f"expected item {start}, got {o!r:.80}")
    s = i = o[0]
    for i in range(start + 1, start + n):
        o = get()
        if o[0] != i or o[1] != PAYLOAD or o[2] != PI:
            _bad(f"expected item {i}, got {o!r:.80}")
        s += o[0]
    return Received(t_first, time.perf_counter(), i - start + 1, s)    # i: the last checked


def produce_batches(put_many, start: int, n: int, batch: int) -> None:
    """put_many() items start..start+n-1 in lists of *batch*."""
    end = start + n
    for b in range(start, end, batch):
        put_many([(i, PAYLOAD, PI) for i in range(b, min(end, b + batch))])


def consume_batches(get_many, start: int, n: int) -> Received:
    """get_many() lists until items start..start+n-1 came, checking each in order."""
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
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start, s)


# --------------------------------------------------------------------------------------------
# one entry per implementation mode


def produce(mode: str, ops: Ops, start: int, n: int, size: int = 0) -> None:
    """Send messages start..start+n-1 the way *mode* does (obj, batch, send, many, claim)."""
    if mode == "obj":
        produce_objects(ops.put, start, n)
    elif mode == "batch":
        produce_batches(ops.put_many, start, n, BATCH)
    elif mode == "many":
        B.produce_bytes_many(ops.send_many, start, n, size, ops.batch or many_batch(size))
    elif mode == "claim":
        B.produce_bytes_claim(ops.claim, start, n, size)
    elif mode == "claim-many":
        B.produce_bytes_claim_many(ops.claim_many, start, n, size, many_batch(size))
    elif mode == "send":
        B.produce_bytes(ops.send, start, n, size)
    elif mode == "array":
        from .arrays import produce_arrays
        produce_arrays(ops.put, start, n, size)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def consume(mode: str, ops: Ops, start: int, n: int, size: int = 0) -> Received:
    """Receive and check messages start..start+n-1 the way *mode* does."""
    if mode == "obj":
        return consume_objects(ops.get, start, n)
    if mode == "batch":
        return consume_batches(ops.get_many, start, n)
    if mode == "many":
        return B.consume_bytes_many(ops.recv_many, start, n, size)
    if mode == "claim":
        return B.consume_bytes_view(ops.view, start, n, size)
    if mode == "claim-many":
        return B.consume_bytes_view_many(ops.view_many, start, n, size)
    if mode == "send":
        return B.consume_bytes(ops.recv, start, n, size)
    if mode == "array":
        from .arrays import consume_arrays
        return consume_arrays(ops.get, start, n, size)
    raise ValueError(f"unknown mode {mode!r}")


# --------------------------------------------------------------------------------------------
# N x M: (producer, seq, PAYLOAD, PI), None ends a consumer's stream


def produce_tagged(put, p: int, n: int) -> None:
    """put() producer *p*'s items 0..n-1."""
    for i in range(n):
        put((p, i, PAYLOAD, PI))


def consume_tagged(get, producers: int) -> dict:
    """get() until None, checking that each producer's items come in increasing order.
    Returns the time of the last item and, per producer, the count, sum and sum of squares
    of the sequence numbers received."""
    last = [-1] * producers
    cnt = [0] * producers
    s1 = [0] * producers
    s2 = [0] * producers
    t_end = None
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
    return {"t_end": t_end, "count": cnt, "s1": s1, "s2": s2}


# --------------------------------------------------------------------------------------------
# ping-pong


def ping_ends(sender: Ops, receiver: Ops, as_bytes: bool) -> Tuple[Callable, Callable]:
    """(send, recv) of a ping-pong side: bytes or objects."""
    return (sender.send, receiver.recv) if as_bytes else (sender.put, receiver.get)


def ping(send, recv, start: int, n: int, as_bytes: bool) -> array:
    """n round trips, each reply checked; returns each one's duration in nanoseconds."""
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


def pong(send, recv, n: int) -> int:
    """Echo n messages; returns how many were echoed."""
    done = 0
    for done in range(1, n + 1):
        send(recv())
    return done


# --------------------------------------------------------------------------------------------
# the variants


@dataclass
class Impl:
    """One implementation of a workload: a channel class and how it is driven."""
    name: str
    channel: Callable[["Variant"], C.Channel]
    mode: str                            # obj, batch, send, many, claim, claim-many, array, pp-obj, pp-bytes, mpmc
    requires: Optional[str] = None       # module(s) that must import, space-separated
    note: str = ""
    skip: str = ""                       # why this run does not measure it ("": it does)

    def needs(self) -> List[str]:
        """The modules that must import for this implementation to run."""
        return self.requires.split() if self.requires else []


@dataclass
class Variant:
    """One workload (a table of the report) and its implementations."""
    key: str
    kind: str                            # objects, batched, bytes, pingpong, mpmc, pools
    title: str
    impls: List[Impl]
    size: int = 0
    pilot: int = 1000
    min_count: int = 20
    max_count: Optional[int] = None      # before --scale
    pilots: int = 3                      # pilots of the calibrated size; the slowest decides
    baseline: str = BASELINE             # the row the others' ratios are to
    load: int = 0                        # busy processes running while it is measured


def _bytes_impls(size: int) -> List[Impl]:
    out = [
        Impl(BASELINE, C.MPQueueCh, "send", note="put(bytes)"),
        Impl("multiprocessing.Pipe send_bytes", C.PipeCh, "send"),
        Impl("ipcfast.Pipe send_bytes", C.IPipeCh, "send"),
        Impl("ipcfast.Queue put(bytes)", C.IQueueCh, "send", note="pickled, as users put them"),
        Impl("zmq PUSH/PULL send(bytes)", C.ZmqCh, "send", requires="zmq", note="ipc://"),
        Impl("ipcfast.Ring send_bytes", C.RingCh, "send"),
    ]
    if size <= 4 * KiB:
        out.append(Impl("ipcfast.Ring send_many", C.RingCh, "many",
                        note=f"batches of {many_batch(size)}"))
    out.append(Impl("ipcfast.Ring claim/view", C.RingCh, "claim", note="zero-copy"))
    if size <= 4 * KiB:
        out.append(Impl("ipcfast.Ring claim_many/view_many", C.RingCh, "claim-many",
                        note=f"zero-copy, batches of {many_batch(size)}"))
    return out


def build_variants(full: bool, remote: bool = False) -> List[Variant]:
    """Every workload, in report order; *full* measures every implementation at every size
    of the sweep and runs longer ping-pongs; *remote* adds the remote-queue workloads
    (bench/remote.py: they need a redis-server)."""
    obj_impls = [
        Impl(BASELINE, C.MPQueueCh, "obj"),
        Impl("multiprocessing.SimpleQueue", C.MPSimpleQueueCh, "obj"),
        Impl("multiprocessing.Pipe", C.PipeCh, "obj", note="send/recv"),
        Impl("ipcfast.Queue", C.IQueueCh, "obj"),
        Impl("ipcfast.SimpleQueue", C.ISimpleQueueCh, "obj"),
        Impl("ipcfast.Pipe", C.IPipeCh, "obj", note="send/recv"),
        Impl("faster_fifo.Queue", C.FasterFifoCh, "obj", requires="faster_fifo"),
        Impl("posix_ipc.MessageQueue", C.PosixMQCh, "obj", requires="posix_ipc", note="pickled"),
        Impl("zmq PUSH/PULL", C.ZmqCh, "obj", requires="zmq", note="ipc://, pickled"),
    ]
    batch_impls = [
        Impl(BASELINE, C.MPQueueCh, "obj", note="one per call"),
        Impl("multiprocessing.Queue put(list)", C.MPQueueCh, "batch", note=f"a list of {BATCH} per put"),
        Impl("ipcfast.Queue put_many/get_many", C.IQueueCh, "batch"),
        Impl("ipcfast.Queue put(list)", C.IQueueListCh, "batch", note=f"a list of {BATCH} per put"),
        Impl("faster_fifo.Queue put_many/get_many", C.FasterFifoCh, "batch", requires="faster_fifo"),
    ]
    pp_impls = [
        Impl(BASELINE, C.MPQueueCh, "pp-obj", note="a pair"),
        Impl("multiprocessing.Pipe", C.PipeCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Ring", C.RingCh, "pp-bytes", note=f"a pair, {PING_SIZE} B"),
        Impl("ipcfast.Queue", C.IQueueCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Pipe", C.IPipeCh, "pp-obj", note="a pair"),
        Impl("ipcfast.Mailbox", C.IMailboxCh, "pp-obj", note="a pair"),
        Impl("faster_fifo.Queue", C.FasterFifoCh, "pp-obj", requires="faster_fifo", note="a pair"),
        Impl("posix_ipc.MessageQueue", C.PosixMQCh, "pp-obj", requires="posix_ipc", note="a pair"),
        Impl("zmq PUSH/PULL", C.ZmqCh, "pp-obj", requires="zmq", note="a pair"),
    ]
    mpmc_impls = [
        Impl(BASELINE, C.MPQueueCh, "mpmc"),
        Impl("ipcfast.Queue", C.IQueueCh, "mpmc"),
        Impl("faster_fifo.Queue", C.FasterFifoCh, "mpmc", requires="faster_fifo"),
        Impl("posix_ipc.MessageQueue", C.PosixMQCh, "mpmc", requires="posix_ipc"),
    ]
    mailbox_impls = [
        Impl(BASELINE, C.MPQueueCh, "obj"),
        Impl("ipcfast.Mailbox", C.IMailboxCh, "obj", note="priority 1"),
        Impl("ipcfast.Mailbox send_many/recv_many", C.IMailboxCh, "batch",
             note=f"priority 1, {BATCH} per send_many"),
        Impl("posix_ipc.MessageQueue", C.PosixMQPrioCh, "obj", requires="posix_ipc",
             note="priority 1, pickled"),
    ]
    out = [
        Variant("objects", "objects",
                "Small objects, one per call: (seq, 'payload', 3.14), 1 producer -> 1 consumer",
                obj_impls, pilot=2000),
        Variant("batched", "batched",
                f"Small objects, batched ({BATCH} per put_many), 1 producer -> 1 consumer",
                batch_impls, pilot=5000),
    ]
    from .sweep import size_variants     # the payload-size sweep: bytes, numpy arrays
    out += size_variants(full)
    out.append(Variant("mailbox", "objects",
                       "Mailbox: small pickled tuples sent with a priority, one per call, 1 sender -> 1 receiver",
                       mailbox_impls, pilot=2000))
    out.append(Variant("pingpong", "pingpong",
                       "Ping-pong round trip: 2 processes bounce a small message",
                       pp_impls, pilot=300, min_count=2000,
                       max_count=60000 if full else 20000))
    from .percall import load_processes
    load = load_processes()
    out.append(Variant("pingpong-load", "pingpong",
                       f"Ping-pong under load: the same, while {load} busy process(es) (one per "
                       "CPU) compete for the CPUs",
                       [i for i in pp_impls if i.name not in ("faster_fifo.Queue",)],
                       pilot=300, min_count=1000, max_count=20000 if full else 5000, load=load))
    out.append(Variant(f"mpmc-{MPMC[0]}x{MPMC[1]}", "mpmc",
                       f"{MPMC[0]} producers x {MPMC[1]} consumers, small objects",
                       mpmc_impls, pilot=2000))
    from .pools import pool_variants     # Pool / ProcessPoolExecutor map: stock vs ipcfast
    out += pool_variants()
    if remote:
        from . import remote as _remote
        out += _remote.variants(BATCH)
    return out


VARIANT_KEYS = [v.key for v in build_variants(True, remote=True)]
