"""Instructions per Mailbox message, counted by valgrind's callgrind (repeatable where
wall-clock times on a shared machine are not).

Usage::

    python benchmarks/mailbox_instructions.py [-n 4096] [--keep DIR]

The runs and the modes are ipcfast.bench.instructions' (which ``python -m ipcfast bench
--instructions`` prints a summary of); this script adds the Mailbox's breakdown by C entry
point. Each mode below runs in a fresh ``python`` under ``valgrind --tool=callgrind`` twice, with
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
import os
import shutil
import sys
import tempfile

from ipcfast.bench.instructions import MAILBOX_MODES, functions, missing, per_iteration

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4096,
                    help="messages in the smaller run, rounded up to a multiple of 64 (default 4096)")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    args = ap.parse_args()
    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    workdir = args.keep or tempfile.mkdtemp(prefix="ipcfast-cg-")
    os.makedirs(workdir, exist_ok=True)
    n = -(-args.n // 64) * 64
    net, files = per_iteration(("pickle",) + MAILBOX_MODES, n, workdir)
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
    fa, fb = (functions(p, r"_cffi_f_ipcf_mbox_\w+|ipcf_mbox_\w+|ipcf_\w*lock\w*")
              for p in files["pair_bytes"])
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
