"""ipcfast.Ring between processes: bulk transfer with checksums, several producers and
consumers, every start method, segment lifetime, Ctrl-C, and producers killed with SIGKILL.

Children are module-level functions (spawn and forkserver import this module by name).
Every child is killed and reaped by the `ipc` fixture, and rings are closed only after
that, so a failing test cannot leave a process or a segment behind.
"""
from __future__ import annotations

import array
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import textwrap
import time
import zlib

import pytest

from ipcfast import Ring
from tests.support.procs import kill_all, wait_until
from tests.support.shm import path as shm_path
from tests.support.shm import rec, run_with_small_shm, sleepers

INTERRUPTED = 42          # exit code of a child that caught KeyboardInterrupt


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

class IPC:
    """Rings and child processes of one test, torn down children first."""

    def __init__(self):
        self.rings = []
        self.procs = []

    def ring(self, capacity=1 << 16, **kw) -> Ring:
        r = Ring(capacity, **kw)
        self.rings.append(r)
        return r

    def start(self, target, *args, method="spawn"):
        ctx = mp.get_context(method) if isinstance(method, str) else method
        p = ctx.Process(target=target, args=args, daemon=True)
        p.start()
        self.procs.append(p)
        return p

    def teardown(self):
        kill_all(self.procs)
        for r in self.rings:
            r.close()


@pytest.fixture
def ipc():
    box = IPC()
    yield box
    box.teardown()


# Checksummed messages: tag (1) + seq (8) + payload derived from (seed, seq) + crc32 (4).

def tables(seed: int, max_len: int):
    rnd = random.Random(seed)
    return rnd.randbytes(1 << 16), [rnd.randrange(0, max_len + 1) for _ in range(4096)]


def make(tag: int, seq: int, pool: bytes, lens) -> bytes:
    n = lens[seq & 4095]
    off = (seq * 2654435761) & 0x7fff
    body = bytes((tag,)) + seq.to_bytes(8, "little") + pool[off:off + n]
    return body + zlib.crc32(body).to_bytes(4, "little")


def check(m: bytes, pool: bytes, lens):
    """(tag, seq) of an intact message; AssertionError on any torn or corrupt byte."""
    assert len(m) >= 13, f"short message {m!r}"
    body = m[:-4]
    assert zlib.crc32(body) == int.from_bytes(m[-4:], "little"), "checksum mismatch (torn?)"
    seq = int.from_bytes(m[1:9], "little")
    n = lens[seq & 4095]
    off = (seq * 2654435761) & 0x7fff
    assert len(m) == 13 + n and m[9:-4] == pool[off:off + n], f"payload of {seq} is wrong"
    return m[0], seq


# --------------------------------------------------------------------------------------
# children
# --------------------------------------------------------------------------------------

def child_batch_producer(ring, n, seed, max_len, batch):
    pool, lens = tables(seed, max_len)
    seq = 0
    while seq < n:
        k = min(batch, n - seq)
        ring.send_many([make(0, s, pool, lens) for s in range(seq, seq + k)], timeout=30)
        seq += k
    ring.close()


def child_single_producer(name, n, seed, max_len):
    ring = Ring.attach(name)
    pool, lens = tables(seed, max_len)
    for seq in range(n):
        ring.send_bytes(make(0, seq, pool, lens), timeout=30)
    ring.close()


def child_tagged_producer(name, tag, n, seed, max_len):
    ring = Ring.attach(name)
    pool, lens = tables(seed, max_len)
    seq = 0
    rnd = random.Random(tag)
    while seq < n:
        k = min(rnd.randrange(1, 64), n - seq)
        if k < 8:                                 # mix single sends into the batches
            for s in range(seq, seq + k):
                ring.send_bytes(make(tag, s, pool, lens), timeout=30)
        else:
            ring.send_many([make(tag, s, pool, lens) for s in range(seq, seq + k)], timeout=30)
        seq += k
    ring.close()


def child_checking_consumer(name, seed, max_len, producers, results):
    """Receive until a sentinel (b""); check each message; report per-producer seqs."""
    ring = Ring.attach(name)
    pool, lens = tables(seed, max_len)
    seen = {tag: array.array("Q") for tag in range(producers)}
    error = None
    try:
        done = False
        while not done:
            batch = ring.recv_many(max_messages=256, timeout=30)
            for i, m in enumerate(batch):
                if m == b"":
                    rest = batch[i + 1:]          # a second sentinel is somebody else's
                    assert all(x == b"" for x in rest)
                    if rest:
                        ring.send_many(rest, timeout=30)
                    done = True
                    break
                tag, seq = check(m, pool, lens)
                s = seen[tag]
                assert not s or seq > s[-1], f"producer {tag}: {seq} after {s[-1]}"
                s.append(seq)
    except BaseException as exc:                  # report, do not hang the parent
        error = repr(exc)
    results.put((error, {tag: s.tobytes() for tag, s in seen.items()}))
    ring.close()


def child_echo(inbox, outbox, method):
    got = inbox.recv_bytes(timeout=30)
    outbox.send_bytes(b"child(%s) got %s" % (method.encode(), got), timeout=30)
    inbox.close()
    outbox.close()


def child_from_queue(q):
    ring = q.get(timeout=30)
    ring.send_bytes(b"via queue: " + ring.name.encode(), timeout=30)
    ring.close()


def child_attach_and_hold(name, attached, release, close_it):
    ring = Ring.attach(name)
    attached.set()
    release.wait(30)
    if close_it:
        ring.send_bytes(b"from the last holder", timeout=30)
        ring.close()
    else:
        os._exit(0)                  # no close: the peer table must notice we are gone


def child_block_until_interrupted(name, op, ready):
    ring = Ring.attach(name)
    if op in ("send_bytes", "send_many", "claim"):
        ring.send_bytes(b"f" * ring.max_message)          # full: sends must wait
    ready.set()
    try:
        if op == "recv_bytes":
            ring.recv_bytes()
        elif op == "recv_bytes_timeout":
            ring.recv_bytes(timeout=120)
        elif op == "recv_many":
            ring.recv_many()
        elif op == "view":
            with ring.view():
                pass
        elif op == "send_bytes":
            ring.send_bytes(b"x")
        elif op == "send_many":
            ring.send_many([b"x"])
        elif op == "claim":
            with ring.claim(8):
                pass
    except KeyboardInterrupt:
        ring.close()
        sys.exit(INTERRUPTED)
    ring.close()
    sys.exit(1)


def child_endless_producer(name, seed, max_len, started):
    """Send checksummed messages forever through every producer path, until SIGKILLed."""
    ring = Ring.attach(name)
    pool, lens = tables(seed, max_len)
    seq = step = 0
    started.set()
    while True:
        step += 1
        if step % 3 == 0:
            ring.send_bytes(make(0, seq, pool, lens))
            seq += 1
        elif step % 3 == 1:
            ring.send_many([make(0, s, pool, lens) for s in range(seq, seq + 4)])
            seq += 4
        else:                   # a claim filled byte by byte: the lock is held ~1/3 of the time
            m = make(0, seq, pool, lens)
            with ring.claim(len(m)) as mv:
                for i in range(len(m)):
                    mv[i] = m[i]
            seq += 1


def child_hold_claim_forever(name, ready):
    ring = Ring.attach(name)
    with ring.claim(1000) as mv:
        mv[:] = b"\xde\xad" * 500                 # half-written, never committed
        ready.set()
        time.sleep(120)


def child_hold_view_forever(name, ready):
    ring = Ring.attach(name)
    with ring.view() as mv:
        assert mv.tobytes() == b"precious"
        ready.set()
        time.sleep(120)


# --------------------------------------------------------------------------------------
# 3. bulk transfer between processes
# --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_one_producer_one_consumer_process_move_a_million_checksummed_messages(ipc):
    n, seed, max_len = 1_000_000, 20240611, 120
    ring = ipc.ring(1 << 20)
    p = ipc.start(child_batch_producer, ring, n, seed, max_len, 1000)
    pool, lens = tables(seed, max_len)
    expected = 0
    while expected < n:
        for m in ring.recv_many(timeout=30):
            tag, seq = check(m, pool, lens)
            assert seq == expected, f"got {seq}, expected {expected}"
            expected += 1
    p.join(30)
    assert p.exitcode == 0
    with pytest.raises(queue.Empty):
        ring.recv_bytes(block=False)          # nothing duplicated at the end
    assert len(ring) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("capacity", [4096, 1 << 16])
def test_one_producer_one_consumer_process_one_message_per_call(ipc, capacity):
    n, seed, max_len = 100_000, capacity, 300
    ring = ipc.ring(capacity)
    p = ipc.start(child_single_producer, ring.name, n, seed, max_len)
    pool, lens = tables(seed, max_len)
    for expected in range(n):
        tag, seq = check(ring.recv_bytes(timeout=30), pool, lens)
        assert seq == expected
    p.join(30)
    assert p.exitcode == 0
    assert ring.empty()


@pytest.mark.timeout(60)
def test_two_producers_two_consumers_processes_lose_nothing_and_keep_per_producer_order(ipc):
    producers, consumers, n, seed, max_len = 2, 2, 60_000, 99, 200
    ring = ipc.ring(1 << 16)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    cs = [ipc.start(child_checking_consumer, ring.name, seed, max_len, producers, results)
          for _ in range(consumers)]
    ps = [ipc.start(child_tagged_producer, ring.name, tag, n, seed, max_len)
          for tag in range(producers)]
    for p in ps:
        p.join(50)
        assert p.exitcode == 0
    ring.send_many([b""] * consumers, timeout=30)
    reports = [results.get(timeout=30) for _ in cs]
    for c in cs:
        c.join(30)
        assert c.exitcode == 0
    errors = [e for e, _ in reports if e]
    assert not errors, errors
    for tag in range(producers):
        got = array.array("Q")
        for _, seen in reports:
            got.frombytes(seen[tag])
        assert len(got) == n, f"producer {tag}: {len(got)} of {n} arrived"
        assert sorted(got) == list(range(n)), f"producer {tag}: lost or duplicated"
    # each consumer really took part
    assert all(sum(len(s) for s in seen.values()) > 0 for _, seen in reports)
    assert ring.empty()


# --------------------------------------------------------------------------------------
# 7. a Ring handed to a child under every start method
# --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_ring_passed_to_a_child_process_works_under_every_start_method(ipc, ctx):
    inbox, outbox = ipc.ring(4096), ipc.ring(8192, multi_producer=False)
    p = ipc.start(child_echo, inbox, outbox, ctx.get_start_method(), method=ctx)
    inbox.send_bytes(b"ping")
    reply = outbox.recv_bytes(timeout=30)
    assert reply == b"child(%s) got ping" % ctx.get_start_method().encode()
    p.join(30)
    assert p.exitcode == 0
    for ring in (inbox, outbox):      # the parent still holds both
        assert os.path.exists(shm_path(ring.name))
    assert inbox.empty() and outbox.empty()


@pytest.mark.timeout(60)
def test_ring_sent_through_a_multiprocessing_queue_attaches_in_the_receiver(ipc, ctx):
    ring = ipc.ring(4096)
    q = ctx.Queue()
    p = ipc.start(child_from_queue, q, method=ctx)
    q.put(ring)
    assert ring.recv_bytes(timeout=30) == b"via queue: " + ring.name.encode()
    p.join(30)
    assert p.exitcode == 0


# --------------------------------------------------------------------------------------
# 8. lifetime across processes
# --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_segment_survives_while_another_process_still_has_it_open(ipc):
    ctx = mp.get_context("spawn")
    attached, release = ctx.Event(), ctx.Event()
    ring = Ring(4096)
    path = shm_path(ring.name)
    try:
        p = ipc.start(child_attach_and_hold, ring.name, attached, release, True)
        assert attached.wait(30)
    finally:
        ring.close()                            # the creator lets go first
    assert os.path.exists(path), "segment removed while a child still had it open"
    with Ring.attach(ring.name) as again:       # and it is still usable by name
        release.set()
        assert again.recv_bytes(timeout=30) == b"from the last holder"
        p.join(30)
        assert p.exitcode == 0
        assert os.path.exists(path)             # we hold it now
    assert not os.path.exists(path)


@pytest.mark.timeout(60)
def test_segment_disappears_when_the_last_process_closes_after_others_exited(ipc):
    ctx = mp.get_context("spawn")
    attached, release = ctx.Event(), ctx.Event()
    ring = ipc.ring(4096)
    path = shm_path(ring.name)
    p = ipc.start(child_attach_and_hold, ring.name, attached, release, False)
    assert attached.wait(30)
    release.set()
    p.join(30)                                  # exited without closing (os._exit)
    assert p.exitcode == 0
    assert os.path.exists(path)
    ring.close()
    assert not os.path.exists(path), "a dead process kept the segment alive"


@pytest.mark.timeout(60)
def test_unlink_hides_the_name_from_new_processes_while_a_child_keeps_using_it(ipc):
    ring = ipc.ring(4096)
    ctx = mp.get_context("spawn")
    attached, release = ctx.Event(), ctx.Event()
    p = ipc.start(child_attach_and_hold, ring.name, attached, release, True)
    assert attached.wait(30)
    ring.unlink()
    assert not os.path.exists(shm_path(ring.name))
    with pytest.raises(FileNotFoundError):
        Ring.attach(ring.name)
    release.set()                               # the child sends through the unlinked ring
    assert ring.recv_bytes(timeout=30) == b"from the last holder"
    p.join(30)
    assert p.exitcode == 0


# --------------------------------------------------------------------------------------
# 5. Ctrl-C
# --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("op", ["recv_bytes", "recv_bytes_timeout", "recv_many", "view",
                                "send_bytes", "send_many", "claim"])
def test_ctrl_c_interrupts_a_child_blocked_forever_promptly(ipc, op):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    ring = ipc.ring(4096)
    p = ipc.start(child_block_until_interrupted, ring.name, op, ready)
    assert ready.wait(30)
    slot = 1 if op in ("send_bytes", "send_many", "claim") else 0
    wait_until(lambda: sleepers(ring)[slot] >= 1 or not p.is_alive(), what="child asleep")
    assert p.is_alive(), f"child exited early with {p.exitcode}"
    start = time.monotonic()
    os.kill(p.pid, signal.SIGINT)
    p.join(10)
    elapsed = time.monotonic() - start
    assert p.exitcode == INTERRUPTED, f"exit code {p.exitcode}: no KeyboardInterrupt"
    assert elapsed < 5.0
    # the interrupted call left nothing half-done
    if slot:
        assert len(ring) == 1 and ring.used == ring.capacity
    else:
        assert ring.empty()
    if slot:                              # and the ring is as usable as before
        assert ring.recv_bytes(timeout=5) == b"f" * ring.max_message
    ring.send_bytes(b"ok", timeout=5)
    assert ring.recv_bytes(timeout=5) == b"ok"


# --------------------------------------------------------------------------------------
# 10. SIGKILL
# --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", [0.0, 0.003, 0.02, 0.07, 0.15, 0.3])
def test_producer_sigkilled_at_a_random_moment_leaves_no_torn_or_reordered_message(ipc, delay):
    seed, max_len = int(delay * 1000) + 7, 2000
    pool, lens = tables(seed, max_len)
    ctx = mp.get_context("spawn")
    ring = ipc.ring(1 << 16)
    started = ctx.Event()
    p = ipc.start(child_endless_producer, ring.name, seed, max_len, started)
    assert started.wait(30)
    expected = 0

    def drain(until: float) -> None:
        """Receive (busily, so that the producer rarely waits for room) until `until`."""
        nonlocal expected
        while True:
            try:
                batch = ring.recv_many(block=False)
            except queue.Empty:
                batch = []
            for m in batch:
                tag, seq = check(m, pool, lens)
                assert seq == expected, f"got {seq}, expected {expected}"
                expected += 1
            if time.monotonic() >= until and not (until == 0 and batch):
                return

    ring.recv_bytes(timeout=30)           # the producer is sending...
    expected = 1
    drain(time.monotonic() + delay + random.random() * 0.02)
    os.kill(p.pid, signal.SIGKILL)        # ...and dies wherever it is, often inside a claim
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    drain(0)                              # everything published is intact and in order
    assert ring.empty() and len(ring) == 0
    # the producer lock (if it died holding it) was recovered: a new producer can send
    ring.send_bytes(b"after the crash", timeout=5)
    assert ring.recv_bytes(timeout=5) == b"after the crash"
    q = ipc.start(child_single_producer, ring.name, 500, seed, max_len)
    for want in range(500):
        assert check(ring.recv_bytes(timeout=30), pool, lens)[1] == want
    q.join(30)
    assert q.exitcode == 0


@pytest.mark.timeout(60)
def test_producer_killed_while_holding_a_claim_does_not_wedge_other_producers(ipc):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    ring = ipc.ring(4096)
    p = ipc.start(child_hold_claim_forever, ring.name, ready)
    assert ready.wait(30)
    with pytest.raises(queue.Full):       # the ring is empty: only the lock can stop us
        ring.send_bytes(b"x", timeout=0.3)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    ring.send_bytes(b"after", timeout=5)
    assert ring.used == rec(5)            # the dead claim never became a record
    assert ring.recv_bytes(timeout=5) == b"after"
    assert ring.empty()


@pytest.mark.timeout(60)
def test_consumer_killed_while_holding_a_view_leaves_the_message_for_the_next_reader(ipc):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    ring = ipc.ring(4096)
    ring.send_bytes(b"precious")
    p = ipc.start(child_hold_view_forever, ring.name, ready)
    assert ready.wait(30)
    with pytest.raises(queue.Empty):      # a message is there: only the lock can stop us
        ring.recv_bytes(timeout=0.3)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert ring.recv_bytes(timeout=5) == b"precious"
    ring.send_bytes(b"next", timeout=5)
    assert ring.recv_bytes(timeout=5) == b"next"


@pytest.mark.timeout(60)
def test_consumer_sigkilled_while_asleep_leaves_no_phantom_sleeper(ipc):
    """A process killed inside the futex wait never decrements the event's sleeper count:
    `ipcfast stat` then reports a waiter that does not exist and every later send pays a
    FUTEX_WAKE syscall for it (about 1.6x the cost of a small round trip)."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    ring = ipc.ring(4096)
    p = ipc.start(child_block_until_interrupted, ring.name, "recv_bytes", ready)
    assert ready.wait(30)
    wait_until(lambda: sleepers(ring)[0] >= 1, what="child asleep")
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    ring.send_bytes(b"x")
    assert ring.recv_bytes() == b"x"
    wait_until(lambda: sleepers(ring) == (0, 0), timeout=1.5, what="sleeper count back to 0")


# --------------------------------------------------------------------------------------
# /dev/shm smaller than the ring
# --------------------------------------------------------------------------------------

FILL_A_RING_BIGGER_THAN_SHM = textwrap.dedent("""
    import errno, sys
    from ipcfast import Ring
    try:
        r = Ring(1 << 22)                      # 4 MiB ring on a 1 MiB /dev/shm
    except OSError as exc:
        print("refused", errno.errorcode.get(exc.errno), flush=True)
        sys.exit(0)
    print("created", flush=True)
    try:
        for i in range(100):                   # 6 MB through the ring: touches every page
            r.send_bytes(b"x" * 60000, block=False)
            r.recv_bytes(block=False)
        print("wrote", flush=True)
    except OSError as exc:
        print("error", exc, flush=True)
    r.close()
""")


@pytest.mark.timeout(60)
def test_ring_larger_than_free_shared_memory_fails_at_creation_not_with_sigbus_later():
    """/dev/shm is a tmpfs with a size limit (64 MB in a default Docker container). A ring
    file created sparse let creation succeed and the process later die of SIGBUS when a
    write first touched a page the tmpfs could not supply. Reserving the pages at creation
    (posix_fallocate) turns that into an OSError(ENOSPC) from Ring()."""
    res = run_with_small_shm(FILL_A_RING_BIGGER_THAN_SHM)
    if res is None:
        pytest.skip("needs unshare -m and permission to mount a tmpfs")
    assert res.returncode == 0, (f"died with {res.returncode} "
                                 f"({'SIGBUS' if res.returncode in (-7, 135) else '?'}); "
                                 f"stdout={res.stdout!r} stderr={res.stderr[-500:]!r}")
    assert res.stdout.startswith("refused"), res.stdout
