"""The remote tests cannot pass by skipping where CI asks for them: without redis-server
they skip locally, and fail when IPCFAST_REQUIRE_REDIS=1 (.ci/run sets it)."""
from __future__ import annotations

import pytest

from tests.support import redis_server


def test_a_missing_redis_server_skips_locally_and_fails_when_required(monkeypatch):
    monkeypatch.setattr(redis_server, "redis_server_path", lambda: None)
    monkeypatch.delenv("IPCFAST_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        redis_server.require_redis()
    monkeypatch.setenv("IPCFAST_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception, match="IPCFAST_REQUIRE_REDIS=1 but redis-server"):
        redis_server.require_redis()
