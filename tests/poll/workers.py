"""Handle kinds and child-process targets of the file-descriptor tests (no tests here).

Each kind is a factory ``make() -> (handle to poll, send(obj), recv(), [handles to close])``:
a Queue, SimpleQueue, JoinableQueue, Ring, Mailbox, and a Pipe's receiving Connection.
Child targets are module-level and import only ipcfast and tests.support (spawn-friendly).
"""
from __future__ import annotations

import os
import pickle
import select

import ipcfast
from ipcfast._native import ffi, lib
from tests.support import shm
from tests.support.procs import CHILD_WAIT


def _queue(cls):
    def make():
        q = cls()
        return q, q.put, lambda: q.get(timeout=CHILD_WAIT), [q]
    return make


def _ring():
    r = ipcfast.Ring(1 << 16)
    return (r, lambda o: r.send_bytes(pickle.dumps(o)),
            lambda: pickle.loads(r.recv_bytes(timeout=CHILD_WAIT)), [r])


def _mailbox():
    m = ipcfast.Mailbox()
    return m, m.send, lambda: m.recv(timeout=CHILD_WAIT).body, [m]


def _mailbox_fast():            # recv() with the defaults: the one-call fast path
    m = ipcfast.Mailbox()
    return m, m.send, lambda: m.recv().body, [m]


def _mailbox_many():
    m = ipcfast.Mailbox()
    return m, m.send, lambda: m.recv_many(1)[0].body, [m]


def _pipe():
    a, b = ipcfast.Pipe()
    return a, b.send, a.recv, [a, b]


KINDS = {
    "Queue": _queue(ipcfast.Queue),
    "SimpleQueue": lambda: (lambda q: (q, q.put, q.get, [q]))(ipcfast.SimpleQueue()),
    "JoinableQueue": _queue(ipcfast.JoinableQueue),
    "Ring": _ring,
    "Mailbox": _mailbox,
    "Mailbox recv()": _mailbox_fast,
    "Mailbox recv_many": _mailbox_many,
    "Connection": _pipe,
}


def readable(obj, timeout: float = 0.0) -> bool:
    return bool(select.select([obj], [], [], timeout)[0])


def send_to(handle, obj) -> None:
    """Child: send *obj* through *handle* (a Queue-like, Ring, Mailbox or Connection)."""
    if isinstance(handle, ipcfast.Ring):
        handle.send_bytes(pickle.dumps(obj))
    elif isinstance(handle, (ipcfast.Connection, ipcfast.Mailbox)):
        handle.send(obj)
    else:
        handle.put(obj)


def child_send(handle, obj, close_after: bool = True) -> None:
    send_to(handle, obj)
    if close_after:
        handle.close()


def child_wait_then_report(q, report) -> None:
    """Child: wait with select() on *q*'s descriptor (made here), then tell *report* what
    it got."""
    report.put("armed")
    ok = readable(q, CHILD_WAIT)
    report.put(("readable", ok, q.get(timeout=0) if ok else None))
    q.close()
    report.close()


def child_arm_and_wait(q, report) -> None:
    """Child: arm a poller on *q*, report it, and wait to be killed."""
    q.fileno()
    report.put(os.getpid())
    select.select([], [], [], CHILD_WAIT)


def poller_words(name: str, event: str = "data", ctl: str = "struct ipcf_queue_ctl"):
    """(sleeping, poller identities) of the *event* of queue (or ring, with *ctl*) *name*,
    read from the file."""
    off = lib.IPCF_CTL_OFFSET + ffi.offsetof(ctl, event)
    with open(shm.path(name), "rb") as f:
        f.seek(off)
        raw = bytearray(f.read(ffi.sizeof("struct ipcf_event")))
    ev = ffi.cast("struct ipcf_event *", ffi.from_buffer(raw))
    return ev.sleeping, [ev.poller[i] for i in range(lib.IPCF_EVENT_POLLERS)]



def child_hold_writer(conn, report) -> None:
    """Child: hold the sending end *conn*, report our pid, wait to be killed."""
    report.put(os.getpid())
    select.select([], [], [], CHILD_WAIT)
    conn.close()
