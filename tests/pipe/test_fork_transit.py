"""A fork child that dies before ipcfast's after-fork hook (so before it attached to the
pipe and ended its parent's fork transit) must not hold the pipe's ends for the others:
the surviving reader sees EOF as soon as everyone else closed, and the last close removes
the ring. Before the fix the parent's stale fork transits counted as ends "on their way"
for every other process while the parent lived: EOF came only when the transit expired
(60 s), and the ring stayed (kill-fuzz: the residual Pipe hangs and leaks)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.procs import REPO_ROOT

pytestmark = pytest.mark.timeout(90)

SCRIPT = textwrap.dedent("""
    import os, sys, time
    doomed = [False]
    # registered before ipcfast's own hook, so it runs first: a child that dies here never
    # attaches (like one SIGKILLed a few microseconds after fork)
    os.register_at_fork(after_in_child=lambda: os._exit(7) if doomed[0] else None)
    from ipcfast import Pipe

    r, w = Pipe(duplex=False, capacity=4096)
    ring = r._rx.name
    pid_r = os.fork()
    if pid_r == 0:                       # the reader: keeps only its end
        w.close()
        t0 = time.monotonic()
        try:
            r.recv_bytes()
            code = 1
        except EOFError:
            code = 0 if time.monotonic() - t0 < 20 else 2
        r.close()
        os._exit(code)
    doomed[0] = True
    pid_w = os.fork()                    # dies in its after-fork hook
    if pid_w == 0:
        os._exit(3)                      # (not reached)
    doomed[0] = False
    _, st = os.waitpid(pid_w, 0)
    print("doomed", os.waitstatus_to_exitcode(st), flush=True)
    time.sleep(0.3)                      # the reader is asleep in recv_bytes
    r.close()
    w.close()                            # nobody holds the sending end now
    _, st = os.waitpid(pid_r, 0)
    print("reader", os.waitstatus_to_exitcode(st), flush=True)
    print("ring left", os.path.exists("/dev/shm/" + ring), flush=True)
""")


def test_a_fork_child_dead_before_attaching_does_not_hold_off_eof_or_keep_the_ring():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=80, cwd=REPO_ROOT)
    out = res.stdout + res.stderr
    assert "doomed 7" in out, out
    assert "reader 0" in out, out            # EOFError, and promptly
    assert "ring left False" in out, out
