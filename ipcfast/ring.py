"""ipcfast.Ring: a named shared-memory byte ring (bytes in, bytes out, zero-copy views)."""
from __future__ import annotations

import contextlib
import queue as _queue
import time
import weakref
from typing import Iterable, Iterator, List, Optional

from . import _native as N
from ._native import ffi, lib
from ._units import fmt_size

_SCRATCH = 64 * 1024          # recv_bytes copies records up to this size in one call
_MANY_BYTES = 1 << 20         # recv_many moves at most this many bytes per call
_MANY_ITEMS = 1 << 15
_SLICE = N.SLICE_NS
_send = lib.ipcf_ring_send
_recv = lib.ipcf_ring_recv
_unpack = ffi.unpack


class Ring:
    """A bounded ring of variable-length byte messages in POSIX shared memory.

    ``Ring(capacity)`` creates a new segment (``ring.name``); ``Ring.attach(name)`` opens an
    existing one from any process. A Ring pickles to its name, so it can be handed to
    ``multiprocessing.Process`` under fork, spawn and forkserver.

    By default any number of producers and consumers (processes or threads) may share it;
    each side then serialises on a robust lock (a peer killed holding it cannot wedge the
    others). ``multi_producer=False`` / ``multi_consumer=False`` promise a single producer
    or consumer *thread* on that side and drop the lock: the side is then wait-free.

    The segment is removed when the last process that has it open closes it (or exits);
    ``unlink()`` removes the name at once.
    """

    _handles = N.HandleTable(lib.ipcf_ring_before_fork, lib.ipcf_ring_after_fork, lib.ipcf_ring_close)

    def __init__(self, capacity: int = 1 << 20, *, name: Optional[str] = None,
                 multi_producer: bool = True, multi_consumer: bool = True,
                 _flags: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise ValueError(f"capacity must be a positive int, not {capacity!r}")
        if capacity < lib.IPCF_MIN_CAPACITY or capacity > lib.IPCF_MAX_CAPACITY:
            raise ValueError(f"capacity {capacity} is outside {lib.IPCF_MIN_CAPACITY}.."
                             f"{lib.IPCF_MAX_CAPACITY} bytes")
        cap = 1 << (capacity - 1).bit_length()       # round up to a power of two
        flags = lib.IPCF_F_AUTO_UNLINK | _flags
        if multi_producer:
            flags |= lib.IPCF_F_MULTI_PRODUCER
        if multi_consumer:
            flags |= lib.IPCF_F_MULTI_CONSUMER
        name = N.new_name("ring") if name is None else name
        out = ffi.new("ipcf_ring **")
        N.check(lib.ipcf_ring_create(N.encode_name(name, "Ring"), cap, flags, out), "Ring", name)
        self._setup(out[0], name)

    @classmethod
    def attach(cls, name: str) -> "Ring":
        """Open the existing ring *name* (FileNotFoundError if there is none)."""
        self = cls.__new__(cls)
        out = ffi.new("ipcf_ring **")
        N.check(lib.ipcf_ring_attach(N.encode_name(name, "Ring"), out), "Ring", name)
        self._setup(out[0], name)
        return self

    def _setup(self, h, name: str) -> None:
        self._h = h
        # the memory is released only when no thread can be inside a call on it any more
        weakref.finalize(self, lib.ipcf_ring_free, h)
        self.name = name
        self._scratch = None
        self._many = None
        self.capacity = lib.ipcf_ring_capacity(h)
        self.max_message = lib.ipcf_ring_max_message(h)
        flags = lib.ipcf_ring_flags(h)
        self.multi_producer = bool(flags & lib.IPCF_F_MULTI_PRODUCER)
        self.multi_consumer = bool(flags & lib.IPCF_F_MULTI_CONSUMER)
        self._handles.add(self)

    # ---- lifetime ----
    def close(self) -> None:
        """Detach this handle: later calls raise ValueError, and calls blocked in other
        threads return with it. The last process to close a ring removes it. Idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            lib.ipcf_ring_close(h)

    def unlink(self) -> None:
        """Remove the ring's name now; processes that have it open keep using it."""
        try:
            N.check(lib.ipcf_seg_unlink(self.name.encode()), "Ring", self.name)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        # in transit until the receiver attaches: the ring outlives our close meanwhile
        lib.ipcf_ring_depart(self._live(), N.TRANSIT_NS)
        return (_arrive, (self.name, lib.ipcf_self_word()))

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"capacity={self.capacity}"
        return f"<ipcfast.Ring {self.name!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._h is None

    def _closed_error(self) -> ValueError:
        return ValueError(f"Ring {self.name!r} is closed")

    def _live(self):
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def _too_big(self, n: int) -> ValueError:
        return ValueError(f"message of {fmt_size(n, 'bytes')} exceeds this ring's maximum message of "
                          f"{fmt_size(self.max_message, 'bytes')} (capacity {fmt_size(self.capacity, 'bytes')})")

    # ---- state ----
    def __len__(self) -> int:
        """Messages held now (a snapshot; other processes may change it at once)."""
        return lib.ipcf_ring_count(self._live())

    def empty(self) -> bool:
        return lib.ipcf_ring_used(self._live()) == 0

    @property
    def used(self) -> int:
        """Bytes held now, record headers included."""
        return lib.ipcf_ring_used(self._live())

    # ---- producer ----
    def send_bytes(self, data, block: bool = True, timeout: Optional[float] = None) -> None:
        """Append one message (any bytes-like object). Blocks while the ring is full; raises
        queue.Full on timeout or, with block=False, at once."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if type(data) is bytes:
            n = len(data)
        else:
            data, n = N.as_buffer(data)
        rc = _send(h, data, n, _SLICE if block and timeout is None else N.first_slice(block, timeout))
        if rc:
            self._send_slow(rc, h, data, n, block, timeout)

    def _send_slow(self, rc: int, h, data, n: int, block: bool, timeout: Optional[float]) -> None:
        if rc == N.EFULL or rc == N.EINTR:
            rc = N.call_blocking(lambda t: _send(h, data, n, t), block, timeout, N.EFULL)
        if rc == N.ETOOBIG:
            raise self._too_big(n)
        N.check(rc, "Ring", self.name)

    def send_many(self, messages: Iterable, block: bool = True,
                  timeout: Optional[float] = None) -> int:
        """Append many messages with one call into C (one release publishes each run that
        fits). Returns how many were sent; on timeout raises queue.Full whose ``sent``
        attribute says how many went before it."""
        h = self._live()
        msgs = [m if type(m) is bytes else memoryview(m).tobytes() for m in messages]
        if not msgs:
            return 0
        lens = [len(m) for m in msgs]
        big = max(lens)
        if big > self.max_message:
            raise self._too_big(big)
        blob = b"".join(msgs)
        clens = ffi.new("uint64_t[]", lens)
        done = 0
        offset = 0
        sent = ffi.new("uint64_t *")

        def attempt(t: int) -> int:
            nonlocal done, offset
            rc = lib.ipcf_ring_send_many(h, (ffi.from_buffer(blob) + offset) if offset else blob,
                                         clens + done, len(msgs) - done, t, sent)
            k = sent[0]
            offset += sum(lens[done:done + k])
            done += k
            return rc

        rc = attempt(N.first_slice(block, timeout))
        if rc in (N.EFULL, N.EINTR):
            rc = N.call_blocking(attempt, block, timeout, N.EFULL)
        if rc == N.EFULL:
            exc = _queue.Full(f"ring full after {done} of {len(msgs)} messages")
            exc.sent = done
            raise exc
        N.check(rc, "Ring", self.name)
        return done

    @contextlib.contextmanager
    def claim(self, size: int, block: bool = True, timeout: Optional[float] = None) -> Iterator[memoryview]:
        """Reserve *size* bytes in the ring and yield a writable memoryview of them. The
        message is published when the block exits normally (with the full *size*; call
        :meth:`claim` with the exact size you need) and abandoned, never visible, if it
        raises. Other producers wait while a claim is open."""
        h = self._live()
        if size < 0:
            raise ValueError("size must be >= 0")
        if size > self.max_message:
            raise self._too_big(size)
        out = ffi.new("char **")
        rc = N.call_blocking(lambda t: lib.ipcf_ring_claim(h, size, t, out), block, timeout, N.EFULL)
        N.check(rc, "Ring", self.name)
        mv = memoryview(ffi.buffer(out[0], size))
        try:
            yield mv
        except BaseException:
            _release(mv)
            lib.ipcf_ring_abort(h)
            raise
        if not _release(mv):
            # an export of the claimed memory outlived the block: it could still change the
            # record after it is published, so it is not published
            lib.ipcf_ring_abort(h)
            raise BufferError("a buffer exported from the claimed memory is still alive; "
                              "the message was not sent")
        N.check(lib.ipcf_ring_commit(h, size), "Ring", self.name)

    # ---- consumer ----
    def recv_bytes(self, block: bool = True, timeout: Optional[float] = None) -> bytes:
        """Remove and return the oldest message. Blocks while the ring is empty; raises
        queue.Empty on timeout or, with block=False, at once."""
        h = self._h
        if h is None:
            raise self._closed_error()
        buf, self._scratch = self._scratch, None     # a thread racing us allocates its own
        if buf is None:
            buf = N.new_raw("char[]", _SCRATCH)
        n = _recv(h, buf, _SCRATCH, _SLICE if block and timeout is None else N.first_slice(block, timeout))
        if n >= 0:
            self._scratch = buf
            return _unpack(buf, n)
        return self._recv_slow(n, h, buf, block, timeout)

    def _recv_slow(self, n: int, h, buf, block: bool, timeout: Optional[float]) -> bytes:
        start = time.monotonic()
        if n == N.EEMPTY or n == N.EINTR:
            n = N.call_blocking(lambda t: _recv(h, buf, _SCRATCH, t), block, timeout, N.EEMPTY, start)
        self._scratch = buf
        if n >= 0:
            return _unpack(buf, n)
        if n == N.EBUFSMALL:
            # larger than the scratch buffer: copy it out in place. Another consumer may take
            # it first, so this waits for the next message like any blocking receive.
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            with self.view(block=block, timeout=left) as mv:
                return mv.tobytes()
        N.check(n, "Ring", self.name)
        raise AssertionError("unreachable")

    def recv_many(self, max_messages: int = 1 << 30, block: bool = True,
                  timeout: Optional[float] = None) -> List[bytes]:
        """Remove and return up to *max_messages* messages (at least one; up to about 1 MiB
        per call) with one call into C. Blocks like :meth:`recv_bytes` for the first."""
        h = self._live()
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        cap = _MANY_BYTES
        k = min(max_messages, _MANY_ITEMS)
        pair, self._many = self._many, None        # a thread racing us allocates its own
        buf, lens = pair or (N.new_raw("char[]", cap), N.new_raw("uint64_t[]", _MANY_ITEMS))
        try:
            n = N.call_blocking(lambda t: lib.ipcf_ring_recv_many(h, buf, cap, lens, k, t),
                                block, timeout, N.EEMPTY)
        finally:
            self._many = (buf, lens)
        if n == N.EBUFSMALL:          # the next message alone exceeds the batch buffer
            return [self.recv_bytes(block=block, timeout=timeout)]
        N.check(n, "Ring", self.name)
        sizes = ffi.unpack(lens, n)
        raw = ffi.unpack(buf, sum(sizes))       # copied out before another call reuses buf
        out = []
        o = 0
        for s in sizes:
            out.append(raw[o:o + s])
            o += s
        return out

    @contextlib.contextmanager
    def view(self, block: bool = True, timeout: Optional[float] = None) -> Iterator[memoryview]:
        """Yield a read-only memoryview of the oldest message in place (no copy); the message
        is removed when the block exits, or left for the next reader if it raises."""
        h = self._live()
        ptr = ffi.new("char **")
        ln = ffi.new("uint64_t *")
        rc = N.call_blocking(lambda t: lib.ipcf_ring_peek(h, t, ptr, ln), block, timeout, N.EEMPTY)
        N.check(rc, "Ring", self.name)
        mv = memoryview(ffi.buffer(ptr[0], ln[0])).toreadonly()
        try:
            yield mv
        except BaseException:
            _release(mv)
            lib.ipcf_ring_unpeek(h)      # the message stays for the next reader
            raise
        released = _release(mv)
        lib.ipcf_ring_release(h)
        if not released:
            raise BufferError("a buffer exported from the view is still alive; its bytes will "
                              "be overwritten by later messages")


def _arrive(name: str, sender: int) -> Ring:
    ring = Ring.attach(name)
    lib.ipcf_ring_arrive(ring._h, sender)
    return ring


def _release(mv: memoryview) -> bool:
    """Release *mv*; False if a buffer export of it is still alive."""
    try:
        mv.release()
        return True
    except BufferError:
        return False
