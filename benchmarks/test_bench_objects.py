"""Small pickled objects, one per call and batched: producer here, consumer in a peer.

Group "objects": put/get of (seq, 'payload', 3.14); group "batched": put_many/get_many
(multiprocessing.Queue one per call is the baseline of both).
"""
from __future__ import annotations

import pytest

from ipcfast import bench

from _bench_support import Peer, Rounds, channels, impl_params, require, run_rounds, variant

pytestmark = pytest.mark.timeout(120)

PER_ROUND = 2000


def _consumer(mode: str):
    def step(ops, start, n):
        got = bench.consume(mode, ops, start, n)
        return got.count, got.seq_sum
    return step


def _transfer(benchmark, key: str, impl: bench.Impl, per_round: int) -> None:
    require(impl)
    v = variant(key)
    with channels(impl, v) as (ch,):
        with Peer(ch.receiver, _consumer(impl.mode)) as peer:
            ops = ch.sender()
            rounds = Rounds(per_round)

            def one_round() -> None:
                start = rounds.take()
                peer.start(start, per_round)
                bench.produce(impl.mode, ops, start, per_round)
                assert peer.result() == (per_round, rounds.expected_sum(start))

            try:
                run_rounds(benchmark, one_round, impl, per_round)
            finally:
                ops.finish()


@pytest.mark.benchmark(group="objects")
@pytest.mark.parametrize("impl", impl_params("objects"))
def test_objects(benchmark, impl):
    _transfer(benchmark, "objects", impl, PER_ROUND)


@pytest.mark.benchmark(group="batched")
@pytest.mark.parametrize("impl", impl_params("batched"))
def test_batched(benchmark, impl):
    _transfer(benchmark, "batched", impl, 4 * PER_ROUND)
