"""File descriptors for handles: the Python side of csrc/poll.c.

A :class:`Poller` is one (process, handle, event) poller: an abstract-namespace AF_UNIX
datagram socket of this process, registered in one of the event's poller slots, that any
process waking the event can make readable with one ``sendto``. It is level-triggered only
through :meth:`Poller.rearm`, which drains the socket and re-checks: ``Handle.fileno()`` calls
it, and so does every receive method of a handle that has a data poller (the handle's
``_POLL_RECEIVES`` methods are shadowed, on that instance only, by wrappers that re-arm
after each call: a handle nobody polls runs exactly the code it ran before).

Readability may be spurious: another consumer may take the message first (as with a
stdlib pipe shared by several readers). After a fork the child forgets its parent's
pollers (closes its copy of the socket, leaves the slot to the parent): ``fileno()`` in the
child makes its own.
"""
from __future__ import annotations

import errno
import functools
import os
import threading
import weakref
from typing import Any, Callable

from ._native import ffi, lib

DATA = lib.IPCF_POLL_DATA
SPACE = lib.IPCF_POLL_SPACE
JOIN = lib.IPCF_POLL_JOIN


class Poller:
    """One poller of one event of a native handle ``h``, made with ``open_fn(h, what, out)``."""

    __slots__ = ("_p", "_pid", "_lock", "fd", "__weakref__")

    def __init__(self, open_fn: Callable, h: Any, what: int, subject: str) -> None:
        out = ffi.new("ipcf_poller **")
        rc = open_fn(h, what, out)
        if rc == -errno.EBUSY:
            raise OSError(errno.EBUSY, f"{subject}: every one of its {lib.IPCF_EVENT_POLLERS} "
                          "poller slots is held by a live poller (a fileno() of another "
                          "handle or process); close one of those handles first")
        if rc < 0:
            from ._native import error
            raise error(rc, subject)
        self._p = out[0]
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.fd = lib.ipcf_poller_fd(self._p)

    def rearm(self, need: int = 0) -> bool:
        """Drain the socket and re-check: True (and the socket readable) if the operation
        would not block now, else False (armed: a waker makes it readable)."""
        with self._lock:
            p = self._p
            if p is None:
                return True
            rc = lib.ipcf_poller_rearm(p, need)
        return rc != 0            # < 0 (its slot was lost to corruption): say ready, re-check

    def close(self) -> None:
        """Free the slot and close the socket (idempotent). Before the handle is freed."""
        with self._lock:
            p, self._p = self._p, None
            if p is not None:
                lib.ipcf_poller_close(p)

    def forget(self) -> None:
        """In a fork child: close the inherited socket; the slot stays the parent's."""
        self._lock = threading.Lock()            # it may have been held across the fork
        p, self._p = self._p, None
        if p is not None and self._pid != os.getpid():
            lib.ipcf_poller_forget(p)


def wrap_receives(obj: Any, names) -> None:
    """Shadow *obj*'s receive methods *names* with wrappers that re-arm its data poller
    after each call, successful or not (a weak reference: no cycle through the wrapper)."""
    ref = weakref.ref(obj)
    cls = type(obj)
    for name in names:
        func = getattr(cls, name)

        @functools.wraps(func)
        def receive(*args: Any, __func=func, **kwargs: Any) -> Any:
            me = ref()
            try:
                return __func(me, *args, **kwargs)
            finally:
                p = me._pollers.get(DATA)
                if p is not None:
                    p.rearm()

        setattr(obj, name, receive)


def unwrap_receives(obj: Any, names) -> None:
    for name in names:
        obj.__dict__.pop(name, None)
