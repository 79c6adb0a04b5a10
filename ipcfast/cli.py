"""`ipcfast` / `python -m ipcfast`: bench | bridge | ls | stat | rm | gc.

Exit codes: 0 success, 1 a named segment is missing, not ipcfast's, or could not be
removed, 2 usage error.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from typing import List, Optional, Tuple

from . import _native as N
from . import _segments as S
from ._units import fmt_short as _size
from ._native import lib

SHM = S.SHM
Segment = S.Segment
inspect = S.inspect
scan = S.scan


def _age(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def _held(seg: Segment) -> Tuple[int, Optional[int]]:
    """(messages or items held, their bytes -- None where the kind does not count them)."""
    c = seg.counters
    if seg.kind == "queue":
        return max(0, c[0] - c[1]), max(0, c[2] - c[3])
    if seg.kind == "mailbox":
        return c[0], c[1]
    return max(0, c[0] - c[1]), max(0, c[2] - c[3])


LS_COLUMNS = ("NAME", "KIND", "CAPACITY", "HELD", "BYTES", "ALIVE", "DEAD", "OWNER", "AGE", "STATE")
_LS_LEFT = {"NAME", "KIND", "OWNER"}


def cmd_ls(args) -> int:
    segs, broken = S.scan_all()
    if not segs and not broken:
        print("no ipcfast segments")
        return 0
    rows = [list(LS_COLUMNS)]
    for s in segs.values():
        if s.corrupt:     # its counters are not to be believed
            rows.append([s.name, s.kind, "?", "?", "?", str(s.live), str(s.dead), s.owner,
                         _age(s.age), "corrupt"])
            continue
        cap = ("-" if s.kind == "queue" else
               ("unbounded" if s.param0 == lib.IPCF_MB_UNBOUNDED else _size(s.param0))
               if s.kind == "mailbox" else _size(s.capacity))
        held, nbytes = _held(s)
        rows.append([s.name, s.kind, cap, str(held), "-" if nbytes is None else _size(nbytes),
                     str(s.live), str(s.dead), s.owner, _age(s.age), "ok"])
    for u in broken.values():
        rows.append([u.name, "?", "?", "?", "?", "?", "?", "?", "?", u.state])
    widths = [max(len(r[i]) for r in rows) for i in range(len(LS_COLUMNS))]
    for r in rows:        # one space-free cell per column, aligned: `split()` gives the columns
        print("  ".join(cell.ljust(w) if col in _LS_LEFT else cell.rjust(w)
                        for cell, w, col in zip(r, widths, LS_COLUMNS)).rstrip())
    return 0


def _stat_lines(s: Segment) -> List[str]:
    c = s.counters
    if s.kind == "queue":
        rows = [("items put", c[0]), ("items got", c[1]), ("bytes put", c[2]), ("bytes got", c[3]),
                ("full waits", c[4]), ("empty waits", c[5]), ("write ring", c[6]), ("read ring", c[7]),
                ("maxsize", s.param0 or "unbounded"), ("ring capacity", s.param1)]
    elif s.kind == "mailbox":
        cap = "unbounded" if s.param0 == lib.IPCF_MB_UNBOUNDED else ("rendezvous" if s.param0 == 0 else s.param0)
        rows = [("messages held", c[0]), ("bytes held", c[1]), ("messages sent", c[2]),
                ("messages taken", c[3]), ("slots freed", c[4]), ("repairs", c[5]),
                ("waiting receivers", c[6]), ("exclusive holder", c[7] or "-"),
                ("capacity", cap), ("max message", s.param1)]
    else:
        rows = [("messages in", c[0]), ("messages out", c[1]), ("bytes in", c[2]), ("bytes out", c[3]),
                ("full waits", c[4]), ("empty waits", c[5]), ("waiting consumers", c[6]),
                ("waiting producers", c[7]), ("capacity", s.capacity)]
    rows.append(("processes", f"{s.live} alive, {s.dead} dead"))
    return [f"  {k:18} {v}" for k, v in rows]


#: `ipcfast stat` of a corrupt segment (or one too broken to inspect) exits with this
CORRUPT_EXIT = 2


def _named(name: str) -> "Segment | int":
    """The segment, or the exit status after saying why not."""
    try:
        return inspect(name)
    except FileNotFoundError:
        print(f"ipcfast: no segment named {name!r} in {SHM}", file=sys.stderr)
    except PermissionError:
        print(f"ipcfast: permission denied reading {name!r}", file=sys.stderr)
    except (N.IpcfastError, ValueError, OSError) as exc:
        u = S.unreadable(name, exc)
        if u is not None:
            print(f"{name} ({u.state}): {u.reason}")
            return CORRUPT_EXIT
        print(f"ipcfast: {name!r} is not an ipcfast segment ({exc})", file=sys.stderr)
    return 1


def cmd_stat(args) -> int:
    seg = _named(args.name)
    if isinstance(seg, int):
        return seg
    while True:
        if seg.corrupt:
            print(f"{seg.name} ({seg.kind}, CORRUPT): {seg.corrupt}")
            print("  (its counters are not to be believed)")
            print("\n".join(_stat_lines(seg)))
            return CORRUPT_EXIT
        print(f"{seg.name} ({seg.kind})")
        print("\n".join(_stat_lines(seg)))
        if not args.watch:
            return 0
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0
        prev, seg = seg, _named(args.name)
        if isinstance(seg, int):
            return seg
        rate = (seg.counters[1] - prev.counters[1]) / args.interval
        print(f"  {'rate out':18} {rate:,.0f}/s\n")


def _remove(seg: Segment, dry_run: bool) -> int:
    names = [seg.name] + (S.queue_rings(seg.name) if seg.kind == "queue" else [])
    rc = 0
    for n in names:
        if dry_run:
            print(f"would remove {n}")
            continue
        err = S.unlink(n)
        if err == 0:
            print(f"removed {n}")
        elif err != -errno.ENOENT:
            print(f"ipcfast: cannot remove {n!r}: {os.strerror(-err)}", file=sys.stderr)
            rc = 1
    return rc


def cmd_rm(args) -> int:
    rc = 0
    for name in args.names:
        seg = _named(name)
        if isinstance(seg, int):
            rc = 1
            continue
        if seg.kind == "queue-ring":
            print(f"ipcfast: {name!r} is one ring of a queue; remove the queue instead", file=sys.stderr)
            rc = 1
            continue
        rc |= _remove(seg, args.dry_run)
    return rc


def cmd_gc(args) -> int:
    rc = 0
    dead = S.collectable(scan())
    for s in dead:
        rc |= _remove(s, args.dry_run)
    if not dead:
        print("nothing to collect")
    return rc


def cmd_bench(args) -> int:
    from . import bench
    return bench.main(args.rest)


def cmd_bridge(args) -> int:
    try:
        from .remote import bridge
    except ImportError as exc:       # redis-py is an optional extra
        print(f"ipcfast bridge: {exc}", file=sys.stderr)
        return 2
    return bridge.main(args.rest)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="ipcfast", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="compare ipcfast with multiprocessing and other peers",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    br = sub.add_parser("bridge", add_help=False,
                        help="move items between a local ipcfast.Queue and a Redis stream")
    br.add_argument("rest", nargs=argparse.REMAINDER)
    br.set_defaults(fn=cmd_bridge)
    sub.add_parser("ls", help="list ipcfast segments on this host").set_defaults(fn=cmd_ls)
    s = sub.add_parser("stat", help="counters of one segment")
    s.add_argument("name")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument("--interval", type=float, default=1.0)
    s.set_defaults(fn=cmd_stat)
    r = sub.add_parser("rm", help="remove segments (a queue with its rings)")
    r.add_argument("names", nargs="+")
    r.add_argument("--dry-run", action="store_true")
    r.set_defaults(fn=cmd_rm)
    g = sub.add_parser("gc", help="remove segments no live process has open")
    g.add_argument("--dry-run", action="store_true")
    g.set_defaults(fn=cmd_gc)
    if argv and argv[0] == "bench":          # everything after `bench` belongs to the runner
        return cmd_bench(argparse.Namespace(rest=argv[1:]))
    if argv and argv[0] == "bridge":         # and after `bridge` to the bridge
        return cmd_bridge(argparse.Namespace(rest=argv[1:]))
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
