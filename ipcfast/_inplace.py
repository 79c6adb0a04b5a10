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
        h, ring = self._h, self._ring
        ok = _let_go(self._mv)
        self._mv = None
        if et is not None:
            self._fb = None
            _abort(h)
            return
        if not ok or _refs(self._fb) > self._base:
            _abort(h)
            keep_mapped(self._fb, self._base, ring)
            self._fb = None
            raise BufferError("a view of the claimed memory (an export or a slice) is still "
                              "alive; the message was not sent")
        self._fb = None
        rc = _commit(h, self._size)
        if rc:
            ring._check(rc)


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
        h = self._h
        ok = _let_go(self._mv)
        self._mv = None
        if et is not None:
            self._fb = None
            _unpeek(h)                   # the message stays for the next reader
            return
        released = ok and _refs(self._fb) <= self._base
        _release_rec(h)
        if not released:
            keep_mapped(self._fb, self._base, self._ring)
            self._fb = None
            raise BufferError("a view of the message (an export or a slice) is still alive; "
                              "its bytes will be overwritten by later messages")
        self._fb = None
