"""Pipe / Connection: direct communication, a drop-in for ``multiprocessing.Pipe``.

Each direction is one lock-free ring (ipcfast.Ring) that also records which processes hold
its sending and receiving ends, so ``recv`` raises EOFError once every sender has closed
(or died) and the ring is drained, and ``send`` raises BrokenPipeError on the first send
once every receiver has closed or died, as multiprocessing's (told in C from shared memory
with no syscall per send: a robust lock per reader end shows its holder's death, see
csrc/pipe.h). An end that is pickled (handed to a spawned child) or inherited by fork
counts as open while in transit, so the parent may close its copy at once, as with
multiprocessing.

A message larger than one record of the ring (as multiprocessing, there is no size limit)
goes as parts, each a record tagged IPCF_TAG_MORE (more follow) and/or IPCF_TAG_CONT (it
continues the message before): the reader joins them. The parts of a message are sent
under a per-Connection lock, so threads sharing an end do not interleave them; a reader
that meets a record which does not continue a half-received message (its sender died
mid-message) drops the half and starts over, so no caller ever sees a torn message.
"""
from __future__ import annotations

import errno
import threading
from multiprocessing import BufferTooShort
from typing import Any, Iterator, Optional, Tuple

from . import _native as N
from . import _pickle
from ._native import ffi, lib
from .ring import Ring

# The C functions of pipe ends, (ring handle, writer, reader, ...): the one place they are named.
_end_hold = lib.ipcf_pipe_hold          # (h, writer, reader): this process holds the end
_end_depart = lib.ipcf_pipe_depart      # (h, writer, reader, ttl_ns): the end is being pickled
_end_arrive = lib.ipcf_pipe_arrive      # (h, writer, reader, sender): the receiver has it

_MORE, _CONT = lib.IPCF_TAG_MORE, lib.IPCF_TAG_CONT
_send_part = lib.ipcf_ring_send_tagged
_last_tag = lib.ipcf_ring_last_tag


def _part_size(ring: Optional[Ring]) -> int:
    """Bytes in each part of a message too large for one record of *ring*: a quarter of
    the largest record, so the writer fills parts while the reader copies earlier ones."""
    return max(8, (ring.max_message // 4) & ~7) if ring is not None else -1


class Connection:
    """One end of a :func:`Pipe`. Same methods and errors as
    ``multiprocessing.connection.Connection``; :meth:`fileno` makes it usable with
    ``multiprocessing.connection.wait``, ``select`` and asyncio.

    It is built on two :class:`Ring` handles (``_rx`` it receives from, ``_tx`` it sends
    to, either None for a one-way end): the rings own the handles, their lifetime and the
    send/receive paths; the Connection adds which ends this process holds and
    multiprocessing's errors (EOFError, BrokenPipeError, OSError)."""

    def __init__(self, rx: Optional[Ring], tx: Optional[Ring]) -> None:
        self._adopt(rx, tx)
        for ring, writer, reader in self._ends():
            _end_hold(ring._live(), writer, reader)

    def _adopt(self, rx: Optional[Ring], tx: Optional[Ring]) -> None:
        self._rx = rx
        self._tx = tx
        self._readable = rx is not None
        self._writable = tx is not None
        self._closed = False
        self._part_rx = _part_size(rx)        # a received record of this size may be a part
        self._parts_lock = threading.Lock()

    def _ends(self) -> Iterator[Tuple[Ring, int, int]]:
        """(ring, writer, reader) for each end this Connection holds."""
        if self._rx is not None:
            yield self._rx, 0, 1
        if self._tx is not None:
            yield self._tx, 1, 0

    # ---- state ----
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def _check_closed(self) -> None:
        if self._closed:
            raise OSError("handle is closed")

    def _check_readable(self) -> None:
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self) -> None:
        if not self._writable:
            raise OSError("connection is read-only")

    def fileno(self) -> int:
        """A descriptor that polls readable while recv() would not block: a message is
        there, or the other end is closed (EOF), as a stdlib Connection's does, so
        ``multiprocessing.connection.wait`` works, also when the writer process is
        SIGKILLed (the descriptor is an epoll set that watches a pidfd of each writer,
        csrc/poll.c). OSError on a write-only end."""
        self._check_closed()
        self._check_readable()
        return self._rx.fileno()

    def close(self) -> None:
        """Close this end in this process. The peer sees EOF (or BrokenPipeError) once no
        process holds this end any more."""
        if self._closed:
            return
        self._closed = True
        for ring in (self._rx, self._tx):
            if ring is not None:
                ring.close()
        self._rx = self._tx = None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __reduce__(self):
        self._check_closed()
        me = lib.ipcf_self_word()
        for ring, writer, reader in self._ends():
            _end_depart(ring._live(), writer, reader, N.TRANSIT_NS)
            ring._departed(N.TRANSIT_NS)
        return (_rebuild, (self._rx.name if self._rx is not None else None,
                           self._tx.name if self._tx is not None else None, me))

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("duplex" if self._readable and self._writable
                                               else "read-only" if self._readable else "write-only")
        return f"<ipcfast.Connection {state}>"

    # ---- sending ----
    def send_bytes(self, buf, offset: int = 0, size: Optional[int] = None) -> None:
        """Send a bytes-like object (or the slice ``[offset:offset+size]`` of it) as one message."""
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = len(m)
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        data = m[offset:offset + size] if (offset or size != n) else m
        self._send(bytes(data) if not m.c_contiguous else data)

    def send(self, obj: Any) -> None:
        """Send a picklable object (pickled here: an error is raised here)."""
        self._check_closed()
        self._check_writable()
        self._send(_pickle.dumps(obj))

    def _send(self, data) -> None:
        tx = self._tx
        payload, n = N.as_buffer(data)
        if n > tx.max_message:
            return self._send_parts(data, n)
        if tx._send(payload, n, True, None):          # IPCF_ECLOSED: no receiver is left
            raise BrokenPipeError(errno.EPIPE, "the other end of the pipe is closed")

    def _send_parts(self, data, n: int) -> None:
        """Send a message larger than one record as tagged parts (see the module doc)."""
        tx = self._tx
        h = tx._live()
        size = _part_size(tx)
        with self._parts_lock, memoryview(data) as m:
            m = m.cast("B") if m.format != "B" or m.ndim != 1 else m
            for off in range(0, n, size):
                tag = (_MORE if off + size < n else 0) | (_CONT if off else 0)
                part = ffi.from_buffer(m[off:off + size])
                k = len(part)
                rc = N.call_blocking(lambda t: _send_part(h, part, k, tag, t), True, None, N.EFULL)
                if rc == N.ECLOSED:
                    raise BrokenPipeError(errno.EPIPE, "the other end of the pipe is closed")
                tx._check(rc)

    # ---- receiving ----
    def _recv(self) -> bytes:
        rx = self._rx
        data = rx._recv(True, None)
        if data is None:                              # IPCF_ECLOSED: no sender, nothing left
            raise EOFError
        if len(data) == self._part_rx and _last_tag(rx._live()) & _MORE:
            return self._recv_parts(rx, data)
        return data

    def _recv_parts(self, rx: Ring, first: bytes) -> bytes:
        """The rest of a message sent in parts, joined (see the module doc)."""
        parts = [first]
        while True:
            data = rx._recv(True, None)
            if data is None:          # the sender went away mid-message: none of it is seen
                raise EOFError
            tag = _last_tag(rx._live())
            if tag & _CONT:
                parts.append(data)
            else:                     # a new message: the half one's sender died mid-send
                parts = [data]
            if not tag & _MORE:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        """Receive one message as bytes; blocks until there is one. EOFError when the other
        end is closed and nothing is left."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._recv()
        if maxlength is not None and len(data) > maxlength:
            self._bad_message_length()
        return data

    def _bad_message_length(self) -> None:
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    def recv_bytes_into(self, buf, offset: int = 0) -> int:
        """Receive one message into a writable buffer at byte *offset*; returns its size.
        BufferTooShort (carrying the message) if it does not fit."""
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            if offset > bytesize:
                raise ValueError("offset too large")
            data = self._recv()
            size = len(data)
            if bytesize < offset + size:
                raise BufferTooShort(data)
            m.cast("B")[offset:offset + size] = data
            return size

    def recv(self) -> Any:
        """Receive one object sent with :meth:`send`."""
        self._check_closed()
        self._check_readable()
        return _pickle.loads(self._recv())

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """True if there is something to read (or the other end is gone, so recv raises
        EOFError), waiting up to *timeout* seconds (None: forever)."""
        self._check_closed()
        self._check_readable()
        # a negative timeout polls once, as multiprocessing's does
        return self._rx._poll(N.timeout_arg(timeout, negative_is_zero=True))


def _rebuild(rx: Optional[str], tx: Optional[str], sender: int) -> Connection:
    c = Connection.__new__(Connection)
    c._adopt(Ring.attach(rx) if rx else None, Ring.attach(tx) if tx else None)
    for ring, writer, reader in c._ends():
        _end_arrive(ring._live(), writer, reader, sender)
    return c


def Pipe(duplex: bool = True, *, capacity: int = 1 << 20) -> Tuple[Connection, Connection]:
    """Return a pair of connected :class:`Connection` objects, like ``multiprocessing.Pipe``:
    with ``duplex=False`` the first can only receive and the second only send. *capacity*
    is the byte size of each direction's ring (the largest message is a little smaller)."""
    flags = lib.IPCF_F_PIPE
    a = Ring(capacity, _flags=flags)              # second end -> first end
    if duplex:
        b = Ring(capacity, _flags=flags)          # first end -> second end
        return Connection(a, b), Connection(Ring.attach(b.name), Ring.attach(a.name))
    return Connection(a, None), Connection(None, Ring.attach(a.name))
