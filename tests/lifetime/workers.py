"""Child-process targets of the lifetime tests that are not about one kind of handle.

No tests live here; imports only the standard library, ipcfast and tests.support, so spawn
and forkserver children start fast (``tests.lifetime.workers``).
"""
from __future__ import annotations

import sys

import ipcfast
from tests.support.procs import CHILD_WAIT


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
