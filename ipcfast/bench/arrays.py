"""numpy float32 arrays through the queues: the loops that send and check them, and the
channels that carry them as their users would write it. numpy is optional: it is imported
by the loops, never by this module, so the variants are skipped (with a reason) without it.

Each array is the *size*-byte template (:func:`.messages.template`) seen as float32, with
the sequence number (modulo 2**24, which float32 holds exactly) stamped into its first and
last element. The consumer checks every array's class, dtype, shape and both stamps (count,
order, no torn or stale array), and compares the whole content byte for byte on the first,
the last and every 8th array (the check costs at most an eighth of a copy per array).
"""
from __future__ import annotations

import struct
import time
from typing import Any

from . import channels as C
from .channels import Ops
from .messages import CheckError, Received, template

STAMP_MOD = 1 << 24          # float32 holds every integer below this exactly
EVERY = 8                    # full compare of every 8th array (first and last too)
_F32 = struct.Struct("=f")


def array_template(size: int):
    """A fresh float32 array of *size* bytes holding the template's bytes."""
    import numpy as np
    if size < 8 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and at least 8, got {size}")
    return np.frombuffer(template(size), dtype=np.float32).copy()


def produce_arrays(put, start: int, n: int, size: int) -> None:
    """put() arrays start..start+n-1; put must have copied (or pickled) the array when it
    returns (the next message reuses it)."""
    a = array_template(size)
    last = a.shape[0] - 1
    for i in range(start, start + n):
        f = i % STAMP_MOD
        a[0] = f
        a[last] = f
        put(a)


class _ArrayChecker:
    """Checks arrays: the fields on every one, the whole content when sampled."""

    def __init__(self, size: int, start: int, n: int) -> None:
        import numpy as np
        self.ndarray, self.dtype = np.ndarray, np.dtype(np.float32)
        self.size, self.shape = size, (size // 4,)
        self.exp = bytearray(template(size))

    def full(self, a, i: int) -> None:
        f = i % STAMP_MOD
        _F32.pack_into(self.exp, 0, f)
        _F32.pack_into(self.exp, self.size - 4, f)
        if not a.flags.c_contiguous:
            raise CheckError(f"array {i}: not C-contiguous")
        if self.exp != memoryview(a).cast("B"):
            raise CheckError(f"array {i}: content differs from what was sent")

    def fail(self, a, i: int) -> None:
        if a.__class__ is not self.ndarray:
            raise CheckError(f"array {i}: got a {type(a).__name__}, expected a numpy.ndarray")
        if a.dtype != self.dtype:
            raise CheckError(f"array {i}: dtype {a.dtype}, expected float32")
        if a.shape != self.shape:
            raise CheckError(f"array {i}: shape {a.shape}, expected {self.shape}")
        raise CheckError(f"array {i}: carries sequence numbers {float(a[0])!r} / "
                         f"{float(a[-1])!r}, expected {i % STAMP_MOD}")


def consume_arrays(get, start: int, n: int, size: int) -> Received:
    """get() arrays start..start+n-1, checking each (see the module docstring)."""
    ck = _ArrayChecker(size, start, n)
    nd, dt, shape, full, fail = ck.ndarray, ck.dtype, ck.shape, ck.full, ck.fail
    last, lastseq = shape[0] - 1, start + n - 1
    t_first = None
    s = nbytes = 0
    i = start - 1
    for i in range(start, start + n):
        a = get()
        f = i % STAMP_MOD
        if a.__class__ is not nd or a.dtype != dt or a.shape != shape or a[0] != f \
                or a[last] != f:
            fail(a, i)
        if not (i - start) % EVERY or i == lastseq:
            full(a, i)
        s += i
        nbytes += a.nbytes
        if t_first is None:
            t_first = time.perf_counter()
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start + 1, s, nbytes)


# --------------------------------------------------------------------------------------------
# channels (ipcfast.Queue needs none of its own: put(a) pickles the array before it returns)


class MPQueueArrayCh(C.MPQueueCh):
    """multiprocessing.Queue carrying arrays: put(a.copy()), since its feeder thread pickles
    the array after put returns (the producer reuses it)."""

    def sender(self) -> Ops:
        ops = super().sender()
        put = self.q.put
        ops.put = lambda a: put(a.copy())
        return ops


class ZmqArrayCh(C.ZmqCh):
    """pyzmq PUSH/PULL carrying arrays with the send_array/recv_array recipe of pyzmq's
    documentation: a json frame (dtype, shape), then the array's buffer (send copies it
    before it returns); the receiver rebuilds it with np.frombuffer(recv()).reshape()."""

    def sender(self) -> Ops:
        import zmq
        ops = super().sender()
        sock = ops.send.__self__              # the connected PUSH socket
        send, send_json, more = sock.send, sock.send_json, zmq.SNDMORE

        def send_array(a: Any) -> None:
            send_json({"dtype": str(a.dtype), "shape": a.shape}, more)
            send(a)
        ops.put = send_array
        return ops

    def receiver(self) -> Ops:
        import numpy as np
        ops = super().receiver()
        sock = ops.recv.__self__              # the bound PULL socket
        recv, recv_json, frombuffer = sock.recv, sock.recv_json, np.frombuffer

        def recv_array() -> Any:
            md = recv_json()
            return frombuffer(recv(), dtype=md["dtype"]).reshape(md["shape"])
        ops.get = recv_array
        return ops
