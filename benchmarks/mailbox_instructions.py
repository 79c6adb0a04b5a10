"""Instructions per Mailbox message, counted by valgrind's callgrind (repeatable where
wall-clock times on a shared machine are not).

Usage::

    python benchmarks/mailbox_instructions.py [-n 4096] [--keep DIR]

Each mode below runs in a fresh ``python`` under ``valgrind --tool=callgrind`` twice, with
n and 2n messages; the difference of the two totals divided by n is the cost of one message
with interpreter start-up, imports and mailbox creation cancelled out. All in one process
(no peer, nothing waits), on an unbounded mailbox (``Mailbox(capacity=None,
max_message=1024)``), the small tuple ``(i, 3.14, "abcdefgh", b"xyz")``, priority 1 (as the
bench's Mailbox workload):

- ``send``:      ``mb.send(obj, priority=1)`` n times (nothing received)
- ``pair``:      ``mb.send(obj, priority=1); mb.recv()`` n times; ``recv`` = pair - send
- ``send_bytes`` / ``pair_bytes``: the same with ``send_bytes``/``recv_bytes`` of the
  pickled tuple made once: the Mailbox without pickle
- ``pickle``:    ``_pickle.loads(_pickle.dumps(obj))`` n times: what pickling costs
- ``batch``:     ``mb.send_many`` of 64 such tuples, then ``mb.recv_many(64)`` until all 64
  are back (per message; skipped where the Mailbox has no batch forms)
- ``loop``:      the bare ``for`` loop, subtracted from all of the above

The loops run inside a function, as a caller's would (at module level every name is a
dict lookup, which would be counted too).

From the 2n ``pair_bytes`` run the script also reads the inclusive counts of the C entry
points it finds (``ipcf_mbox_*`` and their cffi wrappers ``_cffi_f_ipcf_mbox_*``) per
message: what C costs under and around the robust mutex, and what the cffi argument
conversion adds; the rest of a message is the Python wrapper. Needs valgrind (and
callgrind_annotate); exits with a message if it is missing.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODES = ["loop", "pickle", "send", "pair", "send_bytes", "pair_bytes", "batch"]

CHILD = r"""
import sys
from ipcfast import Mailbox, _pickle


def main(mode, n):
    # (in a function: the loops read locals, as real callers' loops do; at module level
    # every name would be a dict lookup, and count)
    obj = (1, 3.14, "abcdefgh", b"xyz")
    data = _pickle.dumps(obj)
    mb = Mailbox(capacity=None, max_message=1024)
    # warm-up (first calls, lazy imports, the first slots' pages, the adaptive interpreter)
    for _ in range(50):
        mb.send(obj, priority=1); mb.recv(); mb.send_bytes(data, priority=1); mb.recv_bytes()
    send, recv, sendb, recvb = mb.send, mb.recv, mb.send_bytes, mb.recv_bytes
    dumps, loads = _pickle.dumps, _pickle.loads
    if mode == "loop":
        for _ in range(n):
            pass
    elif mode == "pickle":
        for _ in range(n):
            loads(dumps(obj))
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
    mb.close()


main(sys.argv[1], int(sys.argv[2]))
"""

def run(mode: str, ns: tuple, workdir: str) -> list:
    """[(total instructions, callgrind file)] of one run per count in *ns*, side by side."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    script = os.path.join(workdir, "child.py")
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


def functions(path: str) -> dict:
    """Inclusive instruction counts of the mailbox's C entry points in one callgrind file."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          check=True, capture_output=True, text=True).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:?(_cffi_f_ipcf_mbox_\w+|ipcf_mbox_\w+|ipcf_\w*lock\w*)\b", line)
        if m:
            name = m.group(2)
            found[name] = found.get(name, 0) + int(m.group(1).replace(",", ""))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4096,
                    help="messages in the smaller run, rounded up to a multiple of 64 (default 4096)")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        print("valgrind (callgrind) is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    workdir = args.keep or tempfile.mkdtemp(prefix="ipcfast-cg-")
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "child.py"), "w") as f:
        f.write(CHILD)
    n = -(-args.n // 64) * 64
    per = {}
    files = {}
    for mode in MODES:
        try:
            (a, path_a), (b, path_b) = run(mode, (n, 2 * n), workdir)
        except subprocess.CalledProcessError:
            if mode == "batch":            # an ipcfast without Mailbox.send_many
                continue
            raise
        per[mode] = (b - a) / n
        files[mode] = (path_a, path_b)
    loop = per["loop"]
    net = {k: v - loop for k, v in per.items() if k != "loop"}
    print(f"instructions per message (callgrind, n={n} vs {2 * n}, loop subtracted):")
    print(f"  pickle dumps+loads     {net['pickle']:8.0f}")
    print(f"  send (pickled)         {net['send']:8.0f}")
    print(f"  recv (unpickled)       {net['pair'] - net['send']:8.0f}")
    print(f"  send+recv              {net['pair']:8.0f}  ({net['pair'] - net['pickle']:.0f} beyond pickle)")
    print(f"  send_bytes             {net['send_bytes']:8.0f}")
    print(f"  recv_bytes             {net['pair_bytes'] - net['send_bytes']:8.0f}")
    print(f"  send_bytes+recv_bytes  {net['pair_bytes']:8.0f}")
    if "batch" in net:
        print(f"  send_many+recv_many    {net['batch']:8.0f}  (64 per batch, pickled; "
              f"{net['batch'] - net['pickle']:.0f} beyond pickle)")
    fa, fb = (functions(p) for p in files["pair_bytes"])
    shown = [k for k in sorted(fb) if k.startswith(("_cffi_f_ipcf_mbox_", "ipcf_mbox_"))
             and (fb[k] - fa.get(k, 0)) / n >= 1]
    if shown:
        print("C entry points of pair_bytes, inclusive instructions per message (the same "
              "difference of two runs):")
        for k in shown:
            print(f"  {k:34s} {(fb[k] - fa.get(k, 0)) / n:8.0f}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
