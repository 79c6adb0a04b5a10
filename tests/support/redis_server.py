"""A private redis-server for tests (ipcfast.remote.server.RedisServer), or the reason
there is none: skipped locally, a failure where IPCFAST_REQUIRE_REDIS=1 (.ci/run sets it),
so that CI cannot pass by skipping the remote tests.

Imports only the standard library and ipcfast.remote.server (children import it).
"""
from __future__ import annotations

import importlib.util
import os
import uuid

import pytest

from ipcfast.remote.server import RedisServer, free_port, redis_server_path

__all__ = ["RedisServer", "free_port", "require_redis", "unique"]


def require_redis() -> None:
    """Skip (or, with IPCFAST_REQUIRE_REDIS=1, fail) unless redis-server and redis-py are there."""
    missing = []
    if redis_server_path() is None:
        missing.append("redis-server is not installed (apt-get install redis-server)")
    if importlib.util.find_spec("redis") is None:
        missing.append("redis-py is not installed (pip install 'ipcfast[redis]')")
    if missing:
        why = "; ".join(missing)
        if os.environ.get("IPCFAST_REQUIRE_REDIS") == "1":
            pytest.fail(f"IPCFAST_REQUIRE_REDIS=1 but {why}", pytrace=False)
        pytest.skip(why)


def unique(prefix: str = "q") -> str:
    """A queue name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
