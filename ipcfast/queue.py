"""Queue, SimpleQueue, JoinableQueue: drop-in replacements for multiprocessing's queues.

Items are pickled in the caller (an unpicklable object raises right there and nothing
reaches the queue), moved by one call into C, and unpickled by the receiver. There is no
feeder thread: ``put`` returns once the item is in shared memory, so nothing is lost when
a process exits and nothing can deadlock at exit.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional

from . import _native as N
from . import _pickle
from ._handle import SCRATCH as _SCRATCH, Handle, Kind, new_recv_scratch as _new_recv_scratch
from ._native import ffi, lib
from .ring import ring_capacity

_put = lib.ipcf_queue_put
_putv = lib.ipcf_queue_putv
_get = lib.ipcf_queue_get
_get1 = lib.ipcf_queue_get1
_NULL = ffi.NULL          # the size of an item too large for the buffer: not needed here
_peek = lib.ipcf_queue_peek
_release = lib.ipcf_queue_release
_REC_HDR = lib.IPCF_REC_HDR
_from_buffer = ffi.from_buffer
_view = ffi.buffer
_unpack = ffi.unpack
_SLICE = N.SLICE_NS
_timeout = N.timeout_arg
_dumps_many = _pickle.dumps_many
#: in get_many, batches whose items average up to this size are unpickled from one bytes
#: copy, larger ones from a view of the batch buffer (ffi.buffer costs ~3x ffi.unpack of
#: 40 bytes, and one memoryview slice per item more)
_COPY_MAX = 2048


def _records_span(sizes) -> int:
    """Bytes of a run of ring records with these body sizes."""
    return sum((_REC_HDR + s + 7) & ~7 for s in sizes)


class Queue(Handle):
    """``multiprocessing.Queue`` over shared memory.

    ``maxsize`` bounds the number of items (``put`` blocks, or raises ``queue.Full``, when
    that many are queued); ``maxsize <= 0`` means unbounded: the shared ring chains to
    further rings as it fills and gives them back as consumers drain them. ``max_bytes``
    (keyword-only, 0 = no bound) bounds the bytes of pickled items held: ``put`` blocks (or
    raises ``queue.Full``) while an item would take the queue past it, and an item (or a
    ``put_many`` batch) larger than ``max_bytes`` raises ValueError, since it could never
    fit. Keyword-only extras: ``capacity`` (bytes of each shared ring), ``name`` (segment
    name, for attaching
    from unrelated processes with :meth:`Queue.attach`), ``dumps``/``loads`` (serializer;
    the default is pickle with multiprocessing's reducers). A handle with the default loads
    unpickles from its whole receive buffer, relying on pickle stopping at its stream's
    STOP: give every reader of a queue whose writers use a custom dumps the matching loads
    (a record that is not a whole pickle could otherwise be read into stale bytes).

    Any number of producer and consumer processes and threads may share a queue; items from
    one producer arrive in the order it put them, each exactly once. The queue's memory is
    freed when the last process that has it open closes it or exits.
    """

    _kind = Kind(
        out_type="ipcf_queue **",
        create=lib.ipcf_queue_create,
        attach=lib.ipcf_queue_attach,
        close=lib.ipcf_queue_close,
        free=lib.ipcf_queue_free,
        before_fork=lib.ipcf_queue_before_fork,
        after_fork=lib.ipcf_queue_after_fork,
        depart=lib.ipcf_queue_depart,
        arrive=lib.ipcf_queue_arrive,
        poller=lib.ipcf_queue_poller,
    )
    _POLL_RECEIVES = ("get", "get_many")      # re-arm fileno() after (Handle.fileno)
    _BATCH_BYTES = 1 << 20        # get_many() moves at most this many bytes per call
    _BATCH_ITEMS = 1 << 14

    def __init__(self, maxsize: int = 0, *, ctx: Any = None, capacity: int = 1 << 20,
                 name: Optional[str] = None, dumps: Optional[Callable[[Any], bytes]] = None,
                 loads: Optional[Callable[[bytes], Any]] = None, max_bytes: int = 0,
                 _item_overhead: int = 0) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if maxsize >= 1 << 62:
            raise ValueError(f"maxsize {maxsize} is too large; use 0 for an unbounded queue")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
        if max_bytes < 0 or max_bytes >= 1 << 62:
            raise ValueError(f"max_bytes must be >= 0 (0: no byte bound) and < 2**62, not {max_bytes}")
        cap = ring_capacity(capacity)
        self._open(N.new_name("q") if name is None else name,
                   (cap, max(maxsize, 0), max_bytes, _item_overhead), dumps=dumps, loads=loads)

    @classmethod
    def attach(cls, name: str, *, dumps: Optional[Callable] = None,
               loads: Optional[Callable] = None) -> "Queue":
        """Open the existing queue *name* from any process (FileNotFoundError if absent)."""
        return cls._attach(name, dumps=dumps, loads=loads)

    def _setup(self, dumps: Optional[Callable] = None, loads: Optional[Callable] = None) -> None:
        h = self._h
        self._maxsize = lib.ipcf_queue_maxsize(h)
        self._max_bytes = lib.ipcf_queue_max_bytes(h)
        self.capacity = lib.ipcf_queue_ring_capacity(h)
        self._custom_dumps = dumps is not None
        self._dumps = dumps or _pickle.dumps_pieces      # bytes, or a list of pieces
        self._loads = loads or _pickle.loads
        self._loads_view = loads is None      # pickle.loads reads our scratch buffer in place

    # ---- lifetime (close, closed, context manager, pickling: Handle) ----
    def join_thread(self) -> None:
        """Compatibility: there is no feeder thread to join. Only valid after close()."""
        assert self._h is None, f"Queue {self!r} not closed"

    def cancel_join_thread(self) -> None:
        """Compatibility: there is no feeder thread, so nothing can block at exit."""

    # ---- state ----
    def qsize(self) -> int:
        """Approximate number of items queued."""
        return lib.ipcf_queue_qsize(self._live())

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return ((self._maxsize > 0 and self.qsize() >= self._maxsize) or
                (self._max_bytes > 0 and self.data_size() >= self._max_bytes))

    def data_size(self) -> int:
        """Approximate bytes of pickled items held (what ``max_bytes`` bounds)."""
        return lib.ipcf_queue_data_size(self._live())

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def max_bytes(self) -> int:
        """The byte bound given at creation (0: none)."""
        return self._max_bytes

    # ---- producer ----
    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put *obj* on the queue. Blocks only while ``maxsize`` items are queued (or
        ``max_bytes`` would be exceeded); raises
        queue.Full on timeout (or at once with block=False), ValueError once closed. A
        negative timeout does not wait (as in multiprocessing)."""
        h = self._h                       # the closed check (Handle._live), inline
        if h is None:
            raise self._closed_error()
        if timeout is not None:           # multiprocessing's rule: negative = do not wait
            timeout = _timeout(timeout, True)
        data = self._dumps(obj)
        if data.__class__ is not bytes:       # pieces of a large pickle, or a custom dumps'
            return self._put_pieces(h, data, block, timeout)     # bytes-like
        rc = _put(h, data, len(data), _SLICE if block and timeout is None else N.first_slice(block, timeout))
        if rc:
            self._put_slow(rc, h, data, block, timeout)

    def _put_slow(self, rc: int, h, data: bytes, block: bool, timeout: Optional[float]) -> None:
        if rc == N.EFULL or rc == N.EINTR:
            rc = N.call_blocking(lambda t: _put(h, data, len(data), t), block, timeout, N.EFULL)
        self._check_put(rc, len(data))

    def _too_big(self, size: int, n: int = 1) -> ValueError:
        what = "an item" if n == 1 else f"a put_many batch of {n} items"
        return ValueError(f"{what} of {size} bytes (pickled) can never fit max_bytes={self._max_bytes}")

    def _put_pieces(self, h, data, block: bool, timeout: Optional[float]) -> None:
        """Put one item given as a list of bytes-like pieces (or one bytes-like object from
        a custom dumps): written into the ring with one copy, never joined first."""
        pieces = [_from_buffer(p) for p in data] if data.__class__ is list else [_from_buffer(data)]
        n = len(pieces)
        bufs = ffi.new("char *[]", pieces)
        lens = ffi.new("uint64_t[]", [len(p) for p in pieces])
        rc = N.call_blocking(lambda t: _putv(h, bufs, lens, n, t), block, timeout, N.EFULL)
        if rc:
            self._check_put(rc, sum(lens))

    def _check_put(self, rc: int, size: int) -> None:
        if rc == N.ETOOBIG and self._max_bytes and size <= 0xfffffff0:   # (not the record limit)
            raise self._too_big(size)
        if rc == -errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"no space left in /dev/shm for an item of {size} bytes "
                          "(pickled) and the ring it needs", self.name)
        self._check(rc)

    def put_nowait(self, obj: Any) -> None:
        return self.put(obj, False)

    def put_many(self, objs: Iterable[Any], block: bool = True,
                 timeout: Optional[float] = None) -> None:
        """Put all of *objs* with one call into C, all or nothing: with ``maxsize`` it waits
        until there is room for every one (queue.Full on timeout, ValueError if there are
        more than maxsize)."""
        h = self._live()
        if timeout is not None:           # multiprocessing's rule: negative = do not wait
            timeout = _timeout(timeout, True)
        if self._custom_dumps:
            dumps = self._dumps
            datas = [d if d.__class__ is bytes else bytes(memoryview(d)) for d in map(dumps, objs)]
        else:
            datas = _dumps_many(objs)
        if not datas:
            return
        if self._maxsize and len(datas) > self._maxsize:
            raise ValueError(f"put_many of {len(datas)} items can never fit a queue of "
                             f"maxsize {self._maxsize}")
        lens = ffi.new("uint64_t[]", [len(d) for d in datas])
        blob = b"".join(datas)
        n = len(datas)
        rc = N.call_blocking(lambda t: lib.ipcf_queue_put_many(h, blob, lens, n, t),
                             block, timeout, N.EFULL)
        if rc == N.ETOOBIG and self._max_bytes and max(len(d) for d in datas) <= 0xfffffff0:
            raise self._too_big(len(blob), n)
        self._check(rc)

    # ---- consumer ----
    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return an item. Blocks until one is available; raises queue.Empty on
        timeout (or at once with block=False), ValueError once closed. A negative timeout
        takes an item only if one is there (as in multiprocessing)."""
        h = self._h                       # the closed check (Handle._live), inline
        if h is None:
            raise self._closed_error()
        if timeout is not None:           # multiprocessing's rule: negative = do not wait
            timeout = _timeout(timeout, True)
        # this queue's scratch (new_recv_scratch: buffer, view, call; Handle._take_scratch,
        # inline). The item is unpickled from the view of the whole buffer (pickle.loads
        # ignores what follows its stream's STOP): no copy or view of its size per item.
        sc, self._scratch = self._scratch, None
        if sc is None:
            sc = _new_recv_scratch(h)
        n = (_get1(sc[2]) if block and timeout is None else
             _get(h, sc[0], _SCRATCH, N.first_slice(block, timeout), _NULL))
        if n >= 0:
            obj = self._loads(sc[1]) if self._loads_view else self._loads(_unpack(sc[0], n))
            self._scratch = sc                       # given back once unpickled
            return obj
        return self._get_slow(n, h, sc, block, timeout)

    def _get_slow(self, n: int, h, sc, block: bool, timeout: Optional[float]) -> Any:
        """After a first try into the scratch *sc* (new_recv_scratch) returned *n*: wait
        while empty, or take an item larger than the scratch buffer in place. Gives *sc*
        back."""
        scratch = sc[0]
        start = None if timeout is None else time.monotonic()
        while n != N.EBUFSMALL:
            if n != N.EEMPTY and n != N.EINTR:
                self._give_scratch(sc)
                self._check(n)
            n = N.call_blocking(lambda t: _get(h, scratch, _SCRATCH, t, _NULL), block, timeout,
                                N.EEMPTY, start)
            if n >= 0:
                obj = self._loads(sc[1]) if self._loads_view else self._loads(_unpack(scratch, n))
                self._give_scratch(sc)        # only now: unpickled from the scratch buffer
                return obj
            if n == N.EEMPTY and (not block or timeout is not None):
                self._give_scratch(sc)
                self._check(n)
        self._give_scratch(sc)                  # an item larger than it: read in place
        return self._get_in_place(h, block, timeout, start)

    def _get_in_place(self, h, block: bool, timeout: Optional[float],
                      start: Optional[float]) -> Any:
        """Take the next item, unpickling it straight from shared memory (one copy: into
        the objects it builds), with the consumer side held until it is done."""
        first, lens = ffi.new("char **"), ffi.new("uint64_t[1]")
        n = 0
        # the try is entered before the peek, so a Ctrl-C right after it still releases
        try:
            n = N.call_blocking(lambda t: _peek(h, 1, t, first, lens), block, timeout,
                                N.EEMPTY, start)
            self._check(n)
            body, size = first[0] + _REC_HDR, lens[0]
            return self._loads(_view(body, size) if self._loads_view else _unpack(body, size))
        finally:
            if n > 0:
                _release(h, 1)      # consumed, even when unpickling raised (as multiprocessing)

    @contextlib.contextmanager
    def _held(self, max_items: int, timeout: Optional[float]) -> Iterator[List[bytes]]:
        """For forwarding without loss (the bridge): ``with q._held(n, t) as datas`` gives
        the serialized bytes of up to *n* of the next items (queue.Empty after *timeout*)
        while keeping them in the queue, with the consumer side held; they are removed when
        the block exits normally, and stay for the next consumer if it raises or this
        process is killed inside it (so an item may be forwarded twice, never lost)."""
        h = self._live()
        first, lens = ffi.new("char **"), ffi.new("uint64_t[]", max_items)
        n = consumed = 0
        try:
            n = N.call_blocking(lambda t: _peek(h, max_items, t, first, lens), True, timeout,
                                N.EEMPTY)
            self._check(n)
            sizes = ffi.unpack(lens, n)
            raw, datas, pos = ffi.buffer(first[0], _records_span(sizes))[:], [], 0
            for size in sizes:
                datas.append(raw[pos + _REC_HDR:pos + _REC_HDR + size])
                pos += (_REC_HDR + size + 7) & ~7
            yield datas
            consumed = 1
        finally:
            if n > 0:
                _release(h, consumed)

    def get_nowait(self) -> Any:
        return self.get(False)

    def get_many(self, block: bool = True, timeout: Optional[float] = None,
                 max_messages_to_get: int = 1_000_000_000) -> List[Any]:
        """Remove and return up to *max_messages_to_get* items (at least one) with one call
        into C; blocks like :meth:`get` for the first. faster-fifo compatible."""
        h = self._live()
        if timeout is not None:           # multiprocessing's rule: negative = do not wait
            timeout = _timeout(timeout, True)
        if isinstance(max_messages_to_get, bool) or not isinstance(max_messages_to_get, int):
            raise TypeError("max_messages_to_get must be an int, not "
                            f"{type(max_messages_to_get).__name__}")
        if max_messages_to_get < 1:
            raise ValueError("max_messages_to_get must be >= 1")
        pair = self._take_batch()
        buf, lens = pair
        cap = self._BATCH_BYTES
        k = min(max_messages_to_get, self._BATCH_ITEMS)
        n = N.call_blocking(lambda t: lib.ipcf_queue_get_many(h, buf, cap, lens, k, t, _NULL),
                            block, timeout, N.EEMPTY)
        if n < 0:
            self._give_batch(pair)        # nothing was copied into it
            if n == N.EBUFSMALL:          # the next item alone exceeds the batch buffer
                return [self.get(block=block, timeout=timeout)]
            self._check(n)
        sizes = ffi.unpack(lens, n)
        loads = self._loads
        total = sum(sizes)
        if self._loads_view and total > _COPY_MAX * n:
            mv = memoryview(ffi.buffer(buf, total))
            out = [loads(mv[a:b]) for a, b in zip(itertools.accumulate(sizes, initial=0),
                                                   itertools.accumulate(sizes))]
            mv.release()
        else:
            raw = ffi.unpack(buf, total)
            out = [loads(raw[a:b]) for a, b in zip(itertools.accumulate(sizes, initial=0),
                                                    itertools.accumulate(sizes))]
        self._give_batch(pair)            # only now: every item is unpickled
        return out


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: a Queue that counts unfinished tasks."""

    def task_done(self) -> None:
        """Mark one item got from the queue as processed (ValueError if called more times
        than items were put, or once closed)."""
        self._check(lib.ipcf_queue_task_done(self._live()))

    def join(self) -> None:
        """Block until every item put has been got and marked done with task_done()
        (ValueError once closed)."""
        h = self._live()
        self._check(N.call_blocking(lambda t: lib.ipcf_queue_join(h, t), True, None, N.ETIMEOUT))


class SimpleQueue:
    """``multiprocessing.SimpleQueue``: unbounded, with just get, put, empty and close."""

    def __init__(self, *, ctx: Any = None, **kwargs: Any) -> None:
        self._q = Queue(**kwargs)

    @classmethod
    def attach(cls, name: str, **kwargs: Any) -> "SimpleQueue":
        self = cls.__new__(cls)
        self._q = Queue.attach(name, **kwargs)
        return self

    def __reduce__(self):
        return (_attach_simple, (self._q,))

    def __repr__(self) -> str:
        return repr(self._q).replace("Queue", "SimpleQueue", 1)

    @property
    def name(self) -> str:
        return self._q.name

    def get(self) -> Any:
        return self._q.get()

    def put(self, obj: Any) -> None:
        self._q.put(obj)

    def empty(self) -> bool:
        return self._q.empty()

    def fileno(self) -> int:
        """Readable while get() would not block (see Queue.fileno)."""
        return self._q.fileno()

    def close(self) -> None:
        self._q.close()

    def get_many(self, max_messages_to_get: int = 1_000_000_000) -> List[Any]:
        return self._q.get_many(max_messages_to_get=max_messages_to_get)

    def put_many(self, objs: Iterable[Any]) -> None:
        self._q.put_many(objs)


def _attach_simple(q: Queue) -> SimpleQueue:
    self = SimpleQueue.__new__(SimpleQueue)
    self._q = q
    return self
