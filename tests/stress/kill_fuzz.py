"""The parent side of the kill-fuzz (tests/stress/test_kill_fuzz.py): starting, killing,
watching and replacing the workers of one object, the drain, and the accounting of what
they logged (the children's side is tests/stress/kill_workers.py).

:class:`Fuzz` runs one object; :class:`Figures` collects what a class's run counted and
prints the one-line figure and the defects behind it. The rules it applies (what counts as
a hang, torn, duplicate, out of order, lost beyond the allowance, leaked, error) are
spelled out in the docstring of test_kill_fuzz.py.
"""
from __future__ import annotations

import bisect
import collections
import multiprocessing
import os
import random
import signal
import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

from ipcfast._native import ffi, lib
from tests.stress import kill_workers as kw

#: a kill comes this long (at most) after the latest start of a worker
KILL_WINDOW = 0.050
#: a call that overstays its own timeout by this much is a hang (a loaded 2-core machine)
HANG_SLACK = 5.0
#: no message received for this long while messages are waiting is a hang
STALL = 10.0
#: a worker that has not reached its loop (attached, ready) this long after its start hangs
START_BOUND = 30.0
#: the drain is over once no message came for this long and none is waiting
QUIET = 0.5
#: how many defects of each kind the report shows
SHOW = 8


# ---------------------------------------------------------------- the figures

@dataclass
class Figures:
    """What one class's run counted; ``notes`` says what each defect was."""
    label: str
    seed: int
    kills: int = 0
    hangs: int = 0
    torn: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    lost: int = 0
    leaked: int = 0
    errors: int = 0
    messages: int = 0
    seconds: float = 0.0
    held_kills: int = 0              # consumers killed inside a receive: the allowance
    missing_allowed: int = 0         # messages missing within the allowance
    reordered_allowed: int = 0       # mailbox re-deliveries that overtook, within it
    notes: Dict[str, List[str]] = field(default_factory=lambda: collections.defaultdict(list))
    extra: List[str] = field(default_factory=list)

    def note(self, kind: str, text: str, count: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        self.notes[kind].append(text)

    def bad(self) -> int:
        return (self.hangs + self.torn + self.duplicates + self.out_of_order + self.lost +
                self.leaked + self.errors)

    def line(self) -> str:
        return (f"kill-fuzz {self.label}: {self.kills} kills, {self.hangs} hangs, {self.torn} torn, "
                f"{self.duplicates} duplicates, {self.out_of_order} out of order, {self.lost} lost "
                f"beyond allowance, {self.leaked} leaked, {self.errors} errors (seed {self.seed})")

    def report(self) -> str:
        out = [self.line(),
               f"  {self.messages} messages received in {self.seconds:.1f} s; {self.held_kills} "
               f"kills of a consumer inside a receive (the allowance) account for "
               f"{self.missing_allowed} missing and {self.reordered_allowed} reordered"]
        out += ["  " + x for x in self.extra]
        for kind, texts in self.notes.items():
            out += [f"  {kind}: {t}" for t in texts[:SHOW]]
            if len(texts) > SHOW:
                out.append(f"  {kind}: ... and {len(texts) - SHOW} more")
        return "\n".join(out)


def describe_torn(slot: int, n: dict) -> str:
    """One line for a torn message a consumer noted."""
    if n.get("verdict") == kw.GARBLED:
        return f"w{slot} got an unrecognisable message: {n.get('why')} {n.get('error', '')}".strip()
    at, bad = n.get("data_offset_in_body", 0), n.get("first_bad_byte")
    where = ""
    if bad is not None:
        where = (f", wrong from byte {n.get('first_bad_byte_of_body')} of the body (byte {bad} of the "
                 f"payload){', all zero from there' if n.get('zero_from_first_bad') else ''}")
    pickle = f"; unpickling: {n['pickle_error']}" if n.get("pickle_error") else ""
    return (f"w{slot} got w{n['producer']}#{n['seq']}, {n.get('length')} of "
            f"{n.get('expected_length')} payload bytes at body offset {at}: {n['why']}{where}{pickle}")


def pipe_ends(name: str) -> str:
    """Who holds and who is in transit to each end of pipe ring *name*, read from its
    segment (for the report of a pipe end that never saw EOF / BrokenPipeError)."""
    try:
        with open(os.path.join("/dev/shm", name), "rb") as f:
            raw = f.read(lib.IPCF_PIPE_OFFSET + ffi.sizeof("struct ipcf_pipe_ctl"))
    except FileNotFoundError:
        return f"{name} is gone"
    now, out = time.monotonic_ns(), []
    for table in ("writers", "readers", "pend_writers", "pend_readers"):
        words = struct.unpack_from("<16Q", raw, lib.IPCF_PIPE_OFFSET +
                                   ffi.offsetof("struct ipcf_pipe_ctl", table))
        if table.startswith("pend"):
            desc = [f"from pid {w & 0xFFFFFFFF}{' (the parent)' if w & 0xFFFFFFFF == os.getpid() else ''}, "
                    f"{'fork transit, ' if words[i + 1] >> 63 else ''}"
                    f"expires in {((words[i + 1] & ~(1 << 63)) - now) / 1e9:.0f} s"
                    for i, w in enumerate(words) if i % 2 == 0 and w]
        else:
            desc = [f"pid {w & 0xFFFFFFFF} "
                    f"({'alive' if lib.ipcf_pid_alive(w & 0xFFFFFFFF, w >> 32) else 'dead'})"
                    for w in words if w]
        out.append(f"{table} [{'; '.join(desc)}]")
    return f"{name}: " + ", ".join(out)


# ---------------------------------------------------------------- one object's run

@dataclass
class Child:
    slot: int
    role: int
    proc: multiprocessing.process.BaseProcess
    started: float
    fate: str = "running"        # running, killed, hung (killed by us for it), exited, reaped
    held: bool = False           # died inside a send/receive (board state IN_CALL)
    age: float = 0.0             # seconds from start() to its end
    ready: bool = False          # it had reached its loop (attached, other pipe end closed)
    died_ns: int = 0             # monotonic ns by which it had ended (reaped)
    last_call_ns: int = 0        # when its last send/receive began (board F_CALL_START)


class Fuzz:
    """Producers and consumers of one object, the kills, the drain, and the accounting.

    *send_obj* / *recv_obj* are the handles the children inherit (fork) or receive pickled
    (spawn); *pending* says how many messages wait in the object (0 or None: none / it
    cannot tell)."""

    def __init__(self, fig: Figures, ctx, kind: str, send_obj, recv_obj, *, board: kw.Board,
                 logdir: str, slots: Iterator[int], seed: int, rng: random.Random, big: int,
                 producers: int, consumers: int, pending: Callable[[], Optional[int]],
                 ref_ready: bool = False) -> None:
        self.fig, self.ctx, self.kind = fig, ctx, kind
        self.send_obj, self.recv_obj = send_obj, recv_obj
        self.board, self.logdir, self.slots = board, logdir, slots
        self.seed, self.rng, self.big = seed, rng, big
        self.want = {kw.PRODUCER: producers, kw.CONSUMER: consumers}
        self.pending = pending
        self.ref_ready = ref_ready
        self.children: List[Child] = []
        self.replace = True          # start a replacement for a worker that dies or hangs
        self.expect_end = False      # a pipe end's EOF / BrokenPipeError is expected now
        self.watch_stall = True      # off while draining: finish() judges what is left
        self.last_start = time.monotonic()
        self._progress = (0, time.monotonic())
        self._sent: Dict[int, tuple] = {}   # producer slot -> (count, when it last moved)
        self.drained_by_parent: List[tuple] = []
        self.reordered: List[str] = []

    # ---- workers ----
    def start(self, role: int) -> Child:
        slot = next(self.slots)
        pipe = self.kind == "pipe"
        if role == kw.PRODUCER:
            target = kw.producer
            args = (self.kind, self.send_obj, self.board.path, slot, self.logdir, self.seed,
                    self.big, self.recv_obj if pipe else None)
        else:
            target = kw.consumer
            args = (self.kind, self.recv_obj, self.board.path, slot, self.logdir, self.seed,
                    self.big, self.board.slots, self.send_obj if pipe else None)
        p = self.ctx.Process(target=target, args=args, daemon=True)
        p.start()
        c = Child(slot, role, p, time.monotonic())
        self.children.append(c)
        self.last_start = c.started
        return c

    def start_all(self) -> None:
        for role in (kw.CONSUMER, kw.PRODUCER):
            for _ in range(self.want[role]):
                self.start(role)

    def live(self, role: Optional[int] = None) -> List[Child]:
        return [c for c in self.children if c.fate == "running" and (role is None or c.role == role)]

    def name(self, c: Child) -> str:
        return f"{'producer' if c.role == kw.PRODUCER else 'consumer'} w{c.slot} (pid {c.proc.pid})"

    def _bury(self, c: Child, fate: str) -> None:
        """Record how *c* ended; its board row is final now."""
        c.fate = fate
        c.held = self.board.get(c.slot, kw.F_STATE) == kw.IN_CALL
        c.age = time.monotonic() - c.started
        c.ready = bool(self.board.get(c.slot, kw.F_READY))
        c.died_ns = time.monotonic_ns()
        c.last_call_ns = self.board.get(c.slot, kw.F_CALL_START) or c.died_ns
        if c.role == kw.CONSUMER and c.held and fate in ("killed", "hung"):
            self.fig.held_kills += 1

    def kill(self, c: Child, fate: str = "killed") -> int:
        """SIGKILL *c* and reap it; returns the time of the kill (monotonic ns)."""
        t = time.monotonic_ns()
        try:
            os.kill(c.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        c.proc.join(30)
        if c.proc.exitcode == -signal.SIGKILL:
            self._bury(c, fate)
        else:                                   # it had ended on its own just before
            self._exited(c)
        return t

    def _exited(self, c: Child) -> None:
        """*c* ended without our kill: fine when stopped or at a pipe's end, else an error."""
        self._bury(c, "exited")
        end, code = self.board.get(c.slot, kw.F_END), c.proc.exitcode
        if end == kw.END_STOPPED and code == 0:
            return
        if end in (kw.END_EOF, kw.END_BROKEN) and code == 0:
            if not self.expect_end:
                what = "EOFError" if end == kw.END_EOF else "BrokenPipeError"
                self.fig.note("errors", f"{self.kind}: {self.name(c)} got {what} while the "
                                        "parent still held the other end")
            return
        if code is not None and code < 0:
            why = f"died of signal {-code} ({signal.Signals(-code).name})"
        else:
            why = f"exited with code {code}"
        notes = [n for n in kw.read_notes(self.logdir, c.slot) if n.get("what") == "exception"]
        if notes:
            tb = notes[-1]["traceback"].strip().splitlines()
            why += f": {notes[-1]['error']} at {' / '.join(x.strip() for x in tb[-3:-1])}"
        self.fig.note("errors", f"{self.kind}: {self.name(c)} {why}")

    # ---- watching ----
    def monitor(self) -> None:
        """Reap workers that ended, SIGKILL hung ones (replacing both while fuzzing), and
        notice a stall."""
        now = time.monotonic_ns()
        for c in self.live():
            if c.proc.exitcode is not None or not c.proc.is_alive():
                c.proc.join(5)
                self._exited(c)
                if self.replace:
                    self.start(c.role)
                continue
            if not self.board.get(c.slot, kw.F_READY) and time.monotonic() - c.started > START_BOUND:
                self.kill(c, "hung")
                self.fig.note("hangs", f"{self.kind}: {self.name(c)} had not reached its loop "
                                       f"{START_BOUND:g} s after its start (SIGKILLed)")
                if self.replace:
                    self.start(c.role)
                continue
            since = self.board.get(c.slot, kw.F_CALL_START)
            limit = self.board.get(c.slot, kw.F_CALL_LIMIT)
            if since and now - since > limit + HANG_SLACK * 1e9 and \
                    self.board.get(c.slot, kw.F_CALL_START) == since:
                self.kill(c, "hung")
                what = "send" if c.role == kw.PRODUCER else "receive"
                self.fig.note("hangs", f"{self.kind}: {self.name(c)}: a {what} with a {limit / 1e9:g} s "
                                       f"timeout still blocked after {(now - since) / 1e9:.1f} s (SIGKILLed)")
                if self.replace:
                    self.start(c.role)
            if c.role == kw.PRODUCER and self.watch_stall:
                count, t = self.board.get(c.slot, kw.F_COUNT), time.monotonic()
                seen = self._sent.setdefault(c.slot, (count, t))
                if count != seen[0] or not self.board.get(c.slot, kw.F_READY):
                    self._sent[c.slot] = (count, t)
                elif t - seen[1] > STALL:
                    self.fig.note("hangs", f"{self.kind}: {self.name(c)} sent nothing for {STALL:g} s "
                                           f"(stuck at message {count}) while the others ran")
                    self._sent[c.slot] = (count, t)
        got = self.received()
        if got != self._progress[0]:
            self._progress = (got, time.monotonic())
        elif (self.watch_stall and time.monotonic() - self._progress[1] > STALL
              and self.live(kw.CONSUMER)):
            waiting = self.pending()
            if waiting:
                self.fig.note("hangs", f"{self.kind}: no message received for {STALL:g} s while "
                                       f"{waiting} waited and {len(self.live(kw.CONSUMER))} consumers ran")
            self._progress = (got, time.monotonic())

    def received(self) -> int:
        return sum(self.board.get(c.slot, kw.F_COUNT) for c in self.children if c.role == kw.CONSUMER)

    def sleep_until(self, t: float) -> None:
        while True:
            self.monitor()
            left = t - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.005))

    # ---- the kills ----
    def kill_moment(self) -> float:
        """0-50 ms after the latest start (with ``ref_ready``, three times in four after the
        latest worker reported ready instead: a spawn child needs far more than 50 ms to
        boot)."""
        ref = self.last_start
        if self.ref_ready and self.rng.random() < 0.75:
            newest = self.children[-1]
            deadline = time.monotonic() + 60
            while (not self.board.get(newest.slot, kw.F_READY) and newest.fate == "running"
                   and time.monotonic() < deadline):
                self.sleep_until(time.monotonic() + 0.005)
            ready = self.board.get(newest.slot, kw.F_READY)
            if ready:
                ref = ready / 1e9
        return ref + self.rng.uniform(0.0, KILL_WINDOW)

    def pick(self) -> Optional[Child]:
        """A producer or a consumer (even odds), at random among the live ones."""
        prods, cons = self.live(kw.PRODUCER), self.live(kw.CONSUMER)
        if prods and (not cons or self.rng.random() < 0.5):
            return self.rng.choice(prods)
        return self.rng.choice(cons) if cons else None

    def fuzz(self, kills: int) -> None:
        """*kills* kills, each followed by the start of a replacement."""
        for _ in range(kills):
            self.sleep_until(self.kill_moment())
            victim = self.pick()
            if victim is None:
                break
            self.kill(victim)
            if victim.fate == "killed":
                self.fig.kills += 1
            if self.replace:
                self.start(victim.role)

    # ---- the end ----
    def wait_gone(self, role: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while self.live(role) and time.monotonic() < deadline:
            self.sleep_until(time.monotonic() + 0.01)
        for c in self.live(role):
            self.kill(c, "hung")
            self.fig.note("hangs", f"{self.kind}: {self.name(c)} did not {what} within {timeout:g} s "
                                   "(SIGKILLed)")

    def finish(self) -> None:
        """Stop the producers, let the consumers drain, stop them; take what they left."""
        self.replace = False
        self.board.raise_flag(kw.G_STOP_PRODUCERS)
        self.wait_gone(kw.PRODUCER, kw.RECEIPT_TIMEOUT + HANG_SLACK + 5, "stop")
        self.watch_stall = False
        last, since = self.received(), time.monotonic()
        while self.live(kw.CONSUMER):
            self.sleep_until(time.monotonic() + 0.02)
            got = self.received()
            if got != last:
                last, since = got, time.monotonic()
                continue
            quiet = time.monotonic() - since
            if (quiet > QUIET and not self.pending()) or quiet > STALL:
                break
        self.board.raise_flag(kw.G_STOP_CONSUMERS)
        self.wait_gone(kw.CONSUMER, kw.RECV_TIMEOUT + HANG_SLACK + 5, "stop")
        left = self.pending()
        if left:
            self.fig.note("hangs", f"{self.kind}: {left} messages still waiting after the consumers "
                                   f"drained without progress for {STALL:g} s")
            self.drain_in_parent()

    def drain_in_parent(self) -> None:
        """Take what the consumers left (so that stuck is not also counted as lost)."""
        recv, _ = kw.receiver(self.kind, self.recv_obj)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data, _, _ = recv()
            except Exception:
                break
            verdict, p, s, details = kw.check_message(data, self.seed, self.big, self.board.slots)
            self.drained_by_parent.append((p, s, verdict, time.monotonic_ns()))
            if verdict != kw.OK:
                self.fig.note("torn", f"{self.kind}: left in the object: {details}")

    def reap_all(self) -> None:
        """Kill whatever still runs (only after a failure elsewhere)."""
        for c in self.live():
            self.kill(c, "reaped")

    # ---- the accounting ----
    def account(self, tail_may_be_lost: bool = False, explain: str = "count") -> None:
        """Check every message logged. *tail_may_be_lost*: what was in the pipe when its
        last reader died is gone with it (Pipe episodes that end with the reader's kill).
        *explain*: how missing messages are matched to held kills: "count" (no more missing
        than held kills), "sequential" (one FIFO, one producer and one consumer at a time:
        Ring 1:1, Pipe; see :meth:`_unexplained`), "timed" (FIFO per producer, several
        consumers: Queue, Ring shared; see :meth:`_untimely`), "receipts" (the receipt
        names the receiver: :meth:`_unreceipted`): each missing message then needs a kill
        of its own that could have held it."""
        fig, kind = self.fig, self.kind
        producers = {c.slot: c for c in self.children if c.role == kw.PRODUCER}
        consumers = [c for c in self.children if c.role == kw.CONSUMER]
        pid_of = {self.board.get(c.slot, kw.F_PID): c for c in consumers}
        # what each producer sent: confirmed seqs, the in-flight one(s), what it was told;
        # sent[p]: the seqs of p that may have been sent (below it), the in-flight message
        # (or batch: F_SEQ, F_BATCH of them) of a producer killed inside its send included
        done, sent, inflight, outcome = {}, {}, {}, {}
        for slot, c in producers.items():
            done[slot] = sent[slot] = self.board.get(slot, kw.F_COUNT)
            if c.held:
                first = self.board.get(slot, kw.F_SEQ)
                inflight[slot] = (first, max(1, self.board.get(slot, kw.F_BATCH)))
                sent[slot] = max(done[slot] + 1, first + inflight[slot][1])
            for seq, out, _, _, who, _, _ in kw.read_log(self.logdir, slot):
                outcome[(slot, seq)] = (out, who)
        # what the consumers got, in the order each got it
        got = collections.defaultdict(list)        # (producer, seq) -> [receiver pid]
        owner: Dict[tuple, int] = {}               # (producer, seq) -> slot of its first receiver
        when: Dict[tuple, tuple] = {}              # (producer, seq) -> (receive began, logged)
        for c in consumers:
            last: Dict[int, int] = {}
            for p, s, verdict, _, pid, began, logged in kw.read_log(self.logdir, c.slot):
                fig.messages += 1
                if verdict != kw.OK:
                    continue                      # counted from the notes below
                when.setdefault((p, s), (began, logged))
                if s < last.get(p, -1):
                    self.reordered.append(f"{kind}: w{c.slot} got w{p}#{s} after w{p}#{last[p]}")
                last[p] = max(s, last.get(p, -1))
                got[(p, s)].append(pid)
                owner.setdefault((p, s), c.slot)
            for n in kw.read_notes(self.logdir, c.slot):
                if n.get("what") == "torn":
                    fig.note("torn", f"{kind}: {describe_torn(c.slot, n)}")
                    if n.get("verdict") == kw.TORN:      # header intact: it did arrive
                        got[(n["producer"], n["seq"])].append(self.board.get(c.slot, kw.F_PID))
                        owner.setdefault((n["producer"], n["seq"]), c.slot)
        for p, s, _, t in self.drained_by_parent:
            fig.messages += 1
            if p >= 0:
                got[(p, s)].append(0)
                when.setdefault((p, s), (t, t))
                owner.setdefault((p, s), 1 << 30)       # after every consumer
        for (p, s), pids in got.items():
            if len(pids) > 1:
                fig.note("duplicates", f"{kind}: w{p}#{s} received {len(pids)} times", len(pids) - 1)
            if p not in producers or s >= sent[p]:
                fig.note("errors", f"{kind}: received w{p}#{s}, which was never sent "
                                   f"(its producer sent {done.get(p)})")
            out = outcome.get((p, s))
            if out and out[0] in (kw.RECEIVER_DIED, kw.WITHDRAWN):
                why = "ReceiverDiedError" if out[0] == kw.RECEIVER_DIED else "queue.Full (withdrawn)"
                fig.note("errors", f"{kind}: w{p}#{s} was received although its sender got {why}")
            elif out and out[0] == kw.RECEIPT and out[1] not in pids:
                fig.note("errors", f"{kind}: the receipt of w{p}#{s} names pid {out[1]}, but "
                                   f"{pids or 'nobody'} logged it")
        # what is missing: of a producer killed inside a send, what it had sent before,
        # and of its interrupted batch every message before the last one that arrived (a
        # batch is delivered whole, or none of it, or -- its sender killed while publishing
        # it -- a prefix of it; one message: it or nothing)
        missing = []
        cut = collections.Counter()                # interrupted batches: whole, none, a prefix
        for slot in producers:
            upto = done[slot]
            if slot in inflight:
                first, n = inflight[slot]
                upto = max([upto] + [s + 1 for s in range(first, first + n) if (slot, s) in got])
                if n > 1 and done[slot] == first:
                    cut["whole" if upto == first + n else "none" if upto == first else "a prefix"] += 1
            for s in range(upto):
                out = outcome.get((slot, s))
                if (slot, s) in got or (out and out[0] in (kw.RECEIVER_DIED, kw.WITHDRAWN)):
                    continue                      # arrived, or its sender was told it did not
                missing.append((slot, s, out))
        if cut:
            fig.extra.append("batches whose producer was killed inside the send arrived: " +
                             ", ".join(f"{what} {cut[what]}" for what in ("whole", "none", "a prefix")))
        if tail_may_be_lost:
            last_got = max((k for k in got if k[0] in producers), default=(-1, -1))
            missing = [m for m in missing if (m[0], m[1]) < last_got]
        held = [c for c in consumers if c.held and c.fate in ("killed", "hung")]
        # what each held kill may have taken: one message, or a batch kind's whole batch
        # (up to the max_messages of its receive, F_BATCH: taken, then lost with it)
        caps = [max(1, self.board.get(c.slot, kw.F_BATCH)) for c in held]
        budget = sum(caps)
        if explain == "sequential":
            lost = self._unexplained(missing, consumers, owner)
        elif explain == "timed":
            lost = self._untimely(missing, held, when, caps)
        elif explain == "receipts":
            lost = self._unreceipted(missing, held, pid_of)
        else:
            lost = missing if len(missing) > budget else []
        fig.missing_allowed += (min(budget, len(missing)) if explain == "count"
                                else len(missing) - len(lost))
        if lost:
            def show(p, s, o):
                if not (o and o[0] == kw.RECEIPT):
                    return f"w{p}#{s}"
                r = pid_of.get(o[1])
                state = "unknown" if r is None else ("killed inside a receive" if r.held else r.fate)
                return f"w{p}#{s} (its receipt names pid {o[1]}: {state})"
            if explain != "count":
                text = (f"{len(lost)} sent messages never received that no kill of their consumer "
                        f"inside a receive explains ({len(missing)} missing, {len(held)} held kills, "
                        f"which may have taken {budget})")
                count = len(lost)
            else:
                text = f"{len(missing)} sent messages never received, allowance {budget}"
                count = len(missing) - budget
            fig.note("lost", f"{kind}: {text}: {', '.join(show(*m) for m in lost[:SHOW])}", count)
        if kind.startswith("mailbox") and kind not in kw.BATCH_KINDS and self.reordered:
            # a message re-delivered after its receiver died may overtake later ones (not
            # in a batch kind: its bodies, up to 4 KiB, are copied under the lock, and the
            # repair that relinks a dead receiver's message runs before any other take)
            allowed = min(max(0, budget - len(missing)), len(self.reordered))
            fig.reordered_allowed += allowed
            self.reordered = self.reordered[allowed:]
        for text in self.reordered:
            fig.note("out_of_order", text)

    def _unreceipted(self, missing: list, held: List[Child], pid_of: Dict[int, Child]) -> list:
        """With receipts every sent message has a known fate: a missing one must carry a
        Receipt that names a consumer killed inside a receive, one message per kill."""
        free = {id(c) for c in held}
        lost = []
        for m in missing:
            out = m[2]
            c = pid_of.get(out[1]) if out and out[0] == kw.RECEIPT else None
            if c is not None and id(c) in free:
                free.discard(id(c))
            else:
                lost.append(m)
        return lost

    @staticmethod
    def _untimely(missing: list, held: List[Child], when: Dict[tuple, tuple],
                  caps: List[int]) -> list:
        """The missing messages that no held kill can have taken, by time: messages of one
        producer are taken in order, so a consumer that died holding m=(p, s) took it after
        the receive of the previous message of p that arrived began, and before the next
        one that arrived was logged; it took it inside its last receive, which began at
        ``last_call_ns``, and before it was reaped. Kill k explains ``caps[k]`` messages at
        most (one; a batch kind's max_messages): a bipartite matching."""
        by_producer = collections.defaultdict(list)
        for (p, s) in when:
            by_producer[p].append(s)
        for seqs in by_producer.values():
            seqs.sort()
        fits = []
        for p, s, _ in missing:
            seqs = by_producer.get(p, [])
            j = bisect.bisect_left(seqs, s)
            lo = when[(p, seqs[j - 1])][0] if j > 0 else -1
            hi = when[(p, seqs[j])][1] if j < len(seqs) else 1 << 62
            fits.append([k for k, c in enumerate(held) if c.died_ns > lo and c.last_call_ns < hi])
        match: Dict[int, List[int]] = collections.defaultdict(list)   # kill -> missing messages

        def place(i: int, seen: set) -> bool:
            for k in fits[i]:
                if k not in seen:
                    seen.add(k)
                    if len(match[k]) < caps[k]:
                        match[k].append(i)
                        return True
                    for x, j in enumerate(match[k]):
                        if place(j, seen):
                            match[k][x] = i
                            return True
            return False
        placed = {i for i in range(len(missing)) if place(i, set())}
        return [m for i, m in enumerate(missing) if i not in placed]

    def _unexplained(self, missing: list, consumers: List[Child], owner: Dict[tuple, int]) -> list:
        """The missing messages of a sequential FIFO that no held kill explains. Producers
        and consumers follow one another, so the messages arrive in send order, (producer
        slot, seq), and a consumer killed inside a receive can only have taken the message
        right after the last one received before its death, one message per kill: a
        missing message m is explained if a held-killed consumer ran between the
        consumer that received m's predecessor and the one that received its successor,
        and that kill explains no other message."""
        order = sorted(c.slot for c in consumers)
        index = {slot: i for i, slot in enumerate(order)}
        index[1 << 30] = len(order)                     # the parent's drain
        held = {index[c.slot] for c in consumers if c.held and c.fate in ("killed", "hung")}
        keys = sorted(owner)
        lost = []
        for m in sorted(missing):
            j = bisect.bisect_left(keys, (m[0], m[1]))
            lo = index[owner[keys[j - 1]]] if j > 0 else 0
            hi = index[owner[keys[j]]] - 1 if j < len(keys) else len(order) - 1
            by = next((i for i in range(lo, hi + 1) if i in held), None)
            if by is None:
                lost.append(m)
            else:
                held.discard(by)
        return lost
