"""Shared helpers and child-process targets for the test_queue*.py files.

No tests live here. Everything a child process runs is a module-level function of this
module, which imports only the standard library and ipcfast, so spawn and forkserver
children start quickly and can unpickle the targets. The test modules import the helpers
from here (``from test_queue_workers import ...``).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import sys
import threading
import time
import zlib
from typing import Any, Callable, Iterable, List, Optional

import ipcfast

SHM = "/dev/shm"
IMPLS = ("mp", "ipcfast")
#: the longest a child waits for anything: long enough for a loaded 2-core machine,
#: short enough that a lost message makes the child fail instead of hanging the test
CHILD_WAIT = 30.0
STOP = "__stop__"


# ---------------------------------------------------------------- making queues

def make_queue(impl: str, kind: str = "Queue", maxsize: int = 0, ctx=None, **kw):
    """A queue of `kind` (Queue, JoinableQueue, SimpleQueue) from multiprocessing ("mp",
    made by `ctx` so it matches the start method) or from ipcfast."""
    if impl == "mp":
        assert not kw, f"multiprocessing queues take no {sorted(kw)}"
        c = ctx or multiprocessing.get_context()
        if kind == "SimpleQueue":
            return c.SimpleQueue()
        return getattr(c, kind)(maxsize)
    if kind == "SimpleQueue":
        return ipcfast.SimpleQueue(ctx=ctx, **kw)
    return getattr(ipcfast, kind)(maxsize, ctx=ctx, **kw)


def dispose(q) -> None:
    """Close a queue of either kind without ever blocking."""
    if isinstance(q, (ipcfast.Queue, ipcfast.SimpleQueue)):
        q.close()
        return
    if hasattr(q, "cancel_join_thread"):      # multiprocessing.Queue / JoinableQueue
        q.cancel_join_thread()
    q.close()


def is_ipcfast(q) -> bool:
    return isinstance(q, (ipcfast.Queue, ipcfast.SimpleQueue))


def settle(q, timeout: float = 10.0) -> None:
    """Wait until a put made by this process can be got.

    ipcfast's put is synchronous (the item is in shared memory when put returns), so this
    is a no-op for it; multiprocessing hands items to a feeder thread, so its get_nowait()
    right after put() may still raise Empty.
    """
    if is_ipcfast(q):
        return
    deadline = time.monotonic() + timeout
    while q.empty():
        assert time.monotonic() < deadline, "multiprocessing feeder thread did not flush"
        time.sleep(0.005)


# ---------------------------------------------------------------- /dev/shm

def segments(prefix: str) -> List[str]:
    """Files in /dev/shm whose name starts with `prefix` (a queue's control segment and
    its rings `<name>.<gen>`)."""
    try:
        return sorted(n for n in os.listdir(SHM) if n.startswith(prefix))
    except FileNotFoundError:  # pragma: no cover
        return []


def ring_segments(name: str) -> List[str]:
    return [n for n in segments(name + ".") if n[len(name) + 1:].isdigit()]


def remove_segments(prefix: str) -> List[str]:
    """Unlink whatever a (buggy) run left behind; returns what was there."""
    left = segments(prefix)
    for n in left:
        try:
            os.unlink(os.path.join(SHM, n))
        except FileNotFoundError:
            pass
    return left


def held_only_in_transit(name: str) -> bool:
    """Is segment *name* kept only by handles this process pickled (or forked) for children
    that have not attached (yet, or ever: say, killed first)? That is: no live process in
    its peer table, and at least one unexpired transit entry whose sender is us. Such a
    segment outlives the last close on purpose, for up to the transit time (60 s)."""
    from ipcfast._native import ffi, lib
    try:
        with open(os.path.join(SHM, name), "rb") as f:
            raw = bytearray(f.read(ffi.sizeof("struct ipcf_seg_hdr")))
    except FileNotFoundError:
        return False
    if len(raw) < ffi.sizeof("struct ipcf_seg_hdr"):
        return False
    hdr = ffi.cast("struct ipcf_seg_hdr *", ffi.from_buffer(raw))
    for i in range(lib.IPCF_MAX_PEERS):
        w = hdr.peers[i]
        if w and lib.ipcf_pid_alive(w & 0xFFFFFFFF, w >> 32):
            return False
    me, now = lib.ipcf_self_word(), time.monotonic_ns()
    return any(hdr.transit[i] == me and hdr.transit[i + 1] > now for i in range(0, 16, 2))


# ---------------------------------------------------------------- processes

def join_all(procs: Iterable, timeout: float, allowed=(0,)) -> None:
    """Join every process within `timeout` seconds in all; kill any that is still running
    (so a failing test never leaves children behind) and assert the exit codes."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    for p in hung:
        p.join(10)
    assert not hung, f"children still running after {timeout}s (killed): {hung}"
    codes = [p.exitcode for p in procs]
    assert all(c in allowed for c in codes), f"child exit codes {codes}"


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Delay:
    """An argument whose unpickling sleeps: a spawn/forkserver child unpickles its
    arguments in order, so ``args=(Delay(s), q)`` makes the child open `q` s seconds late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self):
        return (time.sleep, (self.seconds,))


def wait_for_file(path: str, timeout: float = CHILD_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class AfterFile:
    """Like Delay, but the child goes on unpickling its arguments once *path* exists."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (wait_for_file, (self.path,))


# ---------------------------------------------------------------- serialisers

def json_dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def json_loads(data) -> Any:
    return json.loads(bytes(data))


def raw_dumps(obj) -> bytes:
    """Identity serialiser for bytes: the record is exactly the payload."""
    return bytes(obj)


def raw_loads(data) -> bytes:
    return bytes(data)


# ---------------------------------------------------------------- child targets

def echo_worker(q_in, q_out, n: int) -> None:
    """Get n items and put each back as ("echo", item)."""
    for _ in range(n):
        q_out.put(("echo", q_in.get(timeout=CHILD_WAIT)))


def put_items(q, items) -> None:
    for x in items:
        q.put(x)


def get_items_or_fail(_delay, q, expected) -> None:
    """Exit 0 only if the first len(expected) items of q are `expected`."""
    got = [q.get(timeout=10) for _ in expected]
    sys.exit(0 if got == list(expected) else 3)


_POOL_QUEUE = None


def pool_init(q) -> None:
    global _POOL_QUEUE
    _POOL_QUEUE = q


def pool_task(i: int) -> int:
    _POOL_QUEUE.put(("task", i, os.getpid()))
    return i * i


def pool_task_with_queue_argument(q, i: int) -> int:
    q.put(("arg", i))
    return i


def joinable_consumer(jq, n: int) -> None:
    """Get n items, marking each done after a short 'work'."""
    for _ in range(n):
        jq.get(timeout=CHILD_WAIT)
        time.sleep(0.01)
        jq.task_done()


def joinable_joiner(jq, out) -> None:
    """Wait in join() in this process, then say so."""
    out.put("joining")
    jq.join()
    out.put("joined")


def simple_queue_echo(sq_in, sq_out, n: int) -> None:
    """Echo n items, report whether sq_in is then empty, and close both handles."""
    for _ in range(n):
        sq_out.put(("echo", sq_in.get()))
    sq_out.put(("empty", sq_in.empty()))
    sq_in.close()
    sq_out.close()


def producer(q, pid_id: int, n: int, size: int = 0) -> None:
    """Put (pid_id, seq, payload) for seq in 0..n-1."""
    pad = b"x" * size
    for seq in range(n):
        q.put((pid_id, seq, pad))


def consumer(q, out, cid: str) -> None:
    """Get until STOP; report every (pid_id, seq) in the order got."""
    got = []
    while True:
        item = q.get(timeout=CHILD_WAIT)
        if item == STOP:
            break
        got.append((item[0], item[1]))
    out.put((cid, got))


def pattern(n: int) -> bytes:
    """A deterministic payload whose corruption is obvious."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def json_echo(q_in, q_out) -> None:
    item = q_in.get(timeout=CHILD_WAIT)
    q_out.put({"got": item, "type": type(item).__name__})


def send_through_connection(q) -> None:
    """Get a multiprocessing Connection from the queue and send through it."""
    conn = q.get(timeout=CHILD_WAIT)
    conn.send(("hello from", os.getpid()))
    conn.close()


def receive_one_or_fail(_delay, h, expected, close: bool = True) -> None:
    """Receive one message from *h* (Queue, Ring, Mailbox or Pipe end); exit 0 if it is
    *expected*, 1 if it is something else, 2 on an error. With close=False the handle is
    left open (multiprocessing then ends the child with os._exit)."""
    try:
        if isinstance(h, ipcfast.Ring):
            got = h.recv_bytes(timeout=CHILD_WAIT)
        elif isinstance(h, ipcfast.Mailbox):
            got = h.recv(timeout=CHILD_WAIT).body
        elif isinstance(h, ipcfast.Queue):
            got = h.get(timeout=CHILD_WAIT)
        else:
            got = h.recv() if h.poll(CHILD_WAIT) else None
        if close:
            h.close()
    except Exception:                                    # noqa: BLE001
        import traceback
        traceback.print_exc()
        sys.exit(2)
    sys.exit(0 if got == expected else 1)


def put_then_wait(q, ev) -> None:
    """Put our pid, then stay alive until the parent sets `ev` (never closes q)."""
    q.put(os.getpid())
    ev.wait(CHILD_WAIT)


def attach_then_get_after_go(q, attached, go, out) -> None:
    """Signal that we hold q, wait for `go`, get one item, report it and close q (so this
    child is the last process to close it)."""
    attached.set()
    go.wait(CHILD_WAIT)
    item = q.get(timeout=CHILD_WAIT)
    out.put(item)
    q.close()


def put_pid_then_sleep(q) -> None:
    q.put(os.getpid())
    time.sleep(CHILD_WAIT * 10)


def put_many_batches(q, n: int, batch: int) -> None:
    """Put 0..n-1 in put_many batches of `batch`."""
    for start in range(0, n, batch):
        q.put_many(range(start, min(n, start + batch)))


# ---------------------------------------------------------------- chaos (kill -9) workers

CHAOS_SIZES = (0, 1, 13, 100, 500, 3000, 4000, 9000)   # 4000+ do not fit a 4 KiB ring


def chaos_message(pid_id: int, seq: int, rng: random.Random):
    size = rng.choice(CHAOS_SIZES)
    payload = rng.randbytes(size)
    return (pid_id, seq, zlib.crc32(payload), payload)


def chaos_producer(q, pid_id: int, n: int, seed: int) -> None:
    """Put n checksummed messages, pausing now and then so kills land anywhere."""
    rng = random.Random(seed)
    for seq in range(n):
        q.put(chaos_message(pid_id, seq, rng), timeout=CHILD_WAIT)
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.002)


def chaos_consumer(q, out, cid: int, seed: int) -> None:
    """Forward (pid_id, seq, checksum ok, cid) of every message until STOP; report anything
    that does not unpickle or has the wrong shape instead of dying."""
    rng = random.Random(seed)
    while True:
        try:
            item = q.get(timeout=CHILD_WAIT)
        except queue.Empty:
            out.put(("ERROR", cid, "consumer starved: get timed out"))
            return
        except Exception as e:                    # a torn record would land here
            out.put(("ERROR", cid, repr(e)))
            return
        if item == STOP:
            return
        try:
            pid_id, seq, crc, payload = item
            ok = zlib.crc32(payload) == crc
        except Exception as e:
            out.put(("ERROR", cid, f"bad item {item!r:.200}: {e!r}"))
            return
        out.put((pid_id, seq, ok, cid))
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.002)


# ---------------------------------------------------------------- thread helpers

def start_thread(target, *args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------- scripts in a fresh interpreter

def run_python(code: str, timeout: float = 60.0, env: Optional[dict] = None):
    """Run `code` with this interpreter in a new process (for anything that may crash or
    hang it, or that must start from a fresh interpreter). Returns the CompletedProcess;
    a run that does not finish in `timeout` seconds is killed and reported as rc -9."""
    import subprocess
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if key == "PYTHONPATH" and full_env.get(key):
            value = value + os.pathsep + full_env[key]
        full_env[key] = value
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -9, _text(e.stdout), _text(e.stderr) +
                                           f"\n[killed after {timeout}s]")


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b

