"""ctx.Pool and ProcessPoolExecutor(mp_context=ctx) over ipcfast's context: right results
under every start method, tasks and results through ipcfast queues, and terminate / close /
join that neither hang nor leave segments (the leaks fixture checks /dev/shm)."""
from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import sys
import textwrap

import pytest

import ipcfast
import ipcfast.context
from tests.context import workers as W
from tests.support.procs import CHILD_WAIT, REPO_ROOT, START_METHODS, gone, wait_until


@pytest.fixture(params=START_METHODS)
def ctx(request):
    return ipcfast.get_context(request.param)


def segment_exists(name: str) -> bool:
    return os.path.exists("/dev/shm/" + name.lstrip("/"))


def test_pool_moves_tasks_and_results_through_ipcfast_queues(ctx):
    with ctx.Pool(2) as pool:
        assert isinstance(pool._inqueue, ipcfast.context.SimpleQueue)
        assert isinstance(pool._outqueue, ipcfast.context.SimpleQueue)
        assert pool.map(W.square, range(500)) == [x * x for x in range(500)]


def test_pool_map_imap_apply_async_and_starmap_give_right_results(ctx):
    with ctx.Pool(2) as pool:
        assert pool.map(W.square, range(300), chunksize=1) == [x * x for x in range(300)]
        assert list(pool.imap(W.square, range(100), chunksize=7)) == [x * x for x in range(100)]
        assert sorted(pool.imap_unordered(W.square, range(50))) == [x * x for x in range(50)]
        assert pool.starmap(W.add, [(i, i) for i in range(40)]) == [2 * i for i in range(40)]
        results = [pool.apply_async(W.square, (i,)) for i in range(20)]
        assert [r.get(CHILD_WAIT) for r in results] == [i * i for i in range(20)]
        assert pool.apply(W.add, (2, 3)) == 5


def test_pool_task_exception_reaches_the_caller(ctx):
    with ctx.Pool(1) as pool:
        with pytest.raises(ValueError, match="task 3 fails"):
            pool.apply_async(W.fail, (3,)).get(CHILD_WAIT)
        assert pool.map(W.square, [4]) == [16]      # the worker survived it


def test_pool_with_maxtasksperchild_replaces_workers_and_loses_no_task(ctx):
    with ctx.Pool(2, maxtasksperchild=3) as pool:
        pids = pool.map(W.pid_of, range(30), chunksize=1)
        assert len(pids) == 30 and len(set(pids)) >= 4    # at most 3 tasks per worker
        assert pool.map(W.square, range(30)) == [x * x for x in range(30)]


def test_pool_close_and_join_finish_and_remove_the_queues_when_terminated(ctx):
    pool = ctx.Pool(2)
    names = (pool._inqueue.name, pool._outqueue.name)
    assert pool.map(W.square, range(100)) == [x * x for x in range(100)]
    pool.close()
    pool.join()
    assert all(not p.is_alive() for p in pool._pool)
    pool.terminate()           # what `with` does after a join: must not raise or hang
    assert not any(segment_exists(n) for n in names)


def test_pool_terminate_with_tasks_running_and_queued_does_not_hang(ctx):
    pool = ctx.Pool(2)
    names = (pool._inqueue.name, pool._outqueue.name)
    pending = pool.map_async(W.nap, [0.2] * 40 + [0.0] * 3000, chunksize=1)
    pool.apply_async(W.nap, (0.5,))
    pool.terminate()           # while the task queue is full (its bound) and workers busy
    pool.join()
    assert not pending.ready()   # as multiprocessing's: a terminated map never completes
    assert not any(segment_exists(n) for n in names)


@pytest.mark.parametrize("method", START_METHODS)
def test_pool_workers_exit_when_their_parent_is_sigkilled(method):
    """A stock pool's workers see EOF on their task pipe then; ipcfast's, EOFError from the
    task queue once the parent is gone, instead of waiting forever as orphans."""
    script = textwrap.dedent("""
        import os, sys, time, ipcfast
        from tests.context import workers as W
        pool = ipcfast.get_context(sys.argv[1]).Pool(2)
        pool.map(W.square, range(10))
        print(" ".join(str(p.pid) for p in pool._pool), flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    p = subprocess.Popen([sys.executable, "-c", script, method], stdout=subprocess.PIPE,
                         env=env, cwd=REPO_ROOT, text=True)
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        p.kill()
        p.wait()
    # the workers were the killed process's (or its forkserver's) children: not ours to reap
    wait_until(lambda: all(gone(pid) for pid in pids), 10.0, "orphaned pool workers exit")
    # (their queues: the last worker's close, or ipcfast gc, removes them; leaks fixture)


def test_process_pool_executor_with_the_context_gives_right_results(ctx):
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert isinstance(ex._result_queue, ipcfast.context.SimpleQueue)
        assert list(ex.map(W.square, range(200))) == [x * x for x in range(200)]
        assert list(ex.map(W.square, range(200), chunksize=16)) == [x * x for x in range(200)]
        assert ex.submit(W.add, 1, 2).result(CHILD_WAIT) == 3
        with pytest.raises(ValueError):
            ex.submit(W.fail, 1).result(CHILD_WAIT)
