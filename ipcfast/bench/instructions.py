"""Instruction counts per message, the repeatable way (``bench --instructions``).

Wall-clock timings on a shared machine drift by 25% or more; instruction counts under
``valgrind --tool=callgrind`` do not. Each case is a short Python loop run twice in a fresh
interpreter under callgrind, once with N1 and once with N2 iterations, so the start-up and
set-up cancel out: instructions per operation = (Ir(N2) - Ir(N1)) / (N2 - N1).

The cases, all in one process, on the small-object workload's item:

* ``pickle``: ``pickle.dumps`` and ``pickle.loads`` alone: what any queue must pay
* ``Queue.put`` / ``Queue.get``: a put of N items, then N gets (the get's count is the
  loop's total minus the put-only loop)
* ``Queue.put - dumps`` / ``Queue.get - loads``: what ipcfast adds beyond pickle's own
  work: the wrapper, cffi and C (the number the hot-path work drives down)
* the same for ``multiprocessing.Queue`` is left out on purpose: its put hands the item to
  a feeder thread, so one process's instruction count does not say what a message costs.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from typing import Dict, List, Optional

N1, N2 = 2000, 12000

_SETUP = """
import pickle, sys
import ipcfast
n = int(sys.argv[1])
item = (0, "payload", 3.14)
q = ipcfast.Queue()
"""

CASES: Dict[str, str] = {
    "dumps": "for i in range(n): pickle.dumps((i, 'payload', 3.14), 5)",
    "dumps+loads": "for i in range(n): pickle.loads(pickle.dumps((i, 'payload', 3.14), 5))",
    "put": "for i in range(n): q.put((i, 'payload', 3.14))",
    "put+get": "for i in range(n): q.put((i, 'payload', 3.14))\nfor i in range(n): q.get()",
}


def missing() -> Optional[str]:
    """Why the counts cannot be taken here, or None."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    return None


def _ir(case: str, n: int) -> int:
    code = _SETUP + CASES[case] + "\nq.close()\n"
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", code, str(n)],
        capture_output=True, text=True, timeout=600)
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if out.returncode or not m:
        raise RuntimeError(f"callgrind failed on {case!r}: {out.stderr[-400:]}")
    return int(m.group(1))


def per_op(case: str) -> float:
    """Instructions per loop iteration of *case* (start-up and set-up cancelled out)."""
    return (_ir(case, N2) - _ir(case, N1)) / (N2 - N1)


def counts() -> Dict[str, float]:
    """Instructions per message: pickle's own work, Queue.put, Queue.get and what ipcfast
    adds beyond pickle."""
    c = {k: per_op(k) for k in CASES}
    # the loops build the same tuple: "put - dumps" is ipcfast's own work, loop included once
    dumps, loads = c["dumps"], c["dumps+loads"] - c["dumps"]
    put, get = c["put"], c["put+get"] - c["put"]
    return {"pickle.dumps": dumps, "pickle.loads": loads, "Queue.put": put, "Queue.get": get,
            "Queue.put - dumps": put - dumps, "Queue.get - loads": get - loads}


def format_counts(c: Dict[str, float]) -> List[str]:
    lines = ["== Instructions per message (valgrind --tool=callgrind; one process, the small "
             f"item; (Ir({N2}) - Ir({N1})) / {N2 - N1}) =="]
    for k, v in c.items():
        lines.append(f"  {k:<20} {v:>10,.0f}")
    return lines


def main() -> int:
    why = missing()
    if why:
        print(f"skipped: {why}")
        return 0
    for ln in format_counts(counts()):
        print(ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
