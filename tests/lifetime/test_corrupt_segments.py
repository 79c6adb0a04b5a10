"""Corrupted segments give a clear error or keep working -- never a crash or a hang.
One fast case per signature the corruption fuzz found (tests/stress/test_corruption_fuzz.py
covers them at random); each runs the fuzz's reproducer in a forked child."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import REPO_ROOT

pytestmark = pytest.mark.timeout(60)

CASES = [
    ("Ring", "seg:ctl.head=0x1"),              # misaligned head: was SIGSEGV
    ("Ring", "seg:ctl.tail=0x138c"),           # tail not on a record: was SIGSEGV
    ("Ring", "seg:rec3.length=0xff9"),         # length past the published bytes: was a hang
    ("Pipe", "seg:rec3.length=0x0"),
    ("Pipe", "seg:ctl.tail=0xc78"),            # was a hang ignoring the timeout
    ("Queue", "ring0:rec4.length=0x80000000"),  # was SIGSEGV in get
    ("Queue", "seg:ctl.write_gen=0xbcd36b51877a3110"),   # was an endless walk of generations
    ("Queue", "seg:hdr.param[1]=0x0"),         # ring size 0: growth doubled 0 forever
]


@pytest.mark.parametrize("kind, spec", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_a_corrupted_segment_gives_an_error_or_works_never_a_crash_or_hang(kind, spec):
    res = subprocess.run([sys.executable, "-m", "tests.stress.corrupt_workers", kind,
                          "--timeout", "10", spec], capture_output=True, text=True,
                         timeout=50, cwd=REPO_ROOT)
    out = res.stdout + res.stderr
    assert "CRASH" not in out and "HANG" not in out, out
    assert "finished" in out, out
