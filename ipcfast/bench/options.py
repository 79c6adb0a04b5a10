"""The options of ``python -m ipcfast bench``: parsing, ``--only`` selection and ``--list``."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from .workloads import Variant, build_variants


@dataclass
class Options:
    """What one run measures and where it writes (``parse_args`` makes one from argv)."""
    full: bool = False
    only: Optional[str] = None
    repeat: Optional[int] = None
    json_path: Optional[str] = None
    plot_path: Optional[str] = None
    time_limit: Optional[float] = None
    scale: float = 1.0
    verbose: bool = False
    list_only: bool = False
    pin: bool = False
    remote: bool = False
    instructions: bool = False
    progress: Optional[bool] = None          # None: a live indicator when stdout is a TTY

    @property
    def repeats(self) -> int:
        return self.repeat if self.repeat else (5 if self.full else 3)

    @property
    def target(self) -> float:
        """Seconds one measurement should take."""
        return (1.0 if self.full else 0.45) * self.scale

    @property
    def limit(self) -> float:
        return self.time_limit if self.time_limit else (120.0 if self.full else 60.0)


def parse_args(argv: Optional[Sequence[str]] = None) -> Options:
    """Options from the command line (sys.argv[1:] when *argv* is None); raises SystemExit
    for --help (0) and usage errors (2), as argparse does."""
    ap = argparse.ArgumentParser(
        prog="python -m ipcfast bench",
        description="Compare ipcfast with multiprocessing (and faster_fifo, posix_ipc, pyzmq "
                    "when installed) on small objects, batches, a payload-size sweep (raw "
                    "bytes from 64 B to 64 MiB, numpy float32 arrays from 64 KiB to 64 MiB, "
                    "against a memcpy measured in the same run, then the issue-9 target "
                    "ratios), ping-pong latency and N x M queues. Every message is checked.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="~0.45 s per measurement, 3 repeats; the sweep's pipes and "
                           "Ring send_many only at 64 B, 4 KiB, 64 KiB, 1 MiB (default; a few "
                           "minutes)")
    mode.add_argument("--full", action="store_true",
                      help="~1 s per measurement, 5 repeats, every implementation at every "
                           "size of the payload sweep")
    ap.add_argument("--only", metavar="PATTERN",
                    help="run only workloads or implementations matching PATTERN (regular "
                         "expression or substring, case-insensitive); the multiprocessing.Queue "
                         "baseline always runs with them. See --list.")
    ap.add_argument("--repeat", type=int, metavar="N", help="repeats per measurement")
    ap.add_argument("--json", dest="json_path", metavar="PATH",
                    help="write results and a host description to PATH as JSON")
    ap.add_argument("--plot", dest="plot_path", metavar="PATH",
                    help="draw a PNG chart of the ratios to PATH and, when the payload-size "
                         "sweep ran, its throughput against size (log-log, one line per "
                         "transport, memcpy of the same run) to PATH-sizes.png, e.g. "
                         "bench.png -> bench-sizes.png (needs matplotlib)")
    ap.add_argument("--time-limit", type=float, metavar="SECONDS",
                    help="kill a measurement's processes after this long (default 60, --full 120)")
    ap.add_argument("--list", dest="list_only", action="store_true",
                    help="list workloads and implementations, then exit")
    ap.add_argument("--pin", action="store_true",
                    help="pin each process of a measurement to its own CPU (consumer on the "
                         "first, producer on the second, ...); default: the scheduler decides")
    ap.add_argument("--remote", action="store_true",
                    help="add the remote-queue workloads (ipcfast.remote over a private "
                         "redis-server on loopback, and the bridge; needs redis-server and "
                         "redis-py); also on when the --only pattern says 'remote'")
    ap.add_argument("--instructions", action="store_true",
                    help="also count the instructions per Queue put and get beyond pickle's "
                         "own under valgrind --tool=callgrind (about a minute; skipped, with "
                         "the reason, when valgrind is missing)")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per measurement")
    ap.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                    help=argparse.SUPPRESS)
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.repeat is not None and a.repeat < 1:
        ap.error("--repeat must be >= 1")
    if a.time_limit is not None and a.time_limit <= 0:
        ap.error("--time-limit must be > 0")
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    if a.plot_path and importlib.util.find_spec("matplotlib") is None:
        # checked before anything runs: a whole benchmark must not end in "cannot draw"
        ap.error("--plot needs matplotlib, which is not installed (pip install matplotlib)")
    return Options(full=a.full, only=a.only, repeat=a.repeat, json_path=a.json_path,
                   plot_path=a.plot_path, time_limit=a.time_limit, scale=a.scale,
                   verbose=a.verbose, list_only=a.list_only, pin=a.pin, progress=a.progress,
                   remote=a.remote, instructions=a.instructions)


def _matcher(pattern: Optional[str]) -> Callable[[str], bool]:
    if not pattern:
        return lambda s: True
    try:
        rx = re.compile(pattern, re.I)
    except re.error:
        rx = re.compile(re.escape(pattern), re.I)
    return lambda s: bool(rx.search(s))


def select(variants: List[Variant], pattern: Optional[str]) -> List[Variant]:
    """Variants and implementations matching *pattern* (the baseline kept alongside)."""
    match = _matcher(pattern)
    out = []
    for v in variants:
        if match(v.key):
            out.append(v)
            continue
        picked = [i for i in v.impls if match(i.name) or match(f"{v.key}/{i.name}")]
        if picked:
            keep = [i for i in v.impls if i.name == v.baseline or i in picked]
            out.append(dataclasses.replace(v, impls=keep))
    return out


def wants_remote(o: Options) -> bool:
    """Whether the run includes the remote workloads: --remote, or an --only pattern that
    says "remote" (so that ``--only objects`` keeps meaning the local workload)."""
    return o.remote or bool(o.only and "remote" in o.only.lower())


def list_variants(full: bool = True) -> List[str]:
    """What --list prints: each workload and its implementations (the remote ones too)."""
    lines = []
    quick = {(v.key, i.name): i.skip for v in build_variants(False, remote=True) for i in v.impls}
    for v in build_variants(full, remote=True):
        lines.append(f"{v.key}: {v.title}")
        for i in v.impls:
            extra = f"  [needs {i.requires}]" if i.requires else ""
            if quick.get((v.key, i.name)) and not i.skip:
                extra += "  [--full only]"
            lines.append(f"    {i.name}{' (' + i.note + ')' if i.note else ''}{extra}")
    return lines


def options_json(o: Options) -> dict:
    """The options as the results JSON records them."""
    return {"mode": "full" if o.full else "quick", "only": o.only, "repeat": o.repeats,
            "pin": o.pin, "remote": wants_remote(o), "instructions": o.instructions,
            "time_limit": o.limit, "target_seconds": o.target, "scale": o.scale}

