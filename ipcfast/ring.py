"""ipcfast.Ring: a named shared-memory byte ring (bytes in, bytes out, zero-copy views)."""
from __future__ import annotations

import itertools
import queue as _queue
import time
from typing import Iterable, List, Optional, Tuple

from . import _native as N
from ._handle import SCRATCH as _SCRATCH, Handle, Kind, new_recv_scratch as _new_recv_scratch
from ._native import ffi, lib
from ._inplace import _KEPT, Claim, ClaimMany, View, ViewMany, prune_kept
from ._units import fmt_size

_SLICE = N.SLICE_NS
_send = lib.ipcf_ring_send
_recv = lib.ipcf_ring_recv
_recv1 = lib.ipcf_ring_recv1
_peek = lib.ipcf_ring_peek
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer
_accumulate = itertools.accumulate
_types = lambda msgs: set(map(type, msgs))      # noqa: E731 (one C pass over a batch)
_ONLY_BYTES = {bytes}


def ring_capacity(capacity) -> int:
    """The byte size of a ring asked for as *capacity*: rounded up to a power of two.
    ValueError if it is not an int within IPCF_MIN_CAPACITY..IPCF_MAX_CAPACITY."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise ValueError(f"capacity must be a positive int, not {capacity!r}")
    if capacity < lib.IPCF_MIN_CAPACITY or capacity > lib.IPCF_MAX_CAPACITY:
        raise ValueError(f"capacity {capacity} is outside {lib.IPCF_MIN_CAPACITY}.."
                         f"{lib.IPCF_MAX_CAPACITY} bytes")
    return 1 << (capacity - 1).bit_length()


class Ring(Handle):
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

    _kind = Kind(
        out_type="ipcf_ring **",
        create=lib.ipcf_ring_create,
        attach=lib.ipcf_ring_attach,
        close=lib.ipcf_ring_close,
        free=lib.ipcf_ring_free,
        before_fork=lib.ipcf_ring_before_fork,
        after_fork=lib.ipcf_ring_after_fork,
        depart=lib.ipcf_ring_depart,
        arrive=lib.ipcf_ring_arrive,
        poller=lib.ipcf_ring_poller,
    )
    _POLL_RECEIVES = ("recv_bytes", "recv_many", "_recv", "_poll")   # re-arm fileno() after
    _BATCH_BYTES = 1 << 20        # recv_many moves at most this many bytes per call
    _BATCH_ITEMS = 1 << 15

    def __init__(self, capacity: int = 1 << 20, *, name: Optional[str] = None,
                 multi_producer: bool = True, multi_consumer: bool = True,
                 _flags: int = 0) -> None:
        cap = ring_capacity(capacity)
        flags = lib.IPCF_F_AUTO_UNLINK | _flags
        if multi_producer:
            flags |= lib.IPCF_F_MULTI_PRODUCER
        if multi_consumer:
            flags |= lib.IPCF_F_MULTI_CONSUMER
        self._open(N.new_name("ring") if name is None else name, (cap, flags))

    @classmethod
    def attach(cls, name: str) -> "Ring":
        """Open the existing ring *name* (FileNotFoundError if there is none)."""
        return cls._attach(name)

    def _setup(self) -> None:
        h = self._h
        if _KEPT:
            prune_kept()              # rings whose kept views have all gone may be freed now
        self.capacity = lib.ipcf_ring_capacity(h)
        self.max_message = lib.ipcf_ring_max_message(h)
        flags = lib.ipcf_ring_flags(h)
        self.multi_producer = bool(flags & lib.IPCF_F_MULTI_PRODUCER)
        self.multi_consumer = bool(flags & lib.IPCF_F_MULTI_CONSUMER)
        # out-arguments of claim and view: one of each per handle is enough, since a second
        # claim (view) cannot succeed, and so write them, before the first is committed
        # (released) - the side is held in between
        self._out = ffi.new("char **")
        self._ptr = ffi.new("char **")
        self._len = ffi.new("uint64_t *")
        self._many_lens = None            # view_many's lengths, allocated at first use

    # ---- lifetime (close, closed, context manager, pickling: Handle) ----
    def unlink(self) -> None:
        """Remove the ring's name now; processes that have it open keep using it."""
        self._unlink()

    def _describe(self) -> Tuple[str, ...]:
        return () if self._h is None else (f"capacity={self.capacity}",)

    def _too_big(self, n: int, what: str = "ring") -> ValueError:
        return ValueError(f"message of {fmt_size(n, 'bytes')} exceeds this {what}'s maximum message "
                          f"of {fmt_size(self.max_message, 'bytes')} (capacity "
                          f"{fmt_size(self.capacity, 'bytes')})")

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
        queue.Full on timeout or, with block=False, at once; ValueError if it is larger than
        ``max_message`` or the ring is closed."""
        h = self._h                       # the closed check (Handle._live), inline
        if h is None:
            raise self._closed_error()
        if type(data) is not bytes:
            data = _from_buffer(data)         # N.as_buffer, inline
        n = len(data)
        rc = _send(h, data, n, _SLICE if block and timeout is None else N.first_slice(block, timeout))
        if rc and self._send_rest(rc, h, data, n, block, timeout):
            raise self._closed_error()

    def _send(self, data, n: int, block: bool, timeout: Optional[float]) -> int:
        """Send *data* (a ``const char *`` argument of *n* bytes, see ``as_buffer``) like
        :meth:`send_bytes`, but return ``IPCF_ECLOSED`` instead of raising it: the caller
        says what closed means (for a Pipe, that no receiver is left). Returns 0 when sent."""
        h = self._h                       # as in send_bytes: Handle._live, inline
        if h is None:
            raise self._closed_error()
        rc = _send(h, data, n, _SLICE if block and timeout is None else N.first_slice(block, timeout))
        return self._send_rest(rc, h, data, n, block, timeout) if rc else 0

    def _send_rest(self, rc: int, h, data, n: int, block: bool, timeout: Optional[float]) -> int:
        """The slow path after a first try returned *rc*: wait while the ring is full.
        Returns 0 or IPCF_ECLOSED; raises queue.Full, ValueError (too big) and the rest."""
        if rc == N.EFULL or rc == N.EINTR:
            rc = N.call_blocking(lambda t: _send(h, data, n, t), block, timeout, N.EFULL)
        if rc == N.ETOOBIG:
            raise self._too_big(n)
        if rc == 0 or rc == N.ECLOSED:
            return rc
        self._check(rc)
        raise AssertionError(f"unexpected result {rc}")

    def send_many(self, messages: Iterable, block: bool = True,
                  timeout: Optional[float] = None) -> int:
        """Append many messages with one call into C (one release publishes each run that
        fits). Returns how many were sent; on timeout raises queue.Full whose ``sent``
        attribute says how many went before it."""
        h = self._live()
        msgs = messages if type(messages) is list else list(messages)
        if not msgs:
            return 0
        if _types(msgs) != _ONLY_BYTES:       # len() of a non-bytes buffer need not be bytes
            msgs = [m if type(m) is bytes else memoryview(m).tobytes() for m in msgs]
        lens = list(map(len, msgs))
        big = max(lens)
        if big > self.max_message:
            raise self._too_big(big)
        blob = b"".join(msgs)
        clens = ffi.new("uint64_t[]", lens)
        sent = ffi.new("uint64_t *")     # per call: threads may send_many on one handle at once
        # the first try without the closure and bookkeeping of the waiting path below
        rc = lib.ipcf_ring_send_many(h, blob, clens, len(msgs), N.first_slice(block, timeout), sent)
        done = sent[0]
        if rc == 0:
            return done
        offset = sum(lens[:done])

        def attempt(t: int) -> int:
            nonlocal done, offset
            rc = lib.ipcf_ring_send_many(h, (ffi.from_buffer(blob) + offset) if offset else blob,
                                         clens + done, len(msgs) - done, t, sent)
            k = sent[0]
            offset += sum(lens[done:done + k])
            done += k
            return rc

        if rc in (N.EFULL, N.EINTR):
            rc = N.call_blocking(attempt, block, timeout, N.EFULL)
        if rc == N.EFULL:
            exc = _queue.Full(f"ring full after {done} of {len(msgs)} messages")
            exc.sent = done
            raise exc
        self._check(rc)
        return done

    def claim(self, size: int, block: bool = True, timeout: Optional[float] = None) -> Claim:
        """``with ring.claim(size) as mv``: reserve *size* bytes in the ring and get a
        writable memoryview of them. The message is published when the block exits
        normally (with the full *size*; claim the exact size you need) and abandoned,
        never visible, if it raises. Other producers wait while a claim is open."""
        return Claim(self, size, block, timeout)

    def claim_many(self, sizes: Iterable[int], block: bool = True,
                   timeout: Optional[float] = None) -> ClaimMany:
        """``with ring.claim_many(sizes) as views``: reserve one message per size, back to
        back, and get a writable memoryview of each; all are published together when the
        block exits normally, none if it raises. ValueError if they cannot fit the ring at
        once."""
        return ClaimMany(self, sizes, block, timeout)

    # ---- consumer ----
    def recv_bytes(self, block: bool = True, timeout: Optional[float] = None) -> bytes:
        """Remove and return the oldest message. Blocks while the ring is empty; raises
        queue.Empty on timeout or, with block=False, at once; ValueError once closed."""
        h = self._h                       # the closed check (Handle._live), inline
        if h is None:
            raise self._closed_error()
        sc, self._scratch = self._scratch, None      # Handle._take_scratch, inline
        if sc is None:
            sc = _new_recv_scratch(h)                # (buffer, view, its one-argument call)
        buf = sc[0]
        n = _recv1(sc[2]) if block and timeout is None else _recv(h, buf, _SCRATCH, N.first_slice(block, timeout))
        if n >= 0:
            data = _unpack(buf, n)
            self._scratch = sc                       # given back once copied out
            return data
        data = self._recv_rest(n, h, sc, block, timeout)
        if data is None:
            raise self._closed_error()
        return data

    def _recv(self, block: bool, timeout: Optional[float]) -> Optional[bytes]:
        """Receive like :meth:`recv_bytes`, but return None instead of raising for
        ``IPCF_ECLOSED``: the caller says what closed means (for a Pipe, end of file)."""
        h = self._h                       # as in recv_bytes: Handle._live, inline
        if h is None:
            raise self._closed_error()
        sc, self._scratch = self._scratch, None      # Handle._take_scratch, inline
        if sc is None:
            sc = _new_recv_scratch(h)                # (buffer, view, its one-argument call)
        buf = sc[0]
        n = _recv1(sc[2]) if block and timeout is None else _recv(h, buf, _SCRATCH, N.first_slice(block, timeout))
        if n >= 0:
            data = _unpack(buf, n)
            self._scratch = sc                       # given back once copied out
            return data
        return self._recv_rest(n, h, sc, block, timeout)

    def _recv_rest(self, n: int, h, sc, block: bool, timeout: Optional[float]) -> Optional[bytes]:
        """The slow path after a first try into the scratch *sc* (new_recv_scratch)
        returned *n*: wait while the ring is empty, or copy a message larger than the
        scratch buffer out in place. Gives *sc* back; returns the message, or None for
        IPCF_ECLOSED; raises the rest."""
        start = time.monotonic()
        buf = sc[0]
        if n == N.EEMPTY or n == N.EINTR:
            n = N.call_blocking(lambda t: _recv(h, buf, _SCRATCH, t), block, timeout, N.EEMPTY, start)
        if n >= 0:
            data = _unpack(buf, n)
            self._give_scratch(sc)
            return data
        self._give_scratch(sc)                # nothing was copied into it
        if n == N.EBUFSMALL:
            # larger than the scratch buffer: copy it out in place. Another consumer may take
            # it first, so this waits for the next message like any blocking receive.
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            got = self._peek(h, block, left)
            if got is None:
                return None
            try:
                data = _unpack(got[0], got[1])
            except BaseException:
                lib.ipcf_ring_unpeek(h)       # the message stays for the next reader
                raise
            lib.ipcf_ring_release(h)
            return data
        if n == N.ECLOSED:
            return None
        self._check(n)
        raise AssertionError(f"unexpected result {n}")

    def _peek(self, h, block: bool, timeout: Optional[float]):
        """Wait for the oldest message and hold it in place: (pointer, length), or None for
        IPCF_ECLOSED. The caller must end it with ipcf_ring_release or ipcf_ring_unpeek."""
        ptr = ffi.new("char **")
        ln = ffi.new("uint64_t *")
        rc = N.call_blocking(lambda t: _peek(h, t, ptr, ln), block, timeout, N.EEMPTY)
        if rc == N.ECLOSED:
            return None
        self._check(rc)
        return ptr[0], ln[0]

    def recv_many(self, max_messages: int = 1 << 30, block: bool = True,
                  timeout: Optional[float] = None) -> List[bytes]:
        """Remove and return up to *max_messages* messages (at least one; up to about 1 MiB
        per call) with one call into C. Blocks like :meth:`recv_bytes` for the first."""
        h = self._live()
        N.int_arg(max_messages, "max_messages", 1, 1 << 63)
        cap = self._BATCH_BYTES
        k = min(max_messages, self._BATCH_ITEMS)
        pair = self._take_batch()
        buf, lens = pair
        try:
            n = N.call_blocking(lambda t: lib.ipcf_ring_recv_many(h, buf, cap, lens, k, t),
                                block, timeout, N.EEMPTY)
            if n >= 0:
                sizes = ffi.unpack(lens, n)
                raw = _unpack(buf, sum(sizes))
        finally:
            self._give_batch(pair)            # copied out (or nothing was) before it goes back
        if n == N.EBUFSMALL:          # the next message alone exceeds the batch buffer
            return [self.recv_bytes(block=block, timeout=timeout)]
        self._check(n)
        # the slices made in C: map/slice/accumulate, no bytecode per message
        return list(map(raw.__getitem__, map(slice, _accumulate(sizes, initial=0), _accumulate(sizes))))

    def view(self, block: bool = True, timeout: Optional[float] = None) -> View:
        """``with ring.view() as mv``: a read-only memoryview of the oldest message in place
        (no copy); the message is removed when the block exits, or left for the next
        reader if it raises."""
        return View(self, block, timeout)

    def view_many(self, max_messages: int = 1 << 30, block: bool = True,
                  timeout: Optional[float] = None) -> ViewMany:
        """``with ring.view_many(n) as views``: read-only memoryviews of up to *n* of the
        oldest messages in place (at least one; waits like :meth:`view` for the first); all
        are removed when the block exits, or left for the next reader if it raises."""
        return ViewMany(self, max_messages, block, timeout)

    # ---- for Connection (pipe.py): the pipe rings' end tracking and readiness ----
    def _poll(self, timeout: Optional[float]) -> bool:
        """Wait up to *timeout* seconds (None: forever) until there is a message or, on a
        pipe ring, no writer is left. ValueError if closed."""
        h = self._live()
        return self._check(N.call_blocking(lambda t: lib.ipcf_ring_poll(h, t), True, timeout, 0)) == 1


