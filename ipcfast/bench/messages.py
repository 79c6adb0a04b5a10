"""Messages: what the consumer loops return, the payload templates and the check error.

Shared by the loops in :mod:`.workloads`, :mod:`.byteloops` and :mod:`.arrays`.
"""
from __future__ import annotations

import random
import struct
from typing import Dict, NamedTuple

QF = struct.Struct("<Q")      # a sequence number, as stamped into byte messages


class CheckError(Exception):
    """A message arrived wrong (missing, duplicated, reordered, torn or altered)."""


def _bad(what: str) -> None:
    raise CheckError(what)


class Received(NamedTuple):
    """What a consumer loop saw: its first and last receive (perf_counter), the number of
    messages it received and checked, the sum of their sequence numbers and (bytes) their
    total length."""
    t_first: float
    t_last: float
    count: int
    seq_sum: int
    nbytes: int = 0


_TEMPLATES: Dict[int, bytes] = {}


def template(size: int) -> bytes:
    """Deterministic pseudo-random payload of *size* bytes (made once, inherited by fork)."""
    t = _TEMPLATES.get(size)
    if t is None:
        t = _TEMPLATES[size] = random.Random(size).randbytes(size)
    return t
