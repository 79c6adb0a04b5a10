"""Ping-pong round trips: this process pings, a peer echoes (group "pingpong").

Each implementation uses a pair of channels, one per direction; ipcfast.Ring bounces a
64-byte message, the queues a small tuple. multiprocessing.Queue (a pair) is the baseline.
"""
from __future__ import annotations

import pytest

from ipcfast import bench

from _bench_support import Peer, Rounds, channels, impl_params, require, run_rounds, variant

pytestmark = pytest.mark.timeout(120)

PER_ROUND = 200


@pytest.mark.benchmark(group="pingpong")
@pytest.mark.parametrize("impl", impl_params("pingpong"))
def test_pingpong(benchmark, impl):
    require(impl)
    v = variant("pingpong")
    as_bytes = impl.mode == "pp-bytes"
    with channels(impl, v, 2) as (ab, ba):
        back = ba.receiver()             # bind/attach our receiving end before the peer sends

        def setup():
            r = ab.receiver()
            s = ba.sender()
            return bench.ping_ends(s, r, as_bytes), (s, r)

        def step(state, n):
            (send, recv), _ = state
            return bench.pong(send, recv, n)

        with Peer(setup, step) as peer:
            out = ab.sender()
            send, recv = bench.ping_ends(out, back, as_bytes)
            rounds = Rounds(PER_ROUND)

            def one_round() -> None:
                start = rounds.take()
                peer.start(PER_ROUND)
                bench.ping(send, recv, start, PER_ROUND, as_bytes)
                assert peer.result() == PER_ROUND

            try:
                run_rounds(benchmark, one_round, impl, PER_ROUND)
            finally:
                out.finish()
                back.finish()
