"""Mailbox.send_many / recv_many: many messages per call into C (a mixin of
:class:`ipcfast.mailbox.Mailbox`, kept here so mailbox.py stays one concept).

A batch sends its bodies as one bytes object plus a length array (``ipcf_mbox_send_many``:
all posted under one lock hold, or none), and receives into one buffer of records, header
and body each (``ipcf_mbox_take_many``), read with one struct unpack per header and
unpickled in place.
"""
from __future__ import annotations

import queue as _queue
from typing import Any, Iterable, List, Optional

from . import _native as N
from ._native import ffi, lib

_send_many = lib.ipcf_mbox_send_many
_take_many = lib.ipcf_mbox_take_many
_H = lib.IPCF_MSG_HEAD
_BODY_MAX = 4096               # IPCF_MB_SMALL: larger bodies are sent one by one
_BATCH_BYTES = 1 << 20         # receive buffer of a batch: records of header + body


def _new_batch_buffer():
    buf = N.new_raw("char[]", _BATCH_BYTES)
    return buf, memoryview(ffi.buffer(buf))


class Batches:
    """The batch forms of send and recv (see :class:`ipcfast.mailbox.Mailbox`)."""

    def send_many(self, objs: Iterable[Any], *, type: int = 0, priority: int = 0,
                  block: bool = True, timeout: Optional[float] = None) -> None:
        """Pickle each of *objs* (here) and send it as its own message of this ``type`` and
        ``priority``, to anyone, without a receipt, with one call into C: all of them, in
        order, or none (queue.Full on timeout, or at once with block=False, while there is
        no room for all). ValueError if they could never fit together (more messages than
        ``max_messages``, more bytes than ``capacity``). A body over 4 KiB, or a rendezvous
        mailbox, makes the batch go one :meth:`send` at a time (each with *timeout*): that
        is not all or none, and its queue.Full has a ``sent`` attribute saying how many
        went before it, as ``Ring.send_many``'s."""
        h = self._live()
        dumps = self._dumps
        datas = [dumps(o) for o in objs]
        if not datas:
            return
        datas = [d if d.__class__ is bytes else bytes(memoryview(d)) for d in datas]
        lens = [len(d) for d in datas]
        n, total = len(datas), sum(lens)
        if not self._rendezvous and (n > self.max_messages or
                                     (self.capacity is not None and total > self.capacity)):
            raise ValueError(f"send_many of {n} messages ({total} bytes) can never fit this "
                             f"mailbox ({self.max_messages} messages, capacity {self.capacity})")
        if self._rendezvous or max(lens) > _BODY_MAX:
            self._send_each(datas, type, priority, block, timeout)
            return
        if not (isinstance(type, int) and isinstance(priority, int)) or \
                not (-(1 << 31) <= type < 1 << 31 and -(1 << 31) <= priority < 1 << 31):
            raise ValueError(f"type and priority must be 32-bit ints, not {type!r} and {priority!r}")
        blob, lengths = b"".join(datas), ffi.new("uint64_t[]", lens)
        self._check(N.call_blocking(lambda t: _send_many(h, blob, lengths, n, type, priority, t),
                                    block, timeout, N.EFULL))

    def _send_each(self, datas: List[bytes], type: int, priority: int, block: bool,
                   timeout: Optional[float]) -> None:
        """send_many's one-at-a-time path. Its queue.Full after some were sent says how
        many in ``sent`` (any other error gets ``sent`` too, where it can take one)."""
        for i, d in enumerate(datas):
            try:
                self._send(d, type, priority, 0, block, timeout, None)
            except _queue.Full as e:
                if i:                     # (nothing sent: the Full as it is, sent=0 below)
                    full = _queue.Full(f"mailbox full after {i} of {len(datas)} messages")
                    full.sent = i
                    raise full from e
                e.sent = 0
                raise
            except BaseException as e:
                try:
                    e.sent = i
                except AttributeError:
                    pass
                raise

    def recv_many(self, max_messages: int = 1 << 30, *, block: bool = True,
                  timeout: Optional[float] = None, type: Optional[int] = None,
                  if_busy: str = "error") -> List[Any]:
        """Take up to *max_messages* messages for this receiver (at least one: it waits for
        the first as :meth:`recv` does, then takes what is ready, up to 256 messages and
        about 1 MiB of small bodies, with one call into C) and return them as a list of
        :class:`~ipcfast.mailbox.Message` with their bodies unpickled, in delivery order.
        The batch is taken as a whole: if unpickling one body raises, the exception
        propagates and the batch's later messages are dropped."""
        from .mailbox import Message, _head, _new, _pickle_loads   # (loaded: a dict lookup)
        h = self._live()
        N.int_arg(max_messages, "max_messages", 1, 1 << 63)
        if if_busy != "error" and if_busy != "wait":
            raise ValueError(f"if_busy must be 'error' or 'wait', not {if_busy!r}")
        has_type = type is not None
        t32 = type if has_type else 0
        if has_type and (isinstance(type, bool) or not isinstance(type, int) or
                         not -(1 << 31) <= type < 1 << 31):
            raise ValueError(f"type must be a 32-bit int, not {type!r}")
        wait_right, want = if_busy == "wait", min(max_messages, (1 << 32) - 1)
        pair, self._rx_batch = self._rx_batch, None
        if pair is None:
            pair = _new_batch_buffer()
        buf, mv = pair
        try:
            n = N.call_blocking(lambda t: _take_many(h, buf, _BATCH_BYTES, want, has_type, t32,
                                                     wait_right, t), block, timeout, N.EEMPTY)
            if n == N.EBUFSMALL:         # a first message larger than the whole buffer
                return [self.recv(block=block, timeout=timeout, type=type, if_busy=if_busy)]
            self._check(n)
            out = []
            loads, in_place = self._loads, self._loads_view
            off = 0
            for _ in range(n):
                m = _new(Message)
                m._h = head = _head(mv, off)
                length = head[5]
                start = off + _H
                body = mv[start:start + length]
                m.body = _pickle_loads(body) if in_place else loads(body.tobytes())
                off = start + ((length + 7) & ~7)
                out.append(m)
            return out
        finally:
            self._rx_batch = pair        # given back once every body has been read
