"""What an interpreter that exits with handles still open does: every segment it was the
last user of is removed, and nothing touches freed memory on the way out (objects torn down
after the exit hooks, like a module-level Connection's __del__, still call close())."""
from __future__ import annotations

import os

import pytest

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
