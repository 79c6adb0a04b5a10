"""Raw bytes of 64 B, 4 KiB, 64 KiB and 1 MiB: producer here, consumer in a peer.

One group per size ("bytes-64B" ...), multiprocessing.Queue (put(bytes)) the baseline of
each; ipcfast.Ring with send_bytes/recv_bytes, send_many/recv_many (small sizes) and
claim()/view() (zero-copy), multiprocessing.Pipe with send_bytes/recv_bytes.
"""
from __future__ import annotations

import pytest

from ipcfast import bench

from _bench_support import Peer, Rounds, channels, impl_params, require, run_rounds, variant

pytestmark = pytest.mark.timeout(120)

PER_ROUND = {"bytes-64B": 2000, "bytes-4KiB": 1000, "bytes-64KiB": 200, "bytes-1MiB": 16}


def _consumer(mode: str, size: int):
    def step(ops, start, n):
        got = bench.consume(mode, ops, start, n, size)
        return got.count, got.seq_sum, got.nbytes
    return step


def _params():
    out = []
    for key in PER_ROUND:
        for p in impl_params(key):
            impl = p.values[0]
            out.append(pytest.param(key, impl, id=f"{key}-{impl.name}",
                                    marks=pytest.mark.benchmark(group=key)))
    return out


@pytest.mark.parametrize("key, impl", _params())
def test_bytes(benchmark, key, impl):
    require(impl)
    v = variant(key)
    size, per_round = v.size, PER_ROUND[key]
    with channels(impl, v) as (ch,):
        with Peer(ch.receiver, _consumer(impl.mode, size)) as peer:
            ops = ch.sender()
            rounds = Rounds(per_round)

            def one_round() -> None:
                start = rounds.take()
                peer.start(start, per_round)
                bench.produce(impl.mode, ops, start, per_round, size)
                assert peer.result() == (per_round, rounds.expected_sum(start), per_round * size)

            try:
                run_rounds(benchmark, one_round, impl, per_round)
            finally:
                ops.finish()
            benchmark.extra_info["bytes_per_round"] = per_round * size
