"""The ``remote`` workloads: ipcfast.remote.Queue over Redis Streams on loopback, against
multiprocessing.Queue and a plain redis-py XADD/XREADGROUP loop, and through the bridge.

Opt-in (``python -m ipcfast bench --remote``, or an ``--only`` pattern that matches
"remote"): each workload needs a private ``redis-server``, which the run starts on
127.0.0.1 with a free port the first time a remote channel is made and stops at its end
(:func:`stop_server`). Skipped with a reason when redis-server or redis-py is absent.

Every remote channel uses a stream of its own, deleted when the channel closes.
"""
from __future__ import annotations

import contextlib
import pickle
import uuid
from typing import TYPE_CHECKING, Any, List, Optional

from .._units import KiB
from . import channels as C
from .channels import CTX, Channel, Ops, _QueueChannel

if TYPE_CHECKING:  # pragma: no cover
    from .workloads import Variant

REQUIRES = "redis"
#: bytes per put_many of the remote queues (a round trip each): 32 messages of 64 KiB
BATCH_BYTES = 2 << 20
_server: List[Any] = []


def missing() -> Optional[str]:
    """Why the remote workloads cannot run here, or None."""
    from ..remote.server import redis_server_path
    if redis_server_path() is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return None


def server_url() -> str:
    """The URL of this run's private redis-server (started on first use)."""
    if not _server:
        from ..remote.server import RedisServer
        _server.append(RedisServer())
    return _server[0].url


def stop_server() -> None:
    """Stop this run's redis-server, if it started one."""
    while _server:
        with contextlib.suppress(Exception):
            _server.pop().close()


def _stream() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def _open(url: str, name: str, joinable: bool = False, **kw):
    from ..remote import JoinableQueue, Queue
    return (JoinableQueue if joinable else Queue)(url, name, **kw)


class RemoteQueueCh(_QueueChannel):
    """ipcfast.remote.Queue: each child opens its own handle (its own consumer) by URL."""

    batched = True

    def __init__(self, variant: "Variant") -> None:
        self.url, self.stream = server_url(), _stream()
        self.q = _open(self.url, self.stream)          # creates the stream and its group
        self.batch = max(1, BATCH_BYTES // variant.size) if variant.size else None

    def _side(self):
        return _open(self.url, self.stream)

    def sender(self) -> Ops:
        q = self._side()
        return Ops(put=q.put, put_many=q.put_many, send=q.put, send_many=q.put_many,
                   finish=q.close, batch=self.batch)

    def receiver(self) -> Ops:
        q = self._side()
        return Ops(get=q.get, get_many=q.get_many, recv=q.get, recv_many=q.get_many,
                   finish=q.close)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.q.delete()
        self.q.close()


class RedisLoopCh(Channel):
    """redis-py written the obvious way: one ``XADD`` per put; per get one ``XREADGROUP
    COUNT 1 BLOCK`` and one ``XACK``; items pickled with pickle.dumps."""

    GROUP = "g"

    def __init__(self, variant: "Variant") -> None:
        import redis
        self.url, self.stream = server_url(), _stream()
        self.r = redis.Redis.from_url(self.url)
        self.r.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)

    def sender(self) -> Ops:
        import redis
        r, stream, dumps = redis.Redis.from_url(self.url), self.stream, pickle.dumps
        r.ping()

        def put(o) -> None:
            r.xadd(stream, {"d": dumps(o)})

        def send(b) -> None:
            r.xadd(stream, {"d": bytes(b)})
        return Ops(put=put, send=send, finish=r.close)

    def receiver(self) -> Ops:
        import redis
        r, stream, group, loads = redis.Redis.from_url(self.url), self.stream, self.GROUP, pickle.loads
        r.ping()

        def recv() -> bytes:
            while True:
                res = r.xreadgroup(group, "c", {stream: ">"}, count=1, block=1000)
                if res:
                    msg_id, fields = res[0][1][0]
                    r.xack(stream, group, msg_id)
                    return fields[b"d"]
        return Ops(get=lambda: loads(recv()), recv=recv, finish=r.close)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.r.delete(self.stream)
        self.r.close()


def _bridge_main(direction: str, local_name: str, url: str, stream: str, batch: int, stop) -> None:
    from ..queue import Queue as LocalQueue
    from ..remote import bridge as B
    local = LocalQueue.attach(local_name, dumps=B._same, loads=B._same)
    remote = _open(url, stream, dumps=B._same, loads=B._same)
    try:
        if direction == "to-remote":
            B.local_to_remote(local, remote, batch, stop.is_set)
        else:
            B.remote_to_local(remote, local, batch, stop.is_set)
    finally:
        local.close()
        remote.close()


class BridgeCh(Channel):
    """A local ipcfast.Queue and a stream with a bridge process between them (what
    ``ipcfast bridge`` runs). ``to-remote``: producers put into the local queue, the
    consumer reads the stream; ``to-local``: the other way round."""

    direction = "to-remote"
    BATCH = 256

    def __init__(self, variant: "Variant") -> None:
        from ..queue import Queue as LocalQueue
        self.url, self.stream = server_url(), _stream()
        self.remote = _open(self.url, self.stream)
        # a producer into the stream sends the remote queue's batches (as RemoteQueueCh)
        self.batch = (max(1, BATCH_BYTES // variant.size)
                      if variant.size and self.direction == "to-local" else None)
        self.local = self._own(LocalQueue())
        self.stop = CTX.Event()
        self.proc = CTX.Process(target=_bridge_main, daemon=True, name="ipcfast-bench:bridge",
                                args=(self.direction, self.local.name, self.url, self.stream,
                                      self.BATCH, self.stop))
        self.proc.start()

    def _ends(self):
        from ..queue import Queue as LocalQueue
        local = LocalQueue.attach(self.local.name)
        remote = _open(self.url, self.stream)
        return (local, remote) if self.direction == "to-remote" else (remote, local)

    def sender(self) -> Ops:
        q, other = self._ends()
        other.close()
        return Ops(put=q.put, put_many=q.put_many, send=q.put, send_many=q.put_many,
                   finish=q.close, batch=self.batch)

    def receiver(self) -> Ops:
        other, q = self._ends()
        other.close()
        return Ops(get=q.get, get_many=q.get_many, recv=q.get, recv_many=q.get_many,
                   finish=q.close)

    def close(self) -> None:
        self.stop.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        with contextlib.suppress(Exception):
            self.remote.delete()
        self.remote.close()
        self.local.close()


class BridgeToLocalCh(BridgeCh):
    direction = "to-local"


def variants(batch: int) -> list:
    """The remote workloads (small objects; 64 KiB blobs)."""
    from .workloads import BASELINE, Impl, Variant
    size = 64 * KiB
    n = BATCH_BYTES // size
    objs = [
        Impl(BASELINE, C.MPQueueCh, "obj", note="one per call, on this host"),
        Impl("redis-py XADD/XREADGROUP loop", RedisLoopCh, "obj", requires=REQUIRES,
             note="one XADD per put; XREADGROUP COUNT 1 + XACK per get"),
        Impl("ipcfast.remote.Queue put/get", RemoteQueueCh, "obj", requires=REQUIRES),
        Impl("ipcfast.remote.Queue put_many/get_many", RemoteQueueCh, "batch", requires=REQUIRES,
             note=f"{batch} per put_many"),
        Impl("bridge: local put_many -> remote get_many", BridgeCh, "batch", requires=REQUIRES,
             note="ipcfast.Queue -> bridge -> stream"),
        Impl("bridge: remote put_many -> local get_many", BridgeToLocalCh, "batch",
             requires=REQUIRES, note="stream -> bridge -> ipcfast.Queue"),
    ]
    blobs = [
        Impl(BASELINE, C.MPQueueCh, "send", note="put(bytes), on this host"),
        Impl("redis-py XADD/XREADGROUP loop", RedisLoopCh, "send", requires=REQUIRES,
             note="one XADD per put; XREADGROUP COUNT 1 + XACK per get"),
        Impl("ipcfast.remote.Queue put/get", RemoteQueueCh, "send", requires=REQUIRES),
        Impl("ipcfast.remote.Queue put_many/get_many", RemoteQueueCh, "many", requires=REQUIRES,
             note=f"{n} per put_many"),
        Impl("bridge: local put_many -> remote get_many", BridgeCh, "many", requires=REQUIRES,
             note="ipcfast.Queue -> bridge -> stream"),
        Impl("bridge: remote put_many -> local get_many", BridgeToLocalCh, "many",
             requires=REQUIRES, note="stream -> bridge -> ipcfast.Queue"),
    ]
    return [
        Variant("remote-objects", "objects",
                "Remote queue (Redis Streams on loopback): small objects, 1 producer -> 1 consumer",
                objs, pilot=1000),
        Variant("remote-64KiB", "bytes",
                "Remote queue (Redis Streams on loopback): 64 KiB blobs, 1 producer -> 1 consumer",
                blobs, size=size, pilot=200, min_count=8),
    ]


def summary(res: dict) -> List[str]:
    """The ratios the remote targets are stated in (after report.finish_variant)."""
    rate = {r["impl"]: r["rate"]["median"] for r in res["rows"]
            if r["status"] == "ok" and r.get("rate")}
    loop = rate.get("redis-py XADD/XREADGROUP loop")
    direct = rate.get("ipcfast.remote.Queue put_many/get_many")
    out = []
    if loop and direct:
        out.append(f"  remote put_many/get_many vs the redis-py loop: {direct / loop:.1f}x")
    one = rate.get("ipcfast.remote.Queue put/get")
    if loop and one:
        out.append(f"  remote put/get (one per call) vs the redis-py loop: {one / loop:.2f}x")
    for k in ("bridge: local put_many -> remote get_many", "bridge: remote put_many -> local get_many"):
        if direct and rate.get(k):
            out.append(f"  {k.split(': ')[1]} through the bridge vs direct put_many/get_many: "
                       f"{rate[k] / direct:.2f}x (the bridge adds {(direct / rate[k] - 1) * 100:+.0f}% "
                       f"to the time)")
    return out
