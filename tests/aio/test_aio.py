"""ipcfast.aio across processes under fork, spawn and forkserver: awaits do not block the
loop, a cancelled get loses no message, asyncio.wait_for and timeout= work, a bounded put
awaits room, join() awaits task_done in another process, Pipe recv/send and EOF (also of a
SIGKILLed peer), Ring and Mailbox, many tasks waiting on one queue, wrap()/from_sync()."""
from __future__ import annotations

import asyncio
import os
import queue
import signal

import pytest

import ipcfast
import ipcfast.aio as aio
from ipcfast._native import lib
from tests.aio import workers as W
from tests.support.procs import CHILD_WAIT, join_all, kill_all

pytestmark = pytest.mark.timeout(90)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, CHILD_WAIT * 2))


def start(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def test_a_get_awaits_without_blocking_the_loop(ctx):
    aq, go = aio.Queue(), ipcfast.Queue()
    p = start(ctx, W.put_after_go, aq.sync, go, ["item"])

    async def main():
        getter = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.01)          # the loop runs while get() waits ...
        assert not getter.done()
        go.put("go")                       # ... and only then does the child put
        return await getter
    try:
        assert run(main()) == "item"
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        aq.close()
        go.close()


def test_cancelled_gets_lose_no_message(ctx):
    n = 300
    aq = aio.Queue()
    p = start(ctx, W.put_items, aq.sync, n)

    async def main():
        got, timeouts = [], 0
        while len(got) < n:
            try:
                got.append(await asyncio.wait_for(aq.get(), 0.0005))
            except asyncio.TimeoutError:
                timeouts += 1
        return got, timeouts
    try:
        got, timeouts = run(main())
        assert got == list(range(n))       # each once, in order: none lost to a cancel
        assert timeouts > 0                # (the cancellations did happen)
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        aq.close()


def test_a_cancelled_get_leaves_the_item_for_the_next_get():
    aq = aio.Queue()

    async def main():
        t = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        aq.sync.put("kept")
        return await aq.get(timeout=5)
    try:
        assert run(main()) == "kept"
    finally:
        aq.close()


def test_timeouts_raise_as_the_sync_calls_and_wait_for_raises_timeouterror():
    aq = aio.Queue(maxsize=1)

    async def main():
        with pytest.raises(queue.Empty):
            await aq.get(timeout=0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aq.get(), 0.05)
        with pytest.raises(queue.Empty):
            await aq.get(block=False)
        await aq.put(1)
        with pytest.raises(queue.Full):
            await aq.put(2, timeout=0.05)
        with pytest.raises(queue.Full):
            await aq.put(2, block=False)
        return await aq.get()
    try:
        assert run(main()) == 1
    finally:
        aq.close()


def test_a_put_on_a_full_bounded_queue_awaits_room(ctx):
    n = 40
    aq, out = aio.Queue(maxsize=3), ipcfast.Queue()
    p = start(ctx, W.drain_slowly, aq.sync, out, n)

    async def main():
        for i in range(n):
            await aq.put(i)
    try:
        run(main())
        assert out.get(timeout=CHILD_WAIT) == list(range(n))
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        aq.close()
        out.close()


def test_a_put_on_a_queue_full_of_bytes_awaits_until_a_get_frees_them():
    aq = aio.Queue(max_bytes=300)
    blob = b"x" * 100                      # about 130 bytes pickled: two fit, not three

    async def main():
        await aq.put(blob)
        await aq.put(blob)
        with pytest.raises(queue.Full):
            aq.sync.put_nowait(blob)
        space = aq.sync._poller(lib.IPCF_POLL_SPACE)
        size = aio._pickled_size(aq.sync, blob)
        assert space.rearm(size) is False    # no room for it: its space readiness is off
        assert space.rearm(1) is True        # (room for a smaller item)
        putter = asyncio.ensure_future(aq.put(blob))
        await asyncio.sleep(0.05)
        assert not putter.done()           # waits on the bytes bound, not on maxsize
        assert await aq.get() == blob      # frees ~130 bytes: the put goes through
        await asyncio.wait_for(putter, 5)
        assert aq.sync.qsize() == 2
    try:
        run(main())
    finally:
        aq.close()


def test_join_awaits_task_done_in_another_process(ctx):
    aq = aio.JoinableQueue()
    p = start(ctx, W.work_and_task_done, aq.sync, 5)

    async def main():
        for i in range(5):
            await aq.put(i)
        await aq.join()
        return aq.sync._live() and ipcfast._native.lib.ipcf_queue_unfinished(aq.sync._live())
    try:
        assert run(main()) == 0
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        aq.close()


def test_pipe_send_and_recv_and_eof_across_processes(ctx):
    a, b = aio.Pipe()
    p = start(ctx, W.echo, b.sync, 20)
    b.close()

    async def main():
        back = []
        for i in range(20):
            await a.send({"i": i, "pad": b"x" * (i * 1000)})
            back.append(await a.recv())
        with pytest.raises(EOFError):
            await a.recv()
        return back
    try:
        back = run(main())
        assert [m["i"] for m in back] == list(range(20))
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        a.close()


def test_recv_raises_eoferror_when_the_peer_is_sigkilled(ctx):
    a, b = aio.Pipe()
    report = ipcfast.Queue()
    p = start(ctx, W.send_then_hang, b.sync, report)
    b.close()

    async def main():
        assert await a.recv() == "before"
        pid = report.get(timeout=CHILD_WAIT)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EOFError):
            await a.recv()
    try:
        run(main())
    finally:
        kill_all([p])
        a.close()
        report.close()


def test_ring_and_mailbox_receive_across_processes(ctx):
    ring, mb = aio.Ring(1 << 16), aio.Mailbox()
    p = start(ctx, W.ring_and_mailbox, ring.sync, mb.sync)

    async def main():
        import pickle
        r = pickle.loads(await ring.recv_bytes(timeout=CHILD_WAIT))
        m = await mb.recv(timeout=CHILD_WAIT)
        return r, m.body, m.priority
    try:
        assert run(main()) == ("ring", "mailbox", 3)
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        ring.close()
        mb.close()


def test_many_tasks_waiting_on_one_queue_each_get_one(ctx):
    aq, go = aio.Queue(), ipcfast.Queue()
    p = start(ctx, W.put_after_go, aq.sync, go, list(range(8)))

    async def main():
        getters = [asyncio.ensure_future(aq.get()) for _ in range(8)]
        await asyncio.sleep(0.01)
        go.put("go")
        return sorted(await asyncio.gather(*getters))
    try:
        assert run(main()) == list(range(8))
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p])
        aq.close()
        go.close()


def test_wrap_and_from_sync_give_the_matching_class():
    q, jq, sq, r, m = (ipcfast.Queue(), ipcfast.JoinableQueue(), ipcfast.SimpleQueue(),
                       ipcfast.Ring(), ipcfast.Mailbox())
    a, b = ipcfast.Pipe()
    try:
        assert type(aio.wrap(q)) is aio.Queue and aio.wrap(q).sync is q
        assert type(aio.wrap(jq)) is aio.JoinableQueue
        assert type(aio.wrap(sq)) is aio.SimpleQueue
        assert type(aio.wrap(r)) is aio.Ring
        assert type(aio.wrap(m)) is aio.Mailbox
        assert type(aio.wrap(a)) is aio.Connection
        assert type(aio.Queue.from_sync(q)) is aio.Queue
        assert aio.wrap(aio.wrap(q)).sync is q
        with pytest.raises(TypeError, match="from_sync takes an ipcfast.Ring"):
            aio.Ring.from_sync(q)
        with pytest.raises(TypeError, match="not int"):
            aio.wrap(3)
        assert aio.wrap(q).qsize() == 0     # the rest is the sync handle's
    finally:
        for x in (q, jq, sq, r, m, a, b):
            x.close()


def test_simplequeue_put_and_get():
    sq = aio.SimpleQueue()

    async def main():
        t = asyncio.ensure_future(sq.get())
        await asyncio.sleep(0.01)
        await sq.put("s")
        return await t
    try:
        assert run(main()) == "s"
    finally:
        sq.close()


def test_a_mailbox_receive_by_type_waits_past_other_types(ctx):
    mb = aio.Mailbox()
    mb.sync.send("other", type=1)
    p = None

    async def main():
        nonlocal p
        with pytest.raises(queue.Empty):                  # readable, but not for type 2
            await mb.recv(type=2, timeout=0.1)
        p = start(ctx, W.send_typed, mb.sync, "wanted", 2)
        m = await mb.recv(type=2, timeout=CHILD_WAIT)
        return m.body, (await mb.recv(timeout=1)).body
    try:
        assert run(main()) == ("wanted", "other")
        join_all([p], CHILD_WAIT)
    finally:
        kill_all([p] if p else [])
        mb.close()


def test_a_ring_send_awaits_room():
    ring = aio.Ring(4096)

    async def main():
        sent = 0
        while True:
            try:
                ring.sync.send_bytes(b"x" * 1000, block=False)
                sent += 1
            except queue.Full:
                break
        t = asyncio.ensure_future(ring.send_bytes(b"y" * 1000))
        await asyncio.sleep(0.02)
        assert not t.done()                               # full: it awaits room
        assert await ring.recv_bytes() == b"x" * 1000     # makes room
        await asyncio.wait_for(t, CHILD_WAIT)
        return [await ring.recv_bytes() for _ in range(sent)]
    try:
        got = run(main())
        assert got[-1] == b"y" * 1000 and len(got) >= 2
    finally:
        ring.close()


def test_two_wrappers_of_one_queue_waiting_at_once_both_wake():
    q = ipcfast.Queue()
    a, b = aio.wrap(q), aio.Queue.from_sync(q)
    a._recheck = b._recheck = None        # only a wake-up can end their waits

    async def main():
        ta, tb = asyncio.ensure_future(a.get()), asyncio.ensure_future(b.get())
        await asyncio.sleep(0.01)
        q.put(1)
        q.put(2)
        return sorted(await asyncio.wait_for(asyncio.gather(ta, tb), CHILD_WAIT))
    try:
        assert run(main()) == [1, 2]
    finally:
        q.close()


def test_a_wait_on_a_handle_closed_under_it_raises_valueerror():
    aq = aio.Queue()

    async def main():
        t = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.01)
        aq.sync.close()                   # not through the aio object: no wake-up
        with pytest.raises(ValueError, match="closed"):
            await asyncio.wait_for(t, CHILD_WAIT)
    try:
        run(main())
    finally:
        aq.close()
