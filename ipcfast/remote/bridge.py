"""The bridge between a local ipcfast.Queue (shared memory) and a remote queue (a Redis
stream): ``ipcfast bridge --from-local NAME --to URL STREAM`` and
``ipcfast bridge --from URL STREAM --to-local NAME``.

Items cross as their serialized bytes, never unpickled on the way (so both ends must use
the default serializer, or the same custom one). Each batch is one round trip to Redis:
up to ``batch`` items in one scripted XADD run, or in one read (``COUNT``).

What a kill costs:

* remote -> local: a batch is read (pending on the server), put into the local queue, and
  only then acknowledged. A bridge killed before the acknowledgement reaches the server
  has that batch redelivered after ``visibility_timeout`` to the next reader: the items
  that were already put locally then arrive twice. Nothing is lost.
* local -> remote: a batch is read in place from the local queue (``Queue._held``: the
  items stay in shared memory, with the queue's consumer side held), added to the stream,
  and only then removed from the local queue. A bridge killed before the removal leaves
  the batch to the next local consumer (the restarted bridge): the items that had already
  been added then arrive twice. Nothing is lost. SIGTERM and SIGINT stop the bridge after
  the batch in flight.

A lost server does not stop a bridge: it retries (a warning each ``--reconnect-timeout``)
until the server is back. A local -> remote bridge told to stop while its batch cannot
be added leaves the batch where it was, at the front of the local queue.
"""
from __future__ import annotations

import argparse
import signal
import sys
from queue import Empty, Full
from typing import Callable, Optional

from ..queue import Queue as LocalQueue
from .queue import Queue as RemoteQueue

POLL = 0.2          # seconds a bridge waits for input before it checks whether to stop


def _same(b):
    """The bridge's serializer on both ends: bytes pass through as they are."""
    return b


def _warn(exc: BaseException) -> None:
    print(f"ipcfast bridge: {exc}; retrying", file=sys.stderr, flush=True)


def local_to_remote(local: LocalQueue, remote: RemoteQueue, batch: int = 256,
                    stop: Callable[[], bool] = lambda: False) -> int:
    """Move items from *local* to *remote* until *stop()*; returns how many were moved. A
    batch is removed from the local queue only once it is in the stream, however long the
    server stays away (the bridge keeps retrying); if it is stopped meanwhile, the batch
    stays at the front of the local queue."""
    moved = 0
    n = max(1, min(batch, local.maxsize or batch, remote.maxsize or batch))
    while not stop():
        try:
            with local._held(n, POLL) as datas:
                while True:
                    try:
                        remote._put_raw(datas)  # blocks while the remote queue is at maxsize
                        break
                    except ConnectionError as exc:    # after the queue's reconnect_timeout
                        if stop():
                            raise               # the batch stays in the local queue
                        _warn(exc)
        except Empty:
            continue
        moved += len(datas)
    return moved


def remote_to_local(remote: RemoteQueue, local: LocalQueue, batch: int = 256,
                    stop: Callable[[], bool] = lambda: False) -> int:
    """Move items from *remote* to *local* (attached with dumps=_same) until *stop()*,
    acknowledging each batch once it is in the local queue; returns how many were moved.
    Keeps retrying while the server is away."""
    moved = 0
    n = max(1, min(batch, local.maxsize or batch))
    while not stop():
        try:
            ids, datas = remote._take_raw(n, timeout=POLL)
        except Empty:
            continue
        except ConnectionError as exc:
            _warn(exc)
            continue
        while True:
            try:
                local.put_many(datas, timeout=POLL)
                break
            except Full:
                if stop():      # never put locally, never acknowledged: redelivered later
                    return moved
        moved += len(datas)
        try:
            remote._ack(ids)
        except ConnectionError as exc:     # not acknowledged: redelivered (duplicates)
            _warn(exc)
    return moved


def parser() -> argparse.ArgumentParser:
    """The command line of ``ipcfast bridge``."""
    b = argparse.ArgumentParser(prog="ipcfast bridge", description=__doc__.split("\n\n")[0])
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-local", metavar="NAME", help="read the local ipcfast.Queue NAME")
    src.add_argument("--from", dest="from_remote", nargs=2, metavar=("URL", "STREAM"),
                     help="read the remote queue STREAM at URL")
    dst = b.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to", dest="to_remote", nargs=2, metavar=("URL", "STREAM"),
                     help="write to the remote queue STREAM at URL")
    dst.add_argument("--to-local", metavar="NAME", help="write to the local ipcfast.Queue NAME")
    b.add_argument("--batch", type=int, default=256, help="items per round trip (default 256)")
    b.add_argument("--maxsize", type=int, default=0,
                   help="bound of the remote queue when writing to it (default 0: unbounded)")
    b.add_argument("--visibility-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="when reading a remote queue: seconds before an unacknowledged batch "
                        "of a dead bridge is redelivered (default 30)")
    b.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="seconds to reach the server at start (default 5)")
    b.add_argument("--reconnect-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="seconds one call retries a lost server before the bridge warns and "
                        "starts the call again (default 30); the bridge never gives up")
    return b


def main(argv=None) -> int:
    """``ipcfast bridge ARGS``: run the bridge until SIGTERM or SIGINT (exit 0); 1 if the
    local queue does not exist or the server cannot be reached; 2 for a usage error."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:          # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if (args.from_local is None) == (args.to_local is None):
        print("ipcfast bridge: one end must be local and the other remote "
              "(--from-local NAME --to URL STREAM, or --from URL STREAM --to-local NAME)",
              file=sys.stderr)
        return 2
    if args.batch < 1:
        print("ipcfast bridge: --batch must be >= 1", file=sys.stderr)
        return 2
    stopping = []

    def _stop(signum, frame) -> None:
        stopping.append(signum)
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    local: Optional[LocalQueue] = None
    remote: Optional[RemoteQueue] = None
    try:
        name = args.from_local or args.to_local
        url, stream = args.to_remote or args.from_remote
        local = LocalQueue.attach(name, dumps=_same, loads=_same)
        remote = RemoteQueue(url, stream, args.maxsize, dumps=_same, loads=_same,
                             visibility_timeout=args.visibility_timeout,
                             connect_timeout=args.connect_timeout,
                             reconnect_timeout=args.reconnect_timeout)
        arrow = (f"local queue {name!r} -> {remote.url} stream {stream!r}" if args.from_local
                 else f"{remote.url} stream {stream!r} -> local queue {name!r}")
        print(f"ipcfast bridge: {arrow} (batch {args.batch}); SIGTERM or Ctrl-C stops it",
              file=sys.stderr, flush=True)
        move = local_to_remote if args.from_local else remote_to_local
        ends = (local, remote) if args.from_local else (remote, local)
        moved = move(*ends, batch=args.batch, stop=lambda: bool(stopping))
        print(f"ipcfast bridge: stopped, {moved} items moved", file=sys.stderr, flush=True)
        return 0
    except FileNotFoundError:
        print(f"ipcfast bridge: no local queue named {name!r}", file=sys.stderr)
        return 1
    except (ConnectionError, ValueError) as exc:
        print(f"ipcfast bridge: {exc}", file=sys.stderr)
        return 1
    finally:
        for q in (local, remote):
            if q is not None:
                q.close()
        for s, h in old.items():
            signal.signal(s, h)
