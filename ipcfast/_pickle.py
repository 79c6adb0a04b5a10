"""Serialisation for the queues: plain pickle speed, multiprocessing's reducers kept.

``multiprocessing`` pickles every item with ``ForkingPickler.dumps``, which builds a new
Pickler, a BytesIO and a copy of the dispatch table per call: about 3x slower than
``pickle.dumps`` for small objects. We keep one C Pickler per thread (in a pool) whose
dispatch table is a live view of ``copyreg.dispatch_table`` plus ForkingPickler's extra
reducers, so sockets, ``multiprocessing.Connection`` objects and anything registered with
``ForkingPickler.register`` still travel as they do through ``multiprocessing.Queue``.

Large items are never joined into one bytes object: the pickler hands a payload of 64 KiB
or more (``bytes``, ``bytearray``, a numpy array's data through ``PickleBuffer``) to its
file's ``write`` as the object itself, and :func:`dumps_pieces` returns those pieces for
the queue to write into shared memory with one copy (``ipcf_queue_putv``).
"""
from __future__ import annotations

import collections
import copyreg
import pickle
from multiprocessing.reduction import ForkingPickler

loads = pickle.loads


class _Pickler(pickle.Pickler):
    dispatch_table = collections.ChainMap(ForkingPickler._extra_reducers, copyreg.dispatch_table)


class _Sink:
    """The pickler's file: its write is list.append, so a dump costs no BytesIO calls."""

    __slots__ = ("write",)


def _new_pickler():
    chunks = collections.deque()
    sink = _Sink()
    sink.write = chunks.append
    return _Pickler(sink, 5), chunks


# The pool and each pickler's chunks are deques, not lists: a list that is popped empty
# frees its array and the next append allocates one again (~700 instructions per dumps
# between the two); a deque keeps its block.
_pool = collections.deque()


def dumps_pieces(obj):
    """Pickle *obj* (protocol 5) with multiprocessing's reducers: the stream as one
    ``bytes``, or, when the pickler wrote it in several pieces (an item with large payloads
    or over 64 KiB of stream), as a list of bytes-like pieces to be concatenated. Raises
    what pickle raises."""
    try:
        p, chunks = _pool.pop()
    except IndexError:
        p, chunks = _new_pickler()
    p.dump(obj)            # on error this pickler (maybe holding half a frame) is dropped
    p.clear_memo()         # the memo would keep obj alive
    if len(chunks) == 1:
        data = chunks.pop()
    else:
        data = list(chunks)
        chunks.clear()
    _pool.append((p, chunks))
    return data


def dumps(obj) -> bytes:
    """Pickle *obj* (protocol 5) with multiprocessing's reducers. Raises what pickle raises.
    (dumps_pieces written out again: one Python call per item less on every send.)"""
    try:
        p, chunks = _pool.pop()
    except IndexError:
        p, chunks = _new_pickler()
    p.dump(obj)
    p.clear_memo()
    if len(chunks) == 1:
        data = chunks.pop()
    else:
        data = b"".join(chunks)
        chunks.clear()
    _pool.append((p, chunks))
    return data


def dumps_many(objs) -> list:
    """``[dumps(o) for o in objs]`` with one pickler for them all: each item still its own
    stream (the memo cleared after each), as a consumer unpickles them one by one."""
    try:
        p, chunks = _pool.pop()
    except IndexError:
        p, chunks = _new_pickler()
    dump, clear = p.dump, p.clear_memo
    ends = []
    end = ends.append
    for o in objs:        # on error this pickler is dropped, as in dumps
        dump(o)
        clear()
        end(len(chunks))
    if len(chunks) == len(ends):    # one piece per item, the usual case: nothing to join
        out = list(chunks)
    else:
        out, a, pieces = [], 0, list(chunks)
        for b in ends:
            out.append(pieces[a] if b == a + 1 else b"".join(pieces[a:b]))
            a = b
    chunks.clear()
    _pool.append((p, chunks))
    return out
