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
from typing import Any, Callable, Optional, Tuple, Union

from . import _native as N
from . import _pickle
from ._handle import SCRATCH as _SCRATCH, Handle, Kind, new_scratch as _new_scratch, recv_args
from ._mailbox_batch import Batches
from ._native import ffi, lib
from ._native import ReceiverBusyError, ReceiverDiedError  # noqa: F401 (raised by check; named here too)
from ._units import fmt_size

_unpack = ffi.unpack
_SLICE = N.SLICE_NS
_post = lib.ipcf_mbox_post
_recv = lib.ipcf_mbox_recv
_send_fast = lib.ipcf_mbox_send      # the common case in 6 arguments (ipcfast.h)
_take = lib.ipcf_mbox_take           # header and body into one buffer, in 4
_take1 = lib.ipcf_mbox_take1         # the same, its arguments in one struct (_new_rx)
_new = object.__new__
_pickle_loads = _pickle.loads
_EEMPTY, _EINTR, _EBUFSMALL, _ECORRUPT = N.EEMPTY, N.EINTR, N.EBUFSMALL, lib.IPCF_ECORRUPT
_RECEIPT = lib.IPCF_MSG_RECEIPT
_POLICIES = {"shared": lib.IPCF_POLICY_SHARED, "exclusive": lib.IPCF_POLICY_EXCLUSIVE}
_RENDEZVOUS_GRACE = 0.01   # a non-blocking rendezvous send waits this long for a waiting receiver
# struct ipcf_msg_info, read in one go (cheaper than one cdata attribute access per field)
_INFO = struct.Struct("=iiQQQQQQiIQ")
assert _INFO.size == ffi.sizeof("struct ipcf_msg_info")
# its first 7 fields (type .. sent_at): a Message's header, read straight from the receive
# buffer that ipcf_mbox_take fills (header at 0, body at IPCF_MSG_HEAD)
_head = struct.Struct("@iiQQQQQ").unpack_from   # (native: aligned as C lays it out, and faster)
_H = lib.IPCF_MSG_HEAD
assert _H == _INFO.size
_RXCAP = _SCRATCH + _H


def _new_rx(h):
    """A receive buffer for ipcf_mbox_take on handle *h*, with what reads it made once:
    (the buffer, a memoryview of all of it, a pointer to the body, a memoryview from the
    body to the end, and the one-argument call's recv_args). pickle.loads reads the body's
    view whole, as it ignores what follows its stream's STOP: no view of the message's
    exact length is made per message."""
    buf = N.new_raw("char[]", _RXCAP)
    mv = memoryview(ffi.buffer(buf))
    return buf, mv, buf + _H, mv[_H:], recv_args(h, buf, _RXCAP)


_pid = [os.getpid()]          # os.getpid() is a syscall: cache it, refresh in forked children
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


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

    # The header is kept as the tuple one struct unpack of C's struct ipcf_msg_info gives
    # (type, priority, sender, to, seq, length, sent_at in ns), its fields read on access:
    # a receive builds no more than it must.
    __slots__ = ("body", "_h")

    def _field(k, doc, scale=None):
        def get(self):
            return self._h[k] if scale is None else self._h[k] / scale

        def set(self, value):
            h = self._h
            self._h = h[:k] + (value if scale is None else round(value * scale),) + h[k + 1:]
        return property(get, set, doc=doc)

    type = _field(0, "chosen by the sender")
    priority = _field(1, "higher is delivered first")
    sender = _field(2, "the sender's id")
    to = _field(3, "destination id, 0 for anyone")
    seq = _field(4, "unique and increasing per mailbox")
    length = _field(5, "body bytes as sent")
    sent_at = _field(6, "time.monotonic() of the send", 1e9)
    del _field

    def __repr__(self) -> str:
        return (f"Message(seq={self.seq}, type={self.type}, priority={self.priority}, "
                f"sender={self.sender}, to={self.to}, length={self.length}, body={self.body!r:.60})")


def _message(body, info) -> Message:
    """A Message from its body and the header C filled in (struct ipcf_msg_info, read in one
    go: cheaper than one cdata attribute access per field)."""
    m = _new(Message)
    m._h = _head(ffi.buffer(info))
    m.body = body
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


class Mailbox(Batches, Handle):
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

    _kind = Kind(
        out_type="ipcf_mbox **",
        create=lib.ipcf_mbox_create,
        attach=lib.ipcf_mbox_attach,
        close=lib.ipcf_mbox_close,
        free=lib.ipcf_mbox_free,
        before_fork=lib.ipcf_mbox_before_fork,
        after_fork=lib.ipcf_mbox_after_fork,
        depart=lib.ipcf_mbox_depart,
        arrive=lib.ipcf_mbox_arrive,
        poller=lib.ipcf_mbox_poller,
    )
    _POLL_RECEIVES = ("recv", "recv_bytes", "recv_many")   # re-arm fileno() after (Handle.fileno)

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
        elif isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity < lib.IPCF_MB_UNBOUNDED:
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
        self._open(N.new_name("mb") if name is None else name,
                   (cap, max_message, slots, _POLICIES[policy]), ident=id, dumps=dumps, loads=loads)

    @classmethod
    def create(cls, name: Optional[str] = None, **kwargs: Any) -> "Mailbox":
        """Create a new mailbox (see the class for the options)."""
        return cls(name, **kwargs)

    @classmethod
    def open(cls, name: str, *, id: Union[int, str, None] = None,
             dumps: Optional[Callable] = None, loads: Optional[Callable] = None) -> "Mailbox":
        """Open the existing mailbox *name* from any process."""
        return cls._attach(name, ident=id, dumps=dumps, loads=loads)

    def _setup(self, ident: Union[int, str, None] = None, dumps: Optional[Callable] = None,
               loads: Optional[Callable] = None) -> None:
        self._id = receiver_id(ident) if ident is not None else None
        capacity = lib.ipcf_mbox_capacity(self._h)
        self.capacity: Optional[int] = None if capacity == lib.IPCF_MB_UNBOUNDED else capacity
        self.max_message = lib.ipcf_mbox_max_message(self._h)
        self.max_messages = lib.ipcf_mbox_max_messages(self._h)
        self.policy = "exclusive" if lib.ipcf_mbox_policy(self._h) == lib.IPCF_POLICY_EXCLUSIVE else "shared"
        self._dumps = dumps or _pickle.dumps
        self._loads = loads or _pickle.loads
        self._post_info = ffi.new("struct ipcf_msg_info *")   # written by C, never read
        self._rendezvous = self.capacity == 0
        self._info = None          # recv's header scratch: taken and given back like _scratch
        # the fast paths (send/recv with the defaults): C knows our id, so they pass none
        if self._id is not None:
            lib.ipcf_mbox_set_id(self._h, self._id)
        self._rx = None            # ipcf_mbox_take's buffer (_new_rx): taken and given back
        self._rx_batch = None      # recv_many's (_mailbox_batch), likewise
        self._loads_view = loads is None       # pickle.loads reads the receive buffer in place

    @property
    def id(self) -> int:
        """This handle's id as sender and receiver (the current pid unless one was given)."""
        return self._id if self._id is not None else _pid[0]

    # ---- lifetime (close, closed, context manager, pickling: Handle) ----
    def unlink(self) -> None:
        """Remove the mailbox's name now; processes that have it open keep using it."""
        self._unlink()

    def _describe(self) -> Tuple[str, ...]:
        return (self.policy, "unbounded" if self.capacity is None else
                ("rendezvous" if self.capacity == 0 else f"capacity={self.capacity}"))

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
        data = self._dumps(obj)
        h = self._h
        # the common case (to anyone, no receipt, no timeout): one call with 6 arguments;
        # anything it does not send (no room, a bad argument, closed) goes the general way,
        # which sends it or raises what it should. A corruption is raised here: the repair
        # that found it has mended the state, so the general way would send without a word
        if (data.__class__ is bytes and wait is None and timeout is None and to == 0 and
                h is not None and not self._rendezvous):
            try:
                rc = _send_fast(h, data, len(data), type, priority, _SLICE if block else 0)
                if not rc:
                    return None
            except (OverflowError, TypeError):
                rc = 0
            if rc == _ECORRUPT:
                self._check(rc)
        return self._send(data, type, priority, to, block, timeout, wait)

    def send_bytes(self, data, *, type: int = 0, priority: int = 0, to: Union[int, str] = 0,
                   block: bool = True, timeout: Optional[float] = None,
                   wait: Optional[str] = None) -> Optional[Receipt]:
        """Send raw bytes (see :meth:`send`)."""
        h = self._h
        if (data.__class__ is bytes and wait is None and timeout is None and to == 0 and
                h is not None and not self._rendezvous):     # the fast path, as in send
            try:
                rc = _send_fast(h, data, len(data), type, priority, _SLICE if block else 0)
                if not rc:
                    return None
            except (OverflowError, TypeError):
                rc = 0
            if rc == _ECORRUPT:
                self._check(rc)
        return self._send(data, type, priority, to, block, timeout, wait)

    def _send(self, data, type: int, priority: int, to, block: bool, timeout: Optional[float],
              wait: Optional[str]) -> Optional[Receipt]:
        h = self._h                       # the closed check (Handle._live), inline
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
            raise ValueError(f"message of {fmt_size(n, 'bytes')} exceeds this mailbox's maximum "
                             f"message of {fmt_size(self.max_message, 'bytes')}")
        flags = _RECEIPT if wait else 0
        receipted = flags or self._rendezvous
        info = ffi.new("struct ipcf_msg_info *") if receipted else self._post_info
        start = time.monotonic() if timeout is not None else 0.0
        me = self._id or _pid[0]
        first = _SLICE if block and timeout is None else N.first_slice(block, timeout)
        try:
            rc = _post(h, payload, n, type, priority, me, dest, flags, first, info)
        except (OverflowError, TypeError):
            raise ValueError(f"type and priority must be 32-bit ints, not {type!r} and "
                             f"{priority!r}") from None
        if rc and block and (rc == N.EFULL or rc == N.EINTR):
            rc = N.call_blocking(lambda t: _post(h, payload, n, type, priority, me, dest,
                                                 flags, t, info), block, timeout, N.EFULL, start)
        if rc:
            self._check(rc)
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
        self._check(rc)                 # IPCF_EPEERDEAD: ReceiverDiedError
        return Receipt(info)

    # ---- receive ----
    def recv_bytes(self, *, block: bool = True, timeout: Optional[float] = None,
                   type: Optional[int] = None, if_busy: str = "error") -> Message:
        """Take the next message for this receiver (addressed to its id or to anyone;
        highest priority first, oldest first within a priority; of ``type`` if given) with
        its body as bytes. Blocks until there is one; queue.Empty on timeout or, with
        block=False, at once. On an exclusive mailbox held by another process raises
        ReceiverBusyError, or with ``if_busy="wait"`` waits for the right."""
        h = self._h
        if h is not None and type is None and timeout is None and if_busy == "error":
            # the common case: one call with one argument (_new_rx's recv_args; 4 without
            # blocking), header and body in one buffer
            # (taken and given back like Handle's scratch: a racing thread makes its own)
            rx, self._rx = self._rx, None
            if rx is None:
                rx = _new_rx(h)
            n = _take1(rx[4]) if block else _take(h, rx[0], _RXCAP, 0)
            if n >= 0:
                m = _new(Message)
                m._h = _head(rx[1])
                m.body = _unpack(rx[2], n)
                self._rx = rx
                return m
            self._rx = rx
            if n != _EBUFSMALL and (not block or (n != _EEMPTY and n != _EINTR)):
                self._check(n)                 # (raises: queue.Empty, ReceiverBusyError, ...)
        return self._recv(block, timeout, type, if_busy)

    def recv(self, *, block: bool = True, timeout: Optional[float] = None,
             type: Optional[int] = None, if_busy: str = "error") -> Message:
        """Like :meth:`recv_bytes`, with the body unpickled."""
        h = self._h
        if h is not None and type is None and timeout is None and if_busy == "error":
            rx, self._rx = self._rx, None      # the fast path, as in recv_bytes
            if rx is None:
                rx = _new_rx(h)
            try:
                n = _take1(rx[4]) if block else _take(h, rx[0], _RXCAP, 0)
                if n >= 0:
                    m = _new(Message)
                    m._h = _head(rx[1])
                    # unpickled in place (pickle.loads keeps no reference to its input);
                    # the buffer goes back only once it has been read
                    m.body = (_pickle_loads(rx[3]) if self._loads_view
                              else self._loads(_unpack(rx[2], n)))
                    return m
            finally:
                self._rx = rx
            if n != _EBUFSMALL and (not block or (n != _EEMPTY and n != _EINTR)):
                self._check(n)
        m = self._recv(block, timeout, type, if_busy)
        m.body = self._loads(m.body)
        return m

    def _recv(self, block: bool, timeout: Optional[float], type: Optional[int],
              if_busy: str) -> Message:
        h = self._h                       # the closed check (Handle._live), inline
        if h is None:
            raise self._closed_error()
        if if_busy != "error" and if_busy != "wait":
            raise ValueError(f"if_busy must be 'error' or 'wait', not {if_busy!r}")
        has_type = type is not None
        wait_right = if_busy == "wait"
        me = self._id or _pid[0]
        # the scratch buffer and header (Handle._take_scratch, inline): a thread racing us
        # finds None and allocates its own; both go back only once the message is copied out
        buf, self._scratch = self._scratch, None
        if buf is None:
            buf = _new_scratch()
        pair, self._info = self._info, None
        if pair is None:
            raw = bytearray(_INFO.size)
            pair = (raw, ffi.from_buffer("struct ipcf_msg_info *", raw))
        try:
            first = _SLICE if block and timeout is None else N.first_slice(block, timeout)
        except (TypeError, ValueError):
            self._scratch, self._info = buf, pair
            raise
        try:
            n = _recv(h, buf, _SCRATCH, me, has_type, type if has_type else 0, wait_right,
                      first, pair[1])
        except (OverflowError, TypeError):
            self._scratch, self._info = buf, pair
            raise ValueError(f"type must be a 32-bit int, not {type!r}") from None
        if n >= 0:
            m = _message(_unpack(buf, n), pair[1])
            self._scratch, self._info = buf, pair
            return m
        return self._recv_slow(n, h, buf, me, has_type, type, wait_right, block, timeout, pair)

    def _recv_slow(self, n: int, h, scratch, me: int, has_type: bool, mtype: Optional[int],
                   wait_right: bool, block: bool, timeout: Optional[float], pair) -> Message:
        """After a first try into *scratch* returned *n*: wait while there is nothing for
        us, or take a message larger than the scratch buffer into a buffer of its size.
        Gives *scratch* and the header *pair* back once the message is copied out."""
        t32 = mtype if has_type else 0
        info = pair[1]
        buf, size = scratch, _SCRATCH
        start = time.monotonic()
        try:
            while n in (N.EEMPTY, N.EINTR, N.EBUFSMALL) and (block or n == N.EBUFSMALL):
                if n == N.EBUFSMALL:            # a message larger than our buffer: grow, retry
                    size = info.length
                    buf = N.new_raw("char[]", size)
                cur, cap = buf, size
                n = N.call_blocking(lambda t: _recv(h, cur, cap, me, has_type, t32, wait_right, t, info),
                                    block, timeout, N.EEMPTY, start)
                if n == N.EEMPTY:
                    break
            self._check(n)                  # IPCF_EBUSY: ReceiverBusyError
            return _message(_unpack(buf, n), info)
        finally:
            self._scratch, self._info = scratch, pair   # copied out (or nothing came)

    def release(self) -> bool:
        """Give up the exclusive right to receive, if this process holds it."""
        return self._check(lib.ipcf_mbox_release(self._live())) == 1
