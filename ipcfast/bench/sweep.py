"""The payload-size sweep (issue 9): raw bytes from 64 B to 64 MiB and numpy float32
arrays from 64 KiB to 64 MiB, through ipcfast.Queue against multiprocessing.Queue, pyzmq
and ipcfast.Ring (the in-house ceiling), the memcpy reference measured per size in the
same run.

Every size measures the five rows the issue's targets compare (:data:`CORE`). The quick
run measures the rest of the field (the pipes, Ring send_many) only at the sizes it always
had (:data:`FIELD_SIZES`) and shows them as skipped, with the reason, elsewhere; --full
measures every implementation at every size.
"""
from __future__ import annotations

from typing import List

from .._units import KiB, MiB, fmt_size
from . import arrays as A
from . import channels as C
from .workloads import BASELINE, Impl, Variant, _bytes_impls

SWEEP_SIZES = [64, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB,
               16 * MiB, 64 * MiB]
FIELD_SIZES = (64, 4 * KiB, 64 * KiB, 1 * MiB)
ARRAY_SIZES = [64 * KiB, 1 * MiB, 8 * MiB, 64 * MiB]

QUEUE_BYTES = "ipcfast.Queue put(bytes)"
ZMQ_BYTES = "zmq PUSH/PULL send(bytes)"
RING_SEND = "ipcfast.Ring send_bytes"
RING_VIEW = "ipcfast.Ring claim/view"
QUEUE_ARRAY = "ipcfast.Queue put(array)"
ZMQ_ARRAY = "zmq PUSH/PULL send_array"
#: measured at every size of the sweep, quick or full
CORE = (BASELINE, QUEUE_BYTES, ZMQ_BYTES, RING_SEND, RING_VIEW)


def size_key(prefix: str, size: int) -> str:
    """The workload key of *size*: "bytes-64B", "bytes-1MiB", "numpy-8MiB"."""
    return f"{prefix}-{fmt_size(size).replace(' ', '')}"


def _counts(size: int) -> dict:
    """Pilot and minimum message counts: a pilot of about 20 MB (at least 4 messages; from
    16 MiB up, where the slowest peers take a tenth of a second a message, 2, and two
    pilots of the calibrated size rather than three)."""
    if size >= 16 * MiB:
        return {"pilot": 2, "min_count": 2, "pilots": 2}
    return {"pilot": max(4, min(5000, int(20e6 // (size + 200)))), "min_count": 4}


def bytes_variants(full: bool) -> List[Variant]:
    """One raw-bytes workload per size of :data:`SWEEP_SIZES`."""
    out = []
    for s in SWEEP_SIZES:
        impls = _bytes_impls(s)
        if not full and s not in FIELD_SIZES:
            shown = ", ".join(fmt_size(x) for x in FIELD_SIZES)
            for i in impls:
                if i.name not in CORE:
                    i.skip = f"quick run: measured at {shown} (every size with --full)"
        out.append(Variant(size_key("bytes", s), "bytes",
                           f"Raw bytes, {fmt_size(s)} messages, 1 producer -> 1 consumer",
                           impls, size=s, **_counts(s)))
    return out


def array_impls() -> List[Impl]:
    """numpy float32 arrays: what a user of each transport writes (see the notes)."""
    return [
        Impl(BASELINE, A.MPQueueArrayCh, "array", requires="numpy",
             note="put(a.copy()): its feeder thread pickles later"),
        Impl(QUEUE_ARRAY, C.IQueueCh, "array", requires="numpy", note="put(a) / get()"),
        Impl(ZMQ_ARRAY, A.ZmqArrayCh, "array", requires="numpy zmq",
             note="pyzmq docs recipe: json header + send(a), np.frombuffer(recv())"),
    ]


def array_variants(full: bool) -> List[Variant]:
    """One numpy float32 array workload per size of :data:`ARRAY_SIZES`."""
    return [Variant(size_key("numpy", s), "arrays",
                    f"numpy float32 arrays, {fmt_size(s)} ({s // 4} elements), "
                    f"1 producer -> 1 consumer", array_impls(), size=s, **_counts(s))
            for s in ARRAY_SIZES]


def size_variants(full: bool) -> List[Variant]:
    """The whole sweep, in report order: bytes by size, then numpy arrays by size."""
    return bytes_variants(full) + array_variants(full)
