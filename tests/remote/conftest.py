"""Fixtures of the remote-queue tests: a private redis-server on 127.0.0.1 (a free port),
shared by the module's tests (each uses queue names of its own), and ``server_factory`` for
tests that need a server of their own (restarts, small limits, Unix sockets). Every server
is stopped and its directory removed after; no test talks to any other address."""
from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer, require_redis, unique


@pytest.fixture(scope="module")
def server():
    require_redis()
    s = RedisServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def url(server):
    return server.url


@pytest.fixture
def name():
    return unique()


@pytest.fixture
def server_factory():
    require_redis()
    made = []

    def make(**kw) -> RedisServer:
        s = RedisServer(**kw)
        made.append(s)
        return s
    try:
        yield make
    finally:
        for s in made:
            s.close()
