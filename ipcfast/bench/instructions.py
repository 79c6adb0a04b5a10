"""Instruction counts per message, the repeatable way (``bench --instructions``, and
``benchmarks/mailbox_instructions.py`` for the Mailbox's breakdown by C entry point).

Wall-clock timings on a shared machine drift by 25% or more; instruction counts under
``valgrind --tool=callgrind`` do not. Each mode is a loop run in a fresh interpreter under
callgrind twice, with n and 2n iterations (side by side), so start-up, imports and set-up
cancel out: instructions per iteration = (Ir(2n) - Ir(n)) / n. The loops run inside a
function, as a caller's would (at module level every name is a dict lookup, and counts),
after a warm-up; the bare loop is subtracted.

All in one process (no peer, nothing waits), on the small tuple ``(i, 3.14, "abcdefgh",
b"xyz")``:

* ``pickle`` / ``dumps``: ipcfast's own pickling (``_pickle.dumps`` + ``loads``, dumps
  alone): what any queue must pay
* ``put`` / ``put+get``: ``Queue.put`` n times, then n ``get``; ``get`` = put+get - put
* ``send`` / ``pair``: ``Mailbox.send(obj, priority=1)``, then with a ``recv`` each
* ``send_bytes`` / ``pair_bytes``: the same with the tuple pickled once: no pickle
* ``batch``: ``Mailbox.send_many`` of 64, then ``recv_many(64)`` until all are back

``multiprocessing.Queue`` is left out on purpose: its put hands the item to a feeder
thread, so one process's instruction count does not say what a message costs.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

N = 4096                      # iterations of the smaller run (a multiple of 64)

CHILD = r"""
import sys
from ipcfast import Mailbox, Queue, _pickle


def main(mode, n):
    obj = (1, 3.14, "abcdefgh", b"xyz")
    data = _pickle.dumps(obj)
    q = Queue()
    mb = Mailbox(capacity=None, max_message=1024)
    for _ in range(50):        # warm-up: first calls, lazy imports, the adaptive interpreter
        q.put(obj); q.get(); mb.send(obj, priority=1); mb.recv()
        mb.send_bytes(data, priority=1); mb.recv_bytes()
    put, get, send, recv = q.put, q.get, mb.send, mb.recv
    sendb, recvb, dumps, loads = mb.send_bytes, mb.recv_bytes, _pickle.dumps, _pickle.loads
    if mode == "loop":
        for _ in range(n):
            pass
    elif mode == "dumps":
        for _ in range(n):
            dumps(obj)
    elif mode == "pickle":
        for _ in range(n):
            loads(dumps(obj))
    elif mode == "put":
        for _ in range(n):
            put(obj)
    elif mode == "put+get":
        for _ in range(n):
            put(obj)
        for _ in range(n):
            get()
    elif mode == "send":
        for _ in range(n):
            send(obj, priority=1)
    elif mode == "pair":
        for _ in range(n):
            send(obj, priority=1); recv()
    elif mode == "send_bytes":
        for _ in range(n):
            sendb(data, priority=1)
    elif mode == "pair_bytes":
        for _ in range(n):
            sendb(data, priority=1); recvb()
    elif mode == "batch":
        objs = [obj] * 64
        for _ in range(n // 64):
            mb.send_many(objs, priority=1)
            got = 0
            while got < 64:
                got += len(mb.recv_many(64))
    q.close()
    mb.close()


main(sys.argv[1], int(sys.argv[2]))
"""

QUEUE_MODES = ("loop", "dumps", "pickle", "put", "put+get")
MAILBOX_MODES = ("send", "pair", "send_bytes", "pair_bytes", "batch")


def missing() -> Optional[str]:
    """Why the counts cannot be taken here, or None."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    return None


def run(mode: str, ns: Sequence[int], workdir: str) -> List[Tuple[int, str]]:
    """[(total instructions, callgrind file)] of one run of *mode* per count in *ns*, run
    side by side. Raises CalledProcessError if a run fails."""
    script = os.path.join(workdir, "child.py")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(CHILD)
    env = dict(os.environ, PYTHONHASHSEED="0")
    outs = [os.path.join(workdir, f"cg.{mode}.{n}") for n in ns]
    procs = [subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               sys.executable, script, mode, str(n)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n, out in zip(ns, outs)]
    result = []
    for p, out in zip(procs, outs):
        if p.wait():
            raise subprocess.CalledProcessError(p.returncode, p.args)
        with open(out) as f:
            total = next(int(line.split()[1]) for line in f
                         if line.startswith(("summary:", "totals:")))
        result.append((total, out))
    return result


def functions(path: str, pattern: str) -> Dict[str, int]:
    """Inclusive instruction counts of the functions matching *pattern* in one callgrind
    file."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          check=True, capture_output=True, text=True).stdout
    found: Dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:?(" + pattern + r")\b", line)
        if m:
            found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return found


def per_iteration(modes: Sequence[str], n: int = N, workdir: Optional[str] = None
                  ) -> Tuple[Dict[str, float], Dict[str, Tuple[str, str]]]:
    """({mode: instructions per iteration, the bare loop subtracted}, {mode: its two
    callgrind files}). The files are in *workdir* (a fresh temporary one if None)."""
    workdir = workdir or tempfile.mkdtemp(prefix="ipcfast-cg-")
    per, files = {}, {}
    for mode in ("loop",) + tuple(m for m in modes if m != "loop"):
        (a, fa), (b, fb) = run(mode, (n, 2 * n), workdir)
        per[mode] = (b - a) / n
        files[mode] = (fa, fb)
    loop = per.pop("loop")
    return {k: v - loop for k, v in per.items()}, files


def counts(n: int = N) -> Dict[str, float]:
    """Instructions per message: pickle's own work, Queue.put/get, the Mailbox's send/recv
    and what each adds beyond pickle."""
    workdir = tempfile.mkdtemp(prefix="ipcfast-cg-")
    try:
        c, _ = per_iteration(QUEUE_MODES + ("send", "pair", "batch"), n, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    dumps, pickle_rt = c["dumps"], c["pickle"]
    put, get = c["put"], c["put+get"] - c["put"]
    return {"pickle.dumps": dumps, "pickle.loads": pickle_rt - dumps,
            "Queue.put": put, "Queue.get": get,
            "Queue.put - dumps": put - dumps, "Queue.get - loads": get - (pickle_rt - dumps),
            "Mailbox.send": c["send"], "Mailbox.recv": c["pair"] - c["send"],
            "Mailbox send+recv - pickle": c["pair"] - pickle_rt,
            "Mailbox send_many+recv_many (64) - pickle": c["batch"] - pickle_rt}


def format_counts(c: Dict[str, float]) -> List[str]:
    lines = ["== Instructions per message (valgrind --tool=callgrind; one process, the small "
             "tuple; (Ir(2n) - Ir(n)) / n, the bare loop subtracted) =="]
    for k, v in c.items():
        lines.append(f"  {k:<44} {v:>10,.0f}")
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
