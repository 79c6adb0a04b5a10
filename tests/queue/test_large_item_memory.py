"""Memory stays flat while large items stream through a Queue: neither the producer's nor
the consumer's RSS nor the queue's share of /dev/shm grows with the bytes moved. 1 GB in the
default run; the 10 GB of issue 9 with ``-m stress``."""
from __future__ import annotations

import multiprocessing as mp
import os

import pytest

import ipcfast
from ipcfast import _segments as S
from tests.support.shm import ring_segments

ITEM = 8 << 20


def rss(pid: str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _produce(name: str, n: int, report) -> None:
    q = ipcfast.Queue.attach(name)
    data = bytes(range(256)) * (ITEM // 256)
    for i in range(n):
        q.put((i, data))
        if i == n // 10:
            report.put(("producer-early", rss()))
    report.put(("producer-end", rss()))
    q.close()


def stream(total: int) -> dict:
    n = total // ITEM
    q = ipcfast.Queue()
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    p = ctx.Process(target=_produce, args=(q.name, n, report))
    p.start()
    seen, shm = {}, []
    try:
        for i in range(n):
            j, data = q.get(timeout=60)
            assert j == i and len(data) == ITEM and data[ITEM - 1] == 255
            del data
            if i == n // 10:
                seen["consumer-early"] = rss()
            if i % 16 == 0:
                shm.append(sum(S.inspect(r).size for r in ring_segments(q.name)))
        seen["consumer-end"] = rss()
        for _ in range(2):
            k, v = report.get(timeout=60)
            seen[k] = v
    finally:
        p.join(60)
        q.close()
    seen["shm-max"] = max(shm)
    return seen


#: ASan keeps freed memory in quarantine (and TSan shadows it): RSS says nothing there
SANITIZED = any(k in os.environ.get("LD_PRELOAD", "") for k in ("libasan", "libtsan"))


def check_flat(seen: dict) -> None:
    for who in ("producer", "consumer"):
        grew = seen[f"{who}-end"] - seen[f"{who}-early"]
        assert grew < 48 << 20, f"{who} RSS grew by {grew >> 20} MiB: {seen}"
    assert seen["shm-max"] <= 64 << 20, f"the queue held {seen['shm-max'] >> 20} MiB of /dev/shm"


@pytest.mark.skipif(SANITIZED, reason="a sanitizer runtime's allocator keeps freed memory")
@pytest.mark.timeout(120)
def test_rss_and_shared_memory_stay_flat_while_1_gb_passes_at_8_mib_per_item():
    check_flat(stream(1 << 30))


@pytest.mark.stress
@pytest.mark.skipif(SANITIZED, reason="a sanitizer runtime's allocator keeps freed memory")
@pytest.mark.timeout(600)
def test_rss_and_shared_memory_stay_flat_while_10_gb_pass_at_8_mib_per_item():
    check_flat(stream(10 << 30))
