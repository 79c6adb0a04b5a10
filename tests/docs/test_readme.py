"""Every Python example in README.md runs as written (in a fresh interpreter, as a script
a user would paste into a file), and finishes within a timeout. An example that uses
ipcfast.remote reads its server's URL from REDIS_URL: it runs against a private
redis-server started for it (tests/support/redis_server.py)."""
from __future__ import annotations

import pathlib
import re
import os
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.timeout(120)
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs_as_written(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ)
    server = None
    if "ipcfast.remote" in code:
        from tests.support.redis_server import RedisServer, require_redis
        require_redis()
        server = RedisServer()
        env["REDIS_URL"] = server.url
    try:
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=90, cwd=tmp_path, env=env)
    finally:
        if server is not None:
            server.close()
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
