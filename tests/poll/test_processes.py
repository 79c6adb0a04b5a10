"""fileno() across processes under fork, spawn and forkserver: a parent waiting with
multiprocessing.connection.wait on every kind wakes when a child sends; a child waiting with
select wakes when the parent sends; Connection EOF when the child closes or exits; a waker
that finds the poller's process gone frees its slot; a fork child does not inherit its
parent's registration."""
from __future__ import annotations

import multiprocessing.connection as mpc
import os
import signal

import pytest

import ipcfast
from ipcfast._native import lib
from tests.poll import workers as W
from tests.poll.workers import KINDS, readable
from tests.support.procs import CHILD_WAIT, join_all, kill_all, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wait_wakes_when_a_child_sends(ctx, kind):
    h, send, recv, made = KINDS[kind]()
    peer = made[-1] if kind == "Connection" else h
    try:
        assert mpc.wait([h], timeout=0) == []
        p = ctx.Process(target=W.child_send, args=(peer, {"from": "child"}))
        p.start()
        try:
            assert mpc.wait([h], timeout=CHILD_WAIT) == [h]
            assert recv() == {"from": "child"}
            join_all([p], CHILD_WAIT)
        finally:
            kill_all([p])
        if kind != "Connection":         # (the child closed its end: the pipe is at EOF)
            assert mpc.wait([h], timeout=0) == []
    finally:
        for x in made:
            x.close()


def test_a_child_waiting_in_select_wakes_when_the_parent_puts(ctx):
    q, report = ipcfast.Queue(), ipcfast.Queue()
    p = ctx.Process(target=W.child_wait_then_report, args=(q, report))
    p.start()
    try:
        assert report.get(timeout=CHILD_WAIT) == "armed"
        q.put("hello")
        assert report.get(timeout=CHILD_WAIT) == ("readable", True, "hello")
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        q.close()
        report.close()


@pytest.mark.parametrize("how", ["close", "exit"])
def test_connection_polls_readable_at_eof_when_the_child_closes_or_exits(ctx, how):
    a, b = ipcfast.Pipe()
    p = ctx.Process(target=W.child_send, args=(b, "last", how == "close"))
    p.start()
    b.close()
    try:
        assert mpc.wait([a], timeout=CHILD_WAIT) == [a]
        assert a.recv() == "last"
        join_all([p], CHILD_WAIT)
        assert mpc.wait([a], timeout=CHILD_WAIT) == [a]     # EOF
        with pytest.raises(EOFError):
            a.recv()
    finally:
        kill_all([p])
        a.close()


def test_a_waker_that_finds_the_pollers_process_gone_frees_its_slot(ctx):
    q, report = ipcfast.Queue(), ipcfast.Queue()
    p = ctx.Process(target=W.child_arm_and_wait, args=(q, report))
    p.start()
    try:
        pid = report.get(timeout=CHILD_WAIT)
        sleeping, idents = W.poller_words(q.name)
        assert [w & 0x3FFFFF for w in idents if w] == [pid] and sleeping
        os.kill(pid, signal.SIGKILL)
        p.join(CHILD_WAIT)
        before = lib.ipcf_poll_notifies()
        q.put(1)                         # the waker's sendto is refused: the slot is freed
        assert lib.ipcf_poll_notifies() - before == 1
        assert W.poller_words(q.name) == (0, [0] * lib.IPCF_EVENT_POLLERS)
        assert q.get(timeout=0) == 1
    finally:
        kill_all([p])
        q.close()
        report.close()


def test_a_fork_child_makes_its_own_poller_and_leaves_the_parents_alone():
    import multiprocessing as mp
    q, report = ipcfast.Queue(), ipcfast.Queue()
    mine = q.fileno()
    p = mp.get_context("fork").Process(target=W.child_wait_then_report, args=(q, report))
    p.start()
    try:
        assert report.get(timeout=CHILD_WAIT) == "armed"
        wait_until(lambda: sum(1 for w in W.poller_words(q.name)[1] if w) == 2,
                   CHILD_WAIT, "the child's own poller")
        q.put("x")
        msg = report.get(timeout=CHILD_WAIT)
        join_all([p], CHILD_WAIT)
        assert msg[:2] == ("readable", True)
        if msg[2] is None:               # (the child took it: both were readable)
            assert readable(mine)
        idents = [w for w in W.poller_words(q.name)[1] if w]
        assert [w & 0x3FFFFF for w in idents] == [os.getpid()]   # the child's slot is gone
        assert q.fileno() == mine
    finally:
        kill_all([p])
        q.close()
        report.close()


def test_fileno_reclaims_the_slots_of_killed_pollers_when_all_are_taken():
    import multiprocessing as mp
    fork = mp.get_context("fork")
    q, report = ipcfast.Queue(), ipcfast.Queue()
    procs = [fork.Process(target=W.child_arm_and_wait, args=(q, report))
             for _ in range(lib.IPCF_EVENT_POLLERS)]
    try:
        for p in procs:
            p.start()
        pids = [report.get(timeout=CHILD_WAIT) for _ in procs]
        assert sorted(w & 0x3FFFFF for w in W.poller_words(q.name)[1]) == sorted(pids)
        kill_all(procs)                  # SIGKILL: no close, no wake to find them gone
        fd = q.fileno()                  # every slot taken: the dead ones are reclaimed
        idents = [w for w in W.poller_words(q.name)[1] if w]
        assert [w & 0x3FFFFF for w in idents] == [os.getpid()]
        q.put(1)
        assert readable(fd)
    finally:
        kill_all(procs)
        q.close()
        report.close()


def test_connection_polls_readable_at_eof_when_the_writer_is_sigkilled(ctx):
    a, b = ipcfast.Pipe(duplex=False)
    report = ipcfast.Queue()
    p = ctx.Process(target=W.child_hold_writer, args=(b, report))
    p.start()
    b.close()
    try:
        pid = report.get(timeout=CHILD_WAIT)
        assert mpc.wait([a], timeout=0) == []
        os.kill(pid, signal.SIGKILL)     # no close: only its pidfd tells
        assert mpc.wait([a], timeout=CHILD_WAIT) == [a]
        with pytest.raises(EOFError):
            a.recv()
    finally:
        kill_all([p])
        a.close()
        report.close()


def test_a_killed_writer_among_live_ones_is_readable_once_then_not():
    import multiprocessing as mp
    fork = mp.get_context("fork")
    a, b = ipcfast.Pipe(duplex=False)
    report = ipcfast.Queue()
    procs = [fork.Process(target=W.child_hold_writer, args=(b, report)) for _ in range(2)]
    try:
        for p in procs:
            p.start()
        b.close()
        pids = [report.get(timeout=CHILD_WAIT) for _ in procs]
        fd = a.fileno()
        assert not readable(fd)
        os.kill(pids[0], signal.SIGKILL)
        procs[0].join(CHILD_WAIT)
        assert readable(fd, CHILD_WAIT)  # its pidfd: maybe EOF ...
        assert not a.poll(0)             # ... but the other writer lives: not EOF
        assert not readable(fd)          # and the re-arm dropped the dead one's pidfd
        os.kill(pids[1], signal.SIGKILL)
        assert mpc.wait([a], timeout=CHILD_WAIT) == [a]
        with pytest.raises(EOFError):
            a.recv()
    finally:
        kill_all(procs)
        a.close()
        report.close()
