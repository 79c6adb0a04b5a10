"""The bench's remote workloads: opt-in, measured against a private redis-server (every
message checked), skipped with a reason when redis-server is missing."""
from __future__ import annotations

import json

import pytest

from ipcfast import bench
from ipcfast.bench import options, remote
from tests.support.redis_server import require_redis

pytestmark = pytest.mark.timeout(120)

TINY = ["--repeat", "1", "--scale", "0.01", "--no-progress", "--time-limit", "30"]


def test_the_default_run_leaves_the_remote_workloads_out():
    keys = [v.key for v in bench.build_variants(False)]
    assert not [k for k in keys if k.startswith("remote")]
    assert not options.wants_remote(options.parse_args(["--only", "objects"]))
    assert options.wants_remote(options.parse_args(["--remote"]))
    assert options.wants_remote(options.parse_args(["--only", "remote-objects"]))


def test_remote_workloads_run_and_check_every_message(tmp_path, capsys):
    require_redis()
    out = tmp_path / "remote.json"
    rc = bench.main(["--only", "remote", "--json", str(out)] + TINY)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    data = json.loads(out.read_text())
    assert [w["workload"] for w in data["workloads"]] == ["remote-objects", "remote-64KiB"]
    for w in data["workloads"]:
        for row in w["rows"]:
            assert row["status"] == "ok", (w["workload"], row)
            assert row["reps"][0]["messages"] == row["count"]
    assert "vs the redis-py loop" in printed and "through the bridge" in printed
    assert not remote._server                 # the private server was stopped


def test_remote_workloads_are_skipped_with_a_reason_without_redis_server(monkeypatch, capsys):
    monkeypatch.setattr(remote, "missing", lambda: "redis-server is not installed (test)")
    rc = bench.main(["--only", "remote-objects"] + TINY)
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "skipping redis: redis-server is not installed (test)" in printed
