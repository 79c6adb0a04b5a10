"""Processes in tests: the start methods and implementations tests run under, waiting,
joining and killing children so that none is ever left behind, arguments that delay a
child's unpickling, and scripts run in a fresh interpreter.

Imports only the standard library (child processes import it).
"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from typing import Callable, Iterable, List, Optional

#: every start method this platform has (the ``ctx`` fixture runs a test under each)
START_METHODS = tuple(m for m in ("fork", "spawn", "forkserver")
                      if m in multiprocessing.get_all_start_methods())
#: tests of the drop-ins run against multiprocessing's ("mp") and ipcfast's implementation
IMPLS = ("mp", "ipcfast")
#: the longest a child waits for anything: long enough for a loaded 2-core machine, short
#: enough that a lost message makes the child fail instead of hanging the test
CHILD_WAIT = 30.0
#: the repository root: PYTHONPATH for a fresh interpreter that imports tests.* modules
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- waiting

def wait_until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll *pred* until it holds; AssertionError after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.002)


# ---------------------------------------------------------------- /proc

def proc_fields(pid: int) -> Optional[List[str]]:
    """The fields of /proc/<pid>/stat after the command name (``[0]`` the state, ``[1]``
    the parent pid, ``[19]`` the start time in clock ticks), or None if the process is
    gone. Never reaps."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def proc_state(pid: int) -> str:
    """One-letter state from /proc (Z: zombie), "" if the process is gone. Never reaps."""
    fields = proc_fields(pid)
    return fields[0] if fields else ""


def gone(pid: int) -> bool:
    """Has process *pid* exited (reaped or not)?"""
    return proc_state(pid) in ("", "Z", "X")


# ---------------------------------------------------------------- joining and killing

def kill_all(procs: Iterable, join_timeout: float = 10.0) -> None:
    """SIGKILL every process of *procs* still running, then join them all (no zombie)."""
    procs = list(procs)
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(join_timeout)


def join_all(procs: Iterable, timeout: float, allowed=(0,)) -> None:
    """Join every process within *timeout* seconds in all; kill any that is still running
    (so a failing test never leaves children behind) and assert the exit codes."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    kill_all(hung)
    assert not hung, f"children still running after {timeout}s (killed): {hung}"
    codes = [p.exitcode for p in procs]
    assert all(c in allowed for c in codes), f"child exit codes {codes}"


# ---------------------------------------------------------------- delayed unpickling

class Delay:
    """An argument whose unpickling sleeps: a spawn/forkserver child unpickles its
    arguments in order, so ``args=(Delay(s), q)`` makes the child open `q` s seconds late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __reduce__(self):
        return (time.sleep, (self.seconds,))


def wait_for_file(path: str, timeout: float = CHILD_WAIT) -> None:
    """Return once *path* exists (or after *timeout* seconds)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class AfterFile:
    """Like Delay, but the child goes on unpickling its arguments once *path* exists."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (wait_for_file, (self.path,))


# ---------------------------------------------------------------- a fresh interpreter

def run_python(code: str, timeout: float = 60.0, env: Optional[dict] = None):
    """Run *code* with this interpreter in a new process (for anything that may crash or
    hang it, or that must start from a fresh interpreter). A ``PYTHONPATH`` in *env* is
    put in front of the inherited one. Returns the CompletedProcess; a run that does not
    finish in *timeout* seconds is killed and reported as rc -9."""
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
