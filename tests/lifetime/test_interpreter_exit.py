"""What an interpreter that exits with handles still open does: every segment it was the
last user of is removed, and nothing touches freed memory on the way out (objects torn down
after the exit hooks, like a module-level Connection's __del__, still call close())."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import ipcfast
from ipcfast import _segments
from tests.support.procs import run_python
from tests.support.shm import SHM

pytestmark = pytest.mark.timeout(60)

EXIT_WITH_OPEN_HANDLES = r"""
import sys, ipcfast
ring = ipcfast.Ring(1 << 16); ring.send_bytes(b"left")
q = ipcfast.Queue(); q.put(("left", 1))
jq = ipcfast.JoinableQueue(); jq.put(1)
mb = ipcfast.Mailbox(); mb.send("left")
r, w = ipcfast.Pipe(); w.send("left")
one_way = ipcfast.Pipe(duplex=False)

class LateUser:
    # torn down with the module, after the exit hooks: its close must be a no-op
    def __del__(self):
        for c in (r, w) + one_way:
            c.close()
        ring.close(); q.close()
late = LateUser()
names = [ring.name, q.name, jq.name, mb.name] + [e.name for e in (r._rx, r._tx, one_way[0]._rx)]
print(" ".join(names)); sys.stdout.flush()
"""


def test_exit_with_open_handles_removes_their_segments_and_exits_cleanly():
    res = run_python(EXIT_WITH_OPEN_HANDLES)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    names = res.stdout.split()
    assert len(names) == 7
    left = [n for n in os.listdir(SHM) if any(n == x or n.startswith(x + ".") for x in names)]
    assert left == [], f"left in {SHM}: {left}"


USERS_THEN_WAIT = r"""
import sys, time, ipcfast
ring = ipcfast.Ring(1 << 16); ring.send_bytes(b"left")
q = ipcfast.Queue(); q.put(("left", 1))
mb = ipcfast.Mailbox(); mb.send("left")
r, w = ipcfast.Pipe(duplex=False)
print(" ".join([ring.name, q.name, mb.name, r._rx.name]), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_segments_whose_every_user_was_killed_are_collected_by_the_next_create(sig, monkeypatch):
    # SIGTERM ends a Python process without its exit hooks (no handler is installed by
    # default), exactly like SIGKILL: nobody is left to be the last one out, so the files
    # stay -- until any process of the same user next creates a segment.
    proc = subprocess.Popen([sys.executable, "-c", USERS_THEN_WAIT], stdout=subprocess.PIPE,
                            text=True)
    try:
        names = proc.stdout.readline().split()
        assert len(names) == 4
        proc.send_signal(sig)
        proc.wait(10)
        assert all(os.path.exists(os.path.join(SHM, n)) for n in names), "already gone?"
        monkeypatch.setattr(_segments, "AUTO_MIN_AGE", 0.0)
        monkeypatch.setattr(_segments, "_last_auto", [float("-inf")])
        with ipcfast.Ring(4096):                  # any create collects the dead
            pass
        left = [n for n in os.listdir(SHM) if any(n == x or n.startswith(x + ".") for x in names)]
        assert left == [], f"left in {SHM}: {left}"
    finally:
        proc.kill()
        proc.wait()
        _segments.remove(names if "names" in dir() else [])


def test_automatic_collection_leaves_segments_with_a_live_user_alone(monkeypatch):
    with ipcfast.Queue() as q, ipcfast.Ring(4096) as ring:
        q.put(1)
        monkeypatch.setattr(_segments, "AUTO_MIN_AGE", 0.0)
        monkeypatch.setattr(_segments, "_last_auto", [float("-inf")])
        with ipcfast.Ring(4096):
            pass
        assert q.get(timeout=5) == 1
        ring.send_bytes(b"x")
        assert ring.recv_bytes(timeout=5) == b"x"
