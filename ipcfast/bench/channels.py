"""Channels: one adapter per transport, made in the parent before the fork.

A :class:`Channel` is built in the parent (so both children inherit it), then each child
asks it for its side: :meth:`Channel.sender` or :meth:`Channel.receiver` return an
:class:`Ops` holding the callables that side uses. Every ipcfast segment a channel makes
is recorded, so that the run removes it whatever happens (:func:`close_channels`,
:func:`remove_leftovers`).
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import random
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Set, Tuple

from .. import _segments
from .._units import MiB
from ..mailbox import Mailbox as _IMailbox
from ..pipe import Pipe as _IPipe
from ..queue import Queue as _IQueue, SimpleQueue as _ISimpleQueue
from ..ring import Ring as _IRing

if TYPE_CHECKING:  # pragma: no cover
    from .workloads import Variant

#: every benchmark process is forked, and every multiprocessing channel made for fork
CTX = mp.get_context("fork")
#: seconds for the children of a measurement to start and set up
READY_TIMEOUT = 20.0


# --------------------------------------------------------------------------------------------
# segment bookkeeping: everything this run creates is removed, whatever happens

_OWNED: Set[str] = set()


def remove_leftovers() -> List[str]:
    """Remove every segment a channel made that is still in /dev/shm (and forget them all).
    Returns the names removed."""
    gone = _segments.remove(_OWNED)
    _OWNED.clear()
    return gone


def close_channels(channels: Iterable["Channel"]) -> None:
    """Close *channels* (errors are ignored) and remove any segment of theirs that is left
    (normally already gone: the last process out removes it)."""
    names: List[str] = []
    for ch in channels:
        names.extend(ch.names)
        with contextlib.suppress(Exception):
            ch.close()
    _segments.remove(names)
    _OWNED.difference_update(names)


# --------------------------------------------------------------------------------------------
# what a benchmark child defers until the parent releases it

class _Child:
    """This process as a benchmark child (set by roles.child_main; a fork child inherits
    the parent's, which is not one)."""
    active = False
    deferred: List[Callable[[], None]] = []


def enter_child() -> None:
    """Called first in a benchmark child: from now on :func:`defer` defers."""
    _Child.active = True


def deferred() -> List[Callable[[], None]]:
    """What was deferred in this child (to run once the parent releases it)."""
    return _Child.deferred


def defer(fn: Callable[[], None]) -> None:
    """In a benchmark child, run *fn* once the parent has every result; elsewhere now."""
    if _Child.active:
        _Child.deferred.append(fn)
    else:
        fn()


# --------------------------------------------------------------------------------------------
# the base


class Ops:
    """The callables one side of a channel uses; those it lacks stay None.

    Objects: ``put(obj)``, ``get() -> obj``, ``put_many(list)``, ``get_many() -> list``.
    Bytes: ``send(buf)`` (buf is copied before it returns), ``recv() -> bytes``,
    ``send_many(list)``, ``recv_many() -> list``, ``claim(n)`` / ``view()`` and
    ``claim_many(sizes)`` / ``view_many(n)`` (zero-copy context managers). ``finish()``
    runs once the side is done (flush, close sockets). ``batch``: messages per
    ``send_many`` call, when the channel wants other batches than
    :func:`~ipcfast.bench.workloads.many_batch` (a network round trip per call).
    """

    def __init__(self, **kw: Any) -> None:
        self.put = self.get = self.put_many = self.get_many = None
        self.send = self.recv = self.send_many = self.recv_many = None
        self.claim = self.view = self.claim_many = self.view_many = None
        self.batch = None
        self.finish: Callable[[], None] = lambda: None
        self.__dict__.update(kw)


class Channel:
    """One transport between the processes of a measurement.

    Made in the parent from a :class:`~ipcfast.bench.workloads.Variant` (for its message
    size); :meth:`sender` and :meth:`receiver` run in the children; :meth:`parent_put`
    lets the parent put an object (the N x M workload's end-of-stream sentinels)."""

    names: Tuple[str, ...] = ()         # ipcfast segments this channel made
    #: messages the byte and array workloads move untimed before the handshake: one starts
    #: threads, connections and first allocations; four wrap an ipcfast ring once (see roles)
    warm_up = 1

    def _own(self, obj: Any, name: Optional[str] = None) -> Any:
        """Record the segment of *obj* (``obj.name`` unless *name*) as this channel's; returns
        *obj*."""
        name = obj.name if name is None else name
        _OWNED.add(name)
        self.names = self.names + (name,)
        return obj

    def sender(self) -> Ops:
        """The producing side's operations (called in the producer)."""
        raise NotImplementedError

    def receiver(self) -> Ops:
        """The consuming side's operations (called in the consumer)."""
        raise NotImplementedError

    def parent_put(self, obj: Any) -> None:
        """Put *obj* from the parent; raises NotImplementedError where the N x M workload
        does not use this channel."""
        raise NotImplementedError(f"{type(self).__name__} takes no objects from the parent")

    def close(self) -> None:
        """Release what the parent holds (in every process, closing is the last use)."""


def ring_capacity(size: int) -> int:
    """Ring bytes for *size*-byte messages: three messages (with their headers), at least 1 MiB."""
    need = 3 * (max(size, 64) + 8)
    return max(1 * MiB, 1 << max(0, (need - 1).bit_length()))


# --------------------------------------------------------------------------------------------
# queues: an object q with put/get (and put_many/get_many when batched)


class _QueueChannel(Channel):
    """A queue ``q`` opened by :meth:`_open`: put/get, and put_many/get_many when *batched*;
    the parent may put."""

    batched = False

    def __init__(self, variant: "Variant") -> None:
        self.q = self._open()

    def _open(self) -> Any:
        raise NotImplementedError

    def sender(self) -> Ops:
        q = self.q
        return Ops(put=q.put, put_many=q.put_many) if self.batched else Ops(put=q.put)

    def receiver(self) -> Ops:
        q = self.q
        return Ops(get=q.get, get_many=q.get_many) if self.batched else Ops(get=q.get)

    def parent_put(self, obj: Any) -> None:
        self.q.put(obj)

    def close(self) -> None:
        self.q.close()


class MPQueueCh(_QueueChannel):
    """multiprocessing.Queue: objects, lists as batches (put(list)), bytes as objects."""

    def _open(self) -> Any:
        return CTX.Queue()

    def sender(self) -> Ops:
        q = self.q

        def finish() -> None:          # flush the feeder thread into the pipe before reporting
            q.close()
            q.join_thread()
        return Ops(put=q.put, put_many=q.put, send=lambda b: q.put(bytes(b)), finish=finish)

    def receiver(self) -> Ops:
        q = self.q
        return Ops(get=q.get, get_many=q.get, recv=q.get)

    def close(self) -> None:
        self.q.cancel_join_thread()
        self.q.close()


class MPSimpleQueueCh(_QueueChannel):
    """multiprocessing.SimpleQueue."""

    def _open(self) -> Any:
        return CTX.SimpleQueue()


class IQueueCh(_QueueChannel):
    """ipcfast.Queue with put_many/get_many; bytes as objects (put(buf) pickles the buffer
    before it returns, so the producer may reuse it at once)."""

    batched = True
    warm_up = 4                         # a ring of 3-4 messages wraps once

    def _open(self) -> Any:
        return self._own(_IQueue())

    def sender(self) -> Ops:
        q = self.q
        return Ops(put=q.put, put_many=q.put_many, send=q.put)

    def receiver(self) -> Ops:
        q = self.q
        return Ops(get=q.get, get_many=q.get_many, recv=q.get)


class IQueueListCh(IQueueCh):
    """ipcfast.Queue carrying whole lists: put(list) / get() -> list."""

    def sender(self) -> Ops:
        return Ops(put_many=self.q.put)

    def receiver(self) -> Ops:
        return Ops(get_many=self.q.get)


class ISimpleQueueCh(_QueueChannel):
    """ipcfast.SimpleQueue."""

    def _open(self) -> Any:
        return self._own(_ISimpleQueue())


class FasterFifoCh(_QueueChannel):
    """faster_fifo.Queue (8 MiB) with put_many/get_many."""

    batched = True

    def _open(self) -> Any:
        import faster_fifo
        return faster_fifo.Queue(max_size_bytes=8 * MiB)


# --------------------------------------------------------------------------------------------
# pipes: a one-way pair (r, w) with send/recv and send_bytes/recv_bytes


class _PipeChannel(Channel):
    """A one-way pipe ``(r, w)`` opened by :meth:`_open`: objects with send/recv, bytes
    with send_bytes/recv_bytes."""

    def __init__(self, variant: "Variant") -> None:
        self.r, self.w = self._open(variant)

    def _open(self, variant: "Variant") -> Tuple[Any, Any]:
        raise NotImplementedError

    def sender(self) -> Ops:
        return Ops(put=self.w.send, send=self.w.send_bytes)

    def receiver(self) -> Ops:
        return Ops(get=self.r.recv, recv=self.r.recv_bytes)

    def close(self) -> None:
        self.r.close()
        self.w.close()


class PipeCh(_PipeChannel):
    """multiprocessing.Pipe(duplex=False)."""

    def _open(self, variant: "Variant") -> Tuple[Any, Any]:
        return CTX.Pipe(duplex=False)


class IPipeCh(_PipeChannel):
    """ipcfast.Pipe(duplex=False): one lock-free ring with end tracking."""

    warm_up = 4                         # a ring of 3-4 messages wraps once

    def _open(self, variant: "Variant") -> Tuple[Any, Any]:
        r, w = _IPipe(duplex=False, capacity=ring_capacity(variant.size))
        self._own(r, r._rx.name)       # the pipe's ring (Connection has no public name)
        return r, w


# --------------------------------------------------------------------------------------------
# the other ipcfast objects


class RingCh(Channel):
    """One ipcfast.Ring (default flags: any number of producers and consumers)."""

    warm_up = 4                         # a ring of 3-4 messages wraps once

    def __init__(self, variant: "Variant") -> None:
        self.ring = self._own(_IRing(ring_capacity(variant.size)))

    def sender(self) -> Ops:
        r = self.ring
        return Ops(send=r.send_bytes, send_many=r.send_many, claim=r.claim,
                   claim_many=r.claim_many)

    def receiver(self) -> Ops:
        r = self.ring
        return Ops(recv=r.recv_bytes, recv_many=r.recv_many, view=r.view,
                   view_many=r.view_many)

    def close(self) -> None:
        self.ring.close()


class IMailboxCh(Channel):
    """ipcfast.Mailbox, unbounded, every message sent with priority 1 (the priority path is
    exercised; a constant priority keeps FIFO order so every message can be checked)."""

    def __init__(self, variant: "Variant") -> None:
        self.mb = self._own(_IMailbox(capacity=None))

    def sender(self) -> Ops:
        send, send_many = self.mb.send, self.mb.send_many
        return Ops(put=lambda o: send(o, priority=1),
                   put_many=lambda objs: send_many(objs, priority=1))

    def receiver(self) -> Ops:
        recv, recv_many = self.mb.recv, self.mb.recv_many
        return Ops(get=lambda: recv().body, get_many=lambda: [m.body for m in recv_many()])

    def parent_put(self, obj: Any) -> None:
        self.mb.send(obj, priority=1)

    def close(self) -> None:
        self.mb.close()


# --------------------------------------------------------------------------------------------
# peers


class PosixMQCh(Channel):
    """posix_ipc.MessageQueue carrying pickled items (bounded by the kernel's mq limits)."""

    priority = 0                  # sent with every message (0: posix_ipc's default)
    granted_depth: Optional[int] = None    # the depth the kernel granted last (for the notes)

    def __init__(self, variant: "Variant") -> None:
        import posix_ipc
        name = f"/ipcfast-bench-{os.getpid()}-{random.getrandbits(48):012x}"
        msgsize = 1024
        self.mq = None
        # Unprivileged processes get at most /proc/sys/fs/mqueue/msg_max (10) messages.
        for maxmsg in (256, 64, None):
            try:
                kw = {} if maxmsg is None else {"max_messages": maxmsg}
                self.mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_message_size=msgsize, **kw)
                break
            except (ValueError, OSError, posix_ipc.Error):
                if maxmsg is None:
                    raise
        self.depth = self.mq.max_messages
        PosixMQCh.granted_depth = self.depth

    def _put(self) -> Callable[[Any], None]:
        send, dumps, prio = self.mq.send, pickle.dumps, self.priority
        if prio:
            return lambda o: send(dumps(o, 5), None, prio)
        return lambda o: send(dumps(o, 5))

    def sender(self) -> Ops:
        return Ops(put=self._put())

    def receiver(self) -> Ops:
        receive, loads = self.mq.receive, pickle.loads
        return Ops(get=lambda: loads(receive()[0]))

    def parent_put(self, obj: Any) -> None:
        self._put()(obj)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.mq.close()
        with contextlib.suppress(Exception):
            self.mq.unlink()


class PosixMQPrioCh(PosixMQCh):
    """posix_ipc.MessageQueue with priority 1 on every send (as IMailboxCh)."""

    priority = 1


class ZmqCh(Channel):
    """pyzmq PUSH (producer, connects) -> PULL (consumer, binds) over ipc://, pickled items.
    Sockets are made in the child (zmq contexts do not survive fork)."""

    def __init__(self, variant: "Variant") -> None:
        self.dir = tempfile.mkdtemp(prefix="ipcfast-bench-zmq-")
        self.path = os.path.join(self.dir, "s")
        self.endpoint = "ipc://" + self.path

    def sender(self) -> Ops:
        """Blocks until the consumer has bound and the PUSH socket is connected; raises
        TimeoutError after half of READY_TIMEOUT."""
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.IMMEDIATE, 1)
        deadline = time.monotonic() + READY_TIMEOUT / 2
        while not os.path.exists(self.path):     # the consumer binds first
            if time.monotonic() > deadline:
                raise TimeoutError("zmq: the PULL side never bound")
            time.sleep(0.001)
        s.connect(self.endpoint)
        if not s.poll(int(READY_TIMEOUT / 2 * 1000), zmq.POLLOUT):   # connected for real
            raise TimeoutError("zmq: PUSH could not connect")
        send, dumps = s.send, pickle.dumps

        def close() -> None:
            s.close(linger=0)
            ctx.term()

        # close(linger=-1) + term() loses the last ~1000 messages here (libzmq 4.3.5,
        # ipc://), so a benchmark child keeps its socket open until the parent has the
        # consumer's result; elsewhere the caller has seen every message arrive.
        # bytes go as one frame each (send copies the buffer before it returns)
        return Ops(put=lambda o: send(dumps(o, 5)), send=send, finish=lambda: defer(close))

    def receiver(self) -> Ops:
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PULL)
        s.bind(self.endpoint)
        recv, loads = s.recv, pickle.loads

        def finish() -> None:
            s.close(linger=0)
            ctx.term()
        return Ops(get=lambda: loads(recv()), recv=recv, finish=finish)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
