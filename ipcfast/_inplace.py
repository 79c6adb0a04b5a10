"""In-place access to a Ring's memory: ``Ring.claim`` (write a message where it will be read)
and ``Ring.view`` (read one where it was written), and what keeps that memory safe when a
caller keeps a slice of it past the ``with`` block.

Both are small classes rather than ``contextlib`` generators: a generator-based context
manager costs several microseconds per use, more than moving a small message by copy, and
the point of zero-copy is to be cheaper than the copy at every size. Each use makes one cffi
buffer over the message's bytes; a memoryview of it is handed out, and at the end of the
block the buffer's reference count tells whether a view of the memory (an export, or a
slice of the memoryview) outlived the block. Such a claim is not published (a kept view
could still change it) and such a view raises BufferError (later messages will overwrite
what it shows); either way the Ring stays mapped while the kept memory lives (``_KEPT``),
so reading it never touches unmapped memory.
"""
from __future__ import annotations

import sys
from typing import Any, List, Optional, Tuple

from . import _native as N
from ._native import ffi, lib

_SLICE = N.SLICE_NS
_refs = sys.getrefcount
_buffer = ffi.buffer
_claim = lib.ipcf_ring_claim
_commit = lib.ipcf_ring_commit
_abort = lib.ipcf_ring_abort
_peek = lib.ipcf_ring_peek
_release_rec = lib.ipcf_ring_release
_unpeek = lib.ipcf_ring_unpeek

#: (buffer, its reference count when only ipcfast held it, the Ring) for each claim/view
#: whose memory a caller kept past the block
_KEPT: List[Tuple[Any, int, Any]] = []


def keep_mapped(fb, base: int, ring) -> None:
    _KEPT.append((fb, base, ring))
    prune_kept()


def prune_kept() -> None:
    """Forget the kept buffers whose last outside view has gone (checked whenever another is
    kept and whenever a Ring closes)."""
    # an entry's buffer is held by the tuple (and getrefcount's argument): `base` was taken
    # when only the Claim/View slot (and getrefcount's argument) held it
    _KEPT[:] = [e for e in _KEPT if _refs(e[0]) > e[1]]


def _let_go(mv: memoryview) -> bool:
    """Release *mv*; False if a buffer export of it is still alive."""
    try:
        mv.release()
        return True
    except BufferError:
        return False


def _end_claim(c, ok: bool, failed: bool, commit) -> None:
    """End claim *c* (Claim or ClaimMany) whose views were let go (*ok*: no export was
    alive): abandoned if the block raised or a view of its memory outlived it, else
    published with *commit()*."""
    h, fb = c._h, c._fb
    c._fb = None
    if failed:
        _abort(h)
        return
    if not ok or _refs(fb) > c._base:          # (`fb` here stands for the cleared slot)
        _abort(h)
        keep_mapped(fb, c._base, c._ring)
        raise BufferError("a view of the claimed memory (an export or a slice) is still "
                          "alive; the message was not sent")
    rc = commit()
    if rc:
        c._ring._check(rc)


def _end_view(v, ok: bool, failed: bool) -> None:
    """End view *v* (View or ViewMany): its messages stay if the block raised, else they
    are removed (BufferError after, if a view of their memory outlived the block)."""
    h, fb = v._h, v._fb
    v._fb = None
    if failed:
        _unpeek(h)                   # the messages stay for the next reader
        return
    released = ok and _refs(fb) <= v._base     # (`fb` here stands for the cleared slot)
    _release_rec(h)
    if not released:
        keep_mapped(fb, v._base, v._ring)
        raise BufferError("a view of the message (an export or a slice) is still alive; "
                          "its bytes will be overwritten by later messages")


class Claim:
    """``with ring.claim(size) as mv``: *size* writable bytes in the ring, published when
    the block exits normally and abandoned (never visible) if it raises."""

    __slots__ = ("_ring", "_size", "_block", "_timeout", "_h", "_fb", "_base", "_mv")

    def __init__(self, ring, size: int, block: bool, timeout: Optional[float]) -> None:
        if size.__class__ is not int or size < 0 or size >= 1 << 63:
            N.int_arg(size, "size", 0, 1 << 63)          # raises, naming the argument
        if size > ring.max_message:
            raise ring._too_big(size)
        if timeout is not None:
            N.timeout_arg(timeout)
        self._ring, self._size, self._block, self._timeout = ring, size, block, timeout
        self._fb = None

    def __enter__(self) -> memoryview:
        ring, size = self._ring, self._size
        h = ring._h
        if h is None or self._fb is not None:
            ring._live()
            raise RuntimeError("this claim is already open")
        out = ring._out
        block, timeout = self._block, self._timeout
        rc = _claim(h, size, _SLICE if block and timeout is None else 0, out)
        if rc:
            if rc == N.EFULL or rc == N.EINTR:
                rc = N.call_blocking(lambda t: _claim(h, size, t, out), block, timeout, N.EFULL)
            ring._check(rc)
        self._h = h
        self._fb = _buffer(out[0], size)
        self._base = _refs(self._fb)
        mv = self._mv = memoryview(self._fb)
        return mv

    def __exit__(self, et, ev, tb) -> None:
        ok = _let_go(self._mv)
        self._mv = None
        _end_claim(self, ok, et is not None, lambda: _commit(self._h, self._size))


class View:
    """``with ring.view() as mv``: the oldest message, read-only and in place; removed when
    the block exits, left for the next reader if it raises."""

    __slots__ = ("_ring", "_block", "_timeout", "_h", "_fb", "_base", "_mv")

    def __init__(self, ring, block: bool, timeout: Optional[float]) -> None:
        if timeout is not None:
            N.timeout_arg(timeout)
        self._ring, self._block, self._timeout = ring, block, timeout
        self._fb = None

    def __enter__(self) -> memoryview:
        ring = self._ring
        h = ring._h
        if h is None or self._fb is not None:
            ring._live()
            raise RuntimeError("this view is already open")
        ptr, ln = ring._ptr, ring._len
        block, timeout = self._block, self._timeout
        rc = _peek(h, _SLICE if block and timeout is None else 0, ptr, ln)
        if rc:
            if rc == N.EEMPTY or rc == N.EINTR:
                rc = N.call_blocking(lambda t: _peek(h, t, ptr, ln), block, timeout, N.EEMPTY)
            if rc == N.ECLOSED:
                raise ring._closed_error()
            ring._check(rc)
        self._h = h
        self._fb = _buffer(ptr[0], ln[0])
        self._base = _refs(self._fb)
        mv = self._mv = memoryview(self._fb).toreadonly()
        return mv

    def __exit__(self, et, ev, tb) -> None:
        ok = _let_go(self._mv)
        self._mv = None
        _end_view(self, ok, et is not None)


def _let_go_all(mvs: List[memoryview]) -> bool:
    """Release every view in *mvs* (the slices, then the whole in mvs[0]); False if a
    buffer export of any is still alive."""
    ok = True
    i = len(mvs) - 1
    while i >= 0:
        try:
            while i >= 0:
                mvs[i].release()
                i -= 1
        except BufferError:
            ok = False
            i -= 1
    return ok


def _record_offsets(lens) -> List[Tuple[int, int]]:
    """(start, end) of each body in a run of records of these lengths, from the first
    record's header (8-byte headers, bodies padded to 8 bytes)."""
    out, pos = [], 0
    for n in lens:
        out.append((pos + _HDR, pos + _HDR + n))
        pos += (_HDR + n + 7) & ~7
    return out


_HDR = lib.IPCF_REC_HDR
_claim_many = lib.ipcf_ring_claim_many
_commit_many = lib.ipcf_ring_commit_many
_peek_many = lib.ipcf_ring_peek_many


class ClaimMany:
    """``with ring.claim_many(sizes) as views``: one writable memoryview per size, in the
    ring; all published together when the block exits normally, none if it raises."""

    __slots__ = ("_ring", "_sizes", "_block", "_timeout", "_h", "_fb", "_base", "_mvs")

    def __init__(self, ring, sizes, block: bool, timeout: Optional[float]) -> None:
        sizes = list(sizes)
        if not sizes:
            raise ValueError("claim_many needs at least one size")
        for s in sizes:
            if s.__class__ is not int or s < 0 or s >= 1 << 63:
                N.int_arg(s, "size", 0, 1 << 63)
            if s > ring.max_message:
                raise ring._too_big(s)
        if timeout is not None:
            N.timeout_arg(timeout)
        self._ring, self._sizes, self._block, self._timeout = ring, sizes, block, timeout
        self._fb = None

    def __enter__(self) -> List[memoryview]:
        ring, sizes = self._ring, self._sizes
        h = ring._live()
        if self._fb is not None:
            raise RuntimeError("this claim is already open")
        n = len(sizes)
        lens = ffi.new("uint64_t[]", sizes)
        out = ring._out
        rc = N.call_blocking(lambda t: _claim_many(h, lens, n, t, out), self._block,
                             self._timeout, N.EFULL)
        if rc == N.ETOOBIG:
            raise ValueError(f"claim_many of {n} messages needs more than the ring's "
                             f"capacity of {ring.capacity} bytes at once")
        ring._check(rc)
        spans = _record_offsets(sizes)
        self._h = h
        self._fb = _buffer(out[0], spans[-1][1])
        self._base = _refs(self._fb)
        whole = memoryview(self._fb)
        views = [whole[a:b] for a, b in spans]
        self._mvs = [whole, *views]
        return views

    def __exit__(self, et, ev, tb) -> None:
        ok = _let_go_all(self._mvs)
        self._mvs = None
        _end_claim(self, ok, et is not None, lambda: _commit_many(self._h))


class ViewMany:
    """``with ring.view_many(max_messages) as views``: up to *max_messages* of the oldest
    messages (at least one), read-only and in place; all removed when the block exits, all
    left for the next reader if it raises."""

    __slots__ = ("_ring", "_max", "_block", "_timeout", "_h", "_fb", "_base", "_mvs")

    def __init__(self, ring, max_messages: int, block: bool, timeout: Optional[float]) -> None:
        N.int_arg(max_messages, "max_messages", 1, 1 << 62)
        if timeout is not None:
            N.timeout_arg(timeout)
        self._ring, self._max, self._block, self._timeout = ring, max_messages, block, timeout
        self._fb = None

    def __enter__(self) -> List[memoryview]:
        ring = self._ring
        h = ring._live()
        if self._fb is not None:
            raise RuntimeError("this view is already open")
        k = min(self._max, ring.capacity // _HDR)     # no more records fit the ring
        lens = ring._many_lens          # per handle, like ring._ptr: see Ring._setup
        if lens is None or len(lens) < k:
            lens = ring._many_lens = ffi.new("uint64_t[]", k)
        first = ring._ptr
        n = N.call_blocking(lambda t: _peek_many(h, k, t, first, lens), self._block,
                            self._timeout, N.EEMPTY)
        if n == N.ECLOSED:
            raise ring._closed_error()
        ring._check(n)
        spans = _record_offsets(ffi.unpack(lens, n))
        self._h = h
        self._fb = _buffer(first[0], spans[-1][1])
        self._base = _refs(self._fb)
        whole = memoryview(self._fb).toreadonly()
        views = [whole[a:b] for a, b in spans]
        self._mvs = [whole, *views]
        return views

    def __exit__(self, et, ev, tb) -> None:
        ok = _let_go_all(self._mvs)
        self._mvs = None
        _end_view(self, ok, et is not None)
