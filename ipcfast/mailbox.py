"""Mailbox: indirect communication through a named port, as in the notes ipcfast is built
from: messages with a header and a body, priorities, types, addressing, all three buffer
capacities, blocking and non-blocking send and receive, receipts, and a choice of receive
policy when several processes receive.
"""
from __future__ import annotations

import hashlib
import os
import queue as _queue
import struct
import time
import weakref
from typing import Any, Callable, Optional, Union

from . import _native as N
from . import _pickle
from ._native import IpcfastError, ffi, lib

_SCRATCH = 64 * 1024
_INT32 = (-(1 << 31), (1 << 31) - 1)
_unpack = ffi.unpack
_SLICE = N.SLICE_NS
_post = lib.ipcf_mbox_post
_recv = lib.ipcf_mbox_recv
_RECEIPT = lib.IPCF_MSG_RECEIPT
_POLICIES = {"shared": lib.IPCF_POLICY_SHARED, "exclusive": lib.IPCF_POLICY_EXCLUSIVE}
_RENDEZVOUS_GRACE = 0.01   # a non-blocking rendezvous send waits this long for a waiting receiver
# struct ipcf_msg_info, read in one go (cheaper than one cdata attribute access per field)
_INFO = struct.Struct("=iiQQQQQQiIQ")
assert _INFO.size == ffi.sizeof("struct ipcf_msg_info")


_pid = [os.getpid()]          # os.getpid() is a syscall: cache it, refresh in forked children
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


class ReceiverBusyError(IpcfastError):
    """An exclusive mailbox's right to receive is held by another live process."""


class ReceiverDiedError(IpcfastError):
    """The receiver that took a message died before finishing; it was not delivered."""


def receiver_id(ident: Union[int, str]) -> int:
    """The numeric id for *ident*: a positive int as is, a name hashed to a stable 63-bit
    id (the same in every process)."""
    if isinstance(ident, bool) or not isinstance(ident, (int, str)):
        raise TypeError(f"an id is a positive int or a str, not {type(ident).__name__}")
    if isinstance(ident, int):
        if not 0 < ident < 1 << 63:
            raise ValueError(f"id {ident} is outside 1..2**63-1")
        return ident
    if not ident:
        raise ValueError("an id name must not be empty")
    h = int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "little")
    return (h & ((1 << 63) - 1)) or 1


class Message:
    """A received message: its ``body`` and its header: ``type`` (chosen by the sender),
    ``priority`` (higher is delivered first), ``sender`` (source id), ``to`` (destination id,
    0 for anyone), ``seq`` (unique and increasing per mailbox), ``length`` (body bytes as
    sent) and ``sent_at`` (``time.monotonic()`` of the send)."""

    __slots__ = ("body", "type", "priority", "sender", "to", "seq", "length", "sent_at")

    def __repr__(self) -> str:
        return (f"Message(seq={self.seq}, type={self.type}, priority={self.priority}, "
                f"sender={self.sender}, to={self.to}, length={self.length}, body={self.body!r:.60})")


def _message(body, info) -> Message:
    """A Message from its body and the header C filled in (struct ipcf_msg_info, read in one
    go: cheaper than one cdata attribute access per field)."""
    m = Message.__new__(Message)
    m.type, m.priority, m.sender, m.to, m.seq, m.length, sent_at = _INFO.unpack(ffi.buffer(info))[:7]
    m.body = body
    m.sent_at = sent_at / 1e9      # as time.monotonic()
    return m


class Receipt:
    """Proof of delivery returned by a send that waited for its receiver."""

    __slots__ = ("receiver", "receiver_pid", "seq", "received_at")

    def __init__(self, info) -> None:
        self.receiver = info.receiver          #: id of the receiver that took the message
        self.receiver_pid = info.receiver_pid  #: its process id
        self.seq = info.seq                    #: the message's sequence number
        self.received_at = info.received_at / 1e9

    def __repr__(self) -> str:
        return f"Receipt(seq={self.seq}, receiver={self.receiver}, receiver_pid={self.receiver_pid})"


class Mailbox:
    """A named mailbox (port) in shared memory, shared by any number of senders and
    receivers, related or not.

    ``Mailbox(name)`` / ``Mailbox.create(name)`` makes one (FileExistsError if the name is
    taken); ``Mailbox.open(name)`` opens it (FileNotFoundError if absent).

    - ``capacity``: ``0`` is a rendezvous (a send returns once a receiver has the message);
      an int bounds the bytes held (a full mailbox makes a blocking send wait, a
      non-blocking one raise queue.Full); ``None`` is unbounded.
    - ``policy``: ``"shared"`` (the system picks the receiver of each message; a sender can
      learn who from its receipt) or ``"exclusive"`` (one receiving process at a time holds
      the right; it passes on when the holder closes the mailbox, calls :meth:`release` or
      dies).
    - ``id``: this handle's id as a sender and a receiver (default: the process id; a name
      is hashed to a stable id, see :func:`receiver_id`).
    """

    _handles = N.HandleTable(lib.ipcf_mbox_before_fork, lib.ipcf_mbox_after_fork, lib.ipcf_mbox_close)

    def __init__(self, name: Optional[str] = None, *, capacity: Optional[int] = 1 << 20,
                 max_message: int = 64 * 1024, max_messages: Optional[int] = None,
                 policy: str = "shared", id: Union[int, str, None] = None,
                 dumps: Optional[Callable[[Any], bytes]] = None,
                 loads: Optional[Callable[[bytes], Any]] = None) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"policy must be 'shared' or 'exclusive', not {policy!r}")
        if isinstance(max_message, bool) or not isinstance(max_message, int) or not 0 < max_message <= 1 << 30:
            raise ValueError(f"max_message must be an int in 1..{1 << 30}, not {max_message!r}")
        if capacity is None:
            cap = lib.IPCF_MB_UNBOUNDED
            stride = lib.ipcf_mbox_stride(max_message)
            slots = min(1 << 20, lib.IPCF_MAX_CAPACITY // stride)   # a sparse file: pages only as used
        elif isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be 0 (rendezvous), a positive int (bytes) or None "
                             f"(unbounded), not {capacity!r}")
        else:
            if capacity and capacity < max_message:
                max_message = capacity
            cap = capacity
            slots = 256 if capacity == 0 else 4096
        if max_messages is not None:
            if isinstance(max_messages, bool) or not isinstance(max_messages, int) or not 0 < max_messages < 1 << 31:
                raise ValueError(f"max_messages must be a positive int, not {max_messages!r}")
            slots = max_messages
        name = N.new_name("mb") if name is None else name
        out = ffi.new("ipcf_mbox **")
        N.check(lib.ipcf_mbox_create(N.encode_name(name, "Mailbox"), cap, max_message, slots, _POLICIES[policy], out),
                "Mailbox", name)
        self._setup(out[0], name, id, dumps, loads)

    @classmethod
    def create(cls, name: Optional[str] = None, **kwargs: Any) -> "Mailbox":
        """Create a new mailbox (see the class for the options)."""
        return cls(name, **kwargs)

    @classmethod
    def open(cls, name: str, *, id: Union[int, str, None] = None,
             dumps: Optional[Callable] = None, loads: Optional[Callable] = None) -> "Mailbox":
        """Open the existing mailbox *name* from any process."""
        self = cls.__new__(cls)
        out = ffi.new("ipcf_mbox **")
        N.check(lib.ipcf_mbox_attach(N.encode_name(name, "Mailbox"), out), "Mailbox", name)
        self._setup(out[0], name, id, dumps, loads)
        return self

    def _setup(self, h, name: str, ident, dumps, loads) -> None:
        self._h = h
        weakref.finalize(self, lib.ipcf_mbox_free, h)    # memory goes when no thread can use it
        self.name = name
        self._explicit_id = ident
        self._id = receiver_id(ident) if ident is not None else None
        cap = lib.ipcf_mbox_capacity(h)
        self.capacity: Optional[int] = None if cap == lib.IPCF_MB_UNBOUNDED else cap
        self.max_message = lib.ipcf_mbox_max_message(h)
        self.max_messages = lib.ipcf_mbox_max_messages(h)
        self.policy = "exclusive" if lib.ipcf_mbox_policy(h) == lib.IPCF_POLICY_EXCLUSIVE else "shared"
        self._custom = (dumps, loads)
        self._dumps = dumps or _pickle.dumps
        self._loads = loads or _pickle.loads
        self._buf = None
        self._post_info = ffi.new("struct ipcf_msg_info *")   # written by C, never read
        self._rendezvous = self.capacity == 0
        self._info = None
        self._handles.add(self)

    @property
    def id(self) -> int:
        """This handle's id as sender and receiver (the current pid unless one was given)."""
        return self._id if self._id is not None else _pid[0]

    # ---- lifetime ----
    def _closed_error(self) -> ValueError:
        return ValueError(f"Mailbox {self.name!r} is closed")

    def _live(self):
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def close(self) -> None:
        """Detach (and give up the exclusive right if held). The last process to close a
        mailbox removes it. Idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            lib.ipcf_mbox_close(h)

    def unlink(self) -> None:
        """Remove the mailbox's name now; processes that have it open keep using it."""
        rc = lib.ipcf_seg_unlink(self.name.encode())
        if rc != -2:     # ENOENT: already gone
            N.check(rc, "Mailbox", self.name)

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        # in transit until the receiver opens it: the mailbox outlives our close meanwhile
        lib.ipcf_mbox_depart(self._live(), N.TRANSIT_NS)
        return (_open, (self.name, self._explicit_id) + self._custom + (lib.ipcf_self_word(),))

    def __repr__(self) -> str:
        cap = "unbounded" if self.capacity is None else ("rendezvous" if self.capacity == 0
                                                         else f"capacity={self.capacity}")
        return f"<ipcfast.Mailbox {self.name!r} {self.policy} {cap}{' closed' if self._h is None else ''}>"

    def __len__(self) -> int:
        """Messages waiting to be received now."""
        return lib.ipcf_mbox_count(self._live())

    @property
    def bytes_held(self) -> int:
        return lib.ipcf_mbox_bytes_held(self._live())

    # ---- send ----
    def send(self, obj: Any, *, type: int = 0, priority: int = 0, to: Union[int, str] = 0,
             block: bool = True, timeout: Optional[float] = None,
             wait: Optional[str] = None) -> Optional[Receipt]:
        """Pickle *obj* (here: a pickling error is raised here) and send it.

        ``wait="received"`` (and any send on a rendezvous mailbox) returns only once a
        receiver has taken the message, with a :class:`Receipt`; if none does before the
        timeout the message is withdrawn and queue.Full raised. Without it the send returns
        as soon as the message is in the mailbox (waiting, or raising queue.Full, only while
        a bounded mailbox is full)."""
        return self._send(self._dumps(obj), type, priority, to, block, timeout, wait)

    def send_bytes(self, data, *, type: int = 0, priority: int = 0, to: Union[int, str] = 0,
                   block: bool = True, timeout: Optional[float] = None,
                   wait: Optional[str] = None) -> Optional[Receipt]:
        """Send raw bytes (see :meth:`send`)."""
        return self._send(data, type, priority, to, block, timeout, wait)

    def _send(self, data, type: int, priority: int, to, block: bool, timeout: Optional[float],
              wait: Optional[str]) -> Optional[Receipt]:
        h = self._h
        if h is None:
            raise self._closed_error()
        if wait is not None and wait != "received":
            raise ValueError(f"wait must be None or 'received', not {wait!r}")
        dest = 0 if to == 0 else receiver_id(to)
        if data.__class__ is bytes:        # (`type` is a parameter here)
            payload, n = data, len(data)
        else:
            payload, n = N.as_buffer(data)
        if n > self.max_message:
            raise ValueError(f"message of {n} bytes exceeds this mailbox's maximum message of "
                             f"{self.max_message} bytes")
        flags = _RECEIPT if wait else 0
        receipted = flags or self._rendezvous
        info = ffi.new("struct ipcf_msg_info *") if receipted else self._post_info
        start = time.monotonic() if timeout is not None else 0.0
        me = self._id or _pid[0]
        try:
            rc = _post(h, payload, n, type, priority, me, dest, flags,
                       _SLICE if block and timeout is None else N.first_slice(block, timeout), info)
        except (OverflowError, TypeError):
            raise ValueError(f"type and priority must be 32-bit ints, not {type!r} and "
                             f"{priority!r}") from None
        if rc and block and (rc == N.EFULL or rc == N.EINTR):
            rc = N.call_blocking(lambda t: _post(h, payload, n, type, priority, me, dest,
                                                 flags, t, info), block, timeout, N.EFULL, start)
        if rc:
            N.check(rc, "Mailbox", self.name)
        if not receipted:
            return None
        return self._await(h, info, block, timeout, start)

    def _await(self, h, info, block: bool, timeout: Optional[float], start: float) -> Receipt:
        slot, seq = info.slot, info.seq
        if not block:
            block, timeout, start = True, _RENDEZVOUS_GRACE, time.monotonic()
        try:
            rc = N.call_blocking(lambda t: lib.ipcf_mbox_await(h, slot, seq, t, info),
                                 block, timeout, N.ETIMEOUT, start)
        except BaseException:           # Ctrl-C while waiting: take the message back
            lib.ipcf_mbox_withdraw(h, slot, seq, info)
            raise
        if rc == N.ETIMEOUT:
            rc = lib.ipcf_mbox_withdraw(h, slot, seq, info)
            if rc == 0:
                raise _queue.Full("no receiver took the message in time; it was withdrawn")
            rc = 0 if rc == 1 else rc
        if rc == lib.IPCF_EPEERDEAD:
            raise ReceiverDiedError(f"the receiver of message {seq} died before finishing; "
                                    "it was not delivered")
        N.check(rc, "Mailbox", self.name)
        return Receipt(info)

    # ---- receive ----
    def recv_bytes(self, *, block: bool = True, timeout: Optional[float] = None,
                   type: Optional[int] = None, if_busy: str = "error") -> Message:
        """Take the next message for this receiver (addressed to its id or to anyone;
        highest priority first, oldest first within a priority; of ``type`` if given) with
        its body as bytes. Blocks until there is one; queue.Empty on timeout or, with
        block=False, at once. On an exclusive mailbox held by another process raises
        ReceiverBusyError, or with ``if_busy="wait"`` waits for the right."""
        return self._recv(block, timeout, type, if_busy)

    def recv(self, *, block: bool = True, timeout: Optional[float] = None,
             type: Optional[int] = None, if_busy: str = "error") -> Message:
        """Like :meth:`recv_bytes`, with the body unpickled."""
        m = self._recv(block, timeout, type, if_busy)
        m.body = self._loads(m.body)
        return m

    def _recv(self, block: bool, timeout: Optional[float], type: Optional[int],
              if_busy: str) -> Message:
        h = self._h
        if h is None:
            raise self._closed_error()
        if if_busy != "error" and if_busy != "wait":
            raise ValueError(f"if_busy must be 'error' or 'wait', not {if_busy!r}")
        has_type = type is not None
        wait_right = if_busy == "wait"
        me = self._id or _pid[0]
        # per-handle scratch: a thread racing us finds None and allocates its own
        buf, self._buf = self._buf, None
        if buf is None:
            buf = N.new_raw("char[]", _SCRATCH)
        pair, self._info = self._info, None
        if pair is None:
            raw = bytearray(_INFO.size)
            pair = (raw, ffi.from_buffer("struct ipcf_msg_info *", raw))
        try:
            n = _recv(h, buf, _SCRATCH, me, has_type, type if has_type else 0, wait_right,
                      _SLICE if block and timeout is None else N.first_slice(block, timeout),
                      pair[1])
        except (OverflowError, TypeError):
            self._buf = buf
            raise ValueError(f"type must be a 32-bit int, not {type!r}") from None
        if n >= 0:
            m = _message(_unpack(buf, n), pair[1])
            self._buf, self._info = buf, pair
            return m
        return self._recv_slow(n, h, buf, me, has_type, type, wait_right, block, timeout, pair[1])

    def _recv_slow(self, n: int, h, buf, me: int, has_type: bool, mtype: Optional[int],
                   wait_right: bool, block: bool, timeout: Optional[float], info) -> Message:
        t32 = mtype if has_type else 0
        size = _SCRATCH
        start = time.monotonic()
        while n in (N.EEMPTY, N.EINTR, N.EBUFSMALL) and (block or n == N.EBUFSMALL):
            if n == N.EBUFSMALL:            # a message larger than our buffer: grow, retry
                self._buf = buf if size == _SCRATCH else self._buf
                size = info.length
                buf = N.new_raw("char[]", size)
            cur, cap = buf, size
            n = N.call_blocking(lambda t: _recv(h, cur, cap, me, has_type, t32, wait_right, t, info),
                                block, timeout, N.EEMPTY, start)
            if n == N.EEMPTY:
                break
        if size == _SCRATCH:
            self._buf = buf
        if n == lib.IPCF_EBUSY:
            raise ReceiverBusyError(f"Mailbox {self.name!r} is exclusive and another process "
                                    "holds the right to receive")
        N.check(n, "Mailbox", self.name)
        return _message(_unpack(buf, n), info)

    def release(self) -> bool:
        """Give up the exclusive right to receive, if this process holds it."""
        return N.check(lib.ipcf_mbox_release(self._live()), "Mailbox", self.name) == 1


def _open(name, ident=None, dumps=None, loads=None, sender=0) -> Mailbox:
    mb = Mailbox.open(name, id=ident, dumps=dumps, loads=loads)
    lib.ipcf_mbox_arrive(mb._h, sender)
    return mb
