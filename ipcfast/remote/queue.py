"""Queue and JoinableQueue over a Redis stream: ipcfast's queue API beyond one host.

One queue NAME is one stream with one consumer group; each handle (each process: a
pickled handle reconnects by URL, a forked one renames itself) is one consumer of that
group, so consumers compete for items. Every step is one atomic step on the server (a Lua
script of ipcfast.remote._scripts, or one MULTI/EXEC transaction):

* ``put``/``put_many``: XADD of every item plus the counters, all or nothing, after
  checking ``maxsize`` in the same script (an exact bound, see :class:`Queue`); items of
  4 KiB and more on an unbounded queue go by one MULTI/EXEC transaction instead (Lua would
  copy each one twice more).
* ``get``/``get_many``: first the items some consumer got and has not acknowledged for
  ``visibility_timeout`` seconds (XAUTOCLAIM), else new ones (XREADGROUP); when there are
  none, a blocking XREAD for anything newer, in slices of at most half a second (Ctrl-C,
  timeouts, and a reclaimable item is noticed within half a second of its timeout).
* acknowledging (Queue: inside ``get`` once the reply is read; JoinableQueue:
  ``task_done``): XACK and the unfinished counter together, each id counted once; every
  128 acknowledgements, XTRIM of the entries no consumer can need any more.

What may be delivered twice, and when (nothing is ever lost while the server keeps its data):

1. JoinableQueue: an item whose ``task_done`` has not reached the server
   ``visibility_timeout`` seconds after its delivery (the consumer died, hung or is slow)
   is handed to the next consumer that asks. If the first consumer does finish, its
   ``task_done`` still counts once; the item has then been processed twice.
2. Queue: the items of a ``get`` whose consumer died (or lost its connection) after the
   server handed them over and before its acknowledgement arrived, after the same delay.
3. A ``put`` whose connection dropped after the server ran it but before the reply
   arrived is retried, so its items are in the queue twice.
"""
from __future__ import annotations

import collections
import os
import socket
import time
import uuid
from queue import Empty, Full
from typing import Any, Callable, Iterable, List, Optional, Tuple

from .. import _pickle
from . import _scripts as S
from ._conn import RX, Link

GROUP = "ipcfast"
_SLICE = 0.5              # longest single blocking wait (XREAD BLOCK), seconds
_GET_MANY_CAP = 512       # most items one get_many asks the server for
_TRIM_EVERY = 128         # items a handle acknowledges between two trims of the stream
_BIG = 4096               # mean item size from which an unbounded put goes by MULTI/EXEC, not Lua

RETIRE = """
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(p) == 'table' and p.err == nil and #p == 0 then
  return redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


def _deadline(block: bool, timeout: Optional[float]) -> Optional[float]:
    """The monotonic time a blocking call gives up (None: never); multiprocessing's rule,
    a negative timeout does not wait."""
    if not block:
        return time.monotonic()
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    return time.monotonic() + max(0.0, timeout)


class Queue:
    """``ipcfast.Queue``'s API over the Redis stream *name* at *url* (``redis://host:port/db``,
    ``rediss://`` for TLS, ``unix:///path/redis.sock``).

    ``maxsize > 0`` bounds the undelivered items (``qsize()``): ``put`` blocks, or raises
    queue.Full, while that many are waiting; the check and the XADD are one script, so the
    bound is exact however many producers there are. Items handed to a consumer and not yet
    acknowledged do not count against it. The bound is the handle's, not the server's:
    every producer handle checks the maxsize it was opened with (give them all the same).

    Keyword-only: ``visibility_timeout`` (seconds, default 30: how long an item may stay
    delivered and unacknowledged before another consumer gets it; set it above your longest
    task), ``connect_timeout`` (seconds to reach the server at open: ConnectionError
    naming the URL after that), ``reconnect_timeout`` (seconds one call keeps retrying while
    the server is down or restarting), ``io_timeout`` (socket timeout of one reply),
    ``dumps``/``loads`` (serializer; default: pickle with multiprocessing's reducers).

    A ``get`` acknowledges its items once their reply has arrived, before returning them:
    a consumer killed in between has them redelivered after ``visibility_timeout``.
    """

    def __init__(self, url: str, name: str, maxsize: int = 0, *, visibility_timeout: float = 30.0,
                 connect_timeout: float = 5.0, reconnect_timeout: float = 30.0,
                 io_timeout: float = 30.0, dumps: Optional[Callable[[Any], bytes]] = None,
                 loads: Optional[Callable[[bytes], Any]] = None) -> None:
        if not isinstance(name, str) or not name or "{" in name or "}" in name:
            raise ValueError(f"name must be a non-empty str without braces, not {name!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if (isinstance(visibility_timeout, bool) or not isinstance(visibility_timeout, (int, float))
                or not visibility_timeout > 0):
            raise ValueError(f"visibility_timeout must be a number of seconds > 0, not "
                             f"{visibility_timeout!r}")
        self._link = Link(url, connect_timeout, reconnect_timeout, io_timeout)
        self._args = (url, name, maxsize)
        self._kw = dict(visibility_timeout=visibility_timeout, connect_timeout=connect_timeout,
                        reconnect_timeout=reconnect_timeout, io_timeout=io_timeout,
                        dumps=dumps, loads=loads)
        self.name = name
        self._maxsize = max(0, maxsize)
        self._vt_ms = max(1, int(visibility_timeout * 1000))
        self._stream = f"ipcfast:{{{name}}}:stream"
        self._keys3 = [self._stream, f"ipcfast:{{{name}}}:unfinished",
                       f"ipcfast:{{{name}}}:undelivered"]
        self._dumps = dumps or _pickle.dumps
        self._loads = loads or _pickle.loads
        self._custom_dumps = dumps is not None
        c = self._link.client
        self._put_s, self._take_s = c.register_script(S.PUT), c.register_script(S.TAKE)
        self._ack_s, self._state_s = c.register_script(S.ACK), c.register_script(S.STATE)
        self._retire_s = c.register_script(RETIRE)
        self._closed = False
        self._new_consumer()
        self._link.open(self._create_group)

    def _create_group(self, client) -> None:
        try:
            client.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except RX.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _new_consumer(self) -> None:
        self._pid = os.getpid()
        self._consumer = f"{socket.gethostname()}:{self._pid}:{uuid.uuid4().hex[:12]}"
        self._unacked: collections.deque = collections.deque()
        self._last_seen: Optional[bytes] = None     # newest entry id this handle knows of
        self._more = False                           # the last take was full: more may be there
        self._untrimmed = 0                          # acknowledged since this handle last trimmed
        self._reclaimed_at = 0.0                     # when this handle last looked for expired items

    def _live(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} {self.name!r} is closed")
        if self._pid != os.getpid():       # a forked copy: a consumer of its own
            self._new_consumer()

    # ---- lifetime ----
    def __reduce__(self):
        return (_rebuild, (type(self), self._args, self._kw))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"consumer {self._consumer}"
        return f"<{type(self).__name__} {self.name!r} at {self._link.shown}, {state}>"

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def url(self) -> str:
        return self._link.shown

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def close(self) -> None:
        """Disconnect (idempotent). Items this handle got and did not acknowledge stay
        pending and go to another consumer after ``visibility_timeout``; a consumer with
        nothing pending is removed from the group."""
        if self._closed:
            return
        self._closed = True
        if self._pid == os.getpid():
            try:
                self._retire_s(keys=[self._stream], args=[GROUP, self._consumer])
            except Exception:        # the server is gone: nothing to tidy
                pass
        self._link.close()

    def join_thread(self) -> None:
        """Compatibility: there is no feeder thread."""

    def cancel_join_thread(self) -> None:
        """Compatibility: there is no feeder thread."""

    def delete(self) -> None:
        """Remove the queue's keys from the server: every item in it is lost."""
        self._live()
        self._link.call(lambda: self._link.client.delete(*self._keys3))

    # ---- state ----
    def _state(self) -> Tuple[int, int, int]:
        self._live()
        undelivered, pending, unfinished = self._link.call(
            lambda: self._state_s(keys=self._keys3, args=[GROUP]))
        return int(undelivered), int(pending), int(unfinished)

    def qsize(self) -> int:
        """Items put and not yet delivered to any consumer (those delivered and not
        acknowledged are not counted, even once their visibility timeout has passed)."""
        return max(0, self._state()[0])

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        self._live()
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    # ---- producer ----
    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put *obj*. Blocks while ``maxsize`` items are undelivered; queue.Full on timeout
        (or at once with block=False); ValueError once closed or when the serialized item
        is larger than the server accepts (its ``proto-max-bulk-len``)."""
        self._live()
        self._put_raw([self._dump(obj)], block, timeout)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def put_many(self, objs: Iterable[Any], block: bool = True,
                 timeout: Optional[float] = None) -> None:
        """Put all of *objs* in one round trip, all or nothing (with ``maxsize``, it waits
        until there is room for every one; ValueError if there are more than maxsize)."""
        self._live()
        dump = self._dump
        self._put_raw([dump(o) for o in objs], block, timeout)

    def _dump(self, obj: Any) -> bytes:
        data = self._dumps(obj)
        if self._custom_dumps and data.__class__ is not bytes:
            data = bytes(memoryview(data))
        return data

    def _put_raw(self, datas: List[bytes], block: bool = True,
                 timeout: Optional[float] = None) -> None:
        """Put already-serialized items (the bridge moves bytes without unpickling)."""
        self._live()
        if not datas:
            return
        limit = self._link.max_bulk
        big = max(datas, key=len)
        if len(big) > limit:
            raise ValueError(f"a message of {len(big)} bytes is larger than the {limit} bytes "
                             f"the server at {self._link.shown} accepts (proto-max-bulk-len)")
        if self._maxsize and len(datas) > self._maxsize:
            raise ValueError(f"put_many of {len(datas)} items can never fit a queue of "
                             f"maxsize {self._maxsize}")
        if not self._maxsize and sum(map(len, datas)) >= _BIG * len(datas):
            self._link.call(lambda: self._put_multi(datas))
            return
        deadline = _deadline(block, timeout)
        args = [self._maxsize, *datas]
        keys, put_s, delay = self._keys3, self._put_s, 0.001
        while True:
            if self._link.call(lambda: put_s(keys=keys, args=args)) >= 0:
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise Full
            # no server-side wait for room exists: poll, backing off to 50 ms
            time.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * 2, 0.05)

    def _put_multi(self, datas: List[bytes]) -> None:
        """What the PUT script does for an unbounded queue, as one MULTI/EXEC transaction:
        for large items, where handing them through Lua costs several times the XADD."""
        stream, unfinished, undelivered = self._keys3
        p = self._link.client.pipeline(transaction=True)
        for d in datas:
            p.execute_command("XADD", stream, "*", "d", d)
        p.execute_command("INCRBY", unfinished, len(datas))
        p.execute_command("INCRBY", undelivered, len(datas))
        p.execute()

    # ---- consumer ----
    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return an item; blocks until one is available; queue.Empty on timeout
        (or at once with block=False); ValueError once closed."""
        return self._get(1, block, timeout)[0]

    def get_nowait(self) -> Any:
        return self.get(False)

    def get_many(self, block: bool = True, timeout: Optional[float] = None,
                 max_messages_to_get: int = 1_000_000_000) -> List[Any]:
        """Remove and return up to *max_messages_to_get* items (at least one, at most 512
        per round trip); blocks like :meth:`get` for the first."""
        if isinstance(max_messages_to_get, bool) or not isinstance(max_messages_to_get, int):
            raise TypeError("max_messages_to_get must be an int, not "
                            f"{type(max_messages_to_get).__name__}")
        if max_messages_to_get < 1:
            raise ValueError("max_messages_to_get must be >= 1")
        return self._get(min(max_messages_to_get, _GET_MANY_CAP), block, timeout)

    def _get(self, n: int, block: bool, timeout: Optional[float]) -> List[Any]:
        ids, datas = self._take_raw(n, block, timeout)
        try:
            loads = self._loads
            return [loads(d) for d in datas]
        finally:
            self._settle(ids)

    def _settle(self, ids: List[bytes]) -> None:
        """What a get does with the ids it took: Queue acknowledges them now."""
        self._ack(ids)

    def _ack(self, ids: List[bytes]) -> int:
        """Acknowledge *ids* (in round trips of at most 1024); returns how many had not
        been acknowledged before."""
        done, keys = 0, self._keys3[:2]
        for k in range(0, len(ids), 1024):
            chunk = ids[k:k + 1024]
            self._untrimmed += len(chunk)
            trim = self._untrimmed >= _TRIM_EVERY
            if trim:
                self._untrimmed = 0
            args = [GROUP, int(trim), *chunk]
            done += self._link.call(lambda: self._ack_s(keys=keys, args=args))
        return done

    def _take_raw(self, n: int, block: bool = True,
                  timeout: Optional[float] = None) -> Tuple[List[bytes], List[bytes]]:
        """Up to *n* (ids, serialized items) delivered to this consumer and not yet
        acknowledged (the caller acknowledges them with _ack)."""
        self._live()
        deadline = _deadline(block, timeout)
        link, client = self._link, self._link.client
        if deadline is not None and deadline <= time.monotonic():
            deadline = 0.0               # block=False or timeout <= 0: one try, no wait
        keys = [self._stream, self._keys3[2]]
        take, last = self._take_s, self._last_seen
        every = min(_SLICE, self._vt_ms / 4000)
        while True:
            now = time.monotonic()
            # look for items whose visibility timeout has passed at most every `every` s
            # (XAUTOCLAIM scans the pending list: not on every call of a busy consumer)
            reclaim = now - self._reclaimed_at >= every
            if reclaim:
                self._reclaimed_at = now
            targs = [GROUP, self._consumer, n, self._vt_ms, int(reclaim)]
            if last is None or self._more or (deadline is not None and now >= deadline):
                res = link.call(lambda: take(keys=keys, args=targs))
            else:
                # one round trip: wait for an entry newer than the last one seen, then take
                # (the server runs the take once the wait ends; a consumer that loses the
                # race for the entry just waits again)
                ms = max(1, int(1000 * (_SLICE if deadline is None else min(_SLICE, deadline - now))))

                def wait_take():
                    p = client.pipeline(transaction=False)
                    p.execute_command("XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", self._stream, last)
                    # EVALSHA by hand: a Script in a pipeline costs a SCRIPT EXISTS round trip
                    p.execute_command("EVALSHA", take.sha, len(keys), *keys, *targs)
                    try:
                        return p.execute()[1]
                    except RX.NoScriptError:     # a restarted server: load it, try again
                        take.sha = client.script_load(take.script)
                        raise RX.TryAgainError("script reloaded") from None
                res = link.call(wait_take)
            reclaimed, flat, newest = res
            self._more = len(flat) == 2 * n
            if flat:
                if not reclaimed:
                    self._last_seen = flat[-2]
                return flat[0::2], flat[1::2]
            last = self._last_seen = newest
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class JoinableQueue(Queue):
    """A remote Queue whose items stay unacknowledged until ``task_done``: at-least-once.

    ``task_done()`` acknowledges the oldest item this handle got and has not acknowledged
    (ValueError when there is none); ``join()`` returns once every item put by anyone has
    been acknowledged. An item not acknowledged within ``visibility_timeout`` seconds of its
    delivery (its consumer died, or is still busy) goes to another consumer.
    """

    def _settle(self, ids: List[bytes]) -> None:
        self._unacked.extend(ids)

    def task_done(self, n: int = 1) -> None:
        """Acknowledge the oldest *n* (default 1) items this handle got and has not
        acknowledged, in one round trip; ValueError if it has fewer, or once closed."""
        self._live()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, not {n!r}")
        if n > len(self._unacked):
            raise ValueError(f"task_done() called for {n} items but this handle holds "
                             f"{len(self._unacked)} unacknowledged")
        ids = [self._unacked.popleft() for _ in range(n)]
        self._ack(ids)

    def unfinished(self) -> int:
        """Items put and not yet acknowledged, by every producer and consumer."""
        return self._state()[2]

    def join(self, timeout: Optional[float] = None) -> None:
        """Block until every item put has been acknowledged (TimeoutError after *timeout*
        seconds, if given; ValueError once closed)."""
        deadline = None if timeout is None else _deadline(True, timeout)
        delay = 0.001
        while self._state()[2] > 0:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"join() timed out after {timeout} s")
            time.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * 2, 0.05)


def _rebuild(cls, args, kw):
    return cls(*args, **kw)
