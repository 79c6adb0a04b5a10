"""ipcfast.Ring with threads of one process: blocking and waking, timeouts, signals.

Timing assertions are deliberately one-sided or generous (a loaded 2-core CI box can stall
a thread for a long time); where a precise property matters it is checked on the best of
several tries.
"""
from __future__ import annotations

import ast
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ipcfast import Ring
from tests.support.procs import wait_until
from tests.support.shm import path as shm_path
from tests.support.shm import sleepers

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

_live_workers: list = []


class Worker(threading.Thread):
    """A thread that records its target's result or exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        _live_workers.append(self)
        self.fn, self.args = fn, args
        self.result = self.error = None
        self.finished_at = None

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:       # noqa: BLE001 - reported by outcome()
            self.error = exc
        self.finished_at = time.monotonic()

    def outcome(self, timeout: float = 30.0):
        self.join(timeout)
        assert not self.is_alive(), "worker thread is stuck"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def rings():
    """Make rings that are closed only once every Worker thread has finished.

    Closing a ring while a thread still sleeps in it unmaps the segment under that thread
    (see test_closing_a_ring_while_another_thread_is_blocked_on_it_does_not_crash), which
    would take the whole test session down with it. If a worker is stuck after a failure,
    its rings are left open instead: the leak check then reports the test."""
    made = []

    def make(capacity: int = 4096, *, attach: str = None, **kw) -> Ring:
        ring = Ring.attach(attach) if attach else Ring(capacity, **kw)
        made.append(ring)
        return ring

    yield make
    deadline = time.monotonic() + 40
    for w in list(_live_workers):
        w.join(max(0.0, deadline - time.monotonic()))
    if any(w.is_alive() for w in _live_workers):
        return
    _live_workers.clear()
    for ring in made:
        ring.close()


def fill(ring: Ring) -> None:
    """Fill the ring so that not even an empty message fits."""
    ring.send_bytes(b"f" * ring.max_message, block=False)


def receive(ring: Ring, how: str, timeout):
    if how == "recv_bytes":
        return ring.recv_bytes(timeout=timeout)
    if how == "recv_many":
        return b"".join(ring.recv_many(timeout=timeout))
    with ring.view(timeout=timeout) as mv:
        return mv.tobytes()


def send(ring: Ring, how: str, data: bytes, timeout):
    if how == "send_bytes":
        ring.send_bytes(data, timeout=timeout)
    elif how == "send_many":
        ring.send_many([data], timeout=timeout)
    else:
        with ring.claim(len(data), timeout=timeout) as mv:
            mv[:] = data


RECEIVERS = ["recv_bytes", "recv_many", "view"]
SENDERS = ["send_bytes", "send_many", "claim"]


# --------------------------------------------------------------------------------------
# 4. blocking and waking
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [None, 30.0], ids=["forever", "timeout"])
@pytest.mark.parametrize("how", RECEIVERS)
def test_consumer_thread_blocked_in_recv_is_woken_by_producer_thread(rings, how, timeout):
    ring = rings(4096)
    consumer = Worker(receive, ring, how, timeout)
    consumer.start()
    wait_until(lambda: sleepers(ring)[0] >= 1, what="consumer asleep")
    assert consumer.is_alive()
    sent_at = time.monotonic()
    ring.send_bytes(b"wake up")
    assert consumer.outcome() == b"wake up"
    assert consumer.finished_at - sent_at < 5.0
    assert ring.empty()


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["forever", "timeout"])
@pytest.mark.parametrize("how", SENDERS)
def test_producer_thread_blocked_on_full_ring_is_woken_by_consumer_thread(rings, how, timeout):
    ring = rings(4096)
    fill(ring)
    producer = Worker(send, ring, how, b"squeezed in", timeout)
    producer.start()
    wait_until(lambda: sleepers(ring)[1] >= 1, what="producer asleep")
    assert producer.is_alive()
    assert ring.recv_bytes() == b"f" * ring.max_message
    producer.outcome()
    assert ring.recv_bytes(timeout=5) == b"squeezed in"


def test_several_sleeping_consumers_each_get_one_message(rings):
    ring = rings(4096)
    consumers = [Worker(ring.recv_bytes, True, 30.0) for _ in range(4)]
    for c in consumers:
        c.start()
    wait_until(lambda: sleepers(ring)[0] >= 4, what="4 consumers asleep")
    for i in range(4):
        ring.send_bytes(b"m%d" % i)
    assert sorted(c.outcome() for c in consumers) == [b"m0", b"m1", b"m2", b"m3"]


def test_ping_pong_between_threads_loses_no_wakeup(rings):
    """Each hop needs a wake-up of a sleeping thread. A lost futex wake would cost a whole
    100 ms polling slice, so 1000 round trips would take 100+ s instead of well under 10."""
    n = 1000
    ping, pong = rings(4096), rings(4096)
    def echo():
        for _ in range(n):
            pong.send_bytes(ping.recv_bytes(timeout=30))

    t = Worker(echo)
    t.start()
    start = time.monotonic()
    for i in range(n):
        msg = i.to_bytes(4, "little")
        ping.send_bytes(msg)
        assert pong.recv_bytes(timeout=30) == msg
    elapsed = time.monotonic() - start
    t.outcome()
    assert elapsed < 20.0, f"{n} round trips took {elapsed:.1f} s"


@pytest.mark.parametrize("shared", [True, False], ids=["one-handle", "handle-per-thread"])
def test_many_producer_and_consumer_threads_lose_nothing_and_keep_per_producer_order(rings,
                                                                                     shared):
    producers, consumers, per = 3, 3, 4000
    ring = rings(8192)
    def handle():
        return ring if shared else rings(attach=ring.name)

    def produce(pid, h):
        for seq in range(per):
            h.send_bytes(bytes([pid]) + seq.to_bytes(4, "little") + b"p" * (seq % 50),
                         timeout=30)

    def consume(h):
        got = []
        while True:
            m = h.recv_bytes(timeout=30)
            if m == b"":
                return got
            assert m[5:] == b"p" * (len(m) - 5)
            got.append((m[0], int.from_bytes(m[1:5], "little")))

    cs = [Worker(consume, handle()) for _ in range(consumers)]
    ps = [Worker(produce, pid, handle()) for pid in range(producers)]
    for w in cs + ps:
        w.start()
    for p in ps:
        p.outcome()
    for _ in range(consumers):
        ring.send_bytes(b"")
    results = [c.outcome() for c in cs]
    seen = {pid: [] for pid in range(producers)}
    for got in results:
        last = {}
        for pid, seq in got:
            assert seq > last.get(pid, -1), "a consumer saw one producer's messages out of order"
            last[pid] = seq
            seen[pid].append(seq)
    for pid in range(producers):
        assert sorted(seen[pid]) == list(range(per)), f"producer {pid}: lost or duplicated"


def test_producer_on_another_handle_waits_while_a_claim_is_open(rings):
    ring = rings(4096)
    other = rings(attach=ring.name)
    opened, go = threading.Event(), threading.Event()

    def claimer():
        with ring.claim(5) as mv:
            mv[:] = b"first"
            opened.set()
            go.wait(30)

    c = Worker(claimer)
    c.start()
    assert opened.wait(30)
    s = Worker(other.send_bytes, b"second", True, 30.0)
    s.start()
    time.sleep(0.2)
    assert s.is_alive(), "a second producer sent while a claim was open"
    go.set()
    c.outcome()
    s.outcome()
    assert ring.recv_many(timeout=5) == [b"first", b"second"]


def test_send_from_a_second_thread_waits_while_a_claim_is_open_on_the_same_ring(rings):
    """claim()'s docstring promises 'Other producers wait while a claim is open', and threads
    may share a Ring (regression: the second thread got IpcfastError('call out of order'))."""
    ring = rings(4096)
    opened, go = threading.Event(), threading.Event()

    def claimer():
        with ring.claim(5) as mv:
            mv[:] = b"first"
            opened.set()
            go.wait(30)

    c = Worker(claimer)
    c.start()
    assert opened.wait(30)
    s = Worker(ring.send_bytes, b"second", True, 30.0)
    s.start()
    time.sleep(0.2)
    assert s.is_alive(), "a second producer thread sent while a claim was open"
    go.set()
    c.outcome()
    s.outcome()
    assert ring.recv_many(timeout=5) == [b"first", b"second"]


def test_recv_from_a_second_thread_waits_while_a_view_is_open_on_the_same_ring(rings):
    ring = rings(4096)
    ring.send_bytes(b"first")
    ring.send_bytes(b"second")
    opened, go = threading.Event(), threading.Event()

    def viewer():
        with ring.view() as mv:
            got = mv.tobytes()
            opened.set()
            go.wait(30)
        return got

    v = Worker(viewer)
    v.start()
    assert opened.wait(30)
    r = Worker(ring.recv_bytes, True, 30.0)
    r.start()
    time.sleep(0.2)
    assert r.is_alive(), "a second consumer thread received while a view was open"
    go.set()
    assert v.outcome() == b"first"
    assert r.outcome() == b"second"


@pytest.mark.parametrize("how, size, capacity", [("recv_bytes", 100_000, 1 << 20),
                                                 ("recv_many", 1_500_000, 4 << 20)])
def test_competing_consumers_never_get_a_spurious_empty_for_large_messages(rings, how, size,
                                                                          capacity):
    """A blocking receive must not raise queue.Empty before its timeout. Records larger than
    the receive buffer take a second step (a non-blocking view) in which a competing consumer
    can take the record first: that consumer's call then raises Empty while messages are
    still flowing and its 30 s timeout is far away."""
    count = 60 if how == "recv_bytes" else 24
    ring = rings(capacity)
    c1, c2 = rings(attach=ring.name), rings(attach=ring.name)
    spurious = []

    def consume(h):
        got = 0
        while True:
            try:
                if how == "recv_bytes":
                    msgs = [h.recv_bytes(timeout=30)]
                else:
                    msgs = h.recv_many(timeout=30)
            except queue.Empty:
                spurious.append(time.monotonic())
                continue
            for i, m in enumerate(msgs):
                if m == b"":
                    extra = msgs[i + 1:]          # recv_many may take both sentinels
                    assert extra in ([], [b""])
                    h.send_many(extra, timeout=30)
                    return got
                assert m == bytes([m[0]]) * size
                got += 1

    workers = [Worker(consume, c1), Worker(consume, c2)]
    for w in workers:
        w.start()
    for i in range(count):
        ring.send_bytes(bytes([i % 256]) * size, timeout=30)
        time.sleep(0.003)
    ring.send_many([b"", b""], timeout=30)
    total = sum(w.outcome(60) for w in workers)
    assert total == count
    assert not spurious, f"{len(spurious)} blocking receives raised queue.Empty early"


CLOSE_WHILE_BLOCKED = textwrap.dedent("""
    import queue, sys, threading, time
    from ipcfast import Ring
    from ipcfast._native import ffi, lib
    r = Ring(4096)
    print(r.name, flush=True)
    out = []
    def blocked():
        try:
            r.{call}
            out.append("returned")
        except ValueError as exc:
            out.append("ValueError " + str(exc))
        except queue.Empty:
            out.append("Empty")
        except queue.Full:
            out.append("Full")
        except Exception as exc:
            out.append(type(exc).__name__)
    {prepare}
    t = threading.Thread(target=blocked)
    t.start()
    info = ffi.new("struct ipcf_seg_info *")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lib.ipcf_seg_inspect(r.name.encode(), info)
        if info.counters[6] or info.counters[7]:
            break
        time.sleep(0.005)
    r.close()
    t.join(20)
    print("outcome", out, flush=True)
""")


@pytest.mark.parametrize("call, prepare", [
    ("recv_bytes(timeout=3)", ""),
    ("recv_bytes()", ""),
    ("send_bytes(b'x', timeout=3)", "r.send_bytes(b'f' * r.max_message)"),
])
def test_closing_a_ring_while_another_thread_is_blocked_on_it_does_not_crash(call, prepare):
    """close() from one thread while another sleeps inside recv/send: the sleeper must get
    ValueError 'closed' (close(): "calls blocked in other threads return with it"), never
    touch the unmapped segment. A call with a timeout may also have timed out first on a
    loaded machine; a call without one has only ValueError."""
    script = CLOSE_WHILE_BLOCKED.format(call=call, prepare=prepare)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50)
    name = proc.stdout.split("\n", 1)[0].strip()
    if name and os.path.exists(shm_path(name)):
        os.unlink(shm_path(name))
    assert proc.returncode == 0, f"process died with {proc.returncode}: {proc.stderr[-2000:]}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("outcome "))
    outcome = ast.literal_eval(line[len("outcome "):])
    assert len(outcome) == 1, outcome
    timed_out = ("Empty", "Full") if "timeout=" in call else ()
    assert (outcome[0].startswith("ValueError") and "closed" in outcome[0]) \
        or outcome[0] in timed_out, outcome


# --------------------------------------------------------------------------------------
# 4b. timeouts
# --------------------------------------------------------------------------------------

def op_on_stuck_ring(ring: Ring, op: str, **kw):
    """Run `op` where it cannot complete: receives on an empty ring, sends on a full one."""
    if op in RECEIVERS:
        return receive(ring, op, **kw) if kw.keys() == {"timeout"} else _nonblocking(ring, op, **kw)
    fill(ring)
    if kw.keys() == {"timeout"}:
        return send(ring, op, b"x", **kw)
    return _nonblocking(ring, op, **kw)


def _nonblocking(ring, op, block):
    if op == "recv_bytes":
        return ring.recv_bytes(block=block)
    if op == "recv_many":
        return ring.recv_many(block=block)
    if op == "view":
        with ring.view(block=block):
            return None
    if op == "send_bytes":
        return ring.send_bytes(b"x", block=block)
    if op == "send_many":
        return ring.send_many([b"x"], block=block)
    with ring.claim(1, block=block):
        return None


EXPECT = {**{op: queue.Empty for op in RECEIVERS}, **{op: queue.Full for op in SENDERS}}
OPS = RECEIVERS + SENDERS


@pytest.mark.parametrize("op", OPS)
def test_times_out_after_deadline(op):
    with Ring(4096) as ring:
        start = time.monotonic()
        with pytest.raises(EXPECT[op]):
            op_on_stuck_ring(ring, op, timeout=0.2)
        elapsed = time.monotonic() - start
        assert 0.2 <= elapsed < 5.0


def test_recv_times_out_after_deadline():
    with Ring(4096) as ring:
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            ring.recv_bytes(timeout=0.2)
        elapsed = time.monotonic() - start
        assert 0.2 <= elapsed < 5.0


@pytest.mark.parametrize("op", OPS)
def test_block_false_raises_at_once(op):
    with Ring(4096) as ring:
        start = time.monotonic()
        with pytest.raises(EXPECT[op]):
            op_on_stuck_ring(ring, op, block=False)
        assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("op", OPS)
def test_zero_timeout_raises_at_once(op):
    with Ring(4096) as ring:
        start = time.monotonic()
        with pytest.raises(EXPECT[op]):
            op_on_stuck_ring(ring, op, timeout=0)
        assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stuck", [True, False], ids=["would-wait", "would-succeed"])
def test_negative_timeout_raises_value_error(op, stuck):
    with Ring(4096) as ring:
        if op in RECEIVERS and not stuck:
            ring.send_bytes(b"ready")
        if op in SENDERS and stuck:
            fill(ring)
        before = (len(ring), ring.used)
        with pytest.raises(ValueError):
            if op in RECEIVERS:
                receive(ring, op, timeout=-1)
            else:
                send(ring, op, b"x", timeout=-0.5)
        assert (len(ring), ring.used) == before, "a call with a bad timeout changed the ring"


@pytest.mark.parametrize("op", OPS)
def test_timeout_is_not_overshot_by_a_polling_slice(op):
    """timeout=0.05 must wait about 0.05 s, not 0.05 s plus another 0.05 s (Python slices the
    wait into 100 ms calls into C; a first try that already waits must count against the
    caller's deadline). Best of 5, so a loaded machine cannot make it fail."""
    best = float("inf")
    with Ring(4096) as ring:
        for _ in range(5):
            start = time.monotonic()
            with pytest.raises(EXPECT[op]):
                if op in RECEIVERS:
                    receive(ring, op, timeout=0.05)
                else:
                    if ring.empty():
                        fill(ring)
                    send(ring, op, b"x", timeout=0.05)
            best = min(best, time.monotonic() - start)
    assert 0.05 <= best < 0.085, f"timeout=0.05 took {best:.3f} s at best"


def test_large_timeout_is_accepted():
    with Ring(4096) as ring:
        ring.send_bytes(b"x")
        assert ring.recv_bytes(timeout=1e9) == b"x"
        ring.send_bytes(b"y", timeout=1e9)
        assert ring.recv_many(timeout=10**7) == [b"y"]


# --------------------------------------------------------------------------------------
# 5. signals in one process (Ctrl-C in a child: test_processes.py)
# --------------------------------------------------------------------------------------

class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
@pytest.mark.parametrize("op", ["recv_bytes", "recv_many", "view", "send_bytes", "claim"])
def test_signal_handler_runs_promptly_while_blocked_forever(rings, op):
    """A Python signal handler must run (and may raise) while the main thread sleeps in a
    blocking call with no timeout: that is what makes Ctrl-C work."""
    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGUSR1, handler)
    main = threading.main_thread().ident
    sent_at = []
    try:
        ring = rings(4096)
        if op in SENDERS:
            fill(ring)
        slot = 0 if op in RECEIVERS else 1

        def poke():
            wait_until(lambda: sleepers(ring)[slot] >= 1, what="main thread asleep")
            sent_at.append(time.monotonic())
            signal.pthread_kill(main, signal.SIGUSR1)

        poker = Worker(poke)
        poker.start()
        with pytest.raises(Interrupted):
            if op in RECEIVERS:
                receive(ring, op, timeout=None)
            else:
                send(ring, op, b"x", timeout=None)
        latency = time.monotonic() - sent_at[0]
        poker.outcome()
        assert latency < 3.0
        # the interrupted call left the ring consistent
        if op in SENDERS:
            assert len(ring) == 1
            ring.recv_bytes()
        ring.send_bytes(b"still fine", timeout=5)
        assert ring.recv_bytes(timeout=5) == b"still fine"
    finally:
        signal.signal(signal.SIGUSR1, old)
