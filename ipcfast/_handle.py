"""The lifecycle every shared-memory handle (Ring, Queue, Mailbox) shares.

A handle is a native ``ipcf_<kind> *`` plus its segment name. This module owns, once for
every kind:

- creating or attaching through the kind's table of C functions (:class:`Kind`: the only
  place a handle class names its lifecycle functions);
- freeing the native memory only when no thread can be inside a call any more (a
  ``weakref.finalize`` on the Python object, never ``close()``);
- the fork table (:class:`HandleTable`): handles go in transit before ``fork()`` and the
  child registers as a peer of its own;
- the closed check, with one wording for every class: ``Queue 'name' is closed``;
- ``close()``, ``closed``, the context manager, ``__repr__``;
- pickling by name: ``__reduce__`` marks the handle in transit, the receiver attaches by
  name and arrives (:func:`_arrive`);
- ``fileno()``: a descriptor per (process, handle) that polls readable while a receive
  would not block (:mod:`._poll`), closed before the handle, forgotten by a fork child;
- per-handle scratch buffers, taken with one method and given back with another only after
  their data has been copied out or unpickled (a thread that finds the slot empty allocates
  its own, so racing threads never share a buffer).

Hot paths (``Queue.put/get``, ``Ring.send_bytes/recv_bytes``) inline the closed check and the
scratch take/give as two plain statements instead of calling these methods; each such place
says so, and follows the same rule.
"""
from __future__ import annotations

import atexit
import heapq
import multiprocessing.util as _mp_util
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, TypeVar

from . import _native as N
from . import _poll as P
from . import _segments as S
from ._native import ffi, lib

#: bytes of the per-handle scratch buffer: receives copy messages up to this size with no
#: allocation (larger ones take a path of their own)
SCRATCH = 64 * 1024

_new_raw = N.new_raw


def new_scratch():
    """A fresh scratch buffer (uncleared: C always writes before Python reads)."""
    return _new_raw("char[]", SCRATCH)


def recv_args(h, buf, cap: int):
    """The ``struct ipcf_recv_args`` of a blocking receive on handle *h* into *buf* (*cap*
    bytes), one slice (SLICE_NS) at a time: what the one-argument receive calls take."""
    a = ffi.new("struct ipcf_recv_args *")
    a.handle, a.buf, a.cap, a.timeout_ns = h, buf, cap, N.SLICE_NS
    return a


def new_recv_scratch(h):
    """A scratch buffer for *h*'s fast receive, with what reads it made once: (the buffer,
    a cffi buffer of all of it, its ``recv_args``). Taken and given back like any scratch
    buffer; it holds *h*, whose memory outlives the handle object (freed at its GC)."""
    buf = new_scratch()
    return buf, ffi.buffer(buf), recv_args(h, buf, SCRATCH)


@dataclass(frozen=True)
class Kind:
    """The C functions of one kind of handle: the one table each class names them in."""

    out_type: str            #: cdata type of the out-parameter of create/attach: "ipcf_ring **"
    create: Callable         #: (name, *args, out) -> rc
    attach: Callable         #: (name, out) -> rc
    close: Callable          #: (h) -> rc: detach; idempotent, safe while threads are in calls
    free: Callable           #: (h): unmap and free; only once no thread can use h
    before_fork: Callable    #: (h): parent, before fork(): the handle goes in transit
    after_fork: Callable     #: (h): child: register as a peer of its own
    depart: Callable         #: (h, ttl_ns) -> rc: about to be pickled: count it in transit
    arrive: Callable         #: (h, sender_word): the receiver has attached: transit over
    poller: Optional[Callable] = None   #: (h, what, out) -> rc: a file-descriptor poller


class HandleTable:
    """Live native handles of one kind, and what they need around fork().

    Before fork the parent marks each handle in transit; the child registers as a peer and
    clears the mark, so the parent may close at once without the segment going away under the
    child. multiprocessing's fork children end with os._exit, which skips the garbage
    collection that would close their handles, so each handle also registers (through
    multiprocessing's after-fork hooks, which run after its finalizer registry is reset) a
    close among the child's exit finalizers: a child that is a segment's last user removes it.
    """

    #: every table, for the close at interpreter exit
    tables: ClassVar[list] = []

    def __init__(self, kind: Kind) -> None:
        self._objs: "weakref.WeakSet" = weakref.WeakSet()
        self._kind = kind
        os.register_at_fork(before=self._parent, after_in_child=self._child)
        HandleTable.tables.append(self)

    def add(self, obj: "Handle") -> None:
        self._objs.add(obj)
        _mp_util.register_after_fork(obj, self._close_at_exit)

    def _close_at_exit(self, obj: "Handle") -> None:
        h = getattr(obj, "_h", None)
        if h is not None:
            _mp_util.Finalize(obj, self._kind.close, args=(h,), exitpriority=10)

    def _each(self, fn: Callable) -> None:
        for obj in list(self._objs):
            h = getattr(obj, "_h", None)
            if h is not None:
                fn(h)

    def _parent(self) -> None:
        self._each(self._kind.before_fork)

    def _child(self) -> None:
        self._each(self._kind.after_fork)
        for obj in list(self._objs):           # the parent's pollers stay the parent's
            obj._forget_pollers()

    def close_all(self) -> None:
        """Close every live handle of this kind through its Python object (so later calls on
        it see "closed" instead of touching freed memory)."""
        for obj in list(self._objs):
            try:
                obj.close()
            except Exception:  # pragma: no cover - exit must go on
                pass


@atexit.register
def _close_at_interpreter_exit() -> None:
    """At exit every handle still open is closed (the last process out removes the segment)
    but its memory is NOT freed: daemon threads may still be inside a call, and objects torn
    down later (a Connection's __del__, ...) may still call close(). The OS reclaims it."""
    for table in HandleTable.tables:
        table.close_all()
    _reaper.now()


class _Reaper:
    """Re-checks, once their transit has expired, segments whose last close here was put
    off because one of their handles was in transit (pickled for a process that may never
    unpickle it: a spawn child killed before it ran): if no live process has it then, it is
    removed. One daemon thread, started on first use; what is pending at interpreter exit is
    checked then (our own transits count only while we have a live descendant)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._due: list = []                  # heap of (deadline, name)
        self._thread: Optional[threading.Thread] = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:                # a fork child inherits no thread and no duty
        self._lock = threading.Condition()
        self._due, self._thread = [], None

    def later(self, name: str, deadline: float) -> None:
        with self._lock:
            heapq.heappush(self._due, (deadline, name))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ipcfast-reaper",
                                                daemon=True)
                self._thread.start()
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._due or self._due[0][0] > time.monotonic():
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._lock.wait(wait)
                _, name = heapq.heappop(self._due)
            S.remove_if_dead(name)

    def now(self) -> None:
        """Check everything pending at once (interpreter exit)."""
        with self._lock:
            due, self._due = self._due, []
        for _, name in due:
            S.remove_if_dead(name)


_reaper = _Reaper()


H = TypeVar("H", bound="Handle")


class Handle:
    """Base of the classes that own one native handle of a shared-memory segment.

    A subclass sets ``_kind`` (its :class:`Kind`) and gets its own fork table; it opens
    with :meth:`_open` (create) or :meth:`_attach` (attach by name) and finishes its own
    state in :meth:`_setup`, whose keyword arguments are also what a pickled handle carries
    to the receiver (they must be picklable).
    """

    _kind: ClassVar[Kind]
    _handles: ClassVar[HandleTable]
    #: batch buffers of recv_many/get_many: bytes, and the most records per call
    _BATCH_BYTES: ClassVar[int] = 1 << 20
    _BATCH_ITEMS: ClassVar[int] = 1 << 14

    _h: Any
    name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_kind" in cls.__dict__:          # JoinableQueue shares Queue's table
            cls._handles = HandleTable(cls._kind)

    # ---- opening ----
    def _open(self, name: str, create: Optional[Tuple] = None, **setup: Any) -> None:
        """Create segment *name* with the kind's create(name, *create, out), or with
        ``create=None`` attach to it; then :meth:`_setup` (``**setup``) and register for
        fork. Raises what :func:`_native.check` maps the C result to (FileExistsError,
        FileNotFoundError, IncompatibleSegmentError, ValueError for a bad name, ...)."""
        kind = self._kind
        what = type(self).__name__
        cname = N.encode_name(name, what)
        out = ffi.new(kind.out_type)
        rc = kind.attach(cname, out) if create is None else kind.create(cname, *create, out)
        N.check(rc, what, name)
        if create is not None:
            try:
                S.collect_dead_automatically()     # segments whose every user was killed
            except Exception:  # pragma: no cover - a create never fails because of it
                pass
        h = out[0]
        self._h = h
        # the memory is released only when no thread can be inside a call on it any more:
        # at garbage collection, never at interpreter exit (see _close_at_interpreter_exit)
        self._pollers: Dict[int, P.Poller] = {}
        weakref.finalize(self, _free, kind.free, h, self._pollers).atexit = False
        self.name = name
        self._reopen: Dict[str, Any] = setup
        self._scratch = None
        self._batch = None
        self._departed_until = 0.0
        self._setup(**setup)
        self._handles.add(self)

    @classmethod
    def _attach(cls: "type[H]", name: str, **setup: Any) -> H:
        """A new handle on the existing segment *name* (FileNotFoundError if absent)."""
        self = cls.__new__(cls)
        self._open(name, None, **setup)
        return self

    def _setup(self, **setup: Any) -> None:
        """The subclass's own state, read from the open handle ``self._h``."""

    # ---- lifetime ----
    def close(self) -> None:
        """Detach this handle: later calls raise ValueError, and calls blocked in other
        threads return with it. What it holds stays for the other processes; the last
        process to close the segment removes it. Idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _close_pollers(self._pollers)
        if h is not None and self._kind.close(h) == 0 and self._departed_until > time.monotonic():
            # not removed, and a handle of ours may still be in transit: if it never
            # arrives, the segment must not outlive its transit (see _Reaper)
            _reaper.later(self.name, self._departed_until + 0.05)

    def _departed(self, ttl_ns: int) -> None:
        """A handle of this segment was pickled here (or a pipe end of it): its transit
        entry lives until now + ttl_ns."""
        self._departed_until = max(self._departed_until, time.monotonic() + ttl_ns / 1e9)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called on this handle."""
        return self._h is None

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _closed_error(self) -> ValueError:
        return ValueError(f"{type(self).__name__} {self.name!r} is closed")

    def _live(self):
        """The native handle; ValueError if this handle is closed."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def _check(self, rc: int) -> int:
        """*rc* if it is not an error, else raise the exception it maps to, naming us."""
        if rc < 0:
            raise N.error(rc, type(self).__name__, self.name)
        return rc

    def _unlink(self) -> None:
        """Remove the segment's name now (already gone is fine)."""
        rc = S.unlink(self.name)
        if rc != S.ENOENT:
            self._check(rc)

    # ---- file descriptors ----
    #: the receive methods that re-arm the descriptor after each call once fileno() was
    #: called (see _poll.wrap_receives); the rest (in-place views) leave it readable
    #: until the next receive or fileno() call
    _POLL_RECEIVES: ClassVar[Tuple[str, ...]] = ()

    def fileno(self) -> int:
        """A file descriptor that polls readable while a receive would not block, for
        ``select``, ``selectors``, ``multiprocessing.connection.wait`` and asyncio's
        ``add_reader``. One per handle and process, made at the first call and closed by
        :meth:`close`; every call re-checks (level-triggered). It may be readable with
        nothing left to receive when other consumers share the segment: receive without
        blocking after it polls readable. OSError (EBUSY) if the event already has
        IPCF_EVENT_POLLERS live pollers."""
        p = self._poller(P.DATA)
        p.rearm()
        return p.fd

    def _poller(self, what: int) -> P.Poller:
        """This process's poller of event *what* (made at first use)."""
        p = self._pollers.get(what)
        if p is None:
            h = self._live()
            p = P.Poller(self._kind.poller, h, what, f"{type(self).__name__} {self.name!r}")
            first = self._pollers.setdefault(what, p)  # a racing thread's first one wins
            if first is not p:
                p.close()
                return first
            if what == P.DATA:
                P.wrap_receives(self, self._POLL_RECEIVES)
        return p

    def _forget_pollers(self) -> None:
        """Fork child: drop the parent's pollers (their sockets and slots are its own)."""
        if self._pollers:
            for p in self._pollers.values():
                p.forget()
            self._pollers.clear()
            P.unwrap_receives(self, self._POLL_RECEIVES)

    # ---- pickling: by name ----
    def __reduce__(self):
        # in transit until the receiver attaches: the segment outlives our close meanwhile
        ttl = N.TRANSIT_NS
        self._kind.depart(self._live(), ttl)
        self._departed(ttl)
        return (_arrive, (type(self), self.name, lib.ipcf_self_word(), self._reopen))

    def __repr__(self) -> str:
        words = [repr(self.name), *self._describe()]
        if self._h is None:
            words.append("closed")
        return f"<ipcfast.{type(self).__name__} {' '.join(words)}>"

    def _describe(self) -> Tuple[str, ...]:
        """Words for the repr after the name (``closed`` is added by the base)."""
        return ()

    # ---- scratch buffers ----
    def _take_scratch(self):
        """This handle's scratch buffer (SCRATCH bytes), or a new one if another thread has
        it. Give it back with :meth:`_give_scratch` only once its data is copied out."""
        buf, self._scratch = self._scratch, None
        return buf if buf is not None else new_scratch()

    def _give_scratch(self, buf) -> None:
        self._scratch = buf

    def _take_batch(self):
        """(bytes buffer, uint64 lengths) for one batch receive; give back with
        :meth:`_give_batch` only once the records are copied out or unpickled."""
        pair, self._batch = self._batch, None
        return pair if pair is not None else (_new_raw("char[]", self._BATCH_BYTES),
                                              _new_raw("uint64_t[]", self._BATCH_ITEMS))

    def _give_batch(self, pair) -> None:
        self._batch = pair


def _close_pollers(pollers: Dict[int, "P.Poller"]) -> None:
    for p in list(pollers.values()):
        p.close()
    pollers.clear()


def _free(free: Callable, h: Any, pollers: Dict[int, "P.Poller"]) -> None:
    """The finalizer: pollers (which point into the mapping) go before the handle."""
    _close_pollers(pollers)
    free(h)


def _arrive(cls: "type[Handle]", name: str, sender: int, setup: Dict[str, Any]) -> Handle:
    """Unpickle a handle: attach by name, then end the sender's transit mark."""
    self = cls._attach(name, **setup)
    cls._kind.arrive(self._h, sender)
    return self


__all__ = ["Handle", "HandleTable", "Kind", "SCRATCH", "new_recv_scratch", "new_scratch", "recv_args"]
