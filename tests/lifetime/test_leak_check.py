"""The autouse leak check (tests/support/leaks.py): it must blame a test for the segments that the test
(or a child of it, alive or dead) left behind, and never for segments that an unrelated
process on the machine creates meanwhile."""
from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import signal
import subprocess
import sys
import textwrap

import ipcfast
from tests.support.leaks import ROOT_ENV, made_by_this_run
from tests.support.shm import path, ring_segments


def _unlink(name: str) -> None:
    try:
        os.unlink(path(name))
    except FileNotFoundError:
        pass


def test_a_segment_made_here_is_ours():
    r = ipcfast.Ring(4096)
    try:
        assert made_by_this_run(r.name)
    finally:
        r.close()


def _make_ring_and_exit(name: str) -> None:
    r = ipcfast.Ring(4096, name=name)  # never closed: left behind on purpose
    os._exit(0 if r is not None else 1)    # no finalizers: the segment stays


def test_a_segment_left_by_a_child_that_exited_is_ours():
    name = f"ipcf-leakcheck-dead-{secrets.token_hex(6)}"   # only its header names the child
    p = mp.get_context("fork").Process(target=_make_ring_and_exit, args=(name,))
    p.start()
    p.join(30)
    try:
        assert os.path.exists(path(name))
        assert made_by_this_run(name)
    finally:
        _unlink(name)


def test_queue_rings_made_by_a_dead_child_belong_to_the_queue_maker():
    q = ipcfast.Queue(capacity=4096)
    try:
        p = mp.get_context("fork").Process(target=_fill, args=(q,))
        p.start()
        p.join(30)
        rings = ring_segments(q.name)
        assert len(rings) > 1
        assert all(made_by_this_run(n) for n in rings)
    finally:
        q.close()


def _fill(q) -> None:
    for _ in range(50):
        q.put(b"x" * 300)


UNRELATED = textwrap.dedent("""
    import os, sys, time
    if os.fork():                      # the parent exits: the worker is re-parented
        os._exit(0)
    os.setsid()
    import ipcfast
    r = ipcfast.Ring(4096, name=sys.argv[1])
    print("made", os.getpid(), flush=True)
    time.sleep(float(sys.argv[2]))
    r.close()
""")


def test_a_segment_made_by_an_unrelated_live_process_is_not_ours():
    name = f"ipcf-leakcheck-foreign-{secrets.token_hex(6)}"     # no pid of ours in it
    env = {k: v for k, v in os.environ.items() if k != ROOT_ENV}
    out = subprocess.Popen([sys.executable, "-c", UNRELATED, name, "30"], env=env,
                           stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        line = out.stdout.readline().split()
        assert line[:1] == ["made"], line
        worker = int(line[1])
        out.wait(30)
        assert os.path.exists(path(name))
        # its creator is alive, not below us in the process tree, and not of this run
        assert not made_by_this_run(name)
    finally:
        if worker:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.stdout.close()
        _unlink(name)
