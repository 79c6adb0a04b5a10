"""The trial side of the corruption fuzz: corrupt a copy of a template, then run ipcfast's
reader and writer paths on it, reporting each operation as it starts and ends.

In the fuzz a trial runs in a forked child of the test process (tests/stress/
test_corruption_fuzz.py), which reads the reports from a pipe and learns from the last
started operation which one crashed or hung. Run as a module it is the reproducer of one
trial, in this process (so a debugger sees the crash), from the repository root:

    python -m tests.stress.corrupt_workers Ring 'seg:ctl.head=0x1390'
    python -m tests.stress.corrupt_workers Queue 'ring1@0x1010=ffff'
    python -m tests.stress.corrupt_workers Ring --inline SPEC     # in this process (gdb)
    python -m tests.stress.corrupt_workers --fields Mailbox      # the named fields

It runs the trial in a forked child (as the fuzz does), says how it ended (CRASH: killed by
SIGSEGV, HANG: still running after 10 s) and removes the files; with --inline it runs in
this process, so a debugger sees the crash (and a crash leaves the files: rm
/dev/shm/NAME*).

Every blocking call is given a 0.2 s timeout (Connection.recv_bytes has none: it is only
called after poll() said there is something to read, or EOF); the Mailbox's fast paths
(send_bytes / recv_bytes with no timeout) are called with block=False.

Imports only the standard library, ipcfast and tests.* helpers (forked children use it).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import queue as _queue
import resource
import signal
import sys
import time
import zlib
from typing import Any, Callable, List, Optional

from ipcfast import JoinableQueue, Mailbox, Ring
from ipcfast import cli
from ipcfast.pipe import Connection
from tests.stress import corrupt_mutations as M
from tests.stress import corrupt_segments as S
from tests.support import shm

T = 0.2                                    # the timeout of every blocking call
#: outcomes a call may have on a healthy segment too
NORMAL = (_queue.Empty, _queue.Full, EOFError, BrokenPipeError)
#: limits of a trial process: a corrupted size must not fill /dev/shm (RAM) or memory
FILE_LIMIT = 64 << 20
MEMORY_LIMIT = 8 << 30
FAILED = object()


class Recorder:
    """Reports operations as JSON lines, to a file descriptor (the fuzz) or stdout."""

    def __init__(self, fd: Optional[int] = None) -> None:
        self.fd = fd

    def emit(self, **obj: Any) -> None:
        line = json.dumps(obj) + "\n"
        if self.fd is None:
            sys.stdout.write(_human(obj))
            sys.stdout.flush()
        else:
            os.write(self.fd, line.encode())

    def op(self, name: str, fn: Callable, *args, **kwargs) -> Any:
        """Run one operation; its value, the NORMAL exception it raised, or FAILED."""
        self.emit(start=name)
        t0 = time.monotonic()
        try:
            value = fn(*args, **kwargs)
            res, detail = "ok", _digest(value)
        except NORMAL as e:
            value, res, detail = e, "normal", type(e).__name__
        except Exception as e:                    # noqa: BLE001 - what the fuzz looks for
            value, res, detail = FAILED, "error", f"{type(e).__name__}: {str(e)[:200]}"
        self.emit(op=name, res=res, detail=detail, dt=round(time.monotonic() - t0, 3))
        return value


def _digest(value: Any) -> Any:
    """A short stand-in for a result, compared with the pristine run's."""
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)}b/{zlib.crc32(value):08x}"
    if isinstance(value, list):
        return [_digest(v) for v in value]
    if hasattr(value, "body") and hasattr(value, "priority"):
        return [_digest(value.body), value.priority, value.type]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return type(value).__name__


def _human(obj: dict) -> str:
    if "start" in obj:
        return f"  {obj['start']} ..."
    if "op" in obj:
        return f" {obj['res']}: {obj['detail']} ({obj['dt']} s)\n"
    return json.dumps(obj) + "\n"


def _got(value: Any) -> bool:
    return value is not FAILED and not isinstance(value, BaseException)


# ---- the exercises, one per kind ----

def _stat(rec: Recorder, seg_name: str) -> None:
    def run() -> int:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return cli.main(["stat", seg_name])
    rec.op("ipcfast stat", run)


def _view(r: Ring) -> bytes:
    with r.view(timeout=T) as mv:
        return mv.tobytes()


def _claim(r: Ring, data: bytes) -> None:
    with r.claim(len(data), timeout=T) as mv:
        mv[:] = data


def ring(rec: Recorder, name: str, t: S.Template) -> None:
    _stat(rec, name)
    r = rec.op("Ring.attach", Ring.attach, name)
    if not _got(r):
        return
    rec.op("len", len, r)
    rec.op("empty", r.empty)
    rec.op("used", lambda: r.used)
    for _ in range(len(t.expected) + 1):
        if not _got(rec.op("recv_bytes", r.recv_bytes, timeout=T)):
            break
    rec.op("send_bytes", r.send_bytes, b"s" * 50, timeout=T)
    rec.op("send_many", r.send_many, [b"m" * 10, b"n" * 300], timeout=T)
    rec.op("recv_many", r.recv_many, timeout=T)
    rec.op("view", _view, r)
    rec.op("claim", _claim, r, b"c" * 24)
    rec.op("recv_bytes", r.recv_bytes, timeout=T)
    rec.op("close", r.close)


def queue(rec: Recorder, name: str, t: S.Template) -> None:
    _stat(rec, name)
    for label in t.files:
        if label != "seg":
            _stat(rec, f"{name}.{label[4:]}")
    q = rec.op("Queue.attach", JoinableQueue.attach, name, dumps=bytes, loads=bytes)
    if not _got(q):
        return
    rec.op("qsize", q.qsize)
    rec.op("empty", q.empty)
    rec.op("full", q.full)
    for _ in range(len(t.expected) + 1):
        if not _got(rec.op("get", q.get, timeout=T)):
            break
    rec.op("put", q.put, b"p" * 100, timeout=T)
    rec.op("put_many", q.put_many, [b"x" * 20, b"y" * 3000], timeout=T)
    rec.op("get_many", q.get_many, timeout=T)
    rec.op("get", q.get, timeout=T)
    rec.op("put (oversized)", q.put, b"B" * 5000, timeout=T)
    rec.op("get", q.get, timeout=T)
    rec.op("task_done", q.task_done)
    rec.op("close", q.close)


def mailbox(rec: Recorder, name: str, t: S.Template) -> None:
    _stat(rec, name)
    # bodies as they are (the template's are raw bytes): recv_many / send_many need no pickle
    mb = rec.op("Mailbox.open", Mailbox.open, name, dumps=bytes, loads=bytes)
    if not _got(mb):
        return
    rec.op("len", len, mb)
    rec.op("bytes_held", lambda: mb.bytes_held)
    # the fast path (ipcf_mbox_take) and a batch (ipcf_mbox_take_many) see the corrupted
    # state first, before a slower call has repaired it
    rec.op("recv_bytes (fast path)", mb.recv_bytes, block=False)
    rec.op("recv_many(3)", mb.recv_many, 3, timeout=T)
    for _ in range(len(t.expected) + 1):
        if not _got(rec.op("recv_bytes", mb.recv_bytes, timeout=T)):
            break
    rec.op("send_bytes", mb.send_bytes, b"s" * 40, priority=1, timeout=T)
    rec.op("send_bytes (large)", mb.send_bytes, b"L" * 6000, timeout=T)
    rec.op("recv_bytes", mb.recv_bytes, timeout=T)
    rec.op("recv_bytes", mb.recv_bytes, timeout=T)
    rec.op("send_bytes(wait='received')", mb.send_bytes, b"r" * 10, wait="received", timeout=T)
    rec.op("recv_bytes(type=99)", mb.recv_bytes, type=99, timeout=T)
    rec.op("send_many", mb.send_many, [b"m" * 10, b"n" * 300, b"o" * 40], priority=3, timeout=T)
    rec.op("send_bytes (fast path)", mb.send_bytes, b"f" * 20, block=False)
    rec.op("recv_many", mb.recv_many, timeout=T)
    rec.op("release", mb.release)
    rec.op("close", mb.close)


def pipe(rec: Recorder, name: str, t: S.Template) -> None:
    _stat(rec, name)
    rx = rec.op("Ring.attach (reader)", Ring.attach, name)
    tx = rec.op("Ring.attach (writer)", Ring.attach, name)
    if not (_got(rx) and _got(tx)):
        return
    r = rec.op("Connection (reader)", Connection, rx, None)
    w = rec.op("Connection (writer)", Connection, None, tx)
    if not (_got(r) and _got(w)):
        return
    for _ in range(len(t.expected) + 1):
        if rec.op("poll(0.2)", r.poll, T) is not True:
            break
        if not _got(rec.op("recv_bytes after poll", r.recv_bytes)):
            break
    rec.op("Ring.send_bytes", tx.send_bytes, b"w" * 40, timeout=T)
    if rec.op("poll(0.2)", r.poll, T) is True:
        rec.op("recv_bytes after poll", r.recv_bytes)
    rec.op("close writer", w.close)
    if rec.op("poll(0.2) after writer close", r.poll, T) is True:
        rec.op("recv_bytes at EOF", r.recv_bytes)
    rec.op("close reader", r.close)


EXERCISES = {"Ring": ring, "Queue": queue, "Mailbox": mailbox, "Pipe": pipe}


def limit() -> None:
    """The limits of a trial process (also the reproducer's): files and memory bounded, so
    a corrupted size fails (EFBIG, MemoryError) instead of filling RAM."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    if "san" not in os.environ.get("LD_PRELOAD", ""):
        # (a sanitizer runtime -- .ci/sanitize preloads libasan/libtsan -- reserves terabytes
        # of address space for its shadow memory: an address-space limit breaks it)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def trial(t: S.Template, name: str, specs: List[str], rec: Recorder) -> None:
    """Corrupt the copy *name* of *t* (already written) with *specs* and exercise it."""
    M.apply(t, name, specs)
    rec.emit(corrupted=specs)
    EXERCISES[t.kind](rec, name, t)
    rec.emit(done=True)


def child(t: S.Template, name: str, specs: List[str], fd: int) -> None:
    """Body of a forked trial process: never returns (os._exit: no finalizer, no atexit of
    the test process runs here)."""
    code = 0
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        import faulthandler
        faulthandler.disable()               # die by the signal itself, silently
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        limit()
        trial(t, name, specs, Recorder(fd))
    except BaseException as e:               # noqa: BLE001 - a harness failure, reported
        import traceback
        try:
            Recorder(fd).emit(harness="".join(traceback.format_exception(type(e), e, e.__traceback__)))
        finally:
            code = 3
    finally:
        os._exit(code)


# ---- the reproducer ----

def _forked(t: S.Template, name: str, specs: List[str], timeout: float) -> str:
    """Run the trial in a forked child, as the fuzz does; how it ended."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            limit()
            trial(t, name, specs, Recorder())
        except BaseException:                 # noqa: BLE001 - reported, then exit 3
            import traceback
            traceback.print_exc()
            code = 3
        finally:
            sys.stdout.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"HANG: still running after {timeout:g} s (killed)"
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        return f"CRASH: killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return "finished" if os.WEXITSTATUS(status) == 0 else f"exit status {os.WEXITSTATUS(status)}"


def main(argv: Optional[List[str]] = None) -> int:
    """The reproducer: ``KIND [--inline] [--timeout S] SPEC...`` or ``--fields KIND``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "--fields":
        t = S.build(argv[1])
        for cls, block, struct, f in M.named_fields(t):
            print(f"{cls:5} {block:5} {struct:24} {f.path:20} +{f.offset:<5} {f.size}x{f.count} {f.form}")
        return 0
    if not argv or argv[0] not in S.KINDS:
        print(__doc__)
        print(f"usage: python -m tests.stress.corrupt_workers {{{','.join(S.KINDS)}}} "
              "[--inline] [--timeout SECONDS] SPEC...\n"
              "  --inline: run in this process (for a debugger) instead of a forked child;\n"
              "  a crash then leaves the files: rm /dev/shm/NAME*")
        return 2
    kind, args = argv[0], argv[1:]
    inline = "--inline" in args
    timeout = 10.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i:i + 2]
    specs = [a for a in args if a != "--inline"]
    t = S.build(kind)
    name = shm.new_name("cfz")
    print(f"{kind} copy {name!r} ({', '.join(t.files)}), corrupted with {specs}")
    for spec in specs:
        label, off, data = M.resolve(t, spec)
        print(f"  {spec}: {len(data)} bytes at {label}+{off:#x} ({t.files[label].locate(off)})")
    t.write(name)
    try:
        if inline:
            limit()
            trial(t, name, specs, Recorder())
        else:
            print("\n" + _forked(t, name, specs, timeout))
    finally:
        left = t.remove(name)
        print(f"removed {left}" if left else "(no file left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
