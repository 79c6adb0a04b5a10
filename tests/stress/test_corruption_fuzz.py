"""The corruption fuzz (issue 12, item 4): a buggy or hostile process with write access to a
segment must never make ipcfast crash or hang; a detected corruption should be a clear
exception (IncompatibleSegmentError).

For each kind (Ring; Queue, its control segment and its rings ``<name>.<gen>``; Mailbox, its
control block and slots; a Pipe ring) a template holding messages is made once (see
corrupt_segments). Each trial writes a copy under a fresh name, then a forked child
overwrites random bytes or one named field with an interesting value (corrupt_mutations),
attaches by name and runs the reader and writer paths with 0.2 s timeouts, ``ipcfast stat``
and close (corrupt_workers). The child reports each operation as it starts, so the parent
knows which one did not come back. Outcomes: OK (maybe with results other than the pristine
copy's), CLEAN_ERROR (a Python exception: its type), HANG (the child outlived
HARD_TIMEOUT), CRASH (killed by a signal).

    python -m pytest -m stress tests/stress/test_corruption_fuzz.py --corruptions 300 \
        [--fuzz-seed SEED] [-k Ring]

prints per kind ``corruption-fuzz Ring: 300 trials, N ok, N clean errors (by type), N hangs,
N crashes`` and the distinct crash/hang signatures, each with a reproducer (run it from the
repository root). IPCFAST_FUZZ_JOBS sets how many trials run at once (default 4: most of a
trial is waiting); IPCFAST_CORRUPTION_REPORT=path appends every trial as JSON lines.
"""
from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import pytest

from tests.stress import corrupt_mutations as M
from tests.stress import corrupt_segments as S
from tests.stress import corrupt_workers as W
from tests.support import shm

#: a trial that takes longer than this is a hang (a healthy one takes about 1 s)
HARD_TIMEOUT = 10.0
JOBS = int(os.environ.get("IPCFAST_FUZZ_JOBS", "4"))
REPORT = os.environ.get("IPCFAST_CORRUPTION_REPORT")

OK, CLEAN_ERROR, HANG, CRASH, HARNESS = "ok", "clean error", "hang", "crash", "harness error"


@dataclass
class Result:
    """What one trial did."""
    index: int
    mutation: M.Mutation
    outcome: str = OK
    op: Optional[str] = None          # the operation that crashed, hung or raised
    detail: str = ""                  # signal, "Type: message", harness traceback
    ops: List[Tuple[str, str, object]] = field(default_factory=list)
    different: bool = False           # OK, but not the pristine copy's results
    seconds: float = 0.0


# ---- running trials in forked children ----

class _Child:
    def __init__(self, t: S.Template, index: int, mutation: M.Mutation) -> None:
        self.result = Result(index, mutation)
        self.name = shm.new_name("cfz")
        self.template = t
        t.write(self.name)
        r, w = os.pipe()
        self.start = time.monotonic()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(r)
            W.child(t, self.name, mutation.specs, w)      # never returns
        os.close(w)
        os.set_blocking(r, False)
        self.fd, self.buf, self.killed = r, b"", False

    def drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.buf += chunk

    def poll(self) -> bool:
        """Reap the child if it ended (killing it past HARD_TIMEOUT); True once done."""
        self.drain()
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            if time.monotonic() - self.start > HARD_TIMEOUT:
                os.kill(self.pid, signal.SIGKILL)
                self.killed = True
                _, status = os.waitpid(self.pid, 0)
            else:
                return False
        self.drain()
        os.close(self.fd)
        self.template.remove(self.name)
        self._classify(status)
        return True

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)
        self.template.remove(self.name)

    def _classify(self, status: int) -> None:
        res = self.result
        res.seconds = round(time.monotonic() - self.start, 2)
        started, done, harness = None, False, None
        for line in self.buf.decode(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if "start" in ev:
                started = ev["start"]
            elif "op" in ev:
                res.ops.append((ev["op"], ev["res"], ev["detail"]))
                started = None
            elif "done" in ev:
                done = True
            elif "harness" in ev:
                harness = ev["harness"]
        if self.killed:
            res.outcome, res.op, res.detail = HANG, started, f"still running after {HARD_TIMEOUT:g} s"
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            res.outcome, res.op, res.detail = CRASH, started, signal.Signals(sig).name
        elif harness or not done or os.WEXITSTATUS(status) != 0:
            res.outcome, res.op = HARNESS, started
            res.detail = harness or f"exit status {os.WEXITSTATUS(status)}, no end report"
        else:
            errors = [(op, d) for op, r, d in res.ops if r == "error"]
            if errors:
                res.outcome, (res.op, res.detail) = CLEAN_ERROR, errors[0]


def run_trials(t: S.Template, mutations: List[M.Mutation]) -> List[Result]:
    """Run every trial, JOBS at a time; every child is reaped and every file removed, even
    when this is interrupted."""
    pending = list(enumerate(mutations))[::-1]
    running: List[_Child] = []
    done: List[Result] = []
    try:
        while pending or running:
            while pending and len(running) < JOBS:
                running.append(_Child(t, *pending.pop()))
            for c in [c for c in running if c.poll()]:
                running.remove(c)
                done.append(c.result)
            time.sleep(0.005)
    finally:
        for c in running:
            c.kill()
    return sorted(done, key=lambda r: r.index)


# ---- the report ----

def reproducer(kind: str, m: M.Mutation) -> str:
    return f"python -m tests.stress.corrupt_workers {kind} " + " ".join(shlex.quote(s) for s in m.specs)


def _value_class(m: M.Mutation) -> str:
    if m.mode == "bytes":
        return "random bytes"
    return re.sub(r"orig\^\(1<<\d+\)", "a flipped bit", m.what)


def _message_class(detail: str) -> str:
    detail = re.sub(r"ipcf-[A-Za-z0-9_]+-\d+-[0-9a-f]+(\.\d+)?", "NAME", detail)
    return re.sub(r"\d+", "N", detail)[:110]


def first_difference(ops: list, base: list) -> Optional[Tuple[str, str]]:
    """(operation, change) where an OK trial first departs from the pristine run, or None:
    "ok -> Full", "different data", "operation sequence"."""
    for got, want in zip(ops, base):
        if got[0] != want[0]:
            return want[0], "skipped (operation sequence differs)"
        if got[1] != want[1] or (got[1] == "normal" and got[2] != want[2]):
            def cls(o):
                return o[2] if o[1] == "normal" else o[1]
            return got[0], f"{cls(want)} -> {cls(got)}"
        if got[2] != want[2]:
            return got[0], "different value"
    if len(ops) != len(base):
        return (base[len(ops)][0] if len(ops) < len(base) else ops[len(base)][0]), "operation sequence"
    return None


def summary(kind: str, results: List[Result], seed: int, covered: str,
            base: Optional[Result] = None) -> List[str]:
    by = Counter(r.outcome for r in results)
    errors = Counter(r.detail.split(":")[0] for r in results if r.outcome == CLEAN_ERROR)
    diff = sum(r.different for r in results if r.outcome == OK)
    err_text = ", ".join(f"{t} {n}" for t, n in errors.most_common())
    lines = [f"corruption-fuzz {kind}: {len(results)} trials, {by[OK]} ok ({diff} with other results "
             f"than the pristine copy), {by[CLEAN_ERROR]} clean errors ({err_text or '-'}), "
             f"{by[HANG]} hangs, {by[CRASH]} crashes"
             + (f", {by[HARNESS]} HARNESS ERRORS" if by[HARNESS] else "")
             + f"  [seed {seed}; named fields covered {covered}]"]
    groups: Dict[tuple, List[Result]] = defaultdict(list)
    for r in results:
        if r.outcome in (CRASH, HANG, HARNESS):
            groups[(r.outcome, r.detail if r.outcome == CRASH else "", r.op or "?",
                    r.mutation.where, _value_class(r.mutation))].append(r)
    if groups:
        lines.append(f"  {len(groups)} distinct crash/hang signatures (outcome, operation, "
                     "corrupted field or region, value; count; reproducer):")
        for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]), kv[0])):
            outcome, sig, op, where, what = key
            label = f"{outcome.upper()}{' ' + sig if sig else ''}"
            lines.append(f"    {label:14} in {op:28} {where} = {what}  x{len(rs)}")
            lines.append(f"        {reproducer(kind, rs[0].mutation)}")
            if outcome == HARNESS:
                lines.append("        " + rs[0].detail.strip().splitlines()[-1])
    others: Dict[tuple, List[Result]] = defaultdict(list)
    for r in results:
        if r.outcome == CLEAN_ERROR and not r.detail.startswith("IncompatibleSegmentError"):
            others[(r.op, _message_class(r.detail))].append(r)
    if others:
        lines.append(f"  {len(others)} distinct exceptions other than IncompatibleSegmentError "
                     "(operation: exception; count; one corruption):")
        for (op, msg), rs in sorted(others.items(), key=lambda kv: -len(kv[1])):
            m = rs[0].mutation
            lines.append(f"    {op}: {msg}  x{len(rs)}  ({m.where} = {m.what})")
            lines.append(f"        {reproducer(kind, m)}")
    if base is not None:
        diffs: Dict[tuple, List[Result]] = defaultdict(list)
        for r in results:
            d = first_difference(r.ops, base.ops) if r.outcome == OK else None
            if d:
                diffs[d].append(r)
        if diffs:
            lines.append(f"  ok trials whose results differ from the pristine copy's, by first "
                         f"difference ({len(diffs)} kinds; the 12 most frequent, with one corruption):")
            for (op, change), rs in sorted(diffs.items(), key=lambda kv: -len(kv[1]))[:12]:
                m = rs[0].mutation
                lines.append(f"    {op}: {change}  x{len(rs)}  ({m.where} = {m.what})")
    return lines


# ---- the tests ----

def _field_key(where: str) -> Tuple[str, str, str]:
    """("seg" or "ring", block type, field path) of a field mutation's ``where``."""
    label, rest = where.split(":", 1)
    block, path = rest.split(".", 1)
    return ("ring" if label.startswith("ring") else "seg", block, path)


_SESSION_SEED: List[int] = []


def _seed(config) -> int:
    """--fuzz-seed, or one random seed for the whole session (printed with the figures)."""
    seed = config.getoption("--fuzz-seed")
    if seed is not None:
        return seed
    if not _SESSION_SEED:
        _SESSION_SEED.append(random.SystemRandom().randrange(1 << 32))
    return _SESSION_SEED[0]


def _pristine(t: S.Template) -> Result:
    """The trial with no corruption: must be OK; its results are the reference."""
    base = run_trials(t, [M.Mutation([], "nothing", "pristine", "field")])[0]
    assert base.outcome == OK, f"{t.kind}: the uncorrupted copy gave {base}"
    return base


@pytest.fixture
def scaled_timeout(request):
    """Replace this test's pytest-timeout by one scaled to --corruptions."""
    n = request.config.getoption("--corruptions")
    budget = 120 + n * (HARD_TIMEOUT / JOBS + 1.0)
    request.node.add_marker(pytest.mark.timeout(budget, func_only=True), append=False)
    return n


@pytest.mark.parametrize("kind", S.KINDS)
def test_harness_self_check(kind):
    """(Fast, not stress.) The harness fits this build's layout: every named field of the
    kind resolves inside its block, and an uncorrupted copy exercises cleanly."""
    t = S.build(kind)
    for cls, block, struct, f in M.named_fields(t):
        seg = next(s for lab, s in t.files.items() if lab.startswith("ring") == (cls == "ring"))
        inst = block if block not in ("rec", "slot") else f"{block}0"
        path = f.path.replace("[]", "[1]")
        label, off, data = M.resolve(t, f"{seg.label}:{inst}.{path}=0x0" if f.form != "bytes"
                                     else f"{seg.label}:{inst}.{path}=fill:00")
        _, base = seg.block(inst)
        assert label == seg.label and base <= off and off + len(data) <= len(seg.data), f.path
        assert seg.locate(off).split(".", 1)[1].split("+")[0].startswith(path.split("[")[0])
    base = _pristine(t)
    assert [r for _, r, _ in base.ops].count("error") == 0


@pytest.mark.stress
@pytest.mark.timeout(600, func_only=True)          # replaced by scaled_timeout
@pytest.mark.parametrize("kind", S.KINDS)
def test_corruption_fuzz(kind, request, capsys, scaled_timeout):
    """--corruptions trials of *kind*: fails on any crash, hang or harness error, with the
    figures and the distinct signatures (which are printed in any case)."""
    n = scaled_timeout
    seed = _seed(request.config)
    t = S.build(kind)
    base = _pristine(t)
    mutations = M.plan(t, n, random.Random(f"{seed}:{kind}"))
    results = run_trials(t, mutations)
    for r in results:
        r.different = r.outcome == OK and first_difference(r.ops, base.ops) is not None
    fields = {(cls, b, fl.path) for cls, b, _, fl in M.named_fields(t)}
    hit = {_field_key(r.mutation.where) for r in results if r.mutation.mode == "field"}
    lines = summary(kind, results, seed, f"{len(fields & hit)}/{len(fields)}", base)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    if REPORT:
        with open(REPORT, "a") as fh:
            for r in results:
                fh.write(json.dumps(dict(asdict(r), kind=kind, seed=seed,
                                         reproducer=reproducer(kind, r.mutation))) + "\n")
    if any(r.outcome in (CRASH, HANG, HARNESS) for r in results):
        pytest.fail("\n".join(lines), pytrace=False)
