"""faster-fifo's ``Queue`` over ipcfast: code written for faster-fifo runs by changing
``from faster_fifo import Queue`` to ``from ipcfast.faster_fifo import Queue``.

Same constructor (``max_size_bytes``, ``maxsize``, ``loads``, ``dumps``), methods, defaults
(a 10 s timeout on every blocking call, ``get_many`` of up to 10**9 messages), exceptions
(``queue.Full`` / ``queue.Empty``, :class:`QueueError` with ``last_error``) and accounting:
each message counts its pickled length plus 8 bytes (faster-fifo's length word) against
``max_size_bytes``, which is what ``data_size()`` reports. ``close()`` only marks the queue
closed, for every process that has it (``is_closed()``); puts and gets go on working.
Serializers may be overridden per instance (``loads=``/``dumps=``) or in a subclass.

The byte bound is ipcfast's (``ipcfast.Queue(max_bytes=...)``), kept in the queue's shared
control block, so it holds across processes however the queue reached them (fork, spawn,
pickling, or :meth:`Queue.attach` by name) and survives a consumer SIGKILLed mid-get.

Differences, by design: a message (or ``put_many`` batch) larger than ``max_size_bytes``
raises ``queue.Full`` at once - faster-fifo waits out the timeout first, as it can never
fit either; the queue's memory is ipcfast's chain of shared rings (it grows only as far
as the bound lets it) rather than one preallocated buffer.
"""
from __future__ import annotations

import multiprocessing.reduction
from queue import Empty, Full
from typing import Any, Callable, List, Optional

from . import queue as _queue
from ._native import lib

__all__ = ["Queue", "QueueError", "Full", "Empty", "DEFAULT_TIMEOUT",
           "DEFAULT_CIRCULAR_BUFFER_SIZE", "INITIAL_RECV_BUFFER_SIZE"]

DEFAULT_TIMEOUT = float(10)
DEFAULT_CIRCULAR_BUFFER_SIZE = 1000 * 1000  # 1 Mb
INITIAL_RECV_BUFFER_SIZE = 5000             # (faster-fifo's first receive buffer; kept for imports)
_MSG_OVERHEAD = 8                           # faster-fifo stores a size_t before each message

_ForkingPickler = multiprocessing.reduction.ForkingPickler


class QueueError(Exception):
    pass


def _raw_dumps(data: Any) -> Any:
    """The inner queue's serializer: the bytes this module's dumps already made."""
    return data


def _ring_size(max_size_bytes: int) -> int:
    """A ring that holds a full queue at once (rounded to a power of two by ipcfast.Queue),
    within ipcfast's ring bounds; beyond them the queue chains rings."""
    return min(max(lib.IPCF_MIN_CAPACITY, 2 * max_size_bytes), 1 << 26, lib.IPCF_MAX_CAPACITY)


def _timeout(block: bool, timeout: float) -> Optional[float]:
    """faster-fifo's timeouts are floats; a non-positive one means "do not wait"."""
    if not block:
        return 0.0
    t = float(timeout)          # TypeError for None, as faster-fifo's C float conversion
    return t if t > 0 else 0.0


class Queue:
    def __init__(self, max_size_bytes: int = DEFAULT_CIRCULAR_BUFFER_SIZE,
                 maxsize: int = int(1e9), loads: Optional[Callable] = None,
                 dumps: Optional[Callable] = None) -> None:
        for what, v in (("max_size_bytes", max_size_bytes), ("maxsize", maxsize)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{what} must be an int, not {type(v).__name__}")
            if v < 1:
                raise ValueError(f"{what} must be >= 1, not {v}")
        self.max_size_bytes = max_size_bytes
        self.maxsize = maxsize
        self.max_bytes_to_read = self.max_size_bytes  # get_many reads at most this much
        if loads is not None:       # per-instance serializers, as faster-fifo
            self.loads = loads
        if dumps is not None:
            self.dumps = dumps
        self._q = _queue.Queue(maxsize, capacity=_ring_size(max_size_bytes), max_bytes=max_size_bytes,
                               _item_overhead=_MSG_OVERHEAD, dumps=_raw_dumps, loads=bytes)
        self.last_error: Optional[str] = None

    def _error(self, message: str) -> None:
        self.last_error = message
        raise QueueError(message)

    # class-level serializers (a subclass may override them)
    def loads(self, msg_bytes: Any) -> Any:
        return _ForkingPickler.loads(msg_bytes)

    def dumps(self, obj: Any) -> bytes:
        return _ForkingPickler.dumps(obj).tobytes()

    @property
    def name(self) -> str:
        """The ipcfast segment name (for :meth:`attach` from an unrelated process)."""
        return self._q.name

    @classmethod
    def attach(cls, name: str, loads: Optional[Callable] = None,
               dumps: Optional[Callable] = None) -> "Queue":
        """Open the queue *name* (see :attr:`name`) from an unrelated process; its bounds
        are the creator's. (Not in faster-fifo, whose queues travel only to children.)"""
        self = cls.__new__(cls)
        self._q = _queue.Queue.attach(name, dumps=_raw_dumps, loads=bytes)
        self.max_size_bytes = self._q.max_bytes
        self.maxsize = self._q.maxsize
        self.max_bytes_to_read = self.max_size_bytes
        if loads is not None:
            self.loads = loads
        if dumps is not None:
            self.dumps = dumps
        self.last_error = None
        return self

    def close(self) -> None:
        """Mark the queue closed for every process that has it (is_closed()); nothing else
        changes: puts and gets still work, as in faster-fifo. The shared memory goes when
        the last process that has the queue drops it or exits."""
        lib.ipcf_queue_mark_closed(self._q._live())

    def is_closed(self) -> bool:
        return bool(lib.ipcf_queue_marked_closed(self._q._live()))

    # ---- producer ----
    def put_many(self, xs, block: bool = True, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not isinstance(xs, (list, tuple)):
            self._error(f"put_many() expects a list or tuple, got {type(xs)}")
        datas = [self.dumps(x) for x in xs]
        t = _timeout(block, timeout)
        try:
            self._q.put_many(datas, block=t > 0, timeout=t or None)
        except ValueError:
            if self._q.closed:
                raise
            raise Full() from None      # larger than max_size_bytes (or maxsize): never fits

    def put(self, x: Any, block: bool = True, timeout: float = DEFAULT_TIMEOUT) -> None:
        data = self.dumps(x)
        t = _timeout(block, timeout)
        try:
            self._q.put(data, block=t > 0, timeout=t or None)
        except ValueError:
            if self._q.closed:
                raise
            raise Full() from None

    def put_many_nowait(self, xs) -> None:
        self.put_many(xs, block=False)

    def put_nowait(self, x: Any) -> None:
        self.put(x, block=False)

    # ---- consumer ----
    def get_many(self, block: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 max_messages_to_get: int = int(1e9)) -> List[Any]:
        if isinstance(max_messages_to_get, bool) or not isinstance(max_messages_to_get, int):
            raise TypeError("max_messages_to_get must be an int, not "
                            f"{type(max_messages_to_get).__name__}")
        t = _timeout(block, timeout)
        raws = self._q.get_many(block=t > 0, timeout=t or None,
                                max_messages_to_get=max(1, max_messages_to_get))
        loads = self.loads
        return [loads(r) for r in raws]

    def get_many_nowait(self, max_messages_to_get: int = int(1e9)) -> List[Any]:
        return self.get_many(block=False, max_messages_to_get=max_messages_to_get)

    def get(self, block: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Any:
        t = _timeout(block, timeout)
        return self.loads(self._q.get(block=t > 0, timeout=t or None))

    def get_nowait(self) -> Any:
        return self.get(block=False)

    # ---- state ----
    def qsize(self) -> int:
        return self._q.qsize()

    def data_size(self) -> int:
        """Bytes held: each message's pickled length + 8, as faster-fifo counts them."""
        return self._q.data_size()

    def empty(self) -> bool:
        """True if the queue is empty (a snapshot, as in faster-fifo)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """True if not even a 1-byte message would fit now (faster-fifo's definition)."""
        return (self.qsize() + 1 > self.maxsize or
                self.data_size() + 1 + _MSG_OVERHEAD > self.max_size_bytes)

    def join_thread(self) -> None:
        """No background thread to join (as faster-fifo)."""

    def cancel_join_thread(self) -> None:
        """No background thread to cancel (as faster-fifo)."""
