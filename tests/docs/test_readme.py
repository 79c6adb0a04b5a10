"""Every Python example in README.md runs as written (in a fresh interpreter, as a script
a user would paste into a file), and finishes within a timeout."""
from __future__ import annotations

import pathlib
import re
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
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=90, cwd=tmp_path)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
