"""Kill-fuzz: SIGKILL random producers and consumers of every class at random moments and
check the README's promise: "any process may be SIGKILLed at any instruction; the others
keep working, never hang and never read a torn message; a dead peer costs at most its own
in-flight message".

Each class gets ``--kills N`` SIGKILLs (default 200; the spawn case a tenth). A kill comes
0-50 ms after the latest start of a worker and hits a producer or a consumer (even odds),
chosen at random among the live ones; a replacement of the same role starts at once. So
kills land everywhere: in the fork bootstrap, attaching, inside send and receive, holding
side locks and the mailbox lock, chaining queue rings, copying large bodies, asleep.
Workers are forked (fast); ``test_queue_spawn`` does the same with spawn children, whose
handles travel pickled. Every message carries (producer id, sequence number, payload of
random length: 45% over 256 B, 20% over 4 KiB, 5% over 16 KiB; CRC32); see
tests/stress/kill_workers.py (children) and tests/stress/kill_fuzz.py (parent).

After the kills the producers are stopped, the consumers drain the object, every handle
is closed, and the checker counts per class:

* **hangs**: a call that overstays its own timeout by HANG_SLACK (5) s (every blocking call
  has a timeout; Pipe's ``send_bytes`` has none and gets UNTIMED, 10 s); a worker that has
  not reached its loop START_BOUND (30) s after its start; STALL (10) s in which no
  consumer received anything while messages were waiting, or in which a live producer sent
  nothing; messages still waiting once the consumers drained without progress for STALL
  s; a worker that does not stop when told; a pipe reader without EOFError, or writer
  without BrokenPipeError, PIPE_BOUND (3) s after its last peer's kill. A hung worker is
  SIGKILLed and accounted like a killed one.
* **torn**: a message whose CRC or length is wrong, or whose body does not unpickle (the
  report says where it goes wrong: first bad byte of the body, zeroed tail).
* **duplicates**: a message (producer, seq) received more than once.
* **out of order**: within one consumer, a message of a producer after a later one of the
  same producer (beyond the allowance).
* **lost beyond allowance**: messages whose send had returned and that nobody received,
  beyond the allowance.
* **leaked**: segments of the run's objects (a queue's rings included) left in /dev/shm
  after every worker is gone and every handle closed (after the leak check's 5 s settle
  time; they are then removed). Not
  counted: a pipe whose last user had to be SIGKILLed for a hang (a segment whose every
  user was SIGKILLed stays until ``ipcfast gc``, as documented); a pipe reader that hangs
  is stopped instead, so that it is the last user and closes the pipe.
* **errors**: whatever else the contract rules out: a worker that raised or crashed (e.g.
  SIGSEGV); a pipe end that saw EOF/BrokenPipeError while the parent still held the other
  end; a message received although its sender was told it was not (ReceiverDiedError, or
  queue.Full: withdrawn); a receipt naming a receiver other than the one that logged the
  message; a message nobody sent; derived state that is not back to zero once the object
  is drained with no worker left (queue size, ring bytes, mailbox count/bytes_held/inflight).

The allowance, per class. A *held kill* is the kill of a consumer that was inside a
receive (from just before the call until its result was logged); each may cost one
message, the one it had taken. A producer killed inside a send may or may not have
delivered that one message (either is fine, and it is not counted); every message whose
send returned must arrive, unless a held kill explains its absence:

* **Queue** (3 producers, 3 consumers, maxsize 64, rings of 16 KiB, so items chain to new
  rings and items over 16 KiB get rings of their own): each missing item needs a held
  kill of its own that could have taken it: one that died after the receive of the item
  before it (of the same producer) began, in a receive that began before the item after it
  was logged (items of one producer are taken in order); a bipartite matching, one item
  per kill. No duplicate; no reordering (an item whose consumer died inside get stays for
  the next one, in order).
* **Ring shared** (3 producers, 3 consumers on the side locks, 256 KiB): as Queue.
* **Ring 1:1** (``multi_producer=False, multi_consumer=False``, 256 KiB, one producer and
  one consumer, each replaced after it is reaped): messages arrive in send order, so a
  missing message must sit right after the last message received before a held kill (one
  per kill) and before the first one its replacement received.
* **Mailbox** (3 senders, 3 receivers, shared policy, 1 MiB, bodies up to 48 KiB): a
  message whose receiver died copying it is made READY again and may be delivered after
  later messages of its sender (and be taken, and lost, by a later receiver), so only the
  count holds: lost + reordered <= held kills. No duplicate.
* **Mailbox fast path** (``send(block=False)`` / ``recv_bytes(block=False)``: the calls
  without a timeout, receipt or filter, ipcf_mbox_send / ipcf_mbox_take): as Mailbox.
* **Mailbox batches** (``send_many`` of 1-64 messages, ``recv_many`` of up to 1-64, drawn
  per call; payloads under 4 KiB, so every batch is sent by ipcf_mbox_send_many under one
  lock hold and every body is copied under the lock): a batch whose send returned arrives
  whole; one whose sender was killed inside send_many arrives whole, not at all, or as a
  prefix (killed while publishing it), so every message of it before the last one that
  arrived must arrive; queue.Full means none of it was sent. A receiver killed inside
  recv_many (until its batch is logged) may take its batch with it: a held kill explains
  up to that receive's max_messages, matched by time as for Queue. Nothing is re-delivered
  behind later messages (the repair that relinks a dead receiver's message runs before
  any other take), so no reordering at all. No duplicate. A recv_many that returns more
  than its max_messages, out of delivery order (seq not increasing) or a header length
  other than its body's fails its worker (an error).
* **Mailbox with receipts** (``send(..., wait="received")``, RECEIPT_TIMEOUT 5 s): as
  Mailbox, and each sender learns the fate of its message: a Receipt means the receiver it
  names logged it, or was killed inside that receive (a held kill, one message per kill:
  the only way a receipted message may be missing); ReceiverDiedError ("the receiver died
  before finishing; it was not delivered") and queue.Full (withdrawn) mean nobody got it:
  then it may not arrive, and its absence is not a loss.
* **Pipe** (``Pipe(duplex=False)``, 256 KiB, one writer and one reader at a time): episodes
  of 1-6 kills. During an episode the parent keeps both ends (to fork replacements), so
  nobody may see EOFError or BrokenPipeError. Before its last kill the parent closes its
  ends; if the writer is then killed, the reader must drain and get EOFError within
  PIPE_BOUND; if the reader is killed, the writer must get BrokenPipeError within
  PIPE_BOUND (at the latest once the pipe is full). Losses as Ring 1:1, except that what
  was still in the pipe when its last reader died went with it (messages after the last
  one received do not count).

Run ``python -m pytest -m stress tests/stress/test_kill_fuzz.py --kills 1000 --fuzz-seed 7``
(add ``-k mailbox`` for one class). Each class prints one line, e.g. ``kill-fuzz Queue:
1000 kills, 0 hangs, 0 torn, 0 duplicates, 0 out of order, 0 lost beyond allowance, 0
leaked, 0 errors (seed 7)``, then what the allowance covered and the first defects of each
kind; the test fails unless every count is zero. Without ``--fuzz-seed`` the seed is
random (printed). The seed fixes the messages, the kill delays and the choice of victims;
the moment a kill lands in a victim's code depends on scheduling, so a rerun with the same
seed finds the same kinds of defects, not the same messages.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import time
from typing import Callable, Optional, Tuple

import pytest

import ipcfast
from ipcfast._native import ffi, lib
from tests.stress import kill_workers as kw
from tests.stress.kill_fuzz import Figures, Fuzz, pipe_ends
from tests.support.leaks import ipcf_segments, leaked_since

pytestmark = pytest.mark.stress

#: a pipe end must see EOFError / BrokenPipeError this soon after its last peer's kill
#: (the README: "EOF after a peer is SIGKILLed is noticed within ~100 ms")
PIPE_BOUND = 3.0

PIPE_CAPACITY = 256 * 1024
RING_CAPACITY = 256 * 1024
QUEUE_CAPACITY = 16 * 1024
QUEUE_MAXSIZE = 64
MAILBOX_BIG = 48 * 1024       # largest payload (max_message is 64 KiB)
BIG = 100 * 1024              # largest payload elsewhere
BATCH_BIG = 4000              # Mailbox batches: pickled with its header, under IPCF_MB_SMALL
FORK = multiprocessing.get_context("fork")


def pytest_generate_tests(metafunc):
    """Give each test ``kills`` (from ``--kills``) and a timeout scaled to it:
    ``base + per_kill * kills`` seconds, from the test's :func:`budget`."""
    if "kills" in metafunc.fixturenames:
        kills = max(1, metafunc.config.getoption("--kills"))
        base, per = getattr(metafunc.function, "budget", (120, 1.0))
        metafunc.parametrize("kills", [pytest.param(kills, id=f"{kills}kills",
                                                    marks=pytest.mark.timeout(base + per * kills))])


def budget(base: float, per_kill: float):
    """The test's timeout: *base* seconds plus *per_kill* per kill (a run at the default
    200 kills takes 10-40 s here; the slack is for a loaded machine)."""
    def mark(fn):
        fn.budget = (base, per_kill)
        return fn
    return mark


class Harness:
    """What every class's test shares: seed, board, logs, leak check, the figure line."""

    def __init__(self, request, tmp_path, capsys, label: str, kills: int) -> None:
        seed = request.config.getoption("--fuzz-seed")
        self.seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed
        self.rng = random.Random(self.seed)
        self.kills = kills
        self.fig = Figures(label, self.seed)
        self.logdir = str(tmp_path)
        # rows for the initial workers, one replacement per kill, and hung/ended ones
        self.board = kw.Board(os.path.join(self.logdir, "board"), slots=4 * kills + 64)
        self.slots = iter(range(self.board.slots))
        self.before = ipcf_segments()
        self.capsys = capsys
        self.t0 = time.monotonic()
        self.excused = set()         # segments whose last user was SIGKILLed (for a hang)
        self.describe: Callable[[str], str] = str     # a leaked segment in the report
        self.names: set = set()      # the run's objects: their segments and "<name>.<gen>"

    def fuzz(self, ctx, kind: str, send_obj, recv_obj, **options) -> Fuzz:
        return Fuzz(self.fig, ctx, kind, send_obj, recv_obj, board=self.board, logdir=self.logdir,
                    slots=self.slots, seed=self.seed, rng=self.rng, **options)

    def conclude(self) -> None:
        """Count the segments left behind (and remove them), print the figures, assert."""
        self.fig.seconds = time.monotonic() - self.t0
        # only the run's own objects: other processes on the machine (another test run)
        # may create and leave segments meanwhile, and those are not ours to remove
        ours = {n for n in leaked_since(self.before)
                if n in self.names or n.rsplit(".", 1)[0] in self.names}
        for name in sorted(ours):
            if name in self.excused:
                self.fig.extra.append(f"left, not counted as leaked (its last user was SIGKILLed "
                                      f"for a hang; `ipcfast gc` removes it): {name}")
            else:
                self.fig.note("leaked", self.describe(name))
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except FileNotFoundError:
                pass
        report = self.fig.report()
        with self.capsys.disabled():
            print("\n" + report, flush=True)
        if self.fig.bad():
            pytest.fail(report, pytrace=False)


def run_one(h: Harness, ctx, kind: str, obj, pending, *, producers: int, consumers: int,
            big: int, ref_ready: bool = False, explain: str = "count",
            state: Optional[Callable[[], Tuple[dict, dict]]] = None) -> None:
    """The kill-fuzz of *obj*, which every worker both sends to and receives from; closes
    it. *state* returns (counters that must be 0 once the object is drained and every
    worker is gone: derived state a repair must get right, counters to show)."""
    h.names.add(obj.name)
    f = h.fuzz(ctx, kind, obj, obj, big=big, producers=producers, consumers=consumers,
               pending=pending, ref_ready=ref_ready)
    try:
        f.start_all()
        f.fuzz(h.kills)
        f.finish()
        if state is not None:
            zero, shown = state()
            wrong = {k: v for k, v in zero.items() if v}
            if wrong:
                h.fig.note("errors", f"{kind}: drained, every worker gone, yet {wrong} (should be 0)")
            h.fig.extra.append(f"state after the drain: {dict(zero, **shown)}")
    finally:
        f.replace = False
        f.reap_all()
        obj.close()
    f.account(explain=explain)


def ring_state(r: ipcfast.Ring) -> Tuple[dict, dict]:
    return {"messages": len(r), "used": r.used}, {}


def mailbox_state(mb: ipcfast.Mailbox) -> Tuple[dict, dict]:
    """Once drained with nobody inside a call: no READY message, no body held, no slot
    being copied (``inflight`` > 0 makes every empty receive run a full repair)."""
    c = ffi.new("struct ipcf_mbox_stats *")
    lib.ipcf_mbox_stats(mb._h, c)
    return ({"count": c.count, "bytes_held": c.bytes_held, "inflight": c.inflight},
            {"repairs": c.repairs, "high_water": c.high_water})


# ---------------------------------------------------------------- the classes

@budget(120, 1.0)
def test_queue(request, tmp_path, capsys, kills):
    """Queue, 3 producers x 3 consumers (the allowance: see the module docstring)."""
    h = Harness(request, tmp_path, capsys, "Queue", kills)
    q = ipcfast.Queue(QUEUE_MAXSIZE, capacity=QUEUE_CAPACITY, loads=bytes)
    run_one(h, FORK, "queue", q, q.qsize, producers=3, consumers=3, big=BIG, explain="timed",
            state=lambda: ({"qsize": q.qsize()}, {}))
    h.conclude()


@budget(180, 1.0)
def test_queue_spawn(request, tmp_path, capsys, kills):
    """Queue with spawn children (handles pickled, in transit until they arrive), 2 x 2,
    a tenth of the kills (at least 10): a spawn child needs a few hundred ms to start."""
    h = Harness(request, tmp_path, capsys, "Queue (spawn)", max(10, kills // 10))
    q = ipcfast.Queue(QUEUE_MAXSIZE, capacity=QUEUE_CAPACITY, loads=bytes)
    run_one(h, multiprocessing.get_context("spawn"), "queue", q, q.qsize, producers=2,
            consumers=2, big=BIG, ref_ready=True, explain="timed",
            state=lambda: ({"qsize": q.qsize()}, {}))
    h.conclude()


@budget(120, 1.0)
def test_ring_one_to_one(request, tmp_path, capsys, kills):
    """Ring with lock-free sides: one producer, one consumer; the one killed is replaced
    (after it is reaped: never two on a side)."""
    h = Harness(request, tmp_path, capsys, "Ring 1:1", kills)
    r = ipcfast.Ring(RING_CAPACITY, multi_producer=False, multi_consumer=False)
    run_one(h, FORK, "ring", r, lambda: len(r), producers=1, consumers=1, big=BIG,
            explain="sequential", state=lambda: ring_state(r))
    h.conclude()


@budget(120, 1.0)
def test_ring_shared(request, tmp_path, capsys, kills):
    """Ring with shared (locked) sides, 3 producers x 3 consumers."""
    h = Harness(request, tmp_path, capsys, "Ring shared", kills)
    r = ipcfast.Ring(RING_CAPACITY)
    run_one(h, FORK, "ring", r, lambda: len(r), producers=3, consumers=3, big=BIG,
            explain="timed", state=lambda: ring_state(r))
    h.conclude()


@budget(120, 1.5)
def test_mailbox(request, tmp_path, capsys, kills):
    """Mailbox without receipts, 3 senders x 3 receivers."""
    h = Harness(request, tmp_path, capsys, "Mailbox", kills)
    mb = ipcfast.Mailbox()
    run_one(h, FORK, "mailbox", mb, lambda: len(mb), producers=3, consumers=3, big=MAILBOX_BIG,
            state=lambda: mailbox_state(mb))
    h.conclude()


@budget(120, 1.5)
def test_mailbox_fast_path(request, tmp_path, capsys, kills):
    """Mailbox through send/recv_bytes's fast path (block=False, no timeout: ipcf_mbox_send
    and ipcf_mbox_take), 3 senders x 3 receivers."""
    h = Harness(request, tmp_path, capsys, "Mailbox fast path", kills)
    mb = ipcfast.Mailbox()
    run_one(h, FORK, "mailbox-fast", mb, lambda: len(mb), producers=3, consumers=3,
            big=MAILBOX_BIG, state=lambda: mailbox_state(mb))
    h.conclude()


@budget(120, 1.5)
def test_mailbox_batch(request, tmp_path, capsys, kills):
    """Mailbox through send_many / recv_many (batches of 1-64 small messages: ipcf_mbox_send_many
    and ipcf_mbox_take_many), 3 senders x 3 receivers."""
    h = Harness(request, tmp_path, capsys, "Mailbox batches", kills)
    mb = ipcfast.Mailbox(loads=bytes)          # (we unpickle: a torn body is located)
    run_one(h, FORK, "mailbox-batch", mb, lambda: len(mb), producers=3, consumers=3,
            big=BATCH_BIG, explain="timed", state=lambda: mailbox_state(mb))
    h.conclude()


@budget(120, 1.5)
def test_mailbox_receipts(request, tmp_path, capsys, kills):
    """Mailbox with receipts (``send(..., wait="received")``), 3 senders x 3 receivers."""
    h = Harness(request, tmp_path, capsys, "Mailbox receipts", kills)
    mb = ipcfast.Mailbox()
    run_one(h, FORK, "mailbox-receipts", mb, lambda: len(mb), producers=3, consumers=3,
            big=MAILBOX_BIG, explain="receipts", state=lambda: mailbox_state(mb))
    h.conclude()


@budget(120, 1.5)
def test_pipe(request, tmp_path, capsys, kills):
    """Pipe(duplex=False): episodes of 1-6 kills of the writer or the reader; the last kill
    of each comes after the parent closed its ends and checks EOFError / BrokenPipeError."""
    h = Harness(request, tmp_path, capsys, "Pipe", kills)
    h.describe = pipe_ends
    ends = {kw.END_EOF: [], kw.END_BROKEN: []}     # ms from the last kill to the error
    left = h.kills
    while left > 0:
        n = min(left, h.rng.randint(1, 6))
        left -= n
        pipe_episode(h, n, ends)
    for what, ms in (("EOFError after the last writer's kill", ends[kw.END_EOF]),
                     ("BrokenPipeError after the last reader's kill", ends[kw.END_BROKEN])):
        if ms:
            h.fig.extra.append(f"{what}: {len(ms)} times, median {statistics.median(ms):.0f} ms, "
                               f"max {max(ms):.0f} ms")
    h.conclude()


def pipe_episode(h: Harness, kills: int, ends: dict) -> None:
    """One pipe, *kills* kills: all but the last with replacements (the parent holds both
    ends meanwhile), the last after the parent closed its ends, with no replacement: the
    survivor must then see its end (EOFError / BrokenPipeError) within PIPE_BOUND."""
    r, w = ipcfast.Pipe(duplex=False, capacity=PIPE_CAPACITY)
    ring = w._tx.name                   # the one ring of a one-way pipe
    h.names.add(ring)
    held = [r, w]
    f = h.fuzz(FORK, "pipe", w, r, big=BIG, producers=1, consumers=1,
               pending=lambda: 1 if held and r.poll(0) else 0)
    role = None
    try:
        f.start_all()
        f.fuzz(kills - 1)
        held.clear()
        r.close()
        w.close()
        f.replace = False
        f.sleep_until(f.kill_moment())
        role = h.rng.choice((kw.PRODUCER, kw.CONSUMER))
        victims = f.live(role)
        survivors = f.live(kw.CONSUMER if role == kw.PRODUCER else kw.PRODUCER)
        if len(victims) != 1 or len(survivors) != 1:
            h.fig.note("errors", f"pipe: before the last kill {len(victims)} victims and "
                                 f"{len(survivors)} survivors are live")
            return
        v, s = victims[0], survivors[0]
        f.expect_end = True
        t_kill = f.kill(v)
        if v.fate == "killed":
            h.fig.kills += 1
        deadline = time.monotonic() + PIPE_BOUND
        while s.fate == "running" and time.monotonic() < deadline:
            f.sleep_until(time.monotonic() + 0.002)
        want, what = ((kw.END_EOF, "EOFError") if role == kw.PRODUCER
                      else (kw.END_BROKEN, "BrokenPipeError"))
        if s.fate == "running":
            early = [f"w{c.slot} at {c.age * 1e3:.0f} ms" for c in f.children
                     if c.fate == "killed" and not c.ready]
            state = pipe_ends(ring)
            h.fig.note("hangs", f"pipe: {f.name(s)} got no {what} within {PIPE_BOUND:g} s of the "
                                f"last {'writer' if role == kw.PRODUCER else 'reader'}'s kill "
                                f"({f.name(v)}, {v.age * 1e3:.0f} ms after its start, "
                                f"{'after' if v.ready else 'before'} it reached its loop); killed "
                                f"before reaching their loop in this episode: {early or 'none'}; {state}")
            # a reader can be stopped (it polls): then it is the last user and closes the
            # pipe, which must then go; a writer blocked in send_bytes can only be killed,
            # and a segment whose last user was SIGKILLed stays until `ipcfast gc`
            h.board.set(s.slot, kw.F_STOP, 1)
            deadline = time.monotonic() + kw.RECV_TIMEOUT + 5
            while s.role == kw.CONSUMER and s.fate == "running" and time.monotonic() < deadline:
                f.sleep_until(time.monotonic() + 0.01)
            if s.fate == "running":
                f.kill(s, "hung")
                h.excused.add(ring)
        elif h.board.get(s.slot, kw.F_END) == want:
            ends[want].append((h.board.get(s.slot, kw.F_END_NS) - t_kill) / 1e6)
    finally:
        f.replace = False
        f.reap_all()
        for x in held:
            x.close()
    f.account(tail_may_be_lost=role == kw.CONSUMER, explain="sequential")
