"""Shared pieces of the pytest-benchmark suites.

Each benchmark round crosses a process boundary: the test process is one end of the
channel and a forked :class:`Peer` the other; the peer is set up once per test (so process
start-up is never timed) and then serves rounds on command. The loops that move and check
messages are ipcfast.bench's, so the suites measure exactly what ``python -m ipcfast bench``
measures, every message checked.
"""
from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import signal
from typing import Any, Callable, Dict, List

import pytest

from ipcfast import bench

CTX = mp.get_context("fork")
TIMEOUT = 30.0           # seconds a peer may take for any one step


def variant(key: str) -> bench.Variant:
    """The quick-mode workload *key* of ``python -m ipcfast bench``."""
    return next(v for v in bench.build_variants(full=False) if v.key == key)


def impl_params(key: str, modes=None) -> List[Any]:
    """pytest params for the implementations of workload *key*, baseline first."""
    v = variant(key)
    out = []
    for impl in v.impls:
        if modes and impl.mode not in modes:
            continue
        out.append(pytest.param(impl, id=impl.name))
    return out


def require(impl: bench.Impl) -> None:
    """Skip the test when *impl* needs a module that is not installed."""
    if impl.requires:
        try:
            importlib.import_module(impl.requires)
        except ImportError:
            pytest.skip(f"{impl.requires} is not installed")


def _serve(conn, setup: Callable[[], Any], step: Callable[..., Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        state = setup()
        conn.send(("ready",))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            conn.send(("ok", step(state, *msg)))
    except BaseException as exc:  # noqa: BLE001 - report to the test
        with contextlib.suppress(Exception):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class Peer:
    """A child process holding the other end of a channel; serves rounds on command."""

    def __init__(self, setup: Callable[[], Any], step: Callable[..., Any]) -> None:
        self.conn, child = CTX.Pipe()
        self.proc = CTX.Process(target=_serve, args=(child, setup, step), daemon=True,
                                name="ipcfast-benchmark-peer")
        try:
            self.proc.start()
        finally:
            child.close()
        try:
            self._expect("ready")
        except BaseException:
            self.close()
            raise

    def _expect(self, what: str) -> Any:
        if not self.conn.poll(TIMEOUT):
            raise TimeoutError(f"benchmark peer: no {what!r} within {TIMEOUT:g} s")
        try:
            msg = self.conn.recv()
        except EOFError:
            self.proc.join(1)
            raise RuntimeError(f"benchmark peer died (exit code {self.proc.exitcode})") from None
        if msg[0] == "error":
            raise RuntimeError(f"benchmark peer: {msg[1]}")
        return msg[1] if len(msg) > 1 else None

    def start(self, *args: Any) -> None:
        """Begin a round in the peer: step(state, *args)."""
        self.conn.send(args)

    def result(self) -> Any:
        """Wait for the round's result."""
        return self._expect("ok")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def channels(impl: bench.Impl, v: bench.Variant, count: int = 1):
    """*count* fresh channels of *impl*, closed (segments removed) on the way out."""
    made: List[bench.Channel] = []
    try:
        for _ in range(count):
            made.append(impl.channel(v))
        yield made
    finally:
        bench.close_channels(made)


class Rounds:
    """Consecutive sequence-number ranges, so that order is checked across rounds too."""

    def __init__(self, per_round: int) -> None:
        self.n = per_round
        self.next = 0

    def take(self) -> int:
        start, self.next = self.next, self.next + self.n
        return start

    def expected_sum(self, start: int) -> int:
        return sum(range(start, start + self.n))


def run_rounds(benchmark, fn: Callable[[], None], impl: bench.Impl, per_round: int,
               rounds: int = 10) -> Dict[str, Any]:
    """Time *fn* (one round) with pytest-benchmark, recording the implementation."""
    benchmark.extra_info["impl"] = impl.name
    benchmark.extra_info["messages_per_round"] = per_round
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
