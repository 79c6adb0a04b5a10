"""ipcfast.aio: asyncio versions of ipcfast's classes (the ``zmq.asyncio`` convention).

Each class wraps a sync handle and has coroutine methods of the same names for the calls
that may block; everything else (``qsize``, ``task_done``, ``close``, ``name``, ...) is the
sync handle's, reached through attribute access::

    aq = ipcfast.aio.Queue()
    await aq.put(x)
    await aq.get()
    aq2 = ipcfast.aio.wrap(sync_queue)     # or ipcfast.aio.Queue.from_sync(sync_queue)

How it waits: no thread per waiter. A blocking call first tries the sync call without
blocking; if it would block, it awaits the handle's file descriptor (``Handle.fileno``; a
second poller on the "space" event for sends, and one on the "join" event) with
``loop.add_reader`` and tries again. The message is taken only by that non-blocking call,
after the await, so a cancelled ``get``/``recv`` (``asyncio.wait_for``, ``Task.cancel``)
never loses one: the next receive gets it. ``timeout=`` raises what the sync call raises
(``queue.Empty``/``queue.Full``); ``asyncio.wait_for`` works as well.

The descriptor may be spuriously readable (another consumer took the message, or a
mailbox message is not for this receiver, or a queue is bounded by bytes): a try that
fails right after the descriptor said "ready" backs off with ``asyncio.sleep`` (0.5 ms
doubling to 50 ms) instead of spinning. Known limits: a Pipe message larger than one ring
record is received (sent) with the sync call once its first part arrived (there is room),
which may block the loop while the rest streams; Connection ends and Mailbox sends have no
space poller, so ``Connection.send`` awaits room for the message and then sends with the
sync call (a second sender could take the room first and make it block), and
``Mailbox.send`` retries with the back-off above. A wait also re-checks once a second
without a wake-up: a sync handle closed under the loop, or a pipe reader killed while the
ring is full (a writer's death wakes the reader's descriptor: csrc/poll.c), wakes nothing.
"""
from __future__ import annotations

import asyncio
import errno
import queue as _queue
import weakref
from typing import Any, Dict, Optional, Tuple

from . import _pickle
from . import _poll as P
from . import mailbox as _mailbox
from . import pipe as _pipe
from . import queue as _q
from . import ring as _ring
from ._native import lib

_BACKOFF_FIRST, _BACKOFF_MAX = 0.0005, 0.05
#: the watches of each poller (so of each descriptor), by loop: every aio wrapper of one
#: handle shares them, since a descriptor has one add_reader callback per loop
_WATCHES: "weakref.WeakKeyDictionary[P.Poller, Dict[int, _Watch]]" = weakref.WeakKeyDictionary()


class _Watch:
    """The waiters of one descriptor on one loop: one add_reader for all of them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop, self.fd, self.waiters = loop, fd, set()

    def _fire(self) -> None:
        waiters, self.waiters = self.waiters, set()
        self.loop.remove_reader(self.fd)
        for f in waiters:
            if not f.done():
                f.set_result(None)

    async def wait(self, recheck: Optional[float]) -> None:
        f = self.loop.create_future()
        if not self.waiters:
            self.loop.add_reader(self.fd, self._fire)
        self.waiters.add(f)
        try:
            if recheck is None:
                await f
            else:
                await asyncio.wait([f], timeout=recheck)
        finally:
            self.waiters.discard(f)
            if not self.waiters:
                self.loop.remove_reader(self.fd)

    def close(self) -> None:
        self._fire()


class _Async:
    """Base: the sync handle ``_sync`` whose descriptors we await (``_handle``: the
    ipcfast Handle that owns them), attribute access forwarded to the sync object."""

    _SYNC: Any = None
    #: seconds between re-checks without a wake-up: a handle closed by another thread (its
    #: descriptor closed under the loop) or a pipe peer killed without closing wakes nobody
    _recheck: Optional[float] = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._adopt(self._SYNC(*args, **kwargs))

    @classmethod
    def from_sync(cls, obj: Any):
        """Wrap an existing sync handle (it stays usable on its own)."""
        if not isinstance(obj, cls._SYNC):
            raise TypeError(f"{cls.__name__}.from_sync takes an ipcfast.{cls._SYNC.__name__}, "
                            f"not {type(obj).__name__}")
        self = cls.__new__(cls)
        self._adopt(obj)
        return self

    def _adopt(self, obj: Any) -> None:
        self._sync = obj

    @property
    def sync(self) -> Any:
        """The sync handle this wraps."""
        return self._sync

    def _handle(self, what: int):
        return self._sync

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_sync":
            raise AttributeError(name)
        return getattr(self._sync, name)

    def __reduce__(self):
        return (wrap, (self._sync,))

    def __repr__(self) -> str:
        return f"<ipcfast.aio {repr(self._sync)[1:]}"

    def fileno(self) -> int:
        return self._sync.fileno()

    def close(self) -> None:
        """Close the sync handle; pending waits wake and see it closed."""
        handles = {id(h): h for h in (self._handle_or_none(w) for w in (P.DATA, P.SPACE, P.JOIN))
                   if h is not None}
        for h in handles.values():
            for p in list(getattr(h, "_pollers", {}).values()):
                for w in list(_WATCHES.pop(p, {}).values()):
                    w.close()
        self._sync.close()

    def _handle_or_none(self, what: int):
        try:
            return self._handle(what)
        except (OSError, ValueError):
            return None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- waiting ----
    async def _ready(self, what: int, need: int = 0) -> bool:
        """Return once the *what* operation may not block: True if it looked ready at
        once (no wait: a failing try after it is spurious), False after a wake-up."""
        p = self._handle(what)._poller(what)
        if p.rearm(need):
            return True
        loop = asyncio.get_running_loop()
        watches = _WATCHES.setdefault(p, {})
        w = watches.get(id(loop))
        if w is None or w.loop is not loop:
            w = watches[id(loop)] = _Watch(loop, p.fd)
        await w.wait(self._recheck)
        return False

    async def _retry(self, attempt, what: int, need: int, fail: type, timeout: Optional[float]):
        """Run *attempt* (non-blocking: returns or raises *fail*) until it succeeds,
        awaiting readiness in between; *fail* after *timeout* seconds."""
        if timeout is None:
            return await self._loop_until(attempt, what, need, fail)
        try:
            return await asyncio.wait_for(self._loop_until(attempt, what, need, fail), timeout)
        except asyncio.TimeoutError:
            raise fail() from None

    async def _loop_until(self, attempt, what: int, need: int, fail: type):
        delay = _BACKOFF_FIRST
        while True:
            try:
                return attempt()
            except fail:
                pass
            if await self._ready(what, need):     # "ready" yet the try failed: spurious
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            else:
                delay = _BACKOFF_FIRST


class Queue(_Async):
    """``ipcfast.Queue`` with ``await put(obj)``, ``await get()``, ``await get_many()``."""

    _SYNC = _q.Queue

    async def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        q = self._sync
        if not block:
            return q.put(obj, False)
        try:
            return q.put(obj, False)
        except _queue.Full:
            pass
        # a byte bound: the space descriptor is ready once this item's size fits
        need = _pickled_size(q, obj) if q.max_bytes else 0
        return await self._retry(lambda: q.put(obj, False), P.SPACE, need, _queue.Full, timeout)

    async def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        q = self._sync
        if not block:
            return q.get(False)
        return await self._retry(lambda: q.get(False), P.DATA, 0, _queue.Empty, timeout)

    async def get_many(self, block: bool = True, timeout: Optional[float] = None,
                       max_messages_to_get: int = 1_000_000_000):
        q = self._sync

        def attempt():
            return q.get_many(False, max_messages_to_get=max_messages_to_get)
        if not block:
            return attempt()
        return await self._retry(attempt, P.DATA, 0, _queue.Empty, timeout)

    async def put_many(self, objs, block: bool = True, timeout: Optional[float] = None) -> None:
        q, objs = self._sync, list(objs)
        if not block:
            return q.put_many(objs, False)
        await self._retry(lambda: q.put_many(objs, False), P.SPACE, 0, _queue.Full, timeout)


def _pickled_size(q, obj) -> int:
    """How many bytes *obj* takes in queue *q* (its own dumps: bytes or a list of pieces)."""
    data = q._dumps(obj)
    if data.__class__ is list:
        return sum(memoryview(p).nbytes for p in data)
    return memoryview(data).nbytes


class JoinableQueue(Queue):
    """``ipcfast.JoinableQueue`` with ``await join()`` as well."""

    _SYNC = _q.JoinableQueue

    async def join(self) -> None:
        """Wait until every item put has been marked done with task_done()."""
        q = self._sync

        def attempt():
            if lib.ipcf_queue_unfinished(q._live()) != 0:
                raise _queue.Empty
        await self._retry(attempt, P.JOIN, 0, _queue.Empty, None)


class SimpleQueue(_Async):
    """``ipcfast.SimpleQueue`` with ``await put(obj)`` and ``await get()``."""

    _SYNC = _q.SimpleQueue

    def _handle(self, what: int):
        return self._sync._q

    async def put(self, obj: Any) -> None:
        q = self._sync._q
        await self._retry(lambda: q.put(obj, False), P.SPACE, 0, _queue.Full, None)

    async def get(self) -> Any:
        q = self._sync._q
        return await self._retry(lambda: q.get(False), P.DATA, 0, _queue.Empty, None)


class Ring(_Async):
    """``ipcfast.Ring`` with ``await send_bytes(data)``, ``await recv_bytes()``,
    ``await recv_many()``."""

    _SYNC = _ring.Ring

    async def send_bytes(self, data, block: bool = True, timeout: Optional[float] = None) -> None:
        r = self._sync
        if not block:
            return r.send_bytes(data, False)
        n = memoryview(data).nbytes
        await self._retry(lambda: r.send_bytes(data, False), P.SPACE, n, _queue.Full, timeout)

    async def recv_bytes(self, block: bool = True, timeout: Optional[float] = None) -> bytes:
        r = self._sync
        if not block:
            return r.recv_bytes(False)
        return await self._retry(lambda: r.recv_bytes(False), P.DATA, 0, _queue.Empty, timeout)

    async def recv_many(self, max_messages: int = 1 << 30, block: bool = True,
                        timeout: Optional[float] = None):
        r = self._sync
        if not block:
            return r.recv_many(max_messages, False)
        return await self._retry(lambda: r.recv_many(max_messages, False), P.DATA, 0,
                                 _queue.Empty, timeout)


class Mailbox(_Async):
    """``ipcfast.Mailbox`` with ``await recv()``, ``await recv_bytes()``, ``await send()``,
    ``await send_bytes()`` (keyword arguments as the sync ones)."""

    _SYNC = _mailbox.Mailbox

    @classmethod
    def open(cls, name: str, **kwargs: Any) -> "Mailbox":
        return cls.from_sync(_mailbox.Mailbox.open(name, **kwargs))

    async def recv(self, *, timeout: Optional[float] = None, **kwargs: Any):
        return await self._received(self._sync.recv, timeout, kwargs)

    async def recv_bytes(self, *, timeout: Optional[float] = None, **kwargs: Any):
        return await self._received(self._sync.recv_bytes, timeout, kwargs)

    async def _received(self, fn, timeout: Optional[float], kwargs: Dict[str, Any]):
        wait_right = kwargs.get("if_busy") == "wait"

        def attempt():
            try:
                return fn(block=False, **kwargs)
            except _mailbox.ReceiverBusyError:
                if wait_right:            # if_busy="wait": await the right like a message
                    raise _queue.Empty from None
                raise
        return await self._retry(attempt, P.DATA, 0, _queue.Empty, timeout)

    async def _send(self, fn, obj, timeout: Optional[float], kwargs: Dict[str, Any]):
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        delay = _BACKOFF_FIRST           # no space poller: back off (see the module doc)
        while True:
            try:
                return fn(obj, block=False, **kwargs)
            except _queue.Full:
                if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def send(self, obj: Any, *, timeout: Optional[float] = None, **kwargs: Any):
        return await self._send(self._sync.send, obj, timeout, kwargs)

    async def send_bytes(self, data, *, timeout: Optional[float] = None, **kwargs: Any):
        return await self._send(self._sync.send_bytes, data, timeout, kwargs)


class Connection(_Async):
    """A :func:`Pipe` end with ``await recv()``, ``await recv_bytes()``, ``await send()``,
    ``await send_bytes()``; ``poll`` and ``close`` are the sync end's."""

    _SYNC = _pipe.Connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("make aio Connections with ipcfast.aio.Pipe() or Connection.from_sync()")

    def _handle(self, what: int):
        c = self._sync
        c._check_closed()
        (c._check_writable if what == P.SPACE else c._check_readable)()
        return c._tx if what == P.SPACE else c._rx

    async def _received(self, fn):
        c = self._sync

        def attempt():
            if not c.poll(0):
                raise _queue.Empty
            return fn()                   # EOFError at EOF, as the sync end
        return await self._retry(attempt, P.DATA, 0, _queue.Empty, None)

    async def recv(self) -> Any:
        return await self._received(self._sync.recv)

    async def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        return await self._received(lambda: self._sync.recv_bytes(maxlength))

    async def send_bytes(self, buf, offset: int = 0, size: Optional[int] = None) -> None:
        with memoryview(buf) as m:
            data = m.cast("B").tobytes()
        data = data[offset:] if size is None else data[offset:offset + size]
        await self._send_data(data)

    async def send(self, obj: Any) -> None:
        await self._send_data(_pickle.dumps(obj))

    async def _send_data(self, data: bytes) -> None:
        """Await room for *data* (its first part, if it goes in parts), then send it with
        the sync end (its errors: BrokenPipeError, ...)."""
        c = self._sync
        tx = self._handle(P.SPACE)
        n = len(data)
        while not await self._ready(P.SPACE, min(n, tx.max_message)):
            # woken, or a second passed: a reader killed without closing leaves the ring full
            # and wakes nobody, so try once without blocking (ECLOSED: no reader is left)
            if n <= tx.max_message:
                try:
                    rc = tx._send(data, n, False, None)
                except _queue.Full:
                    continue
                if rc:
                    raise BrokenPipeError(errno.EPIPE, "the other end of the pipe is closed")
                return
        c.send_bytes(data)


def Pipe(duplex: bool = True, **kwargs: Any) -> Tuple[Connection, Connection]:
    """``ipcfast.Pipe`` as two aio Connections."""
    a, b = _pipe.Pipe(duplex, **kwargs)
    return Connection.from_sync(a), Connection.from_sync(b)


_WRAPPERS = [(_q.JoinableQueue, JoinableQueue), (_q.Queue, Queue), (_q.SimpleQueue, SimpleQueue),
             (_ring.Ring, Ring), (_mailbox.Mailbox, Mailbox), (_pipe.Connection, Connection)]


def wrap(obj: Any):
    """The aio wrapper of a sync ipcfast handle (Queue, JoinableQueue, SimpleQueue, Ring,
    Mailbox or Connection); an aio object is returned as it is."""
    if isinstance(obj, _Async):
        return obj
    for sync, aio in _WRAPPERS:
        if isinstance(obj, sync):
            return aio.from_sync(obj)
    raise TypeError(f"ipcfast.aio.wrap takes an ipcfast handle, not {type(obj).__name__}")


__all__ = ["Connection", "JoinableQueue", "Mailbox", "Pipe", "Queue", "Ring", "SimpleQueue", "wrap"]
