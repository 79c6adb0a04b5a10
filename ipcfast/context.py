"""get_context: a multiprocessing context whose queues and pipes are ipcfast's.

``ctx = ipcfast.get_context("spawn")`` behaves as ``multiprocessing.get_context("spawn")``
except that ``ctx.Queue``, ``ctx.SimpleQueue``, ``ctx.JoinableQueue`` and ``ctx.Pipe`` make
ipcfast objects and ``ctx.Pool`` makes a ``multiprocessing.pool.Pool`` whose task and result
queues are ipcfast's. Every other attribute (Process, Lock, Event, Manager, Barrier, cpu_count,
get_start_method, ...) is the stock context's own object, looked up on it: nothing else is
wrapped, so the code that used it keeps its exact behaviour.

Pool and ProcessPoolExecutor reach into their queues' private attributes (CPython 3.8-3.13):
``SimpleQueue._reader`` (``recv``, ``poll``, ``close``, and ``fileno`` for
``multiprocessing.connection.wait``), ``SimpleQueue._writer`` (``send``, ``close``) and
``SimpleQueue._rlock``. The SimpleQueue here provides them over the one shared queue.
``Pool`` is a subclass that overrides two private hooks (``_setup_queues``,
``_get_sentinels``) so that its own wait() never needs a descriptor of an ipcfast queue.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import queue as _queue
import threading
from typing import Any, Optional

from . import queue as _q
from .pipe import Pipe as _Pipe

# a worker's get() looks at its parent's liveness this often while the task queue is empty
_PARENT_CHECK_S = 0.5
# tasks a Pool queues ahead of its workers at most (a stock pool's pipe holds ~64 KiB)
_TASKS_QUEUED = 1024
_TRANSIT_PAIRS = 24   # entries of a segment's transit table (layout.h IPCF_TRANSIT_WORDS / 2)


class SimpleQueue(_q.SimpleQueue):
    """ipcfast's SimpleQueue with the private attributes multiprocessing's Pool and
    ProcessPoolExecutor use (``_reader``, ``_writer``, ``_rlock``): both ends are the same
    shared queue, seen as a pipe's two Connections."""

    _eof_owner = 0   # a Pool's task queue: pid of the pool's process (get() in its workers)

    # one view of each side per handle (connection.wait() hands back the objects it was
    # given, and a caller compares them by identity)
    @property
    def _reader(self) -> "_Reader":
        end = self.__dict__.get("_reader_")
        return end if end is not None else self.__dict__.setdefault("_reader_", _Reader(self))

    @property
    def _writer(self) -> "_Writer":
        end = self.__dict__.get("_writer_")
        return end if end is not None else self.__dict__.setdefault("_writer_", _Writer(self))

    @property
    def _rlock(self) -> threading.Lock:
        # Pool._help_stuff_finish holds it while it drains the task queue at terminate()
        # (its workers are being terminated then). The queue's own consumer lock orders
        # readers already, so this lock is process-local and get() does not take it.
        lock = self.__dict__.get("_rlock_")
        if lock is None:
            lock = self.__dict__.setdefault("_rlock_", threading.Lock())
        return lock

    def __reduce__(self):
        return (_rebuild_simple, (self._q, self._eof_owner))

    def get(self) -> Any:
        """Remove and return an item, blocking while empty. For a Pool's task queue, in one
        of its workers: EOFError once the pool's process is gone (a stock Pool worker sees EOF
        on its pipe then), so that workers of a SIGKILLed pool exit instead of waiting
        forever. (Its liveness is asked only while the queue stays empty.)"""
        owner = self._eof_owner
        parent = multiprocessing.parent_process() if owner else None
        if parent is None or parent.pid != owner:       # not a worker of that pool
            return self._q.get()
        while True:
            try:
                return self._q.get(timeout=_PARENT_CHECK_S)
            except _queue.Empty:
                if not parent.is_alive():
                    raise EOFError("the pool's parent process is gone") from None

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """True if an item is there, waiting up to *timeout* seconds (None: forever)."""
        if timeout is not None and timeout <= 0:
            return not self._q.empty()
        q = self._q
        h = q._live()
        first, lens = _q.ffi.new("char **"), _q.ffi.new("uint64_t[1]")
        n = _q.N.call_blocking(lambda t: _q._peek(h, 1, t, first, lens), True, timeout, _q.N.EEMPTY)
        if n > 0:
            _q._release(h, 0)          # looked at, left in the queue
            return True
        if n != _q.N.EEMPTY:
            q._check(n)
        return False


def _rebuild_simple(q: _q.Queue, eof_owner: int) -> SimpleQueue:
    self = SimpleQueue.__new__(SimpleQueue)
    self._q = q
    if eof_owner:
        self._eof_owner = eof_owner
    return self


class _End:
    """One side of a SimpleQueue seen as a Connection. close() closes only this view (a Pool
    worker closes the ends it does not use: the queue stays open for the other side)."""

    __slots__ = ("_sq", "_closed")

    def __init__(self, sq: SimpleQueue) -> None:
        self._sq = sq
        self._closed = False

    def _check(self) -> SimpleQueue:
        if self._closed:
            raise OSError("handle is closed")
        return self._sq

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The queue's descriptor (readable while a get would not block), for
        ``multiprocessing.connection.wait``."""
        sq = self._check()
        fileno = getattr(_q.SimpleQueue, "fileno", None)
        if fileno is not None:
            return fileno(sq)
        if getattr(_q.Queue, "fileno", None) is not None:
            return sq._q.fileno()
        raise OSError("this ipcfast build has no fileno() on its queues; use poll()")


class _Reader(_End):
    __slots__ = ()

    def recv(self) -> Any:
        return self._check().get()

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        return self._check().poll(timeout)


class _Writer(_End):
    __slots__ = ()

    def send(self, obj: Any) -> None:
        self._check().put(obj)


class Pool(multiprocessing.pool.Pool):
    """``multiprocessing.pool.Pool`` whose tasks and results move through ipcfast queues.

    The pool's own internal notifier (a queue between its threads in this process) stays a
    stock SimpleQueue with a real pipe, and the worker-maintenance thread waits on it and the
    workers' sentinels only: a result arriving needs no wake-up there (the result thread
    reads them), so no wait() ever needs an ipcfast descriptor."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None):
        # the stock context: Process, and the notifier queue (see the class doc)
        try:
            super().__init__(processes, initializer, initargs, maxtasksperchild,
                             _stock(context or multiprocessing.get_context()))
        except BaseException:
            for q in (getattr(self, "_inqueue", None), getattr(self, "_outqueue", None)):
                if q is not None:
                    q.close()
            raise

    def _setup_queues(self):
        # tasks: bounded, as a stock pool's pipe is, so imap() over a long iterable does not
        # move all of it into shared memory ahead of the workers; results: unbounded
        self._inqueue = SimpleQueue(maxsize=_TASKS_QUEUED)
        self._inqueue._eof_owner = os.getpid()
        self._outqueue = SimpleQueue()
        self._quick_put = self._inqueue._writer.send
        self._quick_get = self._outqueue._reader.recv

    def _get_sentinels(self):
        return [self._change_notifier._reader]

    @classmethod
    def _terminate_pool(cls, taskqueue, inqueue, outqueue, *rest):
        # runs once, from terminate(), garbage collection or exit: everyone is joined after
        # it, so this process's handles go (and with the last one the segments)
        try:
            super()._terminate_pool(taskqueue, inqueue, outqueue, *rest)
        finally:
            for q in (inqueue, outqueue):
                _end_transits(q)
                q.close()


def _end_transits(sq: SimpleQueue) -> None:
    """Every worker is joined: the queue's pickled copies in transit from here (to workers
    that were terminated before they unpickled them) will never arrive, so they must not
    keep its segment after our close (a queue only the pool ever pickles)."""
    h = sq._q._h
    if h is None:
        return
    me = _q.lib.ipcf_self_word()
    for _ in range(_TRANSIT_PAIRS):
        _q.lib.ipcf_queue_arrive(h, me)       # ends one entry of ours, if any is left


def _stock(ctx: Any) -> Any:
    return ctx._ctx if isinstance(ctx, Context) else ctx


class Context:
    """A multiprocessing context whose Queue, SimpleQueue, JoinableQueue, Pipe and Pool are
    ipcfast's; every other attribute is the wrapped multiprocessing context's own."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        if name == "_ctx":
            raise AttributeError(name)
        return getattr(self._ctx, name)

    def __dir__(self):
        return sorted(set(dir(self._ctx)) | set(type(self).__dict__))

    def __repr__(self) -> str:
        return f"<ipcfast.Context over {self._ctx!r}>"

    def __reduce__(self):
        # a concrete context by its method; the default one as the default (unfixed)
        return (get_context, (getattr(self._ctx, "_name", None),))

    def Queue(self, maxsize: int = 0, **kwargs: Any) -> _q.Queue:
        return _q.Queue(maxsize, **kwargs)

    def JoinableQueue(self, maxsize: int = 0, **kwargs: Any) -> _q.JoinableQueue:
        return _q.JoinableQueue(maxsize, **kwargs)

    def SimpleQueue(self, **kwargs: Any) -> SimpleQueue:
        return SimpleQueue(**kwargs)

    def Pipe(self, duplex: bool = True, **kwargs: Any):
        return _Pipe(duplex, **kwargs)

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None) -> Pool:
        return Pool(processes, initializer, initargs, maxtasksperchild, self._ctx)

    def get_context(self, method: Optional[str] = None) -> "Context":
        return get_context(method) if method is not None else self


def get_context(method: Optional[str] = None) -> Context:
    """``multiprocessing.get_context(method)`` with ipcfast's Queue, SimpleQueue,
    JoinableQueue, Pipe and Pool (see the module doc). ValueError for an unknown method."""
    return Context(multiprocessing.get_context(method))


def get_start_method(allow_none: bool = False) -> Optional[str]:
    """``multiprocessing.get_start_method``."""
    return multiprocessing.get_start_method(allow_none)


def set_start_method(method: Optional[str], force: bool = False) -> None:
    """``multiprocessing.set_start_method``: ``get_context()`` then follows it."""
    multiprocessing.set_start_method(method, force)
