"""Byte-message loops: the sequence number in the first and last 8 bytes of a template.

One producer and one consumer loop per way of moving bytes (copy per call, lists, in-place
claim/view, their batch forms). Like the object loops in :mod:`.workloads`, every consumer
checks every message's length and stamps (the whole content every message up to 4 KiB,
every 8th above) and raises :class:`~.messages.CheckError` on the first wrong one; the
checks are written out inside each loop on purpose (a helper call per message would be
measured). Up to 4 KiB a message is checked whole with one ``struct`` unpack compared with
``(seq, middle, seq)``: its length, stamps and every byte for the price of one call (the
checks written out cost so much that with a no-op receive the 64 B loop ran at 0.84M
msg/s: it measured itself; now 4.7M/s). Which of length, stamps or content is wrong is
worked out only once a check failed.
"""
from __future__ import annotations

import struct
import time

from .._units import KiB
from .messages import QF, Received, _bad, template


def _verify_every(size: int) -> int:
    return 1 if size <= 4 * KiB else 8


def produce_bytes(send, start: int, n: int, size: int) -> None:
    """send(buf) messages start..start+n-1; send must have copied buf when it returns
    (the next message reuses it)."""
    buf = bytearray(template(size))
    pack, last = QF.pack_into, size - 8
    for i in range(start, start + n):
        pack(buf, 0, i)
        pack(buf, last, i)
        send(buf)


def produce_bytes_many(send_many, start: int, n: int, size: int, batch: int) -> None:
    """send_many() messages start..start+n-1 in lists of *batch*."""
    mid = template(size)[8:size - 8]
    p, end = QF.pack, start + n
    for b in range(start, end, batch):
        send_many([p(i) + mid + p(i) for i in range(b, min(end, b + batch))])


def produce_bytes_claim(claim, start: int, n: int, size: int) -> None:
    """Write messages start..start+n-1 in place, ``with claim(size) as mv``."""
    tmpl = template(size)
    pack, last = QF.pack_into, size - 8
    for i in range(start, start + n):
        with claim(size) as mv:
            mv[:] = tmpl
            pack(mv, 0, i)
            pack(mv, last, i)


def produce_bytes_claim_many(claim_many, start: int, n: int, size: int, batch: int) -> None:
    """Write messages start..start+n-1 in place, *batch* at a time, ``with
    claim_many(sizes) as views``."""
    tmpl = template(size)
    pack, last, end = QF.pack_into, size - 8, start + n
    for b in range(start, end, batch):
        k = min(end, b + batch) - b
        with claim_many([size] * k) as views:
            for i, mv in enumerate(views, b):
                mv[:] = tmpl
                pack(mv, 0, i)
                pack(mv, last, i)


class _ByteChecker:
    """Checks byte messages: length, seq stamps, and (sampled) the whole content."""

    def __init__(self, size: int, n: int, start: int) -> None:
        self.size, self.start, self.n = size, start, n
        self.exp = bytearray(template(size))
        self.every = _verify_every(size)
        self.lastseq = start + n - 1
        #: up to 4 KiB: one unpack of the whole message, compared with (i, middle, i)
        #: (struct.error when the length is wrong); None above: sampled, as written out
        self.whole = struct.Struct(f"<Q{size - 16}sQ").unpack if self.every == 1 else None
        self.mid = template(size)[8:size - 8]

    def explain(self, m, i: int) -> None:
        """Raise CheckError for message *i*, which failed the whole comparison: a wrong
        length or stamps, else its content."""
        if len(m) != self.size or QF.unpack_from(m, 0)[0] != i or \
                QF.unpack_from(m, self.size - 8)[0] != i:
            self.fail(m, i)
        _bad(f"message {i}: content differs from what was sent")

    def full(self, m, i: int) -> None:
        QF.pack_into(self.exp, 0, i)
        QF.pack_into(self.exp, self.size - 8, i)
        if self.exp != m:
            _bad(f"message {i}: content differs from what was sent")

    def fail(self, m, i: int) -> None:
        if len(m) != self.size:
            _bad(f"message {i}: {len(m)} bytes, expected {self.size}")
        _bad(f"message {i}: carries sequence numbers {QF.unpack_from(m, 0)[0]} / "
             f"{QF.unpack_from(m, self.size - 8)[0]}")


def consume_bytes(recv, start: int, n: int, size: int) -> Received:
    """recv() messages start..start+n-1, checking each."""
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    whole, mid, explain = ck.whole, ck.mid, ck.explain
    t_first = None
    s = nbytes = 0
    i = start - 1
    for i in range(start, start + n):
        m = recv()
        if whole is not None:
            try:
                ok = whole(m) == (i, mid, i)
            except struct.error:
                ok = False
            if not ok:
                explain(m, i)
        else:
            if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                fail(m, i)
            if not (i - start) % every or i == ck.lastseq:
                full(m, i)
        s += i
        nbytes += len(m)
        if t_first is None:
            t_first = time.perf_counter()
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start + 1, s, nbytes)


def consume_bytes_many(recv_many, start: int, n: int, size: int) -> Received:
    """recv_many() lists until messages start..start+n-1 came, checking each."""
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    whole, mid, explain = ck.whole, ck.mid, ck.explain
    t_first = None
    i, end, s, nbytes = start, start + n, 0, 0
    while i < end:
        batch = recv_many()
        if t_first is None:
            t_first = time.perf_counter()
        for m in batch:
            if whole is not None:
                try:
                    ok = whole(m) == (i, mid, i)
                except struct.error:
                    ok = False
                if not ok:
                    explain(m, i)
            else:
                if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                    fail(m, i)
                if not (i - start) % every or i == ck.lastseq:
                    full(m, i)
            s += i
            nbytes += len(m)
            i += 1
    if i != end:
        _bad(f"received {i - start} messages, expected {n}")
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start, s, nbytes)


def consume_bytes_view(view, start: int, n: int, size: int) -> Received:
    """Read messages start..start+n-1 in place, ``with view() as m``, checking each."""
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    whole, mid, explain = ck.whole, ck.mid, ck.explain
    t_first = None
    s = nbytes = 0
    i = start - 1
    for i in range(start, start + n):
        with view() as m:
            if whole is not None:
                try:
                    ok = whole(m) == (i, mid, i)
                except struct.error:
                    ok = False
                if not ok:
                    explain(m, i)
            else:
                if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                    fail(m, i)
                if not (i - start) % every or i == ck.lastseq:
                    full(m, i)
            nbytes += len(m)
        s += i
        if t_first is None:
            t_first = time.perf_counter()
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start + 1, s, nbytes)


def consume_bytes_view_many(view_many, start: int, n: int, size: int) -> Received:
    """Read messages start..start+n-1 in place, batches at a time, ``with view_many() as
    views``, checking each."""
    ck = _ByteChecker(size, n, start)
    unpack, last, every, full, fail = QF.unpack_from, size - 8, ck.every, ck.full, ck.fail
    whole, mid, explain = ck.whole, ck.mid, ck.explain
    t_first = None
    i, end, s, nbytes = start, start + n, 0, 0
    while i < end:
        with view_many(end - i) as views:
            if t_first is None:
                t_first = time.perf_counter()
            for m in views:
                if whole is not None:
                    try:
                        ok = whole(m) == (i, mid, i)
                    except struct.error:
                        ok = False
                    if not ok:
                        explain(m, i)
                else:
                    if len(m) != size or unpack(m, 0)[0] != i or unpack(m, last)[0] != i:
                        fail(m, i)
                    if not (i - start) % every or i == ck.lastseq:
                        full(m, i)
                s += i
                nbytes += len(m)
                i += 1
    return Received(t_first or time.perf_counter(), time.perf_counter(), i - start, s, nbytes)
