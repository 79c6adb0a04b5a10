"""A mailbox lock held by a process that stopped (here: a child that took the robust mutex
straight through libc and sleeps) never makes a call wait past its timeout: the calls that
re-take the lock after a wait or a copy use the caller's deadline (mailbox_recv.c,
mailbox_send.c), not an unbounded pthread_mutex_lock."""
from __future__ import annotations

import ctypes
import mmap
import multiprocessing as mp
import os
import queue
import signal
import time

import pytest

from ipcfast import Mailbox
from ipcfast._native import ffi, lib
from tests.support.shm import path

pytestmark = pytest.mark.timeout(60)

HOLD = 40.0


def child_hold_lock(name, ready, go, held, delay):
    """Take the mailbox mutex (robust, process-shared: its attributes live in the segment)
    *delay* seconds after *go*, and keep it."""
    libc = ctypes.CDLL(None)
    with open(path(name), "r+b") as f:
        mm = mmap.mmap(f.fileno(), lib.IPCF_HDR_SIZE)
    lock = ctypes.addressof(ctypes.c_char.from_buffer(mm, lib.IPCF_CTL_OFFSET +
                                                      ffi.offsetof("struct ipcf_mbox_ctl", "lock")))
    ready.set()
    go.wait(30)
    time.sleep(delay)
    assert libc.pthread_mutex_lock(ctypes.c_void_p(lock)) == 0
    held.set()
    time.sleep(HOLD)


def _fake_copy_in_flight(name, pid):
    """Make slot 0 (never used) look READING by live process *pid*: every repair keeps it
    in flight, so receives that time out keep looking for a dead copier's message."""
    word = ((lib.ipcf_proc_start(pid) & 0xFFFFFFFF) << 32) | pid
    base = lib.IPCF_HDR_SIZE
    with open(path(name), "r+b") as f:
        for field, value, size in (("length", 10, 4), ("owner", word, 8),
                                   ("state", lib.IPCF_SLOT_READING, 4)):
            f.seek(base + ffi.offsetof("struct ipcf_mbox_slot", field))
            f.write(value.to_bytes(size, "little"))
        f.seek(lib.IPCF_CTL_OFFSET + ffi.offsetof("struct ipcf_mbox_ctl", "inflight"))
        f.write((1).to_bytes(4, "little"))


def test_an_empty_receive_with_copies_in_flight_times_out_while_a_stopped_process_holds_the_lock():
    """After its wait timed out, a receive that saw copies in flight re-took the lock
    without a timeout (to look for a dead copier's message): it then waited for as long as
    the holder held it."""
    ctx = mp.get_context("spawn")
    mb = Mailbox(capacity=1 << 16, max_message=8192, max_messages=8)
    ready, go, held = ctx.Event(), ctx.Event(), ctx.Event()
    p = ctx.Process(target=child_hold_lock, args=(mb.name, ready, go, held, 0.05), daemon=True)
    p.start()
    try:
        assert ready.wait(30)
        _fake_copy_in_flight(mb.name, p.pid)     # as if the child were copying a body
        t0 = time.monotonic()
        go.set()
        with pytest.raises(queue.Empty):
            mb.recv_bytes(timeout=1.5)
        elapsed = time.monotonic() - t0
        assert held.is_set()
        assert elapsed < HOLD / 2, f"recv(timeout=1.5) returned after {elapsed:.1f} s"
        with pytest.raises(queue.Empty):  # the lock is still held: later calls time out too
            mb.recv_bytes(timeout=0.3)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    # the holder died holding it: the next lock repairs (the dead reader's slot is READY
    # again) and the mailbox works
    assert mb.recv_bytes(timeout=5).body == bytes(10)
    mb.send_bytes(b"after", timeout=5)
    assert mb.recv_bytes(timeout=5).body == b"after"
    mb.close()
