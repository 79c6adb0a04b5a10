"""ipcfast.bench: ipcfast against multiprocessing (and its peers, when installed).

``python -m ipcfast bench`` runs this package's :func:`main`. Every measurement forks a fresh
producer and consumer process (start method fork), waits until both are set up and have
said so (a ready/go handshake, so process start-up is never timed), and times the transfer
from the producer's first send to the consumer's last receive with ``time.perf_counter``
(CLOCK_MONOTONIC, the same clock in every process). Byte and array workloads first move
a few messages untimed, before the handshake (``Channel.warm_up``: four wrap an ipcfast
ring once, one starts a peer's threads and connection), so that the timed run does not
measure a fresh segment's first-touch page faults. Every message is checked in the
consumer, so that a fast wrong answer cannot win:

* object workloads: each item's sequence number must be the next one expected (count and
  order) and its other fields exact; the sum of the sequence numbers received is the
  checksum, compared with the expected sum by the parent.
* byte workloads (the payload-size sweep, 64 B to 64 MiB): each message carries its
  sequence number in its first and its last 8 bytes (count, order, no torn or stale
  record); its length is checked; messages up to 4 KiB are compared byte for byte with
  what the producer wrote, larger ones on every 8th message (the first and last
  included; at most an eighth of a copy per message, so the check never dominates);
  total bytes and the sequence sum are the checksum.
* numpy workloads (float32 arrays, 64 KiB to 64 MiB; skipped without numpy): each array's
  class, dtype, shape and the sequence number stamped into its first and last element
  are checked, its whole content on every 8th (first and last included).
* latency: the pinger checks that every reply carries the sequence number it sent.
* N x M: each consumer checks that each producer's items reach it in increasing order;
  the parent checks per producer that count, sum and sum of squares of the sequence
  numbers over all consumers are exactly those of 0..n-1 (each item once).

The message count of each (workload, implementation) is calibrated by short pilots (the
slowest of three decides) so that one measurement takes about 0.45 s (--quick) or 1 s
(--full); the same count is used for every repeat. Measurements are then repeated
INTERLEAVED across implementations (A1 B1 C1 A2 B2 C2 ...) so that a slow drift of the
machine does not favour one of them. Tables report the median, the spread (min..max) and a
ratio to multiprocessing.Queue measured in the same run; a row whose spread exceeds 25% of
its median is flagged "(noisy)".

Every child is killed (SIGKILL) when a measurement overruns --time-limit, Ctrl-C stops the
run cleanly, and every ipcfast segment the run made is closed and removed from /dev/shm
even when it is interrupted.

Programmatic use: ``main(argv) -> exit status`` (0 ok, 1 a measurement failed, 2 usage,
130 interrupted) or ``run(parse_args(argv)) -> results dict`` (what --json writes).
The produce_*/consume_*/ping/pong loops are shared with benchmarks/test_bench_*.py;
:func:`measure` runs one measurement of an :class:`Impl` on a :class:`Variant`.

The package, one concept per module:

* ``channels``  one adapter per transport (a :class:`Channel` gives each side its
  :class:`Ops`), and the bookkeeping that removes every segment the run made
* ``workloads`` the object, batch, N x M and ping-pong loops, and the variants (workloads
  and their implementations); ``byteloops`` the byte-message loops; ``messages`` what a
  consumer loop returns, the payload templates and :class:`CheckError`
* ``sweep``     the payload-size sweep's variants (bytes by size, numpy arrays by size);
  ``arrays`` the numpy loops and channels
* ``pools``     Pool.map / ProcessPoolExecutor.map of many small tasks, multiprocessing's
  context against ipcfast's (its own measurement: the pools' workers, not forked roles)
* ``targets``   issue 9's target ratios from one run's results, printed after the sweep;
  ``sizeplot`` the throughput-vs-size chart (``--plot PATH`` -> ``PATH-sizes.png``)
* ``roles``     what each forked child does, and the child's main
* ``measurement`` one measurement: a plan forked, handshaken, collected and checked
* ``runner``    calibration, the interleaved run, :func:`main`
* ``options``   the command line, ``--only`` and ``--list``
* ``report``    the tables, summaries, host description and chart; ``progress`` the live
  indicator
"""
from __future__ import annotations

from .channels import Channel, Ops, close_channels
from .measurement import MeasureError, measure
from .options import Options, list_variants, parse_args, select
from .runner import main, run
from .byteloops import (consume_bytes, consume_bytes_many, consume_bytes_view, produce_bytes,
                        produce_bytes_claim, produce_bytes_many)
from .messages import CheckError, Received
from .workloads import (BASELINE, BATCH, MPMC, PAYLOAD, PI, PING_SIZE, VARIANT_KEYS, Impl, Variant,
                        build_variants, consume, consume_batches, consume_objects, many_batch, ping,
                        ping_ends, pong, produce, produce_batches, produce_objects)

__all__ = [
    "main", "run", "parse_args", "Options", "list_variants", "select",
    "measure", "MeasureError", "CheckError",
    "Variant", "Impl", "build_variants", "VARIANT_KEYS", "BASELINE", "BATCH", "MPMC",
    "Channel", "Ops", "close_channels",
    "PAYLOAD", "PI", "PING_SIZE", "Received", "many_batch",
    "produce", "consume", "produce_objects", "consume_objects", "produce_batches",
    "consume_batches", "produce_bytes", "produce_bytes_many", "produce_bytes_claim",
    "consume_bytes", "consume_bytes_many", "consume_bytes_view", "ping", "pong", "ping_ends",
]
